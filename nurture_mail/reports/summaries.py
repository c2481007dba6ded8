"""Summaries that keep the topics and monthly reports fast, and their refresh (the report counters
cron job, every five minutes).

**Topics**: leads per campaign, enrollment day, topic and knowledge level.

Counting it live joins every enrollment of a campaign to its leads' knowledge (100,000 leads ×
several topics: a few hundred thousand rows per page view). ``report_topic_day`` keeps the
counts per (campaign, UTC day enrolled, topic, level), so the page sums a few thousand rows, and
a range ending in the past is exact too (leads enrolled by its last day).

A refresh (the report counters cron job, every five minutes) recounts only the (campaign, day)
groups that changed since its last run: those holding a lead that gained knowledge (every
change writes a ``knowledge_evidence`` row) or a new enrollment. It finds them by the ids of
those two append-only tables, read from a watermark (``report_watermark``) with one run of
overlap, so a row whose transaction committed late is not missed; recounting a group twice
changes nothing. No index is added to a table the send path or the drain writes. Knowledge
never goes down and is never deleted (an erasure keeps the levels), and enrollments are never
deleted, so nothing else can change a group; a deleted campaign takes its rows with it.

**Monthly**: the leads that engaged in each month (``report_engaged_month``), from the events
above the watermark (events are append-only: an erasure anonymises them, never deletes them;
the bot flag is set when they are stored). The page adds, live, the events a refresh may not
have stored yet (ids above ``scan_from``, minutes of them), so its figure is exact, not stale.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime

from sqlalchemy import CompoundSelect, Date, Select, delete, func, insert, literal, select, type_coerce, union_all
from sqlalchemy.orm import Session

from ..models import (
    EngagedLeadMonth,
    Enrollment,
    Event,
    EventKind,
    Knowledge,
    KnowledgeEvidence,
    ReportWatermark,
    TopicDayCount,
)
from ..nurture.sql import insert_ignoring_conflicts

__all__ = ["ENGAGEMENT", "EVENTS", "EVIDENCE", "refreshed_at", "TopicLevels", "engaged_leads", "live_topic_levels", "refresh_engaged_months",
           "refresh_summaries", "refresh_topics", "stored_topic_levels", "topic_levels"]

#: (topic, level value) → leads
TopicLevels = dict[tuple[str, str], int]

EVIDENCE = "topics.knowledge_evidence"
ENROLLMENT = "topics.enrollment"
EVENTS = "monthly.event"
#: What counts as engaging with nurture (the monthly summary's "under development").
ENGAGEMENT = (EventKind.click, EventKind.reply, EventKind.form, EventKind.webinar, EventKind.meeting)
#: Groups recounted per statement (bounded IN lists).
CHUNK = 200


def _enrolled_day():
    # date() is the UTC day on both backends (timestamps are stored as naive UTC).
    return type_coerce(func.date(Enrollment.enrolled_at), Date)


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _level(value: object) -> str:
    return str(getattr(value, "value", value))


def live_topic_levels(session: Session, campaign_id: int, topics: Iterable[str], before: datetime) -> TopicLevels:
    """Count from the raw tables: leads enrolled in the campaign before ``before``, per topic and level."""
    topics = list(topics)
    if not topics:
        return {}
    return {(topic, _level(level)): count for topic, level, count in session.execute(
        select(Knowledge.topic, Knowledge.level, func.count())
        .join(Enrollment, Enrollment.lead_id == Knowledge.lead_id)
        .where(Enrollment.campaign_id == campaign_id, Enrollment.enrolled_at < before, Knowledge.topic.in_(topics))
        .group_by(Knowledge.topic, Knowledge.level))}


def stored_topic_levels(session: Session, campaign_id: int, topics: Iterable[str], last_day: date) -> TopicLevels:
    """The same figures from the summary, as of its last refresh."""
    topics = list(topics)
    if not topics:
        return {}
    return {(topic, level): int(count or 0) for topic, level, count in session.execute(
        select(TopicDayCount.topic, TopicDayCount.level, func.sum(TopicDayCount.leads))
        .where(TopicDayCount.campaign_id == campaign_id, TopicDayCount.day <= last_day,
               TopicDayCount.topic.in_(topics))
        .group_by(TopicDayCount.topic, TopicDayCount.level))}


def refreshed_at(session: Session, watermark: str = EVIDENCE) -> datetime | None:
    """When a summary (by its watermark: ``EVIDENCE`` topics, ``EVENTS`` monthly) was last refreshed;
    None: never (its report counts live)."""
    return session.scalar(select(ReportWatermark.refreshed_at).where(ReportWatermark.name == watermark))


def topic_levels(session: Session, campaign_id: int, topics: Iterable[str],
                 last_day: date, before: datetime) -> tuple[TopicLevels, datetime | None]:
    """The summary's figures and when it was refreshed, or the live count (and None) before its first run."""
    at = refreshed_at(session)
    if at is None:
        return live_topic_levels(session, campaign_id, topics, before), None
    return stored_topic_levels(session, campaign_id, topics, last_day), at


