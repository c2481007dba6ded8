"""What a prospect (or a machine acting for one) did: open, click, unsubscribe, bounce, …"""
from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class EventKind(str, enum.Enum):
    open = "open"
    click = "click"
    unsubscribe = "unsubscribe"
    bounce = "bounce"
    complaint = "complaint"
    reply = "reply"
    form = "form"
    #: Recorded from outside (API): a webinar attended, a meeting held (nurture/external_events.py).
    webinar = "webinar"
    meeting = "meeting"


class Event(Base):
    __tablename__ = "event"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Idempotency key of the event as it was captured (a tracking hit, a DSN, a webhook item):
    #: ingesting the same event twice stores it once.
    uid: Mapped[str | None] = mapped_column(String(64), unique=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id", ondelete="CASCADE"), index=True)
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("delivery.id", ondelete="SET NULL"), index=True)
    kind: Mapped[EventKind] = mapped_column(Enum(EventKind, native_enum=False, length=12))
    link_id: Mapped[int | None] = mapped_column(ForeignKey("link.id", ondelete="SET NULL"))
    topic: Mapped[str | None] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(index=True)
    user_agent: Mapped[str | None] = mapped_column(String(500))
    ip: Mapped[str | None] = mapped_column(String(64))
    suspected_bot: Mapped[bool] = mapped_column(default=False)
    bot_reason: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (
        # Reports: engaged leads of a month (kind, time range), without reading the table.
        Index("ix_event_kind_at_lead", "kind", "at", "lead_id", "suspected_bot"),
    )
