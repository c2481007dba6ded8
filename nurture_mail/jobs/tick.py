"""RQ job: one scheduler pass; ``rq cron`` enqueues it every TICK_INTERVAL seconds."""
from __future__ import annotations

import logging
import time
from dataclasses import asdict

from .. import services
from ..clock import parse_instant
from ..nurture.first_touch import scheduling_lock
from ..nurture.tick import run_tick

log = logging.getLogger(__name__)


def scheduler_tick(now: str | None = None) -> dict:
    """Queue the next touch of every due enrollment; ``now`` (ISO-8601) defaults to the clock."""
    svc = services()
    instant = parse_instant(now) if now else svc.clock.now()
    started = time.monotonic()
    with scheduling_lock(svc):
        report = run_tick(svc, instant)
    # One line per tick that did something; an idle tick only at DEBUG (the demo ticks every 2 s).
    busy = report.due or report.enqueued_deliveries or report.recovered_sent or report.recovered_requeued
    log.log(logging.INFO if busy else logging.DEBUG, "tick at %s (%.2f s): %s", f"{instant:%Y-%m-%d %H:%M:%S}",
            time.monotonic() - started, report.summary())
    return asdict(report)
