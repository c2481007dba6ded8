"""The periodic work, declared as data in one place (read by ``rq cron`` and by ``run``)."""
from __future__ import annotations

from typing import Any

from ..config import Config
from .events import drain_tracking_events
from .tick import scheduler_tick


def cron_table(config: Config) -> list[dict[str, Any]]:
    """Each entry is the keyword arguments of ``rq.cron.register``."""
    return [
        dict(func=scheduler_tick, queue_name=config.queue_name, interval=config.tick_interval,
             job_timeout=600, result_ttl=600, name="nurture-scheduler-tick"),
        dict(func=drain_tracking_events, queue_name=config.queue_name, interval=config.event_drain_interval,
             job_timeout=300, result_ttl=60, name="nurture-tracking-drain"),
    ]
