"""The signed links of the notification, in the Flask test client: GET shows, POST acts with CSRF."""
from __future__ import annotations

import re
from decimal import Decimal
from urllib.parse import urlsplit

from sqlalchemy import select
from support.sales import get_handoff, hand_off, sales_links

from nurture_mail.models import HandoffState, Lead, LeadStatus, SalesRep
from nurture_mail.sales.links import SalesLinks


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def notified(platform, email="link@acme.example"):
    platform.add_lead(email, first_name="Lin", company="Acme", region="AMER")
    handoff_id = hand_off(platform, email)
    platform.work()
    [message] = platform.received(to="ava@sales.example")
    return handoff_id, sales_links(message.text)


def test_get_shows_and_never_acts_post_acts_with_csrf(platform, team, clock):
    handoff_id, links = notified(platform)
    client = platform.app.test_client()
    page = client.get(path_of(links["Accept"]))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"Handoff #{handoff_id}: Lin at Acme" in html and "Accept</button>" in html
    assert "Not ready: back to nurture" in html and "Mark won" in html and "Mark lost" in html
    assert page.headers["Cache-Control"] == "no-store"
    # Scanners fetch every link, several times: nothing changes.
    client.get(path_of(links["Reject"]))
    handoff = get_handoff(platform, handoff_id)
    assert handoff.state == HandoffState.notified and handoff.first_action_at is None

    accept_url = urlsplit(links["Accept"]).path + "/accept"
    refused = platform.app.test_client().post(accept_url)  # no CSRF token: a forged cross-site post
    assert refused.status_code == 400 and "This form has expired" in refused.get_data(as_text=True)
    assert get_handoff(platform, handoff_id).state == HandoffState.notified

    clock.advance(minutes=7)
    done = client.post(accept_url, data={"csrf_token": csrf_token(html)})
    assert done.status_code == 303
    handoff = get_handoff(platform, handoff_id)
    assert handoff.state == HandoffState.accepted and handoff.first_action_at == clock.now()
    [action] = [a for a in handoff.actions if a.action == "accept"]
    assert (action.actor, action.via, action.at) == ("ava@sales.example", "email-link", clock.now())
    with platform.svc.db.session() as session:
        assert session.scalar(select(Lead.status).where(Lead.email == "link@acme.example")) == LeadStatus.accepted
    followed = client.get(done.headers["Location"])
    assert "Accepted: the lead is yours" in followed.get_data(as_text=True)

    # A bad value is refused with the reason, nothing changes; a good one closes the deal.
    won_url = urlsplit(links["Accept"]).path + "/won"
    token = csrf_token(followed.get_data(as_text=True))
    again = client.post(won_url, data={"csrf_token": token, "value": "-5"}, follow_redirects=True)
    assert "a deal value cannot be negative" in again.get_data(as_text=True)
    assert get_handoff(platform, handoff_id).state == HandoffState.accepted
    client.post(won_url, data={"csrf_token": token, "value": "24,000.50"})
    handoff = get_handoff(platform, handoff_id)
    assert handoff.state == HandoffState.won and handoff.deal_value == Decimal("24000.50")
    closed = client.get(path_of(links["Accept"])).get_data(as_text=True)
    assert "This handoff is closed (won, 24,000.50)" in closed and "Mark won" not in closed


def test_tampered_and_foreign_tokens_get_clean_error_pages(platform, team, clock):
    handoff_id, links = notified(platform)
    client = platform.app.test_client()
    path = urlsplit(links["Accept"]).path
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    response = client.get(tampered)
    assert response.status_code == 400 and "This link is not valid" in response.get_data(as_text=True)
    token = csrf_token(client.get(path).get_data(as_text=True))
    assert client.post(tampered + "/accept", data={"csrf_token": token}).status_code == 400
    # A token for another purpose (a tracking token's salt) does not verify either.
    from nurture_mail.tracking.tokens import Tokens

    other = Tokens.from_config(platform.svc.config).unsubscribe(handoff_id, 1)
    assert client.get(f"/sales/handoffs/{other}").status_code == 400
    # A rep who does not hold the handoff gets 403, even with a well-signed token.
    with platform.svc.db.session() as session:
        cy = session.scalar(select(SalesRep.id).where(SalesRep.email == "cy@sales.example"))
    foreign = SalesLinks(platform.svc.config, platform.clock).token(handoff_id, cy)
    assert client.get(f"/sales/handoffs/{foreign}").status_code == 403
    assert client.post(f"/sales/handoffs/{foreign}/accept", data={"csrf_token": token}).status_code == 403
    assert get_handoff(platform, handoff_id).state == HandoffState.notified


def test_reject_from_the_link_records_kind_and_reason(platform, team, clock):
    handoff_id, links = notified(platform)
    client = platform.app.test_client()
    html = client.get(path_of(links["Reject"])).get_data(as_text=True)
    base = urlsplit(links["Reject"]).path
    missing = client.post(base + "/reject", data={"csrf_token": csrf_token(html), "kind": "bad_fit"},
                          follow_redirects=True)
    assert "reason: say why the lead is rejected" in missing.get_data(as_text=True)
    client.post(base + "/reject", data={"csrf_token": csrf_token(html), "kind": "bad_fit", "reason": "a student"})
    handoff = get_handoff(platform, handoff_id)
    assert (handoff.state, handoff.reject_kind, handoff.reject_reason) == (HandoffState.rejected, "bad_fit",
                                                                          "a student")
    with platform.svc.db.session() as session:
        assert session.scalar(select(Lead.status).where(Lead.email == "link@acme.example")) == LeadStatus.disqualified
