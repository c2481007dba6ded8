"""What sales does with a handoff: accept, reject, won, lost, escalate, transfer; and handing a lead to nurture.

Each call records a ``HandoffAction(action, actor, via, detail)`` and sets ``first_action_at``
on the first one (the SLA clock stops there). Invalid transitions and inputs raise
:class:`HandoffActionError` naming the field. The email links, the API and the web UI all call
these functions; none commits (the caller's session does).

States: ``notified → accepted → won | lost``; ``notified | accepted → rejected``; won and
lost may also be recorded straight from ``notified`` (a deal closed on the first call).
Escalation (past the SLA, to the rep's manager) and transfer (past the ownership window, to the
territory's owner) change who holds a handoff, not its state; sales housekeeping calls them.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..exceptions import InvalidInput, NotFound
from ..models import (
    Campaign,
    Enrollment,
    Handoff,
    HandoffAction,
    HandoffAssignment,
    HandoffState,
    Lead,
    LeadStatus,
    SalesRep,
    Topic,
)
from ..nurture.enroll import EnrollmentRefused, enroll, find_campaign
from ..nurture.sql import rows_changed
from ..nurture.suppression import stop_mailing
from .destinations import prepare_notices
from .handoff import OPEN_STATES, after_commit, territory_owner

if TYPE_CHECKING:
    from ..extensions import Services

__all__ = ["REJECT_KINDS", "HandoffActionError", "accept", "escalate", "hand_to_nurture", "mark_lost", "mark_won",
           "reject", "transfer"]

log = logging.getLogger(__name__)

REJECT_KINDS = ("not_ready", "bad_fit")
VIA = ("email-link", "api", "web", "cli", "system")


class HandoffActionError(InvalidInput):
    """An action that cannot be taken: wrong state, or a bad input (``field`` names it)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.message = message


def _record(session: Session, handoff: Handoff, action: str, actor: str, via: str, now: datetime,
            detail: dict[str, Any] | None = None) -> HandoffAction:
    if not actor or not actor.strip():
        raise HandoffActionError("who acted is required", field="actor")
    if via not in VIA:
        raise HandoffActionError(f"expected one of {', '.join(VIA)}, got {via!r}", field="via")
    if handoff.first_action_at is None:
        handoff.first_action_at = now
    row = HandoffAction(handoff_id=handoff.id, action=action, actor=actor.strip()[:320], via=via,
                        detail=detail or {}, at=now)
    session.add(row)
    session.flush()
    return row


def _require(handoff: Handoff, allowed: Iterable[HandoffState], doing: str) -> None:
    allowed = tuple(allowed)
    if handoff.state not in allowed:
        raise HandoffActionError(
            f"handoff #{handoff.id} is {handoff.state.value}; it can be {doing} only when "
            f"{' or '.join(s.value for s in allowed)}", field="state")


def _transition(session: Session, handoff: Handoff, allowed: Iterable[HandoffState], new_state: HandoffState,
                doing: str) -> None:
    """Move the handoff to ``new_state`` only if it is still in ``allowed`` in the database.

    A conditional ``UPDATE … WHERE state IN (…)``: the row lock (PostgreSQL) or the write lock
    (SQLite) makes a second, concurrent action (a double submit, the rep and the manager at
    once) wait, then match no row, so exactly one action wins; the loser gets the usual error
    naming the state the winner left.
    """
    allowed = tuple(allowed)
    _require(handoff, allowed, doing)  # the state this session saw: the common, clear refusal
    result = session.execute(
        update(Handoff).where(Handoff.id == handoff.id, Handoff.state.in_(allowed)).values(state=new_state)
        .execution_options(synchronize_session=False)
    )
    if rows_changed(result) != 1:
        session.refresh(handoff)
        _require(handoff, allowed, doing)
        raise HandoffActionError(f"handoff #{handoff.id} changed meanwhile; reload it", field="state")  # pragma: no cover
    handoff.state = new_state


