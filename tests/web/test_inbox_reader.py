"""The capture inbox is a reader, not a prospect: viewing an email there records no open, no click.

A real nurture email (tick, worker, SMTP) is read in the inbox of an embedded-mode app; every
URL of the preview is then requested as a mail client and a reader would (images loaded, every
link followed) and the tracking drain runs: no event is stored.
"""
from __future__ import annotations

import re
from html import unescape
from urllib.parse import urlsplit

from sqlalchemy import func, select
from support.tracking import BROWSER, parse_html, pixel_url, visible_links

from nurture_mail import create_app
from nurture_mail.config import Config
from nurture_mail.mail.capture import CaptureStore
from nurture_mail.models import Event
from nurture_mail.tracking.ingest import drain_events

from .conftest import add_users, browser_sign_in, sign_in


def test_reading_an_email_in_the_inbox_records_no_open_and_no_click(platform, tmp_path):
    platform.add_lead("ana@acme.example", first_name="Ana")
    platform.enroll("ana@acme.example")
    platform.tick_and_work()
    [email] = platform.received("ana@acme.example")
    assert pixel_url(email.html).startswith("http://nurture.test/o/")  # the email as sent is tracked

    # The inbox of an embedded-mode app (same secret and BASE_URL) holding the message received.
    config = Config.from_env({}, instance_path=tmp_path / "inbox-instance", secret_key="test-secret",
                             base_url="http://nurture.test")
    CaptureStore(config.capture_dir).add(email.envelope_from, email.rcpt_tos, email.raw, email.received_at)
    inbox_app = create_app(config, redis=platform.svc.redis)
    inbox_app.config["TESTING"] = True
    try:
        add_users(inbox_app)
        client = sign_in(inbox_app.test_client())
        key = CaptureStore(config.capture_dir).list()[0].key
        page = client.get(f"/inbox/{key}").get_data(as_text=True)
    finally:
        inbox_app.extensions["nurture"].close()
    preview = unescape(re.search(r'srcdoc="([^"]*)"', page).group(1))
    text_part = unescape(re.search(r'<pre class="email-text">(.*?)</pre>', page, re.DOTALL).group(1))
    assert "http://nurture.test/c/" not in text_part
    assert "Read the 2026 report:\nhttps://northwind.example/reports/cloud-risk-2026" in text_part

    parsed = parse_html(preview)
    urls = parsed.images + [link.href for link in parsed.links]
    ours = [url for url in urls if urlsplit(url).hostname == "nurture.test"]
    assert not [url for url in ours if urlsplit(url).path.startswith(("/o/", "/c/"))], ours
    links = visible_links(preview)
    assert links["Read the 2026 report"].href == "https://northwind.example/reports/cloud-risk-2026"
    assert any(src.startswith("data:image/gif;base64,") for src in parsed.images)

    # A browser showing the preview loads its images, and the reader follows every link.
    tracking = platform.app.test_client()
    for url in ours:
        tracking.get(urlsplit(url).path, headers={"User-Agent": BROWSER})
    drain_events(platform.svc)
    with platform.svc.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 0

    # The same requests made from the email as sent do record (the check above could fail).
    for url in [pixel_url(email.html), visible_links(email.html)["Read the 2026 report"].href]:
        tracking.get(urlsplit(url).path, headers={"User-Agent": BROWSER})
    drain_events(platform.svc)
    with platform.svc.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 2


def test_a_real_browser_showing_the_preview_requests_no_tracking_url(platform, tmp_path, chromium):
    """Chromium opens the message page: every request it makes is recorded; none is a tracking URL."""
    import threading

    from werkzeug.serving import make_server

    platform.add_lead("ana@acme.example", first_name="Ana")
    platform.enroll("ana@acme.example")
    platform.tick_and_work()
    [email] = platform.received("ana@acme.example")
    config = Config.from_env({}, instance_path=tmp_path / "inbox-instance", secret_key="test-secret",
                             base_url="http://nurture.test")
    key = CaptureStore(config.capture_dir).add(email.envelope_from, email.rcpt_tos, email.raw, email.received_at)
    inbox_app = create_app(config, redis=platform.svc.redis)
    add_users(inbox_app)
    server = make_server("127.0.0.1", 0, inbox_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    context = chromium.new_context(viewport={"width": 1100, "height": 1400})
    try:
        page = context.new_page()
        base = f"http://127.0.0.1:{server.server_port}"
        browser_sign_in(page, base)
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(f"{base}/inbox/{key}")
        frame = page.frame_locator("iframe.email-html")
        frame.get_by_text("Read the 2026 report").wait_for()
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(tmp_path / "inbox-preview.png"), full_page=True)
        assert requested and not [url for url in requested if "/o/" in url or "/c/" in url], requested
        href = frame.get_by_text("Read the 2026 report").get_attribute("href")
        assert href == "https://northwind.example/reports/cloud-risk-2026"
    finally:
        context.close()
        server.shutdown()
        thread.join(10)
        server.server_close()
        inbox_app.extensions["nurture"].close()
