"""The dossier: signed links only in the rep's email (never stored or posted) and expiring; a
bounded history without bot score lines."""
from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import urlsplit

from support.sales import get_handoff, hand_off, sales_links

from nurture_mail.models import (
    Event,
    EventKind,
    LeadScore,
)
from nurture_mail.sales.dossier import HISTORY_LIMIT
from nurture_mail.sales.links import MARGIN_DAYS


def test_links_are_only_in_the_email_and_expire(platform, team, clock):
    platform.add_lead("leak@acme.example", first_name="Lea", region="AMER")
    handoff_id = hand_off(platform, "leak@acme.example")
    platform.work()
    handoff = get_handoff(platform, handoff_id)
    stored = json.dumps(handoff.dossier)
    assert handoff.dossier["links"] == {} and "/sales/handoffs/" not in stored
    assert "Open:" not in handoff.dossier["text"]
    [message] = platform.received(to="ava@sales.example")
    links = sales_links(message.text)
    path = urlsplit(links["Accept"]).path
    client = platform.app.test_client()
    clock.advance(days=platform.svc.config.ownership_days + MARGIN_DAYS - 1)
    assert client.get(path).status_code == 200  # still within the window and its margin
    clock.advance(days=2)
    expired = client.get(path)
    assert expired.status_code == 410 and "This link has expired" in expired.get_data(as_text=True)


def test_the_dossier_history_is_capped_and_bot_score_lines_dropped(platform, team, clock):
    lead_id = platform.add_lead("busy@acme.example", region="AMER")
    start = clock.now() - timedelta(days=30)
    with platform.svc.db.session() as session:
        for n in range(HISTORY_LIMIT + 20):
            session.add(Event(lead_id=lead_id, kind=EventKind.open, at=start + timedelta(minutes=n), detail={}))
        for n in range(3):
            session.add(Event(lead_id=lead_id, kind=EventKind.click, at=start + timedelta(minutes=n),
                              suspected_bot=True, bot_reason="scanner", detail={}))
        session.add(LeadScore(lead_id=lead_id, computed_at=clock.now(), fit=10.0, engagement=3.0, fit_breakdown=[],
                              engagement_breakdown=[
                                  {"points": 0.0, "reason": "clicked 'x': ignored, suspected bot (scanner)"},
                                  {"points": 3.0, "reason": "opened 'welcome'"}]))
    dossier = get_handoff(platform, hand_off(platform, "busy@acme.example")).dossier
    history = dossier["history"]
    assert len(history) == HISTORY_LIMIT and dossier["history_omitted"] == 20
    assert dossier["history_bots_excluded"] == 3
    assert history[-1]["at"] == (start + timedelta(minutes=HISTORY_LIMIT + 19)).isoformat()  # the newest kept
    assert [line["reason"] for line in dossier["score"]["engagement_breakdown"]] == ["opened 'welcome'"]
    platform.work()
    [message] = platform.received(to="ava@sales.example")
    assert "suspected bot" not in message.text
