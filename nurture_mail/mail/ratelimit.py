"""Send-rate limits shared by every worker through Redis, and the deliverability settings.

Two limits, both off (0) by default:

- ``SEND_RATE_PER_SECOND``, global: each email reserves the next free slot of a schedule kept
  in Redis (GCRA: the key holds the "theoretical arrival time" of the next email); a worker
  whose slot is in the future sleeps until then. Slots are spaced evenly (1/rate apart) so
  receivers see a steady stream, and the clock is Redis's own ``TIME``, so workers on hosts
  whose clocks disagree still share one schedule.
- ``SEND_RATE_PER_DOMAIN_PER_MINUTE``, per recipient domain: a counter per domain and minute
  window. A batch asks once per domain (``INCRBY`` its count of emails there, in one pipeline)
  and learns how many it may send now; the rest are *deferred*, not failed: queued again for
  the next window without an attempt counted. The window is cut from the injected clock, so
  tests (and the demo) move it by moving the clock.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from redis import Redis

from ..config import Config, ConfigError

__all__ = ["DeliverabilitySettings", "DomainWindow", "SendRateLimiter", "deliverability_settings"]

T = TypeVar("T")

GLOBAL_KEY = "nurture:rate:global"
DOMAIN_KEY = "nurture:rate:domain:{domain}:{window}"
DOMAIN_WINDOW_SECONDS = 60


@dataclass(frozen=True)
class DeliverabilitySettings:
    """Settings of unsubscribes, bounces, DKIM and rate limits (see the README's table)."""

    #: Emails per second over all workers; 0 = unlimited.
    send_rate_per_second: float = 0.0
    #: Emails per minute to one recipient domain (``gmail.com``); 0 = unlimited.
    send_rate_per_domain_per_minute: int = 0
    dkim_selector: str = ""
    dkim_private_key_path: str = ""
    #: The ``d=`` of the signature; defaults to the sender's domain.
    dkim_domain: str = ""
    #: Shared secret of the ESP webhook; empty = the webhook answers 404.
    webhook_secret: str = ""
    #: Soft bounces in a row that suppress an address.
    soft_bounce_limit: int = 3
    #: Domain of the VERP return path (``bounces+…@``); defaults to the sender's domain.
    bounce_domain: str = ""

    @property
    def dkim_enabled(self) -> bool:
        return bool(self.dkim_selector and self.dkim_private_key_path)


def deliverability_settings(config: Config) -> DeliverabilitySettings:
    """The deliverability settings of ``config``, with the sender's domain filled in as default."""
    if bool(config.dkim_selector) != bool(config.dkim_private_key_path):
        raise ConfigError("DKIM_SELECTOR and DKIM_PRIVATE_KEY_PATH: set both to sign, or neither")
    return DeliverabilitySettings(
        send_rate_per_second=config.send_rate_per_second,
        send_rate_per_domain_per_minute=config.send_rate_per_domain_per_minute,
        dkim_selector=config.dkim_selector,
        dkim_private_key_path=config.dkim_private_key_path,
        dkim_domain=config.dkim_domain or config.sender_domain,
        webhook_secret=config.webhook_secret,
        soft_bounce_limit=config.soft_bounce_limit,
        bounce_domain=config.bounce_domain or config.sender_domain,
    )


# GCRA in one round trip. Microseconds since the epoch fit a Lua number (a double) exactly.
# Returns how long the caller must wait, in microseconds, for the slot it has just reserved.
_RESERVE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1000)
return tat - now
"""


@dataclass(frozen=True)
class DomainWindow:
    """The outcome of asking for a batch's emails to a domain: how many may go in this window."""

    domain: str
    allowed: int
    #: Start of the next window: when the rest may be tried again.
    next_window: datetime


class SendRateLimiter:
    """Both limits, over one Redis shared by every worker."""

    def __init__(self, redis: Redis, per_second: float = 0.0, per_domain_per_minute: int = 0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.redis = redis
        self.per_second = per_second
        self.per_domain_per_minute = per_domain_per_minute
        self._sleep = sleep
        self._reserve = redis.register_script(_RESERVE) if per_second > 0 else None

    @classmethod
    def from_settings(cls, redis: Redis, settings: DeliverabilitySettings) -> SendRateLimiter | None:
        if not settings.send_rate_per_second and not settings.send_rate_per_domain_per_minute:
            return None
        return cls(redis, settings.send_rate_per_second, settings.send_rate_per_domain_per_minute)

    def wait_for_slot(self) -> float:
        """Block until this worker may send one more email under the global limit; returns the
        seconds waited. The slot is reserved before the wait, so waiting workers queue fairly."""
        if self._reserve is None:
            return 0.0
        interval = round(1_000_000 / self.per_second)
        wait_us = int(self._reserve(keys=[GLOBAL_KEY], args=[interval]))
        if wait_us <= 0:
            return 0.0
        seconds = wait_us / 1_000_000
        self._sleep(seconds)
        return seconds

    def admit(self, items: Iterable[T], domain_of: Callable[[T], str],
              now: datetime) -> tuple[list[T], list[tuple[T, DomainWindow]]]:
        """Split ``items`` into those that may be sent in the current window and those over
        their domain's limit, each deferred one with the window that refused it."""
        items = list(items)
        if not self.per_domain_per_minute or not items:
            return items, []
        by_domain: dict[str, list[T]] = {}
        for item in items:
            by_domain.setdefault(domain_of(item).lower(), []).append(item)
        window = int(now.timestamp()) // DOMAIN_WINDOW_SECONDS
        next_window = datetime.fromtimestamp((window + 1) * DOMAIN_WINDOW_SECONDS, UTC)
        pipe = self.redis.pipeline(transaction=False)
        for domain, group in by_domain.items():
            key = DOMAIN_KEY.format(domain=domain, window=window)
            pipe.incrby(key, len(group))
            pipe.expire(key, DOMAIN_WINDOW_SECONDS * 2)
        counts = pipe.execute()[0::2]
        admitted: list[T] = []
        deferred: list[tuple[T, DomainWindow]] = []
        for (domain, group), count in zip(by_domain.items(), counts, strict=True):
            # Emails counted before this batch: count - len(group); what is left of the limit is ours.
            allowed = max(0, min(len(group), self.per_domain_per_minute - (int(count) - len(group))))
            verdict = DomainWindow(domain, allowed, next_window)
            admitted.extend(group[:allowed])
            deferred.extend((item, verdict) for item in group[allowed:])
        return admitted, deferred
