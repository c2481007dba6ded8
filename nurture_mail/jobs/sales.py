"""RQ jobs of the sales handoff: notify a rep, post the webhook, SLA and ownership housekeeping.

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


def enqueue(svc: "Services", kind: str, ident: int, *args: object) -> "Job":
    """Enqueue one sales job on the app's queue, with its retry policy."""
    if kind == "notify":
        retries = max(svc.config.smtp_max_attempts - 1, 0)
        return svc.queue.enqueue(notify_handoff, ident, *args, job_timeout=120, result_ttl=3600,
                                 retry=Retry(max=retries, interval=_backoff(svc, retries)) if retries else None)
    if kind == "webhook":
        retries = max(svc.config.sales_webhook_max_attempts - 1, 0)
        return svc.queue.enqueue(post_handoff_webhook, ident, job_timeout=int(svc.config.sales_webhook_timeout) + 30,
                                 result_ttl=3600,
                                 retry=Retry(max=retries, interval=_backoff(svc, retries)) if retries else None)
    raise ValueError(f"unknown sales job kind {kind!r}")


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
