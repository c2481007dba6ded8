"""Send one batch of claimed deliveries over one SMTP connection and record every outcome.

Order of events for each email, and why:
1. claim (``queued → sending``, one UPDATE for the batch, committed): a second job or worker
   given the same ids finds nothing left to claim, so nothing is sent twice;
2. check the lead can still receive (an unsubscribe just now cancels an already queued email);
3. SMTP transaction; on acceptance, a note in the Redis journal before the next email;
4. outcomes written to the database in batches; journal notes dropped after the commit.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from ..engine.plan import SendWindow
from ..engine.schedule import next_in_window, zone
from ..extensions import Services
from ..mail.compose import Composer
from ..mail.mime import build_message
from ..mail.transport import PermanentFailure, SMTPSettings, SMTPTransport, TemporaryFailure
from ..models import (
    Campaign, Delivery, DeliveryStatus, Enrollment, EnrollmentState, Knowledge, KnowledgeEvidence,
    KnowledgeLevel, Lead, LeadStatus, Step,
)
from .journal import SentJournal
from .sql import insert_ignoring_conflicts

log = logging.getLogger(__name__)

FLUSH_EVERY = 250


@dataclass
class SendOutcome:
    delivery: Delivery
    #: sent | temporary | permanent | cancelled
    kind: str
    sent_at: datetime | None = None
    message_id: str | None = None
    error: str | None = None


@dataclass
class BatchReport:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0


def claim(session: Session, delivery_ids: list[int], now: datetime) -> list[int]:
    """Atomically move still-queued deliveries to ``sending``; returns the ids this caller owns."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(delivery_ids), Delivery.status == DeliveryStatus.queued)
        .values(status=DeliveryStatus.sending, claimed_at=now, attempts=Delivery.attempts + 1)
        .returning(Delivery.id)
    )
    return sorted(row[0] for row in result)


def send_batch(svc: Services, delivery_ids: list[int], composer: Composer | None = None) -> BatchReport:
    report = BatchReport()
    now = svc.clock.now()
    with svc.db.session() as session:
        claimed = claim(session, delivery_ids, now)
    report.claimed = len(claimed)
    if not claimed:
        return report
    composer = composer or default_composer(svc)
    journal = SentJournal(svc.redis)
    transport = SMTPTransport(SMTPSettings.from_url(svc.config.effective_smtp_url, timeout=svc.config.smtp_timeout))
    with svc.db.Session() as session:
        deliveries = _load(session, claimed)
        pending: list[SendOutcome] = []
        try:
            for index, delivery in enumerate(deliveries):
                outcome = _send_one(svc, composer, transport, journal, delivery)
                pending.append(outcome)
                if outcome.kind == "temporary" and outcome.error and outcome.error.startswith("connection:"):
                    # The server is unreachable: give the rest back for a later retry at once.
                    pending.extend(SendOutcome(d, "temporary", error=outcome.error) for d in deliveries[index + 1:])
                    break
                if len(pending) >= FLUSH_EVERY:
                    _flush(session, svc, journal, pending, report)
                    pending = []
        finally:
            transport.close()
            if pending:
                _flush(session, svc, journal, pending, report)
    return report


def _send_one(svc: Services, composer: Composer, transport: SMTPTransport, journal: SentJournal,
              delivery: Delivery) -> SendOutcome:
    lead = delivery.lead
    if not lead.can_receive:
        return SendOutcome(delivery, "cancelled", error=f"lead is {lead.status.value}")
    if delivery.enrollment.state != EnrollmentState.active:
        return SendOutcome(delivery, "cancelled", error=f"enrollment is {delivery.enrollment.state.value}")
    now = svc.clock.now()
    try:
        email = composer.compose(delivery, lead, delivery.step, delivery.step.campaign, now)
        data = build_message(email)
    except Exception as exc:  # a template error is permanent for this email; record it, never drop it
        log.exception("cannot render delivery %s", delivery.id)
        return SendOutcome(delivery, "permanent", error=f"render: {type(exc).__name__}: {exc}"[:1000])
    envelope_from = email.return_path or email.from_addr
    try:
        transport.send(envelope_from, lead.email, data)
    except TemporaryFailure as exc:
        prefix = "connection: " if exc.code is None else f"{exc.code} "
        return SendOutcome(delivery, "temporary", error=f"{prefix}{exc.reply}"[:1000])
    except PermanentFailure as exc:
        return SendOutcome(delivery, "permanent", error=f"{exc.code} {exc.reply}"[:1000])
    sent_at = svc.clock.now()
    journal.mark(delivery.id, email.message_id, sent_at)
    return SendOutcome(delivery, "sent", sent_at=sent_at, message_id=email.message_id)


def _load(session: Session, ids: list[int]) -> list[Delivery]:
    return list(session.scalars(
        select(Delivery).where(Delivery.id.in_(ids)).order_by(Delivery.id).options(
            selectinload(Delivery.lead),
            selectinload(Delivery.enrollment),
            selectinload(Delivery.step).selectinload(Step.links),
            selectinload(Delivery.step).selectinload(Step.campaign),
        )
    ))


def _flush(session: Session, svc: Services, journal: SentJournal, outcomes: list[SendOutcome], report: BatchReport) -> None:
    record_outcomes(session, svc, outcomes, svc.clock.now(), report)
    session.commit()
    journal.forget(o.delivery.id for o in outcomes if o.kind == "sent")


