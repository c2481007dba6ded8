"""Per topic a campaign teaches: how many of its leads know it, engaged with it, only saw it,
or never got it; and the topics most often still unfilled when a journey ended."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..exceptions import InvalidInput
from ..models import STAGE_ORDER, Campaign, Enrollment, EnrollmentState, Knowledge, KnowledgeLevel, Step, Topic
from .common import Chart, Column, DateRange, ReportResult, Series, Table, rate
from .summaries import topic_levels

COLUMNS = [
    Column("topic", "Topic", "text"),
    Column("stage", "Stage", "text"),
    Column("leads", "Leads"),
    Column("known", "Know it"),
    Column("engaged", "Engaged"),
    Column("exposed", "Exposed only"),
    Column("never", "Never reached"),
    Column("ended", "Journeys ended"),
    Column("unfilled", "Unfilled at the end"),
    Column("unfilled_rate", "Unfilled rate", "pct"),
]


def build(session: Session, span: DateRange, ctx, params: dict[str, str]) -> ReportResult:
    campaigns = list(session.execute(select(Campaign.id, Campaign.slug, Campaign.name).order_by(Campaign.name)))
    options: dict = {"campaigns": [(slug, name) for _, slug, name in campaigns]}
    if not campaigns:
        return ReportResult("topics", "Topics", span, [Table("topics", "Topics", COLUMNS, [],
                            empty="No campaign yet.")], None, options=options)
    slug = (params.get("campaign") or "").strip()
    chosen = next((c for c in campaigns if c[1] == slug), None) if slug else campaigns[0]
    if chosen is None:
        raise InvalidInput(f"no campaign {slug!r} (campaigns: {', '.join(c[1] for c in campaigns)})",
                           field="campaign")
    cid, slug, name = chosen
    options["campaign"] = slug
    taught: list[str] = []
    for teaches in session.scalars(select(Step.teaches).where(Step.campaign_id == cid).order_by(Step.position)):
        for topic in teaches or []:
            if topic not in taught:
                taught.append(topic)
    topics = {t.slug: t for t in session.scalars(select(Topic).where(Topic.slug.in_(taught)))}
    taught.sort(key=lambda s: STAGE_ORDER.get(topics[s].stage, 9) if s in topics else 9)
    in_campaign = (Enrollment.campaign_id == cid) & (Enrollment.enrolled_at < span.end_at)
    leads = session.scalar(select(func.count()).select_from(Enrollment).where(in_campaign)) or 0
    levels, fresh_at = topic_levels(session, cid, taught, span.end, span.end_at)
    ended_filter = ((Enrollment.campaign_id == cid)
                    & Enrollment.state.in_([EnrollmentState.completed, EnrollmentState.exited])
                    & (Enrollment.ended_at >= span.start_at) & (Enrollment.ended_at < span.end_at))
    ended = session.scalar(select(func.count()).select_from(Enrollment).where(ended_filter)) or 0
    filled: dict[str, int] = {}
    if taught and ended:
        filled = dict(session.execute(
            select(Knowledge.topic, func.count()).join(Enrollment, Enrollment.lead_id == Knowledge.lead_id)
            .where(ended_filter, Knowledge.topic.in_(taught),
                   Knowledge.level.in_([KnowledgeLevel.engaged, KnowledgeLevel.known]))
            .group_by(Knowledge.topic)
        ).tuples().all())
    rows: list[dict[str, Any]] = []
    for topic in taught:
        known = levels.get((topic, KnowledgeLevel.known.value), 0)
        engaged = levels.get((topic, KnowledgeLevel.engaged.value), 0)
        exposed = levels.get((topic, KnowledgeLevel.exposed.value), 0)
        unfilled = ended - filled.get(topic, 0)
        rows.append({"topic": topic, "stage": topics[topic].stage.value if topic in topics else "",
                     "leads": leads, "known": known, "engaged": engaged, "exposed": exposed,
                     "never": max(leads - known - engaged - exposed, 0), "ended": ended, "unfilled": unfilled,
                     "unfilled_rate": rate(unfilled, ended)})
    worst = sorted(rows, key=lambda r: (-r["unfilled"], r["topic"]))
    chart = Chart("hbars", f"Topics most often left unfilled when a journey ended ({ended:,} ended)",
                  [r["topic"] for r in worst], [Series("Unfilled", [r["unfilled"] for r in worst], "s4")])
    table = Table("topics", f"Topics of {name}", COLUMNS, rows, empty="This campaign teaches no topic.")
    notes = ["Leads: enrolled in the campaign by the end of the range. Know it: declared by sales, a form or an "
             "import; engaged: clicked content on it (bots excluded); exposed only: an email teaching it was "
             "delivered; never reached: none of these. Unfilled at the end: journeys that completed or exited in "
             "the range while the lead had not engaged with the topic nor knew it."]
    if fresh_at is not None:
        notes.append(f"Know it, engaged and exposed only are as of {fresh_at:%d %b %Y %H:%M} UTC: a summary the "
                     f"report counters job refreshes every five minutes. Leads, journeys ended and unfilled topics "
                     f"are counted live.")
    return ReportResult("topics", f"Topics: {name}", span, [table], chart, notes=notes, options=options)
