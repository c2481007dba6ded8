"""Bearer-token authentication and the role check of every API route.

``Authorization: Bearer nm_…``: the token's SHA-256 is looked up (see ``auth.accounts``).
No token, an unknown one or a revoked one is a 401 with ``WWW-Authenticate: Bearer``; a
valid token whose user's role lacks the route's permission is a 403 naming the roles that
have it. The permission table is ``auth/roles.py``, the same one the web UI uses.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from .. import services
from ..auth.accounts import user_for_token
from ..auth.roles import PERMISSIONS, allowed, roles_with
from ..models import Role
from .problems import PROBLEM_JSON, ApiProblem, ProblemSchema

__all__ = ["ApiUser", "authenticate_request", "current_api_user", "requires", "token_key"]

F = TypeVar("F", bound=Callable[..., Any])

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="nurture_mail"'}


@dataclass(frozen=True)
class ApiUser:
    id: int
    email: str
    role: Role


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def token_key() -> str:
    """The rate-limit bucket of this request: the authenticated user (all their tokens share it)."""
    user = g.get("api_user")
    return f"user:{user.id}" if user is not None else "anonymous"


def authenticate_request() -> None:
    """Set ``g.api_user`` from the bearer token, or raise a 401 problem."""
    secret = _bearer()
    if secret is None:
        raise ApiProblem(401, "missing bearer token: send 'Authorization: Bearer <token>' "
                              "(create one with: python -m nurture_mail create-token EMAIL)",
                         field="Authorization", headers=_CHALLENGE)
    svc = services()
    with svc.db.session() as session:
        user = user_for_token(session, secret, svc.clock.now())
        if user is None:
            raise ApiProblem(401, "the API token is unknown or revoked", field="Authorization",
                             headers={"WWW-Authenticate": 'Bearer realm="nurture_mail", error="invalid_token"'})
        g.api_user = ApiUser(user.id, user.email, Role(user.role))


def current_api_user() -> ApiUser:
    return g.api_user


def requires(blueprint: Any, permission: str) -> Callable[[F], F]:
    """Route decorator: the caller's role must grant ``permission``; documents 401 and 403.

    Put it above ``@bp.arguments`` so the role is checked before the body is validated.
    """
    if permission not in PERMISSIONS:
        raise KeyError(permission)

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = g.get("api_user")
            if user is None:  # pragma: no cover - authenticate_request runs first
                raise ApiProblem(401, "not authenticated", field="Authorization", headers=_CHALLENGE)
            if not allowed(user.role, permission):
                raise ApiProblem(403, f"role {user.role.value} may not do this: it needs permission "
                                      f"{permission} (roles: {', '.join(roles_with(permission))})")
            return view(*args, **kwargs)

        documented = blueprint.alt_response(401, schema=ProblemSchema, content_type=PROBLEM_JSON,
                                            description="No token, or an unknown or revoked one")(wrapper)
        documented = blueprint.alt_response(403, schema=ProblemSchema, content_type=PROBLEM_JSON,
                                            description=f"The role lacks permission {permission} "
                                                        f"(granted to: {', '.join(roles_with(permission))})")(documented)
        return documented

    return decorator
