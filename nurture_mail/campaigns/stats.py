"""Campaign reports for the UI: per campaign and per step counts, machine traffic excluded.

Opens and clicks are counted once per email (distinct deliveries), and only when the event was
not flagged as a suspected bot (security scanners, privacy proxies; see tracking/bots.py). A
human click counts as an open too: a reader who clicked opened the email, even with images off.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from ..models import Campaign, Delivery, DeliveryStatus, Enrollment, EnrollmentState, Event, EventKind, Step, StepSkip

__all__ = ["CampaignCounts", "StepCounts", "campaign_counts", "step_counts"]

#: How ``stop_mailing`` words the exit reason of an enrollment ended by a sales handoff.
HANDOFF_REASON = "handed off to sales%"
SENT_STATUSES = (DeliveryStatus.sent, DeliveryStatus.bounced)


@dataclass
class CampaignCounts:
    enrolled: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    handed_off: int = 0
    sent: int = 0
    clicked: int = 0

    @property
    def active(self) -> int:
        return self.by_state.get(EnrollmentState.active.value, 0)

    @property
    def paused(self) -> int:
        return self.by_state.get(EnrollmentState.paused.value, 0)

    @property
    def completed(self) -> int:
        return self.by_state.get(EnrollmentState.completed.value, 0)

    @property
    def click_rate(self) -> float | None:
        """Human clicks per email sent (0..1), or None before the first send."""
        return self.clicked / self.sent if self.sent else None


@dataclass
class StepCounts:
    sent: int = 0
    opened: int = 0
    clicked: int = 0
    skipped_known: int = 0

    def rate(self, part: int) -> float | None:
        return part / self.sent if self.sent else None


def _human(kind: tuple[EventKind, ...]):
    return and_(Event.kind.in_(kind), Event.suspected_bot.is_(False), Event.delivery_id.is_not(None))


def campaign_counts(session: Session, campaign_ids: list[int] | None = None) -> dict[int, CampaignCounts]:
    """campaign id -> its counts; campaigns without any enrollment get zeros."""
    ids = campaign_ids if campaign_ids is not None else list(session.scalars(select(Campaign.id)))
    out = {cid: CampaignCounts() for cid in ids}
    if not ids:
        return out
    for cid, state, n in session.execute(
        select(Enrollment.campaign_id, Enrollment.state, func.count())
        .where(Enrollment.campaign_id.in_(ids)).group_by(Enrollment.campaign_id, Enrollment.state)
    ).tuples():
        out[cid].by_state[state.value] = n
        out[cid].enrolled += n
    for cid, n in session.execute(
        select(Enrollment.campaign_id, func.count())
        .where(Enrollment.campaign_id.in_(ids), Enrollment.state == EnrollmentState.exited,
               Enrollment.state_reason.like(HANDOFF_REASON))
        .group_by(Enrollment.campaign_id)
    ).tuples():
        out[cid].handed_off = n
    for cid, n in session.execute(
        select(Step.campaign_id, func.count(Delivery.id)).join(Step, Step.id == Delivery.step_id)
        .where(Step.campaign_id.in_(ids), Delivery.status.in_(SENT_STATUSES)).group_by(Step.campaign_id)
    ).tuples():
        out[cid].sent = n
    for cid, n in session.execute(
        select(Step.campaign_id, func.count(func.distinct(Event.delivery_id)))
        .select_from(Event).join(Delivery, Delivery.id == Event.delivery_id).join(Step, Step.id == Delivery.step_id)
        .where(Step.campaign_id.in_(ids), _human((EventKind.click,))).group_by(Step.campaign_id)
    ).tuples():
        out[cid].clicked = n
    return out


def step_counts(session: Session, campaign_id: int) -> dict[int, StepCounts]:
    """step id -> sent, opened, clicked (distinct emails, humans only) and skipped-because-known."""
    out: dict[int, StepCounts] = {
        sid: StepCounts() for sid in session.scalars(select(Step.id).where(Step.campaign_id == campaign_id))
    }
    steps = select(Step.id).where(Step.campaign_id == campaign_id)
    for sid, n in session.execute(
        select(Delivery.step_id, func.count()).where(Delivery.step_id.in_(steps), Delivery.status.in_(SENT_STATUSES))
        .group_by(Delivery.step_id)
    ).tuples():
        out[sid].sent = n
    for attr, kinds in (("opened", (EventKind.open, EventKind.click)), ("clicked", (EventKind.click,))):
        for sid, n in session.execute(
            select(Delivery.step_id, func.count(func.distinct(Event.delivery_id)))
            .select_from(Event).join(Delivery, Delivery.id == Event.delivery_id)
            .where(Delivery.step_id.in_(steps), _human(kinds)).group_by(Delivery.step_id)
        ).tuples():
            setattr(out[sid], attr, n)
    for sid, n in session.execute(
        select(StepSkip.step_id, func.count()).where(StepSkip.step_id.in_(steps)).group_by(StepSkip.step_id)
    ).tuples():
        out[sid].skipped_known = n
    return out
