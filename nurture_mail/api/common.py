"""Helpers shared by the API routes: cursors, lookups, domain errors, model → dict."""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..exceptions import InvalidInput, NotFound
from ..models import Campaign, Enrollment, Knowledge, Lead, LeadScore
from .problems import PROBLEM_JSON, ApiProblem, ProblemSchema, problem_response
from .schemas import PARSER

#: The newest timeline entries in a lead's detail; the rest are counted in ``timeline_omitted``.
TIMELINE_LIMIT = 100
#: Ids are PostgreSQL ``integer``s: a cursor past the largest is not one this API returned.
MAX_ID = 2**31 - 1

__all__ = ["api_blueprint", "domain_problem", "decode_cursor", "encode_cursor", "enrollment_dict", "lead_dict", "lead_or_404"]


def api_blueprint(name: str, import_name: str, url_prefix: str, description: str) -> Blueprint:
    """A flask-smorest blueprint whose domain errors become problems (404, 422)."""
    bp = Blueprint(name, import_name, url_prefix=url_prefix, description=description)
    bp.ARGUMENTS_PARSER = PARSER  # NaN/Infinity in a JSON body are a 400 like any invalid JSON

    @bp.errorhandler(NotFound)
    def _not_found(error: NotFound):
        return problem_response(404, str(error), [{"field": None, "message": str(error)}])

    @bp.errorhandler(InvalidInput)
    def _invalid(error: InvalidInput):
        message = str(error.args[0]) if error.args else str(error)
        if error.field and message.startswith(f"{error.field}: "):
            message = message[len(error.field) + 2:]
        return problem_response(422, str(error), [{"field": error.field, "message": message}])

    return bp


def domain_problem(error: InvalidInput, *, field: str | None = None, status: int | None = None,
                   type_: str = "about:blank") -> ApiProblem:
    """A domain service's refusal as a problem: 409 when the record's state forbids the change
    (``error.conflict``), 422 for an unusable value; ``field`` renames the service's field to
    the one the request used."""
    message = getattr(error, "message", None) or str(error)
    name = field or error.field
    conflict = getattr(error, "conflict", False)
    status = status or (409 if conflict else 422)
    detail = message if status == 409 or not name else f"{name}: {message}"
    return ApiProblem(status, detail, field=name, errors=[{"field": name, "message": message}], type_=type_)


def not_found_doc(bp: Blueprint):
    return bp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_JSON, description="No such record")


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The id after which the page starts (0 for the first page); a bad cursor is a 422."""
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        after = json.loads(raw)["after"]
        if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= MAX_ID:
            raise ValueError
        return after
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
        raise ApiProblem(422, "not a cursor returned by this API (use next_cursor of the previous page)",
                         field="cursor") from None


def lead_or_404(session: Session, lead_id: int) -> Lead:
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise ApiProblem(404, f"no lead with id {lead_id}", field="lead_id")
    return lead


def lead_by_ref(session: Session, lead_id: int | None, email: str | None) -> Lead:
    if lead_id is not None:
        return lead_or_404(session, lead_id)
    lead = session.scalar(select(Lead).where(Lead.email == (email or "").strip().lower()))
    if lead is None:
        raise ApiProblem(404, f"no lead with email {email!r}", field="email")
    return lead


def score_dict(score: LeadScore | None, breakdown: bool) -> dict[str, Any] | None:
    if score is None:
        return None
    data: dict[str, Any] = {"fit": score.fit, "engagement": score.engagement, "computed_at": score.computed_at}
    if breakdown:
        data["fit_breakdown"] = list(score.fit_breakdown or [])
        data["engagement_breakdown"] = list(score.engagement_breakdown or [])
    return data


_SUMMARY = ("id", "email", "first_name", "last_name", "title", "company", "lead_source", "timezone", "consent",
            "status", "hygiene", "erased_at", "created_at", "updated_at")
_DETAIL = ("industry_sic", "industry_naics", "revenue", "employees", "locations", "region")


def lead_dict(lead: Lead, score: LeadScore | None) -> dict[str, Any]:
    data = {name: getattr(lead, name) for name in _SUMMARY}
    data["hygiene"] = list(lead.hygiene or [])
    data["scores"] = score_dict(score, breakdown=False)
    return data


def enrollment_dict(enrollment: Enrollment, campaign_slug: str) -> dict[str, Any]:
    return {
        "id": enrollment.id, "lead_id": enrollment.lead_id, "campaign": campaign_slug,
        "state": enrollment.state, "state_reason": enrollment.state_reason,
        "touches_sent": enrollment.touches_sent, "next_send_at": enrollment.next_send_at,
        "last_sent_at": enrollment.last_sent_at, "enrolled_at": enrollment.enrolled_at,
        "enrolled_by": enrollment.enrolled_by, "ended_at": enrollment.ended_at,
    }


def lead_detail(session: Session, lead: Lead) -> dict[str, Any]:
    """Profile, qualification, knowledge map, scores with breakdown, enrollments, timeline."""
    from ..nurture.timeline import lead_story

    score = session.get(LeadScore, lead.id)
    data = lead_dict(lead, score)
    data["scores"] = score_dict(score, breakdown=True)
    for name in _DETAIL:
        data[name] = getattr(lead, name)
    data["qualification"] = dict(lead.qualification or {})
    data["custom_fields"] = dict(lead.custom_fields or {})
    data["knowledge"] = {k.topic: k.level.value
                         for k in session.scalars(select(Knowledge).where(Knowledge.lead_id == lead.id))}
    data["enrollments"] = [
        enrollment_dict(enrollment, slug)
        for enrollment, slug in session.execute(
            select(Enrollment, Campaign.slug).join(Campaign, Campaign.id == Enrollment.campaign_id)
            .where(Enrollment.lead_id == lead.id).order_by(Enrollment.id)
        ).tuples()
    ]
    story = lead_story(session, lead.email, limit=TIMELINE_LIMIT)
    data["timeline"] = [{"at": e.at, "kind": e.kind, "text": e.text} for e in story.entries]
    data["timeline_omitted"] = story.omitted
    return data
