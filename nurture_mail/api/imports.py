"""``/api/v1/imports``: upload a CSV (multipart), poll the job's progress, download the report.

The file is stored with the job and imported by an RQ job (``leads.imports``), enqueued after the commit; the report lists every row's outcome and reason.
"""
from __future__ import annotations

import json
from typing import Any

import marshmallow as ma
from flask import Response, stream_with_context, url_for
from flask_smorest.fields import Upload
from marshmallow import validate

from .. import services
from ..models import ImportJob
from .common import api_blueprint, not_found_doc
from .problems import PROBLEM_JSON, ApiProblem, ProblemSchema
from .schemas import ImportOut, Text
from .security import current_api_user, requires

bp = api_blueprint("api_imports", __name__, "/api/v1/imports", "CSV lead imports")

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


class ImportUpload(ma.Schema):
    """The multipart/form-data body: the CSV file and the import's options."""

    class Meta:
        unknown = ma.RAISE

    file = Upload(required=True, metadata={"description": "The CSV file (UTF-8 with or without BOM, or Latin-1)"})

    lead_source = Text(load_default=None, validate=validate.Length(max=120),
                                   metadata={"description": "lead_source of every imported lead"})
    campaign = Text(load_default=None, validate=validate.Length(max=80),
                                metadata={"description": "Enroll clean new leads in this campaign"})
    mapping = Text(load_default=None, validate=validate.Length(max=10000),
                               metadata={"description": 'JSON object "CSV header" -> "lead field"',
                                         "example": '{"E-Mail": "email", "Firma": "company"}'})
    check_deliverability = ma.fields.Boolean(load_default=None, allow_none=True,
                                             metadata={"description": "Check MX records (needs network)"})


def _job_or_404(session, import_id: int) -> ImportJob:
    job = session.get(ImportJob, import_id)
    if job is None:
        raise ApiProblem(404, f"no import with id {import_id}", field="import_id")
    return job


def _job_dict(job: ImportJob) -> dict[str, Any]:
    from ..leads.imports import import_progress

    return {
        "id": job.id, "filename": job.filename, "status": job.status, "lead_source": job.lead_source,
        "campaign": job.campaign_slug, "total_rows": job.total_rows, "processed_rows": job.processed_rows,
        "counts": dict(job.counts or {}), "error": job.error, "created_by": job.created_by,
        "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
        "progress": import_progress(job),
        "report_url": url_for("api_imports.report", import_id=job.id),
    }


def _mapping(raw: str | None) -> dict[str, str] | None:
    if raw is None or not raw.strip():
        return None
    try:
        mapping = json.loads(raw)
    except ValueError as error:
        raise ApiProblem(422, f"not valid JSON ({error})", field="mapping") from None
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise ApiProblem(422, 'expected a JSON object of strings: {"CSV header": "lead field"}', field="mapping")
    return mapping


@bp.route("", methods=["POST"])
@requires(bp, "imports:write")
@bp.arguments(ImportUpload, location="files", content_type="multipart/form-data")
@bp.response(202, ImportOut)
@bp.alt_response(413, schema=ProblemSchema, content_type=PROBLEM_JSON, description="The file is larger than 50 MB")
def upload(form: dict[str, Any]):
    """Upload a CSV: the import is queued and runs in the worker; poll ``GET /imports/{id}``."""
    from ..leads.errors import ImportOptionsError
    from ..leads.imports import create_import

    storage = form["file"]
    data = storage.stream.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise ApiProblem(413, f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB", field="file")
    svc = services()
    try:
        with svc.db.session() as session:
            job = create_import(svc, session, filename=storage.filename or "upload.csv", data=data,
                                lead_source=form.get("lead_source"), campaign_slug=form.get("campaign"),
                                mapping=_mapping(form.get("mapping")),
                                check_deliverability=form.get("check_deliverability"),
                                created_by=current_api_user().email, now=svc.clock.now(),
                                run_in_worker=True)
            session.flush()
            out = _job_dict(job)
    except UnicodeError as error:  # e.g. odd-length UTF-16: the bytes are not text in its encoding
        message = f"not readable as text ({getattr(error, 'reason', None) or error.__class__.__name__})"
        raise ApiProblem(422, f"file: {message}", errors=[{"field": "file", "message": message}]) from None
    except ImportOptionsError as error:
        field = {"campaign_slug": "campaign"}.get(error.field, error.field)
        raise ApiProblem(422, f"{field}: {error.message}", errors=[{"field": field, "message": error.message}]) from None
    return out, 202, {"Location": url_for("api_imports.get_import", import_id=out["id"])}


@bp.route("/<int(min=1, max=2147483647):import_id>", methods=["GET"])
@requires(bp, "imports:read")
@bp.response(200, ImportOut)
@not_found_doc(bp)
def get_import(import_id: int):
    """The job's status and progress (rows processed, counts by outcome)."""
    with services().db.session() as session:
        return _job_dict(_job_or_404(session, import_id))


@bp.route("/<int(min=1, max=2147483647):import_id>/report", methods=["GET"])
@requires(bp, "imports:read")
@bp.response(200, {"type": "string"}, content_type="text/csv",
             description="One line per row: row, email, outcome, reason, field (safe to open in a spreadsheet)")
@not_found_doc(bp)
def report(import_id: int):
    """The row-by-row report as CSV (cells starting with = + - @ are neutralised)."""
    from ..leads.imports import report_csv

    svc = services()
    with svc.db.session() as session:
        job = _job_or_404(session, import_id)
        filename = f"import-{job.id}-report.csv"

    def chunks():
        with svc.db.session() as session:
            yield from report_csv(session, import_id)

    response = Response(stream_with_context(chunks()), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
