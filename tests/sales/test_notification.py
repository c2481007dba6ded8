"""The rep's notification: a real email through the real pipeline, carrying the whole dossier."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from support.sales import get_handoff, hand_off, sales_links
from support.tracking import BROWSER, honeypot_link, visible_links

from nurture_mail.models import Event, EventKind, HandoffAction, Lead, LeadScore
from nurture_mail.tracking.ingest import drain_events

QUALIFIED = dict(first_name="Grace", last_name="Hopper", title="VP Engineering", company="Acme Cloud",
                 region="AMER", industry_naics="511210", employees=800, revenue=50_000_000)


def prepare_lead(platform, clock, email="grace@acme.example"):
    """A lead that got the welcome email, clicked its report, and was pre-clicked by a scanner."""
    lead_id = platform.add_lead(email, **QUALIFIED)
    with platform.svc.db.session() as session:
        session.get(Lead, lead_id).qualification = {"budget": "approved for Q3", "pain_validated": "SOC 2 finding",
                                                    "decision_makers_identified": ""}
    platform.enroll(email)
    platform.tick_and_work()
    [welcome] = platform.received(to=email)
    client = platform.app.test_client()
    clock.advance(seconds=2)  # a scanner follows the hidden link right away
    client.get(honeypot_link(welcome.html).path, headers={"User-Agent": BROWSER})
    clock.advance(minutes=30)
    client.get(visible_links(welcome.html)["Read the 2026 report"].path, headers={"User-Agent": BROWSER})
    drain_events(platform.svc)
    with platform.svc.db.session() as session:
        click = session.scalar(select(Event).where(Event.lead_id == lead_id, Event.kind == EventKind.click,
                                                   Event.suspected_bot.is_(False)))
        score = session.get(LeadScore, lead_id)
        if score is None:  # the scoring side normally writes it; the dossier only reads it
            score = LeadScore(lead_id=lead_id, computed_at=clock.now())
            session.add(score)
        score.fit, score.engagement = 45.0, 5.0
        score.fit_breakdown = [{"points": 15, "reason": "industry 511210 matches software and IT services", "at": None}]
        score.engagement_breakdown = [{"points": 5.0, "reason": "clicked 'Read the 2026 report' on 2026-03-02",
                                       "event_id": click.id, "at": click.at.isoformat()}]
    return lead_id, click.id


def test_the_rep_gets_the_dossier_by_email_once(platform, team, clock):
    lead_id, click_id = prepare_lead(platform, clock)
    handoff_id = hand_off(platform, "grace@acme.example", detail="clicked hand-raiser 'Book a 20-minute demo'",
                          trigger_event_id=click_id, triggered_at=clock.now() - timedelta(seconds=3))
    assert platform.received(to="ava@sales.example") == []  # not in the request or the transaction
    platform.work()
    [message] = platform.received(to="ava@sales.example")
    assert message.subject == "New handoff: Grace Hopper (Acme Cloud) — hand-raiser"
    text, html = message.text, message.html
    # contact and company
    assert "Grace Hopper, VP Engineering at Acme Cloud" in text
    assert "Employees:   800" in text and "Revenue:     50,000,000" in text and "Region:      AMER" in text
    # the ten attributes, each known or not
    assert "QUALIFICATION (4 of 10 known)" in text  # budget, pain, + industry code and firmographics from the row
    assert "[x] Budget: approved for Q3" in text
    assert "[x] Pain validated: SOC 2 finding" in text
    assert "[ ] Decision makers identified: UNKNOWN - ask on the call" in text
    assert "[ ] Urgency / compelling event: UNKNOWN" in text
    assert "[x] Industry code (SIC/NAICS): 511210" in text
    # the knowledge map: learned with evidence, and not learned
    assert "LEARNED     The 2026 cloud risk landscape [engaged] - engaged via click" in text
    assert "NOT LEARNED Northwind pricing and packaging [unknown]" in text
    assert "NOT LEARNED What cloud misconfigurations really cost [unknown]" in text
    # the contact history, bots excluded
    assert "northwind-security/welcome: sent" in text
    assert "click on 'report' [cloud-risk-landscape]" in text
    assert "1 machine events excluded" in text and "suspected bot" not in text
    # the score breakdown
    assert "Fit 45.0, engagement 5.0" in text
    assert "+15 industry 511210 matches software and IT services" in text
    assert "+5 clicked 'Read the 2026 report' on 2026-03-02" in text
    # why, and the signed links
    assert "Why now: hand-raiser: clicked hand-raiser 'Book a 20-minute demo'" in text
    links = sales_links(text)
    assert links["Accept"].startswith("http://nurture.test/sales/handoffs/") and links["Accept"].endswith("?do=accept")
    assert links["Reject"].endswith("?do=reject")
    # the HTML part says the same, with buttons, CSS inlined
    assert f'href="{links["Accept"]}"' in html.replace("&amp;", "&")
    assert "Known</span>: approved for Q3" in html and "Not learned" in html
    assert "<style" not in html.split("</head>")[1] and 'style="' in html

    handoff = get_handoff(platform, handoff_id)
    assert handoff.notified_at == clock.now()
    assert (handoff.notified_at - handoff.triggered_at).total_seconds() == 3
    [notified] = [a for a in handoff.actions if a.action == "notified"]
    assert notified.detail["latency_seconds"] == 3 and notified.detail["rep"] == "ava@sales.example"
    assert handoff.dossier["qualification_known"] == 4
    assert handoff.dossier["knowledge"][0]["learned"] == ["cloud-risk-landscape"]
    assert handoff.dossier["history_bots_excluded"] == 1
    assert "New handoff #" in handoff.dossier["text"]

    # The job run again (at-least-once): no second email.
    from nurture_mail.jobs.sales import enqueue

    enqueue(platform.svc, "email", handoff_id)
    platform.work()
    assert len(platform.received(to="ava@sales.example")) == 1
    with platform.svc.db.session() as session:
        assert len(session.scalars(select(HandoffAction).where(HandoffAction.action == "notified")).all()) == 1


def test_a_lead_without_a_score_says_so(platform, team, clock):
    platform.add_lead("plain@acme.example", region="AMER")
    hand_off(platform, "plain@acme.example", reason="manual", detail="asked for a call at the booth", campaign=None)
    platform.work()
    [message] = platform.received(to="ava@sales.example")
    assert "No score: no score has been computed for this lead yet." in message.text
    assert "Not in any nurture campaign." in message.text
    assert "QUALIFICATION (0 of 10 known)" in message.text


def test_an_smtp_failure_is_retried_by_rq(make_app, database_url, team_file, clock, tmp_path):
    """SMTP down at first: the job fails and RQ retries it; the email goes once the server is up."""
    import socket

    from rq import SimpleWorker
    from support.platform import Platform
    from support.sales import sync_team

    from nurture_mail.mail.capture import CaptureServer, CaptureStore

    with socket.socket() as probe:  # a port nobody listens on, yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = make_app(database_url, smtp_port=port, retry_backoff_seconds=0)
    server = CaptureServer(CaptureStore(tmp_path / "late"), port=port)
    platform = Platform(app, server, clock)
    platform.sync()
    sync_team(platform, team_file)
    platform.add_lead("retry@acme.example", region="AMER")
    handoff_id = hand_off(platform, "retry@acme.example")
    queue = platform.svc.queue
    [job] = queue.get_jobs()
    assert job.retries_left == platform.svc.config.smtp_max_attempts - 1
    with app.app_context():  # one attempt, refused: RQ puts the job back for the next one
        SimpleWorker([queue], connection=platform.svc.redis).work(burst=True, max_jobs=1, logging_level="CRITICAL")
    assert get_handoff(platform, handoff_id).notified_at is None
    assert queue.get_job_ids() == [job.id]
    server.start()
    try:
        platform.work()
        assert len(platform.received(to="ava@sales.example")) == 1
        assert get_handoff(platform, handoff_id).notified_at is not None
    finally:
        server.stop()


def test_the_rep_notification_is_dkim_signed_like_a_nurture_email(platform, team, clock, tmp_path, monkeypatch):
    """The notification goes through the outbox of every email: signed when DKIM is configured."""
    import dataclasses
    import shutil
    import subprocess

    import pytest

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test DKIM key")
    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    monkeypatch.setattr(platform.svc, "config", dataclasses.replace(
        platform.svc.config, dkim_selector="s1", dkim_private_key_path=str(key)))
    platform.add_lead("signed@acme.example", region="AMER")
    hand_off(platform, "signed@acme.example", campaign=None)
    platform.work()
    [message] = platform.received(to="ava@sales.example")
    signature = message.message["DKIM-Signature"]
    assert signature is not None and "d=northwind.example" in signature and "s=s1" in signature


def test_the_rep_notification_waits_for_its_domain_rate_limit(platform, team, clock, monkeypatch):
    """SEND_RATE_PER_DOMAIN_PER_MINUTE applies to notifications too: over it, the job raises (RQ retries
    it) and nothing is recorded; in the next window it is sent."""
    import dataclasses

    import pytest

    from nurture_mail.mail.outbox import RateLimited
    from nurture_mail.mail.ratelimit import SendRateLimiter
    from nurture_mail.sales.destinations.email import notify_by_email

    monkeypatch.setattr(platform.svc, "config", dataclasses.replace(
        platform.svc.config, send_rate_per_domain_per_minute=1, sales_destinations=()))
    platform.add_lead("limited@acme.example", region="AMER")
    handoff_id = hand_off(platform, "limited@acme.example", campaign=None)
    SendRateLimiter(platform.svc.redis, per_domain_per_minute=1).admit(  # this minute's one email to sales.example
        ["someone@sales.example"], lambda e: e.rpartition("@")[2], clock.now())
    with pytest.raises(RateLimited):
        notify_by_email(platform.svc, handoff_id)
    assert platform.received(to="ava@sales.example") == []
    assert get_handoff(platform, handoff_id).notified_at is None
    clock.advance(seconds=60)
    assert notify_by_email(platform.svc, handoff_id).outcome == "sent"
    assert len(platform.received(to="ava@sales.example")) == 1
