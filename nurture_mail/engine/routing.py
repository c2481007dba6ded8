"""Who gets a handoff, and by when they must act: pure rules over plain data (no database).

- :func:`pick_incoming`: the available closer of the incoming group assigned least recently
  (never assigned first, then the oldest assignment, ties by id), so the group rotates fairly.
- :func:`match_territory`: the territory of a lead's region and/or industry; the most specific
  one wins (region and industry both matching beats one of them; a longer industry prefix
  beats a shorter one).
- :func:`add_business_hours`: the SLA due time, counting only working hours (Monday to Friday,
  between the day's start and end in the sales team's timezone).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["RepCandidate", "TerritoryRule", "add_business_hours", "business_hours_between", "match_territory", "parse_hhmm", "pick_incoming"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RepCandidate:
    id: int
    available: bool
    incoming: bool
    last_assigned_at: datetime | None


@dataclass(frozen=True)
class TerritoryRule:
    id: int
    name: str
    owner_id: int
    #: None matches any region.
    region: str | None = None
    #: SIC or NAICS code prefix; None matches any industry.
    industry: str | None = None


def pick_incoming(reps: Iterable[RepCandidate]) -> RepCandidate | None:
    """The incoming closer to receive the next handoff, or None when none is available."""
    eligible = [rep for rep in reps if rep.incoming and rep.available]
    if not eligible:
        return None
    return min(eligible, key=lambda rep: (rep.last_assigned_at is not None, rep.last_assigned_at or _EPOCH, rep.id))


def match_territory(territories: Sequence[TerritoryRule], region: str | None,
                    industry_codes: Iterable[str | None]) -> TerritoryRule | None:
    """The most specific territory covering the lead; None when none covers it.

    Region compares case-insensitively. ``industry_codes`` are the lead's SIC and NAICS codes:
    a territory's industry prefix matches if either starts with it. A territory with neither
    field set covers every lead (a catch-all), and is chosen only when nothing else matches.
    """
    codes = [c.strip() for c in industry_codes if c and c.strip()]
    lead_region = (region or "").strip().lower()
    best: tuple[tuple[int, int, int], TerritoryRule] | None = None
    for territory in territories:
        if territory.region is not None and territory.region.strip().lower() != lead_region:
            continue
        prefix = 0
        if territory.industry is not None:
            if not any(code.startswith(territory.industry) for code in codes):
                continue
            prefix = len(territory.industry)
        rank = ((territory.region is not None) + (territory.industry is not None), prefix, -territory.id)
        if best is None or rank > best[0]:
            best = (rank, territory)
    return best[1] if best else None


def parse_hhmm(value: str, what: str = "time") -> time:
    """``"09:00"`` → ``time(9, 0)``; ValueError naming ``what`` otherwise."""
    try:
        hours, minutes = value.strip().split(":")
        return time(int(hours), int(minutes))
    except (ValueError, AttributeError):
        raise ValueError(f"{what}: expected HH:MM, got {value!r}") from None


def add_business_hours(start: datetime, hours: float, timezone: str, day_start: time, day_end: time) -> datetime:
    """``start`` plus ``hours`` of working time (Mon–Fri, ``day_start``–``day_end`` local), in UTC.

    A start outside working hours counts from the next opening: a handoff at Friday 16:00 with
    a 4 h SLA in 09:00–17:00 is due Monday 12:00. Wall-clock arithmetic in the local zone keeps
    the working day 8 hours long across daylight-saving changes.
    """
    if day_end <= day_start:
        raise ValueError(f"business hours: the day ends ({day_end:%H:%M}) before it starts ({day_start:%H:%M})")
    if start.tzinfo is None:
        raise ValueError("business hours: a timezone-aware start is required")
    zone = ZoneInfo(timezone)
    remaining = timedelta(hours=hours)
    local = start.astimezone(zone).replace(tzinfo=None)
    while True:
        opening = datetime.combine(local.date(), day_start)
        closing = datetime.combine(local.date(), day_end)
        if local.weekday() >= 5 or local >= closing:
            local = datetime.combine(local.date() + timedelta(days=1), day_start)
            continue
        if local < opening:
            local = opening
        available = closing - local
        if remaining <= available:
            return (local + remaining).replace(tzinfo=zone).astimezone(UTC)
        remaining -= available
        local = datetime.combine(local.date() + timedelta(days=1), day_start)


def business_hours_between(start: datetime, end: datetime, timezone: str, day_start: time, day_end: time) -> float:
    """Working hours from ``start`` to ``end`` (Mon–Fri, ``day_start``–``day_end`` local);
    negative when ``end`` is before ``start`` (an overdue SLA counts how far past it is).

    The inverse of :func:`add_business_hours`: ``business_hours_between(s, add_business_hours(s,
    h, …), …) == h`` for a start inside working hours.
    """
    if day_end <= day_start:
        raise ValueError(f"business hours: the day ends ({day_end:%H:%M}) before it starts ({day_start:%H:%M})")
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("business hours: timezone-aware instants are required")
    if end < start:
        return -business_hours_between(end, start, timezone, day_start, day_end)
    zone = ZoneInfo(timezone)
    local = start.astimezone(zone).replace(tzinfo=None)
    stop = end.astimezone(zone).replace(tzinfo=None)
    total = timedelta()
    day = local.date()
    while day <= stop.date():
        if day.weekday() < 5:
            opening = max(datetime.combine(day, day_start), local)
            closing = min(datetime.combine(day, day_end), stop)
            if closing > opening:
                total += closing - opening
        day += timedelta(days=1)
    return total.total_seconds() / 3600
