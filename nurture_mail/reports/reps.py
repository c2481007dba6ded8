"""Per rep: handoffs, what they did with them, how fast, and whether the SLA was kept."""
from __future__ import annotations

from collections import defaultdict
from statistics import median

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..engine.routing import business_hours_between, parse_hhmm
from ..models import Handoff, HandoffState, SalesRep
from .common import Chart, Column, DateRange, ReportResult, Series, Table, rate

COLUMNS = [
    Column("rep", "Rep", "text"),
    Column("handoffs", "Handoffs"),
    Column("accepted", "Accepted"),
    Column("rejected_not_ready", "Rejected: not ready"),
    Column("rejected_bad_fit", "Rejected: bad fit"),
    Column("won", "Won"),
    Column("lost", "Lost"),
    Column("open", "Open"),
    Column("median_hours", "First action (median business h)", "hours"),
    Column("sla_kept", "SLA kept", "pct"),
]


def build(session: Session, span: DateRange, ctx, params: dict[str, str]) -> ReportResult:
    config = ctx.config
    start, end = parse_hhmm(config.sales_day_start), parse_hhmm(config.sales_day_end)
    reps = {r.id: r for r in session.scalars(select(SalesRep))}
    stats: dict[int | None, dict] = defaultdict(lambda: {"handoffs": 0, "accepted": 0, "rejected_not_ready": 0,
                                                         "rejected_bad_fit": 0, "won": 0, "lost": 0, "open": 0,
                                                         "waits": [], "kept": 0, "missed": 0})
    for h in session.execute(select(Handoff.rep_id, Handoff.state, Handoff.reject_kind, Handoff.notified_at,
                                    Handoff.created_at, Handoff.first_action_at, Handoff.sla_due_at)
                             .where(Handoff.created_at >= span.start_at, Handoff.created_at < span.end_at)):
        s = stats[h.rep_id]
        s["handoffs"] += 1
        if h.state in (HandoffState.accepted, HandoffState.won, HandoffState.lost):
            s["accepted"] += 1
        if h.state == HandoffState.rejected:
            s["rejected_bad_fit" if h.reject_kind == "bad_fit" else "rejected_not_ready"] += 1
        elif h.state == HandoffState.won:
            s["won"] += 1
        elif h.state == HandoffState.lost:
            s["lost"] += 1
        else:
            s["open"] += 1
        begun = h.notified_at or h.created_at
        if h.first_action_at is not None:
            s["waits"].append(max(business_hours_between(begun, h.first_action_at, config.sales_timezone,
                                                         start, end), 0.0))
        if h.sla_due_at is not None:
            if h.first_action_at is not None:
                s["kept" if h.first_action_at <= h.sla_due_at else "missed"] += 1
            elif ctx.now > h.sla_due_at:
                s["missed"] += 1
    rows = []
    for rep_id, s in stats.items():
        rep = reps.get(rep_id) if rep_id is not None else None
        rows.append({"rep": rep.name if rep else "(unassigned)", "rep_email": rep.email if rep else "",
                     **{k: s[k] for k in ("handoffs", "accepted", "rejected_not_ready", "rejected_bad_fit", "won",
                                          "lost", "open")},
                     "median_hours": median(s["waits"]) if s["waits"] else None,
                     "sla_kept": rate(s["kept"], s["kept"] + s["missed"])})
    rows.sort(key=lambda r: (-r["handoffs"], r["rep"]))
    chart = Chart("bars", "Handoffs per rep and what became of them", [r["rep"] for r in rows],
                  [Series("Handoffs", [r["handoffs"] for r in rows], "s1"),
                   Series("Accepted", [r["accepted"] for r in rows], "s2"),
                   Series("Won", [r["won"] for r in rows], "s3")])
    notes = [f"Handoffs made in the range, credited to the rep who holds them now. Time to first action counts "
             f"business hours ({config.sales_day_start}–{config.sales_day_end} {config.sales_timezone}, Monday to "
             f"Friday) from the notification. SLA kept = first action by the due time ÷ handoffs whose due time "
             f"has passed or that were acted on."]
    table = Table("reps", "Reps", COLUMNS, rows, empty="No handoff in this range.")
    return ReportResult("reps", "Reps", span, [table], chart, notes=notes)
