"""Leads: the searchable list with bulk enroll / pause, and the lead page with its actions.

Every state change goes through a domain service (``nurture.enrollments``, ``nurture.knowledge``,
``leads.service``, ``sales.handoff``); a refusal comes back as a flash naming why.
"""
from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select

from .. import services
from ..auth import role_required
from ..exceptions import InvalidInput, NotFound
from ..leads import service as lead_service
from ..models import Campaign, Delivery, Enrollment, EnrollmentState, Lead, LeadStatus, Step
from ..nurture import enrollments
from ..nurture.knowledge import declare_known
from . import errors
from .leadlist import PAGE_SIZE, LeadFilters, facets, list_leads
from .leadpage import lead_view

bp = Blueprint("leads", __name__, url_prefix="/leads", template_folder="templates")
errors.install(bp)

#: At most this many leads in one bulk action (a page of the list is 50).
BULK_LIMIT = 500

# An email shown inside the page: no script, no access to this app (as in the capture inbox).
_MESSAGE_CSP = ("default-src 'self'; script-src 'none'; object-src 'none'; style-src 'self' 'unsafe-inline'; "
                "img-src * data: cid:; font-src * data:; form-action 'self'; frame-ancestors 'self'")


def _actor() -> str:
    return current_user.email


def _lead_or_404(session, lead_id: int) -> Lead:
    lead = session.get(Lead, lead_id)
    if lead is None:
        abort(404)
    return lead


def _back(lead_id: int, anchor: str = "") -> ResponseReturnValue:
    return redirect(url_for(".show", lead_id=lead_id) + (f"#{anchor}" if anchor else ""), code=303)


def _why(error: InvalidInput | NotFound) -> str:
    return getattr(error, "reason", None) or getattr(error, "message", None) or str(error)


@bp.get("/")
@role_required("leads:read")
def index() -> ResponseReturnValue:
    filters = LeadFilters.parse(request.args)
    svc = services()
    cursor = request.args.get("cursor") or None
    size = current_app.config.get("LEADS_PAGE_SIZE", PAGE_SIZE)
    with svc.db.session() as session:
        try:
            page = list_leads(session, filters if not filters.errors else LeadFilters(), cursor, size)
        except InvalidInput as error:
            filters.errors["cursor"] = _why(error)
            page = list_leads(session, LeadFilters())
        options = facets(session)
        html = render_template("leads/index.html", page=page, filters=filters, options=options,
                               statuses=[s.value for s in LeadStatus], now=svc.clock.now(),
                               next_url=url_for(".index", cursor=page.next_cursor, **filters.as_args())
                               if page.next_cursor else None,
                               first_url=url_for(".index", **filters.as_args()) if cursor else None)
    return html, 400 if filters.errors else 200


@bp.post("/bulk")
@role_required("enrollments:write")
def bulk() -> ResponseReturnValue:
    """Enroll the chosen leads in a campaign, or pause their active enrollments (one campaign or all)."""
    ids = [int(i) for i in request.form.getlist("ids") if i.isdigit()][:BULK_LIMIT]
    action = request.form.get("action", "")
    slug = request.form.get("campaign", "")
    back = request.form.get("back") or url_for(".index")
    if not back.startswith("/") or back.startswith("//"):
        back = url_for(".index")
    if not ids:
        flash("Choose at least one lead first (the boxes in the first column).", "warning")
        return redirect(back, code=303)
    if action not in ("enroll", "pause"):
        flash("Choose an action: enroll or pause.", "error")
        return redirect(back, code=303)
    svc = services()
    now = svc.clock.now()
    done, refused = 0, []
    with svc.db.session() as session:
        campaign = None
        if slug:
            try:
                campaign = enrollments.find_campaign(session, slug)
            except NotFound as error:
                flash(str(error), "error")
                return redirect(back, code=303)
        elif action == "enroll":
            flash("Choose the campaign to enroll the leads in.", "error")
            return redirect(back, code=303)
        leads = list(session.scalars(select(Lead).where(Lead.id.in_(ids)).order_by(Lead.id)))
        for lead in leads:
            try:
                with session.begin_nested():
                    if action == "enroll":
                        assert campaign is not None  # refused above without one
                        enrollments.enroll(session, lead, campaign, now, by=_actor(), source="ui",
                                           default_timezone=svc.config.default_timezone)
                        done += 1
                    else:
                        query = select(Enrollment).where(Enrollment.lead_id == lead.id,
                                                         Enrollment.state == EnrollmentState.active)
                        if campaign is not None:
                            query = query.where(Enrollment.campaign_id == campaign.id)
                        for enrollment in session.scalars(query):
                            enrollments.pause(session, enrollment, now, by=_actor())
                            done += 1
            except InvalidInput as error:
                refused.append(f"{lead.email}: {_why(error)}")
    verb = "enrolled in " + campaign.name if action == "enroll" and campaign else "paused"
    noun = "lead" if action == "enroll" else "enrollment"
    flash(f"{done} {noun}{'s' if done != 1 else ''} {verb}.", "success" if done else "warning")
    if refused:
        more = f" (and {len(refused) - 5} more)" if len(refused) > 5 else ""
        flash(f"{len(refused)} refused: " + "; ".join(refused[:5]) + more, "warning")
    return redirect(back, code=303)


