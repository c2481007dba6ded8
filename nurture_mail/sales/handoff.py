"""Start a handoff: stop nurturing, route to a rep, build the dossier, notify after commit.

Called by the scoring side in the worker, right after tracking events are drained, with a
:class:`~nurture_mail.sales.decision.HandoffDecision`. It runs inside the caller's
transaction; the notification and webhook jobs are enqueued only once that transaction
commits (a rolled-back handoff notifies nobody, and a job never runs before its rows exist).

Two workers handing off the same lead at once: the lead row is locked (a no-op ``UPDATE`` then
``SELECT … FOR UPDATE``; on SQLite the UPDATE takes the one write lock) before the "already has
an open handoff" check, so the second waits, then finds the first handoff and declines. The incoming reps are
locked the same way while one is picked, so concurrent handoffs rotate fairly.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..aftercommit import enqueue_after_commit
from ..engine.routing import (
    RepCandidate,
    TerritoryRule,
    add_business_hours,
    match_territory,
    parse_hhmm,
    pick_incoming,
)
from ..models import (
    Handoff,
    HandoffAssignment,
    HandoffState,
    Lead,
    LeadStatus,
    SalesRep,
    Territory,
)
from ..nurture.suppression import stop_mailing
from .decision import HandoffDecision
from .destinations import destination as named_destination
from .destinations import prepare_notices
from .dossier import build_dossier

if TYPE_CHECKING:
    from ..config import Config
    from ..extensions import Services

__all__ = ["NOTIFY_JOB", "OPEN_STATES", "Route", "after_commit", "decline_reason", "route_lead", "sla_due", "start_handoff"]

log = logging.getLogger(__name__)

#: A lead with a handoff in one of these states is with sales: no second handoff.
OPEN_STATES = (HandoffState.notified, HandoffState.accepted)
DECLINED_STATUSES = {
    LeadStatus.unsubscribed: "unsubscribed",
    LeadStatus.bounced: "bounced",
    LeadStatus.disqualified: "disqualified",
    LeadStatus.won: "already a customer (won)",
}
#: The smallest step that keeps assignment times strictly increasing (what every backend stores).
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Route:
    rep: SalesRep | None
    #: incoming | territory | escalation (the manager, when no closer or owner is available)
    role: str
    why: str


def decline_reason(session: Session, lead: Lead) -> str | None:
    """Why this lead must not be handed off now, or None."""
    if lead.erased_at is not None:
        return "its personal data was erased"
    if lead.hygiene:
        return f"it failed hygiene ({', '.join(lead.hygiene)})"
    if lead.status in DECLINED_STATUSES:
        return f"it is {DECLINED_STATUSES[lead.status]}"
    open_id = session.scalar(select(Handoff.id).where(Handoff.lead_id == lead.id, Handoff.state.in_(OPEN_STATES)))
    if open_id is not None:
        return f"it already has an open handoff #{open_id}"
    return None


def sla_due(config: "Config", start: datetime) -> datetime:
    return add_business_hours(start, config.handoff_sla_hours, config.sales_timezone,
                              parse_hhmm(config.sales_day_start, "SALES_DAY_START"),
                              parse_hhmm(config.sales_day_end, "SALES_DAY_END"))


def territory_owner(session: Session, lead: Lead, available_only: bool = False,
                    now: datetime | None = None) -> tuple[SalesRep, str] | None:
    """The owner of the most specific territory covering the lead, with the territory's name.

    ``available_only``: skip owners unavailable in the team file, or marked away at ``now``."""
    territories = list(session.scalars(select(Territory).order_by(Territory.id)))
    rules = [TerritoryRule(t.id, t.name, t.owner_id, t.region, t.industry) for t in territories
             if not available_only or t.owner.routable(now)]
    match = match_territory(rules, lead.region, (lead.industry_sic, lead.industry_naics))
    if match is None:
        return None
    return session.get_one(SalesRep, match.owner_id), match.name


def route_lead(session: Session, lead: Lead, now: datetime | None = None) -> Route:
    """Incoming closer (least recently assigned, available) → territory owner → a manager.

    A rep marked away until after ``now`` is skipped at every level."""
    reps = list(session.scalars(
        select(SalesRep).where(SalesRep.incoming.is_(True), SalesRep.available.is_(True))
        .order_by(SalesRep.id).with_for_update()
    ))
    picked = pick_incoming(RepCandidate(r.id, r.routable(now), r.incoming, r.last_assigned_at) for r in reps)
    if picked is not None:
        return Route(next(r for r in reps if r.id == picked.id), "incoming", "least recently assigned closer")
    owner = territory_owner(session, lead, available_only=True, now=now)
    if owner is not None:
        return Route(owner[0], "territory", f"no closer available; owner of territory {owner[1]!r}")
    managers = list(session.scalars(
        select(SalesRep).where(SalesRep.available.is_(True),
                               SalesRep.id.in_(select(SalesRep.manager_id).where(SalesRep.manager_id.is_not(None))))
        .order_by(SalesRep.id).with_for_update()
    ))
    manager = pick_incoming(RepCandidate(m.id, m.routable(now), True, m.last_assigned_at) for m in managers)
    if manager is not None:
        return Route(next(m for m in managers if m.id == manager.id), "escalation",
                     "no closer or territory owner available; a manager")
    return Route(None, "", "nobody in the sales team is available")


def start_handoff(svc: "Services", session: Session, decision: HandoffDecision, now: datetime) -> Handoff | None:
    """Hand the lead to sales, or decline (None, logged); safe to call again for the same lead."""
    # Lock the lead before looking for an open handoff. PostgreSQL: FOR UPDATE. SQLite runs reads
    # outside a transaction, so a no-op UPDATE first takes the database's write lock (a second
    # worker waits here, then sees the first one's handoff).
    session.execute(update(Lead).where(Lead.id == decision.lead_id).values(updated_at=Lead.updated_at))
    lead = session.scalar(select(Lead).where(Lead.id == decision.lead_id).with_for_update())
    if lead is None:
        log.warning("handoff declined: lead %s does not exist", decision.lead_id)
        return None
    why = decline_reason(session, lead)
    if why is not None:
        log.info("handoff of lead %s (%s) declined: %s", lead.id, lead.email, why)
        return None
    stop_mailing(session, lead.id, now, f"handed off to sales: {decision.detail}")
    lead.status = LeadStatus.handed_off
    lead.updated_at = now
    route = route_lead(session, lead, now)
    handoff = Handoff(
        lead_id=lead.id, campaign_id=decision.campaign_id, reason=decision.reason,
        reason_detail=(decision.detail or "")[:500] or None, trigger_event_id=decision.trigger_event_id,
        state=HandoffState.notified, created_at=now, triggered_at=decision.triggered_at or now,
        sla_due_at=sla_due(svc.config, now), ownership_ends_at=now + timedelta(days=svc.config.ownership_days),
        dossier={},
    )
    session.add(handoff)
    session.flush()
    if route.rep is not None:
        assign(session, handoff, route.rep, route.role, now)
        log.info("handoff #%s of lead %s routed to %s (%s)", handoff.id, lead.email, route.rep.email, route.why)
    else:
        log.warning("handoff #%s of lead %s is unassigned: %s", handoff.id, lead.email, route.why)
    handoff.dossier = build_dossier(session, handoff, lead, now)
    session.flush()
    for destination, notice in prepare_notices(svc, session, handoff, now):
        after_commit(svc, session, destination, *notice.job_args())
    return handoff


def assign(session: Session, handoff: Handoff, rep: SalesRep, role: str, now: datetime) -> HandoffAssignment:
    """Make ``rep`` the owner; the assignment row is kept for credit.

    ``rep.last_assigned_at`` is strictly later than every other rep's, even when many handoffs
    share one ``now`` (a drain batch passes the same instant to all of them), so the
    least-recently-assigned rotation never ties back to the lowest id.
    """
    assignment = HandoffAssignment(handoff_id=handoff.id, rep_id=rep.id, role=role, assigned_at=now)
    session.add(assignment)
    handoff.rep_id = rep.id
    session.flush()
    latest = session.scalar(select(func.max(SalesRep.last_assigned_at)))
    rep.last_assigned_at = max(now, latest + _TICK) if latest is not None else now
    session.flush()
    return assignment


# -- jobs after commit --------------------------------------------------------------------------

#: The RQ job that runs one notice at its destination, as an import path (the domain never
#: imports ``jobs/``).
NOTIFY_JOB = "nurture_mail.jobs.sales.notify"


def after_commit(svc: "Services", session: Session, destination: str, handoff_id: int, *args: object) -> None:
    """Enqueue a notice for ``destination`` (``email``, ``webhook``) once ``session``'s transaction
    commits, with that destination's retry policy."""
    enqueue_after_commit(session, svc.queue, NOTIFY_JOB, destination, handoff_id, *args,
                         **named_destination(svc, destination).job_options())
