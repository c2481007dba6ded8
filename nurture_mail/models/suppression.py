"""Addresses that must not be mailed: checked by the sender at send time, from any campaign."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base

#: ``scope`` of a suppression that covers every campaign.
ALL_EMAIL = "*"


class Suppression(Base):
    __tablename__ = "suppression"
    __table_args__ = (UniqueConstraint("email", "scope"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    #: ``*`` for all email, or a campaign slug for "this campaign only".
    scope: Mapped[str] = mapped_column(String(80), default=ALL_EMAIL)
    #: unsubscribe | hard_bounce | complaint | soft_bounces | manual
    reason: Mapped[str] = mapped_column(String(20))
    #: one-click | link | mailto | dsn | webhook | api | cli …
    source: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime]


class SuppressionRemoval(Base):
    """A suppression an admin lifted: what it was, who lifted it, when and why (kept for audit)."""

    __tablename__ = "suppression_removal"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    scope: Mapped[str] = mapped_column(String(80))
    #: The suppression's own reason, source, detail and time, as they were.
    reason: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(String(1000))
    suppressed_at: Mapped[datetime]
    removed_by: Mapped[str] = mapped_column(String(320))
    removed_reason: Mapped[str] = mapped_column(String(500))
    removed_at: Mapped[datetime]