@bp.get("/<int:lead_id>")
@role_required("leads:read")
def show(lead_id: int) -> ResponseReturnValue:
    svc = services()
    with svc.db.session() as session:
        lead = _lead_or_404(session, lead_id)
        full = request.args.get("history") == "all"
        view = lead_view(session, svc, lead, full_history=full)
        return render_template("leads/show.html", v=view, lead=lead, now=svc.clock.now(), full_history=full)


@bp.post("/<int:lead_id>/enroll")
@role_required("enrollments:write")
def enroll(lead_id: int) -> ResponseReturnValue:
    svc = services()
    slug = request.form.get("campaign", "")
    knows = request.form.getlist("knows")
    with svc.db.session() as session:
        lead = _lead_or_404(session, lead_id)
        try:
            with session.begin_nested():
                campaign = enrollments.find_campaign(session, slug)
                enrollments.enroll(session, lead, campaign, svc.clock.now(), by=_actor(), knows=knows, source="ui",
                                   default_timezone=svc.config.default_timezone)
        except (InvalidInput, NotFound) as error:
            flash(f"Not enrolled: {_why(error)}", "error")
            return _back(lead_id, "enrollments")
    known = f", knowing {', '.join(knows)}" if knows else ""
    flash(f"Enrolled in {campaign.name}{known}.", "success")
    return _back(lead_id, "enrollments")


def _enrollment_action(lead_id: int, enrollment_id: int, action: str) -> ResponseReturnValue:
    svc = services()
    now = svc.clock.now()
    with svc.db.session() as session:
        lead = _lead_or_404(session, lead_id)
        enrollment = session.get(Enrollment, enrollment_id)
        if enrollment is None or enrollment.lead_id != lead.id:
            abort(404)
        name = session.get_one(Campaign, enrollment.campaign_id).name
        try:
            with session.begin_nested():
                if action == "pause":
                    enrollments.pause(session, enrollment, now, by=_actor(),
                                      reason=(request.form.get("reason") or "").strip()[:400] or None)
                elif action == "resume":
                    enrollments.resume(session, enrollment, now, by=_actor(), source="ui",
                                       default_timezone=svc.config.default_timezone)
                else:
                    enrollments.exit_enrollment(session, enrollment, now, by=_actor(),
                                                reason=(request.form.get("reason") or "").strip()[:400] or None)
        except InvalidInput as error:
            flash(f"{name}: {_why(error)}", "error")
            return _back(lead_id, "enrollments")
    past = {"pause": "paused", "resume": "resumed", "exit": "exited"}[action]
    flash(f"{name}: {past}.", "success")
    return _back(lead_id, "enrollments")


@bp.post("/<int:lead_id>/enrollments/<int:enrollment_id>/pause")
@role_required("enrollments:write")
def pause(lead_id: int, enrollment_id: int) -> ResponseReturnValue:
    return _enrollment_action(lead_id, enrollment_id, "pause")


@bp.post("/<int:lead_id>/enrollments/<int:enrollment_id>/resume")
@role_required("enrollments:write")
def resume(lead_id: int, enrollment_id: int) -> ResponseReturnValue:
    return _enrollment_action(lead_id, enrollment_id, "resume")


@bp.post("/<int:lead_id>/enrollments/<int:enrollment_id>/exit")
@role_required("enrollments:write")
def exit_enrollment(lead_id: int, enrollment_id: int) -> ResponseReturnValue:
    return _enrollment_action(lead_id, enrollment_id, "exit")


