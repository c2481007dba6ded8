"""The one way the domain queues background work: an RQ job, enqueued once the session commits.

A worker must find the rows a job is about, so a job is never enqueued before the transaction
that wrote them commits, and never at all when it rolls back. Domain code names the job by its
import path (``"nurture_mail.jobs.send.send_batch"``), so no domain module imports ``jobs/``::

    enqueue_after_commit(session, svc.queue, "nurture_mail.jobs.imports.run_import_job", job.id,
                         job_timeout=3600)

Enqueue options are RQ's (``job_timeout``, ``retry``, ``job_id``, ``description``, …). A job
whose id the caller needs (to report it) gets ``job_id=new_job_id()`` up front. An enqueue that
fails after the commit (Redis down) is logged, not raised: the rows are committed, and every
caller has a sweeper that finds work never picked up (the tick's lease, sales housekeeping,
an import's ``resume``).
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from rq import Queue
from sqlalchemy import event
from sqlalchemy.orm import Session

__all__ = ["PendingJob", "enqueue_after_commit", "new_job_id", "pending_jobs"]

log = logging.getLogger(__name__)

_KEY = "nurture.after_commit"


@dataclass(frozen=True)
class PendingJob:
    queue: Queue
    path: str
    args: tuple[Any, ...]
    options: dict[str, Any] = field(default_factory=dict)
    #: (Redis set, members) written in the same MULTI as the job: both exist or neither
    track: tuple[str, tuple[Any, ...]] | None = None


def new_job_id() -> str:
    return uuid.uuid4().hex


def enqueue_after_commit(session: Session, queue: Queue, path: str, *args: Any,
                         track: tuple[str, list[Any]] | None = None, **options: Any) -> None:
    """Enqueue ``path(*args)`` on ``queue`` when ``session``'s transaction commits; dropped on rollback.

    ``track=(key, members)`` adds the members to a Redis set atomically with the job (one MULTI),
    so the ledger can later tell a job Redis lost from one still waiting (``nurture/inflight.py``).
    """
    if "." not in path or not path.startswith("nurture_mail.jobs."):
        raise ValueError(f"expected the import path of a job in nurture_mail.jobs, got {path!r}")
    pending = session.info.get(_KEY)
    if pending is None:
        pending = session.info[_KEY] = []
        event.listen(session, "after_commit", _enqueue_pending)
        event.listen(session, "after_soft_rollback", _drop_pending)
    pending.append(PendingJob(queue, path, args, dict(options),
                              (track[0], tuple(track[1])) if track else None))


def pending_jobs(session: Session) -> list[PendingJob]:
    """The jobs waiting for this session's commit (for tests and logs)."""
    return list(session.info.get(_KEY) or [])


def _enqueue_pending(session: Session) -> None:
    pending: list[PendingJob] = session.info.get(_KEY) or []
    if not pending:
        return
    session.info[_KEY] = []
    tracked: list[PendingJob] = []
    for job in pending:
        if job.track is None:
            _enqueue_tracked(tracked)
            tracked = []
            try:
                job.queue.enqueue(job.path, *job.args, **job.options)
            except Exception:  # committed rows stay; the caller's sweeper finds work never picked up
                log.exception("could not enqueue %s%r after commit", job.path, job.args)
            continue
        if tracked and tracked[0].queue.connection is not job.queue.connection:
            _enqueue_tracked(tracked)
            tracked = []
        tracked.append(job)
    _enqueue_tracked(tracked)


def _enqueue_tracked(jobs: list[PendingJob]) -> None:
    """Tracked jobs of one commit (a tick batch's send jobs) in one MULTI, one round trip: each job
    and its set members exist, or none of them (the sweeper re-enqueues what Redis lost)."""
    if not jobs:
        return
    try:
        with jobs[0].queue.connection.pipeline() as pipe:
            for job in jobs:
                assert job.track is not None
                job.queue.enqueue(job.path, *job.args, pipeline=pipe, **job.options)
                pipe.sadd(job.track[0], *job.track[1])
            pipe.execute()
    except Exception:  # committed rows stay; the caller's sweeper finds work never picked up
        log.exception("could not enqueue %d job(s) %s after commit", len(jobs), jobs[0].path)


def _drop_pending(session: Session, previous_transaction: Any) -> None:
    """The outermost transaction rolled back: its jobs go. A savepoint rolled back (a caught
    conflict, ``begin_nested``) leaves the transaction, and the jobs, in place."""
    if previous_transaction.parent is None:
        session.info[_KEY] = []
