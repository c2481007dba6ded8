"""A lead's whole story, newest last: emails, what they did (bots flagged, with the reason),
what they learned and from what evidence, suppressions. Read-only.

``limit`` keeps only the newest entries (each source is read newest first, at most ``limit``
rows; ``LeadStory.omitted`` counts what was left out); ``include_bots=False`` leaves out
events flagged as machine traffic. Link names are read for the lead's events only."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import (
    Campaign,
    Delivery,
    Enrollment,
    Event,
    Knowledge,
    KnowledgeEvidence,
    Link,
    Step,
    Suppression,
)
from .enroll import find_lead


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str
    text: str


@dataclass(frozen=True)
class LeadStory:
    email: str
    name: str
    company: str
    status: str
    timezone: str
    enrollments: list[str]
    knowledge: dict[str, str]
    entries: list[Entry]
    #: Entries left out by ``limit``.
    omitted: int = 0


def _newest(query, column, limit: int | None):
    return query.order_by(column.desc()).limit(limit) if limit is not None else query


def _count(session: Session, query) -> int:
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def lead_story(session: Session, email: str, *, limit: int | None = None, include_bots: bool = True) -> LeadStory:
    lead = find_lead(session, email)
    entries: list[Entry] = []
    total = 0
    deliveries = (select(Delivery, Step.key, Campaign.slug).join(Step, Step.id == Delivery.step_id)
                  .join(Campaign, Campaign.id == Step.campaign_id).where(Delivery.lead_id == lead.id))
    sent_at = func.coalesce(Delivery.sent_at, Delivery.scheduled_for)
    for delivery, step_key, campaign in session.execute(_newest(deliveries, sent_at, limit)).tuples():
        at = delivery.sent_at or delivery.scheduled_for
        detail = f" ({delivery.last_error})" if delivery.last_error else ""
        entries.append(Entry(at, "email", f"{campaign}/{step_key}: {delivery.status.value}{detail}"))
    events_query = select(Event).where(Event.lead_id == lead.id)
    if not include_bots:
        events_query = events_query.where(Event.suspected_bot.is_(False))
    events = list(session.scalars(_newest(events_query, Event.at, limit)))
    link_ids = {event.link_id for event in events if event.link_id}
    links = dict(session.execute(select(Link.id, Link.name).where(Link.id.in_(link_ids))).tuples().all()) \
        if link_ids else {}
    if limit is not None:
        total += _count(session, deliveries) + _count(session, events_query)
    for event in events:
        what = event.kind.value
        if event.link_id:
            what += f" on '{links.get(event.link_id, event.link_id)}'"
        if event.topic:
            what += f" [{event.topic}]"
        if event.suspected_bot:
            what += f" — suspected bot: {event.bot_reason}"
        entries.append(Entry(event.at, "event", what))
    evidence_query = select(KnowledgeEvidence).where(KnowledgeEvidence.lead_id == lead.id)
    for evidence in session.scalars(_newest(evidence_query, KnowledgeEvidence.at, limit)):
        source = evidence.source + (f" by {evidence.declared_by}" if evidence.declared_by else "")
        entries.append(Entry(evidence.at, "knows", f"{evidence.topic} → {evidence.level.value} ({source})"))
    suppression_query = select(Suppression).where(Suppression.email == lead.email)
    for row in session.scalars(_newest(suppression_query, Suppression.created_at, limit)):
        scope = "all email" if row.scope == "*" else f"campaign {row.scope}"
        entries.append(Entry(row.created_at, "suppressed", f"{scope}: {row.reason} via {row.source}"))
    entries.sort(key=lambda e: e.at)
    omitted = 0
    if limit is not None:
        total += _count(session, evidence_query) + _count(session, suppression_query)
        entries = entries[-limit:] if limit > 0 else []
        omitted = max(total - len(entries), 0)
    enrollments = [
        f"{slug}: {enrollment.state.value}, {enrollment.touches_sent} sent"
        + (f", next {enrollment.next_send_at:%Y-%m-%d %H:%M} UTC" if enrollment.next_send_at else "")
        + (f" ({enrollment.state_reason})" if enrollment.state_reason else "")
        for enrollment, slug in session.execute(
            select(Enrollment, Campaign.slug).join(Campaign, Campaign.id == Enrollment.campaign_id)
            .where(Enrollment.lead_id == lead.id)
        ).tuples()
    ]
    knowledge = {k.topic: k.level.value for k in session.scalars(select(Knowledge).where(Knowledge.lead_id == lead.id))}
    return LeadStory(lead.email, lead.full_name, lead.company or "", lead.status.value, lead.timezone or "",
                     enrollments, knowledge, entries, omitted)
