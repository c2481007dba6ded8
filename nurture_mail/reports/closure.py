"""Closure rate (handed off → won) by lead source, by profile (industry, size, role) and by the
funnel stage the lead had reached, for the handoffs made in the range."""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import STAGE_ORDER, Handoff, HandoffState, Knowledge, KnowledgeLevel, Lead, Topic
from .common import Chart, Column, DateRange, ReportResult, Series, Table, rate
from .profile import SIZE_ORDER, UNKNOWN, industry_of, role_of, size_of

COLUMNS = [
    Column("dimension", "By", "text"),
    Column("group", "Group", "text"),
    Column("handed_off", "Handed off"),
    Column("accepted", "Accepted"),
    Column("rejected", "Rejected"),
    Column("open", "Open"),
    Column("won", "Won"),
    Column("lost", "Lost"),
    Column("closure_rate", "Closure rate", "pct"),
    Column("won_value", "Won value", "money"),
]
DIMENSIONS = ("lead source", "industry", "size", "role", "stage reached")
STAGES = ["awareness", "consideration", "decision"]
NO_STAGE = "(nothing learned)"


def stage_reached(session: Session, span: DateRange) -> dict[int, str]:
    """The furthest funnel stage of a topic each lead handed off in ``span`` engaged with or knows.

    One join from the range's handoffs (``created_at`` index) to their knowledge (``lead_id``
    index), rather than lists of ids."""
    reached: dict[int, int] = {}
    for lead_id, stage in session.execute(
        select(Knowledge.lead_id, Topic.stage).distinct()
        .join(Topic, Topic.slug == Knowledge.topic)
        .join(Handoff, Handoff.lead_id == Knowledge.lead_id)
        .where(Handoff.created_at >= span.start_at, Handoff.created_at < span.end_at,
               Knowledge.level.in_([KnowledgeLevel.engaged, KnowledgeLevel.known]))
    ):
        rank = STAGE_ORDER.get(stage, -1)
        if rank > reached.get(lead_id, -1):
            reached[lead_id] = rank
    return {lead_id: STAGES[rank] for lead_id, rank in reached.items()}


def build(session: Session, span: DateRange, ctx, params: dict[str, str]) -> ReportResult:
    handoffs = session.execute(
        select(Handoff.state, Handoff.deal_value, Lead.id,
               Lead.lead_source, Lead.industry_naics, Lead.industry_sic, Lead.employees, Lead.title)
        .join(Lead, Lead.id == Handoff.lead_id)
        .where(Handoff.created_at >= span.start_at, Handoff.created_at < span.end_at)
    ).all()
    stages = stage_reached(session, span)
    groups: dict[tuple[str, str], dict] = defaultdict(lambda: {"handed_off": 0, "accepted": 0, "rejected": 0,
                                                               "open": 0, "won": 0, "lost": 0,
                                                               "won_value": Decimal(0)})
    for h in handoffs:
        keys = {
            "lead source": (h.lead_source or "").strip() or UNKNOWN,
            "industry": industry_of(h.industry_naics, h.industry_sic),
            "size": size_of(h.employees),
            "role": role_of(h.title),
            "stage reached": stages.get(h.id, NO_STAGE),
        }
        for dimension, group in keys.items():
            counts = groups[(dimension, group)]
            counts["handed_off"] += 1
            # Accepted: the rep took it (still accepted, or since closed as won / lost after taking it).
            if h.state in (HandoffState.accepted, HandoffState.won, HandoffState.lost):
                counts["accepted"] += 1
            if h.state == HandoffState.rejected:
                counts["rejected"] += 1
            elif h.state in (HandoffState.notified, HandoffState.accepted):
                counts["open"] += 1
            elif h.state == HandoffState.won:
                counts["won"] += 1
                counts["won_value"] += h.deal_value or Decimal(0)
            elif h.state == HandoffState.lost:
                counts["lost"] += 1

    def order(item: tuple[tuple[str, str], dict]) -> tuple:
        (dimension, group), counts = item
        if dimension == "size":
            within: tuple = (SIZE_ORDER.index(group) if group in SIZE_ORDER else 99, group)
        elif dimension == "stage reached":
            within = ((STAGES + [NO_STAGE]).index(group), group)
        else:
            within = (group == UNKNOWN, -counts["handed_off"], group)
        return (DIMENSIONS.index(dimension), within)

    rows = []
    for (dimension, group), counts in sorted(groups.items(), key=order):
        rows.append({"dimension": dimension, "group": group, **counts,
                     "closure_rate": rate(counts["won"], counts["handed_off"])})
    total = len(handoffs)
    won = sum(1 for h in handoffs if h.state == HandoffState.won)
    by_stage = [r for r in rows if r["dimension"] == "stage reached"]
    chart = Chart("hbars", "Closure rate by the stage the lead had reached", [r["group"] for r in by_stage],
                  [Series("Closure rate", [r["closure_rate"] or 0 for r in by_stage], "s2")], unit="pct")
    summary = [f"{total:,} handoffs in the range, {won:,} won: closure rate "
               f"{(rate(won, total) or 0) * 100:.1f}%."]
    notes = ["Closure rate = won ÷ handed off (handoffs made in the range, whatever became of them since). "
             "Stage reached: the furthest funnel stage of a topic the lead engaged with or knows. Role comes "
             "from the job title; size from the employee count; industry from the NAICS (else SIC) code."]
    table = Table("closure", "Closure rate", COLUMNS, rows,
                  empty="No handoff in this range: widen the range, or wait for leads to meet a handoff rule.")
    return ReportResult("closure", "Closure", span, [table], chart, summary=summary, notes=notes)
