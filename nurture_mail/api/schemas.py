"""Request and response schemas: marshmallow validates with them and apispec documents them,
so ``/api/openapi.json`` is generated from the very code that checks the input."""
from __future__ import annotations

from datetime import UTC

import marshmallow as ma
from marshmallow import validate

from ..models import QUALIFICATION_ATTRIBUTES, EnrollmentState, HandoffState, LeadStatus

# ---------------------------------------------------------------------- common


def _aware(**kwargs):
    """A datetime that is always timezone-aware (naive input is read as UTC)."""
    return ma.fields.AwareDateTime(default_timezone=UTC, **kwargs)


class StrictSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class PageArgs(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    limit = ma.fields.Integer(load_default=50, validate=validate.Range(1, 200),
                              metadata={"description": "Items per page (1-200)"})
    cursor = ma.fields.String(load_default=None, validate=validate.Length(max=200),
                              metadata={"description": "The next_cursor of the previous page"})


class ReasonIn(StrictSchema):
    reason = ma.fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))


# ---------------------------------------------------------------------- leads

_TEXT = {"allow_none": True}


#: The ten qualification attributes of a short-term lead (seed 004); null = not known yet.
QualificationSchema = type("QualificationSchema", (StrictSchema,), {
    name: ma.fields.String(allow_none=True, validate=validate.Length(max=2000)) for name in QUALIFICATION_ATTRIBUTES
})


class LeadFields(StrictSchema):
    first_name = ma.fields.String(validate=validate.Length(max=120), **_TEXT)
    last_name = ma.fields.String(validate=validate.Length(max=120), **_TEXT)
    title = ma.fields.String(validate=validate.Length(max=200), **_TEXT)
    company = ma.fields.String(validate=validate.Length(max=200), **_TEXT)
    lead_source = ma.fields.String(validate=validate.Length(max=120), **_TEXT)
    timezone = ma.fields.String(validate=validate.Length(max=64), **_TEXT,
                                metadata={"example": "Europe/Berlin"})
    consent = ma.fields.Boolean()
    industry_sic = ma.fields.String(validate=validate.Length(max=8), **_TEXT)
    industry_naics = ma.fields.String(validate=validate.Length(max=8), **_TEXT)
    revenue = ma.fields.Integer(validate=validate.Range(0, 10**15), **_TEXT)
    employees = ma.fields.Integer(validate=validate.Range(0, 10**8), **_TEXT)
    locations = ma.fields.Integer(validate=validate.Range(0, 10**6), **_TEXT)
    region = ma.fields.String(validate=validate.Length(max=64), **_TEXT)
    qualification = ma.fields.Nested(QualificationSchema)
    custom_fields = ma.fields.Dict(keys=ma.fields.String(validate=validate.Length(1, 80)),
                                   values=ma.fields.Raw(allow_none=True))


class LeadIn(LeadFields):
    """Create, or update the lead with this email (upsert): a known value is never blanked."""

    email = ma.fields.String(required=True, validate=validate.Length(1, 320),
                             metadata={"example": "ana.lima@example.com"})


class LeadPatch(LeadFields):
    """Only the fields sent change; ``null`` clears a field."""

    status = ma.fields.Enum(LeadStatus, by_value=True)


class ScoreSchema(ma.Schema):
    fit = ma.fields.Float(required=True)
    engagement = ma.fields.Float(required=True)
    computed_at = _aware(allow_none=True)
    fit_breakdown = ma.fields.List(ma.fields.Dict())
    engagement_breakdown = ma.fields.List(ma.fields.Dict())


class LeadOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    email = ma.fields.String(required=True)
    first_name = ma.fields.String(allow_none=True)
    last_name = ma.fields.String(allow_none=True)
    title = ma.fields.String(allow_none=True)
    company = ma.fields.String(allow_none=True)
    lead_source = ma.fields.String(allow_none=True)
    timezone = ma.fields.String(allow_none=True)
    consent = ma.fields.Boolean(required=True)
    status = ma.fields.Enum(LeadStatus, by_value=True, required=True)
    hygiene = ma.fields.List(ma.fields.String(), required=True)
    scores = ma.fields.Nested(ScoreSchema, allow_none=True, required=True,
                              metadata={"description": "Fit and engagement (breakdown in the detail view)"})
    erased_at = _aware(allow_none=True)
    created_at = _aware(required=True)
    updated_at = _aware(required=True)


class EnrollmentOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    lead_id = ma.fields.Integer(required=True)
    campaign = ma.fields.String(required=True)
    state = ma.fields.Enum(EnrollmentState, by_value=True, required=True)
    state_reason = ma.fields.String(allow_none=True)
    touches_sent = ma.fields.Integer(required=True)
    next_send_at = _aware(allow_none=True)
    last_sent_at = _aware(allow_none=True)
    enrolled_at = _aware(required=True)
    enrolled_by = ma.fields.String(allow_none=True)
    ended_at = _aware(allow_none=True)


