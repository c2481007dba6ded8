"""``/api/v1/leads``: create-or-upsert by email, get with everything, list, update, erase."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import url_for
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from .. import services
from ..leads import service
from ..leads.hygiene import Hygiene
from ..models import Campaign, Enrollment, Lead, LeadScore
from .common import (
    api_blueprint,
    decode_cursor,
    domain_problem,
    encode_cursor,
    lead_detail,
    lead_dict,
    lead_or_404,
    not_found_doc,
)
from .schemas import LeadDetail, LeadFilter, LeadIn, LeadPage, LeadPatch, LeadUpserted
from .security import current_api_user, requires

bp = api_blueprint("api_leads", __name__, "/api/v1/leads", "Leads: upsert, read, list, update, erase")

def upsert(session: Session, values: dict[str, Any], now: datetime, source: str) -> tuple[Lead, str]:
    """``leads.service.upsert_lead`` with the app's hygiene rules; refusals as problems."""
    try:
        return service.upsert_lead(session, values, now, hygiene=Hygiene.from_config(services().config),
                                   source=source)
    except service.LeadError as error:
        raise domain_problem(error) from None


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
        try:
            service.patch_lead(session, lead, values, svc.clock.now(), by=current_api_user().email)
        except service.LeadError as error:
            raise domain_problem(error) from None
        return lead_detail(session, lead)


@bp.route("/<int(min=1, max=2147483647):lead_id>/erase", methods=["POST"])
@requires(bp, "leads:erase")
@bp.response(200, LeadDetail)
@not_found_doc(bp)
def erase_lead(lead_id: int):
    """GDPR erasure: personal data goes, anonymous aggregates (status, firmographics, counts) stay."""
    svc = services()
    with svc.db.session() as session:
        lead = lead_or_404(session, lead_id)
        service.erase_lead(session, lead, svc.clock.now(), by=current_api_user().email, redis=svc.redis)
        session.flush()
        return lead_detail(session, lead)


__all__ = ["bp", "upsert"]
