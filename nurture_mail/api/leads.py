"""``/api/v1/leads``: create-or-upsert by email, get with everything, list, update, erase."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import url_for
from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from .. import services
from ..models import (
    Campaign,
    Delivery,
    Enrollment,
    Event,
    Handoff,
    HandoffAction,
    KnowledgeEvidence,
    Lead,
    LeadScore,
    LeadStatus,
)
from ..nurture.suppression import stop_mailing
from . import idempotency
from .common import api_blueprint, decode_cursor, encode_cursor, lead_detail, lead_dict, lead_or_404, not_found_doc
from .problems import ApiProblem
from .schemas import LeadDetail, LeadFilter, LeadIn, LeadPage, LeadPatch, LeadUpserted
from .security import current_api_user, requires

bp = api_blueprint("api_leads", __name__, "/api/v1/leads", "Leads: upsert, read, list, update, erase")

ERASED_DOMAIN = "erased.invalid"


def _merge_dicts(known: dict[str, Any] | None, given: dict[str, Any] | None) -> dict[str, Any]:
    """Given values win, but an empty one never blanks a known value."""
    merged = dict(known or {})
    for key, value in (given or {}).items():
        if value not in (None, "") or key not in merged:
            merged[key] = value
    return merged


def upsert(session: Session, values: dict[str, Any], now: datetime, source: str) -> tuple[Lead, str]:
    """The import engineer's ``upsert_lead`` (same merge policy and hygiene flags as CSV import)."""
    from ..leads.errors import LeadValueError
    from ..leads.hygiene import Hygiene
    from ..leads.upsert import upsert_lead

    try:
        return upsert_lead(session, values, now, hygiene=Hygiene.from_config(services().config), source=source)
    except LeadValueError as error:
        raise ApiProblem(422, str(error), field=error.field if error.field != "row" else None,
                         errors=[{"field": error.field, "message": error.message}]) from None


@bp.route("", methods=["POST"])
@requires(bp, "leads:write")
@bp.arguments(LeadIn)
@bp.response(200, LeadUpserted, description="The lead existed and was updated (or unchanged)")
@bp.alt_response(201, schema=LeadUpserted, description="A new lead was created", success=True)
def create_or_upsert(values: dict[str, Any]):
    """Create a lead, or update the one with this email (a known value is never blanked)."""
    svc = services()
    now = svc.clock.now()
    with svc.db.session() as session:
        lead, outcome = upsert(session, values, now, source="api")
        if lead.erased_at is not None:
            raise ApiProblem(409, "this lead was erased and cannot be updated", field="email")
        session.flush()
        data = lead_detail(session, lead)
    data["outcome"] = outcome
    status = 201 if outcome == "created" else 200
    return data, status, {"Location": url_for("api_leads.get_lead", lead_id=data["id"])}


@bp.route("", methods=["GET"])
@requires(bp, "leads:read")
@bp.arguments(LeadFilter, location="query", as_kwargs=True)
@bp.response(200, LeadPage)
def list_leads(limit: int, cursor: str | None, **filters: Any):
    """Leads in id order, filtered; ``next_cursor`` pages stay stable while leads are added."""
    after = decode_cursor(cursor)
    query = select(Lead, LeadScore).outerjoin(LeadScore, LeadScore.lead_id == Lead.id).where(Lead.id > after)
    if "email" in filters:
        query = query.where(Lead.email == filters["email"].strip().lower())
    if "status" in filters:
        query = query.where(Lead.status == filters["status"])
    if "source" in filters:
        query = query.where(Lead.lead_source == filters["source"])
    if "campaign" in filters:
        query = query.where(exists().where(
            Enrollment.lead_id == Lead.id, Enrollment.campaign_id == Campaign.id, Campaign.slug == filters["campaign"]))
    for name, column in (("fit", LeadScore.fit), ("engagement", LeadScore.engagement)):
        if f"{name}_min" in filters:
            query = query.where(column >= filters[f"{name}_min"])
        if f"{name}_max" in filters:
            query = query.where(column <= filters[f"{name}_max"])
    if "updated_since" in filters:
        query = query.where(Lead.updated_at >= filters["updated_since"])
    with services().db.session() as session:
        rows = session.execute(query.order_by(Lead.id).limit(limit + 1)).tuples().all()
    items = [lead_dict(lead, score) for lead, score in rows[:limit]]
    next_cursor = encode_cursor(items[-1]["id"]) if len(rows) > limit else None
    return {"items": items, "next_cursor": next_cursor}


