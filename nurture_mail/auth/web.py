"""Flask-Login for the web UI: the session user, and ``@role_required`` for views.

The session stores only the user id; the user is re-read on each request, so deactivating a
user or changing a role takes effect on their next click.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, abort, current_app
from flask_login import LoginManager, current_user

from ..models import Role, User
from .roles import allowed

__all__ = ["SessionUser", "login_manager", "role_required"]

F = TypeVar("F", bound=Callable[..., Any])

login_manager = LoginManager()
login_manager.login_view = "signin.signin"
login_manager.login_message = "Please sign in to see this page."
login_manager.login_message_category = "info"
login_manager.session_protection = "strong"


@dataclass(frozen=True)
class SessionUser:
    """What a view needs of the signed-in user, detached from any database session."""

    id: int
    email: str
    name: str
    role: Role
    is_active: bool = True
    is_authenticated: bool = True
    is_anonymous: bool = False

    def get_id(self) -> str:
        return str(self.id)

    def can(self, permission: str) -> bool:
        return allowed(self.role, permission)

    @classmethod
    def of(cls, user: User) -> "SessionUser":
        return cls(user.id, user.email, user.name, Role(user.role), bool(user.active))


@login_manager.user_loader
def _load_user(user_id: str) -> SessionUser | None:
    if not user_id.isdigit():
        return None
    svc = current_app.extensions["nurture"]
    with svc.db.session() as session:
        user = session.get(User, int(user_id))
        if user is None or not user.active:
            return None
        return SessionUser.of(user)


def role_required(permission: str) -> Callable[[F], F]:
    """A view for signed-in users whose role grants ``permission`` (else sign-in, or 403)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not current_user.can(permission):
                abort(403)
            return view(*args, **kwargs)

        wrapper.required_permission = permission  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def init_login(app: Flask) -> None:
    login_manager.init_app(app)
