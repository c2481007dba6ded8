"""Apply what a mailbox reported back (bounce, complaint, reply) to the lead and its deliveries.

One entry point, :func:`apply_feedback`, shared by DSNs arriving by SMTP and by the ESP
webhook. It writes the lead's timeline event first, keyed by the report's ``uid``: the same
DSN or webhook item applied twice finds its event and changes nothing more.

- **hard bounce**: the address is suppressed (``hard_bounce``), the lead becomes ``bounced``,
  its enrollments exit, the delivery is ``bounced``;
- **complaint** (marked as spam): suppressed (``complaint``), the lead becomes
  ``unsubscribed``, its enrollments exit; the delivery stays ``sent`` (it was delivered);
- **soft bounce**: ``lead.soft_bounces`` + 1 and the delivery is queued again with backoff
  (its attempts kept); at ``SOFT_BOUNCE_LIMIT`` in a row the address is suppressed
  (``soft_bounces``) as for a hard bounce. The sender resets the count when it sends an email
  that never bounced (nurture/send.py);
- **delayed** (a relay's warning) and **reply**: recorded only.
"""
from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..addresses import address_key
from ..config import Config
from ..models import Delivery, DeliveryStatus, Enrollment, EnrollmentState, Event, EventKind, Lead, LeadStatus
from ..nurture.suppression import record_event, set_status, stop_mailing, suppress
from .verp import delivery_of_message_id

__all__ = ["APPLIED", "DUPLICATE", "SUPPRESSED_ADDRESS", "UNMATCHED", "Feedback", "FeedbackKind",
           "FeedbackPolicy", "apply_feedback", "uid_for"]

APPLIED = "applied"
DUPLICATE = "duplicate"
#: A hard bounce or complaint for an address that is no lead (yet): only the address is suppressed.
SUPPRESSED_ADDRESS = "suppressed_address"
UNMATCHED = "unmatched"


class FeedbackKind(enum.StrEnum):
    hard_bounce = "hard_bounce"
    soft_bounce = "soft_bounce"
    delayed = "delayed"
    complaint = "complaint"
    reply = "reply"


_EVENT_KIND = {
    FeedbackKind.hard_bounce: (EventKind.bounce, "hard"),
    FeedbackKind.soft_bounce: (EventKind.bounce, "soft"),
    FeedbackKind.delayed: (EventKind.bounce, "delayed"),
    FeedbackKind.complaint: (EventKind.complaint, None),
    FeedbackKind.reply: (EventKind.reply, None),
}


@dataclass(frozen=True)
class Feedback:
    """One report about one recipient, identified by delivery id, Message-ID or address."""

    kind: FeedbackKind
    #: Idempotency key (at most 64 characters), see :func:`uid_for`.
    uid: str
    #: dsn | webhook
    source: str
    delivery_id: int | None = None
    message_id: str | None = None
    email: str | None = None
    at: datetime | None = None
    #: Kept on the event: status code, diagnostic, reporting MTA, the ESP's event id …
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        text = self.detail.get("diagnostic") or self.detail.get("status") or ""
        return f"{self.kind.value.replace('_', ' ')}{': ' + str(text) if text else ''}"[:500]


@dataclass(frozen=True)
class FeedbackPolicy:
    #: SECRET_KEY, then SECRET_KEY_FALLBACKS: what our Message-IDs and VERP addresses verify with.
    secrets: tuple[bytes, ...]
    soft_bounce_limit: int = 3
    retry_backoff_seconds: int = 60

    @classmethod
    def of(cls, config: Config) -> FeedbackPolicy:
        from ..mail.ratelimit import deliverability_settings

        return cls(secrets_of(config), deliverability_settings(config).soft_bounce_limit,
                   config.retry_backoff_seconds)


def secrets_of(config: Config) -> tuple[bytes, ...]:
    keys = [config.secret_key, *getattr(config, "secret_key_fallbacks", ())]
    return tuple(dict.fromkeys(k.encode() for k in keys if k))


