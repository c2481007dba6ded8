"""A lead in a campaign: its state and when its next touch is due."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Enum, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base

if TYPE_CHECKING:
    from .campaign import Campaign, Step
    from .lead import Lead


class EnrollmentState(str, enum.Enum):
    active = "active"
    paused = "paused"
    completed = "completed"
    exited = "exited"


class Enrollment(Base):
    __tablename__ = "enrollment"
    __table_args__ = (
        UniqueConstraint("lead_id", "campaign_id"),
        # The scheduler's only query: due, active enrollments in (next_send_at, id) order. With id
        # in the index the order comes from the index, without a sort, however many share one instant.
        Index("ix_enrollment_due", "state", "next_send_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Looked up through uq_enrollment_lead_id_campaign_id (lead_id leads it): no index of its own.
    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"), index=True)
    state: Mapped[EnrollmentState] = mapped_column(
        Enum(EnrollmentState, native_enum=False, length=12), default=EnrollmentState.active
    )
    #: None while a delivery is outstanding (queued or sending) or when not active.
    next_send_at: Mapped[datetime | None]
    touches_sent: Mapped[int] = mapped_column(default=0)
    last_sent_at: Mapped[datetime | None]
    state_reason: Mapped[str | None] = mapped_column(String(500))
    enrolled_by: Mapped[str | None] = mapped_column(String(200))
    #: Indexed: reports count who entered nurture in a date range.
    enrolled_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None]

    lead: Mapped["Lead"] = relationship(back_populates="enrollments")
    campaign: Mapped["Campaign"] = relationship()


class StepSkip(Base):
    """A step the engine passed over for a lead because the lead already knew what it teaches."""

    __tablename__ = "step_skip"
    __table_args__ = (UniqueConstraint("enrollment_id", "step_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollment.id", ondelete="CASCADE"))
    step_id: Mapped[int] = mapped_column(ForeignKey("step.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(index=True)

    step: Mapped["Step"] = relationship()
