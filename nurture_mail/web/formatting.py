"""Jinja filters and globals of the web UI: relative times, numbers, chart scales."""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone

from flask import Flask
from markupsafe import Markup

__all__ = ["ago", "init_app", "nice_ceiling", "percent", "slug"]


def ago(value: datetime | None, now: datetime | None) -> str:
    """"3 h ago" / "in 2 d" relative to ``now`` (the view's clock), for tables and timelines."""
    if value is None or now is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    seconds = (now - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for size, unit in ((86400 * 365, "y"), (86400 * 30, "mo"), (86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            text = f"{int(seconds // size)} {unit}"
            break
    else:
        return "just now"
    return f"in {text}" if future else f"{text} ago"


def time_tag(value: datetime, now: datetime | None) -> Markup:
    """``<time>`` with "3 h ago" (or the date without ``now``) and the exact UTC time on hover."""
    exact = value.strftime("%Y-%m-%d %H:%M UTC")
    shown = ago(value, now) if now is not None else value.strftime("%Y-%m-%d %H:%M")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(value.isoformat(), exact, shown)


def nice_ceiling(value: float) -> float:
    """The smallest "round" number (1, 2, 2.5, 5 × 10^k) at or above ``value``: a chart's top."""
    if value <= 0:
        return 1
    exponent = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * exponent >= value:
            return factor * exponent
    return 10 * exponent


def chart_top(peak: float, ticks: int = 4) -> float:
    """The top of a chart's axis: ``ticks`` equal steps of a round size (1, 2, 2.5, 5 × 10^k, at
    least 1), so every grid line has a whole, readable label."""
    return max(1.0, nice_ceiling(peak / ticks)) * ticks


def percent(value: float | None, digits: int = 1) -> str:
    """0.1234 → "12.3%"; None → "—"."""
    if value is None:
        return "—"
    return f"{value * 100:.{digits}f}%"


def slug(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(value).lower()).strip("-") or "x"


def number(value: float | int | None) -> str:
    """12345 → "12,345"."""
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def zip_pairs(values: list[str]) -> list[tuple[str, str]]:
    """Values as (value, label) options for the ``select`` macro; "handed_off" reads "handed off"."""
    return [(value, str(value).replace("_", " ")) for value in values]


def init_app(app: Flask) -> None:
    app.add_template_filter(zip_pairs)
    app.add_template_filter(ago)
    app.add_template_filter(time_tag)
    app.add_template_filter(percent)
    app.add_template_filter(slug)
    app.add_template_filter(number)
    app.add_template_global(nice_ceiling)
    app.add_template_global(chart_top)