def record_outcomes(session: Session, svc: Services, outcomes: list[SendOutcome], now: datetime,
                    report: BatchReport | None = None) -> None:
    """Write what happened to each email: the ledger, the enrollment's next touch, knowledge."""
    report = report or BatchReport()
    exposures: list[dict] = []
    for outcome in outcomes:
        delivery = outcome.delivery
        enrollment = delivery.enrollment
        if outcome.kind == "sent":
            _mark_sent(svc, delivery, enrollment, outcome)
            for topic in delivery.step.teaches:
                exposures.append(dict(lead_id=delivery.lead_id, topic=topic, level=KnowledgeLevel.exposed,
                                      updated_at=outcome.sent_at, _delivery=delivery.id))
            report.sent += 1
        elif outcome.kind == "temporary":
            delivery.last_error = outcome.error
            if delivery.attempts >= svc.config.smtp_max_attempts:
                delivery.status = DeliveryStatus.failed
                _pause(enrollment, f"delivery failed after {delivery.attempts} attempts: {outcome.error}", now)
                report.failed += 1
            else:
                delivery.status = DeliveryStatus.queued
                delivery.enqueued_at = None
                delivery.next_attempt_at = now + backoff(svc.config.retry_backoff_seconds, delivery.attempts)
                report.retrying += 1
        elif outcome.kind == "permanent":
            delivery.status = DeliveryStatus.failed
            delivery.last_error = outcome.error
            if enrollment.state == EnrollmentState.active:
                enrollment.state = EnrollmentState.exited
                enrollment.state_reason = f"permanent delivery failure: {outcome.error}"[:500]
                enrollment.next_send_at = None
                enrollment.ended_at = now
            report.failed += 1
        elif outcome.kind == "cancelled":
            delivery.status = DeliveryStatus.cancelled
            delivery.last_error = outcome.error
            if enrollment.state == EnrollmentState.active:
                enrollment.state = EnrollmentState.exited
                enrollment.state_reason = outcome.error
                enrollment.next_send_at = None
                enrollment.ended_at = now
            report.cancelled += 1
    session.flush()
    if exposures:
        _expose(session, exposures)


def _mark_sent(svc: Services, delivery: Delivery, enrollment: Enrollment, outcome: SendOutcome) -> None:
    delivery.status = DeliveryStatus.sent
    delivery.sent_at = outcome.sent_at
    delivery.message_id = outcome.message_id
    delivery.last_error = None
    enrollment.touches_sent += 1
    enrollment.last_sent_at = outcome.sent_at
    lead = delivery.lead
    if lead.status in (LeadStatus.new, LeadStatus.recycled):
        lead.status = LeadStatus.nurturing
    if enrollment.state == EnrollmentState.active:
        campaign: Campaign = delivery.step.campaign
        # Spaced from when the touch was due or went out, whichever is later.
        base = max(delivery.scheduled_for, outcome.sent_at)
        window = SendWindow(
            start=_minute_time(campaign.window_start_minute), end=_minute_time(campaign.window_end_minute),
            weekdays_only=campaign.weekdays_only,
        )
        enrollment.next_send_at = next_in_window(
            base + timedelta(seconds=campaign.cadence_seconds),
            zone(lead.timezone, svc.config.default_timezone), window,
        )


def _expose(session: Session, exposures: list[dict]) -> None:
    """Unknown topics of delivered steps become ``exposed``, with the delivery as evidence."""
    rows = [{k: v for k, v in e.items() if not k.startswith("_")} for e in exposures]
    delivery_of = {(e["lead_id"], e["topic"]): e["_delivery"] for e in exposures}
    statement = insert_ignoring_conflicts(session, Knowledge, ["lead_id", "topic"]).returning(
        Knowledge.lead_id, Knowledge.topic, Knowledge.updated_at
    )
    inserted = _insert_many(session, statement, rows)
    evidence = [
        dict(lead_id=lead_id, topic=topic, level=KnowledgeLevel.exposed, source="delivery",
             delivery_id=delivery_of[(lead_id, topic)], at=at)
        for lead_id, topic, at in inserted
    ]
    if evidence:
        session.execute(KnowledgeEvidence.__table__.insert(), evidence)


def _insert_many(session: Session, statement, rows: list[dict]):
    # executemany with RETURNING ("insertmanyvalues") is supported on SQLite and PostgreSQL.
    seen: set[tuple[int, str]] = set()
    unique_rows = []
    for row in rows:
        key = (row["lead_id"], row["topic"])
        if key not in seen:
            seen.add(key)
            unique_rows.append(row)
    return session.execute(statement, unique_rows).all()


def _pause(enrollment: Enrollment, reason: str, now: datetime) -> None:
    if enrollment.state == EnrollmentState.active:
        enrollment.state = EnrollmentState.paused
        enrollment.state_reason = reason[:500]
        enrollment.next_send_at = None


def _minute_time(minutes: int):
    from datetime import time

    return time(minutes // 60, minutes % 60)


def backoff(base_seconds: int, attempts: int) -> timedelta:
    """1, 5, 25, … × base, capped at six hours: soft failures get room to clear."""
    return timedelta(seconds=min(base_seconds * 5 ** max(attempts - 1, 0), 6 * 3600))


def default_composer(svc: Services) -> Composer:
    from ..tracking.urls import TrackingUrls

    urls = TrackingUrls(svc.config)
    return Composer(svc.config, svc.renderer, link_url=urls.link, unsubscribe_url=urls.unsubscribe,
                    extra_headers=urls.list_unsubscribe_headers)
