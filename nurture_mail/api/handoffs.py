"""``/api/v1/handoffs``: the sales handoffs; accept, reject, won, lost; and hand a lead to nurture.

The actions are ``sales.actions`` (the same ones the signed email links
and the web UI use), recorded with ``via="api"`` and the token's user as the actor.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import services
from ..models import Campaign, Handoff, HandoffAssignment, Role, SalesRep
from .common import api_blueprint, decode_cursor, encode_cursor, enrollment_dict, lead_or_404, not_found_doc
from .problems import ApiProblem
from .schemas import EnrollmentOut, HandoffDetail, HandoffFilter, HandoffPage, LostIn, NurtureIn, RejectIn, WonIn
from .security import current_api_user, requires

bp = api_blueprint("api_handoffs", __name__, "/api/v1", "Sales handoffs")

_FIELDS = ("id", "lead_id", "campaign_id", "reason", "reason_detail", "state", "created_at", "notified_at",
           "first_action_at", "sla_due_at", "reject_kind", "reject_reason", "deal_value", "lost_reason", "closed_at")


def _handoff_or_404(session: Session, handoff_id: int) -> Handoff:
    handoff = session.get(Handoff, handoff_id)
    if handoff is None:
        raise ApiProblem(404, f"no handoff with id {handoff_id}", field="handoff_id")
    return handoff


def _summary(handoff: Handoff, rep_email: str | None) -> dict[str, Any]:
    data = {name: getattr(handoff, name) for name in _FIELDS}
    data["rep"] = rep_email
    return data


def _detail(session: Session, handoff: Handoff) -> dict[str, Any]:
    rep = session.get(SalesRep, handoff.rep_id) if handoff.rep_id else None
    data = _summary(handoff, rep.email if rep else None)
    data["dossier"] = dict(handoff.dossier or {})
    data["actions"] = [{"action": a.action, "actor": a.actor, "via": a.via, "at": a.at, "detail": dict(a.detail or {})}
                       for a in handoff.actions]
    return data


@bp.route("/handoffs", methods=["GET"])
@requires(bp, "handoffs:read")
@bp.arguments(HandoffFilter, location="query", as_kwargs=True)
@bp.response(200, HandoffPage)
def list_handoffs(limit: int, cursor: str | None, **filters: Any):
    """Handoffs in id order, by state or lead; cursor-paginated like leads."""
    query = (select(Handoff, SalesRep.email).outerjoin(SalesRep, SalesRep.id == Handoff.rep_id)
             .where(Handoff.id > decode_cursor(cursor)))
    if "state" in filters:
        query = query.where(Handoff.state == filters["state"])
    if "lead_id" in filters:
        query = query.where(Handoff.lead_id == filters["lead_id"])
    with services().db.session() as session:
        rows = session.execute(query.order_by(Handoff.id).limit(limit + 1)).tuples().all()
    items = [_summary(h, email) for h, email in rows[:limit]]
    return {"items": items, "next_cursor": encode_cursor(items[-1]["id"]) if len(rows) > limit else None}


@bp.route("/handoffs/<int(min=1, max=2147483647):handoff_id>", methods=["GET"])
@requires(bp, "handoffs:read")
@bp.response(200, HandoffDetail)
@not_found_doc(bp)
def get_handoff(handoff_id: int):
    """One handoff with the dossier sent to sales and every action taken on it."""
    with services().db.session() as session:
        return _detail(session, _handoff_or_404(session, handoff_id))


def _check_holder(session: Session, handoff: Handoff) -> None:
    """A sales user acts only on a handoff their rep holds (as the signed email links do); admin on any."""
    user = current_api_user()
    if user.role == Role.admin:
        return
    rep = session.scalar(select(SalesRep).where(func.lower(SalesRep.email) == user.email.strip().lower()))
    holds = rep is not None and (handoff.rep_id == rep.id or session.scalar(
        select(HandoffAssignment.id).where(HandoffAssignment.handoff_id == handoff.id,
                                           HandoffAssignment.rep_id == rep.id,
                                           HandoffAssignment.ended_at.is_(None)).limit(1)) is not None)
    if not holds:
        raise ApiProblem(403, f"handoff {handoff.id} is not assigned to {user.email}: a rep acts only on the "
                              "handoffs they hold (an admin can act on any)", field="handoff_id")


def _act(handoff_id: int, name: str, **kwargs: Any) -> dict[str, Any]:
    from ..sales import actions

    svc = services()
    actor = current_api_user().email
    with svc.db.session() as session:
        handoff = _handoff_or_404(session, handoff_id)
        _check_holder(session, handoff)
        now = svc.clock.now()
        try:
            if name == "accept":
                actions.accept(session, handoff, actor, "api", now)
            elif name == "reject":
                actions.reject(session, svc, handoff, actor, "api", kwargs["kind"], kwargs["reason"], now)
            elif name == "won":
                actions.mark_won(session, handoff, actor, "api", kwargs["value"], now)
            else:
                actions.mark_lost(session, handoff, actor, "api", kwargs["reason"], now)
        except actions.HandoffActionError as error:
            field = getattr(error, "field", None)
            message = getattr(error, "message", None) or str(error)
            raise ApiProblem(409 if field in (None, "state") else 422, message, field=field) from None
        session.flush()
        session.refresh(handoff)
        return _detail(session, handoff)


@bp.route("/handoffs/<int(min=1, max=2147483647):handoff_id>/accept", methods=["POST"])
@requires(bp, "handoffs:act")
@bp.response(200, HandoffDetail)
@not_found_doc(bp)
def accept(handoff_id: int):
    """The rep takes the lead: the SLA clock stops."""
    return _act(handoff_id, "accept")


@bp.route("/handoffs/<int(min=1, max=2147483647):handoff_id>/reject", methods=["POST"])
@requires(bp, "handoffs:act")
@bp.arguments(RejectIn)
@bp.response(200, HandoffDetail)
@not_found_doc(bp)
def reject(data: dict[str, Any], handoff_id: int):
    """Not ready (back to nurture) or bad fit (disqualified), with the reason."""
    return _act(handoff_id, "reject", kind=data["kind"], reason=data["reason"])


@bp.route("/handoffs/<int(min=1, max=2147483647):handoff_id>/won", methods=["POST"])
@requires(bp, "handoffs:act")
@bp.arguments(WonIn)
@bp.response(200, HandoffDetail)
@not_found_doc(bp)
def won(data: dict[str, Any], handoff_id: int):
    """Closed won, with the deal value."""
    return _act(handoff_id, "won", value=data["value"])


@bp.route("/handoffs/<int(min=1, max=2147483647):handoff_id>/lost", methods=["POST"])
@requires(bp, "handoffs:act")
@bp.arguments(LostIn)
@bp.response(200, HandoffDetail)
@not_found_doc(bp)
def lost(data: dict[str, Any], handoff_id: int):
    """Closed lost, with the reason."""
    return _act(handoff_id, "lost", reason=data["reason"])


@bp.route("/leads/<int(min=1, max=2147483647):lead_id>/hand-to-nurture", methods=["POST"])
@requires(bp, "handoffs:act")
@bp.arguments(NurtureIn)
@bp.response(201, EnrollmentOut)
@not_found_doc(bp)
def hand_to_nurture(data: dict[str, Any], lead_id: int):
    """A rep sends a lead (back) to nurture, declaring the topics it already knows."""
    from ..sales import actions

    svc = services()
    with svc.db.session() as session:
        lead = lead_or_404(session, lead_id)
        try:
            enrollment = actions.hand_to_nurture(session, svc, lead, data["campaign"], data["knows"],
                                                 current_api_user().email, svc.clock.now())
        except actions.HandoffActionError as error:
            field = getattr(error, "field", None)
            # sales.actions names its own parameters: the body says "knows", the path "lead_id"
            status = 409 if field == "email" else 422
            field = {"known_topics": "knows", "email": "lead_id"}.get(field or "", field)
            raise ApiProblem(status, getattr(error, "message", None) or str(error), field=field) from None
        session.flush()
        return enrollment_dict(enrollment, session.get_one(Campaign, enrollment.campaign_id).slug)
