"""What the dashboard shows, read in a handful of aggregate queries (no per-row work in Python).

Each figure comes with the filter of the leads list that shows the rows behind it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import (
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Event,
    EventKind,
    Handoff,
    Lead,
    LeadStatus,
)

__all__ = ["Overview", "overview"]

DAYS = 30


@dataclass
class Overview:
    now: datetime
    days: list[date]
    by_status: dict[str, int]
    total_leads: int
    sends: list[int]
    human_opens: list[int]
    human_clicks: list[int]
    bot_events: int
    handoffs_this_month: int
    handoffs_by_state: dict[str, int]
    queued_now: int
    paused_enrollments: int
    active_enrollments: int
    failed_deliveries: int
    bounces_30d: int
    complaints_30d: int
    recent_failures: list[dict[str, Any]] = field(default_factory=list)
    recent_handoffs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [day.strftime("%d %b") for day in self.days]

    @property
    def sends_30d(self) -> int:
        return sum(self.sends)

    @property
    def bounce_rate(self) -> float | None:
        return self.bounces_30d / self.sends_30d if self.sends_30d else None

    @property
    def complaint_rate(self) -> float | None:
        return self.complaints_30d / self.sends_30d if self.sends_30d else None

    @property
    def click_rate(self) -> float | None:
        return sum(self.human_clicks) / self.sends_30d if self.sends_30d else None


def _day(value: Any) -> date:
    """``date()`` of a timestamp: a ``date`` on PostgreSQL, an ISO string on SQLite."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def overview(session: Session, now: datetime) -> Overview:
    today = now.date()
    days = [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    since = datetime.combine(days[0], datetime.min.time(), tzinfo=now.tzinfo)
    index = {d: i for i, d in enumerate(days)}

    by_status = {status.value: 0 for status in LeadStatus}
    for status, total in session.execute(select(Lead.status, func.count()).group_by(Lead.status)):
        by_status[LeadStatus(status).value] = total

    sends = [0] * DAYS
    sent_day = func.date(Delivery.sent_at)
    for day, count in session.execute(
        select(sent_day, func.count()).where(Delivery.sent_at >= since, Delivery.sent_at <= now).group_by(sent_day)
    ):
        if day is not None and _day(day) in index:
            sends[index[_day(day)]] = count

    opens, clicks = [0] * DAYS, [0] * DAYS
    bot_events = bounces = complaints = 0
    event_day = func.date(Event.at)
    rows = session.execute(
        select(Event.kind, Event.suspected_bot, event_day, func.count())
        .where(Event.at >= since, Event.at <= now,
               Event.kind.in_([EventKind.open, EventKind.click, EventKind.bounce, EventKind.complaint]))
        .group_by(Event.kind, Event.suspected_bot, event_day)
    )
    for kind, bot, day, count in rows:
        kind = EventKind(kind)
        if kind == EventKind.bounce:
            bounces += count
        elif kind == EventKind.complaint:
            complaints += count
        elif bot:
            bot_events += count
        elif _day(day) in index:
            (opens if kind == EventKind.open else clicks)[index[_day(day)]] += count

    month_start = datetime(now.year, now.month, 1, tzinfo=now.tzinfo)
    handoffs_by_state: dict[str, int] = {}
    for state, count in session.execute(
        select(Handoff.state, func.count()).where(Handoff.created_at >= month_start).group_by(Handoff.state)
    ):
        handoffs_by_state[getattr(state, "value", state)] = count

    def count_of(query: Any) -> int:
        return int(session.scalar(query) or 0)

    queued = count_of(select(func.count()).select_from(Delivery)
                      .where(Delivery.status.in_([DeliveryStatus.queued, DeliveryStatus.sending])))
    failed = count_of(select(func.count()).select_from(Delivery).where(Delivery.status == DeliveryStatus.failed))
    paused = count_of(select(func.count()).select_from(Enrollment).where(Enrollment.state == EnrollmentState.paused))
    active = count_of(select(func.count()).select_from(Enrollment).where(Enrollment.state == EnrollmentState.active))

    recent_failures = [
        {"lead_id": lead_id, "email": email, "error": error, "at": at, "attempts": attempts}
        for lead_id, email, error, at, attempts in session.execute(
            select(Delivery.lead_id, Lead.email, Delivery.last_error, Delivery.next_attempt_at, Delivery.attempts)
            .join(Lead, Lead.id == Delivery.lead_id)
            .where(Delivery.status == DeliveryStatus.failed)
            .order_by(Delivery.next_attempt_at.desc()).limit(5)
        )
    ]
    recent_handoffs = [
        {"lead_id": lead_id, "email": email, "company": company, "state": getattr(state, "value", state),
         "reason": reason, "at": at}
        for lead_id, email, company, state, reason, at in session.execute(
            select(Handoff.lead_id, Lead.email, Lead.company, Handoff.state, Handoff.reason, Handoff.created_at)
            .join(Lead, Lead.id == Handoff.lead_id).order_by(Handoff.created_at.desc(), Handoff.id.desc()).limit(5)
        )
    ]
    return Overview(
        now=now, days=days, by_status=by_status, total_leads=sum(by_status.values()), sends=sends,
        human_opens=opens, human_clicks=clicks, bot_events=bot_events,
        handoffs_this_month=sum(handoffs_by_state.values()), handoffs_by_state=handoffs_by_state,
        queued_now=queued, paused_enrollments=paused, active_enrollments=active, failed_deliveries=failed,
        bounces_30d=bounces, complaints_30d=complaints, recent_failures=recent_failures,
        recent_handoffs=recent_handoffs,
    )