class TimelineEntry(ma.Schema):
    at = _aware(required=True)
    kind = ma.fields.String(required=True)
    text = ma.fields.String(required=True)


class LeadDetail(LeadOut):
    industry_sic = ma.fields.String(allow_none=True)
    industry_naics = ma.fields.String(allow_none=True)
    revenue = ma.fields.Integer(allow_none=True)
    employees = ma.fields.Integer(allow_none=True)
    locations = ma.fields.Integer(allow_none=True)
    region = ma.fields.String(allow_none=True)
    qualification = ma.fields.Dict(required=True)
    custom_fields = ma.fields.Dict(required=True)
    knowledge = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), required=True,
                               metadata={"description": "topic -> unknown|exposed|engaged|known"})
    enrollments = ma.fields.List(ma.fields.Nested(EnrollmentOut), required=True)
    timeline = ma.fields.List(ma.fields.Nested(TimelineEntry), required=True)


class LeadUpserted(LeadDetail):
    outcome = ma.fields.String(required=True, validate=validate.OneOf(["created", "updated", "unchanged"]))


class LeadFilter(PageArgs):
    email = ma.fields.String(validate=validate.Length(1, 320), metadata={"description": "Exact address"})
    status = ma.fields.Enum(LeadStatus, by_value=True)
    source = ma.fields.String(validate=validate.Length(max=120), metadata={"description": "lead_source"})
    campaign = ma.fields.String(validate=validate.Length(max=80),
                                metadata={"description": "Slug of a campaign the lead is enrolled in"})
    fit_min = ma.fields.Float(validate=validate.Range(-1e9, 1e9))
    fit_max = ma.fields.Float(validate=validate.Range(-1e9, 1e9))
    engagement_min = ma.fields.Float(validate=validate.Range(-1e9, 1e9))
    engagement_max = ma.fields.Float(validate=validate.Range(-1e9, 1e9))
    updated_since = _aware()


class LeadPage(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(LeadOut), required=True)
    next_cursor = ma.fields.String(allow_none=True, required=True,
                                   metadata={"description": "Pass as ?cursor= for the next page; null at the end"})


# ---------------------------------------------------------------------- enrollments


class EnrollIn(StrictSchema):
    lead_id = ma.fields.Integer(validate=validate.Range(1, 2**31 - 1))
    email = ma.fields.String(validate=validate.Length(1, 320))
    campaign = ma.fields.String(required=True, validate=validate.Length(1, 80))
    knows = ma.fields.List(ma.fields.String(validate=validate.Length(1, 80)), load_default=list,
                           validate=validate.Length(max=100),
                           metadata={"description": "Topics the prospect already knows: their steps are skipped"})

    @ma.validates_schema
    def _one_lead(self, data, **kwargs):
        if ("lead_id" in data) == ("email" in data):
            raise ma.ValidationError("give exactly one of lead_id or email", "lead_id")


# ---------------------------------------------------------------------- campaigns


class StepOut(ma.Schema):
    key = ma.fields.String(required=True)
    position = ma.fields.Integer(required=True)
    stage = ma.fields.String(required=True)
    subject = ma.fields.String(required=True)
    teaches = ma.fields.List(ma.fields.String(), required=True)
    requires = ma.fields.List(ma.fields.String(), required=True)


class CampaignOut(ma.Schema):
    slug = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    description = ma.fields.String(allow_none=True)
    active = ma.fields.Boolean(required=True)
    max_touches = ma.fields.Integer(required=True)
    cadence_seconds = ma.fields.Integer(required=True)
    enrolled = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer(), required=True,
                              metadata={"description": "Enrollments by state"})


class CampaignDetail(CampaignOut):
    steps = ma.fields.List(ma.fields.Nested(StepOut), required=True)


class TouchOut(ma.Schema):
    step_key = ma.fields.String(required=True)
    subject = ma.fields.String(required=True)
    send_at = _aware(required=True)
    local_time = ma.fields.String(required=True)
    reason = ma.fields.String(required=True)


class SkipOut(ma.Schema):
    step_key = ma.fields.String(required=True)
    reason = ma.fields.String(required=True)


class JourneyOut(ma.Schema):
    lead_id = ma.fields.Integer(required=True)
    campaign = ma.fields.String(required=True)
    state = ma.fields.String(required=True)
    timezone = ma.fields.String(required=True)
    touches_sent = ma.fields.Integer(required=True)
    knowledge = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), required=True)
    touches = ma.fields.List(ma.fields.Nested(TouchOut), required=True)
    skipped = ma.fields.List(ma.fields.Nested(SkipOut), required=True)
    outcome = ma.fields.String(required=True)


# ---------------------------------------------------------------------- events

