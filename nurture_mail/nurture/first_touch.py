"""Instant first touch: an enrollment whose send window is open is sent its first step at once.

Enrolling (API, CLI, web, import, external event, recycle) only writes the enrollment, due now.
Once that transaction commits, its id is pushed to a Redis list and a job (``jobs/first_touch.py``)
is enqueued unless one is waiting already; the job runs the tick's own choice for exactly the
enrollments waiting and enqueues their send job, so the first email leaves within seconds
instead of at the next tick. The guarantees are the tick's: the
enrollment is read with ``SKIP LOCKED`` and its delivery is unique per (enrollment, step), so a
tick running at the same moment queues it once, and the claim lets only one send job send it.
If Redis is down at the commit, nothing is lost: the enrollment is due and the tick takes it.
Outside the send window the enrollment is due at the window's opening, which the tick serves.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from redis.exceptions import RedisError
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from ..extensions import Services, services_of
from ..models import Delivery, DeliveryStatus, Enrollment
from .sql import skip_locked

log = logging.getLogger(__name__)

JOB = "nurture_mail.jobs.first_touch.first_touch"
_KEY = "nurture.first_touch"
#: Enrollment ids waiting for their first touch, and the flag saying a job to take them is queued.
PENDING = "nurture:first-touch"
FLAG = "nurture:first-touch:job"


def schedule_first_touch(session: Session, enrollment_ids: list[int]) -> None:
    """Send these enrollments' first step as soon as ``session`` commits.

    After the commit the ids are pushed to a Redis list, and a job is enqueued only if none is
    waiting already (a flag set with NX): enrolling 1,000 leads one request at a time costs one
    or a few jobs, not 1,000, and the job takes every id pushed until it runs.
    """
    svc = services_of(session)
    if svc is None or not enrollment_ids:
        return
    pending = session.info.get(_KEY)
    if pending is None:
        pending = session.info[_KEY] = []
        event.listen(session, "after_commit", _push_after_commit, once=True)
        event.listen(session, "after_rollback", _reset, once=True)
    pending.extend(enrollment_ids)


def _reset(session: Session) -> None:
    session.info.pop(_KEY, None)


def _push_after_commit(session: Session) -> None:
    ids = session.info.pop(_KEY, None)
    svc = services_of(session)
    if not ids or svc is None:
        return
    try:
        with svc.redis.pipeline() as pipe:
            pipe.rpush(PENDING, *ids)
            pipe.set(FLAG, "1", nx=True, ex=60)
            _, first = pipe.execute()
        if first:
            svc.queue.enqueue(JOB, job_timeout=300, result_ttl=60, description="first touch")
    except Exception:  # committed: the enrollment is due, and the tick takes it
        log.exception("could not schedule the first touch of enrollments %s; the tick will", ids)


def take_pending(svc: Services) -> list[int]:
    """Every enrollment id waiting for a first touch (the flag dropped first: ids pushed from now
    on get a job of their own)."""
    svc.redis.delete(FLAG)
    with svc.redis.pipeline() as pipe:
        pipe.lrange(PENDING, 0, -1)
        pipe.delete(PENDING)
        raw, _ = pipe.execute()
    return sorted({int(x) for x in raw})


@contextmanager
def scheduling_lock(svc: Services) -> Iterator[None]:
    """On SQLite, one scheduler pass at a time: the tick and a first touch take turns.

    PostgreSQL needs no such lock: each pass reads its enrollments ``FOR UPDATE SKIP LOCKED``.
    SQLite has no row locks, and its driver starts a transaction only at the first write, so a
    pass could read an enrollment as due and then, in its next query, the delivery another pass
    just committed for it, and take the enrollment for finished. A Redis lock serializes the
    passes; without Redis (it is down) the pass goes ahead, as it did before there was a lock.
    """
    if not svc.db.is_sqlite:
        yield
        return
    lock = svc.redis.lock("nurture:scheduling-pass", timeout=600, blocking_timeout=300)
    try:
        acquired = lock.acquire()
    except RedisError:
        acquired = False
    try:
        yield
    finally:
        if acquired:
            try:
                lock.release()
            except RedisError:  # expired or Redis gone: the next pass takes it anyway
                pass


def run_first_touch(svc: Services, enrollment_ids: list[int], now: datetime) -> tuple[int, int]:
    """Queue the next step of those enrollments that are due and enqueue their send job.

    Returns (deliveries queued, deliveries enqueued).
    """
    from .tick import ENROLLMENT, CampaignCache, TickReport, _enqueue_send_jobs, _process, candidates

    report = TickReport()
    ids = sorted(set(enrollment_ids))
    with svc.db.session() as session:
        statement = candidates(session, now).where(Enrollment.id.in_(ids)).order_by(Enrollment.id)
        due = list(session.execute(skip_locked(session, statement, of=ENROLLMENT)))
        if due:
            # Queues and leases the deliveries, and enqueues their send job once this commits.
            _process(session, svc, due, now, report, CampaignCache())
    with svc.db.session() as session:
        # A delivery of these enrollments queued earlier but never handed out (a tick run with
        # --no-enqueue, a retry now due): out with the same job round.
        deliveries = list(session.scalars(skip_locked(session, (
            select(Delivery.id).where(Delivery.enrollment_id.in_(ids), Delivery.status == DeliveryStatus.queued,
                                      Delivery.enqueued_at.is_(None), Delivery.next_attempt_at <= now)
            .order_by(Delivery.id)
        ))))
        if deliveries:
            session.execute(update(Delivery).where(Delivery.id.in_(deliveries)).values(enqueued_at=now)
                            .execution_options(synchronize_session=False))
            _enqueue_send_jobs(session, svc, deliveries, report)
    return report.queued, report.enqueued_deliveries
