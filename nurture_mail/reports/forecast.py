"""Open pipeline value and the 30/60/90-day forecast from accepted handoffs.

The model, stated on the page too:

- history: handoffs closed (won or lost) in the range. Win rate = won ÷ (won + lost)
  (:data:`DEFAULT_WIN_RATE` until one closes); deal value = the mean value of the won ones;
  sales cycle = the median days from acceptance to won (:data:`DEFAULT_CYCLE_DAYS` until one
  is won).
- each open accepted handoff is worth the mean deal value (the pipeline value adds them up
  unweighted) and is expected to close when its age reaches the sales cycle (at once when
  older); its probability is the win rate, scaled down by cycle ÷ age once it is older than
  the cycle (a deal open twice the usual time is half as likely to close).
- the 30/60/90-day forecast adds value × probability of the deals expected to close within
  30, 60 and 90 days (cumulative).
"""
from __future__ import annotations

from decimal import Decimal
from statistics import median
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import Handoff, HandoffAction, HandoffState, SalesRep
from .common import Chart, Column, DateRange, ReportResult, Series, Table, rate

DEFAULT_WIN_RATE = 0.2
DEFAULT_CYCLE_DAYS = 45.0
HORIZONS = (30, 60, 90)

HORIZON_COLUMNS = [
    Column("horizon", "Closing within", "text"),
    Column("deals", "Deals"),
    Column("pipeline", "Pipeline value", "money"),
    Column("forecast", "Forecast (weighted)", "money"),
]
REP_COLUMNS = [
    Column("rep", "Rep", "text"),
    Column("deals", "Accepted deals"),
    Column("median_age", "Median age (days)", "days"),
    Column("pipeline", "Pipeline value", "money"),
    *(Column(f"forecast_{days}", f"Forecast {days} days", "money") for days in HORIZONS),
]


def _accepted_at():
    """A handoff's first acceptance, per row (the ``handoff_id`` index), rather than a list of ids."""
    return (select(func.min(HandoffAction.at))
            .where(HandoffAction.handoff_id == Handoff.id, HandoffAction.action == "accept")
            .correlate(Handoff).scalar_subquery())


def model(session: Session, span: DateRange) -> dict:
    """The history the forecast rests on: win rate, mean deal value, sales cycle."""
    closed = session.execute(
        select(Handoff.state, Handoff.deal_value, Handoff.closed_at, Handoff.created_at,
               _accepted_at().label("accepted_at"))
        .where(Handoff.state.in_([HandoffState.won, HandoffState.lost]),
               Handoff.closed_at >= span.start_at, Handoff.closed_at < span.end_at)
    ).all()
    won = [c for c in closed if c.state == HandoffState.won]
    cycles = [((c.closed_at - (c.accepted_at or c.created_at)).total_seconds() / 86400) for c in won]
    values = [c.deal_value or Decimal(0) for c in won]
    return {
        "won": len(won), "lost": len(closed) - len(won),
        "win_rate": rate(len(won), len(closed)) if closed else DEFAULT_WIN_RATE,
        "win_rate_assumed": not closed,
        "deal_value": (sum(values, Decimal(0)) / len(values)).quantize(Decimal("0.01")) if values else Decimal(0),
        "cycle_days": max(median(cycles), 1.0) if cycles else DEFAULT_CYCLE_DAYS,
        "cycle_assumed": not cycles,
    }


def build(session: Session, span: DateRange, ctx, params: dict[str, str]) -> ReportResult:
    now = ctx.now
    m = model(session, span)
    # Only what the tables show (per horizon, per rep): no name or company per deal.
    open_deals = session.execute(
        select(Handoff.created_at, _accepted_at(), SalesRep.name).outerjoin(SalesRep, SalesRep.id == Handoff.rep_id)
        .where(Handoff.state == HandoffState.accepted).order_by(Handoff.id)
    ).all()
    waiting = session.scalar(select(func.count()).select_from(Handoff)
                             .where(Handoff.state == HandoffState.notified)) or 0
    value = m["deal_value"]
    deals = []
    for created_at, accepted_at, rep in open_deals:
        since = accepted_at or created_at
        age = max((now - since).total_seconds() / 86400, 0.0)
        remaining = max(m["cycle_days"] - age, 0.0)
        probability = m["win_rate"] * (min(1.0, m["cycle_days"] / age) if age > 0 else 1.0)
        deals.append({
            "rep": rep or "(unassigned)", "age_days": age, "remaining": remaining, "value": value,
            "expected_value": (value * Decimal(str(probability))).quantize(Decimal("0.01")),
        })
    pipeline = sum((d["value"] for d in deals), Decimal(0))
    horizons: list[dict[str, Any]] = []
    for days in HORIZONS:
        within = [d for d in deals if d["remaining"] <= days]
        horizons.append({"horizon": f"{days} days", "deals": len(within),
                         "pipeline": sum((d["value"] for d in within), Decimal(0)),
                         "forecast": sum((d["expected_value"] for d in within), Decimal(0))})
    chart = Chart("bars", "Forecast: value expected to close (weighted)", [h["horizon"] for h in horizons],
                  [Series("Forecast", [float(h["forecast"]) for h in horizons], "s2"),
                   Series("Pipeline", [float(h["pipeline"]) for h in horizons], "s1")], unit="money")
    summary = [f"Open pipeline: {len(deals):,} accepted deal{'' if len(deals) == 1 else 's'} worth "
               f"${pipeline:,.2f}; {waiting:,} handoff{'' if waiting == 1 else 's'} still waiting for acceptance.",
               f"Forecast: ${horizons[0]['forecast']:,.2f} within 30 days, ${horizons[1]['forecast']:,.2f} within 60, "
               f"${horizons[2]['forecast']:,.2f} within 90."]
    notes = [
        f"History (deals closed in the range): {m['won']} won, {m['lost']} lost → win rate "
        f"{m['win_rate'] * 100:.1f}%{' (assumed: nothing closed yet)' if m['win_rate_assumed'] else ''}; mean won deal "
        f"${m['deal_value']:,.2f}; sales cycle {m['cycle_days']:.1f} days from acceptance to won"
        f"{' (assumed: nothing won yet)' if m['cycle_assumed'] else ''}.",
        "Each accepted deal is worth the mean won deal and is expected to close when its age reaches the sales "
        "cycle (at once if older). Its probability is the win rate, scaled by cycle ÷ age once older than the "
        "cycle. The forecast adds value × probability of the deals expected within 30, 60 and 90 days.",
    ]
    by_rep: dict[str, list[dict]] = {}
    for deal in deals:
        by_rep.setdefault(deal["rep"], []).append(deal)
    rep_rows = [{"rep": rep, "deals": len(items), "median_age": median(d["age_days"] for d in items),
                 "pipeline": sum((d["value"] for d in items), Decimal(0)),
                 **{f"forecast_{days}": sum((d["expected_value"] for d in items if d["remaining"] <= days), Decimal(0))
                    for days in HORIZONS}}
                for rep, items in sorted(by_rep.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    # Per rep rather than per deal: a page stays readable (and fast) with thousands of open deals;
    # the deals themselves are the inbox's accepted handoffs.
    tables = [Table("forecast", "Forecast", HORIZON_COLUMNS, horizons),
              Table("reps", "Accepted deals by rep", REP_COLUMNS, rep_rows,
                    empty="No accepted handoff is open: the pipeline is empty.")]
    result = ReportResult("forecast", "Forecast", span, tables, chart, summary=summary, notes=notes)
    result.options["model"] = m
    result.options["pipeline"] = pipeline
    return result
