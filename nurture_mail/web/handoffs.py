"""The sales workspace: the handoff inbox, a handoff's page with its actions, the rep's
availability and the manager's view of the team.

Views are thin: they read through ``sales/workspace.py`` and change state only through
``sales/actions.py`` (the functions the API and the email links call too). A rep acts on the
handoffs they hold (an admin on any); anyone allowed to read handoffs may read one.
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import services
from ..auth import role_required
from ..exceptions import InvalidInput
from ..models import Handoff, Lead, Role, SalesRep
from ..sales import actions
from ..sales.dossier import build_dossier
from ..sales.handoff import OPEN_STATES
from ..sales.workspace import (
    REJECT_REASONS,
    STATES,
    holds,
    inbox,
    inbox_row,
    rep_for_email,
    set_away,
    team_load,
    team_of,
)
from . import errors

bp = Blueprint("handoffs", __name__, url_prefix="/handoffs", template_folder="templates")
errors.install(bp)

VIA = "web"
ACTIONS = ("accept", "reject", "won", "lost")
SCOPES = ("mine", "team", "all")


@bp.context_processor
def sales_navigation() -> dict[str, bool]:
    """``sales_team``: the signed-in rep manages someone; ``sales_rep``: the user is a rep."""
    if not current_user.is_authenticated:
        return {"sales_team": False, "sales_rep": False}
    with services().db.session() as session:
        me = _me(session)
        manages = me is not None and session.scalar(
            select(SalesRep.id).where(SalesRep.manager_id == me.id).limit(1)) is not None
    return {"sales_team": manages, "sales_rep": me is not None}


def _me(session: Session) -> SalesRep | None:
    return rep_for_email(session, current_user.email)


def _scope_rep_ids(session: Session, me: SalesRep | None, scope: str) -> tuple[str, list[int] | None, list[SalesRep]]:
    """The scope actually shown, the rep ids it covers (None: everyone), and the team."""
    team = team_of(session, me) if me is not None else []
    if scope not in SCOPES:
        scope = ""
    if not scope:
        scope = "mine" if me is not None else "all"
    if scope == "mine":
        if me is None:
            scope = "all"
        else:
            return scope, [me.id], team
    if scope == "team":
        if not team:
            return ("mine", [me.id], team) if me is not None else ("all", None, team)
        return scope, [*([me.id] if me is not None else []), *(r.id for r in team)], team
    # Everyone's handoffs: for those who are not reps (admins, marketers, viewers) and admins.
    if me is not None and current_user.role != Role.admin:
        return "mine", [me.id], team
    return "all", None, team


@bp.get("/")
@role_required("handoffs:read")
def index() -> ResponseReturnValue:
    svc = services()
    state = request.args.get("state", "open")
    with svc.db.session() as session:
        me = _me(session)
        scope, rep_ids, team = _scope_rep_ids(session, me, request.args.get("scope", ""))
        try:
            rows = inbox(session, svc.config, svc.clock.now(), rep_ids, state)
        except InvalidInput as error:
            flash(f"{error.field}: {error}", "error")
            return redirect(url_for(".index", scope=scope), code=303)
        overdue = sum(1 for r in rows if r.overdue)
        return render_template("handoffs/index.html", rows=rows, me=me, team=team, scope=scope, state=state,
                               states=("open", "all", *STATES), overdue=overdue,
                               can_see_all=me is None or current_user.role == Role.admin)


def _load(session: Session, handoff_id: int) -> tuple[Handoff, Lead]:
    handoff = session.get(Handoff, handoff_id)
    if handoff is None:
        abort(404)
    return handoff, session.get_one(Lead, handoff.lead_id)


def _may_act(session: Session, handoff: Handoff) -> bool:
    if not current_user.can("handoffs:act"):
        return False
    return current_user.role == Role.admin or holds(session, _me(session), handoff)


@bp.get("/<int(min=1, max=2147483647):handoff_id>")
@role_required("handoffs:read")
def show(handoff_id: int) -> ResponseReturnValue:
    svc = services()
    with svc.db.session() as session:
        handoff, lead = _load(session, handoff_id)
        now = svc.clock.now()
        # The dossier as it is now (the stored one is what the email showed): the story goes on.
        dossier = build_dossier(session, handoff, lead, now)
        sent = handoff.dossier or {}
        rep = session.get(SalesRep, handoff.rep_id) if handoff.rep_id else None
        may_act = _may_act(session, handoff)
        row = inbox_row(svc.config, handoff, lead, rep, now)
        chosen = request.args.get("do", "")
        return render_template("handoffs/show.html", handoff=handoff, lead=lead, rep=rep, dossier=dossier,
                               sent_dossier=sent, row=row, may_act=may_act, is_open=handoff.state in OPEN_STATES,
                               chosen=chosen if chosen in ACTIONS else "", actions=list(handoff.actions),
                               reject_reasons=REJECT_REASONS)


@bp.post("/<int(min=1, max=2147483647):handoff_id>/<action>")
@role_required("handoffs:act")
def act(handoff_id: int, action: str) -> ResponseReturnValue:
    if action not in ACTIONS:
        abort(404)
    svc = services()
    form = request.form
    try:
        with svc.db.session() as session:
            handoff, lead = _load(session, handoff_id)
            if not _may_act(session, handoff):
                abort(403)
            now, actor = svc.clock.now(), current_user.email
            if action == "accept":
                actions.accept(session, handoff, actor, VIA, now)
                message = "Accepted: the lead is yours. The SLA clock has stopped."
            elif action == "reject":
                kind = form.get("kind", "")
                code, text = form.get("reason_code", "").strip(), form.get("reason", "").strip()
                if code and code not in REJECT_REASONS.get(kind, ()):
                    raise actions.HandoffActionError(f"unknown reason code {code!r} for {kind or 'this kind'}",
                                                     field="reason_code")
                reason = f"{code}: {text}" if code and text else code or text
                actions.reject(session, svc, handoff, actor, VIA, kind, reason, now)
                message = ("Rejected as not ready: the lead is back in nurture, keeping what it has learned."
                           if kind == "not_ready" else "Rejected as a bad fit: the lead is disqualified and gets "
                           "no more email.")
            elif action == "won":
                actions.mark_won(session, handoff, actor, VIA, form.get("value", ""), now)
                message = f"Marked won (${handoff.deal_value:,.2f}). Congratulations!"
            else:
                actions.mark_lost(session, handoff, actor, VIA, form.get("reason", ""), now)
                message = "Marked lost."
    except actions.HandoffActionError as error:
        flash(f"{error.field}: {error.message}" if error.field and error.field != "state" else error.message, "error")
        return redirect(url_for(".show", handoff_id=handoff_id, do=action), code=303)
    flash(message, "success")
    return redirect(url_for(".show", handoff_id=handoff_id), code=303)


# -- availability and the team ------------------------------------------------------------------

@bp.route("/availability", methods=["GET", "POST"])
@role_required("availability:write")
def availability() -> ResponseReturnValue:
    svc = services()
    with svc.db.session() as session:
        me = _me(session)
        if me is None:
            return render_template("handoffs/availability.html", me=None, now=svc.clock.now()), 404
        if request.method == "POST":
            back = request.form.get("back") == "1"
            try:
                set_away(session, me, None if back else request.form.get("away_until", ""),
                         request.form.get("away_note", ""), svc.clock.now(), svc.config.sales_timezone)
            except InvalidInput as error:
                session.rollback()
                flash(f"{error.field}: {error}", "error")
                return redirect(url_for(".availability"), code=303)
            flash("Welcome back: new handoffs can come to you again." if back else
                  f"You are away until {request.form.get('away_until')} (included): new handoffs go to others.",
                  "success")
            return redirect(url_for(".availability"), code=303)
        return render_template("handoffs/availability.html", me=me, now=svc.clock.now(),
                               timezone=svc.config.sales_timezone)


@bp.get("/team")
@role_required("handoffs:read")
def team() -> ResponseReturnValue:
    svc = services()
    with svc.db.session() as session:
        me = _me(session)
        if current_user.role == Role.admin or me is None:
            # Admins, and readers who are not reps (marketers, viewers): the whole team.
            reps = list(session.scalars(select(SalesRep).order_by(SalesRep.name)))
        else:
            reps = team_of(session, me)  # a rep without reports sees the empty state
        load = team_load(session, reps, svc.clock.now())
        return render_template("handoffs/team.html", me=me, load=load, now=svc.clock.now())