def _recount(session: Session, groups: dict[int, set[date]]) -> int:
    """Replace the rows of the given (campaign, day) groups with a fresh count; returns rows written."""
    written = 0
    day = _enrolled_day()
    for campaign_id, days in groups.items():
        ordered = sorted(days)
        for i in range(0, len(ordered), CHUNK):
            chunk = ordered[i:i + CHUNK]
            session.execute(delete(TopicDayCount).where(TopicDayCount.campaign_id == campaign_id,
                                                        TopicDayCount.day.in_(chunk)))
            rows = [{"campaign_id": campaign_id, "day": _as_date(d), "topic": topic, "level": _level(level),
                     "leads": count}
                    for d, topic, level, count in session.execute(
                        select(day, Knowledge.topic, Knowledge.level, func.count())
                        .join(Enrollment, Enrollment.lead_id == Knowledge.lead_id)
                        .where(Enrollment.campaign_id == campaign_id, day.in_(chunk))
                        .group_by(day, Knowledge.topic, Knowledge.level))]
            if rows:
                session.execute(insert(TopicDayCount), rows)
            written += len(rows)
    return written


def _mark(session: Session, name: str, seen: int, now: datetime) -> ReportWatermark:
    mark = session.get(ReportWatermark, name)
    if mark is None:
        mark = ReportWatermark(name=name, scan_from=seen, seen_id=seen, refreshed_at=now)
        session.add(mark)
    else:
        # Next run reads from what this run's predecessor saw: one run of overlap.
        mark.scan_from, mark.seen_id, mark.refreshed_at = mark.seen_id, max(seen, mark.seen_id), now
    return mark


def refresh_topics(session: Session, now: datetime, *, full: bool = False) -> dict[str, int]:
    """Bring ``report_topic_day`` up to date (idempotent); the first run (or ``full``) counts everything."""
    # Locked (PostgreSQL): rq cron can enqueue a refresh twice; the second waits for the first.
    evidence_mark = session.get(ReportWatermark, EVIDENCE, with_for_update=True)
    enrollment_mark = session.get(ReportWatermark, ENROLLMENT, with_for_update=True)
    evidence_max = session.scalar(select(func.max(KnowledgeEvidence.id))) or 0
    enrollment_max = session.scalar(select(func.max(Enrollment.id))) or 0
    if full or evidence_mark is None or enrollment_mark is None:
        session.execute(delete(TopicDayCount))
        written, groups = _insert_all(session)
    else:
        day = _enrolled_day()
        changed_leads = select(KnowledgeEvidence.lead_id).where(KnowledgeEvidence.id > evidence_mark.scan_from)
        wanted: dict[int, set[date]] = defaultdict(set)
        for campaign_id, enrolled in session.execute(select(Enrollment.campaign_id, day).distinct().where(
                (Enrollment.id > enrollment_mark.scan_from) | Enrollment.lead_id.in_(changed_leads))):
            wanted[campaign_id].add(_as_date(enrolled))
        written = _recount(session, wanted)
        groups = sum(len(days) for days in wanted.values())
    _mark(session, EVIDENCE, evidence_max, now)
    _mark(session, ENROLLMENT, enrollment_max, now)
    session.flush()
    return {"groups": groups, "rows": written}


