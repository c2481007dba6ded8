"""The sales team (plugin): ``team_file`` and ``team`` fixtures, a team synced from a real team
file, and helpers that start handoffs through the real code and read them back."""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from nurture_mail.models import Handoff, Lead, SalesRep
from nurture_mail.sales.decision import HandoffDecision
from nurture_mail.sales.handoff import start_handoff
from nurture_mail.sales.team import sync_sales_team

from .platform import Platform

TEAM = """\
reps:
  - {email: ava@sales.example, name: Ava Closer, incoming: true, manager: mo@sales.example}
  - {email: ben@sales.example, name: Ben Closer, incoming: true, available: false, manager: mo@sales.example}
  - {email: cy@sales.example, name: Cy Closer, incoming: true, manager: mo@sales.example}
  - {email: dee@sales.example, name: Dee Owner, manager: mo@sales.example}
  - {email: eve@sales.example, name: Eve Owner, manager: mo@sales.example}
  - {email: mo@sales.example, name: Mo Manager}
territories:
  - {name: Americas, region: AMER, owner: dee@sales.example}
  - {name: Europe, region: EMEA, owner: eve@sales.example}
"""


@pytest.fixture
def team_file(tmp_path) -> Path:
    path = tmp_path / "sales_team.yaml"
    path.write_text(TEAM, encoding="utf-8")
    return path


def sync_team(platform: Platform, path: Path) -> None:
    with platform.svc.db.session() as session:
        sync_sales_team(session, path, platform.clock.now())


@pytest.fixture
def team(platform, team_file) -> Path:
    sync_team(platform, team_file)
    return team_file


def hand_off(platform: Platform, email: str, *,
             reason: str = "hand_raiser", detail: str = "clicked 'Book a demo'",
             campaign: str | None = "northwind-security", trigger_event_id: int | None = None,
             triggered_at: datetime | None = None) -> int | None:
    """Start a handoff the way the scoring side does: its own transaction, committed."""
    from nurture_mail.models import Campaign

    with platform.svc.db.session() as session:
        lead = session.scalar(select(Lead).where(Lead.email == email))
        campaign_id = session.scalar(select(Campaign.id).where(Campaign.slug == campaign)) if campaign else None
        decision = HandoffDecision(lead.id, campaign_id, reason, detail, trigger_event_id,
                                   triggered_at or platform.clock.now())
        handoff = start_handoff(platform.svc, session, decision, platform.clock.now())
        return handoff.id if handoff else None


def get_handoff(platform: Platform, handoff_id: int) -> Handoff:
    with platform.svc.db.session() as session:
        handoff = session.get(Handoff, handoff_id)
        handoff.assignments, handoff.actions  # noqa: B018  (loaded while the session is open)
        return handoff


def rep_email(platform: Platform, rep_id: int | None) -> str | None:
    with platform.svc.db.session() as session:
        return session.scalar(select(SalesRep.email).where(SalesRep.id == rep_id)) if rep_id else None


def sales_links(text: str) -> dict[str, str]:
    """The Accept / Reject / page links of a notification's text part."""
    found = {}
    for name in ("Accept", "Reject", "Won / lost later"):
        match = re.search(rf"^\s*{re.escape(name)}: (\S+)$", text, re.M)
        if match:
            found[name] = match.group(1)
    return found
