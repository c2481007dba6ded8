"""The dossier a rep gets with a handoff: everything needed for a consultative first call.

Built once as a JSON-able dict (stored in ``Handoff.dossier`` so the record shows what sales
saw, posted as-is to the webhook) and rendered to HTML and text by the notification email.
Sections, in the order a rep reads them (seed 004): who and which company; the ten
qualification attributes, each known or not; the knowledge map (what the prospect has learned
and what not); the contact history (bots excluded, the newest :data:`HISTORY_LIMIT` entries);
the score breakdown (bot lines dropped); why now.

The rep's signed links are *not* part of the dossier: whoever reads the stored record or the
webhook's channel must not be able to act as the rep. The notification email adds them when
it renders (:func:`dossier_links`).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..config import Config
from ..models import (
    QUALIFICATION_ATTRIBUTES,
    STAGE_ORDER,
    Campaign,
    Enrollment,
    Event,
    Handoff,
    Knowledge,
    KnowledgeEvidence,
    KnowledgeLevel,
    Lead,
    LeadScore,
    Link,
    SalesRep,
    Step,
    Topic,
)
from ..nurture.timeline import lead_story
from .links import SalesLinks

__all__ = ["ATTRIBUTE_LABELS", "build_dossier", "dossier_links", "summary_text"]

DOSSIER_VERSION = 1

ATTRIBUTE_LABELS = {
    "industry_code": "Industry code (SIC/NAICS)",
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

#: Knowledge levels that mean the prospect has learned the topic.
LEARNED = (KnowledgeLevel.engaged, KnowledgeLevel.known)
#: The most contact-history entries a dossier carries (the newest; the rest are counted).
HISTORY_LIMIT = 50


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def dossier_links(config: Config, handoff_id: int, rep_id: int | None, clock: Any = None) -> dict[str, str]:
    """The signed page, accept and reject links of one rep for one handoff (for the email only)."""
    if rep_id is None:
        return {}
    links = SalesLinks(config, clock)
    return {
        "page": links.page_url(handoff_id, rep_id),
        "accept": links.page_url(handoff_id, rep_id, "accept"),
        "reject": links.page_url(handoff_id, rep_id, "reject"),
    }


def build_dossier(session: Session, handoff: Handoff, lead: Lead, now: datetime) -> dict[str, Any]:
    rep = session.get(SalesRep, handoff.rep_id) if handoff.rep_id else None
    campaign = session.get(Campaign, handoff.campaign_id) if handoff.campaign_id else None
    dossier: dict[str, Any] = {
        "version": DOSSIER_VERSION,
        "built_at": _iso(now),
        "handoff": {
            "id": handoff.id,
            "reason": handoff.reason,
            "detail": handoff.reason_detail or "",
            "campaign": campaign.slug if campaign else None,
            "campaign_name": campaign.name if campaign else None,
            "triggered_at": _iso(handoff.triggered_at),
            "created_at": _iso(handoff.created_at),
            "sla_due_at": _iso(handoff.sla_due_at),
            "ownership_ends_at": _iso(handoff.ownership_ends_at),
            "trigger": _trigger(session, handoff.trigger_event_id),
        },
        "rep": {"id": rep.id, "name": rep.name, "email": rep.email} if rep else None,
        "contact": {
            "email": lead.email,
            "name": lead.full_name,
            "first_name": lead.first_name or "",
            "title": lead.title or "",
            "lead_source": lead.lead_source or "",
            "timezone": lead.timezone or "",
            "status": lead.status.value,
        },
        "company": {
            "name": lead.company or "",
            "industry_sic": lead.industry_sic or "",
            "industry_naics": lead.industry_naics or "",
            "revenue": lead.revenue,
            "employees": lead.employees,
            "locations": lead.locations,
            "region": lead.region or "",
        },
        "qualification": _qualification(lead),
        "knowledge": _knowledge_map(session, lead, campaign),
        "score": _score(session, lead.id),
        "links": {},  # added by the notification email only (never stored nor posted)
    }
    history, bots, omitted = _history(session, lead)
    dossier["history"] = history
    dossier["history_bots_excluded"] = bots
    dossier["history_omitted"] = omitted
    known = sum(1 for item in dossier["qualification"] if item["known"])
    dossier["qualification_known"] = known
    dossier["text"] = summary_text(dossier)
    return dossier


def summary_text(dossier: dict[str, Any]) -> str:
    """One Slack-compatible line or three: who, why, how qualified, where to act."""
    contact, company, handoff = dossier["contact"], dossier["company"], dossier["handoff"]
    who = contact["name"] or contact["email"]
    if contact["title"]:
        who += f", {contact['title']}"
    if company["name"]:
        who += f" at {company['name']}"
    rep = dossier.get("rep")
    lines = [f"New handoff #{handoff['id']}: {who} <{contact['email']}>",
             f"Why now: {handoff['reason']} ({handoff['detail']})" if handoff["detail"] else f"Why now: {handoff['reason']}",
             f"Qualification: {dossier.get('qualification_known', 0)}/{len(QUALIFICATION_ATTRIBUTES)} attributes known"]
    score = dossier["score"]
    if score["available"]:
        lines.append(f"Score: fit {score['fit']:g}, engagement {score['engagement']:g}")
    if rep:
        lines.append(f"Assigned to {rep['name']} <{rep['email']}>")
    return "\n".join(lines)


def _trigger(session: Session, event_id: int | None) -> dict[str, Any] | None:
    if event_id is None:
        return None
    row = session.execute(
        select(Event, Link.name, Link.label, Link.hand_raiser).outerjoin(Link, Link.id == Event.link_id)
        .where(Event.id == event_id)
    ).first()
    if row is None:
        return None
    event, link_name, label, hand_raiser = row
    return {"event_id": event.id, "kind": event.kind.value, "at": _iso(event.at), "link": label or link_name,
            "topic": event.topic, "hand_raiser": bool(hand_raiser)}


def _qualification(lead: Lead) -> list[dict[str, Any]]:
    values = lead.qualification or {}
    items = []
    for attribute in QUALIFICATION_ATTRIBUTES:
        value = values.get(attribute)
        if attribute == "industry_code" and _blank(value):
            value = lead.industry_naics or lead.industry_sic
        if attribute == "firmographics" and _blank(value) and (lead.employees or lead.revenue):
            parts = [f"{lead.employees} employees" if lead.employees else "",
                     f"revenue {lead.revenue:,}" if lead.revenue else "",
                     f"{lead.locations} locations" if lead.locations else "", lead.region or ""]
            value = ", ".join(p for p in parts if p) or None
        known = not _blank(value)
        items.append({"attribute": attribute, "label": ATTRIBUTE_LABELS.get(attribute, attribute),
                      "known": known, "value": str(value) if known else None})
    return items


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value is False


def _campaigns_of(session: Session, lead: Lead, campaign: Campaign | None) -> list[Campaign]:
    campaigns: list[Campaign] = [campaign] if campaign else []
    for other in session.scalars(
        select(Campaign).join(Enrollment, Enrollment.campaign_id == Campaign.id)
        .where(Enrollment.lead_id == lead.id).order_by(Enrollment.enrolled_at, Campaign.id)
    ):
        if all(other.id != c.id for c in campaigns):
            campaigns.append(other)
    return campaigns


def _knowledge_map(session: Session, lead: Lead, campaign: Campaign | None) -> list[dict[str, Any]]:
    """Per campaign, every topic it teaches: learned (engaged/known, with evidence) or not."""
    levels = {k.topic: k.level for k in session.scalars(select(Knowledge).where(Knowledge.lead_id == lead.id))}
    evidence: dict[str, KnowledgeEvidence] = {}
    for row in session.scalars(
        select(KnowledgeEvidence).where(KnowledgeEvidence.lead_id == lead.id).order_by(KnowledgeEvidence.at,
                                                                                     KnowledgeEvidence.id)
    ):
        evidence[row.topic] = row  # the latest wins
    topics = {t.slug: t for t in session.scalars(select(Topic))}
    result = []
    for one in _campaigns_of(session, lead, campaign):
        order: list[str] = []
        for step in session.scalars(select(Step).where(Step.campaign_id == one.id).order_by(Step.position)):
            for slug in step.teaches:
                if slug not in order:
                    order.append(slug)
        order.sort(key=lambda s: STAGE_ORDER.get(topics[s].stage, 99) if s in topics else 99)
        entries = []
        for slug in order:
            level = levels.get(slug, KnowledgeLevel.unknown)
            proof = evidence.get(slug)
            entries.append({
                "topic": slug,
                "name": topics[slug].name if slug in topics else slug,
                "stage": topics[slug].stage.value if slug in topics else "",
                "level": level.value,
                "learned": level in LEARNED,
                "evidence": _evidence_text(proof) if proof is not None and level != KnowledgeLevel.unknown else None,
            })
        result.append({
            "campaign": one.slug, "name": one.name, "topics": entries,
            "learned": [e["topic"] for e in entries if e["learned"]],
            "not_learned": [e["topic"] for e in entries if not e["learned"]],
        })
    return result


def _evidence_text(row: KnowledgeEvidence) -> str:
    text = f"{row.level.value} via {row.source}"
    if row.declared_by:
        text += f" by {row.declared_by}"
    if row.note:
        text += f" ({row.note})"
    return f"{text} on {row.at:%Y-%m-%d %H:%M} UTC"


def _history(session: Session, lead: Lead) -> tuple[list[dict[str, Any]], int, int]:
    """The newest HISTORY_LIMIT entries (bots excluded), the bot events left out, the entries cut."""
    story = lead_story(session, lead.email, limit=HISTORY_LIMIT, include_bots=False)
    history = [{"at": _iso(entry.at), "kind": entry.kind, "text": entry.text} for entry in story.entries]
    bots = session.scalar(select(func.count()).select_from(Event)
                          .where(Event.lead_id == lead.id, Event.suspected_bot.is_(True))) or 0
    return history, bots, story.omitted


def _score(session: Session, lead_id: int) -> dict[str, Any]:
    score = session.get(LeadScore, lead_id)
    if score is None:
        return {"available": False, "note": "no score has been computed for this lead yet",
                "fit": None, "engagement": None, "fit_breakdown": [], "engagement_breakdown": []}
    return {
        "available": True,
        "fit": round(float(score.fit), 1),
        "engagement": round(float(score.engagement), 1),
        "computed_at": _iso(score.computed_at),
        "fit_breakdown": [_point(item) for item in score.fit_breakdown or [] if not _bot_line(item)],
        "engagement_breakdown": [_point(item) for item in score.engagement_breakdown or [] if not _bot_line(item)],
    }


def _bot_line(item: Any) -> bool:
    """A zero-point "ignored, suspected bot" line of the scoring engine: noise for a rep."""
    if not isinstance(item, dict) or "suspected bot" not in str(item.get("reason") or ""):
        return False
    try:
        return float(item.get("points") or 0) == 0
    except (TypeError, ValueError):
        return False


def _point(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        return {"points": None, "reason": str(item), "line": str(item)}
    points = item.get("points")
    reason = str(item.get("reason") or "")
    number: float | None
    try:
        number = float(points)  # type: ignore[arg-type]  # None and text raise, as handled below
        line = f"{number:+g} {reason}".strip()
    except (TypeError, ValueError):
        number = None
        line = reason
    return {"points": number, "reason": reason, "at": item.get("at"), "event_id": item.get("event_id"), "line": line}
