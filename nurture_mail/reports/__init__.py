"""The reports: one module per report, one registry, one entry point.

``run_report(name, session, config, now, params)`` parses the shared parameters (``from``,
``to``; ``campaign``; ``month``), builds the report and returns a :class:`ReportResult` whose
tables the page shows and the CSV exports, unchanged. No Flask here: the web views, the
monthly email and the benchmark call the same functions.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from ..config import Config
from ..exceptions import NotFound
from . import campaigns, closure, forecast, monthly, reps, steps, topics
from .common import Chart, Column, DateRange, ReportResult, Series, Table, parse_range

__all__ = ["REPORTS", "Chart", "Column", "DateRange", "ReportContext", "ReportResult", "ReportSpec", "Series",
           "Table", "run_report"]


@dataclass(frozen=True)
class ReportContext:
    config: Config
    now: datetime

    @property
    def today(self) -> date:
        return self.now.date()


@dataclass(frozen=True)
class ReportSpec:
    name: str
    title: str
    what: str
    build: Callable[..., ReportResult]
    #: Days the range covers when none is given; None: the report takes a month instead.
    default_days: int | None = 30
    #: Takes ``?campaign=``.
    per_campaign: bool = False


REPORTS: dict[str, ReportSpec] = {spec.name: spec for spec in (
    ReportSpec("campaigns", "Campaigns", "Per campaign: enrolled, where they are, sent, human opens and clicks, "
               "unsubscribes, bounces, complaints.", campaigns.build),
    ReportSpec("steps", "Steps", "Per step of a campaign: sent, delivered, human opens and clicks, unsubscribed, "
               "bounced, skipped because known.", steps.build, per_campaign=True),
    ReportSpec("topics", "Topics", "Per topic of a campaign: who knows it, engaged, was only exposed, was never "
               "reached; the topics most often unfilled when a journey ended.", topics.build, per_campaign=True),
    ReportSpec("closure", "Closure", "Closure rate (handed off → won) by lead source, industry, size, role and "
               "the stage reached.", closure.build, default_days=90),
    ReportSpec("reps", "Reps", "Per rep: handoffs, accepted, rejected with reasons, won, lost, time to first "
               "action, SLA kept.", reps.build),
    ReportSpec("forecast", "Forecast", "Open pipeline value and the 30/60/90-day forecast from accepted handoffs.",
               forecast.build, default_days=365),
    ReportSpec("monthly", "Monthly summary", "New prospects, opportunities under development, opportunities "
               "handed to sales and their worth, beside the month before.", monthly.build, default_days=None),
)}


def run_report(name: str, session: Session, config: Config, now: datetime,
               params: Mapping[str, Any] | None = None) -> ReportResult:
    """Build report ``name``; bad parameters raise ``InvalidInput`` naming the field."""
    spec = REPORTS.get(name)
    if spec is None:
        raise NotFound(f"no report {name!r} (reports: {', '.join(REPORTS)})")
    params = {k: str(v) for k, v in (params or {}).items()}
    ctx = ReportContext(config, now)
    span = parse_range(params, ctx.today, spec.default_days) if spec.default_days else None
    return spec.build(session, span, ctx, params)
