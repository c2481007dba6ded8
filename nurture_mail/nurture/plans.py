"""Load campaigns and lead knowledge from the database as the engine's plain data."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ..engine.plan import CampaignPlan, Level, SendWindow, StepPlan
from ..models import Campaign, Delivery, Knowledge, Step
from .sql import among


def plan_of(campaign: Campaign) -> CampaignPlan:
    """The engine's view of a campaign: active steps only, alternates linked by key."""
    steps = [s for s in campaign.steps if s.active]
    key_of = {s.id: s.key for s in steps}
    alternate_of_primary = {s.alternate_of_id: s.key for s in steps if s.alternate_of_id in key_of}
    plans = tuple(
        StepPlan(
            key=s.key, stage=s.stage.value, position=s.position, teaches=frozenset(s.teaches),
            requires=frozenset(s.requires), alternate=alternate_of_primary.get(s.id),
            alternate_of=key_of.get(s.alternate_of_id) if s.alternate_of_id else None, id=s.id,
        )
        for s in steps
    )
    return CampaignPlan(
        slug=campaign.slug, steps=plans, cadence_seconds=campaign.cadence_seconds,
        max_touches=campaign.max_touches, window=window_of(campaign),
    )


def window_of(campaign: Campaign) -> SendWindow:
    """The campaign's send window (stored as minutes after local midnight)."""
    return SendWindow.from_minutes(campaign.window_start_minute, campaign.window_end_minute, campaign.weekdays_only)


def load_campaign(session: Session, campaign_id: int) -> Campaign:
    return session.scalars(
        select(Campaign).where(Campaign.id == campaign_id).options(selectinload(Campaign.steps).selectinload(Step.links))
    ).one()


def knowledge_of(session: Session, lead_ids: Iterable[int]) -> dict[int, dict[str, Level]]:
    result: dict[int, dict[str, Level]] = defaultdict(dict)
    ids = list(lead_ids)
    if not ids:
        return result
    for lead_id, topic, level in session.execute(
        select(Knowledge.lead_id, Knowledge.topic, Knowledge.level).where(among(session, Knowledge.lead_id, ids))
    ):
        result[lead_id][topic] = Level[level.value]
    return result


def delivered_keys(session: Session, enrollment_ids: Iterable[int]) -> dict[int, set[str]]:
    """Step keys each enrollment already has a delivery for, whatever its status."""
    result: dict[int, set[str]] = defaultdict(set)
    ids = list(enrollment_ids)
    if not ids:
        return result
    rows = session.execute(
        select(Delivery.enrollment_id, Step.key).join(Step, Step.id == Delivery.step_id)
        .where(among(session, Delivery.enrollment_id, ids))
    )
    for enrollment_id, key in rows:
        result[enrollment_id].add(key)
    return result
