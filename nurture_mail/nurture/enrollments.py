"""The enrollment state machine: enroll, pause, resume, exit, and nothing else changes the state by hand.

::

    (none) --enroll--> active --pause--> paused --resume--> active
    active | paused --exit--> exited            (queued deliveries are cancelled)
    exited | completed --enroll--> active       (re-activation: delivered steps stay delivered)

The tick moves ``active`` to ``completed`` or ``exited`` when a journey ends; unsubscribes,
bounces, a handoff to sales and an erasure exit through :func:`~.suppression.stop_mailing`,
the same path as :func:`exit_enrollment`. A refused transition raises :class:`EnrollmentError`
naming the field; ``conflict`` is True when the enrollment's or the lead's state forbids it.
None of these commits: the caller's session does.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..exceptions import InvalidInput, NotFound
from ..models import Campaign, Enrollment, EnrollmentState, Lead
from .enroll import EnrollmentRefused, enrollment_blocker, find_campaign, find_lead
from .enroll import enroll as _enroll
from .suppression import stop_mailing

__all__ = ["EnrollmentError", "EnrollmentRefused", "enroll", "enrollment_blocker", "exit_enrollment",
           "ResumeRefused", "find_campaign", "find_enrollment", "find_lead", "pause", "resume"]

ENDED = (EnrollmentState.exited, EnrollmentState.completed)


class EnrollmentError(InvalidInput):
    """A transition that cannot be made; ``field`` names the input at fault, ``message`` says why.

    ``conflict``: the enrollment's or the lead's state forbids it (as opposed to a bad value).
    """

    def __init__(self, message: str, field: str | None, *, conflict: bool = True) -> None:
        super().__init__(message, field=field)
        self.message = message
        self.conflict = conflict


class ResumeRefused(EnrollmentError):
    """A paused enrollment whose lead may no longer be mailed (suppressed, flagged, with sales, …)."""


def find_enrollment(session: Session, *, enrollment_id: int | None = None, email: str | None = None,
                    campaign: str | None = None) -> Enrollment:
    """The enrollment by id, or by the lead's email and the campaign's slug (``NotFound`` otherwise)."""
    if enrollment_id is not None:
        enrollment = session.get(Enrollment, enrollment_id)
        if enrollment is None:
            raise NotFound(f"no enrollment with id {enrollment_id}")
        return enrollment
    if not email or not campaign:
        raise InvalidInput("give an enrollment id, or a lead's email and a campaign", field="enrollment")
    lead = find_lead(session, email)
    found = find_campaign(session, campaign)
    enrollment = session.scalar(select(Enrollment).where(Enrollment.lead_id == lead.id,
                                                         Enrollment.campaign_id == found.id))
    if enrollment is None:
        raise NotFound(f"{lead.email} is not enrolled in {found.slug}")
    return enrollment


def enroll(session: Session, lead: Lead, campaign: Campaign, now: datetime, *, by: str | None,
           knows: Iterable[str] = (), source: str = "sales", default_timezone: str = "UTC",
           override: bool = False) -> Enrollment:
    """Enroll (or re-activate) ``lead`` in ``campaign``; ``knows`` topics become known (their steps skipped).

    Refused (:class:`EnrollmentRefused`, a conflict) for an erased, hygiene-flagged, no-send or
    sales-held lead (``override`` lifts the sales hold only) or a suppressed address; an unknown
    topic is an ``InvalidInput`` on ``knows``.
    """
    return _enroll(session, lead, campaign, now, knows=knows, declared_by=by, source=source,
                   default_timezone=default_timezone, override=override)


def pause(session: Session, enrollment: Enrollment, now: datetime, *, by: str, reason: str | None = None) -> Enrollment:
    """Stop sending until resumed; only an active enrollment can be paused."""
    del now  # a pause has no timestamp column; kept for the uniform signature
    if enrollment.state != EnrollmentState.active:
        raise EnrollmentError(f"only an active enrollment can be paused (this one is {enrollment.state.value})",
                              "state")
    enrollment.state = EnrollmentState.paused
    enrollment.next_send_at = None
    enrollment.state_reason = (reason or f"paused by {by}")[:500]
    session.flush()
    return enrollment


def resume(session: Session, enrollment: Enrollment, now: datetime, *, by: str, default_timezone: str = "UTC",
           source: str = "api") -> Enrollment:
    """Send again from where it stopped, at the next slot of the send window; only a paused one.

    Suppression, hygiene and the lead's status are checked again, as at enrollment.
    """
    if enrollment.state != EnrollmentState.paused:
        raise EnrollmentError(f"only a paused enrollment can be resumed (this one is {enrollment.state.value})",
                              "state")
    lead = enrollment.lead
    campaign = session.get_one(Campaign, enrollment.campaign_id)
    try:
        return _enroll(session, lead, campaign, now, declared_by=by, source=source,
                       default_timezone=default_timezone)
    except EnrollmentRefused as error:
        raise ResumeRefused(f"this enrollment cannot be resumed: {error.reason}", "lead_id") from None


def exit_enrollment(session: Session, enrollment: Enrollment, now: datetime, *, by: str,
                    reason: str | None = None) -> Enrollment:
    """End the enrollment for good and cancel its queued deliveries (enrolling again re-activates it).

    The same path as an unsubscribe or a handoff (``stop_mailing``), for this campaign only.
    """
    if enrollment.state in ENDED:
        raise EnrollmentError(f"the enrollment has already ended ({enrollment.state.value})", "state")
    stop_mailing(session, enrollment.lead_id, now, reason or f"exited by {by}", campaign_id=enrollment.campaign_id)
    session.refresh(enrollment)
    return enrollment
