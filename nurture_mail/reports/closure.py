"""Closure rate (handed off → won) by lead source, by profile (industry, size, role) and by the
funnel stage the lead had reached, for the handoffs made in the range."""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session

from ..models import STAGE_ORDER, Handoff, HandoffState, Knowledge, KnowledgeLevel, Lead, Topic
from .common import Chart, Column, DateRange, ReportResult, Series, Table, rate
from .profile import SIZE_BANDS, SIZE_ORDER, UNKNOWN, industry_of, role_of

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


def _stage_rank(span: DateRange):
    """Per lead handed off in ``span``: the rank of the furthest funnel stage of a topic it engaged
    with or knows. One join from the range's handoffs (``created_at`` index) to their knowledge
    (``lead_id`` index), grouped in the database."""
    rank = case(*((Topic.stage == stage, STAGE_ORDER[stage]) for stage in STAGE_ORDER), else_=-1)
    leads = select(Handoff.lead_id).where(Handoff.created_at >= span.start_at, Handoff.created_at < span.end_at)
    return (select(Knowledge.lead_id.label("lead_id"), func.max(rank).label("stage_rank"))
            .join(Topic, Topic.slug == Knowledge.topic)
            .where(Knowledge.lead_id.in_(leads), Knowledge.level.in_([KnowledgeLevel.engaged, KnowledgeLevel.known]))
            .group_by(Knowledge.lead_id).subquery())


def _size_band():
    """The head count's ``profile.SIZE_BANDS`` band, in SQL, so the handoffs group by band rather
    than by head count (no head count, or none above zero: unknown)."""
    whens = [(Lead.employees.between(low, high) if high is not None else Lead.employees >= low, label)
             for low, high, label in SIZE_BANDS]
    return case(*whens, else_=literal(UNKNOWN))


def build(session: Session, span: DateRange, ctx, params: dict[str, str]) -> ReportResult:
    stage = _stage_rank(span)
    size = _size_band().label("size")
    # Handoffs grouped by everything a row of the table depends on: a few hundred groups, not one
    # row per handoff; industry and role are mapped in Python (``profile``), once per group.
    grouped = session.execute(
        select(Lead.lead_source, Lead.industry_naics, Lead.industry_sic, size, Lead.title, stage.c.stage_rank,
               Handoff.state, func.count(), func.sum(Handoff.deal_value))
        .join(Lead, Lead.id == Handoff.lead_id).outerjoin(stage, stage.c.lead_id == Handoff.lead_id)
        .where(Handoff.created_at >= span.start_at, Handoff.created_at < span.end_at)
        .group_by(Lead.lead_source, Lead.industry_naics, Lead.industry_sic, size, Lead.title, stage.c.stage_rank,
                  Handoff.state)
    ).all()
    groups: dict[tuple[str, str], dict] = defaultdict(lambda: {"handed_off": 0, "accepted": 0, "rejected": 0,
                                                               "open": 0, "won": 0, "lost": 0,
                                                               "won_value": Decimal(0)})
    total = won = 0
    for source, naics, sic, band, title, rank, state, count, value in grouped:
        state = HandoffState(state)
        total += count
        won += count if state == HandoffState.won else 0
        keys = {
            "lead source": (source or "").strip() or UNKNOWN,
            "industry": industry_of(naics, sic),
            "size": band,
            "role": role_of(title),
            "stage reached": STAGES[rank] if rank is not None and 0 <= rank < len(STAGES) else NO_STAGE,
        }
        for dimension, group in keys.items():
            counts = groups[(dimension, group)]
            counts["handed_off"] += count
            # Accepted: the rep took it (still accepted, or since closed as won / lost after taking it).
            if state in (HandoffState.accepted, HandoffState.won, HandoffState.lost):
                counts["accepted"] += count
            if state == HandoffState.rejected:
                counts["rejected"] += count
            elif state in (HandoffState.notified, HandoffState.accepted):
                counts["open"] += count
            elif state == HandoffState.won:
                counts["won"] += count
                counts["won_value"] += Decimal(value or 0)
            elif state == HandoffState.lost:
                counts["lost"] += count

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
