"""RQ jobs of the sales handoff: notify a rep, post the webhook, SLA and ownership housekeeping.

Each job takes ids, reloads what it needs, and is safe to run twice (see ``sales/``).
"""
from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from .. import services
from ..sales.handoff import JOBS, job_options

if TYPE_CHECKING:
    from rq.job import Job

    from ..extensions import Services


def enqueue(svc: "Services", kind: str, ident: int, *args: object) -> "Job":
    """Enqueue one sales job now, with its retry policy (the domain enqueues after commit instead)."""
    if kind not in JOBS:
        raise ValueError(f"unknown sales job kind {kind!r}")
    return svc.queue.enqueue(JOBS[kind], ident, *args, **job_options(svc.config, kind))


def notify_handoff(handoff_id: int, kind: str = "new", rep_id: int | None = None) -> dict:
    """Email the rep (``new``), the manager (``escalation``) or the territory owner (``transfer``)."""
    from ..sales.notify_email import notify_by_email

    return asdict(notify_by_email(services(), handoff_id, kind, rep_id))


def post_handoff_webhook(delivery_id: int) -> dict:
    """One attempt to post a handoff's dossier; raises on failure so RQ retries with backoff."""
    from ..sales.webhook import post_webhook

    return asdict(post_webhook(services(), delivery_id))


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


def refresh_report_counters(days: int = 2, now: str | None = None) -> dict:
    """Rebuild the daily report counters of the last ``days`` days (cron: every few minutes)."""
    from datetime import timedelta

    from ..clock import parse_instant
    from ..reports.counters import refresh_days

    svc = services()
    at = parse_instant(now) if now else svc.clock.now()
    wanted = [at.date() - timedelta(days=i) for i in range(days)]
    with svc.db.session() as session:
        written = refresh_days(session, wanted, at)
    return {"days": [d.isoformat() for d in wanted], "rows": written}
