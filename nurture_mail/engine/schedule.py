"""Send windows: local business hours in the lead's timezone."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .plan import SendWindow


@lru_cache(maxsize=512)
def zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    """The IANA zone, or the fallback when the name is empty or unknown."""
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder such as 'America'
                continue
    return ZoneInfo("UTC")


def in_window(instant: datetime, tz: ZoneInfo, window: SendWindow) -> bool:
    local = instant.astimezone(tz)
    if window.weekdays_only and local.weekday() >= 5:
        return False
    return window.start <= local.time().replace(tzinfo=None) < window.end


def next_in_window(earliest: datetime, tz: ZoneInfo, window: SendWindow) -> datetime:
    """The first instant at or after ``earliest`` inside the window, in UTC."""
    if in_window(earliest, tz, window):
        return earliest.astimezone(timezone.utc)
    local = earliest.astimezone(tz)
    day = local.date()
    if local.time().replace(tzinfo=None) >= window.start:
        day += timedelta(days=1)
    for _ in range(8):
        if not window.weekdays_only or day.weekday() < 5:
            # Build the wall-clock time in the zone; fold=0 resolves DST gaps forwards.
            start = datetime.combine(day, window.start, tzinfo=tz)
            candidate = start.astimezone(timezone.utc)
            if candidate.astimezone(tz).replace(tzinfo=None) != start.replace(tzinfo=None):
                candidate = _opening_in_dst_gap(start, candidate, tz, window)
            if candidate >= earliest and in_window(candidate, tz, window):
                return candidate
        day += timedelta(days=1)
    raise ValueError(f"send window {window} never opens")  # pragma: no cover - validated at load


def _opening_in_dst_gap(start: datetime, late: datetime, tz: ZoneInfo, window: SendWindow) -> datetime:
    """The window opens at a wall time the clocks skip: it opens when they jump.

    ``fold=1`` reads the missing time with the offset after the jump (an instant before it),
    ``fold=0`` with the one before (after it); the jump lies between, found to the second.
    """
    low = int(start.replace(fold=1).astimezone(timezone.utc).timestamp())
    high = int(late.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if in_window(datetime.fromtimestamp(middle, timezone.utc), tz, window):
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, timezone.utc)
