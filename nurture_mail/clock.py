"""Injected time: logic asks a clock, never ``datetime.now()``, so tests move days in milliseconds."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FrozenClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime) -> None:
        self._now = as_utc(start)

    def now(self) -> datetime:
        return self._now

    def set(self, instant: datetime) -> None:
        self._now = as_utc(instant)

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self._now += delta if delta is not None else timedelta(**kwargs)
        return self._now


def as_utc(value: datetime) -> datetime:
    """Aware UTC datetime; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def parse_instant(text: str) -> datetime:
    """ISO-8601 from the CLI (``2026-03-02T09:30``, ``…Z``, ``…+01:00``); naive means UTC."""
    try:
        return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise ValueError(f"not an ISO-8601 instant: {text!r}") from None


class ScaledClock:
    """Time that runs ``speed`` times faster than real time from ``epoch`` (demos).

    Every process given the same epoch and speed computes the same instant, so a web app,
    workers and cron agree on "now" without talking to each other.
    """

    def __init__(self, epoch: datetime, speed: float) -> None:
        self.epoch = as_utc(epoch)
        self.speed = speed

    def now(self) -> datetime:
        real = datetime.now(timezone.utc)
        return self.epoch + (real - self.epoch) * self.speed


def real_seconds(clock: Clock, delta: timedelta) -> float:
    """A span of ``clock`` time in real seconds: a demo clock's hour is two seconds at ``x1800``.

    What a person reads as a duration (a handoff's age, a notification's latency) is real time;
    instants stay on the clock.
    """
    seconds = delta.total_seconds()
    if isinstance(clock, ScaledClock) and clock.speed > 0:
        return seconds / clock.speed
    return seconds
