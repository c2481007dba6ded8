"""The template editor: a step's HTML and text templates with a live preview for a chosen lead,
errors with their line numbers, saving, and "send a test to me" through the normal composer."""
from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .. import services
from ..auth import role_required
from ..exceptions import InvalidInput
from ..mail.drafts import DraftRender, DraftStep, render_draft, save_draft, send_test_email
from ..models import Campaign, Lead, Step
from . import errors
from .security import PREVIEW_CSP, page_security_headers

log = logging.getLogger(__name__)

bp = Blueprint("templates_editor", __name__, url_prefix="/campaigns", template_folder="templates")
errors.install(bp)

#: Who the preview is for when no lead is chosen (or none exists yet).
SAMPLE_LEAD = SimpleNamespace(id=None, email="ana.lima@example.com", first_name="Ana", last_name="Lima",
                              title="Head of IT", company="Example Corp", custom_fields={})
LEAD_CHOICES = 200
MAX_TEMPLATE = 500_000


@bp.after_request
def _headers(response):
    response.headers.setdefault("Content-Security-Policy", PREVIEW_CSP)
    return page_security_headers(response)


def _load(session, slug: str, key: str) -> tuple[Campaign, Step]:
    campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
    step = campaign and session.scalar(select(Step).where(Step.campaign_id == campaign.id, Step.key == key)
                                       .options(selectinload(Step.links)))
    if step is None:
        abort(404)
    return campaign, step


def _lead(session, raw: str | None):
    if raw and raw.isdigit():
        lead = session.get(Lead, int(raw))
        if lead is not None:
            return lead
    return SAMPLE_LEAD


def _read(path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


@bp.route("/<slug>/steps/<key>/email", methods=["GET", "POST"])
@role_required("campaigns:write")
def edit(slug: str, key: str) -> ResponseReturnValue:
    svc = services()
    templates_dir = svc.config.templates_dir
    action = request.form.get("action", "preview") if request.method == "POST" else None
    with svc.db.session() as session:
        campaign, step = _load(session, slug, key)
        draft_step = DraftStep.of(step)
        html = request.form.get("html") if action else _read(templates_dir / step.html_template)
        text = request.form.get("text") if action else _read(templates_dir / step.text_template)
        html, text = (html or "").replace("\r\n", "\n"), (text or "").replace("\r\n", "\n")
        if len(html) > MAX_TEMPLATE or len(text) > MAX_TEMPLATE:
            abort(413)
        lead_arg = request.form.get("lead") if action else request.args.get("lead")
        lead = _lead(session, lead_arg)
        campaign_view = SimpleNamespace(name=campaign.name, slug=campaign.slug)
        now = svc.clock.now()
        if action == "save":
            try:
                written = save_draft(templates_dir, draft_step, html, text)
            except InvalidInput as exc:
                flash(str(exc).removeprefix("template: "), "error")
            else:
                flash(f"Saved {' and '.join(written)}. The next emails of this step use it.", "success")
                return redirect(url_for(".edit", slug=slug, key=key, lead=lead.id or None), code=303)
        elif action == "test":
            try:
                result = send_test_email(svc.config, draft_step, html, text, campaign_view, lead,
                                         to=current_user.email, now=now)
            except Exception as exc:  # the relay refused or is down: logged and shown, nothing recorded
                log.exception("test email of %s/%s to %s failed", slug, key, current_user.email)
                flash(f"The test email could not be sent: {exc}", "error")
            else:
                if result.ok:
                    inbox = " Find it in the Inbox." if svc.config.embedded_smtp else ""
                    flash(f"Test email sent to {current_user.email}, marked [TEST].{inbox}", "success")
                else:
                    flash("Fix the template errors before sending a test.", "error")
        preview = render_draft(svc.config, draft_step, html, text, campaign_view, lead, now)
        if action == "preview" and _wants_json():
            return jsonify(_preview_json(preview))
        leads = list(session.execute(select(Lead.id, Lead.email, Lead.first_name, Lead.last_name)
                                     .where(Lead.erased_at.is_(None))
                                     .order_by(Lead.id.desc()).limit(LEAD_CHOICES)))
        page = dict(campaign=campaign_view, step=_step_view(step), html=html, text=text, preview=preview,
                    leads=leads, lead=lead, embedded=svc.config.embedded_smtp,
                    writable=_writable(templates_dir), me=current_user.email)
    status = 422 if (action in ("save", "test") and not preview.ok) else 200
    return render_template("campaigns/template_editor.html", **page), status


def _writable(templates_dir) -> bool:
    import os

    return os.access(templates_dir, os.W_OK)


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json" or request.headers.get("X-Preview") == "1"


def _step_view(step: Step) -> dict[str, Any]:
    return {"key": step.key, "subject": step.subject, "html_template": step.html_template,
            "text_template": step.text_template, "links": [link.name for link in step.links]}


def _preview_json(preview: DraftRender) -> dict[str, Any]:
    return {"ok": preview.ok, "subject": preview.subject, "html": preview.html, "text": preview.text,
            "problems": [{"part": p.part, "line": p.line, "message": p.message, "text": str(p)}
                         for p in preview.problems]}
