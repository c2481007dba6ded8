"""People who use the app (marketers, sales reps, admins) and their API tokens."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base


class Role(str, enum.Enum):
    """What a user may do; the same checks guard the web UI and the API."""

    admin = "admin"  # everything, including users, tokens and sending settings
    marketer = "marketer"  # campaigns, leads, imports, enrollments, reports
    sales = "sales"  # leads (read), hand a lead to nurture, act on handoffs
    viewer = "viewer"  # read only


class User(Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    #: werkzeug.security hash (scrypt); None for a user who signs in with API tokens only.
    password_hash: Mapped[str | None] = mapped_column(String(300))
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=12))
    active: Mapped[bool] = mapped_column(default=True)
    #: Receives the monthly summary report by email on the first of each month.
    monthly_summary: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    created_at: Mapped[datetime]

    tokens: Mapped[list["ApiToken"]] = relationship(back_populates="user")


class ApiToken(Base):
    """A per-user API token: only its SHA-256 digest is stored; revoked tokens stay for audit."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    #: First characters of the token, shown in lists so a user can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="tokens")