def uid_for(source: str, *parts: object) -> str:
    """A short, stable idempotency key: ``dsn:<hash>``, ``webhook:<hash>``."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{source}:{digest[:64 - len(source) - 1]}"


def apply_feedback(session: Session, feedback: Feedback, now: datetime, policy: FeedbackPolicy) -> str:
    """Apply one report; returns APPLIED, DUPLICATE, SUPPRESSED_ADDRESS or UNMATCHED."""
    # Earlier reports of a batch changed rows with bulk UPDATEs: read them afresh.
    session.flush()
    session.expire_all()
    delivery = _find_delivery(session, feedback, policy)
    lead = session.get(Lead, delivery.lead_id) if delivery is not None else None
    if lead is None and feedback.email:
        lead = session.scalar(select(Lead).where(Lead.email == address_key(feedback.email)))
    if lead is None:
        if feedback.email and feedback.kind in (FeedbackKind.hard_bounce, FeedbackKind.complaint):
            # Not a lead (yet): keep the address from ever being mailed once imported.
            suppress(session, feedback.email, now, reason=feedback.kind.value, source=feedback.source,
                     detail=feedback.reason)
            return SUPPRESSED_ADDRESS
        return UNMATCHED

    kind, bounce_type = _EVENT_KIND[feedback.kind]
    detail = {k: v for k, v in feedback.detail.items() if v is not None}
    detail["source"] = feedback.source
    if bounce_type:
        detail["type"] = bounce_type
    if feedback.email and address_key(feedback.email) != lead.email:
        detail["reported_email"] = feedback.email
    event_id = record_event(session, lead_id=lead.id, kind=kind, at=feedback.at or now, uid=feedback.uid,
                            delivery_id=delivery.id if delivery is not None else None, detail=detail)
    if event_id is None:
        return DUPLICATE

    if feedback.kind is FeedbackKind.hard_bounce:
        _suppress_lead(session, lead, delivery, now, "hard_bounce", feedback.source, feedback.reason, LeadStatus.bounced)
    elif feedback.kind is FeedbackKind.complaint:
        _suppress_lead(session, lead, None, now, "complaint", feedback.source, "complaint: marked as spam",
                       LeadStatus.unsubscribed)
    elif feedback.kind is FeedbackKind.soft_bounce:
        in_a_row = session.execute(
            update(Lead).where(Lead.id == lead.id).values(soft_bounces=Lead.soft_bounces + 1)
            .returning(Lead.soft_bounces).execution_options(synchronize_session=False)
        ).scalar_one()
        if in_a_row >= policy.soft_bounce_limit:
            reason = f"{in_a_row} soft bounces in a row; last: {feedback.reason}"
            _suppress_lead(session, lead, delivery, now, "soft_bounces", feedback.source, reason, LeadStatus.bounced)
            detail.update(soft_bounces=in_a_row, suppressed=True)
        else:
            detail.update(soft_bounces=in_a_row, retry=_retry(session, delivery, now, in_a_row, feedback, policy))
        session.execute(update(Event).where(Event.id == event_id).values(detail=detail)
                        .execution_options(synchronize_session=False))
    return APPLIED


def _find_delivery(session: Session, feedback: Feedback, policy: FeedbackPolicy) -> Delivery | None:
    if feedback.delivery_id is not None:
        delivery = session.get(Delivery, feedback.delivery_id)
        if delivery is not None:
            return delivery
    if feedback.message_id:
        delivery_id = delivery_of_message_id(feedback.message_id, policy.secrets)
        if delivery_id is not None:
            return session.get(Delivery, delivery_id)
    return None


def _suppress_lead(session: Session, lead: Lead, delivery: Delivery | None, now: datetime, reason: str, source: str,
                   why: str, status: LeadStatus) -> None:
    suppress(session, lead.email, now, reason=reason, source=source, detail=why)
    set_status(lead, status, now)
    stop_mailing(session, lead.id, now, why)
    if delivery is not None:
        _mark_bounced(session, delivery, why)


def _mark_bounced(session: Session, delivery: Delivery, why: str) -> None:
    # A delivery a worker holds right now (``sending``) is the sender's to record.
    session.execute(
        update(Delivery).where(Delivery.id == delivery.id, Delivery.status != DeliveryStatus.sending)
        .values(status=DeliveryStatus.bounced, last_error=why[:1000]).execution_options(synchronize_session=False)
    )


def _retry(session: Session, delivery: Delivery | None, now: datetime, in_a_row: int, feedback: Feedback,
           policy: FeedbackPolicy) -> str:
    """Queue a soft-bounced email again; says what was done, for the event's detail."""
    from ..nurture.send import backoff

    if delivery is None:
        return "no delivery identified"
    if delivery.status != DeliveryStatus.sent:
        return f"not retried: delivery is {delivery.status.value}"
    enrollment = session.get(Enrollment, delivery.enrollment_id)
    later = session.scalar(select(Delivery.id).where(Delivery.enrollment_id == delivery.enrollment_id,
                                                     Delivery.id > delivery.id).limit(1))
    if enrollment is None or enrollment.state != EnrollmentState.active or later is not None:
        why = "a later touch already went out" if later is not None else "the enrollment is no longer active"
        _mark_bounced(session, delivery, f"{feedback.reason} (not retried: {why})")
        return f"not retried: {why}"
    # The touch did not land: the retry is the outstanding delivery, and its send counts it again.
    retry_at = now + backoff(policy.retry_backoff_seconds, max(delivery.attempts, 1) + in_a_row)
    session.execute(
        update(Delivery).where(Delivery.id == delivery.id, Delivery.status == DeliveryStatus.sent)
        .values(status=DeliveryStatus.queued, enqueued_at=None, next_attempt_at=retry_at,
                last_error=feedback.reason[:1000])
        .execution_options(synchronize_session=False)
    )
    enrollment.next_send_at = None
    enrollment.touches_sent = max(enrollment.touches_sent - 1, 0)
    return f"queued again for {retry_at.isoformat()}"
