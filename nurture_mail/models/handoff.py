"""A ready lead handed to sales: who owns it, what happened to it, and the dossier sent."""
from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Enum, ForeignKey, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base
from .sales import SalesRep


class HandoffState(str, enum.Enum):
    notified = "notified"
    accepted = "accepted"
    rejected = "rejected"
    won = "won"
    lost = "lost"


class Handoff(Base):
    __tablename__ = "handoff"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id", ondelete="CASCADE"), index=True)
    #: The campaign whose rule handed the lead off (None for a manual handoff).
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaign.id", ondelete="SET NULL"))
    #: score | hand_raiser | manual
    reason: Mapped[str] = mapped_column(String(20))
    #: Human explanation: "engagement 42 ≥ 40 and fit 55 ≥ 50", "clicked 'Book a demo'".
    reason_detail: Mapped[str | None] = mapped_column(String(500))
    trigger_event_id: Mapped[int | None] = mapped_column(ForeignKey("event.id", ondelete="SET NULL"))
    state: Mapped[HandoffState] = mapped_column(
        Enum(HandoffState, native_enum=False, length=12), default=HandoffState.notified, index=True
    )
    #: The rep who owns it now (incoming closer, then territory owner).
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("sales_rep.id", ondelete="SET NULL"), index=True)
    #: The dossier as sent (JSON), kept so the record shows what sales saw.
    dossier: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Indexed: reports select the handoffs of a date range.
    created_at: Mapped[datetime] = mapped_column(index=True)
    #: When the event that tipped the lead happened (latency = notified_at - triggered_at).
    triggered_at: Mapped[datetime | None]
    notified_at: Mapped[datetime | None]
    first_action_at: Mapped[datetime | None]
    sla_due_at: Mapped[datetime | None] = mapped_column(index=True)
    escalated_at: Mapped[datetime | None]
    ownership_ends_at: Mapped[datetime | None] = mapped_column(index=True)
    transferred_at: Mapped[datetime | None]
    #: not_ready | bad_fit
    reject_kind: Mapped[str | None] = mapped_column(String(20))
    reject_reason: Mapped[str | None] = mapped_column(String(500))
    deal_value: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    lost_reason: Mapped[str | None] = mapped_column(String(500))
    closed_at: Mapped[datetime | None]

    rep: Mapped[SalesRep | None] = relationship()
    assignments: Mapped[list["HandoffAssignment"]] = relationship(
        back_populates="handoff", order_by="HandoffAssignment.assigned_at"
    )
    actions: Mapped[list["HandoffAction"]] = relationship(
        back_populates="handoff", order_by="HandoffAction.at"
    )


class HandoffAssignment(Base):
    """Every rep a handoff was assigned to, kept for credit."""

    __tablename__ = "handoff_assignment"

    id: Mapped[int] = mapped_column(primary_key=True)
    handoff_id: Mapped[int] = mapped_column(ForeignKey("handoff.id", ondelete="CASCADE"), index=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("sales_rep.id", ondelete="CASCADE"), index=True)
    #: incoming | territory | escalation | manual
    role: Mapped[str] = mapped_column(String(20))
    assigned_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]

    handoff: Mapped[Handoff] = relationship(back_populates="assignments")
    rep: Mapped[SalesRep] = relationship()


class HandoffAction(Base):
    """Who did what to a handoff, and when (accept, reject, won, lost, escalate, transfer)."""

    __tablename__ = "handoff_action"

    id: Mapped[int] = mapped_column(primary_key=True)
    handoff_id: Mapped[int] = mapped_column(ForeignKey("handoff.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(20))
    #: A user email, a rep email (from a signed email link), or "system".
    actor: Mapped[str] = mapped_column(String(320))
    #: email-link | api | web | system
    via: Mapped[str] = mapped_column(String(20))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime]

    handoff: Mapped[Handoff] = relationship(back_populates="actions")


class WebhookDelivery(Base):
    """One attempt series to post a dossier to the sales webhook; failures stay visible."""

    __tablename__ = "webhook_delivery"

    id: Mapped[int] = mapped_column(primary_key=True)
    handoff_id: Mapped[int | None] = mapped_column(ForeignKey("handoff.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    #: pending | delivered | failed (gave up after the last retry)
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
