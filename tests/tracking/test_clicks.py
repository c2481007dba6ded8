"""Clicks and opens end to end: links read from the messages the real SMTP server received,
followed by an HTTP client, drained into the database, and seen by the next choice."""
from __future__ import annotations

import http.client
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from support.tracking import BROWSER, honeypot_link, pixel_url, visible_links
from werkzeug.serving import make_server

from nurture_mail.jobs.schedule import cron_table
from nurture_mail.models import (
    Delivery,
    EnrollmentState,
    Event,
    EventKind,
    Knowledge,
    KnowledgeEvidence,
    KnowledgeLevel,
    Link,
    Step,
)
from nurture_mail.tracking.ingest import drain_events

REPORT = "https://northwind.example/reports/cloud-risk-2026"


def events(platform, **where):
    with platform.svc.db.session() as s:
        statement = select(Event).order_by(Event.id)
        for name, value in where.items():
            statement = statement.where(getattr(Event, name) == value)
        return list(s.scalars(statement))


def knowledge(platform, lead_id: int) -> dict[str, KnowledgeLevel]:
    with platform.svc.db.session() as s:
        return {k.topic: k.level for k in s.scalars(select(Knowledge).where(Knowledge.lead_id == lead_id))}


def evidence(platform, lead_id: int, source: str) -> list[KnowledgeEvidence]:
    with platform.svc.db.session() as s:
        return list(s.scalars(select(KnowledgeEvidence).where(
            KnowledgeEvidence.lead_id == lead_id, KnowledgeEvidence.source == source).order_by(KnowledgeEvidence.id)))


def link_row(platform, step_key: str, name: str) -> Link:
    with platform.svc.db.session() as s:
        return s.scalars(select(Link).join(Step).where(Step.key == step_key, Link.name == name)).one()


