"""Journey preview for one lead in one campaign, from the database, sending nothing."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..engine.journey import preview_journey
from ..engine.schedule import zone
from ..extensions import Services
from ..models import Enrollment, EnrollmentState
from .enroll import find_campaign, find_lead
from .plans import delivered_keys, knowledge_of, load_campaign, plan_of


@dataclass(frozen=True)
class TouchView:
    step_key: str
    subject: str
    send_at: datetime
    local_time: str
    reason: str


@dataclass(frozen=True)
class SkipView:
    step_key: str
    reason: str


@dataclass(frozen=True)
class JourneyPreview:
    lead_email: str
    campaign_slug: str
    state: str
    timezone: str
    touches_sent: int
    knowledge: dict[str, str]
    touches: tuple[TouchView, ...]
    skipped: tuple[SkipView, ...]
    outcome: str


def journey_for(session: Session, svc: Services, email: str, campaign_slug: str) -> JourneyPreview:
    lead = find_lead(session, email)
    campaign = load_campaign(session, find_campaign(session, campaign_slug).id)
    plan = plan_of(campaign)
    enrollment = session.scalar(
        select(Enrollment).where(Enrollment.lead_id == lead.id, Enrollment.campaign_id == campaign.id)
    )
    now = svc.clock.now()
    knowledge = knowledge_of(session, [lead.id]).get(lead.id, {})
    delivered = delivered_keys(session, [enrollment.id]).get(enrollment.id, set()) if enrollment else set()
    touches_sent = enrollment.touches_sent if enrollment else 0
    state = enrollment.state.value if enrollment else "not enrolled"
    start = (enrollment.next_send_at if enrollment and enrollment.next_send_at else None) or now
    tz = zone(lead.timezone, svc.config.default_timezone)
    subjects = {s.key: s.subject for s in campaign.steps}
    touches: tuple[TouchView, ...]
    skipped: tuple[SkipView, ...]
    if enrollment is not None and enrollment.state not in (EnrollmentState.active,):
        touches, skipped, outcome = (), (), f"enrollment is {state}" + (
            f": {enrollment.state_reason}" if enrollment.state_reason else "")
    else:
        journey = preview_journey(plan, knowledge, delivered, touches_sent, max(start, now), tz)
        touches = tuple(
            TouchView(t.step_key, subjects.get(t.step_key, ""), t.send_at,
                      t.send_at.astimezone(tz).strftime("%a %d %b %H:%M %Z"), t.reason)
            for t in journey.touches
        )
        skipped = tuple(SkipView(s.step.key, s.reason) for s in journey.skipped)
        outcome = journey.outcome
    return JourneyPreview(
        lead_email=lead.email, campaign_slug=campaign.slug, state=state, timezone=tz.key,
        touches_sent=touches_sent, knowledge={t: lvl.name for t, lvl in knowledge.items()},
        touches=touches, skipped=skipped, outcome=outcome,
    )
