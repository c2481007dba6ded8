"""Shared lookups and the sentences every report carries."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Step

HUMAN_NOTE = ("Human counts exclude every event flagged as a bot (security scanners that pre-click links, "
              "hidden honeypot links, known scanner user agents).")


def bot_note(excluded: int) -> str:
    return f"{HUMAN_NOTE} {excluded:,} bot-flagged event{'' if excluded == 1 else 's'} excluded in this range."


def step_campaigns(session: Session) -> dict[int, int]:
    return dict(session.execute(select(Step.id, Step.campaign_id)).tuples().all())