EXTERNAL_EVENT_KINDS = ("form", "webinar", "reply", "meeting")


class EventIn(StrictSchema):
    lead_id = ma.fields.Integer(validate=validate.Range(1, 2**31 - 1))
    email = ma.fields.String(validate=validate.Length(1, 320))
    kind = ma.fields.String(required=True, validate=validate.OneOf(EXTERNAL_EVENT_KINDS),
                            metadata={"description": "form filled, webinar attended, reply, meeting booked"})
    at = _aware(load_default=None, allow_none=True, metadata={"description": "When it happened (default: now)"})
    topics = ma.fields.List(ma.fields.String(validate=validate.Length(1, 80)), load_default=list,
                            validate=validate.Length(max=50), metadata={"description": "Topics it taught"})
    detail = ma.fields.Dict(keys=ma.fields.String(validate=validate.Length(max=80)), load_default=None,
                            allow_none=True)
    uid = ma.fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 64),
                           metadata={"description": "Your id of the event: the same uid is stored once"})

    @ma.validates_schema
    def _one_lead(self, data, **kwargs):
        if ("lead_id" in data) == ("email" in data):
            raise ma.ValidationError("give exactly one of lead_id or email", "lead_id")


class EventOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    lead_id = ma.fields.Integer(required=True)
    kind = ma.fields.String(required=True)
    topic = ma.fields.String(allow_none=True)
    at = _aware(required=True)
    uid = ma.fields.String(allow_none=True)
    detail = ma.fields.Dict(required=True)


# ---------------------------------------------------------------------- imports


class ImportOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    filename = ma.fields.String(required=True)
    status = ma.fields.String(required=True)
    lead_source = ma.fields.String(allow_none=True)
    campaign = ma.fields.String(allow_none=True)
    total_rows = ma.fields.Integer(allow_none=True)
    processed_rows = ma.fields.Integer(required=True)
    counts = ma.fields.Dict(required=True)
    error = ma.fields.String(allow_none=True)
    created_by = ma.fields.String(allow_none=True)
    created_at = _aware(required=True)
    started_at = _aware(allow_none=True)
    finished_at = _aware(allow_none=True)
    progress = ma.fields.Dict(required=True, metadata={"description": "import_progress() of the job"})
    report_url = ma.fields.String(required=True)


# ---------------------------------------------------------------------- handoffs


class HandoffFilter(PageArgs):
    state = ma.fields.Enum(HandoffState, by_value=True)
    lead_id = ma.fields.Integer(validate=validate.Range(1, 2**31 - 1))


class HandoffActionOut(ma.Schema):
    action = ma.fields.String(required=True)
    actor = ma.fields.String(required=True)
    via = ma.fields.String(required=True)
    at = _aware(required=True)
    detail = ma.fields.Dict(required=True)


class HandoffOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    lead_id = ma.fields.Integer(required=True)
    campaign_id = ma.fields.Integer(allow_none=True)
    reason = ma.fields.String(required=True)
    reason_detail = ma.fields.String(allow_none=True)
    state = ma.fields.Enum(HandoffState, by_value=True, required=True)
    rep = ma.fields.String(allow_none=True, required=True, metadata={"description": "Email of the owning rep"})
    created_at = _aware(required=True)
    notified_at = _aware(allow_none=True)
    first_action_at = _aware(allow_none=True)
    sla_due_at = _aware(allow_none=True)
    reject_kind = ma.fields.String(allow_none=True)
    reject_reason = ma.fields.String(allow_none=True)
    deal_value = ma.fields.Decimal(allow_none=True, as_string=True)
    lost_reason = ma.fields.String(allow_none=True)
    closed_at = _aware(allow_none=True)


class HandoffDetail(HandoffOut):
    dossier = ma.fields.Dict(required=True)
    actions = ma.fields.List(ma.fields.Nested(HandoffActionOut), required=True)


class HandoffPage(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(HandoffOut), required=True)
    next_cursor = ma.fields.String(allow_none=True, required=True)


class RejectIn(StrictSchema):
    kind = ma.fields.String(required=True, validate=validate.OneOf(["not_ready", "bad_fit"]))
    reason = ma.fields.String(required=True, validate=validate.Length(1, 500))


class WonIn(StrictSchema):
    value = ma.fields.Decimal(required=True, places=2, as_string=True, allow_nan=False,
                              metadata={"description": "Deal value, e.g. \"12500.00\""})


class LostIn(StrictSchema):
    reason = ma.fields.String(required=True, validate=validate.Length(1, 500))


class NurtureIn(StrictSchema):
    campaign = ma.fields.String(required=True, validate=validate.Length(1, 80))
    knows = ma.fields.List(ma.fields.String(validate=validate.Length(1, 80)), load_default=list,
                           validate=validate.Length(max=100))
