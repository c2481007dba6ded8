"""Write validated CampaignSpecs into the database, idempotently.

Re-syncing an edited file updates the campaign in place: steps are matched by key, so sent
history (deliveries point at steps) is never lost; a step removed from the file is deactivated,
not deleted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ..models import Campaign, Link, Stage, Step, Topic
from .spec import CampaignSpec


@dataclass
class SyncResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def sync_campaign(session: Session, spec: CampaignSpec, now: datetime) -> str:
    """Upsert one campaign; returns "created", "updated" or "unchanged"."""
    _upsert_topics(session, spec)
    campaign = session.scalar(
        select(Campaign).where(Campaign.slug == spec.slug).options(
            selectinload(Campaign.steps).selectinload(Step.links)
        )
    )
    digest = spec.definition_hash()
    if campaign is not None and campaign.definition_hash == digest and campaign.source == spec.source:
        return "unchanged"
    outcome = "updated"
    if campaign is None:
        outcome = "created"
        campaign = Campaign(slug=spec.slug, created_at=now, steps=[])
        session.add(campaign)
    campaign.name = spec.name
    campaign.description = spec.description
    campaign.source = spec.source
    campaign.definition_hash = digest
    campaign.cadence_seconds = spec.cadence_seconds
    campaign.window_start_minute = spec.window_start.hour * 60 + spec.window_start.minute
    campaign.window_end_minute = spec.window_end.hour * 60 + spec.window_end.minute
    campaign.weekdays_only = spec.weekdays_only
    campaign.max_touches = spec.max_touches
    campaign.exit_rules = dict(spec.exit_rules)
    campaign.handoff_rule = dict(spec.handoff_rule)
    campaign.updated_at = now

    existing = {step.key: step for step in campaign.steps}
    by_key: dict[str, Step] = {}
    for position, step_spec in enumerate(spec.steps):
        step = existing.get(step_spec.key)
        if step is None:
            step = Step(key=step_spec.key, links=[])
            campaign.steps.append(step)
        step.position = position
        step.stage = Stage(step_spec.stage)
        step.subject = step_spec.subject
        step.preheader = step_spec.preheader
        step.html_template = step_spec.html_template
        step.text_template = step_spec.text_template
        step.teaches = list(step_spec.teaches)
        step.requires = list(step_spec.requires)
        step.active = True
        _sync_links(step, step_spec)
        by_key[step_spec.key] = step
    for key, step in existing.items():
        if key not in by_key:
            step.active = False
            step.alternate_of_id = None
    session.flush()
    for step_spec in spec.steps:
        by_key[step_spec.key].alternate_of_id = (
            by_key[step_spec.alternate_of].id if step_spec.alternate_of else None
        )
    session.flush()
    return outcome


def _sync_links(step: Step, spec) -> None:
    existing = {link.name: link for link in step.links}
    wanted = {link.name for link in spec.links}
    for link in list(step.links):
        if link.name not in wanted:
            step.links.remove(link)
    for position, link_spec in enumerate(spec.links):
        found = existing.get(link_spec.name)
        if found is None:
            link = Link(name=link_spec.name)
            step.links.append(link)
        else:
            link = found
        link.position = position
        link.url = link_spec.url
        link.label = link_spec.label
        link.topic = link_spec.topic
        link.hand_raiser = link_spec.hand_raiser


def _upsert_topics(session: Session, spec: CampaignSpec) -> None:
    slugs = [t.slug for t in spec.topics]
    existing = {t.slug: t for t in session.scalars(select(Topic).where(Topic.slug.in_(slugs)))}
    for topic_spec in spec.topics:
        topic = existing.get(topic_spec.slug)
        if topic is None:
            topic = Topic(slug=topic_spec.slug)
            session.add(topic)
        topic.name = topic_spec.name
        topic.stage = Stage(topic_spec.stage)
        topic.description = topic_spec.description


def sync_all(session: Session, specs: list[CampaignSpec], now: datetime) -> SyncResult:
    """Each campaign in its own savepoint: one failing write never half-syncs a campaign."""
    result = SyncResult()
    for spec in specs:
        with session.begin_nested():
            outcome = sync_campaign(session, spec, now)
        getattr(result, outcome).append(spec.slug)
    return result
