"""Roles and CSRF on every sales and report view; availability honoured by routing; hand to
nurture from the form; the monthly summary by email (cron and "send now")."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from support.sales import hand_off

from nurture_mail.jobs.schedule import cron_table
from nurture_mail.models import Enrollment, Handoff, Knowledge, KnowledgeLevel, Lead, SalesRep

from .conftest import FIT, csrf_of, lead_id, sign_in

# (method, path, permission): every view of the sales workspace and the reports.
ROUTES = [
    ("GET", "/handoffs/", "handoffs:read"),
    ("GET", "/handoffs/{handoff}", "handoffs:read"),
    ("GET", "/handoffs/team", "handoffs:read"),
    ("POST", "/handoffs/{handoff}/accept", "handoffs:act"),
    ("POST", "/handoffs/{handoff}/reject", "handoffs:act"),
    ("POST", "/handoffs/{handoff}/won", "handoffs:act"),
    ("POST", "/handoffs/{handoff}/lost", "handoffs:act"),
    ("GET", "/handoffs/availability", "availability:write"),
    ("POST", "/handoffs/availability", "availability:write"),
    ("GET", "/sales/nurture", "handoffs:act"),
    ("POST", "/sales/nurture", "handoffs:act"),
    ("GET", "/reports/", "reports:read"),
    *(("GET", f"/reports/{name}", "reports:read") for name in
      ("campaigns", "steps", "topics", "closure", "reps", "forecast", "monthly")),
    *(("GET", f"/reports/{name}.csv", "reports:read") for name in
      ("campaigns", "steps", "topics", "closure", "reps", "forecast", "monthly")),
    ("POST", "/reports/monthly/send", "reports:send"),
    ("POST", "/reports/monthly/subscription", "reports:read"),
]
USERS = {"admin": "admin@northwind.example", "marketer": "marketer@northwind.example",
         "sales": "sales@northwind.example", "viewer": "viewer@northwind.example"}


@pytest.fixture
def handoff_id(users):
    platform = users
    platform.add_lead("nora@quinn.example", **FIT)
    platform.enroll("nora@quinn.example")
    return hand_off(platform, "nora@quinn.example")


def test_every_view_checks_the_role_and_every_form_its_csrf_token(users, handoff_id, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("access rules do not depend on the database")
    from nurture_mail.auth import allowed

    platform = users
    anonymous = platform.app.test_client()
    for method, path, _ in ROUTES:
        response = anonymous.open(path.format(handoff=handoff_id), method=method)
        assert response.status_code in (302, 400), (method, path)  # to sign-in (GETs), or CSRF refused
        if method == "GET":
            assert "/signin" in response.headers["Location"]
    for role, email in USERS.items():
        client = sign_in(platform.app.test_client(), email)
        token = csrf_of(client.get("/reports/").get_data(as_text=True)) if allowed(role, "reports:read") else None
        for method, path, permission in ROUTES:
            url = path.format(handoff=handoff_id)
            if method == "GET":
                status = client.get(url).status_code
                if not allowed(role, permission):
                    assert status == 403, (role, path)
                else:
                    # a sales user who is no rep has no availability page; everyone else sees theirs
                    assert status in (200, 404) if path == "/handoffs/availability" else status == 200, (role, path)
            else:
                assert client.post(url, data={}).status_code == 400, (role, path, "no CSRF token")
                status = client.post(url, data={"csrf_token": token}).status_code
                if not allowed(role, permission):
                    assert status == 403, (role, path)
                else:
                    assert status in (303, 403, 404), (role, path, status)


def test_a_rep_acts_only_on_handoffs_they_hold(users, handoff_id):
    platform = users
    cy = sign_in(platform.app.test_client(), "ben@sales.example")  # not Nora's rep
    page = cy.get(f"/handoffs/{handoff_id}").get_data(as_text=True)
    assert "Accept handoff" not in page and "only the rep holding it" in page
    token = csrf_of(page)
    assert cy.post(f"/handoffs/{handoff_id}/accept", data={"csrf_token": token}).status_code == 403
    ava = sign_in(platform.app.test_client(), "ava@sales.example")
    page = ava.get(f"/handoffs/{handoff_id}?do=accept").get_data(as_text=True)
    assert 'class="action-card chosen" id="accept"' in page
    response = ava.post(f"/handoffs/{handoff_id}/won", data={"csrf_token": csrf_of(page), "value": "-5"})
    assert response.status_code == 303  # refused with the field named, nothing changed
    assert "value: a deal value cannot be negative" in ava.get(response.headers["Location"]).get_data(as_text=True)


def test_away_reps_are_skipped_by_routing_until_their_end_date(users):
    platform = users
    ava = sign_in(platform.app.test_client(), "ava@sales.example")
    page = ava.get("/handoffs/availability").get_data(as_text=True)
    response = ava.post("/handoffs/availability", data={"csrf_token": csrf_of(page), "away_until": "2026-03-04",
                                                         "away_note": "conference"})
    assert response.status_code == 303
    bad = ava.post("/handoffs/availability", data={"csrf_token": csrf_of(page), "away_until": "2026-02-01"})
    assert "away_until: the end date 2026-02-01 is in the past" in ava.get(bad.headers["Location"]).get_data(
        as_text=True)
    routed = []
    for i, day in enumerate((2, 3, 4, 5)):  # away Monday to Wednesday included; back on Thursday
        platform.clock.set(datetime(2026, 3, day, 15, 0, tzinfo=UTC))
        email = f"lead{i}@fit.example"
        platform.add_lead(email, **{**FIT, "first_name": f"L{i}"})
        with platform.svc.db.session() as session:
            handoff = session.get(Handoff, hand_off(platform, email))
            routed.append(session.get(SalesRep, handoff.rep_id).email)
    assert "ava@sales.example" not in routed[:3] and routed[3] == "ava@sales.example"
    mo = sign_in(platform.app.test_client(), "mo@sales.example")
    platform.clock.set(datetime(2026, 3, 3, 15, 0, tzinfo=UTC))
    team = mo.get("/handoffs/team").get_data(as_text=True)
    assert "until 05 Mar 2026" in team and "(conference)" in team


def test_sales_hands_a_lead_to_nurture_declaring_what_it_knows(users):
    platform = users
    platform.add_lead("quinn@new.example", **FIT)
    lead = lead_id(platform, "quinn@new.example")
    client = sign_in(platform.app.test_client(), "sales@northwind.example")
    page = client.get(f"/sales/nurture?lead={lead}").get_data(as_text=True)
    assert "quinn@new.example" in page
    response = client.post("/sales/nurture", data={"csrf_token": csrf_of(page), "lead": lead,
                                                   "campaign": "northwind-security",
                                                   "known": ["cloud-risk-landscape", "security-roi"]})
    assert response.status_code == 303
    assert "is in nurture" in client.get(response.headers["Location"]).get_data(as_text=True)
    with platform.svc.db.session() as session:
        assert session.scalar(select(Enrollment.state).where(Enrollment.lead_id == lead)).value == "active"
        known = dict(session.execute(select(Knowledge.topic, Knowledge.level).where(Knowledge.lead_id == lead)).all())
        assert known == {"cloud-risk-landscape": KnowledgeLevel.known, "security-roi": KnowledgeLevel.known}
    bad = client.post("/sales/nurture", data={"csrf_token": csrf_of(page), "lead": lead, "campaign": "nope"})
    assert "campaign:" in client.get(bad.headers["Location"]).get_data(as_text=True)


def test_the_monthly_summary_goes_to_subscribers_on_the_first_and_from_its_page(users):
    platform = users
    platform.add_lead("nora@quinn.example", **FIT)
    platform.enroll("nora@quinn.example")
    viewer = sign_in(platform.app.test_client(), "viewer@northwind.example")
    page = viewer.get("/reports/monthly").get_data(as_text=True)
    assert "Send March 2026" not in page  # a viewer may subscribe, not send
    viewer.post("/reports/monthly/subscription", data={"csrf_token": csrf_of(page), "subscribe": "1"})
    [entry] = [e for e in cron_table(platform.svc.config) if e["name"] == "nurture-reports-monthly-summary"]
    assert entry["cron"] == "0 7 1 * *"
    platform.clock.set(datetime(2026, 4, 1, 7, 0, tzinfo=UTC))
    platform.svc.queue.enqueue(entry["func"])
    platform.work()
    [mail] = platform.received(to="viewer@northwind.example")
    assert "March 2026" in mail.subject
    assert "In March 2026, 1 new prospect entered nurture" in mail.text
    platform.svc.queue.enqueue(entry["func"])  # a second run (two schedulers) sends nothing new
    platform.work()
    assert len(platform.received(to="viewer@northwind.example")) == 1
    marketer = sign_in(platform.app.test_client(), "marketer@northwind.example")
    page = marketer.get("/reports/monthly?month=2026-03").get_data(as_text=True)
    response = marketer.post("/reports/monthly/send", data={"csrf_token": csrf_of(page), "month": "2026-03"})
    assert "sent to 1 subscriber" in marketer.get(response.headers["Location"]).get_data(as_text=True)
    assert len(platform.received(to="viewer@northwind.example")) == 2
    with platform.svc.db.session() as session:
        assert session.scalar(select(Lead.id).where(Lead.email == "nora@quinn.example"))