def _insert_all(session: Session) -> tuple[int, int]:
    """Count every group (the summary is empty); returns rows written and groups counted."""
    day = _enrolled_day()
    rows = [{"campaign_id": campaign_id, "day": _as_date(d), "topic": topic, "level": _level(level), "leads": count}
            for campaign_id, d, topic, level, count in session.execute(
                select(Enrollment.campaign_id, day, Knowledge.topic, Knowledge.level, func.count())
                .join(Enrollment, Enrollment.lead_id == Knowledge.lead_id)
                .group_by(Enrollment.campaign_id, day, Knowledge.topic, Knowledge.level))]
    if rows:
        session.execute(insert(TopicDayCount), rows)
    return len(rows), len({(r["campaign_id"], r["day"]) for r in rows})


def _engagement(start: datetime, end: datetime):
    return (Event.at >= start, Event.at < end, Event.kind.in_(ENGAGEMENT), Event.suspected_bot.is_(False))


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def engaged_leads(session: Session, start: date) -> Select | CompoundSelect:
    """A select of the lead ids that engaged in the month starting ``start`` (a lead may appear
    twice): the summary and the events since it was refreshed, or the events alone (never refreshed)."""
    begin, end = _utc(start), _utc(_next_month(start))
    mark = session.get(ReportWatermark, EVENTS)
    if mark is None:
        return select(Event.lead_id).where(*_engagement(begin, end))
    stored = select(EngagedLeadMonth.lead_id).where(EngagedLeadMonth.month == start)
    recent = select(Event.lead_id).where(Event.id > mark.scan_from, *_engagement(begin, end))
    return union_all(stored, recent)


def refresh_engaged_months(session: Session, now: datetime, *, full: bool = False) -> int:
    """Store the (month, lead) pairs of the engagement events above the watermark; returns months touched."""
    mark = session.get(ReportWatermark, EVENTS, with_for_update=True)
    if full:
        session.execute(delete(EngagedLeadMonth))
    after = 0 if full or mark is None else mark.scan_from
    seen = session.scalar(select(func.max(Event.id))) or 0
    first, last = session.execute(select(func.min(Event.at), func.max(Event.at)).where(
        Event.id > after, Event.id <= seen, Event.kind.in_(ENGAGEMENT), Event.suspected_bot.is_(False))).one()
    months = 0
    if first is not None:
        month, stop = _month_start(first.date()), _month_start(last.date())
        while month <= stop:
            begin, end = _utc(month), _utc(_next_month(month))
            pairs = select(literal(month, Date), Event.lead_id).distinct().where(
                Event.id > after, Event.id <= seen, *_engagement(begin, end))
            session.execute(insert_ignoring_conflicts(session, EngagedLeadMonth, ["month", "lead_id"])
                            .from_select(["month", "lead_id"], pairs))
            month, months = _next_month(month), months + 1
    if full and mark is not None:
        mark.scan_from = mark.seen_id = seen
        mark.refreshed_at = now
    else:
        _mark(session, EVENTS, seen, now)
    session.flush()
    return months


def refresh_summaries(session: Session, now: datetime, *, full: bool = False) -> dict[str, int]:
    """What the report counters cron job runs after the daily counters; ``full`` (the nightly run)
    recounts everything, so a row whose transaction committed after two refreshes had passed its
    id is counted by the next night at the latest."""
    topics = refresh_topics(session, now, full=full)
    return {"topic_groups": topics["groups"], "topic_rows": topics["rows"],
            "engaged_months": refresh_engaged_months(session, now, full=full)}
