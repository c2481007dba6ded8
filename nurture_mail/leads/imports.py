"""A CSV import as a job: created (and checked) at upload, run by an RQ worker or the CLI, polled.

``create_import`` refuses a file or option that cannot work before anything is stored (no
header, no email column, a mapping to a field we do not have, an unknown campaign), so a job
that is queued can only fail on rows, and a bad row is an outcome, never a failure.
``run_import`` commits every chunk with its row results and the job's progress, so a poller
sees the job move and a crash loses at most one chunk: the job is marked ``failed`` with the
error, and running it again resumes after the last committed chunk. A ``done`` import run
again does nothing.

One runner at a time: a runner claims the import with a Redis lease (renewed after every
chunk) and a conditional ``UPDATE … SET status='running' WHERE status IN (…)``; a second
runner (the job queued twice, a CLI rerun while the worker runs it) finds it claimed and
returns without touching it. A ``running`` import whose lease expired (its runner died) can
be claimed again and resumes. The lease names its runner (host and pid): a runner killed
outright (SIGKILL, OOM) leaves its import ``running``, and ``recover_interrupted`` (run by the
CLI before an import) marks it ``failed`` as soon as that pid is gone, keeping its file so
that it can be resumed.

The uploaded file (``instance/imports/<id>.csv``) is deleted when the import ends: done, or
failed on its last attempt (the RQ job is retried ``IMPORT_RETRIES`` times first). The report
lives in the database; ``erase_import_traces`` blanks a lead's address in it (GDPR erase).
"""
from __future__ import annotations

import csv
import io
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from ..aftercommit import enqueue_after_commit
from ..exceptions import NotFound
from ..models import Campaign, ImportJob, ImportRowResult
from ..nurture.sql import analyze_after_bulk, rows_changed
from .batch import CHUNK_SIZE, OUTCOMES, ImportContext, RowResult, import_chunk, prepare_chunk, undo_chunk
from .bulk import Bulk
from .csvfile import parse
from .errors import ImportOptionsError, ImportStateError
from .hygiene import Hygiene, HygieneConfigError

__all__ = ["ImportOptionsError", "ImportStateError", "create_import", "enqueue_import", "erase_import_traces",
           "import_file_path", "import_progress", "recover_interrupted", "report_csv", "resume_import", "run_import",
           "summary_line", "REPORT_HEADER"]

log = logging.getLogger(__name__)

REPORT_HEADER = ("row", "email", "outcome", "field", "reason", "lead_id")
#: A cell starting with one of these is a formula to a spreadsheet (OWASP "CSV Injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


#: Automatic re-runs of a failed import job (each resumes after the last committed chunk).
IMPORT_RETRIES = 2
#: The RQ job that runs an import (by import path: the domain never imports ``jobs/``).
RUN_JOB = "nurture_mail.jobs.imports.run_import_job"
#: A runner's claim on an import (seconds); renewed after every chunk, so it only runs out when the runner died.
LEASE_SECONDS = 600

_RENEW = """if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end return 0"""
_RELEASE = """if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"""


def import_file_path(config, import_id: int) -> Path:
    return Path(config.instance_path) / "imports" / f"{import_id}.csv"


def _lease_key(import_id: int) -> str:
    return f"nurture:import:{import_id}:runner"


