"""Sales hands a lead to nurture, declaring the topics the prospect already knows
(``/sales/nurture?lead=ID``; the lead page links here). The rules are ``actions.hand_to_nurture``'s."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import func, select

from .. import services
from ..auth import role_required
from ..models import STAGE_ORDER, Campaign, Knowledge, KnowledgeLevel, Lead, Step, Topic
from ..sales import actions
from . import errors

bp = Blueprint("sales_nurture", __name__, url_prefix="/sales/nurture", template_folder="templates")
errors.install(bp)


@bp.context_processor
def _navigation() -> dict[str, bool]:
    from .handoffs import sales_navigation

    return sales_navigation()


def _lead(session, form_or_args) -> Lead | None:
    raw_id = (form_or_args.get("lead") or "").strip()
    email = (form_or_args.get("email") or "").strip().lower()
    if raw_id.isdigit() and len(raw_id) < 10:
        return session.get(Lead, int(raw_id))
    if email:
        return session.scalar(select(Lead).where(func.lower(Lead.email) == email))
    return None


def _choices(session) -> tuple[list[Campaign], list[Topic], dict[str, list[str]]]:
    campaigns = list(session.scalars(select(Campaign).where(Campaign.active.is_(True)).order_by(Campaign.name)))
    topics = sorted(session.scalars(select(Topic)), key=lambda t: (STAGE_ORDER.get(t.stage, 9), t.name))
    taught: dict[str, list[str]] = {}
    for slug, teaches in session.execute(select(Campaign.slug, Step.teaches).join(Step, Step.campaign_id == Campaign.id)):
        for topic in teaches or []:
            taught.setdefault(slug, [])
            if topic not in taught[slug]:
                taught[slug].append(topic)
    return campaigns, topics, taught


@bp.route("", methods=["GET", "POST"])
@role_required("handoffs:act")
def form() -> ResponseReturnValue:
    svc = services()
    source = request.form if request.method == "POST" else request.args
    with svc.db.session() as session:
        lead = _lead(session, source)
        campaigns, topics, taught = _choices(session)
        if request.method == "POST":
            chosen = request.form.getlist("known")
            if lead is None:
                flash("email: no lead with this address; import or create it first", "error")
            else:
                try:
                    enrollment = actions.hand_to_nurture(session, svc, lead, request.form.get("campaign", ""), chosen,
                                                         current_user.email, svc.clock.now())
                except actions.HandoffActionError as error:
                    session.rollback()
                    flash(f"{error.field}: {error.message}" if error.field else error.message, "error")
                else:
                    campaign = session.get_one(Campaign, enrollment.campaign_id)
                    flash(f"{lead.email} is in nurture ({campaign.name})"
                          f"{', knowing ' + ', '.join(chosen) if chosen else ''}: steps teaching what it knows "
                          "are skipped.", "success")
                    return redirect(url_for(".form", lead=lead.id), code=303)
            return redirect(url_for(".form", lead=lead.id if lead else None,
                                    email=None if lead else request.form.get("email")), code=303)
        known = set()
        if lead is not None:
            known = set(session.scalars(select(Knowledge.topic).where(
                Knowledge.lead_id == lead.id, Knowledge.level.in_([KnowledgeLevel.known, KnowledgeLevel.engaged]))))
        return render_template("sales_nurture/form.html", lead=lead, campaigns=campaigns, topics=topics,
                               taught=taught, known=known, email=source.get("email", ""))
