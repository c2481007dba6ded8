"""Put a lead into a campaign, declaring what the prospect already knows."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..engine.schedule import next_in_window, zone
from ..exceptions import InvalidInput, NotFound
from ..models import (
    ALL_EMAIL,
    NO_SEND_STATUSES,
    Campaign,
    Enrollment,
    EnrollmentState,
    KnowledgeLevel,
    Lead,
    LeadStatus,
    Topic,
)
from .first_touch import schedule_first_touch
from .knowledge import raise_knowledge
from .plans import plan_of
from .suppression import blocking_suppression

#: Statuses that mean sales holds the lead: nurture resumes only when sales says so (``override``).
SALES_HELD_STATUSES = frozenset({LeadStatus.handed_off, LeadStatus.accepted, LeadStatus.won, LeadStatus.lost})


class EnrollmentRefused(InvalidInput):
    """This lead must not be (re-)enrolled; ``reason`` says why in words."""

    def __init__(self, email: str, reason: str) -> None:
        super().__init__(f"lead {email} cannot be enrolled: {reason}", field="email")
        self.reason = reason


class LeadState(Protocol):
    """What decides whether a lead may be nurtured: a ``Lead``, or a row of those columns."""

    @property
    def erased_at(self) -> datetime | None: ...
    @property
    def hygiene(self) -> list[str]: ...
    @property
    def status(self) -> LeadStatus: ...
    @property
    def consent(self) -> bool: ...


def enrollment_blocker(lead: LeadState) -> str | None:
    """Why this lead must not be (re-)enrolled in nurture, or None.

    Erased leads, hygiene-flagged leads, leads sales holds (handed off, accepted, won, lost) and
    leads that must get no email (unsubscribed, bounced, disqualified, no consent).
    """
    return _blocker(lead, sales_held_ok=False)


def _blocker(lead: LeadState, sales_held_ok: bool) -> str | None:
    if lead.erased_at is not None:
        return "its personal data was erased"
    if lead.hygiene:
        return f"it failed hygiene ({', '.join(lead.hygiene)})"
    if lead.status in SALES_HELD_STATUSES and not sales_held_ok:
        return f"it is {lead.status.value} (with sales); sales sends it back to nurture"
    if lead.status in NO_SEND_STATUSES:
        return f"it is {lead.status.value} and cannot be nurtured"
    if not lead.consent:
        return "it has not consented to email"
    return None


def find_campaign(session: Session, slug: str) -> Campaign:
    campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
    if campaign is None:
        known = ", ".join(session.scalars(select(Campaign.slug).order_by(Campaign.slug))) or "none"
        raise NotFound(f"no campaign '{slug}' (campaigns: {known}); run sync-campaigns first?")
    return campaign


def find_lead(session: Session, email: str) -> Lead:
    lead = session.scalar(select(Lead).where(Lead.email == email.strip().lower()))
    if lead is None:
        raise NotFound(f"no lead with email {email!r}")
    return lead


def enroll(
    session: Session,
    lead: Lead,
    campaign: Campaign,
    now: datetime,
    *,
    knows: Iterable[str] = (),
    declared_by: str | None = None,
    source: str = "sales",
    default_timezone: str = "UTC",
    override: bool = False,
) -> Enrollment:
    """Enroll (or re-activate) a lead; declared topics become ``known`` before the first choice.

    Raises :class:`EnrollmentRefused` (before writing anything) when :func:`enrollment_blocker`
    names a reason. ``override=True`` (sales sending a lead back to nurture) lifts only the
    sales-held statuses; erased, hygiene-flagged and no-send leads are always refused.
    """
    blocker = _blocker(lead, sales_held_ok=override)
    if blocker is not None:
        raise EnrollmentRefused(lead.email, blocker)
    knows = list(dict.fromkeys(t.strip() for t in knows if t.strip()))
    if knows:
        existing = set(session.scalars(select(Topic.slug).where(Topic.slug.in_(knows))))
        unknown = [t for t in knows if t not in existing]
        if unknown:
            raise InvalidInput(f"unknown topic(s): {', '.join(unknown)}", field="knows")
        raise_knowledge(session, lead.id, knows, KnowledgeLevel.known, source, now,
                        declared_by=declared_by, note=f"declared at enrollment in {campaign.slug}")
    blocked = blocking_suppression(session, lead.email, campaign.slug)
    if blocked is not None:
        what = "all email" if blocked.scope == ALL_EMAIL else f"campaign {blocked.scope}"
        raise InvalidInput(f"{lead.email} is suppressed for {what} ({blocked.reason.replace('_', ' ')}, "
                           f"{blocked.source}, {blocked.created_at:%Y-%m-%d}) and cannot be enrolled", field="email")
    enrollment = session.scalar(
        select(Enrollment).where(Enrollment.lead_id == lead.id, Enrollment.campaign_id == campaign.id)
    )
    plan = plan_of(campaign)
    first_send = next_in_window(now, zone(lead.timezone, default_timezone), plan.window)
    if enrollment is None:
        enrollment = Enrollment(
            lead_id=lead.id, campaign_id=campaign.id, state=EnrollmentState.active,
            next_send_at=first_send, enrolled_at=now, enrolled_by=declared_by, touches_sent=0,
        )
        session.add(enrollment)
    elif enrollment.state != EnrollmentState.active:
        enrollment.state = EnrollmentState.active
        enrollment.state_reason = None
        enrollment.ended_at = None
        enrollment.next_send_at = first_send
    if lead.status in (LeadStatus.new, LeadStatus.recycled) or (override and lead.status in SALES_HELD_STATUSES):
        lead.status = LeadStatus.nurturing
        lead.updated_at = now
    session.flush()
    if enrollment.next_send_at is not None and enrollment.next_send_at <= now:
        # The send window is open: the first email goes once this transaction commits.
        schedule_first_touch(session, [enrollment.id])
    return enrollment
