"""Which queued deliveries are really in a send job: the ledger's check on Redis.

The tick marks a delivery ``enqueued_at`` when it hands it to a send job, and does not hand it
out again for ``SEND_LEASE_SECONDS``. If Redis loses the job (a restart without persistence, a
failover, a restore of an older snapshot), that lease would keep the email waiting ten minutes.
So every send job is enqueued together with its delivery ids in a Redis set (one MULTI: both
exist or neither), the worker removes them once it has claimed them, and each tick compares:
a delivery ``queued`` and leased in the database but absent from the set lost its job, and is
enqueued again at once. A Redis that comes back empty has an empty set, so every leased
delivery goes out again; the claim (``queued → sending``) still lets only one job send it.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from redis.exceptions import RedisError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..aftercommit import enqueue_after_commit, new_job_id
from ..extensions import Services
from ..models import Delivery, DeliveryStatus

log = logging.getLogger(__name__)

KEY = "nurture:in-send-jobs"
SEND_JOB = "nurture_mail.jobs.send.send_batch"
CHUNK = 5000


def enqueue_send_job(session: Session, svc: Services, delivery_ids: list[int]) -> str:
    """One send job for these deliveries once ``session`` commits, with their ids in the in-job set
    (one MULTI: both exist or neither); returns the job id."""
    job_id = new_job_id()
    enqueue_after_commit(session, svc.queue, SEND_JOB, delivery_ids, track=(KEY, delivery_ids), job_id=job_id,
                         job_timeout=max(300, len(delivery_ids) * 2), result_ttl=3600, failure_ttl=7 * 86400,
                         description=f"send {len(delivery_ids)} emails")
    return job_id


def taken(svc: Services, delivery_ids: list[int]) -> None:
    """A worker has claimed (or found already claimed) these ids: they are no longer waiting in Redis."""
    if not delivery_ids:
        return
    try:
        svc.redis.srem(KEY, *delivery_ids)
    except RedisError as exc:  # a stale member only makes a lost job look present until its lease
        log.warning("in-job set not updated (%s)", exc)


def requeue_lost(svc: Services, now: datetime) -> int:
    """Queued deliveries whose send job Redis no longer has are made enqueueable now; returns how many."""
    lease_expired = now - timedelta(seconds=svc.config.send_lease_seconds)
    with svc.db.Session() as session:
        leased = list(session.scalars(select(Delivery.id).where(
            Delivery.status == DeliveryStatus.queued, Delivery.enqueued_at.is_not(None),
            Delivery.enqueued_at > lease_expired,
        )))
    if not leased:
        return 0
    lost: list[int] = []
    for start in range(0, len(leased), CHUNK):
        chunk = leased[start:start + CHUNK]
        present = svc.redis.smismember(KEY, chunk)
        lost.extend(delivery_id for delivery_id, here in zip(chunk, present) if not here)  # type: ignore[arg-type]
    if not lost:
        return 0
    with svc.db.session() as session:
        for start in range(0, len(lost), CHUNK):
            session.execute(update(Delivery).where(
                Delivery.id.in_(lost[start:start + CHUNK]), Delivery.status == DeliveryStatus.queued,
                Delivery.enqueued_at > lease_expired,
            ).values(enqueued_at=None))
    log.warning("%d queued deliveries had lost their send job in Redis; enqueued again", len(lost))
    return len(lost)
