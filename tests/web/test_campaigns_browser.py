"""The marketer's campaign workspace in a real browser: campaigns, the campaign editor (a
validation error fixed on the way), the template editor's live preview, a test email found in
the capture inbox, pause and resume, and a CSV import watched to the end. Screenshots of every
page go to tests/artifacts/."""
from __future__ import annotations

import importlib.util
import re
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from nurture_mail.campaigns import CampaignLoader, sync_all
from nurture_mail.config import Config
from nurture_mail.mail.capture import CaptureServer, CaptureStore

from .conftest import browser_sign_in

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"


def _config(tmp_path: Path, port: int = 8025) -> Config:
    return Config.from_env({"CAMPAIGNS_DIR": str(tmp_path / "campaigns"), "TEMPLATES_DIR": str(tmp_path / "templates"),
                            "CAPTURE_SMTP_PORT": str(port)},
                           instance_path=tmp_path / "instance", secret_key="web-test-secret")


@pytest.fixture
def capture_server(tmp_path: Path) -> Iterator[CaptureServer]:
    with CaptureServer(CaptureStore(_config(tmp_path).capture_dir)) as server:
        yield server


@pytest.fixture
def web_config(tmp_path: Path, capture_server: CaptureServer) -> Config:
    """Writable copies of the campaigns and templates folders; SMTP goes to a capture server."""
    shutil.copytree(ROOT / "campaigns", tmp_path / "campaigns")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    return _config(tmp_path, capture_server.port)


@pytest.fixture
def synced(web_app):
    svc = web_app.extensions["nurture"]
    config = svc.config
    specs, problems = CampaignLoader(config.templates_dir, root=config.campaigns_dir.parent).load_dir(
        config.campaigns_dir)
    assert not problems
    with svc.db.session() as session:
        sync_all(session, specs, svc.clock.now())
        _activity().seed_activity(session, "northwind-security", svc.clock.now())  # numbers on the pages
    return web_app