def _lead(session: Session, handoff: Handoff) -> Lead:
    lead = session.get(Lead, handoff.lead_id)
    if lead is None:  # pragma: no cover - the FK cascades
        raise NotFound(f"handoff #{handoff.id}: its lead no longer exists")
    return lead


def accept(session: Session, handoff: Handoff, actor: str, via: str, now: datetime) -> Handoff:
    _transition(session, handoff, (HandoffState.notified,), HandoffState.accepted, "accepted")
    lead = _lead(session, handoff)
    lead.status = LeadStatus.accepted
    lead.updated_at = now
    _record(session, handoff, "accept", actor, via, now)
    return handoff


def reject(session: Session, svc: "Services", handoff: Handoff, actor: str, via: str, kind: str, reason: str,
           now: datetime) -> Handoff:
    """``not_ready``: the lead goes back into nurture (recycled); ``bad_fit``: disqualified."""
    if kind not in REJECT_KINDS:
        raise HandoffActionError(f"expected one of {', '.join(REJECT_KINDS)}, got {kind!r}", field="kind")
    reason = (reason or "").strip()
    if not reason:
        raise HandoffActionError("say why the lead is rejected", field="reason")
    _transition(session, handoff, OPEN_STATES, HandoffState.rejected, "rejected")
    lead = _lead(session, handoff)
    detail: dict[str, Any] = {"kind": kind, "reason": reason[:500]}
    if kind == "not_ready":
        campaign = _recycle_campaign(session, svc, handoff)
        enrollment = _renurture(session, svc, lead, campaign, actor, now)
        lead.status = LeadStatus.recycled
        detail.update(campaign=campaign.slug, enrollment_id=enrollment.id)
    else:
        lead.status = LeadStatus.disqualified
        stop_mailing(session, lead.id, now, f"disqualified by sales: {reason}")
    lead.updated_at = now
    handoff.reject_kind = kind
    handoff.reject_reason = reason[:500]
    handoff.closed_at = now
    _record(session, handoff, "reject", actor, via, now, detail)
    return handoff


def _recycle_campaign(session: Session, svc: "Services", handoff: Handoff) -> Campaign:
    if svc.config.recycle_campaign:
        try:
            return find_campaign(session, svc.config.recycle_campaign)
        except NotFound as exc:
            raise HandoffActionError(f"RECYCLE_CAMPAIGN: {exc}", field="kind") from None
    if handoff.campaign_id is not None:
        campaign = session.get(Campaign, handoff.campaign_id)
        if campaign is not None:
            return campaign
    latest = session.scalar(select(Campaign).join(Enrollment, Enrollment.campaign_id == Campaign.id)
                            .where(Enrollment.lead_id == handoff.lead_id)
                            .order_by(Enrollment.enrolled_at.desc(), Enrollment.id.desc()).limit(1))
    if latest is None:
        raise HandoffActionError("the lead came from no campaign and RECYCLE_CAMPAIGN is not set: reject it as "
                                 "bad_fit, or hand it to a campaign", field="kind")
    return latest


def _renurture(session: Session, svc: "Services", lead: Lead, campaign: Campaign, actor: str,
               now: datetime) -> Enrollment:
    """Reactivate (or create) the lead's enrollment: its delivered steps stay delivered (unique
    enrollment × step) and topics it knows stay skipped (the gap engine reads its knowledge)."""
    # Sales sends the lead back: override lifts the sales-held status only (erased, hygiene-flagged,
    # unsubscribed or bounced leads are still refused).
    try:
        enrollment = enroll(session, lead, campaign, now, declared_by=actor, source="sales",
                            default_timezone=svc.config.default_timezone, override=True)
    except InvalidInput as exc:
        raise HandoffActionError(str(exc), field="kind") from None
    enrollment.enrolled_by = actor[:200]
    return enrollment


