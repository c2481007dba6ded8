"""One scheduler pass: choose the next step for every due enrollment and enqueue batch sends.

Safe to run twice for the same instant (``rq cron`` gives no distributed lock): a second pass
finds no due enrollment it can claim, and the unique (enrollment, step) constraint on
deliveries stops a duplicate even if two passes race.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ..engine.gaps import choose_next_step
from ..engine.plan import CampaignPlan
from ..engine.schedule import in_window, next_in_window, zone
from ..extensions import Services
from ..models import (
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Lead,
    StepSkip,
)
from .inflight import enqueue_send_job, requeue_lost
from .journal import SentJournal
from .plans import delivered_keys, knowledge_of, load_campaign, plan_of
from .sql import insert_ignoring_conflicts, skip_locked

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    due: int = 0
    queued: int = 0
    completed: int = 0
    exited: int = 0
    rescheduled: int = 0
    recovered_sent: int = 0
    recovered_requeued: int = 0
    jobs: list[str] = field(default_factory=list)
    enqueued_deliveries: int = 0
    #: queued deliveries whose send job Redis had lost (see inflight.py)
    requeued_lost: int = 0

    def summary(self) -> str:
        return (
            f"{self.due} due: {self.queued} queued, {self.rescheduled} moved to the send window, "
            f"{self.completed} completed, {self.exited} exited; {self.enqueued_deliveries} deliveries "
            f"in {len(self.jobs)} send job(s); recovered {self.recovered_sent} sent, "
            f"{self.recovered_requeued} requeued"
            + (f"; {self.requeued_lost} re-enqueued (their send job was lost in Redis)" if self.requeued_lost else "")
        )


def run_tick(svc: Services, now: datetime, enqueue: bool = True) -> TickReport:
    report = TickReport()
    _drain_tracking_events(svc)
    recover_stale_sends(svc, now, report)
    seen: set[int] = set()
    while True:
        with svc.db.session() as session:
            batch = _due_enrollments(session, now, svc.config.tick_batch_size)
            fresh = [e for e in batch if e.id not in seen]
            if not fresh:
                break
            seen.update(e.id for e in fresh)
            _process(session, svc, fresh, now, report)
    if enqueue:
        enqueue_queued_deliveries(svc, now, report)
    return report


def _drain_tracking_events(svc: Services) -> None:
    """Clicks buffered since the last drain count now: knowledge changes take effect at this choice."""
    from ..tracking.ingest import drain_events

    try:
        drain_events(svc, wait=5.0)
    except Exception:  # a failing drain must not stop sending; its hits stay buffered for the next
        log.exception("tracking drain failed at the start of the tick")


def _due_enrollments(session: Session, now: datetime, limit: int) -> list[Enrollment]:
    statement = (
        select(Enrollment)
        .where(Enrollment.state == EnrollmentState.active, Enrollment.next_send_at <= now)
        .order_by(Enrollment.next_send_at, Enrollment.id)
        .limit(limit)
    )
    return list(session.scalars(skip_locked(session, statement)))


def _process(session: Session, svc: Services, enrollments: list[Enrollment], now: datetime, report: TickReport) -> None:
    report.due += len(enrollments)
    leads = {
        lead.id: lead
        for lead in session.scalars(select(Lead).where(Lead.id.in_({e.lead_id for e in enrollments})))
    }
    knowledge = knowledge_of(session, leads)
    delivered = delivered_keys(session, [e.id for e in enrollments])
    plans: dict[int, CampaignPlan] = {}
    new_deliveries: list[dict] = []
    skips: list[dict] = []
    for enrollment in enrollments:
        lead = leads[enrollment.lead_id]
        if not lead.can_receive:
            _end(enrollment, EnrollmentState.exited, f"lead is {lead.status.value}", now)
            report.exited += 1
            continue
        if enrollment.campaign_id not in plans:
            plans[enrollment.campaign_id] = plan_of(load_campaign(session, enrollment.campaign_id))
        plan = plans[enrollment.campaign_id]
        tz = zone(lead.timezone, svc.config.default_timezone)
        if not in_window(now, tz, plan.window):
            enrollment.next_send_at = next_in_window(now, tz, plan.window)
            report.rescheduled += 1
            continue
        decision = choose_next_step(plan, knowledge.get(lead.id, {}), delivered.get(enrollment.id, set()),
                                    enrollment.touches_sent)
        for skip in decision.skipped:
            if skip.kind == "known":
                skips.append(dict(enrollment_id=enrollment.id, step_id=skip.step.id, reason=skip.reason, at=now))
        if decision.step is None:
            _end(enrollment, EnrollmentState.completed, decision.reason, now)
            report.completed += 1
            continue
        new_deliveries.append(dict(
            enrollment_id=enrollment.id, step_id=decision.step.id, lead_id=lead.id,
            status=DeliveryStatus.queued, scheduled_for=now, next_attempt_at=now, attempts=0,
        ))
        # None while the delivery is outstanding; the sender sets the next due time.
        enrollment.next_send_at = None
        report.queued += 1
    session.flush()
    if new_deliveries:
        session.execute(insert_ignoring_conflicts(session, Delivery, ["enrollment_id", "step_id"]), new_deliveries)
    if skips:
        session.execute(insert_ignoring_conflicts(session, StepSkip, ["enrollment_id", "step_id"]), skips)


def _end(enrollment: Enrollment, state: EnrollmentState, reason: str, now: datetime) -> None:
    enrollment.state = state
    enrollment.state_reason = reason
    enrollment.next_send_at = None
    enrollment.ended_at = now


def enqueue_queued_deliveries(svc: Services, now: datetime, report: TickReport) -> None:
    """Hand queued deliveries to workers in batches, once per lease (a lost job is re-enqueued)."""
    report.requeued_lost += requeue_lost(svc, now)

    lease_expired = now - timedelta(seconds=svc.config.send_lease_seconds)
    size = svc.config.send_batch_size
    while True:
        with svc.db.session() as session:
            statement = (
                select(Delivery.id)
                .where(
                    Delivery.status == DeliveryStatus.queued,
                    Delivery.next_attempt_at <= now,
                    or_(Delivery.enqueued_at.is_(None), Delivery.enqueued_at <= lease_expired),
                )
                .order_by(Delivery.id)
                .limit(size * 20)
            )
            ids = list(session.scalars(skip_locked(session, statement)))
            if not ids:
                return
            session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(enqueued_at=now))
        # Enqueued only after the commit: a worker must find the rows it is sent.
        for start in range(0, len(ids), size):
            chunk = ids[start:start + size]
            job = enqueue_send_job(svc, chunk)
            report.jobs.append(job.id)
            report.enqueued_deliveries += len(chunk)
        if len(ids) < size * 20:
            return


def recover_stale_sends(svc: Services, now: datetime, report: TickReport) -> None:
    """Deliveries claimed by a worker that died: sent if the journal says so, else queued again."""
    from .send import SendOutcome, load_items, record_outcomes

    stale_before = now - timedelta(seconds=svc.config.send_lease_seconds)
    journal = SentJournal(svc.redis)
    with svc.db.session() as session:
        stale = list(session.scalars(skip_locked(session, select(Delivery.id).where(
            Delivery.status == DeliveryStatus.sending, Delivery.claimed_at <= stale_before,
        ))))
        if not stale:
            return
        noted = journal.lookup(stale)
        outcomes = []
        for item in load_items(session, stale):
            if item.id in noted:
                sent_at, message_id = noted[item.id]
                outcomes.append(SendOutcome(item, "sent", sent_at=sent_at, message_id=message_id))
                report.recovered_sent += 1
            else:
                session.execute(update(Delivery).where(Delivery.id == item.id).values(
                    status=DeliveryStatus.queued, enqueued_at=None, next_attempt_at=now,
                    last_error="worker stopped before this email was sent; requeued"))
                report.recovered_requeued += 1
        record_outcomes(session, svc, outcomes, now)
    journal.forget(noted)
    log.warning("recovered %d sent and %d unsent deliveries from dead workers",
                report.recovered_sent, report.recovered_requeued)
