"""RQ job: the first step of enrollments just made, without waiting for the tick."""
from __future__ import annotations

import logging

from .. import services
from ..nurture.first_touch import run_first_touch, scheduling_lock, take_pending

log = logging.getLogger(__name__)


def first_touch() -> dict:
    """Take every enrollment waiting for its first touch and queue and enqueue its first step."""
    svc = services()
    enrollments = queued = enqueued = 0
    while True:
        ids = take_pending(svc)
        if not ids:
            break
        enrollments += len(ids)
        with scheduling_lock(svc):
            q, e = run_first_touch(svc, ids, svc.clock.now())
        queued, enqueued = queued + q, enqueued + e
    if enrollments:
        log.info("first touch: %d enrollment(s), %d email(s) queued, %d enqueued", enrollments, queued, enqueued)
    return {"enrollments": enrollments, "queued": queued, "enqueued": enqueued}
