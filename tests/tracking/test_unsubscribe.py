"""Unsubscribing end to end: URLs read from messages the real SMTP server received, requests
over real HTTP, then the tick and a real RQ worker: no further message reaches the server."""
from __future__ import annotations

import http.client
import re
import smtplib
import threading
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from nurture_mail.bounces.inbound import attach_inbound
from nurture_mail.campaigns import CampaignLoader, sync_all
from nurture_mail.exceptions import InvalidInput
from nurture_mail.models import (
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Event,
    EventKind,
    Lead,
    LeadStatus,
    Suppression,
)
from nurture_mail.nurture.enroll import enroll, find_campaign
from nurture_mail.nurture.suppression import suppress

ROOT = Path(__file__).resolve().parents[2]
CAMPAIGN = "northwind-security"
#: Thursday 14:00 UTC: the second touch (cadence 3 days) for a New York lead.
SECOND_TOUCH = datetime(2026, 3, 5, 14, 0, tzinfo=UTC)
ONE_CLICK = b"List-Unsubscribe=One-Click"


@pytest.fixture
def live(platform):
    """The app over real HTTP; yields ``(host, port)``."""
    server = make_server("127.0.0.1", 0, platform.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", server.server_port
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


def request(live, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection(*live, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        conn.close()


def one_click(live, path: str, encoding: str = "urlencoded"):
    """The POST a mailbox provider sends (RFC 8058 §3.2): the body only, no cookie, no token."""
    if encoding == "urlencoded":
        body, content_type = ONE_CLICK, "application/x-www-form-urlencoded"
    else:
        boundary = "----nurture8058boundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
                f"One-Click\r\n--{boundary}--\r\n").encode()
        content_type = f"multipart/form-data; boundary={boundary}"
    return request(live, "POST", path, body, {"Content-Type": content_type, "User-Agent": "Mailbox-Provider/1.0"})


def unsubscribe_uris(message) -> tuple[str, str]:
    """(https URI, mailto URI) of List-Unsubscribe, in that order (RFC 8058: HTTPS first)."""
    uris = re.findall(r"<([^>]+)>", str(message.message["List-Unsubscribe"]))
    assert len(uris) == 2 and uris[0].startswith("http") and uris[1].startswith("mailto:"), uris
    return uris[0], uris[1]


def path_of(uri: str) -> str:
    return urlsplit(uri).path


def lead_state(platform, email: str):
    with platform.svc.db.session() as s:
        lead = s.scalar(select(Lead).where(Lead.email == email))
        enrollments = list(s.scalars(select(Enrollment).where(Enrollment.lead_id == lead.id)))
        suppressions = [(x.scope, x.reason, x.source) for x in s.scalars(
            select(Suppression).where(Suppression.email == email).order_by(Suppression.id))]
        events = [(e.kind, e.detail) for e in s.scalars(
            select(Event).where(Event.lead_id == lead.id, Event.kind == EventKind.unsubscribe).order_by(Event.id))]
        return lead, enrollments, suppressions, events


def start_two_leads(platform):
    platform.add_lead("ana@acme.example", first_name="Ana")
    platform.add_lead("bob@acme.example", first_name="Bob")
    platform.enroll("ana@acme.example")
    platform.enroll("bob@acme.example")
    platform.tick_and_work()
    return platform.received("ana@acme.example")[0]


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_post_unsubscribes_at_once_and_no_further_email_reaches_the_server(platform, live, encoding):
    welcome = start_two_leads(platform)
    https_uri, _ = unsubscribe_uris(welcome)
    assert welcome.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert https_uri in welcome.text and https_uri in welcome.html  # the visible link is the same URL

    status, headers, body = one_click(live, path_of(https_uri), encoding)
    assert status == 200, body
    assert "location" not in headers and "set-cookie" not in headers
    assert "You are unsubscribed" in body and "ana@acme.example" in body

    lead, [enrollment], suppressions, events = lead_state(platform, "ana@acme.example")
    assert lead.status == LeadStatus.unsubscribed
    assert suppressions == [("*", "unsubscribe", "one-click")]
    assert enrollment.state == EnrollmentState.exited and "unsubscribed" in enrollment.state_reason
    assert [(kind, detail["scope"], detail["source"]) for kind, detail in events] == [
        (EventKind.unsubscribe, "*", "one-click")]

    # Providers may POST again: still 200, still one suppression and one event.
    assert one_click(live, path_of(https_uri), encoding)[0] == 200
    assert len(lead_state(platform, "ana@acme.example")[3]) == 1

    platform.tick_and_work(SECOND_TOUCH)
    assert [m.rcpt_tos[0] for m in platform.received()] == ["ana@acme.example", "bob@acme.example",
                                                            "bob@acme.example"]


def test_an_email_already_queued_is_not_sent_after_a_one_click_unsubscribe(platform, live):
    welcome = start_two_leads(platform)
    platform.tick(SECOND_TOUCH)  # second touches queued, their send job enqueued, not run yet
    queued = [d for d in platform.deliveries() if d.status == DeliveryStatus.queued]
    assert len(queued) == 2

    assert one_click(live, path_of(unsubscribe_uris(welcome)[0]))[0] == 200
    platform.work()

    assert [m.rcpt_tos[0] for m in platform.received()].count("ana@acme.example") == 1
    with platform.svc.db.session() as s:
        ana = s.scalar(select(Lead).where(Lead.email == "ana@acme.example"))
        second = s.scalars(select(Delivery).where(Delivery.lead_id == ana.id).order_by(Delivery.id)).all()[-1]
        assert second.status == DeliveryStatus.cancelled and second.sent_at is None


def test_the_sender_checks_the_suppression_list_at_send_time(platform):
    """Rows added by any path (an import of old opt-outs, an admin) stop a queued email, per scope."""
    for name in ("all", "here", "elsewhere"):
        platform.add_lead(f"{name}@beta.example")
        platform.enroll(f"{name}@beta.example")
    platform.tick()  # queued, one batch
    with platform.svc.db.session() as s:
        now = platform.clock.now()
        suppress(s, "ALL@beta.example", now, reason="manual", source="test")
        suppress(s, "here@beta.example", now, reason="unsubscribe", source="test", scope=CAMPAIGN)
        suppress(s, "elsewhere@beta.example", now, reason="unsubscribe", source="test", scope="other-campaign")
    platform.work()

    assert [m.rcpt_tos[0] for m in platform.received()] == ["elsewhere@beta.example"]
    with platform.svc.db.session() as s:
        outcome = {d.lead.email: (d.status, d.last_error) for d in s.scalars(select(Delivery))}
    assert outcome["all@beta.example"] == (DeliveryStatus.cancelled, "address is suppressed (all email)")
    assert outcome["here@beta.example"] == (DeliveryStatus.cancelled,
                                            f"address is suppressed for campaign {CAMPAIGN}")
    assert outcome["elsewhere@beta.example"][0] == DeliveryStatus.sent


def test_get_and_head_never_unsubscribe(platform, live):
    welcome = start_two_leads(platform)
    path = path_of(unsubscribe_uris(welcome)[0])
    for _ in range(3):  # a scanner, a link preview, the person
        status, headers, body = request(live, "GET", path)
        assert status == 200
        assert headers["cache-control"] == "no-store" and "noindex" in headers["x-robots-tag"]
        assert "Unsubscribe?" in body and "ana@acme.example" in body
        assert 'value="campaign"' in body and 'value="all"' in body
        assert request(live, "HEAD", path)[0] == 200

    lead, [enrollment], suppressions, events = lead_state(platform, "ana@acme.example")
    assert (lead.status, enrollment.state, suppressions, events) == (
        LeadStatus.nurturing, EnrollmentState.active, [], [])
    platform.tick_and_work(SECOND_TOUCH)
    assert len(platform.received("ana@acme.example")) == 2


def _sync_second_campaign(platform) -> None:
    spec = CampaignLoader(platform.svc.config.templates_dir).load_file(ROOT / "tests/fixtures/always_on.yaml")
    with platform.svc.db.session() as s:
        sync_all(s, [spec], platform.clock.now())


def test_this_campaign_only_leaves_the_lead_nurturable_elsewhere(platform):
    welcome = start_two_leads(platform)
    path = path_of(unsubscribe_uris(welcome)[0])
    client = platform.app.test_client()
    page = client.get(path).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    # The form is CSRF-protected: without the token nothing changes.
    assert client.post(f"{path}/confirm", data={"scope": "campaign"}).status_code == 400
    assert lead_state(platform, "ana@acme.example")[2] == []

    response = client.post(f"{path}/confirm", data={"scope": "campaign", "csrf_token": token})
    assert response.status_code == 200
    assert "no more emails from “Northwind Cloud — security evaluation track”" in response.get_data(as_text=True)

    lead, [enrollment], suppressions, events = lead_state(platform, "ana@acme.example")
    assert suppressions == [(CAMPAIGN, "unsubscribe", "link")]
    assert enrollment.state == EnrollmentState.exited
    assert lead.status == LeadStatus.nurturing  # still a prospect, just not for this track
    assert [detail["scope"] for _, detail in events] == [CAMPAIGN]

    # The page now says so, and still offers all email.
    page = client.get(path).get_data(as_text=True)
    assert "already unsubscribed from" in page and 'value="campaign"' not in page and 'value="all"' in page

    _sync_second_campaign(platform)
    with platform.svc.db.session() as s:
        ana = s.scalar(select(Lead).where(Lead.email == "ana@acme.example"))
        with pytest.raises(InvalidInput, match=rf"suppressed for campaign {CAMPAIGN} \(unsubscribe, link"):
            enroll(s, ana, find_campaign(s, CAMPAIGN), platform.clock.now())
        s.rollback()
    platform.enroll("ana@acme.example", campaign="always-on")
    platform.tick_and_work(SECOND_TOUCH)
    subjects = [m.message["X-Nurture-Campaign"] for m in platform.received("ana@acme.example")]
    assert subjects == [CAMPAIGN, "always-on"]


def test_all_email_from_the_page_then_enrolling_anywhere_is_refused(platform):
    welcome = start_two_leads(platform)
    path = path_of(unsubscribe_uris(welcome)[0])
    client = platform.app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)
    assert client.post(f"{path}/confirm", data={"scope": "all", "csrf_token": token}).status_code == 200
    lead, _, suppressions, _ = lead_state(platform, "ana@acme.example")
    assert lead.status == LeadStatus.unsubscribed and suppressions == [("*", "unsubscribe", "link")]
    assert "You are unsubscribed" in client.get(path).get_data(as_text=True)

    _sync_second_campaign(platform)
    with platform.svc.db.session() as s:
        ana = s.scalar(select(Lead).where(Lead.email == "ana@acme.example"))
        ana.status = LeadStatus.recycled  # even if a rep recycles the lead, the address stays suppressed
        s.flush()
        with pytest.raises(InvalidInput, match="suppressed for all email"):
            enroll(s, ana, find_campaign(s, "always-on"), platform.clock.now())
        s.rollback()


@pytest.mark.parametrize("mangle", [
    lambda token: token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"),  # flipped signature
    lambda token: token[: len(token) // 2],  # truncated
    lambda token: "eyJmb28iOjF9." + token.rpartition(".")[2],  # another payload, the same signature
])
def test_a_tampered_token_gets_a_clean_400_and_changes_nothing(platform, live, mangle):
    welcome = start_two_leads(platform)
    token = path_of(unsubscribe_uris(welcome)[0]).rpartition("/")[2]
    bad = f"/u/{mangle(token)}"
    for status, _headers, body in (request(live, "GET", bad), one_click(live, bad)):
        assert status == 400
        assert "This link is not valid" in body and "Traceback" not in body
    assert lead_state(platform, "ana@acme.example")[2] == []


def test_a_post_without_the_one_click_body_changes_nothing(platform, live):
    welcome = start_two_leads(platform)
    path = path_of(unsubscribe_uris(welcome)[0])
    status, _, body = request(live, "POST", path, b"foo=bar", {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400 and "one-click" in body
    assert lead_state(platform, "ana@acme.example")[2] == []


def _send_mail(server, sender: str, to: str, subject: str) -> None:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Please unsubscribe me.\n")
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.send_message(message)


def test_a_mailto_unsubscribe_received_by_smtp_counts(platform):
    attach_inbound(platform.smtp, platform.svc)
    welcome = start_two_leads(platform)
    _, mailto = unsubscribe_uris(welcome)
    target = urlsplit(mailto)
    assert target.path == "unsubscribe@northwind.example"
    subject = unquote(parse_qs(target.query)["subject"][0])
    # Sent from an alias: the token in the subject still names the address we wrote to.
    _send_mail(platform.smtp, "Ana Alias <ana.personal@elsewhere.example>", target.path, subject)

    lead, [enrollment], suppressions, events = lead_state(platform, "ana@acme.example")
    assert lead.status == LeadStatus.unsubscribed and enrollment.state == EnrollmentState.exited
    assert suppressions == [("*", "unsubscribe", "mailto")]
    assert [detail["source"] for _, detail in events] == ["mailto"]

    # Without a token (the subject edited away), the From address is unsubscribed.
    _send_mail(platform.smtp, "Bob <BOB@acme.example>", "unsubscribe@northwind.example", "unsubscribe")
    assert lead_state(platform, "bob@acme.example")[2] == [("*", "unsubscribe", "mailto")]

    platform.tick_and_work(SECOND_TOUCH)
    assert len(platform.received("ana@acme.example")) == len(platform.received("bob@acme.example")) == 1
