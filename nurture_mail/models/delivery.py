"""One email to one lead for one step: the ledger that makes sending idempotent."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Enum, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base

if TYPE_CHECKING:
    from .campaign import Step
    from .enrollment import Enrollment
    from .lead import Lead


class DeliveryStatus(str, enum.Enum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    bounced = "bounced"
    #: Not sent because the address was suppressed (unsubscribed, bounced) at send time.
    cancelled = "cancelled"


class Delivery(Base):
    __tablename__ = "delivery"
    __table_args__ = (
        # The database, not luck, prevents a second copy of a step to a lead.
        UniqueConstraint("enrollment_id", "step_id"),
        Index("ix_delivery_status_next_attempt", "status", "next_attempt_at"),
        # The dashboard and the reports count what was sent per day; queued rows (the tick writes
        # 100k at once) stay out of it.
        Index("ix_delivery_sent_at", "sent_at", postgresql_where=text("sent_at IS NOT NULL"),
              sqlite_where=text("sent_at IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollment.id", ondelete="CASCADE"))
    step_id: Mapped[int] = mapped_column(ForeignKey("step.id"), index=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id", ondelete="CASCADE"), index=True)
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(DeliveryStatus, native_enum=False, length=10), default=DeliveryStatus.queued
    )
    #: The tick instant that made this touch due.
    scheduled_for: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    enqueued_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    message_id: Mapped[str | None] = mapped_column(String(300))
    last_error: Mapped[str | None] = mapped_column(String(1000))

    enrollment: Mapped["Enrollment"] = relationship()
    step: Mapped["Step"] = relationship()
    lead: Mapped["Lead"] = relationship()
