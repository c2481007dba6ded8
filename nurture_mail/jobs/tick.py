"""RQ job: one scheduler pass; ``rq cron`` enqueues it every TICK_INTERVAL seconds."""
from __future__ import annotations

from dataclasses import asdict

from .. import services
from ..clock import parse_instant
from ..nurture.tick import run_tick


def scheduler_tick(now: str | None = None) -> dict:
    """Queue the next touch of every due enrollment; ``now`` (ISO-8601) defaults to the clock."""
    svc = services()
    instant = parse_instant(now) if now else svc.clock.now()
    return asdict(run_tick(svc, instant))
