"""Pausing and resuming a whole campaign: operational state, kept apart from the campaign file.

A paused campaign keeps every enrollment as it is (active ones stay active, with their
``next_send_at``); the scheduler's tick simply does not choose a next step for enrollments of
a paused campaign, so no new email is queued. Resuming lets the next tick pick up every
enrollment that fell due meanwhile, each inside its lead's send window. An email already
queued before the pause (handed to the sender in the same minute) still goes out.

Re-syncing the campaign file never changes this state: pausing is an operator's decision,
not part of the definition.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..exceptions import NotFound
from ..models import Campaign

__all__ = ["CampaignStateChange", "pause_campaign", "resume_campaign"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CampaignStateChange:
    slug: str
    active: bool
    #: False when the campaign already was in the requested state (nothing was written).
    changed: bool


def _campaign(session: Session, slug: str) -> Campaign:
    campaign = session.scalar(select(Campaign).where(Campaign.slug == slug).with_for_update())
    if campaign is None:
        raise NotFound(f"no campaign {slug!r}")
    return campaign


def _set_active(session: Session, slug: str, active: bool, by: str, now: datetime) -> CampaignStateChange:
    campaign = _campaign(session, slug)
    if campaign.active == active:
        return CampaignStateChange(slug, active, changed=False)
    campaign.active = active
    campaign.updated_at = now
    session.flush()
    log.info("campaign %s %s by %s", slug, "resumed" if active else "paused", by)
    return CampaignStateChange(slug, active, changed=True)


def pause_campaign(session: Session, slug: str, *, by: str, now: datetime) -> CampaignStateChange:
    """Stop queuing emails of this campaign; enrollments keep their state and due times."""
    return _set_active(session, slug, False, by, now)


def resume_campaign(session: Session, slug: str, *, by: str, now: datetime) -> CampaignStateChange:
    """Queue this campaign's emails again from the next tick on (overdue ones first, in window)."""
    return _set_active(session, slug, True, by, now)
