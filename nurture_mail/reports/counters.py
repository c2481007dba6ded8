"""Per-step counts of a time window, and the daily counters table that keeps them cheap.

:func:`window_counts` computes live, from deliveries, events and skips, what happened per step
between two instants; human counts exclude every event flagged ``suspected_bot``.
:func:`refresh_days` stores it per UTC day in ``report_step_day`` (the cron job: today and
yesterday every five minutes); :func:`step_counts` answers a date range from the stored rows
plus, live, what no row covers yet (today since the last refresh; a day never refreshed).
An event drained after the refresh that covered its instant (the drain runs every few
seconds) is counted at the next refresh of its day. A delivery counts as opened (clicked) on the day of its *first*
human open (click), so days add up to unique opens (clicks) over any range.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import and_, delete, distinct, exists, func, select
from sqlalchemy.orm import Session, aliased

from ..models import Delivery, DeliveryStatus, Event, EventKind, Step, StepDayCount, StepSkip
from .common import DateRange

__all__ = ["METRICS", "refresh_days", "step_counts", "window_counts"]

METRICS = ("sent", "delivered", "opens", "clicks", "unsubscribes", "bounces", "complaints", "skipped",
           "bot_events")
_SENT = (DeliveryStatus.sent, DeliveryStatus.bounced)

Counts = dict[int, dict[str, int]]


def _blank() -> dict[str, int]:
    return dict.fromkeys(METRICS, 0)


def window_counts(session: Session, start: datetime, end: datetime) -> Counts:
    """step_id → metric → count for ``start <= t < end``."""
    result: Counts = defaultdict(_blank)
    for step_id, status, count in session.execute(
        select(Delivery.step_id, Delivery.status, func.count())
        .where(Delivery.sent_at >= start, Delivery.sent_at < end, Delivery.status.in_(_SENT))
        .group_by(Delivery.step_id, Delivery.status)
    ):
        result[step_id]["sent"] += count
        if status == DeliveryStatus.sent:
            result[step_id]["delivered"] += count
    human = and_(Event.at >= start, Event.at < end, Event.suspected_bot.is_(False))
    earlier = aliased(Event)
    for kind, metric in ((EventKind.open, "opens"), (EventKind.click, "clicks")):
        first_time = ~exists().where(earlier.delivery_id == Event.delivery_id, earlier.kind == kind,
                                     earlier.suspected_bot.is_(False), earlier.at < start)
        for step_id, count in session.execute(
            select(Delivery.step_id, func.count(distinct(Event.delivery_id)))
            .select_from(Event).join(Delivery, Delivery.id == Event.delivery_id)
            .where(human, Event.kind == kind, first_time).group_by(Delivery.step_id)
        ):
            result[step_id][metric] += count
    others = {EventKind.unsubscribe: "unsubscribes", EventKind.bounce: "bounces", EventKind.complaint: "complaints"}
    for step_id, kind, count in session.execute(
        select(Delivery.step_id, Event.kind, func.count(distinct(Event.delivery_id)))
        .select_from(Event).join(Delivery, Delivery.id == Event.delivery_id)
        .where(human, Event.kind.in_(list(others))).group_by(Delivery.step_id, Event.kind)
    ):
        result[step_id][others[kind]] += count
    for step_id, count in session.execute(
        select(Delivery.step_id, func.count()).select_from(Event).join(Delivery, Delivery.id == Event.delivery_id)
        .where(Event.at >= start, Event.at < end, Event.suspected_bot.is_(True)).group_by(Delivery.step_id)
    ):
        result[step_id]["bot_events"] += count
    for step_id, count in session.execute(
        select(StepSkip.step_id, func.count()).where(StepSkip.at >= start, StepSkip.at < end)
        .group_by(StepSkip.step_id)
    ):
        result[step_id]["skipped"] += count
    return result


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def refresh_days(session: Session, days: list[date], now: datetime) -> int:
    """Rebuild the stored counters of ``days`` up to ``now`` (idempotent); returns the rows written.

    Every step gets a row for every refreshed day, zeros included, so an idle day is known to
    be idle. ``refreshed_at`` is the end of the window counted: the day's end for a past day,
    ``now`` for today (the page counts the rest of today live, minutes of data at most).
    """
    campaign_of = dict(session.execute(select(Step.id, Step.campaign_id)).tuples().all())
    written = 0
    for day in days:
        start = _day_start(day)
        end = min(_day_start(day + timedelta(days=1)), now)
        if end <= start:
            continue  # a day in the future
        counts = window_counts(session, start, end)
        session.execute(delete(StepDayCount).where(StepDayCount.day == day))
        session.add_all(StepDayCount(day=day, step_id=step_id, campaign_id=campaign_id, refreshed_at=end,
                                     **(counts.get(step_id) or _blank()))
                        for step_id, campaign_id in campaign_of.items())
        written += len(campaign_of)
    session.flush()
    return written


def step_counts(session: Session, span: DateRange, campaign_id: int | None = None) -> Counts:
    """Counts per step over ``span``: the stored days from the table, the rest counted live.

    A stored day adds, live, what happened after its ``refreshed_at`` (today: since the last
    refresh, a few minutes). A day never refreshed is counted live entirely, so a report is
    right even before the cron job first ran.
    """
    result: Counts = defaultdict(_blank)
    query = select(StepDayCount.step_id, *(func.sum(getattr(StepDayCount, m)) for m in METRICS)).where(
        StepDayCount.day >= span.start, StepDayCount.day <= span.end)
    if campaign_id is not None:
        query = query.where(StepDayCount.campaign_id == campaign_id)
    for row in session.execute(query.group_by(StepDayCount.step_id)):
        for metric, value in zip(METRICS, row[1:]):
            result[row[0]][metric] += int(value or 0)
    covered = dict(session.execute(
        select(StepDayCount.day, func.min(StepDayCount.refreshed_at))
        .where(StepDayCount.day >= span.start, StepDayCount.day <= span.end).group_by(StepDayCount.day)
    ).tuples().all())
    windows: list[tuple[datetime, datetime]] = []  # [start, end) to count live, merged when adjacent
    day = span.start
    while day <= span.end:
        start, end = _day_start(day), _day_start(day + timedelta(days=1))
        if day in covered:
            start = max(start, _as_utc(covered[day]))
        if start < end:
            if windows and windows[-1][1] == start:
                windows[-1] = (windows[-1][0], end)
            else:
                windows.append((start, end))
        day += timedelta(days=1)
    for first, last in windows:
        for step_id, metrics in window_counts(session, first, last).items():
            for metric, value in metrics.items():
                result[step_id][metric] += value
    if campaign_id is not None:
        steps = set(session.scalars(select(Step.id).where(Step.campaign_id == campaign_id)))
        result = defaultdict(_blank, {k: v for k, v in result.items() if k in steps})
    return result


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