def _activity():
    spec = importlib.util.spec_from_file_location("campaign_activity", ROOT / "tests" / "campaigns" / "activity.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_campaign_editor_template_editor_and_test_email(page, live_server: str, synced, capture_server) -> None:
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1360, "height": 900})
    browser_sign_in(page, live_server, "marketer")
    page.get_by_role("link", name="Campaigns", exact=True).click()
    expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("Northwind Cloud"))).to_be_visible()
    shot(page, "campaigns-list")

    # The campaign page: topic map, steps; pause and resume.
    page.get_by_role("link", name=re.compile("Northwind Cloud")).click()
    expect(page.locator("svg.topic-map-svg g.tm-topic")).to_have_count(12)
    assert page.locator("svg.topic-map-svg path.tm-arrow").count() > 3
    expect(page.locator("table.step-table tbody tr")).to_have_count(14)
    shot(page, "campaign-page")
    page.get_by_role("button", name="Pause campaign").click()
    expect(page.get_by_test_id("campaign-state")).to_have_text("Paused")
    page.get_by_role("button", name="Resume campaign").click()
    expect(page.get_by_test_id("campaign-state")).to_have_text("Running")

    # A new campaign, with a typo in a taught topic fixed on the way.
    page.goto(f"{live_server}/campaigns")
    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Slug", exact=True).fill("acme-trial")
    page.get_by_label("Name", exact=True).fill("Acme trial onboarding")
    page.locator("#f-topics-0-name").fill("Getting started")
    page.locator("#f-steps-0-teaches").fill("first-topc")
    page.locator("#f-steps-0-links-0-name").fill("guide")
    page.locator("#f-steps-0-links-0-url").fill("https://acme.example/guide")
    page.locator("#f-steps-0-links-0-label").fill("Read the guide")
    page.get_by_role("button", name="Review changes").click()
    expect(page.get_by_test_id("error-summary")).to_be_visible()
    error = page.locator("#f-steps-0-teaches-error-1")
    expect(error).to_contain_text("unknown topic 'first-topc' (did you mean 'first-topic'?)")
    expect(page.locator("#f-steps-0-teaches")).to_have_attribute("aria-invalid", "true")
    shot(page, "campaign-editor-error")
    page.locator("#f-steps-0-teaches").fill("first-topic")
    page.get_by_role("button", name="Review changes").click()
    expect(page.get_by_role("heading", name="Review the change")).to_be_visible()
    expect(page.get_by_test_id("diff")).to_contain_text("+slug: acme-trial")
    expect(page.get_by_text("templates/acme-trial/welcome.html")).to_be_visible()
    shot(page, "campaign-editor-diff")
    page.get_by_role("button", name="Save and sync").click()
    expect(page.get_by_role("heading", name=re.compile("Acme trial onboarding"))).to_be_visible()
    expect(page.locator(".flash")).to_contain_text("Saved campaigns/acme-trial.yaml and synced it (created)")
    saved = Path(synced.extensions["nurture"].config.campaigns_dir / "acme-trial.yaml").read_text()
    assert "Created in the campaign editor" in saved and "teaches: [first-topic]" in saved

    # Edit an existing campaign: the file keeps its comments.
    page.goto(f"{live_server}/campaigns/northwind-security/edit")
    shot(page, "campaign-editor")
    page.locator("#f-max_touches").fill("15")
    page.get_by_role("button", name="Review changes").click()
    expect(page.locator(".diff-add")).to_contain_text(["+max_touches: 15"])
    expect(page.locator(".diff-del")).to_contain_text(["-max_touches: 14"])
    page.get_by_role("button", name="Save and sync").click()
    text = (synced.extensions["nurture"].config.campaigns_dir / "northwind-security.yaml").read_text()
    assert "max_touches: 15" in text and "# Reading guide:" in text
    shot(page, "campaign-page-after-save")

    # The template editor: the preview follows the text.
    page.set_viewport_size({"width": 1360, "height": 1900})  # the preview frame inside the viewport
    page.goto(f"{live_server}/campaigns/acme-trial/steps/welcome/email")
    expect(page.get_by_test_id("preview-subject")).to_have_text("Ana, welcome")
    frame = page.frame_locator("#preview-frame")
    expect(frame.locator("body")).to_contain_text("Write what this email teaches here")
    html = page.locator("#html")
    html.fill(html.input_value().replace("Write what this email teaches here: one idea, in the reader's words.",
                                         "Your trial starts <strong>today</strong>, {{ lead.company }}."))
    expect(frame.locator("body")).to_contain_text("Your trial starts today, Example Corp.")
    expect(page.locator("#preview-text")).to_contain_text("Write what this email teaches here")
    shot(page, "template-editor")
    html.fill(html.input_value().replace("{% endblock %}", "{% endblok %}"))
    expect(page.locator("#problem-list")).to_contain_text("html, line")
    expect(page.locator("#problem-list")).to_contain_text("endblok")
    shot(page, "template-editor-error")
    html.fill(html.input_value().replace("{% endblok %}", "{% endblock %}"))
    expect(page.locator("#problems")).to_be_hidden()
    page.get_by_label("Phone").check(force=True)
    shot(page, "template-editor-phone")

    # Send a test to me: through the composer, marked, found in the inbox.
    page.get_by_role("button", name="Send a test to me").click()
    expect(page.locator(".flash")).to_contain_text("Test email sent to marketer@northwind.example")
    messages = capture_server.store.list()
    assert len(messages) == 1
    raw = messages[0].raw.decode()
    assert "X-Nurture-Test: 1" in raw and "[TEST] Ana, welcome" in raw
    page.get_by_role("link", name="Inbox", exact=True).click()
    page.get_by_role("link", name="[TEST] Ana, welcome").click()
    expect(page.frame_locator("iframe.email-html").locator("body")).to_contain_text("Your trial starts today")

    # Save the template: the file on disk changes.
    page.goto(f"{live_server}/campaigns/acme-trial/steps/welcome/email")
    html = page.locator("#html")
    html.fill(html.input_value().replace("one idea", "one saved idea"))
    page.get_by_role("button", name="Save templates").click()
    expect(page.locator(".flash")).to_contain_text("Saved templates/acme-trial/welcome.html")
    assert "one saved idea" in (synced.extensions["nurture"].config.templates_dir
                                / "acme-trial" / "welcome.html").read_text()


