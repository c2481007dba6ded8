"""One scheduler pass: choose the next step for every due enrollment and enqueue batch sends.

Safe to run twice for the same instant (``rq cron`` gives no distributed lock): a second pass
finds no due enrollment it can claim, and the unique (enrollment, step) constraint on
deliveries stops a duplicate even if two passes race.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Row, bindparam, or_, select, update
from sqlalchemy.orm import Session

from ..engine.gaps import Decision, choose_next_step
from ..engine.plan import CampaignPlan
from ..engine.schedule import in_window, next_in_window, zone
from ..extensions import Services
from ..models import (
    NO_SEND_STATUSES,
    Campaign,
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
from .sql import among, insert_rows_ignoring_conflicts, skip_locked

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
    plans: dict[int, CampaignPlan] = {}
    seen: set[int] = set()
    while True:
        with svc.db.session() as session:
            batch = _due_enrollments(session, now, svc.config.tick_batch_size)
            fresh = [e for e in batch if e.id not in seen]
            if not fresh:
                break
            seen.update(e.id for e in fresh)
            _process(session, svc, fresh, now, report, plans)
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


def _due_enrollments(session: Session, now: datetime, limit: int) -> list[Row]:
    """Due, active enrollments in (next_send_at, id) order: ``ix_enrollment_due`` serves it without a sort."""
    statement = (
        select(Enrollment.id, Enrollment.lead_id, Enrollment.campaign_id, Enrollment.touches_sent)
        .where(Enrollment.state == EnrollmentState.active, Enrollment.next_send_at <= now,
               # A paused campaign (campaigns/control.py) queues nothing; its enrollments wait.
               Enrollment.campaign_id.not_in(select(Campaign.id).where(Campaign.active.is_(False))))
        .order_by(Enrollment.next_send_at, Enrollment.id)
        .limit(limit)
    )
    return list(session.execute(skip_locked(session, statement)))


_ENROLLMENT = Enrollment.__table__
_END = (
    update(_ENROLLMENT).where(_ENROLLMENT.c.id == bindparam("enrollment_id"))
    .values(state=bindparam("state"), state_reason=bindparam("reason"), next_send_at=None,
            ended_at=bindparam("ended_at"))
)
_RESCHEDULE = (
    update(_ENROLLMENT).where(_ENROLLMENT.c.id == bindparam("enrollment_id"))
    .values(next_send_at=bindparam("due_at"))
)


def _process(session: Session, svc: Services, enrollments: list[Row], now: datetime, report: TickReport,
             plans: dict[int, CampaignPlan]) -> None:
    """Choose each enrollment's next step; write the choices as a few set-based statements."""
    report.due += len(enrollments)
    leads = {
        row.id: row for row in session.execute(
            select(Lead.id, Lead.consent, Lead.status, Lead.timezone)
            .where(among(session, Lead.id, {e.lead_id for e in enrollments})))
    }
    knowledge = knowledge_of(session, leads)
    delivered = delivered_keys(session, [e.id for e in enrollments])
    new_deliveries: list[dict] = []
    skips: list[dict] = []
    ended: list[dict] = []
    rescheduled: list[dict] = []
    queued: list[int] = []
    zones: dict[str | None, ZoneInfo] = {}
    decisions: dict[tuple, Decision] = {}
    for enrollment in enrollments:
        lead = leads[enrollment.lead_id]
        if not lead.consent or lead.status in NO_SEND_STATUSES:
            ended.append(dict(enrollment_id=enrollment.id, state=EnrollmentState.exited,
                              reason=f"lead is {lead.status.value}", ended_at=now))
            report.exited += 1
            continue
        if enrollment.campaign_id not in plans:
            plans[enrollment.campaign_id] = plan_of(load_campaign(session, enrollment.campaign_id))
        plan = plans[enrollment.campaign_id]
        if lead.timezone not in zones:
            zones[lead.timezone] = zone(lead.timezone, svc.config.default_timezone)
        tz = zones[lead.timezone]
        if not in_window(now, tz, plan.window):
            rescheduled.append(dict(enrollment_id=enrollment.id, due_at=next_in_window(now, tz, plan.window)))
            report.rescheduled += 1
            continue
        known = knowledge.get(lead.id, {})
        done = delivered.get(enrollment.id, set())
        # Leads enrolled together mostly share their inputs: the engine is a pure function of them.
        key = (enrollment.campaign_id, frozenset(known.items()), frozenset(done), enrollment.touches_sent)
        decision = decisions.get(key)
        if decision is None:
            decision = decisions[key] = choose_next_step(plan, known, done, enrollment.touches_sent)
        for skip in decision.skipped:
            if skip.kind == "known":
                skips.append(dict(enrollment_id=enrollment.id, step_id=skip.step.id, reason=skip.reason, at=now))
        if decision.step is None:
            ended.append(dict(enrollment_id=enrollment.id, state=EnrollmentState.completed,
                              reason=decision.reason, ended_at=now))
            report.completed += 1
            continue
        new_deliveries.append(dict(
            enrollment_id=enrollment.id, step_id=decision.step.id, lead_id=lead.id,
            status=DeliveryStatus.queued, scheduled_for=now, next_attempt_at=now, attempts=0,
        ))
        queued.append(enrollment.id)
        report.queued += 1
    if queued:
        # None while the delivery is outstanding; the sender sets the next due time.
        session.execute(update(_ENROLLMENT).where(among(session, _ENROLLMENT.c.id, queued)).values(next_send_at=None))
    if ended:
        session.execute(_END, ended)
    if rescheduled:
        session.execute(_RESCHEDULE, rescheduled)
    if new_deliveries:
        insert_rows_ignoring_conflicts(session, Delivery.__table__, new_deliveries, ["enrollment_id", "step_id"])
    if skips:
        insert_rows_ignoring_conflicts(session, StepSkip.__table__, skips, ["enrollment_id", "step_id"])


def enqueue_queued_deliveries(svc: Services, now: datetime, report: TickReport) -> None:
    """Hand queued deliveries to workers in batches, once per lease (a lost job is re-enqueued)."""
    report.requeued_lost += requeue_lost(svc, now)

    lease_expired = now - timedelta(seconds=svc.config.send_lease_seconds)
    size = svc.config.send_batch_size
    after = 0  # keyset: each pass reads on from the last id, never the rows already handed out
    while True:
        with svc.db.session() as session:
            statement = (
                select(Delivery.id)
                .where(
                    Delivery.id > after,
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
            after = ids[-1]
            session.execute(update(Delivery).where(among(session, Delivery.id, ids)).values(enqueued_at=now)
                            .execution_options(synchronize_session=False))
            # Enqueued only after the commit: a worker must find the rows it is sent.
            for start in range(0, len(ids), size):
                chunk = ids[start:start + size]
                report.jobs.append(enqueue_send_job(session, svc, chunk))
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
