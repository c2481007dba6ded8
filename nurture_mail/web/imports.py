"""CSV imports in the browser: upload, check the detected reading and mapping, run, watch the
progress, then read (and download) the row-by-row report."""
from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import func, select

from .. import services
from ..auth import role_required
from ..exceptions import NotFound
from ..leads.batch import OUTCOMES
from ..leads.errors import ImportOptionsError, ImportStateError
from ..leads.imports import create_import, import_progress, report_csv, resume_import, summary_line
from ..leads.staging import discard, load_staged, preview_file, stage_upload, target_choices
from ..models import Campaign, ImportJob, ImportRowResult
from . import errors

bp = Blueprint("imports", __name__, url_prefix="/imports", template_folder="templates")
errors.install(bp)

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
PAGE_SIZE = 100
#: The report's default view when the import is done: rows that were not imported cleanly.
ATTENTION = "attention"
ATTENTION_OUTCOMES = ("flagged", "rejected")
STATUS_LABELS = {"queued": "Waiting for a worker", "running": "Importing", "done": "Finished", "failed": "Failed"}


def _campaigns(session) -> list[tuple[str, str]]:
    return list(session.execute(select(Campaign.slug, Campaign.name).order_by(Campaign.name)).tuples())


@bp.get("/")
@role_required("imports:read")
def index() -> str:
    with services().db.session() as session:
        jobs = list(session.scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(50)))
        rows = [{"job": import_progress(j), "summary": summary_line(j.counts or {}, j.processed_rows)} for j in jobs]
        campaigns = _campaigns(session)
    return render_template("imports/index.html", imports=rows, campaigns=campaigns, errors={},
                           can_write=current_user.can("imports:write"), form={})


