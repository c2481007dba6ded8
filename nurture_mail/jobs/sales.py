"""RQ jobs of the sales handoff: notify a destination (rep email, webhook), SLA and ownership housekeeping.

Each job takes ids, reloads what it needs, and is safe to run twice (see ``sales/``).
"""
from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from rq import Retry

from .. import services

if TYPE_CHECKING:
    from rq.job import Job

    from ..extensions import Services


def _backoff(svc: "Services", retries: int) -> list[int]:
    """RETRY_BACKOFF_SECONDS doubled at each retry (0 retries at once, as tests use)."""
    base = svc.config.retry_backoff_seconds
    return [base * 2 ** i for i in range(max(retries, 1))]


def enqueue(svc: "Services", destination: str, handoff_id: int, kind: str = "new", rep_id: int | None = None,
            ref: int | None = None) -> "Job":
    """Enqueue one notice for ``destination`` on the app's queue, with that destination's retry policy."""
    from ..sales.destinations import destination as named

    target = named(svc, destination)
    retries = max(target.max_attempts - 1, 0)
    return svc.queue.enqueue(notify, destination, handoff_id, kind, rep_id, ref, job_timeout=target.job_timeout,
                             result_ttl=3600, retry=Retry(max=retries, interval=_backoff(svc, retries)) if retries else None)


def notify(destination: str, handoff_id: int, kind: str = "new", rep_id: int | None = None,
           ref: int | None = None) -> dict:
    """One attempt of one notice at one destination (``email``: the rep, the manager or the
    territory owner; ``webhook``: the signed dossier)."""
    from ..sales.destinations import Notice
    from ..sales.destinations import destination as named

    return asdict(named(services(), destination).notify(Notice(handoff_id, kind, rep_id, ref)))


def sales_housekeeping(now: str | None = None) -> dict:
    """Escalate handoffs past their SLA, transfer those past their ownership window (cron)."""
    from ..clock import parse_instant
    from ..sales.housekeeping import run_housekeeping

    svc = services()
    return asdict(run_housekeeping(svc, parse_instant(now) if now else svc.clock.now()))