def create_import(svc, session: Session, *, filename: str, data: bytes, lead_source: str | None,
                  campaign_slug: str | None = None, mapping: dict[str, str] | None = None,
                  check_deliverability: bool | None = None, created_by: str | None = None,
                  now: datetime, run_in_worker: bool = False) -> ImportJob:
    """Check the file and options, store the bytes under ``instance/imports/<id>.csv``; status ``queued``.

    ``run_in_worker``: the run job is enqueued once ``session`` commits (otherwise the caller runs
    it, as the CLI does, with :func:`run_import`).
    """
    if lead_source is not None and len(lead_source.strip()) > 120:
        raise ImportOptionsError("longer than 120 characters", "lead_source")
    if campaign_slug:
        if session.scalar(select(Campaign.id).where(Campaign.slug == campaign_slug)) is None:
            known = ", ".join(session.scalars(select(Campaign.slug).order_by(Campaign.slug))) or "none"
            raise ImportOptionsError(f"no campaign {campaign_slug!r} (campaigns: {known})", "campaign_slug")
    try:  # checked here, so a queued job cannot fail on the rules file
        Hygiene.from_config(svc.config)
    except HygieneConfigError as exc:
        raise ImportOptionsError(f"the hygiene rules cannot be used ({exc})", "hygiene") from None
    parsed = parse(data, mapping)
    if check_deliverability is None:
        check_deliverability = svc.config.check_deliverability
    job = ImportJob(
        filename=(Path(filename or "import.csv").name or "import.csv")[:300],
        status="queued",
        lead_source=(lead_source or "").strip() or "import",
        campaign_slug=campaign_slug or None,
        options={
            "mapping": dict(mapping or {}),
            "check_deliverability": bool(check_deliverability),
            "encoding": parsed.encoding,
            "delimiter": parsed.delimiter,
            "columns": {c.header: c.target for c in parsed.columns if c.header},
        },
        total_rows=parsed.count_rows(),
        processed_rows=0,
        counts={},
        created_by=created_by,
        created_at=now,
    )
    session.add(job)
    session.flush()
    path = import_file_path(svc.config, job.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if run_in_worker:
        enqueue_import(svc, session, job.id)
    return job


def enqueue_import(svc, session: Session, import_id: int) -> None:
    """Queue ``jobs/imports.run_import_job`` once ``session`` commits (re-run up to ``IMPORT_RETRIES`` times)."""
    from rq import Retry

    enqueue_after_commit(session, svc.queue, RUN_JOB, import_id, job_timeout=3600, result_ttl=86400,
                         description=f"import {import_id}", retry=Retry(max=IMPORT_RETRIES))


def resume_import(svc, session: Session, import_id: int, now: datetime, *, by: str) -> ImportJob:
    """Queue a failed (or never started) import again; it resumes after its last committed chunk.

    Refused (``ImportStateError``) when it is done, when its file is gone (it failed on its last
    attempt: upload it again) or while a runner holds it.
    """
    job = session.get(ImportJob, import_id)
    if job is None:
        raise NotFound(f"no import with id {import_id}")
    if job.status == "done":
        raise ImportStateError(f"import {import_id} is done; there is nothing to resume", "status")
    if svc.redis.exists(_lease_key(import_id)):
        raise ImportStateError(f"import {import_id} is being run; wait for it to end", "status")
    if not import_file_path(svc.config, import_id).exists():
        raise ImportStateError(f"import {import_id} failed on its last attempt and its file was deleted: "
                               "upload the file again", "file")
    log.info("import %s queued again by %s at %s", import_id, by, now.isoformat())
    enqueue_import(svc, session, import_id)
    return job


def erase_import_traces(session: Session, lead_id: int | None, email: str | None) -> int:
    """Blank the address in every import report row of this lead or this address (GDPR erase).

    Rows keep their outcome and reason (the import's statistics); the rows matched are those
    linked to ``lead_id`` and those whose address is ``email`` in any case (a rejected row has
    no lead). Returns the number of rows changed. The uploaded files themselves are deleted
    when each import ends.
    """
    conditions = []
    if lead_id is not None:
        conditions.append(ImportRowResult.lead_id == lead_id)
    address = (email or "").strip().lower()
    if address:
        conditions.append(func.lower(ImportRowResult.email) == address)
    if not conditions:
        return 0
    result = session.execute(update(ImportRowResult).where(or_(*conditions), ImportRowResult.email.is_not(None))
                             .values(email=None).execution_options(synchronize_session=False))
    return rows_changed(result) or 0


def _remove_file(svc, import_id: int) -> None:
    try:
        import_file_path(svc.config, import_id).unlink(missing_ok=True)
    except OSError:
        log.warning("import %s: could not delete its uploaded file", import_id, exc_info=True)


def _claim(svc, import_id: int) -> tuple[str | None, ImportJob]:
    """``(lease token, job)``: the token is None when the import is done or another runner holds it."""
    with svc.db.session() as session:
        job = session.get(ImportJob, import_id)
        if job is None:
            raise NotFound(f"no import {import_id}")
        if job.status == "done":
            return None, job
    token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
    if not svc.redis.set(_lease_key(import_id), token, nx=True, ex=LEASE_SECONDS):
        log.info("import %s is being run by another runner; leaving it", import_id)
        return None, job
    # The lease is ours, so a "running" import has no live runner (it died): it may be resumed.
    with svc.db.session() as session:
        claimed = session.execute(
            update(ImportJob).where(ImportJob.id == import_id, ImportJob.status.in_(("queued", "failed", "running")))
            .values(status="running").execution_options(synchronize_session=False)).rowcount
        job = session.get(ImportJob, import_id)
    if claimed != 1:
        _release(svc, import_id, token)
        return None, job
    return token, job


def _runner_gone(lease: str | None) -> str | None:
    """Why the runner holding ``lease`` is known to be gone (None: it may be alive, on another host)."""
    if lease is None:
        return "its lease expired"
    rest = lease.rsplit(":", 2)  # host:pid:random
    if len(rest) != 3 or not rest[1].isdigit():
        return None
    host, pid = rest[0], int(rest[1])
    if host != socket.gethostname() or pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"its runner, pid {pid}, is gone"
    except PermissionError:  # alive, someone else's
        return None
    return None


def recover_interrupted(svc, now: datetime) -> list[tuple[ImportJob, str]]:
    """Mark ``failed`` every ``running`` import whose runner is gone; returns ``(job, why)`` of each.

    Gone: its lease expired (no renewal for ``LEASE_SECONDS``), or it names a process of this
    host that no longer exists (a CLI import killed with SIGKILL). Its file is kept: the rows up
    to ``processed_rows`` are committed, and ``resume_import`` carries on after them.
    """
    recovered: list[tuple[ImportJob, str]] = []
    with svc.db.session() as session:
        running = session.scalars(select(ImportJob).where(ImportJob.status == "running")).all()
    for job in running:
        key = _lease_key(job.id)
        lease = svc.redis.get(key)
        why = _runner_gone(lease.decode() if isinstance(lease, bytes) else lease)
        if why is None:
            continue
        if lease is not None and not svc.redis.eval(_RELEASE, 1, key, lease):
            continue  # a new runner took it meanwhile
        with svc.db.session() as session:
            changed = session.execute(
                update(ImportJob).where(ImportJob.id == job.id, ImportJob.status == "running")
                .values(status="failed", finished_at=now,
                        error=f"interrupted after row {job.processed_rows or 0}: {why}")
                .execution_options(synchronize_session=False)).rowcount
            if changed:
                job = session.get(ImportJob, job.id)
                log.warning("import %s was interrupted (%s): marked failed", job.id, why)
                recovered.append((job, why))
    return recovered


class ClaimLost(RuntimeError):
    """This runner's lease ran out and another runner may have the import now: stop, touch nothing."""


def _renew(svc, import_id: int, token: str) -> None:
    if not svc.redis.eval(_RENEW, 1, _lease_key(import_id), token, LEASE_SECONDS):
        raise ClaimLost(f"import {import_id}: lost its claim (the lease expired and another runner took it)")


def _release(svc, import_id: int, token: str) -> None:
    try:
        svc.redis.eval(_RELEASE, 1, _lease_key(import_id), token)
    except Exception:  # the lease expires by itself
        log.warning("import %s: could not release its lease", import_id, exc_info=True)


def run_import(svc, import_id: int, *, progress: Callable[[int], None] | None = None,
               final_attempt: bool = True) -> ImportJob:
    """Run (or resume) an import; ``progress(n)`` is called with the rows done after each chunk.

    Returns the job as it ends (or as it is, untouched, when it is done or another runner has
    it). A crash marks the job ``failed`` with the error and re-raises; on the ``final_attempt``
    the uploaded file is deleted too (no resume after that), as it is when the import is done.
    """
    token, job = _claim(svc, import_id)
    if token is None:
        return job
    try:
        return _run_claimed(svc, import_id, token, progress, final_attempt)
    finally:
        _release(svc, import_id, token)


def _run_claimed(svc, import_id: int, token: str, progress: Callable[[int], None] | None,
                 final_attempt: bool) -> ImportJob:
    with svc.db.session() as session:
        job = session.get(ImportJob, import_id)
        resume_at = job.processed_rows or 0
        job.error = None
        job.started_at = job.started_at or svc.clock.now()
        job.finished_at = None
        session.flush()
        options = dict(job.options or {})
        campaign_slug, source = job.campaign_slug, job.lead_source
        counts: dict[str, int] = dict(job.counts or {}) if resume_at else {}
        first_seen = _first_seen(session, import_id) if resume_at else {}
        total_rows = job.total_rows
    try:
        campaign_id = None
        if campaign_slug:
            with svc.db.session() as session:
                campaign_id = session.scalar(select(Campaign.id).where(Campaign.slug == campaign_slug))
            if campaign_id is None:
                raise NotFound(f"campaign {campaign_slug!r} no longer exists")
        data = import_file_path(svc.config, import_id).read_bytes()
        parsed = parse(data, options.get("mapping") or {})
        ctx = ImportContext(hygiene=Hygiene.from_config(svc.config), source=source, now=svc.clock.now(),
                            check_deliverability=bool(options.get("check_deliverability")),
                            campaign_id=campaign_id, default_timezone=svc.config.default_timezone,
                            first_seen=first_seen)
        processed = resume_at
        if progress and resume_at:
            progress(resume_at)
        pending = _chunks(parsed.rows(), CHUNK_SIZE, skip=resume_at)
        chunk = _prepared(next(pending, None), ctx)
        while chunk is not None:
            ctx.now = svc.clock.now()
            size = len(chunk)
            upcoming: list = []  # the next chunk, once prepared
            counts_before = dict(counts)
            try:
                _write_chunk(svc, import_id, chunk, ctx, counts, processed + size, pending, upcoming, ahead=True)
            except Exception as exc:
                if not _is_unique_violation(exc):
                    raise
                # An address or an enrollment created meanwhile by someone else: the chunk is rolled
                # back; redone the way that reads what the inserts return and merges into theirs.
                log.info("import %s: a row of the chunk after row %s was created meanwhile; chunk redone",
                         import_id, processed)
                undo_chunk(ctx)
                counts.clear()
                counts.update(counts_before)
                _write_chunk(svc, import_id, chunk, ctx, counts, processed + size, pending, upcoming, ahead=False)
            processed += size
            chunk = upcoming[0] if upcoming else _prepared(next(pending, None), ctx)
            _rq_progress(import_id, processed, total_rows)
            if progress:
                progress(size)
            _renew(svc, import_id, token)
        with svc.db.session() as session:
            job = session.get(ImportJob, import_id)
            job.status = "done"
            job.processed_rows = processed
            job.total_rows = processed
            job.counts = dict(counts)
            job.finished_at = svc.clock.now()
        _rq_progress(import_id, processed, processed)
        _remove_file(svc, import_id)
        # The planner must know the new leads and enrollments before the next tick chooses.
        analyze_after_bulk(svc.db, ["lead", "enrollment"], counts.get("created", 0) + counts.get("enrolled", 0))
        return job
    except ClaimLost:
        log.error("import %s: lost its claim; the runner that has it now finishes it", import_id)
        raise
    except BaseException as exc:
        log.exception("import %s failed", import_id)
        with svc.db.session() as session:
            job = session.get(ImportJob, import_id)
            job.status = "failed"
            job.error = f"{type(exc).__name__}: {exc}"[:4000] if not isinstance(exc, KeyboardInterrupt) \
                else "interrupted"
            job.finished_at = svc.clock.now()
        if final_attempt:
            _remove_file(svc, import_id)
        raise


def _write_chunk(svc, import_id: int, chunk, ctx: ImportContext, counts: dict[str, int], processed: int,
                 pending: Iterator[list[tuple[int, dict[str, str]]]], upcoming: list, *, ahead: bool) -> None:
    """One chunk in its own transaction: its leads, enrollments, row results and the job's progress.

    On PostgreSQL the writes go out in a pipeline (``_overlapped``) and, while the server works on
    them, the next chunk is checked (into ``upcoming``, once). ``ahead``: the new rows take ids
    drawn beforehand, so no write is awaited (``batch.import_chunk``).
    """
    with svc.db.session() as session, ExitStack() as stack:
        commits: list[Callable[[], None]] = []

        def enter_pipeline() -> None:
            commits.append(stack.enter_context(_overlapped(session)))

        results = import_chunk(session, chunk, ctx, enter_pipeline) if ahead else import_chunk(session, chunk, ctx)
        if not commits:
            enter_pipeline()
        _count(counts, results)
        _store_results(session, import_id, results)
        _store_progress(session, import_id, processed, counts)
        commits[0]()
        if not upcoming:  # while the server writes this chunk and commits, the next chunk's checks
            upcoming.append(_prepared(next(pending, None), ctx))


def _is_unique_violation(exc: BaseException) -> bool:
    """A PostgreSQL unique violation (SQLSTATE 23505), raised by psycopg or wrapped by SQLAlchemy."""
    return "23505" in (getattr(exc, "sqlstate", None), getattr(getattr(exc, "orig", None), "sqlstate", None))


def _prepared(rows: list[tuple[int, dict[str, str]]] | None, ctx: ImportContext):
    return None if rows is None else prepare_chunk(rows, ctx)


@contextmanager
def _overlapped(session: Session) -> Iterator[Callable[[], None]]:
    """Statements that need no result, sent without waiting for it; yields ``commit()`` to queue the COMMIT.

    On PostgreSQL this is psycopg's pipeline mode on the session's connection: the row results,
    the progress and the COMMIT go out at once and the server works on them while this process
    goes on (preparing the next chunk); leaving the block waits for them all (an error in any
    of them is raised there, and the session rolls back). Elsewhere (SQLite, in-process)
    statements run as they come and ``commit()`` does nothing: the session commits as usual.
    """
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        yield lambda: None
        return
    raw = connection.connection.driver_connection
    assert raw is not None
    with raw.pipeline():
        cursor = raw.cursor()
        yield lambda: cursor.execute("COMMIT")
    # Back out of the pipeline, the COMMIT has been answered: the session's own commit finds nothing to do.


def _store_progress(session: Session, import_id: int, processed: int, counts: dict[str, int]) -> None:
    """The job's ``processed_rows`` and ``counts``, in the chunk's transaction (no result awaited)."""
    Bulk(session).update_where_in(ImportJob.__table__, "id", [import_id],
                                  {"processed_rows": processed, "counts": dict(counts)})


def _chunks(rows: Iterator[tuple[int, dict[str, str]]], size: int, skip: int = 0):
    chunk: list[tuple[int, dict[str, str]]] = []
    for index, row in enumerate(rows):
        if index < skip:
            continue
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _first_seen(session: Session, import_id: int) -> dict[str, tuple[int, int | None]]:
    """For a resumed import: the first row of every address already imported."""
    seen: dict[str, tuple[int, int | None]] = {}
    rows = session.execute(
        select(ImportRowResult.email, ImportRowResult.row, ImportRowResult.lead_id)
        .where(ImportRowResult.import_id == import_id, ImportRowResult.outcome != "rejected")
        .order_by(ImportRowResult.row))
    for email, row, lead_id in rows:
        seen.setdefault(email, (row, lead_id))
    return seen


def _store_results(session: Session, import_id: int, results: list[RowResult]) -> None:
    """The chunk's row results in one batched INSERT at the driver level (``bulk``)."""
    Bulk(session).insert(
        ImportRowResult.__table__, ["import_id", "row", "email", "outcome", "reason", "field", "lead_id"],
        [(import_id, r.row, (r.email or "")[:320] or None, r.outcome, r.reason[:1000] or None, r.field, r.lead_id)
         for r in results])


def _count(counts: dict[str, int], results: list[RowResult]) -> None:
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
        if r.enrolled:
            counts["enrolled"] = counts.get("enrolled", 0) + 1
        if "not enrolled:" in r.reason:
            counts["not_enrolled"] = counts.get("not_enrolled", 0) + 1


def _rq_progress(import_id: int, processed: int, total: int | None) -> None:
    """Mirror the progress into the RQ job's meta when running inside one (rq dashboards show it)."""
    from rq import get_current_job

    job = get_current_job()
    if job is not None:
        job.meta["progress"] = {"import_id": import_id, "processed_rows": processed, "total_rows": total}
        job.save_meta()


def summary_line(counts: Mapping[str, Any], total: int | None = None) -> str:
    """``"9 rows: 4 created, 1 merged, 2 flagged, 2 rejected"`` (only the outcomes that happened)."""
    total = sum(int(counts.get(o, 0)) for o in OUTCOMES) if total is None else total
    parts = [f"{counts[o]} {o}" for o in OUTCOMES if counts.get(o)]
    return f"{total} rows" + (": " + ", ".join(parts) if parts else "")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def import_progress(job: ImportJob) -> dict[str, Any]:
    """What a poller needs: status, rows done of total, percent, counts per outcome, error, times."""
    total = job.total_rows
    done = job.processed_rows or 0
    percent = 100.0 if job.status == "done" else (round(100.0 * done / total, 1) if total else 0.0)
    return {
        "id": job.id,
        "filename": job.filename,
        "status": job.status,
        "lead_source": job.lead_source,
        "campaign_slug": job.campaign_slug,
        "total_rows": total,
        "processed_rows": done,
        "percent": percent,
        "counts": dict(job.counts or {}),
        "error": job.error,
        "created_by": job.created_by,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }


def safe_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text: one starting with = + - @ TAB CR gets a leading ``'``."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


def _line(cells: tuple[Any, ...]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([safe_cell(c) for c in cells])
    return buffer.getvalue()


def report_csv(session: Session, import_id: int) -> Iterator[str]:
    """The row-by-row report: a header line, then ``row,email,outcome,field,reason,lead_id`` per row.

    Every cell is formula-safe (OWASP CSV injection guidance), so it opens safely in Excel,
    LibreOffice or Google Sheets. Streams: a 100k-row report is never built in memory.
    """
    if session.get(ImportJob, import_id) is None:  # raised now, not at the first next()
        raise NotFound(f"no import {import_id}")
    return _report_lines(session, import_id)


def _report_lines(session: Session, import_id: int) -> Iterator[str]:
    yield _line(REPORT_HEADER)
    rows = session.execute(
        select(ImportRowResult.row, ImportRowResult.email, ImportRowResult.outcome, ImportRowResult.field,
               ImportRowResult.reason, ImportRowResult.lead_id)
        .where(ImportRowResult.import_id == import_id).order_by(ImportRowResult.row)
        .execution_options(yield_per=1000))
    for row in rows:
        yield _line(tuple(row))
