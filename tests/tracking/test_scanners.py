"""Security scanners and other machines: flagged with the reason, kept, and never teaching."""
from __future__ import annotations

from sqlalchemy import select
from support.tracking import BROWSER, first_email, honeypot_link, stored_events, visible_links

from nurture_mail.models import KnowledgeEvidence, KnowledgeLevel
from nurture_mail.nurture.journal import SentJournal
from nurture_mail.tracking.urls import TrackingUrls

from .test_clicks import evidence, knowledge, link_row

SCANNER = "Mozilla/5.0 (compatible; BingPreview/1.0b) AppleWebKit/537.36 (KHTML, like Gecko)"


def test_scanner_patterns_are_flagged_with_their_reason_and_teach_nothing(platform, clock):
    lead_id, msg = first_email(platform)
    links = visible_links(msg.html)
    report, summary = links["Read the 2026 report"], links["The one-page summary"]
    client = platform.app.test_client()

    clock.advance(seconds=2)  # a gateway pre-fetches every link two seconds after delivery
    fast = client.get(report.path, headers={"User-Agent": BROWSER})
    assert fast.status_code == 302  # a scanner still gets the page: it must look like any click
    clock.advance(minutes=30)
    honeypot = client.get(honeypot_link(msg.html).path, headers={"User-Agent": BROWSER})
    assert honeypot.status_code == 200 and "Location" not in honeypot.headers
    head = client.head(summary.path, headers={"User-Agent": BROWSER})
    assert head.status_code == 302 and head.headers["Location"].startswith("https://northwind.example/")
    client.get(summary.path, headers={"User-Agent": SCANNER})
    client.get(summary.path, headers={"User-Agent": "python-requests/2.32.3"})
    client.get(summary.path, headers={"User-Agent": ""})

    stored = stored_events(platform)
    assert [(e.suspected_bot, e.bot_reason) for e in stored] == [
        (True, "2.0 s after delivery (< 10 s)"),
        (True, "honeypot link (hidden from people)"),
        (True, "HEAD request"),
        (True, "scanner user agent (bingpreview)"),
        (True, "scanner user agent (python-requests)"),
        (True, "no user agent"),
    ]
    assert stored[1].link_id is None and stored[1].topic is None and stored[1].detail["honeypot"] is True
    assert stored[3].user_agent == SCANNER and stored[3].topic == "cloud-risk-landscape"
    # Kept, never taught: the topic is still only exposed, and no click evidence exists.
    assert knowledge(platform, lead_id) == {"cloud-risk-landscape": KnowledgeLevel.exposed}
    assert evidence(platform, lead_id, "click") == []

    # Then the person reads it: that click teaches, with its own event as evidence.
    clock.advance(hours=3)
    client.get(report.path, headers={"User-Agent": BROWSER})
    human = stored_events(platform)[-1]
    assert not human.suspected_bot
    assert knowledge(platform, lead_id)["cloud-risk-landscape"] == KnowledgeLevel.engaged
    assert [e.event_id for e in evidence(platform, lead_id, "click")] == [human.id]


def test_the_bound_after_delivery_is_the_configured_one(make_app, database_url, smtp_server, clock):
    from support.platform import Platform

    platform = Platform(make_app(database_url, smtp_port=smtp_server.port, bot_click_seconds=120), smtp_server, clock)
    platform.sync()
    _, msg = first_email(platform)
    clock.advance(seconds=90)
    platform.app.test_client().get(visible_links(msg.html)["Read the 2026 report"].path,
                                   headers={"User-Agent": BROWSER})
    [event] = stored_events(platform)
    assert event.suspected_bot and event.bot_reason == "90.0 s after delivery (< 120 s)"


def test_an_open_seconds_after_delivery_is_a_gateway_prefetch(platform, clock):
    from urllib.parse import urlsplit

    from support.tracking import pixel_url

    _, msg = first_email(platform)
    clock.advance(seconds=1)
    platform.app.test_client().get(urlsplit(pixel_url(msg.html)).path, headers={"User-Agent": BROWSER})
    [event] = stored_events(platform)
    assert event.kind.value == "open" and event.suspected_bot and "after delivery" in event.bot_reason


def test_a_hit_before_the_send_is_recorded_uses_the_sent_journal(platform, clock):
    """A gateway can fetch an email before the sender commits its batch as sent.

    The sent-journal has the send time then; with no record at all, the hit is a machine's.
    """
    lead_a = platform.add_lead("early@bank.example")
    lead_b = platform.add_lead("late@bank.example")
    platform.enroll("early@bank.example")
    platform.enroll("late@bank.example")
    platform.tick()  # queued, not sent: nothing in the database says when they went out
    first, second = platform.deliveries()
    urls = TrackingUrls(platform.svc.config)
    link = link_row(platform, "welcome", "report")
    SentJournal(platform.svc.redis).mark(second.id, "<m@x>", clock.now())
    clock.advance(minutes=5)
    client = platform.app.test_client()
    for delivery in (first, second):
        client.get(urls.link(delivery, link).removeprefix(platform.svc.config.base_url),
                   headers={"User-Agent": BROWSER})
    by_lead = {e.lead_id: e for e in stored_events(platform)}
    assert by_lead[lead_a].bot_reason == "before the send was recorded"
    assert not by_lead[lead_b].suspected_bot
    with platform.svc.db.session() as s:
        assert [e.lead_id for e in s.scalars(select(KnowledgeEvidence).where(KnowledgeEvidence.source == "click"))] == [lead_b]
