"""Per campaign: who entered, where they are, what was sent and what people did with it."""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import Campaign, Enrollment, EnrollmentState, Handoff
from .common import Chart, Column, DateRange, ReportResult, Series, Table
from .counters import step_counts
from .notes import bot_note, step_campaigns

COLUMNS = [
    Column("campaign", "Campaign", "text"),
    Column("enrolled", "Enrolled"),
    Column("active", "Active"),
    Column("completed", "Completed"),
    Column("handed_off", "Handed off"),
    Column("exited", "Exited"),
    Column("sent", "Sent"),
    Column("opens", "Human opens"),
    Column("clicks", "Human clicks"),
    Column("unsubscribes", "Unsubscribes"),
    Column("bounces", "Bounces"),
    Column("complaints", "Complaints"),
]


def build(session: Session, span: DateRange, ctx, params: dict[str, str]) -> ReportResult:
    campaigns = list(session.execute(select(Campaign.id, Campaign.slug, Campaign.name).order_by(Campaign.name)))
    rows: dict[int, dict] = {cid: {"campaign": name, "slug": slug, **dict.fromkeys(
        [c.key for c in COLUMNS[1:]], 0)} for cid, slug, name in campaigns}
    # Enrollments that began in the range, by the state they are in now.
    for cid, state, count in session.execute(
        select(Enrollment.campaign_id, Enrollment.state, func.count())
        .where(Enrollment.enrolled_at >= span.start_at, Enrollment.enrolled_at < span.end_at)
        .group_by(Enrollment.campaign_id, Enrollment.state)
    ):
        if cid not in rows:
            continue
        rows[cid]["enrolled"] += count
        if state in (EnrollmentState.active, EnrollmentState.paused):
            rows[cid]["active"] += count
        elif state == EnrollmentState.completed:
            rows[cid]["completed"] += count
        else:
            rows[cid]["exited"] += count
    for cid, count in session.execute(
        select(Handoff.campaign_id, func.count()).where(Handoff.created_at >= span.start_at,
                                                        Handoff.created_at < span.end_at,
                                                        Handoff.campaign_id.is_not(None))
        .group_by(Handoff.campaign_id)
    ):
        if cid in rows:
            rows[cid]["handed_off"] = count
    counts = step_counts(session, span)
    campaign_of = step_campaigns(session)
    bots = 0
    totals: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for step_id, metrics in counts.items():
        cid = campaign_of.get(step_id)
        if cid is None:
            continue
        for key, value in metrics.items():
            totals[cid][key] += value
        bots += metrics["bot_events"]
    for cid, metrics in totals.items():
        if cid in rows:
            for key in ("sent", "opens", "clicks", "unsubscribes", "bounces", "complaints"):
                rows[cid][key] = metrics[key]
    table_rows = list(rows.values())
    total = {"sent": 0, "opens": 0, "clicks": 0, "handed_off": 0}
    for row in table_rows:
        for key in total:
            total[key] += row[key]
    chart = Chart("funnel", "All campaigns: from sent to handed off",
                  ["Sent", "Opened (human)", "Clicked (human)", "Handed off"],
                  [Series("Leads", [total["sent"], total["opens"], total["clicks"], total["handed_off"]], "s1")])
    table = Table("campaigns", "Campaigns", COLUMNS, table_rows,
                  empty="No campaign yet: add one under campaigns/ or in Campaigns, then enroll leads.",
                  links={"campaign": "steps"})
    return ReportResult("campaigns", "Campaigns", span, [table], chart, notes=[bot_note(bots)])