def mark_won(session: Session, handoff: Handoff, actor: str, via: str, value: Any, now: datetime) -> Handoff:
    amount = _money(value)
    _transition(session, handoff, OPEN_STATES, HandoffState.won, "marked won")
    handoff.deal_value = amount
    handoff.closed_at = now
    lead = _lead(session, handoff)
    lead.status = LeadStatus.won
    lead.updated_at = now
    _record(session, handoff, "won", actor, via, now, {"value": str(amount)})
    return handoff


def mark_lost(session: Session, handoff: Handoff, actor: str, via: str, reason: str, now: datetime) -> Handoff:
    reason = (reason or "").strip()
    if not reason:
        raise HandoffActionError("say why the deal was lost", field="reason")
    _transition(session, handoff, OPEN_STATES, HandoffState.lost, "marked lost")
    handoff.lost_reason = reason[:500]
    handoff.closed_at = now
    lead = _lead(session, handoff)
    lead.status = LeadStatus.lost
    lead.updated_at = now
    _record(session, handoff, "lost", actor, via, now, {"reason": reason[:500]})
    return handoff


def _money(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise HandoffActionError(f"expected an amount, got {value!r}", field="value")
    try:
        amount = Decimal(str(value).strip().replace(",", "")) if value is not None else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite():
        raise HandoffActionError(f"expected an amount such as 24000 or 24000.50, got {value!r}", field="value")
    if amount < 0:
        raise HandoffActionError(f"a deal value cannot be negative, got {amount}", field="value")
    if amount >= Decimal("1e12"):
        raise HandoffActionError(f"a deal value must be below 1,000,000,000,000, got {amount}", field="value")
    return amount.quantize(Decimal("0.01"))


def hand_to_nurture(session: Session, svc: "Services", lead: Lead, campaign_slug: str, known_topics: Iterable[str],
                    actor: str, now: datetime) -> Enrollment:
    """Sales starts nurture for a lead, declaring the topics the prospect already knows
    (those steps are skipped). An unknown topic is an error naming it."""
    if not actor or not actor.strip():
        raise HandoffActionError("who hands the lead over is required", field="actor")
    try:
        campaign = find_campaign(session, campaign_slug)
    except NotFound as exc:
        raise HandoffActionError(str(exc), field="campaign") from None
    known = [t.strip() for t in known_topics if t and t.strip()]
    if known:
        existing = set(session.scalars(select(Topic.slug).where(Topic.slug.in_(known))))
        unknown = [t for t in known if t not in existing]
        if unknown:
            raise HandoffActionError(f"unknown topic(s): {', '.join(unknown)}", field="known_topics")
    open_handoff = session.scalar(select(Handoff.id).where(Handoff.lead_id == lead.id,
                                                          Handoff.state.in_(OPEN_STATES)))
    if open_handoff is not None:
        raise HandoffActionError(f"{lead.email} is with sales (handoff #{open_handoff}); reject it as not_ready "
                                 "to send it back to nurture", field="email")
    if lead.status == LeadStatus.mql:
        lead.status = LeadStatus.recycled  # enroll() makes it nurturing
    try:
        # Sales declares the lead should be nurtured: override lifts the sales-held statuses
        # (handed off, accepted, won, lost) only; erased, hygiene-flagged, unsubscribed and
        # bounced leads are still refused (EnrollmentRefused names why).
        enrollment = enroll(session, lead, campaign, now, knows=known, declared_by=actor.strip(), source="sales",
                            default_timezone=svc.config.default_timezone, override=True)
    except EnrollmentRefused as exc:
        raise HandoffActionError(f"{lead.email} cannot be nurtured: {exc.reason}", field="email") from None
    except InvalidInput as exc:
        raise HandoffActionError(str(exc).split(": ", 1)[-1] if exc.field else str(exc),
                                 field="known_topics" if exc.field == "knows" else exc.field) from None
    log.info("%s handed %s to nurture in %s (knows: %s)", actor, lead.email, campaign.slug, ", ".join(known) or "-")
    return enrollment


def escalate(session: Session, svc: "Services", handoff: Handoff, now: datetime, *, actor: str = "system",
             via: str = "system") -> HandoffAssignment | None:
    """Escalate a handoff past its SLA to the rep's manager: an ``escalation`` assignment,
    ``escalated_at``, and the manager notified after commit. Without a manager only
    ``escalated_at`` and the action are recorded (nobody to tell). Returns the new assignment."""
    rep = session.get(SalesRep, handoff.rep_id) if handoff.rep_id else None
    manager = session.get(SalesRep, rep.manager_id) if rep and rep.manager_id else None
    handoff.escalated_at = now
    detail: dict[str, Any] = {"from": rep.email if rep else None, "sla_due_at": _iso(handoff.sla_due_at)}
    assignment = None
    if manager is None:
        detail.update(to=None, note="the rep has no manager to escalate to")
        log.warning("handoff #%s is past its SLA but %s has no manager", handoff.id, rep.email if rep else "?")
    else:
        assignment = HandoffAssignment(handoff_id=handoff.id, rep_id=manager.id, role="escalation", assigned_at=now)
        session.add(assignment)
        detail.update(to=manager.email)
        for destination, notice in prepare_notices(svc, session, handoff, now, "escalation", manager.id):
            after_commit(svc, session, destination, *notice.job_args())
    session.add(HandoffAction(handoff_id=handoff.id, action="escalate", actor=actor, via=via, detail=detail, at=now))
    session.flush()
    return assignment


def transfer(session: Session, svc: "Services", handoff: Handoff, now: datetime, *, actor: str = "system",
             via: str = "system") -> SalesRep | None:
    """Move a handoff past its ownership window to the owner of the territory covering the lead
    (the rep's manager when no territory does); returns the new owner, or None.

    The incoming assignment is ended but kept (credit), a ``territory`` assignment is added,
    ``transferred_at`` is set and the new owner is notified after commit. Every other open
    assignment (the manager's escalation included) is ended, so only the new owner's links act.
    """
    lead = _lead(session, handoff)
    current = session.get(SalesRep, handoff.rep_id) if handoff.rep_id else None
    found = territory_owner(session, lead)
    owner: SalesRep | None
    if found is not None:
        owner, why = found[0], f"owner of territory {found[1]!r}"
    elif current is not None and current.manager_id is not None:
        owner, why = session.get(SalesRep, current.manager_id), "no territory covers the lead; the rep's manager"
    else:
        owner, why = None, "no territory covers the lead and the rep has no manager"
    handoff.transferred_at = now
    detail: dict[str, Any] = {"from": current.email if current else None, "to": owner.email if owner else None,
                              "why": why, "ownership_ended_at": _iso(handoff.ownership_ends_at)}
    if owner is None:
        log.warning("handoff #%s: ownership window over but %s", handoff.id, why)
    elif current is not None and owner.id == current.id:
        detail["note"] = "the rep already owns the territory"
        for assignment in handoff.assignments:  # the window is over: only the owner acts now
            if assignment.ended_at is None and assignment.rep_id != owner.id:
                assignment.ended_at = now
    else:
        for assignment in handoff.assignments:
            if assignment.ended_at is None:  # the rep's, and the manager's escalation
                assignment.ended_at = now
        session.add(HandoffAssignment(handoff_id=handoff.id, rep_id=owner.id, role="territory", assigned_at=now))
        handoff.rep_id = owner.id
        for destination, notice in prepare_notices(svc, session, handoff, now, "transfer", owner.id):
            after_commit(svc, session, destination, *notice.job_args())
    session.add(HandoffAction(handoff_id=handoff.id, action="transfer", actor=actor, via=via, detail=detail, at=now))
    session.flush()
    return owner


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
