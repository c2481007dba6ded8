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