def test_a_click_redirects_to_the_emails_url_and_teaches_its_topic(platform, clock):
    lead_id = platform.add_lead("ava@acme.example", first_name="Ava")
    platform.enroll("ava@acme.example")
    platform.tick_and_work()
    [msg] = platform.received()
    links = visible_links(msg.html)
    report = links["Read the 2026 report"]
    # Every content link is tracked, in the HTML and in the text part alike; the raw URL is gone.
    assert report.href.startswith("http://nurture.test/c/")
    assert links["The one-page summary"].href.startswith("http://nurture.test/c/")
    assert REPORT not in msg.html and REPORT not in msg.text
    assert report.href in msg.text

    clock.advance(minutes=42)
    client = platform.app.test_client()
    response = client.get(report.path, headers={"User-Agent": BROWSER})
    assert response.status_code == 302
    assert response.headers["Location"] == REPORT
    assert "no-store" in response.headers["Cache-Control"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    # The request path writes nothing to the database: the event waits in Redis.
    assert events(platform) == []

    drained = drain_events(platform.svc)
    assert (drained.stored, drained.bots, drained.taught) == (1, 0, 1)
    [event] = events(platform)
    [delivery] = platform.deliveries()
    expected_link = link_row(platform, "welcome", "report")
    assert (event.kind, event.lead_id, event.delivery_id, event.link_id, event.topic) == (
        EventKind.click, lead_id, delivery.id, expected_link.id, "cloud-risk-landscape")
    assert not event.suspected_bot and event.bot_reason is None
    assert event.at == clock.now() and event.user_agent == BROWSER and event.ip == "127.0.0.1"
    assert event.detail == {"method": "GET", "url": REPORT}
    assert event.uid.startswith("trk-")

    assert knowledge(platform, lead_id)["cloud-risk-landscape"] == KnowledgeLevel.engaged
    [proof] = evidence(platform, lead_id, "click")
    assert (proof.topic, proof.level, proof.event_id, proof.delivery_id, proof.at) == (
        "cloud-risk-landscape", KnowledgeLevel.engaged, event.id, delivery.id, clock.now())

    # A second click is recorded; knowledge is already engaged, so no second evidence.
    clock.advance(minutes=5)
    assert client.get(links["The one-page summary"].path, headers={"User-Agent": BROWSER}).status_code == 302
    assert drain_events(platform.svc).taught == 0
    assert len(events(platform, kind=EventKind.click)) == 2
    assert len(evidence(platform, lead_id, "click")) == 1


def _delivered_keys(platform, lead_email: str) -> list[str]:
    from nurture_mail.models import Lead

    with platform.svc.db.session() as s:
        return list(s.scalars(select(Step.key).join(Delivery, Delivery.step_id == Step.id)
                              .join(Lead, Lead.id == Delivery.lead_id)
                              .where(Lead.email == lead_email).order_by(Delivery.id)))


def test_the_next_choice_skips_what_a_click_taught(platform, clock):
    """Two leads on the demo track; one clicks both links of the misconfiguration email.

    The tick drains the buffered clicks before it chooses, so the lead who clicked never gets
    the alternate that re-approaches those topics; the other lead does.
    """
    clicker = platform.add_lead("cleo@acme.example", "America/New_York")
    platform.add_lead("sam@acme.example", "America/New_York")
    enrollments = [platform.enroll("cleo@acme.example"), platform.enroll("sam@acme.example")]
    platform.tick_and_work()  # welcome
    second = platform.enrollment(enrollments[0]).next_send_at
    platform.tick_and_work(second)  # misconfiguration-costs
    email = platform.received("cleo@acme.example")[-1]
    assert "storage bucket" in email.subject
    links = visible_links(email.html)
    clock.advance(hours=2)
    client = platform.app.test_client()
    for text in ("See the cost breakdown", "Get the shared responsibility cheat sheet"):
        response = client.get(links[text].path, headers={"User-Agent": BROWSER})
        assert response.status_code == 302 and response.headers["Location"].startswith("https://northwind.example/")

    for _ in range(30):  # no explicit drain: every tick drains before it chooses
        due = [platform.enrollment(e) for e in enrollments]
        active = [e.next_send_at for e in due if e.state == EnrollmentState.active and e.next_send_at]
        if not active:
            break
        platform.tick_and_work(max(clock.now(), min(active)))
    assert knowledge(platform, clicker)["misconfiguration-costs"] == KnowledgeLevel.engaged
    assert knowledge(platform, clicker)["shared-responsibility"] == KnowledgeLevel.engaged
    cleo, sam = _delivered_keys(platform, "cleo@acme.example"), _delivered_keys(platform, "sam@acme.example")
    assert "misconfiguration-costs-checklist" not in cleo
    assert "misconfiguration-costs-checklist" in sam
    assert len(cleo) == len(sam) - 1 and len(set(cleo)) == len(cleo)
    [click_evidence, *_] = evidence(platform, clicker, "click")
    assert click_evidence.event_id is not None


def test_an_open_returns_a_transparent_gif_and_teaches_nothing(platform, clock):
    lead_id = platform.add_lead("olga@acme.example")
    platform.enroll("olga@acme.example")
    platform.tick_and_work()
    [msg] = platform.received()
    pixel = pixel_url(msg.html)
    assert pixel.startswith("http://nurture.test/o/") and pixel.endswith(".gif")
    clock.advance(hours=1)
    response = platform.app.test_client().get(urlsplit(pixel).path, headers={"User-Agent": BROWSER})
    assert response.status_code == 200 and response.mimetype == "image/gif"
    assert response.data.startswith(b"GIF89a") and len(response.data) < 64
    assert "no-store" in response.headers["Cache-Control"] and response.headers["Expires"] == "0"
    drain_events(platform.svc)
    [event] = events(platform)
    assert (event.kind, event.lead_id, event.link_id, event.topic, event.suspected_bot) == (
        EventKind.open, lead_id, None, None, False)
    assert knowledge(platform, lead_id) == {"cloud-risk-landscape": KnowledgeLevel.exposed}
    assert evidence(platform, lead_id, "click") == []


@pytest.fixture
def served(platform):
    """The app behind a real HTTP server on a free loopback port."""
    server = make_server("127.0.0.1", 0, platform.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    thread.join(5)


def _request(port: int, method: str, path: str, agent: str = BROWSER) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, path, headers={"User-Agent": agent})
    response = connection.getresponse()
    response.body = response.read()
    connection.close()
    return response


def test_links_followed_over_real_http_without_following_redirects(platform, clock, served):
    lead_id = platform.add_lead("hugo@acme.example")
    platform.enroll("hugo@acme.example")
    platform.tick_and_work()
    [msg] = platform.received()
    links = visible_links(msg.html)
    clock.advance(minutes=20)

    click = _request(served, "GET", links["Read the 2026 report"].path)
    assert click.status == 302 and click.getheader("Location") == REPORT
    head = _request(served, "HEAD", links["The one-page summary"].path)
    assert head.status == 302 and head.getheader("Location") == "https://northwind.example/blog/cloud-risk-2026-in-one-page"
    assert head.body == b""
    pixel = _request(served, "GET", urlsplit(pixel_url(msg.html)).path)
    assert pixel.status == 200 and pixel.getheader("Content-Type") == "image/gif"
    honeypot = _request(served, "GET", honeypot_link(msg.html).path)
    assert honeypot.status == 200 and honeypot.getheader("Location") is None
    forged = _request(served, "GET", links["Read the 2026 report"].path[:-3] + "AAA")
    assert forged.status == 404 and forged.getheader("Location") is None
    assert b"not valid" in forged.body

    drain_events(platform.svc)
    stored = {(e.kind, e.detail["method"], bool(e.detail.get("honeypot"))): e for e in events(platform)}
    assert set(stored) == {(EventKind.click, "GET", False), (EventKind.click, "HEAD", False),
                           (EventKind.open, "GET", False), (EventKind.click, "GET", True)}
    assert not stored[EventKind.click, "GET", False].suspected_bot
    assert stored[EventKind.click, "HEAD", False].bot_reason == "HEAD request"
    assert stored[EventKind.click, "GET", True].bot_reason == "honeypot link (hidden from people)"
    assert all(e.ip == "127.0.0.1" and e.lead_id == lead_id for e in stored.values())
    assert [e.event_id for e in evidence(platform, lead_id, "click")] == [stored[EventKind.click, "GET", False].id]


def test_the_drain_runs_from_the_cron_table_in_a_real_worker(platform, clock):
    [entry] = [e for e in cron_table(platform.svc.config) if e["name"] == "nurture-tracking-drain"]
    assert entry["interval"] == platform.svc.config.event_drain_interval == 5
    platform.add_lead("rq@acme.example")
    platform.enroll("rq@acme.example")
    platform.tick_and_work()
    [msg] = platform.received()
    clock.advance(minutes=3)
    platform.app.test_client().get(visible_links(msg.html)["Read the 2026 report"].path,
                                   headers={"User-Agent": BROWSER})
    platform.svc.queue.enqueue(entry["func"])
    platform.work()
    [event] = events(platform)
    assert event.kind == EventKind.click and not event.suspected_bot


def test_proxy_hops_take_the_client_address_from_x_forwarded_for(make_app, database_url, smtp_server, clock):
    from support.platform import Platform

    app = make_app(database_url, smtp_port=smtp_server.port, tracking_proxy_hops=1)
    platform = Platform(app, smtp_server, clock)
    platform.sync()
    platform.add_lead("px@acme.example")
    platform.enroll("px@acme.example")
    platform.tick_and_work()
    [msg] = platform.received()
    clock.advance(minutes=3)
    platform.app.test_client().get(visible_links(msg.html)["Read the 2026 report"].path, headers={
        "User-Agent": BROWSER, "X-Forwarded-For": "198.51.100.7, 203.0.113.9"})
    drain_events(platform.svc)
    [event] = events(platform)
    assert event.ip == "203.0.113.9"  # one trusted proxy: the address it saw, not what the client claims


def test_hits_on_an_email_still_counted_when_redis_refuses(platform, clock, caplog, monkeypatch):
    """Redis down: the reader still lands on the page; the lost event is logged with its data."""
    from nurture_mail.tracking.events import EventBuffer

    platform.add_lead("down@acme.example")
    platform.enroll("down@acme.example")
    platform.tick_and_work()
    [msg] = platform.received()

    def refuse(self, hit):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(EventBuffer, "push", refuse)
    clock.advance(minutes=3)
    response = platform.app.test_client().get(visible_links(msg.html)["Read the 2026 report"].path)
    assert response.status_code == 302 and response.headers["Location"] == REPORT
    assert "tracking event lost" in caplog.text and '"k":"click"' in caplog.text


def test_two_emails_to_one_lead_each_count_through_their_own_links(platform, clock):
    """Tokens name deliveries, not leads: two emails to one lead teach through their own links."""
    lead_id = platform.add_lead("two@acme.example")
    enrollment = platform.enroll("two@acme.example")
    platform.tick_and_work()
    platform.tick_and_work(platform.enrollment(enrollment).next_send_at)
    first, second = platform.received()
    clock.advance(hours=1)
    client = platform.app.test_client()
    client.get(visible_links(second.html)["Get the shared responsibility cheat sheet"].path, headers={"User-Agent": BROWSER})
    client.get(visible_links(first.html)["Read the 2026 report"].path, headers={"User-Agent": BROWSER})
    drain_events(platform.svc)
    by_topic = {e.topic: e for e in events(platform)}
    deliveries = platform.deliveries()
    assert by_topic["shared-responsibility"].delivery_id == deliveries[1].id
    assert by_topic["cloud-risk-landscape"].delivery_id == deliveries[0].id
    assert knowledge(platform, lead_id)["shared-responsibility"] == KnowledgeLevel.engaged
    assert knowledge(platform, lead_id)["misconfiguration-costs"] == KnowledgeLevel.exposed
    assert timedelta(0) < by_topic["shared-responsibility"].at - deliveries[1].sent_at
