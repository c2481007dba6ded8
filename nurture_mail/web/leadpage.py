"""Everything the lead page shows, read for one lead: profile, qualification, knowledge map with
evidence, scores, enrollments with their journey preview, handoffs, and the timeline.

Reads only; each query is bounded by the lead (and the timeline by ``TIMELINE_LIMIT`` per kind).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..extensions import Services
from ..leads.hygiene import describe
from ..models import (
    Campaign,
    Delivery,
    Enrollment,
    Event,
    Handoff,
    Knowledge,
    KnowledgeEvidence,
    KnowledgeLevel,
    Lead,
    LeadScore,
    Link,
    Stage,
    Step,
    Suppression,
    Topic,
)
from ..models.lead import QUALIFICATION_ATTRIBUTES
from ..nurture.preview import JourneyPreview, journey_for

__all__ = ["LeadView", "TimelineItem", "lead_view"]

#: Timeline entries of each kind read for the page, and with "show the whole history".
TIMELINE_LIMIT = 40
TIMELINE_FULL = 500

QUALIFICATION_LABELS = {
    "industry_code": "Industry code",
    "firmographics": "Firmographics",
    "decision_makers_identified": "Decision makers identified",
    "environment_documented": "Environment documented",
    "decision_maker_engaged": "Decision maker engaged",
    "pain_validated": "Pain validated",
    "decision_process_timeframe": "Decision process and timeframe",
    "budget": "Budget",
    "competitive_landscape": "Competitive landscape",
    "urgency": "Urgency / compelling event",
}


@dataclass
class TopicState:
    slug: str
    name: str
    level: str
    evidence: str | None = None
    at: datetime | None = None


@dataclass
class TimelineItem:
    at: datetime
    kind: str  # email | open | click | knowledge | suppression | handoff | bounce | other
    title: str
    detail: str = ""
    bot: bool = False
    delivery_id: int | None = None


@dataclass
class EnrollmentView:
    enrollment: Enrollment
    campaign: Campaign
    preview: JourneyPreview | None
    skipped_done: list[tuple[str, str]]


@dataclass
class LeadView:
    lead: Lead
    score: LeadScore | None
    qualification: list[tuple[str, str, Any]]
    knowledge: list[tuple[str, list[TopicState]]]
    enrollments: list[EnrollmentView]
    handoffs: list[Handoff]
    timeline: list[TimelineItem]
    hygiene: list[str]
    campaigns: list[Campaign]
    topics: list[Topic]
    known_count: int = 0
    qualified_count: int = 0
    timeline_more: bool = False
    known_slugs: set[str] = field(default_factory=set)
    extra: dict[str, Any] = field(default_factory=dict)


def _evidence_text(row: KnowledgeEvidence, subjects: dict[int, str]) -> str:
    if row.declared_by:
        return f"declared by {row.declared_by} ({row.source})" + (f": {row.note}" if row.note else "")
    if row.source == "click":
        return "clicked a link on it" + (f" in “{subjects[row.delivery_id]}”" if row.delivery_id in subjects else "")
    if row.source == "delivery":
        return "delivered" + (f" “{subjects[row.delivery_id]}”" if row.delivery_id in subjects else " an email teaching it")
    return row.source + (f": {row.note}" if row.note else "")


def personal_subject(svc: Services, source: str, lead: Lead) -> str:
    """A step's subject as this lead reads it (the sender's sandboxed subject template)."""
    from ..mail.compose import LeadView as MailLead

    try:
        return svc.renderer.subject(source).render(lead=MailLead.of(lead)).strip() or source
    except Exception:  # a broken subject template shows as written, the page still renders
        return source


def lead_view(session: Session, svc: Services, lead: Lead, full_history: bool = False) -> LeadView:
    limit = TIMELINE_FULL if full_history else TIMELINE_LIMIT
    score = session.get(LeadScore, lead.id)
    qual = lead.qualification or {}
    qualification = [(name, QUALIFICATION_LABELS[name], qual.get(name)) for name in QUALIFICATION_ATTRIBUTES]

    deliveries = session.execute(
        select(Delivery, Step.subject, Step.key, Campaign.slug).join(Step, Step.id == Delivery.step_id)
        .join(Campaign, Campaign.id == Step.campaign_id).where(Delivery.lead_id == lead.id)
        .order_by(Delivery.id.desc()).limit(limit)
    ).tuples().all()
    personal: dict[str, str] = {}

    def subject_of(source: str) -> str:
        if source not in personal:
            personal[source] = personal_subject(svc, source, lead)
        return personal[source]

    subjects = {d.id: subject_of(subject) for d, subject, _, _ in deliveries}

    levels = {k.topic: k.level for k in session.scalars(select(Knowledge).where(Knowledge.lead_id == lead.id))}
    evidence: dict[str, KnowledgeEvidence] = {}
    evidence_rows = list(session.scalars(select(KnowledgeEvidence).where(KnowledgeEvidence.lead_id == lead.id)
                                         .order_by(KnowledgeEvidence.at.desc(), KnowledgeEvidence.id.desc())
                                         .limit(limit)))
    for row in evidence_rows:
        evidence.setdefault(row.topic, row)  # newest first: the evidence of the current level
    topics = list(session.scalars(select(Topic).order_by(Topic.slug)))
    stages: dict[str, list[TopicState]] = {stage.value: [] for stage in Stage}
    for topic in topics:
        level = levels.get(topic.slug, KnowledgeLevel.unknown)
        ev = evidence.get(topic.slug)
        stages.setdefault(topic.stage.value, []).append(TopicState(
            topic.slug, topic.name, level.value, _evidence_text(ev, subjects) if ev else None, ev.at if ev else None))
    knowledge = [(stage, items) for stage, items in stages.items() if items]

    campaigns = list(session.scalars(select(Campaign).order_by(Campaign.name)))
    by_id = {c.id: c for c in campaigns}
    enrollments = []
    for enrollment in session.scalars(select(Enrollment).where(Enrollment.lead_id == lead.id).order_by(Enrollment.id)):
        campaign = by_id[enrollment.campaign_id]
        preview = None
        if lead.erased_at is None:
            preview = journey_for(session, svc, lead.email, campaign.slug)
            preview = replace(preview, touches=tuple(replace(touch, subject=subject_of(touch.subject))
                                                     for touch in preview.touches))
        enrollments.append(EnrollmentView(enrollment, campaign, preview, []))

    handoffs = list(session.scalars(select(Handoff).where(Handoff.lead_id == lead.id).order_by(Handoff.id.desc())))

    timeline: list[TimelineItem] = []
    for delivery, subject, key, slug in deliveries:
        at = delivery.sent_at or delivery.scheduled_for
        status = delivery.status.value
        detail = f"{slug} · step {key} · {status}"
        if delivery.last_error:
            detail += f" — {delivery.last_error}"
        timeline.append(TimelineItem(at, "email", subject_of(subject), detail, delivery_id=delivery.id))
    events = list(session.scalars(select(Event).where(Event.lead_id == lead.id)
                                  .order_by(Event.at.desc(), Event.id.desc()).limit(limit)))
    link_ids = {e.link_id for e in events if e.link_id}
    links = {link.id: link for link in session.scalars(select(Link).where(Link.id.in_(link_ids)))} if link_ids else {}
    for event in events:
        kind = event.kind.value
        link = links.get(event.link_id) if event.link_id else None
        if kind == "click":
            title = f"Clicked “{(link.label or link.name) if link else 'a link'}”"
            if link is not None and link.hand_raiser:
                title += " (hand-raiser)"
        elif kind == "open":
            title = "Opened " + (f"“{subjects[event.delivery_id]}”" if event.delivery_id in subjects else "an email")
        else:
            title = kind.replace("_", " ").capitalize()
        parts = []
        if kind == "click" and event.delivery_id in subjects:
            parts.append(f"in “{subjects[event.delivery_id]}”")
        if event.topic:
            parts.append(f"topic {event.topic}")
        if event.suspected_bot:
            parts.append(f"suspected bot: {event.bot_reason or 'no reason recorded'} — not scored, teaches nothing")
        timeline.append(TimelineItem(event.at, "bot" if event.suspected_bot else kind, title, " · ".join(parts),
                                     bot=event.suspected_bot, delivery_id=event.delivery_id))
    for row in evidence_rows:
        timeline.append(TimelineItem(row.at, "knowledge", f"{row.topic} → {row.level.value}",
                                     _evidence_text(row, subjects)))
    for suppression in session.scalars(select(Suppression).where(Suppression.email == lead.email)):
        scope = "all email" if suppression.scope == "*" else f"campaign {suppression.scope}"
        timeline.append(TimelineItem(suppression.created_at, "suppression", f"Suppressed for {scope}",
                                     f"{suppression.reason} via {suppression.source}"
                                     + (f": {suppression.detail}" if suppression.detail else "")))
    for handoff in handoffs:
        timeline.append(TimelineItem(handoff.created_at, "handoff", f"Handed to sales ({handoff.reason.replace('_', ' ')})",
                                     (handoff.reason_detail or "") + f" · now {handoff.state.value}"))
    timeline.sort(key=lambda item: item.at, reverse=True)
    more = len(deliveries) >= limit or len(events) >= limit or len(evidence_rows) >= limit
    if more:
        # Older than the oldest entry read of a kind that was cut, another kind may be incomplete.
        horizon = max(rows[-1] for rows in (
            [d.sent_at or d.scheduled_for for d, *_ in deliveries] if len(deliveries) >= limit else [],
            [e.at for e in events] if len(events) >= limit else [],
            [r.at for r in evidence_rows] if len(evidence_rows) >= limit else [],
        ) if rows)
        timeline = [item for item in timeline if item.at >= horizon]

    return LeadView(
        lead=lead, score=score, qualification=qualification, knowledge=knowledge, enrollments=enrollments,
        handoffs=handoffs, timeline=timeline, hygiene=[describe(flag) for flag in (lead.hygiene or [])],
        campaigns=campaigns, topics=topics,
        known_count=sum(1 for level in levels.values() if level in (KnowledgeLevel.engaged, KnowledgeLevel.known)),
        qualified_count=sum(1 for _, _, value in qualification if value not in (None, "")),
        timeline_more=more,
        known_slugs={topic for topic, level in levels.items() if level == KnowledgeLevel.known},
    )