@bp.post("/<int:lead_id>/knowledge")
@role_required("leads:write")
def declare(lead_id: int) -> ResponseReturnValue:
    """Declare topics known (e.g. after a sales call): their steps are skipped from the next choice on."""
    svc = services()
    with svc.db.session() as session:
        lead = _lead_or_404(session, lead_id)
        if lead.erased_at is not None:
            flash("This lead was erased.", "error")
            return _back(lead_id, "knowledge")
        try:
            changed = declare_known(session, lead.id, request.form.getlist("knows"), svc.clock.now(), by=_actor(),
                                    source="ui",
                                    note=(request.form.get("note") or "").strip()[:400] or None)
        except InvalidInput as error:
            flash(f"Nothing declared: {_why(error)}", "error")
            return _back(lead_id, "knowledge")
    flash(f"Now known: {', '.join(changed)}." if changed else "Those topics were already known.",
          "success" if changed else "info")
    return _back(lead_id, "knowledge")


@bp.post("/<int:lead_id>/handoff")
@role_required("leads:write")
def hand_to_sales(lead_id: int) -> ResponseReturnValue:
    """Start a handoff by hand: nurture stops, the lead is routed and the rep notified."""
    from ..sales.decision import HandoffDecision
    from ..sales.handoff import decline_reason, start_handoff

    svc = services()
    now = svc.clock.now()
    note = (request.form.get("note") or "").strip()[:400]
    with svc.db.session() as session:
        lead = _lead_or_404(session, lead_id)
        why = decline_reason(session, lead)
        handoff = None
        if why is None:
            detail = f"handed over by {_actor()}" + (f": {note}" if note else "")
            handoff = start_handoff(svc, session, HandoffDecision(lead.id, None, "manual", detail, None, now), now)
        if handoff is None:
            flash(f"Not handed off: {why or 'the handoff was declined (see the log)'}.", "error")
            return _back(lead_id)
        rep = handoff.rep.name if handoff.rep else None
    flash(f"Handed to sales{f': {rep} is notified' if rep else ' (nobody available to route it to yet)'}.",
          "success")
    return _back(lead_id)


@bp.get("/<int:lead_id>/erase")
@role_required("leads:erase")
def erase_confirm(lead_id: int) -> ResponseReturnValue:
    svc = services()
    with svc.db.session() as session:
        lead = _lead_or_404(session, lead_id)
        return render_template("leads/erase.html", lead=lead, error=None)


@bp.post("/<int:lead_id>/erase")
@role_required("leads:erase")
def erase(lead_id: int) -> ResponseReturnValue:
    """GDPR erasure, after the admin typed the lead's email address to confirm."""
    svc = services()
    with svc.db.session() as session:
        lead = _lead_or_404(session, lead_id)
        typed = (request.form.get("confirm") or "").strip().lower()
        if lead.erased_at is None and typed != lead.email.lower():
            return render_template("leads/erase.html", lead=lead,
                                   error="Type the lead's email address exactly to confirm."), 400
        erased = lead_service.erase_lead(session, lead, svc.clock.now(), by=_actor(), redis=svc.redis)
    flash("Personal data erased: the lead gets no more email; anonymous figures stay in reports." if erased
          else "This lead was already erased.", "success" if erased else "info")
    return _back(lead_id)


@bp.get("/<int:lead_id>/deliveries/<int:delivery_id>")
@role_required("leads:read")
def message(lead_id: int, delivery_id: int) -> ResponseReturnValue:
    """The email of one delivery, composed again by the sender's composer from the same templates."""
    from ..nurture.send import default_composer

    svc = services()
    with svc.db.session() as session:
        lead = _lead_or_404(session, lead_id)
        delivery = session.get(Delivery, delivery_id)
        if delivery is None or delivery.lead_id != lead.id:
            abort(404)
        step = session.get_one(Step, delivery.step_id)
        campaign = session.get_one(Campaign, step.campaign_id)
        email = None
        problem = None
        if lead.erased_at is not None:
            problem = "This lead was erased: the email cannot be shown any more."
        else:
            try:
                email = default_composer(svc).compose(delivery, lead, step, campaign,
                                                      delivery.sent_at or svc.clock.now())
            except Exception as error:  # a template changed since: say so rather than fail the page
                problem = f"The email cannot be composed again: {error}"
        html = render_template("leads/message.html", lead=lead, delivery=delivery, step=step, campaign=campaign,
                               email=email, problem=problem, now=svc.clock.now())
    response = Response(html)
    response.headers["Content-Security-Policy"] = _MESSAGE_CSP
    return response
