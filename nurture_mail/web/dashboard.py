"""What the dashboard shows, read in a handful of aggregate queries (no per-row work in Python).

Each figure comes with the filter of the leads list that shows the rows behind it.
"""
from __future__ import annotations

import json
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


#: Seconds a finished day's counts are kept in Redis: an event is ingested a few minutes after it
#: happens, so yesterday is re-read often and older days rarely.
YESTERDAY_TTL = 600
OLDER_TTL = 6 * 3600
CACHE_PREFIX = "nurture:dashboard:day:"
_KEYS = ("sends", "opens", "clicks", "bots", "bounces", "complaints")


def _day_counts(session: Session, start: datetime, end: datetime) -> dict[date, dict[str, int]]:
    """Per-day sends, human opens and clicks, bot events, bounces and complaints in [start, end)."""
    counts: dict[date, dict[str, int]] = {}

    def bucket(day: Any) -> dict[str, int]:
        return counts.setdefault(_day(day), dict.fromkeys(_KEYS, 0))

    sent_day = func.date(Delivery.sent_at)
    for day, count in session.execute(
        select(sent_day, func.count()).where(Delivery.sent_at >= start, Delivery.sent_at < end).group_by(sent_day)
    ):
        bucket(day)["sends"] += count
    event_day = func.date(Event.at)
    for kind, bot, day, count in session.execute(
        select(Event.kind, Event.suspected_bot, event_day, func.count())
        .where(Event.at >= start, Event.at < end,
               Event.kind.in_([EventKind.open, EventKind.click, EventKind.bounce, EventKind.complaint]))
        .group_by(Event.kind, Event.suspected_bot, event_day)
    ):
        kind = EventKind(kind)
        name = {EventKind.bounce: "bounces", EventKind.complaint: "complaints"}.get(kind)
        if name is None:
            name = "bots" if bot else ("opens" if kind == EventKind.open else "clicks")
        bucket(day)[name] += count
    return counts


def _series(session: Session, days: list[date], now: datetime, cache: Any, prefix: str,
            ) -> dict[date, dict[str, int]]:
    """The counts of each day: finished days from Redis when cached there, today always live."""
    today = days[-1]
    start_of = lambda day: datetime.combine(day, datetime.min.time(), tzinfo=now.tzinfo)  # noqa: E731
    result: dict[date, dict[str, int]] = {}
    missing = list(days[:-1])
    if cache is not None and missing:
        stored = cache.mget([f"{prefix}{day.isoformat()}" for day in missing])
        for day, raw in zip(list(missing), stored):
            if raw:
                result[day] = json.loads(raw)
                missing.remove(day)
    if missing:
        fresh = _day_counts(session, start_of(missing[0]), start_of(today))
        for day in missing:
            result[day] = fresh.get(day, dict.fromkeys(_KEYS, 0))
        if cache is not None:
            pipe = cache.pipeline()
            for day in missing:
                ttl = YESTERDAY_TTL if day == today - timedelta(days=1) else OLDER_TTL
                pipe.setex(f"{prefix}{day.isoformat()}", ttl, json.dumps(result[day]))
            pipe.execute()
    live = _day_counts(session, start_of(today), now + timedelta(microseconds=1))
    result[today] = live.get(today, dict.fromkeys(_KEYS, 0))
    return result


def overview(session: Session, now: datetime, cache: Any = None, cache_scope: str = "") -> Overview:
    """The dashboard's figures as of ``now``; ``cache`` (Redis) keeps finished days' counts under
    keys scoped by ``cache_scope`` (one per database)."""
    today = now.date()
    days = [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]

    by_status = {status.value: 0 for status in LeadStatus}
    for status, total in session.execute(select(Lead.status, func.count()).group_by(Lead.status)):
        by_status[LeadStatus(status).value] = total

    per_day = _series(session, days, now, cache, f"{CACHE_PREFIX}{cache_scope}:")
    sends = [per_day[day]["sends"] for day in days]
    opens = [per_day[day]["opens"] for day in days]
    clicks = [per_day[day]["clicks"] for day in days]
    bot_events = sum(per_day[day]["bots"] for day in days)
    bounces = sum(per_day[day]["bounces"] for day in days)
    complaints = sum(per_day[day]["complaints"] for day in days)

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
