"""RQ jobs of the sales handoff: notify a destination (rep email, webhook), SLA and ownership housekeeping.

Each job takes ids, reloads what it needs, and is safe to run twice (see ``sales/``).
"""
from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from .. import services
from ..sales.destinations import Notice
from ..sales.destinations import destination as named

if TYPE_CHECKING:
    from rq.job import Job

    from ..extensions import Services


def enqueue(svc: "Services", destination: str, handoff_id: int, *args: object) -> "Job":
    """Enqueue one notice for ``destination`` now, with its retry policy (the domain enqueues after
    commit instead, through ``sales.handoff.after_commit``)."""
    return svc.queue.enqueue(notify, destination, handoff_id, *args, **named(svc, destination).job_options())


def notify(destination: str, handoff_id: int, kind: str = "new", rep_id: int | None = None,
           ref: int | None = None) -> dict:
    """One attempt of one notice at one destination (``email``: the rep, the manager or the
    territory owner; ``webhook``: the signed dossier)."""
    return asdict(named(services(), destination).notify(Notice(handoff_id, kind, rep_id, ref)))


def sales_housekeeping(now: str | None = None) -> dict:
    """Escalate handoffs past their SLA, transfer those past their ownership window (cron)."""
    from ..clock import parse_instant
    from ..sales.housekeeping import run_housekeeping

    svc = services()
    return asdict(run_housekeeping(svc, parse_instant(now) if now else svc.clock.now()))


def send_monthly_summary(month: str | None = None, now: str | None = None) -> dict:
    """The monthly summary report to its subscribers (cron: the 1st of each month)."""
    from ..clock import parse_instant
    from ..reports.monthly_mail import send_monthly_summary as send

    svc = services()
    return asdict(send(svc, parse_instant(now) if now else svc.clock.now(), month=month, scheduled=True))


def refresh_report_counters(days: int = 2, now: str | None = None, full: bool = False) -> dict:
    """Rebuild the daily report counters of the last ``days`` days and bring the topics and monthly
    summaries up to date (cron: every few minutes; ``full`` recounts the summaries, cron: nightly)."""
    from datetime import timedelta

    from ..clock import parse_instant
    from ..reports.counters import refresh_days
    from ..reports.summaries import refresh_summaries

    svc = services()
    at = parse_instant(now) if now else svc.clock.now()
    wanted = [at.date() - timedelta(days=i) for i in range(days)]
    with svc.db.session() as session:
        written = refresh_days(session, wanted, at)
    with svc.db.session() as session:
        summaries = refresh_summaries(session, at, full=full)
    return {"days": [d.isoformat() for d in wanted], "rows": written, **summaries}
