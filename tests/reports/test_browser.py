"""The sales workspace and the reports in a real browser (Debian's Chromium via Playwright),
on a world built through the real send path; screenshots of every report for the docs."""
from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from nurture_mail.models import Enrollment, EnrollmentState, Lead, LeadStatus

from . import scenario
from .conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"
REPORTS = ("campaigns", "steps", "topics", "closure", "reps", "forecast", "monthly")


@pytest.fixture
def sqlite_only(database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("the browser tests run once, on SQLite (the numbers are checked on both databases)")


@pytest.fixture
def world(sqlite_only, platform, users):
    built = scenario.build(platform)
    platform.work()  # the handoff notifications reach the SMTP server
    return built


@pytest.fixture
def served(platform):
    server = make_server("127.0.0.1", 0, platform.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="reports-live", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    shutil.copy(path, SCREENSHOTS / f"{name}.png")


def sign_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/$"))


def summary(page, base: str, name: str, **query) -> str:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    page.goto(f"{base}/reports/{name}?{params}")
    return " ".join(page.get_by_test_id("summary").all_inner_texts())


def test_a_rep_accepts_rejects_and_wins_and_the_reports_follow(platform, world, served, page):
    base = served
    sign_in(page, base, "ava@sales.example")
    page.get_by_role("link", name="Handoffs").first.click()
    rows = page.locator("tr[data-handoff]")
    assert rows.count() == 2  # Nora and Pia were routed to Ava; Omar to Cy
    assert page.get_by_test_id("sla").first.inner_text().endswith("left")
    shoot(page, "handoff-inbox")

    # Accept Nora from the inbox.
    page.get_by_role("link", name="Nora Quinn").click()
    assert page.get_by_role("heading", name="Why now").is_visible()
    assert page.locator(".attributes li").count() == 10
    shoot(page, "handoff-page")
    page.get_by_role("button", name="Accept handoff").click()
    assert "Accepted" in page.locator(".flash").inner_text()
    assert page.get_by_test_id("handoff-state").text_content().strip() == "accepted"
    assert page.get_by_role("button", name="Accept handoff").count() == 0  # won / lost now, not accept
    assert page.get_by_role("button", name="Mark won").is_visible()

    # Reject Pia as not ready: back to nurture, knowledge kept.
    page.goto(f"{base}/handoffs/")
    page.get_by_role("link", name="Pia Lund").click()
    page.get_by_label("Not ready: back to nurture").check()
    page.get_by_label("Reason", exact=True).select_option("no budget yet")
    page.get_by_label("Detail").fill("budget opens in Q3")
    page.get_by_role("button", name="Reject").click()
    assert "back in nurture" in page.locator(".flash").inner_text()
    assert page.get_by_test_id("lead-status").text_content().strip() == "recycled"
    with platform.svc.db.session() as session:
        pia = session.scalar(select(Lead).where(Lead.email == "pia@lund.example"))
        enrollment = session.scalar(select(Enrollment).where(Enrollment.lead_id == pia.id))
        assert pia.status == LeadStatus.recycled and enrollment.state == EnrollmentState.active

    before_forecast = summary(page, base, "forecast", **{"from": "2026-01-01"})
    before_monthly = summary(page, base, "monthly")
    assert "Open pipeline: 1 accepted deal" in before_forecast

    # Nora is won: the pipeline empties, the win rate and the month's worth move.
    page.goto(f"{base}/handoffs/?state=accepted")
    page.get_by_role("link", name="Nora Quinn").click()
    page.get_by_label("Deal value ($)").fill("42,000")
    page.get_by_role("button", name="Mark won").click()
    assert "Marked won ($42,000.00)" in page.locator(".flash").inner_text()
    after_forecast = summary(page, base, "forecast", **{"from": "2026-01-01"})
    after_monthly = summary(page, base, "monthly")
    assert after_forecast != before_forecast and "Open pipeline: 0 accepted deals" in after_forecast
    # Worth: Nora's 42,000 won, plus Omar (still open with Cy) at the mean won deal, 42,000.
    assert after_monthly != before_monthly and "worth $84,000.00" in after_monthly

    # More history for the screenshots: Omar lost, Raj and Sue handed off and accepted (an open pipeline).
    from support.sales import hand_off

    from nurture_mail.models import Handoff
    from nurture_mail.sales import actions

    extra = [hand_off(platform, email) for email in ("raj@kite.example", "sue@moss.example")]
    with platform.svc.db.session() as session:
        now = platform.clock.now()
        actions.mark_lost(session, session.get(Handoff, world.handoffs["omar@ridge.example"]), "cy@sales.example",
                          "web", "chose a competitor", now)
        for handoff_id in extra:
            actions.accept(session, session.get(Handoff, handoff_id), "ava@sales.example", "web", now)

    # Every report, with its chart, for the docs.
    for name in REPORTS:
        query = "?from=2026-03-01" if name != "monthly" else "?month=2026-03"
        page.goto(f"{base}/reports/{name}{query}")
        assert page.locator("svg.chart").count() == 1, name
        assert page.locator("table.report").count() >= 1, name
        shoot(page, f"report-{name}")
    page.goto(f"{base}/reports/")
    shoot(page, "reports-index")


def test_a_manager_sees_the_team_and_the_email_accept_link_lands_highlighted(platform, world, served, page):
    base = served
    sign_in(page, base, "mo@sales.example")
    page.goto(f"{base}/handoffs/?scope=team")
    assert page.locator("tr[data-handoff]").count() == 3
    page.get_by_role("link", name="Team").click()
    ava = page.locator('tr[data-rep="ava@sales.example"]')
    assert ava.locator("td").nth(2).inner_text() == "2"  # open handoffs
    assert "unavailable" in page.locator('tr[data-rep="ben@sales.example"]').text_content()
    shoot(page, "team-load")
    page.get_by_role("button", name="Sign out").click()

    # Ava follows the "Accept" link of her notification email while signed in.
    [note] = [m for m in platform.received(to="ava@sales.example") if "Nora" in m.subject]
    accept = re.search(r"^Accept: (\S+)$", note.text, re.M).group(1)
    sign_in(page, base, "ava@sales.example")
    page.goto(base + urlsplit(accept).path + "?" + urlsplit(accept).query)
    assert re.search(r"/handoffs/\d+\?do=accept", page.url)
    assert "chosen" in page.locator("#accept").get_attribute("class")
    shoot(page, "handoff-from-email")


def test_a_rep_marks_themselves_away(platform, world, served, page):
    base = served
    sign_in(page, base, "ava@sales.example")
    page.goto(f"{base}/handoffs/availability")
    page.get_by_label("Away through").fill("2026-03-13")
    page.get_by_label("Note").fill("holiday")
    page.get_by_role("button", name="Save").click()
    assert "away" in page.get_by_test_id("availability").text_content()
    shoot(page, "availability")
