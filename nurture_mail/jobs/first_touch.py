"""RQ job: the first step of enrollments just made, without waiting for the tick."""
from __future__ import annotations

import logging

from .. import services
from ..nurture.first_touch import run_first_touch

log = logging.getLogger(__name__)


def first_touch(enrollment_ids: list[int]) -> dict:
    svc = services()
    queued, enqueued = run_first_touch(svc, enrollment_ids, svc.clock.now())
    log.info("first touch: %d enrollment(s), %d email(s) queued, %d enqueued", len(enrollment_ids), queued, enqueued)
    return {"queued": queued, "enqueued": enqueued}
