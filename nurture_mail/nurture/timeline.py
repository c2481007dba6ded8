"""A lead's whole story, newest last: emails, what they did (bots flagged, with the reason),
what they learned and from what evidence, suppressions. Read-only."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
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


def lead_story(session: Session, email: str) -> LeadStory:
    lead = find_lead(session, email)
    entries: list[Entry] = []
    for delivery, step_key, campaign in session.execute(
        select(Delivery, Step.key, Campaign.slug).join(Step, Step.id == Delivery.step_id)
        .join(Campaign, Campaign.id == Step.campaign_id).where(Delivery.lead_id == lead.id)
    ).tuples():
        at = delivery.sent_at or delivery.scheduled_for
        detail = f" ({delivery.last_error})" if delivery.last_error else ""
        entries.append(Entry(at, "email", f"{campaign}/{step_key}: {delivery.status.value}{detail}"))
    links = dict(session.execute(select(Link.id, Link.name)).tuples().all())
    for event in session.scalars(select(Event).where(Event.lead_id == lead.id)):
        what = event.kind.value
        if event.link_id:
            what += f" on '{links.get(event.link_id, event.link_id)}'"
        if event.topic:
            what += f" [{event.topic}]"
        if event.suspected_bot:
            what += f" — suspected bot: {event.bot_reason}"
        entries.append(Entry(event.at, "event", what))
    for evidence in session.scalars(select(KnowledgeEvidence).where(KnowledgeEvidence.lead_id == lead.id)):
        source = evidence.source + (f" by {evidence.declared_by}" if evidence.declared_by else "")
        entries.append(Entry(evidence.at, "knows", f"{evidence.topic} → {evidence.level.value} ({source})"))
    for row in session.scalars(select(Suppression).where(Suppression.email == lead.email)):
        scope = "all email" if row.scope == "*" else f"campaign {row.scope}"
        entries.append(Entry(row.created_at, "suppressed", f"{scope}: {row.reason} via {row.source}"))
    entries.sort(key=lambda e: e.at)
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
                     enrollments, knowledge, entries)
