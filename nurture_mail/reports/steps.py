"""Per step of one campaign: sent, delivered, opened, clicked, unsubscribed, bounced, skipped."""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..exceptions import InvalidInput
from ..models import Campaign, Step
from .common import Chart, Column, DateRange, ReportResult, Series, Table
from .counters import step_counts
from .notes import bot_note

_DEFAULTED = re.compile(r"\{\{[^}]*?default\(\s*(['\"])(.*?)\1[^}]*\}\}")
_EXPRESSION = re.compile(r"\{\{.*?\}\}")


def readable_subject(subject: str) -> str:
    """A subject template as a reader would see it for a lead we know nothing about: each
    ``{{ … |default('x') }}`` becomes ``x``, any other expression ``…``."""
    return " ".join(_EXPRESSION.sub("…", _DEFAULTED.sub(lambda m: m.group(2), subject)).split())


COLUMNS = [
    Column("position", "#"),
    Column("step", "Step", "text"),
    Column("subject", "Subject", "text"),
    Column("sent", "Sent"),
    Column("delivered", "Delivered"),
    Column("opens", "Human opens"),
    Column("clicks", "Human clicks"),
    Column("unsubscribes", "Unsubscribed"),
    Column("bounces", "Bounced"),
    Column("skipped", "Skipped (known)"),
]


def build(session: Session, span: DateRange, ctx, params: dict[str, str]) -> ReportResult:
    campaigns = list(session.execute(select(Campaign.id, Campaign.slug, Campaign.name).order_by(Campaign.name)))
    options = {"campaigns": [(slug, name) for _, slug, name in campaigns]}
    slug = (params.get("campaign") or "").strip()
    if not campaigns:
        table = Table("steps", "Steps", COLUMNS, [], empty="No campaign yet: add one, then enroll leads.")
        return ReportResult("steps", "Steps", span, [table], None, options=options)
    chosen = next((c for c in campaigns if c[1] == slug), None) if slug else campaigns[0]
    if chosen is None:
        raise InvalidInput(f"no campaign {slug!r} (campaigns: {', '.join(c[1] for c in campaigns)})",
                           field="campaign")
    cid, slug, name = chosen
    options["campaign"] = slug
    counts = step_counts(session, span, campaign_id=cid)
    rows: list[dict[str, Any]] = []
    bots = 0
    for step in session.scalars(select(Step).where(Step.campaign_id == cid).order_by(Step.position, Step.id)):
        metrics = counts.get(step.id) or {}
        bots += metrics.get("bot_events", 0)
        rows.append({"position": step.position + 1 if step.position is not None else None, "step": step.key,
                     "subject": readable_subject(step.subject),
                     **{c.key: metrics.get(c.key, 0) for c in COLUMNS[3:]}})
    chart = Chart("bars", f"{name}: per step", [r["step"] for r in rows],
                  [Series("Sent", [r["sent"] for r in rows], "s1"),
                   Series("Human opens", [r["opens"] for r in rows], "s2"),
                   Series("Human clicks", [r["clicks"] for r in rows], "s3")])
    table = Table("steps", f"Steps of {name}", COLUMNS, rows, empty="This campaign has no steps.")
    return ReportResult("steps", f"Steps: {name}", span, [table], chart, notes=[bot_note(bots)], options=options)
