"""Request and response schemas: marshmallow validates with them and apispec documents them,
so ``/api/openapi.json`` is generated from the very code that checks the input."""
from __future__ import annotations

import json
import math
from datetime import UTC
from typing import Any

import marshmallow as ma
from marshmallow import validate
from webargs.flaskparser import FlaskParser

from ..models import QUALIFICATION_ATTRIBUTES, EnrollmentState, HandoffState, LeadStatus

# ---------------------------------------------------------------------- common


#: Years a date-time in a request may have: the rest cannot be stored or compared safely.
MIN_YEAR, MAX_YEAR = 1900, 2999


class BoundedDateTime(ma.fields.AwareDateTime):
    """An aware date-time (naive input is read as UTC), in UTC, in years 1900-2999.

    ``0001-01-01T00:00:00+14:00`` parses but is before year 1 in UTC: a 422 on the field, not a 500.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any):
        result = super()._deserialize(value, attr, data, **kwargs)
        try:
            utc = result.astimezone(UTC)
        except (OverflowError, ValueError):
            utc = None
        if utc is None or not MIN_YEAR <= utc.year <= MAX_YEAR:
            raise ma.ValidationError(f"expected a date-time between the years {MIN_YEAR} and {MAX_YEAR}")
        return utc


def _aware(**kwargs):
    """A datetime that is always timezone-aware (naive input is read as UTC), in a storable range."""
    return BoundedDateTime(default_timezone=UTC, **kwargs)


def no_nul(value: Any, field: str | None = None) -> None:
    """No NUL character anywhere (PostgreSQL refuses it in text and in jsonb)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ma.ValidationError("contains a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            no_nul(key)
            no_nul(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            no_nul(item)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ma.ValidationError("NaN and Infinity are not JSON numbers")


class Text(ma.fields.String):
    """A string without NUL characters (PostgreSQL refuses them: a 422, not a 500)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any):
        result = super()._deserialize(value, attr, data, **kwargs)
        no_nul(result)
        return result


class JsonObject(ma.fields.Dict):
    """A JSON object of short text keys (at most ``max_keys``) and values without NUL, NaN or Infinity."""

    def __init__(self, *, scalars_only: bool = False, max_keys: int = 200, **kwargs: Any) -> None:
        super().__init__(keys=Text(), **kwargs)
        self.scalars_only = scalars_only
        self.max_keys = max_keys

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any):
        result = super()._deserialize(value, attr, data, **kwargs)
        if len(result) > self.max_keys:
            raise ma.ValidationError(f"at most {self.max_keys} keys")
        for key, item in result.items():
            if not 1 <= len(key) <= 80:
                raise ma.ValidationError("every name must be 1 to 80 characters")
            if self.scalars_only and item is not None and not isinstance(item, (str, int, float, bool)):
                raise ma.ValidationError(f"{key}: expected text, a number or true/false")
        no_nul(result)
        return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class StrictJsonParser(FlaskParser):
    """webargs' parser: NaN/Infinity in a JSON body are a 400 like any invalid JSON; the
    schema's ``unknown`` (RAISE) holds in the query string and the multipart body too."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": None, "querystring": None,
                                   "files": None}

    def _raw_load_json(self, req):
        from webargs import core

        if not core.is_json(req.mimetype):
            return core.missing
        raw = req.get_data(cache=True)
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as error:
            raise json.JSONDecodeError(f"Bytes decoding error : {error.reason}", doc=" ", pos=0) from error
        if not text:
            raise json.JSONDecodeError("empty body", doc="", pos=0)  # webargs: no body, not a bad one
        try:
            return json.loads(text, parse_constant=_no_constants)
        except json.JSONDecodeError:
            raise
        except ValueError as error:  # NaN, Infinity
            raise json.JSONDecodeError(str(error), doc=text, pos=0) from error

    def load_files(self, req, schema):
        """``location="files"`` is the whole multipart body: its form fields and its files, so one
        schema documents one ``multipart/form-data`` requestBody (OpenAPI 3 has no formData)."""
        from werkzeug.datastructures import CombinedMultiDict

        return self._makeproxy(CombinedMultiDict([req.files, req.form]), schema)


PARSER = StrictJsonParser()


class StrictSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class PageArgs(ma.Schema):
    class Meta:
        unknown = ma.RAISE  # ?stauts=new is a 422, not every lead

    limit = ma.fields.Integer(load_default=50, validate=validate.Range(1, 200),
                              metadata={"description": "Items per page (1-200)"})
    cursor = Text(load_default=None, validate=validate.Length(max=200),
                  metadata={"description": "The next_cursor of the previous page"})


class ReasonIn(StrictSchema):
    reason = Text(load_default=None, allow_none=True, validate=validate.Length(max=500))


# ---------------------------------------------------------------------- leads

_TEXT: dict[str, Any] = {"allow_none": True}


#: The ten qualification attributes of a short-term lead (seed 004); null = not known yet.
QualificationSchema = type("QualificationSchema", (StrictSchema,), {
    name: Text(allow_none=True, validate=validate.Length(max=2000)) for name in QUALIFICATION_ATTRIBUTES
})


class LeadFields(StrictSchema):
    first_name = Text(validate=validate.Length(max=120), **_TEXT)
    last_name = Text(validate=validate.Length(max=120), **_TEXT)
    title = Text(validate=validate.Length(max=200), **_TEXT)
    company = Text(validate=validate.Length(max=200), **_TEXT)
    lead_source = Text(validate=validate.Length(max=120), **_TEXT)
    timezone = Text(validate=validate.Length(max=64), **_TEXT,
                    metadata={"example": "Europe/Berlin"})
    consent = ma.fields.Boolean()
    industry_sic = Text(validate=validate.Length(max=8), **_TEXT)
    industry_naics = Text(validate=validate.Length(max=8), **_TEXT)
    revenue = ma.fields.Integer(validate=validate.Range(0, 10**15), **_TEXT)
    employees = ma.fields.Integer(validate=validate.Range(0, 10**8), **_TEXT)
    locations = ma.fields.Integer(validate=validate.Range(0, 10**6), **_TEXT)
    region = Text(validate=validate.Length(max=64), **_TEXT)
    qualification = ma.fields.Nested(QualificationSchema)
    custom_fields = JsonObject(scalars_only=True, metadata={
        "description": "name -> text, number or true/false (names 1-80 characters)",
        "additionalProperties": {"nullable": True}})


class LeadIn(LeadFields):
    """Create, or update the lead with this email (upsert): a known value is never blanked."""

    email = Text(required=True, validate=validate.Length(1, 320),
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
    email = Text(required=True)
    first_name = Text(allow_none=True)
    last_name = Text(allow_none=True)
    title = Text(allow_none=True)
    company = Text(allow_none=True)
    lead_source = Text(allow_none=True)
    timezone = Text(allow_none=True)
    consent = ma.fields.Boolean(required=True)
    status = ma.fields.Enum(LeadStatus, by_value=True, required=True)
    hygiene = ma.fields.List(Text(), required=True)
    scores = ma.fields.Nested(ScoreSchema, allow_none=True, required=True,
                              metadata={"description": "Fit and engagement (breakdown in the detail view)"})
    erased_at = _aware(allow_none=True)
    created_at = _aware(required=True)
    updated_at = _aware(required=True)


class EnrollmentOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    lead_id = ma.fields.Integer(required=True)
    campaign = Text(required=True)
    state = ma.fields.Enum(EnrollmentState, by_value=True, required=True)
    state_reason = Text(allow_none=True)
    touches_sent = ma.fields.Integer(required=True)
    next_send_at = _aware(allow_none=True)
    last_sent_at = _aware(allow_none=True)
    enrolled_at = _aware(required=True)
    enrolled_by = Text(allow_none=True)
    ended_at = _aware(allow_none=True)


class TimelineEntry(ma.Schema):
    at = _aware(required=True)
    kind = Text(required=True)
    text = Text(required=True)


class LeadDetail(LeadOut):
    industry_sic = Text(allow_none=True)
    industry_naics = Text(allow_none=True)
    revenue = ma.fields.Integer(allow_none=True)
    employees = ma.fields.Integer(allow_none=True)
    locations = ma.fields.Integer(allow_none=True)
    region = Text(allow_none=True)
    qualification = ma.fields.Dict(required=True)
    custom_fields = ma.fields.Dict(required=True)
    knowledge = ma.fields.Dict(keys=Text(), values=Text(), required=True,
                               metadata={"description": "topic -> unknown|exposed|engaged|known"})
    enrollments = ma.fields.List(ma.fields.Nested(EnrollmentOut), required=True)
    timeline = ma.fields.List(ma.fields.Nested(TimelineEntry), required=True,
                              metadata={"description": "The newest 100 entries, oldest first"})
    timeline_omitted = ma.fields.Integer(required=True, metadata={"description": "Older entries left out"})


class LeadUpserted(LeadDetail):
    outcome = Text(required=True, validate=validate.OneOf(["created", "updated", "unchanged"]))


class LeadFilter(PageArgs):
    email = Text(validate=validate.Length(1, 320), metadata={"description": "Exact address"})
    status = ma.fields.Enum(LeadStatus, by_value=True)
    source = Text(validate=validate.Length(max=120), metadata={"description": "lead_source"})
    campaign = Text(validate=validate.Length(max=80),
                    metadata={"description": "Slug of a campaign the lead is enrolled in"})
    fit_min = ma.fields.Float(validate=validate.Range(-1e9, 1e9))
    fit_max = ma.fields.Float(validate=validate.Range(-1e9, 1e9))
    engagement_min = ma.fields.Float(validate=validate.Range(-1e9, 1e9))
    engagement_max = ma.fields.Float(validate=validate.Range(-1e9, 1e9))
    updated_since = _aware()


class LeadPage(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(LeadOut), required=True)
    next_cursor = Text(allow_none=True, required=True,
                       metadata={"description": "Pass as ?cursor= for the next page; null at the end"})


# ---------------------------------------------------------------------- enrollments


class EnrollIn(StrictSchema):
    lead_id = ma.fields.Integer(validate=validate.Range(1, 2**31 - 1))
    email = Text(validate=validate.Length(1, 320))
    campaign = Text(required=True, validate=validate.Length(1, 80))
    knows = ma.fields.List(Text(validate=validate.Length(1, 80)), load_default=list,
                           validate=validate.Length(max=100),
                           metadata={"description": "Topics the prospect already knows: their steps are skipped"})

    @ma.validates_schema
    def _one_lead(self, data, **kwargs):
        if ("lead_id" in data) == ("email" in data):
            raise ma.ValidationError("give exactly one of lead_id or email", "lead_id")


# ---------------------------------------------------------------------- campaigns


class StepOut(ma.Schema):
    key = Text(required=True)
    position = ma.fields.Integer(required=True)
    stage = Text(required=True)
    subject = Text(required=True)
    teaches = ma.fields.List(Text(), required=True)
    requires = ma.fields.List(Text(), required=True)


class CampaignOut(ma.Schema):
    slug = Text(required=True)
    name = Text(required=True)
    description = Text(allow_none=True)
    active = ma.fields.Boolean(required=True)
    max_touches = ma.fields.Integer(required=True)
    cadence_seconds = ma.fields.Integer(required=True)
    enrolled = ma.fields.Dict(keys=Text(), values=ma.fields.Integer(), required=True,
                              metadata={"description": "Enrollments by state"})


class CampaignDetail(CampaignOut):
    steps = ma.fields.List(ma.fields.Nested(StepOut), required=True)


class TouchOut(ma.Schema):
    step_key = Text(required=True)
    subject = Text(required=True, metadata={"description": "The subject rendered for this lead"})
    subject_template = Text(required=True, metadata={"description": "The step's subject template (Jinja)"})
    send_at = _aware(required=True)
    local_time = Text(required=True)
    reason = Text(required=True)


class SkipOut(ma.Schema):
    step_key = Text(required=True)
    reason = Text(required=True)


class JourneyOut(ma.Schema):
    lead_id = ma.fields.Integer(required=True)
    campaign = Text(required=True)
    state = Text(required=True)
    timezone = Text(required=True)
    touches_sent = ma.fields.Integer(required=True)
    knowledge = ma.fields.Dict(keys=Text(), values=Text(), required=True)
    touches = ma.fields.List(ma.fields.Nested(TouchOut), required=True)
    skipped = ma.fields.List(ma.fields.Nested(SkipOut), required=True)
    outcome = Text(required=True)


# ---------------------------------------------------------------------- events

EXTERNAL_EVENT_KINDS = ("form", "webinar", "reply", "meeting")


class EventIn(StrictSchema):
    lead_id = ma.fields.Integer(validate=validate.Range(1, 2**31 - 1))
    email = Text(validate=validate.Length(1, 320))
    kind = Text(required=True, validate=validate.OneOf(EXTERNAL_EVENT_KINDS),
                metadata={"description": "form filled, webinar attended, reply, meeting booked"})
    at = _aware(load_default=None, allow_none=True, metadata={"description": "When it happened (default: now)"})
    topics = ma.fields.List(Text(validate=validate.Length(1, 80)), load_default=list,
                            validate=validate.Length(max=50), metadata={"description": "Topics it taught"})
    detail = JsonObject(load_default=None, allow_none=True, max_keys=100)
    uid = Text(load_default=None, allow_none=True, validate=validate.Length(1, 64),
               metadata={"description": "Your id of the event: the same uid is stored once"})

    @ma.validates_schema
    def _one_lead(self, data, **kwargs):
        if ("lead_id" in data) == ("email" in data):
            raise ma.ValidationError("give exactly one of lead_id or email", "lead_id")


class EventOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    lead_id = ma.fields.Integer(required=True)
    kind = Text(required=True)
    topic = Text(allow_none=True)
    at = _aware(required=True)
    uid = Text(allow_none=True)
    detail = ma.fields.Dict(required=True)


# ---------------------------------------------------------------------- imports


class ImportOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    filename = Text(required=True)
    status = Text(required=True)
    lead_source = Text(allow_none=True)
    campaign = Text(allow_none=True)
    total_rows = ma.fields.Integer(allow_none=True)
    processed_rows = ma.fields.Integer(required=True)
    counts = ma.fields.Dict(required=True)
    error = Text(allow_none=True)
    created_by = Text(allow_none=True)
    created_at = _aware(required=True)
    started_at = _aware(allow_none=True)
    finished_at = _aware(allow_none=True)
    progress = ma.fields.Dict(required=True, metadata={"description": "import_progress() of the job"})
    report_url = Text(required=True)


# ---------------------------------------------------------------------- handoffs


class HandoffFilter(PageArgs):
    state = ma.fields.Enum(HandoffState, by_value=True)
    lead_id = ma.fields.Integer(validate=validate.Range(1, 2**31 - 1))


class HandoffActionOut(ma.Schema):
    action = Text(required=True)
    actor = Text(required=True)
    via = Text(required=True)
    at = _aware(required=True)
    detail = ma.fields.Dict(required=True)


class HandoffOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    lead_id = ma.fields.Integer(required=True)
    campaign_id = ma.fields.Integer(allow_none=True)
    reason = Text(required=True)
    reason_detail = Text(allow_none=True)
    state = ma.fields.Enum(HandoffState, by_value=True, required=True)
    rep = Text(allow_none=True, required=True, metadata={"description": "Email of the owning rep"})
    created_at = _aware(required=True)
    notified_at = _aware(allow_none=True)
    first_action_at = _aware(allow_none=True)
    sla_due_at = _aware(allow_none=True)
    reject_kind = Text(allow_none=True)
    reject_reason = Text(allow_none=True)
    deal_value = ma.fields.Decimal(allow_none=True, as_string=True)
    lost_reason = Text(allow_none=True)
    closed_at = _aware(allow_none=True)


class HandoffDetail(HandoffOut):
    dossier = ma.fields.Dict(required=True)
    actions = ma.fields.List(ma.fields.Nested(HandoffActionOut), required=True)


class HandoffPage(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(HandoffOut), required=True)
    next_cursor = Text(allow_none=True, required=True)


class RejectIn(StrictSchema):
    kind = Text(required=True, validate=validate.OneOf(["not_ready", "bad_fit"]))
    reason = Text(required=True, validate=validate.Length(1, 500))


class WonIn(StrictSchema):
    value = ma.fields.Decimal(required=True, places=2, as_string=True, allow_nan=False,
                              metadata={"description": "Deal value, e.g. \"12500.00\""})


class LostIn(StrictSchema):
    reason = Text(required=True, validate=validate.Length(1, 500))


class NurtureIn(StrictSchema):
    campaign = Text(required=True, validate=validate.Length(1, 80))
    knows = ma.fields.List(Text(validate=validate.Length(1, 80)), load_default=list,
                           validate=validate.Length(max=100))