@bp.post("/")
@role_required("imports:write")
def upload() -> ResponseReturnValue:
    svc = services()
    storage = request.files.get("file")
    form: dict[str, Any] = {"lead_source": (request.form.get("lead_source") or "").strip(),
            "campaign": request.form.get("campaign") or "",
            "check_deliverability": bool(request.form.get("check_deliverability"))}
    problem: tuple[str, str] | None = None
    if storage is None or not storage.filename:
        problem = ("file", "choose a CSV file to upload")
    elif len(form["lead_source"]) > 120:
        problem = ("lead_source", "at most 120 characters")
    else:
        data = storage.stream.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            problem = ("file", f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
        else:
            try:
                token = stage_upload(svc.config.instance_path, storage.filename, data, form)
            except ImportOptionsError as exc:
                problem = (exc.field or "file", exc.message)
            except UnicodeError as exc:
                problem = ("file", f"not readable as text ({exc})")
    if problem:
        with svc.db.session() as session:
            campaigns = _campaigns(session)
        return render_template("imports/index.html", imports=None, campaigns=campaigns, can_write=True,
                               errors={problem[0]: problem[1]}, form=form), 422
    return redirect(url_for(".review", token=token), code=303)


@bp.route("/new/<token>", methods=["GET", "POST"])
@role_required("imports:write")
def review(token: str) -> ResponseReturnValue:
    """The detected reading of the file and its mapping; adjust, then run."""
    svc = services()
    try:
        filename, data, options = load_staged(svc.config.instance_path, token)
    except NotFound as exc:
        flash(str(exc), "error")
        return redirect(url_for(".index"), code=303)
    mapping = None
    if request.method == "POST":
        mapping = {request.form.get(f"header.{i}", ""): request.form.get(f"map.{i}", "")
                   for i in range(_int(request.form.get("columns"), 0, 500)) if request.form.get(f"header.{i}")}
        options = {**options, "lead_source": (request.form.get("lead_source") or "").strip(),
                   "campaign": request.form.get("campaign") or "",
                   "check_deliverability": bool(request.form.get("check_deliverability"))}
    error = None
    try:
        preview = preview_file(data, mapping)
    except ImportOptionsError as exc:
        error, preview = exc.message, preview_file(data)
    if request.method == "POST" and request.form.get("action") == "run" and error is None:
        try:
            with svc.db.session() as session:
                job = create_import(svc, session, filename=filename, data=data,
                                    lead_source=options.get("lead_source") or None,
                                    campaign_slug=options.get("campaign") or None, mapping=preview.mapping(),
                                    check_deliverability=bool(options.get("check_deliverability")),
                                    created_by=current_user.email, now=svc.clock.now(), run_in_worker=True)
                session.flush()
                import_id = job.id
        except ImportOptionsError as exc:
            error = f"{exc.field}: {exc.message}" if exc.field else exc.message
        else:
            discard(svc.config.instance_path, token)
            return redirect(url_for(".show", import_id=import_id), code=303)
    with svc.db.session() as session:
        campaigns = _campaigns(session)
    return render_template("imports/review.html", token=token, filename=filename, preview=preview, options=options,
                           campaigns=campaigns, error=error, choices=target_choices), 422 if error else 200


def _int(raw, default: int, top: int) -> int:
    try:
        return max(0, min(int(raw), top))
    except (TypeError, ValueError):
        return default


def _job_or_404(session, import_id: int) -> ImportJob:
    job = session.get(ImportJob, import_id)
    if job is None:
        abort(404)
    return job


def _progress(job: ImportJob) -> dict:
    data = import_progress(job)
    data["status_label"] = STATUS_LABELS.get(job.status, job.status)
    data["summary"] = summary_line(job.counts or {}, job.processed_rows) + (
        f" of {job.total_rows:,}" if job.total_rows is not None and job.status != "done" else "")
    return data


@bp.get("/<int:import_id>")
@role_required("imports:read")
def show(import_id: int) -> str:
    outcome = request.args.get("outcome") or None
    if outcome not in (None, "all", ATTENTION, *OUTCOMES):
        outcome = None
    after = _int(request.args.get("after"), 0, 2**31 - 1)
    with services().db.session() as session:
        job = _job_or_404(session, import_id)
        progress = _progress(job)
        by_outcome = dict(session.execute(
            select(ImportRowResult.outcome, func.count()).where(ImportRowResult.import_id == import_id)
            .group_by(ImportRowResult.outcome)).tuples().all())
        attention = sum(by_outcome.get(o, 0) for o in ATTENTION_OUTCOMES)
        if outcome is None:  # the rows someone should look at first, when there are any
            outcome = ATTENTION if attention and job.status == "done" else "all"
        query = select(ImportRowResult).where(ImportRowResult.import_id == import_id, ImportRowResult.row > after)
        if outcome == ATTENTION:
            query = query.where(ImportRowResult.outcome.in_(ATTENTION_OUTCOMES))
        elif outcome != "all":
            query = query.where(ImportRowResult.outcome == outcome)
        found = list(session.scalars(query.order_by(ImportRowResult.row).limit(PAGE_SIZE + 1)))
        more = len(found) > PAGE_SIZE
        rows = [{"row": r.row, "email": r.email, "outcome": r.outcome, "field": r.field, "reason": r.reason,
                 "lead_id": r.lead_id} for r in found[:PAGE_SIZE]]
        options = dict(job.options or {})
    return render_template("imports/show.html", job=progress, rows=rows, outcome=outcome, more=more,
                           next_after=rows[-1]["row"] if rows else after, by_outcome=by_outcome,
                           outcomes=OUTCOMES, options=options, attention=attention, page_size=PAGE_SIZE)


@bp.post("/<int:import_id>/resume")
@role_required("imports:write")
def resume(import_id: int) -> ResponseReturnValue:
    """Queue a failed import again: it resumes after the last committed chunk."""
    svc = services()
    try:
        with svc.db.session() as session:
            resume_import(svc, session, import_id, svc.clock.now(), by=current_user.email)
    except NotFound:
        abort(404)
    except ImportStateError as exc:
        flash(exc.message, "error")
    else:
        flash("Queued again: the import resumes after the last rows it committed.", "success")
    return redirect(url_for(".show", import_id=import_id), code=303)


@bp.get("/<int:import_id>/progress")
@role_required("imports:read")
def progress(import_id: int) -> Response:
    with services().db.session() as session:
        return jsonify(_progress(_job_or_404(session, import_id)))


@bp.get("/<int:import_id>/report.csv")
@role_required("imports:read")
def report(import_id: int) -> Response:
    svc = services()
    with svc.db.session() as session:
        _job_or_404(session, import_id)

    def lines():
        with svc.db.session() as session:
            yield from report_csv(session, import_id)

    response = Response(stream_with_context(lines()), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="import-{import_id}-report.csv"'
    return response
