"""Users and API tokens: create, authenticate, revoke. No Flask here, so the CLI uses it too.

Passwords are hashed by ``werkzeug.security`` (scrypt). An API token is 32 random bytes shown
once; only its SHA-256 digest is stored, so a database leak gives no usable token. SHA-256
(not a slow hash) is right for tokens: they carry 256 bits of entropy, nothing to brute-force.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from .. import addresses
from ..exceptions import InvalidInput, NotFound
from ..models import ApiToken, Role, User

__all__ = [
    "TOKEN_PREFIX", "IssuedToken", "authenticate_password", "create_user", "find_user", "hash_token",
    "issue_token", "list_tokens", "revoke_token", "set_password", "update_user", "user_for_token",
]

#: Tokens start with this, so a leaked one is recognisable by secret scanners.
TOKEN_PREFIX = "nm_"
MIN_PASSWORD_LENGTH = 10
#: Seconds between two updates of a token's ``last_used_at``.
LAST_USED_RESOLUTION = 60
# A hash to compare against when the user does not exist, so timing does not reveal emails.
_DUMMY_HASH = generate_password_hash("not-a-real-password-0")


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # the full token, shown once


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def normalize_email(email: str) -> str:
    """The stored form of a user's address; InvalidInput naming the field when it is not one."""
    try:
        return addresses.normalize_email(email)
    except addresses.InvalidEmail as error:
        raise InvalidInput(str(error), field="email") from None


def find_user(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(User.email == addresses.address_key(email)))
    if user is None:
        raise NotFound(f"no user with email {email!r}")
    return user


def create_user(session: Session, email: str, name: str, role: Role | str, now: datetime,
                password: str | None = None) -> User:
    """A new user; ``password`` None makes an API-only user who cannot sign in to the UI."""
    email = normalize_email(email)
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInput(f"unknown role {role!r} (roles: {', '.join(r.value for r in Role)})",
                           field="role") from None
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise InvalidInput(f"a user with email {email} already exists", field="email")
    user = User(email=email, name=name.strip() or email, role=role, active=True, created_at=now)
    if password is not None:
        set_password(user, password)
    session.add(user)
    session.flush()
    return user


def set_password(user: User, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"must be at least {MIN_PASSWORD_LENGTH} characters", field="password")
    user.password_hash = generate_password_hash(password)


def update_user(session: Session, email: str, *, role: Role | str | None = None, active: bool | None = None,
                password: str | None = None) -> User:
    """Change a user's role, deactivate or reactivate them, or set a new password.

    A deactivated user can neither sign in (their web session ends at the next request) nor use
    any of their API tokens. The last active admin cannot be deactivated or demoted.
    """
    user = find_user(session, email)
    if role is not None:
        try:
            role = Role(role)
        except ValueError:
            raise InvalidInput(f"unknown role {role!r} (roles: {', '.join(r.value for r in Role)})",
                               field="role") from None
    demoted = role is not None and role != Role.admin
    if user.role == Role.admin and user.active and (demoted or active is False):
        others = session.scalar(select(func.count(User.id)).where(User.role == Role.admin, User.active.is_(True),
                                                                  User.id != user.id))
        if not others:
            raise InvalidInput(f"{user.email} is the last active admin; make another admin first", field="email")
    if role is not None:
        user.role = role
    if active is not None:
        user.active = active
    if password is not None:
        set_password(user, password)
    session.flush()
    return user


def authenticate_password(session: Session, email: str, password: str) -> User | None:
    """The active user with this email and password, else None (same work either way)."""
    user = session.scalar(select(User).where(User.email == addresses.address_key(email)))
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    ok = check_password_hash(stored, password)
    if user is None or not user.password_hash or not user.active or not ok:
        return None
    return user


def issue_token(session: Session, user: User, name: str, now: datetime) -> IssuedToken:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name.strip() or "token", prefix=secret[:10],
                     token_hash=hash_token(secret), created_at=now)
    session.add(token)
    session.flush()
    return IssuedToken(token, secret)


def user_for_token(session: Session, secret: str, now: datetime) -> User | None:
    """The active user owning a live (not revoked) token; records its last use."""
    digest = hash_token(secret)
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if token is None or not hmac.compare_digest(token.token_hash, digest) or token.revoked_at is not None:
        return None
    user = session.get(User, token.user_id)
    if user is None or not user.active:
        return None
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() >= LAST_USED_RESOLUTION:
        token.last_used_at = now  # at most one write a minute per token, not one per request
    return user


def list_tokens(session: Session, email: str | None = None) -> list[ApiToken]:
    query = select(ApiToken).join(User).order_by(ApiToken.id)
    if email:
        query = query.where(User.email == addresses.address_key(email))
    return list(session.scalars(query))


def revoke_token(session: Session, token_id_or_prefix: str, now: datetime) -> ApiToken:
    """Revoke by id or by the prefix shown in ``list-tokens``; revoking twice is harmless."""
    query = select(ApiToken)
    if token_id_or_prefix.isdigit():
        query = query.where(ApiToken.id == int(token_id_or_prefix))
    else:
        query = query.where(ApiToken.prefix == token_id_or_prefix)
    matches = list(session.scalars(query))
    if not matches:
        raise NotFound(f"no API token {token_id_or_prefix!r} (see list-tokens)")
    if len(matches) > 1:
        raise InvalidInput(f"prefix {token_id_or_prefix!r} matches {len(matches)} tokens; give the id", field="token")
    token = matches[0]
    if token.revoked_at is None:
        token.revoked_at = now
    return token