def test_import_a_csv_and_watch_it_finish(page, live_server: str, synced, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from nurture_mail.leads.imports import run_import

    rows = ["E-Mail;Vorname;Firma;Notes"]
    rows += [f"lead{i}@company{i % 50}.example;Ana{i};Firma {i};note {i}" for i in range(2600)]
    rows += ["not-an-address;Bad;Nowhere;x", "info@company1.example;Info;Role;y"]
    csv_path = tmp_path / "messe.csv"
    csv_path.write_bytes(("\n".join(rows) + "\n").encode("cp1252"))

    page.set_viewport_size({"width": 1360, "height": 900})
    browser_sign_in(page, live_server, "marketer")
    page.get_by_role("link", name="Imports", exact=True).click()
    shot(page, "imports-empty")
    page.get_by_label("CSV file").set_input_files(str(csv_path))
    page.get_by_label("Lead source").fill("messe-2026")
    page.get_by_role("button", name="Upload and check").click()
    expect(page.get_by_test_id("delimiter")).to_have_text("semicolon")
    expect(page.get_by_test_id("encoding")).to_have_text("utf-8")
    expect(page.get_by_test_id("row-count")).to_have_text("2,602")
    expect(page.get_by_test_id("map-E-Mail")).to_have_value("email")
    expect(page.get_by_test_id("map-Firma")).to_have_value("custom:firma")
    page.get_by_test_id("map-Firma").select_option("company")
    page.get_by_test_id("map-Vorname").select_option("first_name")
    page.get_by_test_id("map-Notes").select_option("ignore")
    page.get_by_role("button", name="Apply mapping and re-check").click()
    expect(page.get_by_test_id("map-Firma")).to_have_value("company")
    shot(page, "import-mapping")
    page.get_by_role("button", name=re.compile("Run import")).click()
    expect(page.get_by_test_id("import-status")).to_have_text("queued")
    import_id = int(page.url.rstrip("/").rsplit("/", 1)[1])

    # The worker's part, run here on the app's real database and Redis.
    svc = synced.extensions["nurture"]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with synced.app_context():
                run_import(svc, import_id)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    expect(page.get_by_test_id("import-status")).to_have_text("done", timeout=60_000)
    worker.join(timeout=60)
    assert not errors
    expect(page.get_by_test_id("processed")).to_have_text("2,602")
    expect(page.get_by_test_id("import-summary")).to_contain_text("2 rows need a look")
    # Done: the rows to look at come first (the flagged role account and the rejected address).
    expect(page.locator("table.report-table tbody tr")).to_have_count(2)
    shot(page, "import-report")
    page.get_by_role("link", name=re.compile(r"^Rejected")).click()
    expect(page.locator("table.report-table tbody tr")).to_have_count(1)
    expect(page.locator("table.report-table")).to_contain_text("not-an-address")
    shot(page, "import-report-rejected")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download report (CSV)").click()
    report = Path(download.value.path()).read_text()
    assert report.startswith("row,email,outcome,field,reason,lead_id")
    assert report.count("\n") == 2603
    with svc.db.session() as session:
        from sqlalchemy import select

        from nurture_mail.models import Lead
        lead = session.scalar(select(Lead).where(Lead.email == "lead7@company7.example"))
        assert lead.company == "Firma 7" and lead.first_name == "Ana7" and lead.lead_source == "messe-2026"
    page.goto(f"{live_server}/imports")
    shot(page, "imports-list")
