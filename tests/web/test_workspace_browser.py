"""The marketer's workspace in a real browser (Debian's Chromium through Playwright): sign in,
open a lead, see its knowledge map change after a human click on an email it really received,
pause and resume its enrollment, erase a lead with confirmation. Screenshots of every page go
to tests/artifacts/ (git-ignored)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from nurture_mail.models import Enrollment, EnrollmentState, Knowledge, Lead

from .conftest import browser_sign_in
from .workspace import NORA, drain, human_click, lead_id, seed, serve

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def sqlite_only(request):
    if "postgresql" in request.node.name:
        pytest.skip("the browser test runs once, on SQLite (the page queries run on both in test_pages.py)")


def test_lead_page_follows_a_human_click_and_enrollment_actions(sqlite_only, platform, page, tmp_path, clock):
    seed(platform, tmp_path)
    nora = lead_id(platform, NORA)
    with serve(platform.app) as base:
        browser_sign_in(page, base, "marketer")
        expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard")).to_have_attribute(
            "aria-current", "page")
        shot(page, "dashboard")

        page.get_by_role("link", name="Leads", exact=True).click()
        expect(page.get_by_role("heading", name="Leads", exact=True)).to_be_visible()
        page.get_by_label("Search leads").fill("quinn")
        page.get_by_role("button", name="Search").click()
        expect(page.locator("tr[data-lead]")).to_have_count(1)
        page.get_by_label("Search leads").fill("")
        page.get_by_role("button", name="Search").click()
        expect(page.locator("tr[data-lead]")).to_have_count(5)
        shot(page, "leads")

        page.get_by_role("link", name="Nora Quinn").click()
        expect(page).to_have_url(f"{base}/leads/{nora}")
        welcome_topic = page.locator('[data-topic="cloud-risk-landscape"]')
        expect(welcome_topic).to_have_attribute("data-level", "exposed")
        expect(page.locator('#timeline [data-kind="email"]')).to_have_count(1)
        shot(page, "lead-before-click")

        # Nora reads the email 20 minutes later and clicks its first content link.
        clock.advance(minutes=20)
        clicked = human_click(platform, base, NORA)
        drain(platform)
        page.reload()
        expect(welcome_topic).to_have_attribute("data-level", "engaged")
        click_row = page.locator('#timeline [data-kind="click"]')
        expect(click_row).to_have_count(1)
        expect(click_row).to_contain_text(clicked)
        expect(click_row).to_contain_text("Human")
        expect(welcome_topic).to_contain_text("clicked a link on it")
        shot(page, "lead")

        # The email as sent opens from the timeline.
        page.locator('#timeline [data-kind="email"] a').first.click()
        expect(page.locator("iframe.email-html")).to_be_visible()
        shot(page, "lead-message")
        page.go_back()

        # Pause, then resume, the enrollment.
        box = page.locator('[data-enrollment="northwind-security"]')
        box.get_by_role("button", name="Pause").click()
        expect(page.get_by_role("alert")).to_contain_text("paused")
        expect(box.get_by_role("button", name="Resume")).to_be_visible()
        with platform.svc.db.session() as session:
            assert session.scalar(select(Enrollment.state).where(Enrollment.lead_id == nora)) == EnrollmentState.paused
        box.get_by_role("button", name="Resume").click()
        expect(page.get_by_role("alert")).to_contain_text("resumed")
        expect(box.get_by_role("button", name="Pause")).to_be_visible()
        with platform.svc.db.session() as session:
            assert session.scalar(select(Enrollment.state).where(Enrollment.lead_id == nora)) == EnrollmentState.active

        # Declare a topic known (after a sales call): the map says so with who declared it.
        page.locator("summary", has_text="Declare topics known").click()
        page.locator("#knowledge").get_by_label("Northwind pricing and packaging").check()
        page.get_by_role("button", name="Declare known").click()
        expect(page.locator('[data-topic="pricing"]')).to_have_attribute("data-level", "known")
        expect(page.locator('[data-topic="pricing"]')).to_contain_text("declared by marketer@northwind.example")
        with platform.svc.db.session() as session:
            assert session.scalar(select(Knowledge.level).where(Knowledge.lead_id == nora,
                                                                 Knowledge.topic == "pricing")).value == "known"


def test_admin_erases_a_lead_after_typing_its_address(sqlite_only, platform, page, tmp_path):
    seed(platform, tmp_path)
    omar = lead_id(platform, "omar@brightlane.example")
    with serve(platform.app) as base:
        browser_sign_in(page, base, "admin")
        page.goto(f"{base}/leads/{omar}")
        page.get_by_role("link", name="Erase…").click()
        expect(page.get_by_role("heading", name="This cannot be undone")).to_be_visible()
        page.get_by_label("Type the lead's email address to confirm").fill("someone@else.example")
        page.get_by_role("button", name="Erase personal data").click()
        expect(page.locator(".field-error")).to_contain_text("exactly")
        shot(page, "lead-erase")
        with platform.svc.db.session() as session:
            assert session.get(Lead, omar).erased_at is None
        page.get_by_label("Type the lead's email address to confirm").fill("omar@brightlane.example")
        page.get_by_role("button", name="Erase personal data").click()
        expect(page).to_have_url(re.compile(rf"/leads/{omar}$"))
        expect(page.get_by_role("alert")).to_contain_text("Personal data erased")
        with platform.svc.db.session() as session:
            lead = session.get(Lead, omar)
            assert lead.erased_at is not None and lead.email.startswith("erased-")

        # Hand Liam to sales from his page: nurture stops and the closer is notified.
        liam = lead_id(platform, "liam@harborbank.example")
        page.goto(f"{base}/leads/{liam}")
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Hand to sales").click()
        expect(page.get_by_role("alert")).to_contain_text("Ava Chen is notified")
        expect(page.locator('[data-enrollment="northwind-security"]')).to_contain_text("Exited")
        with platform.svc.db.session() as session:
            assert session.get(Lead, liam).status.value == "handed_off"

        # Every other page, as the admin, for the record.
        for name, path in (("users", "/users/"), ("suppressions", "/suppressions/"), ("dashboard-admin", "/")):
            response = page.goto(base + path)
            if response.status == 404:
                continue
            assert response.status == 200, path
            shot(page, name)