@bp.route("/<int(min=1, max=2147483647):lead_id>", methods=["GET"])
@requires(bp, "leads:read")
@bp.response(200, LeadDetail)
@not_found_doc(bp)
def get_lead(lead_id: int):
    """One lead with qualification, knowledge map, scores and their breakdown, enrollments, timeline."""
    with services().db.session() as session:
        return lead_detail(session, lead_or_404(session, lead_id))


@bp.route("/<int(min=1, max=2147483647):lead_id>", methods=["PATCH"])
@requires(bp, "leads:write")
@bp.arguments(LeadPatch)
@bp.response(200, LeadDetail)
@not_found_doc(bp)
def patch_lead(values: dict[str, Any], lead_id: int):
    """Change the fields sent; ``null`` clears one; qualification and custom fields merge by key."""
    svc = services()
    with svc.db.session() as session:
        lead = lead_or_404(session, lead_id)
        if lead.erased_at is not None:
            raise ApiProblem(409, "this lead was erased and cannot be changed", field="lead_id")
        for name, value in _checked_patch(values).items():
            if name == "qualification":
                merged = {**(lead.qualification or {}), **value}
                lead.qualification = {k: v for k, v in merged.items() if v is not None}
            elif name == "custom_fields":
                merged = {**(lead.custom_fields or {}), **value}
                lead.custom_fields = {k: v for k, v in merged.items() if v is not None}
            elif name == "status":
                _check_status(lead.status, value)
                lead.status = value
            else:
                setattr(lead, name, value)
        lead.updated_at = svc.clock.now()
        session.flush()
        return lead_detail(session, lead)


#: The only status a person may set: every other one is driven by the system (sends, bounces,
#: unsubscribes, scoring, sales actions). A lead with sales, unsubscribed or bounced stays so.
PATCHABLE_STATUS = {LeadStatus.disqualified: frozenset({LeadStatus.new, LeadStatus.nurturing, LeadStatus.mql,
                                                        LeadStatus.recycled, LeadStatus.lost})}


def _check_status(current: LeadStatus, wanted: LeadStatus) -> None:
    if wanted == current:
        return
    allowed_from = PATCHABLE_STATUS.get(wanted)
    if allowed_from is None:
        raise ApiProblem(422, f"status {wanted.value} is set by the system, not by PATCH (you may set: "
                              f"{', '.join(s.value for s in PATCHABLE_STATUS)})", field="status")
    if current not in allowed_from:
        raise ApiProblem(422, f"a {current.value} lead cannot become {wanted.value}", field="status")


def _checked_patch(values: dict[str, Any]) -> dict[str, Any]:
    """The PATCH body through the same checks as an upsert (``leads.upsert.lead_values``); ``null`` clears."""
    from ..leads.errors import LeadValueError
    from ..leads.upsert import lead_values

    checked: dict[str, Any] = {}
    try:
        for name, value in values.items():
            if name == "status" or value is None:
                checked[name] = value
            elif name == "qualification":
                given = lead_values({"qualification": {k: v for k, v in value.items() if v is not None}})
                checked[name] = {**{k: None for k, v in value.items() if v is None}, **given.qualification}
            elif name == "custom_fields":
                given = lead_values({"custom_fields": value})
                checked[name] = {**{k: None for k, v in value.items() if v in (None, "")}, **given.custom}
            else:
                given = lead_values({name: value})
                if name not in given.columns and given.problems:
                    field, message = given.problems[0]
                    raise LeadValueError(message, field)
                checked[name] = given.columns.get(name)
    except LeadValueError as error:
        raise ApiProblem(422, f"{error.field}: {error.message}", field=error.field,
                         errors=[{"field": error.field, "message": error.message}]) from None
    return checked


