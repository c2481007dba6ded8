"""The suppression list: search, see why and when, add by hand; an admin lifts one with a reason.

Adding goes through ``nurture.suppression.suppress`` and, for a known lead, the same
``stop_mailing`` path as an unsubscribe; lifting through ``lift_suppression``, which keeps the
removal for audit.
"""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import func, or_, select

from .. import services
from ..addresses import InvalidEmail, normalize_email
from ..auth import role_required
from ..exceptions import InvalidInput, NotFound
from ..models import ALL_EMAIL, Campaign, Lead, Suppression, SuppressionRemoval
from ..nurture.suppression import lift_suppression, stop_mailing, suppress
from . import errors

bp = Blueprint("suppressions", __name__, url_prefix="/suppressions", template_folder="templates")
errors.install(bp)

PAGE_SIZE = 50
REASONS = ("unsubscribe", "hard_bounce", "complaint", "soft_bounces", "manual")


def _page(status: int = 200, form: dict[str, str] | None = None, errors_: dict[str, str] | None = None):
    svc = services()
    q = (request.args.get("q") or "").strip().lower()[:200]
    reason = (request.args.get("reason") or "").strip()
    before = request.args.get("before", type=int)
    with svc.db.session() as session:
        query = select(Suppression)
        if q:
            query = query.where(func.lower(Suppression.email).like(f"%{q}%"))
        if reason == "bounce":
            query = query.where(or_(Suppression.reason == "hard_bounce", Suppression.reason == "soft_bounces"))
        elif reason:
            query = query.where(Suppression.reason == reason)
        if before:
            query = query.where(Suppression.id < before)
        rows = list(session.scalars(query.order_by(Suppression.id.desc()).limit(PAGE_SIZE + 1)))
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        leads = dict(session.execute(select(Lead.email, Lead.id).where(Lead.email.in_([r.email for r in rows])))
                     .tuples().all()) if rows else {}
        counts = dict(session.execute(select(Suppression.reason, func.count()).group_by(Suppression.reason))
                      .tuples().all())
        removals = list(session.scalars(select(SuppressionRemoval).order_by(SuppressionRemoval.id.desc()).limit(10)))
        campaigns = list(session.scalars(select(Campaign.slug).order_by(Campaign.slug)))
        html = render_template(
            "suppressions/index.html", rows=rows, leads=leads, counts=counts, removals=removals, q=q, reason=reason,
            reasons=REASONS, campaigns=campaigns, form=form or {}, errors=errors_ or {}, now=svc.clock.now(),
            next_url=url_for(".index", q=q or None, reason=reason or None, before=rows[-1].id) if more else None,
            first_url=url_for(".index", q=q or None, reason=reason or None) if before else None)
    return html, status


@bp.get("/")
@role_required("leads:read")
def index() -> ResponseReturnValue:
    return _page()


@bp.post("/")
@role_required("suppressions:write")
def add() -> ResponseReturnValue:
    form = {key: (request.form.get(key) or "").strip() for key in ("email", "scope", "detail")}
    svc = services()
    now = svc.clock.now()
    try:
        try:
            email = normalize_email(form["email"])
        except InvalidEmail as error:
            raise InvalidInput(f"not an email address ({error})", field="email") from None
        scope = form["scope"] or ALL_EMAIL
        with svc.db.session() as session:
            if scope != ALL_EMAIL and session.scalar(select(Campaign.id).where(Campaign.slug == scope)) is None:
                raise InvalidInput(f"no campaign {scope!r}", field="scope")
            added = suppress(session, email, now, reason="manual", source="web", scope=scope,
                             detail=(f"added by {current_user.email}" + (f": {form['detail']}" if form["detail"] else ""))[:1000])
            lead = session.scalar(select(Lead).where(Lead.email == email))
            if added and lead is not None:
                campaign_id = None if scope == ALL_EMAIL else session.scalar(
                    select(Campaign.id).where(Campaign.slug == scope))
                stop_mailing(session, lead.id, now, f"suppressed by {current_user.email}", campaign_id=campaign_id)
    except InvalidInput as error:
        message = str(error).split(": ", 1)[-1] if error.field else str(error)
        return _page(400, form, {error.field or "email": message})
    flash(f"{email} suppressed{'' if scope == ALL_EMAIL else ' for ' + scope}." if added
          else f"{email} was already suppressed{'' if scope == ALL_EMAIL else ' for ' + scope}.",
          "success" if added else "info")
    return redirect(url_for(".index", q=email), code=303)


@bp.post("/<int:suppression_id>/remove")
@role_required("suppressions:remove")
def remove(suppression_id: int) -> ResponseReturnValue:
    svc = services()
    try:
        with svc.db.session() as session:
            row = lift_suppression(session, suppression_id, svc.clock.now(), by=current_user.email,
                                   reason=request.form.get("reason", ""))
            email = row.email
    except (InvalidInput, NotFound) as error:
        flash(f"Not lifted: {str(error).split(': ', 1)[-1]}", "error")
        return redirect(url_for(".index"), code=303)
    flash(f"{email} may be mailed again; the removal and its reason are recorded.", "success")
    return redirect(url_for(".index"), code=303)
