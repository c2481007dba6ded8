"""A lead clicks its way past the handoff rule, through links read from the
real emails it received; within the one worker pass that drains those clicks, the rep's
notification with the dossier arrives at the real SMTP server, and nurture stops."""
from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from sqlalchemy import select
from support.sales import sales_links
from support.tracking import BROWSER, visible_links
from werkzeug.serving import make_server

from nurture_mail.jobs.schedule import cron_table
from nurture_mail.models import EnrollmentState, Handoff, Lead, LeadScore, LeadStatus

FIT = dict(first_name="Nora", last_name="Quinn", title="Head of Cloud Security", company="Quinn Freight",
           region="EMEA", industry_naics="511210", employees=800, revenue=50_000_000)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the test reads the 302 itself; the target is an outside site


@pytest.fixture
def served(platform):
    """The platform's app on a real HTTP port: clicks travel over a socket, like a mail client's."""
    server = make_server("127.0.0.1", 0, platform.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-http", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


def http_click(base: str, path: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(base + path, headers={"User-Agent": BROWSER})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.headers.get("Location", "")
    except urllib.error.HTTPError as error:  # a 3xx not followed arrives as an HTTPError
        return error.code, error.headers.get("Location", "")


def test_clicks_tip_the_lead_and_the_rep_is_notified_in_the_same_worker_pass(platform, team, clock, served):
    email = "nora@quinnfreight.example"
    platform.add_lead(email, timezone="Europe/London", **FIT)
    enrollment_id = platform.enroll(email)
    platform.tick_and_work()
    [drain] = [e["func"] for e in cron_table(platform.svc.config) if e["name"] == "nurture-tracking-drain"]
    clicked: set[str] = set()
    rounds = 0
    latency = processing = None
    while True:
        rounds += 1
        assert rounds <= 8, "the handoff rule was never met"
        latest = platform.received(to=email)[-1]
        clock.advance(minutes=20)  # a person reads the email a while after it arrives
        for label, link in visible_links(latest.html).items():
            if "/c/" not in link.path or link.href in clicked:
                continue
            clicked.add(link.href)
            clock.advance(minutes=1)
            clicked_at = time.time()
            status, location = http_click(served, link.path)
            assert status == 302 and location.startswith("https://northwind.example/"), (label, status, location)
        drained_at = time.time()
        platform.svc.queue.enqueue(drain)  # what rq cron does every EVENT_DRAIN_INTERVAL seconds
        platform.work()
        notes = platform.received(to="ava@sales.example")
        if notes:
            [note] = notes
            latency = note.received_at.timestamp() - clicked_at
            processing = note.received_at.timestamp() - drained_at
            break
        with platform.svc.db.session() as session:
            assert session.scalars(select(Handoff)).all() == []  # nothing before the rule is met
        next_send = platform.enrollment(enrollment_id).next_send_at
        platform.tick_and_work(max(clock.now(), next_send))

    with platform.svc.db.session() as session:
        lead = session.scalar(select(Lead).where(Lead.email == email))
        score = session.get(LeadScore, lead.id)
        [handoff] = session.scalars(select(Handoff)).all()
        assert lead.status == LeadStatus.handed_off
        assert handoff.reason == "score" and handoff.notified_at is not None
        assert handoff.trigger_event_id is not None
    assert score.engagement >= 25 and score.fit >= 40
    enrollment = platform.enrollment(enrollment_id)
    assert enrollment.state == EnrollmentState.exited
    assert enrollment.state_reason.startswith("handed off to sales: ")

    text = note.text
    assert note.subject == "New handoff: Nora Quinn (Quinn Freight) — score"
    assert "Nora Quinn, Head of Cloud Security at Quinn Freight" in text
    assert "QUALIFICATION (2 of 10 known)" in text and "[ ] Budget: UNKNOWN" in text
    assert "LEARNED     The 2026 cloud risk landscape [engaged] - engaged via click" in text
    assert "NOT LEARNED Northwind pricing and packaging [unknown]" in text
    assert "northwind-security/welcome: sent" in text
    for line in score.engagement_breakdown:  # every point explained, as the scoring side wrote it
        assert line["reason"] in text
    assert f"Fit {round(score.fit, 1)}, engagement {round(score.engagement, 1)}" in text
    assert sales_links(text)["Accept"].startswith("http://nurture.test/sales/handoffs/")

    # No further nurture email reaches the lead.
    sent = len(platform.received(to=email))
    platform.tick_and_work(clock.now() + timedelta(days=30))
    assert len(platform.received(to=email)) == sent

    print(f"\nend-to-end: {rounds} emails clicked; last click → rep's inbox {latency * 1000:.0f} ms "
          f"(drain job enqueued → inbox {processing * 1000:.0f} ms; add up to EVENT_DRAIN_INTERVAL in production)")
    assert latency < 10
