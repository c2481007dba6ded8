"""The periodic work, declared as data in one place (read by ``rq cron`` and by ``run``)."""
from __future__ import annotations

from typing import Any

from ..config import Config
from .events import drain_tracking_events
from .sales import refresh_report_counters, sales_housekeeping, send_monthly_summary
from .scoring import rescore_all
from .tick import scheduler_tick


def cron_table(config: Config) -> list[dict[str, Any]]:
    """Each entry is the keyword arguments of ``rq.cron.register``."""
    return [
        dict(func=scheduler_tick, queue_name=config.queue_name, interval=config.tick_interval,
             job_timeout=600, result_ttl=600, name="nurture-scheduler-tick"),
        dict(func=drain_tracking_events, queue_name=config.queue_name, interval=config.event_drain_interval,
             job_timeout=300, result_ttl=60, name="nurture-tracking-drain"),
        # SLA escalation and the ownership-window transfer of sales handoffs (sales/housekeeping.py).
        dict(func=sales_housekeeping, queue_name=config.queue_name, interval=60,
             job_timeout=300, result_ttl=600, name="nurture-sales-housekeeping"),
        # Engagement decays with time even without new events: rescore every scored lead daily.
        dict(func=rescore_all, queue_name=config.queue_name, interval=86400,
             job_timeout=3600, result_ttl=86400, name="nurture-scoring-rescore-all"),
        # Reports: the daily counters of today and yesterday; the monthly summary on the 1st, 07:00 UTC.
        dict(func=refresh_report_counters, queue_name=config.queue_name, interval=300,
             job_timeout=600, result_ttl=600, name="nurture-reports-counters"),
        # ... and a full recount of the summaries nightly (a transaction held open across two
        # refreshes is missed by the incremental ones; reports/summaries.py).
        dict(func=refresh_report_counters, queue_name=config.queue_name, cron="30 3 * * *",
             kwargs={"full": True}, job_timeout=1800, result_ttl=86400, name="nurture-reports-full-recount"),
        dict(func=send_monthly_summary, queue_name=config.queue_name, cron="0 7 1 * *",
             job_timeout=1800, result_ttl=86400 * 40, name="nurture-reports-monthly-summary"),
    ]