@bp.route("/<int(min=1, max=2147483647):lead_id>/erase", methods=["POST"])
@requires(bp, "leads:erase")
@bp.response(200, LeadDetail)
@not_found_doc(bp)
def erase_lead(lead_id: int):
    """GDPR erasure: personal data goes, anonymous aggregates (status, firmographics, counts) stay."""
    svc = services()
    with svc.db.session() as session:
        lead = lead_or_404(session, lead_id)
        erase(session, lead, svc.clock.now(), by=current_api_user().email)
        session.flush()
        return lead_detail(session, lead)


def erase(session: Session, lead: Lead, now: datetime, by: str) -> None:
    """Remove what identifies the person; keep the row, its events (anonymised) and scores.

    Gone: email (replaced by ``erased-<id>@erased.invalid``), names, title, company, time zone,
    qualification notes, custom fields, consent; events' IP, user agent and detail; knowledge
    evidence notes; score breakdowns (they quote event titles); deliveries' last error (it can
    quote the address); the reasons of ended enrollments; handoff dossiers, reason details,
    reject and lost reasons and the details of handoff actions; the address in import reports
    (rows of this lead and rows with this address); stored ``Idempotency-Key`` responses
    about the lead. Kept: status, source, industry, size, region, hygiene flags, knowledge
    levels, score values, event kinds and times, deliveries (no address). Ongoing enrollments
    are exited so nothing is sent again. Erasing twice changes nothing.
    """
    from ..leads.imports import erase_import_traces

    if lead.erased_at is not None:
        return
    old_email = lead.email
    for name in ("first_name", "last_name", "title", "company", "timezone"):
        setattr(lead, name, None)
    lead.email = f"erased-{lead.id}@{ERASED_DOMAIN}"
    lead.qualification = {}
    lead.custom_fields = {}
    lead.consent = False
    lead.erased_at = now
    lead.updated_at = now
    session.flush()
    plain = {"synchronize_session": False}
    session.execute(update(Event).where(Event.lead_id == lead.id).values(ip=None, user_agent=None, detail={})
                    .execution_options(**plain))
    session.execute(update(KnowledgeEvidence).where(KnowledgeEvidence.lead_id == lead.id).values(note=None)
                    .execution_options(**plain))
    session.execute(update(LeadScore).where(LeadScore.lead_id == lead.id)
                    .values(fit_breakdown=[], engagement_breakdown=[]).execution_options(**plain))
    session.execute(update(Delivery).where(Delivery.lead_id == lead.id).values(last_error=None)
                    .execution_options(**plain))
    handoffs = select(Handoff.id).where(Handoff.lead_id == lead.id).scalar_subquery()
    session.execute(update(HandoffAction).where(HandoffAction.handoff_id.in_(handoffs)).values(detail={})
                    .execution_options(**plain))
    session.execute(update(Handoff).where(Handoff.lead_id == lead.id)
                    .values(dossier={"erased": True}, reason_detail=None, reject_reason=None, lost_reason=None)
                    .execution_options(**plain))
    erase_import_traces(session, lead.id, old_email)
    session.execute(update(Enrollment).where(Enrollment.lead_id == lead.id).values(state_reason=None)
                    .execution_options(**plain))
    stop_mailing(session, lead.id, now, f"personal data erased by {by}")
    session.expire_all()
    idempotency.forget_lead(lead.id)


__all__ = ["bp", "erase", "upsert"]
