"""The inbox in a real browser: list, open, read the HTML and text parts, download, clear."""
from __future__ import annotations

import re
import smtplib
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

from nurture_mail.mail.capture import CaptureServer

from .conftest import browser_sign_in

SUBJECT = "Grüße, Ana: your pricing questions, answered"
HTML = """<!doctype html>
<html><head><title>Pricing</title><style>h1 { color: #3f51d7; }</style></head>
<body>
  <h1 id="headline">Your pricing questions, answered</h1>
  <p>Hi Ana, here is <a id="cta" href="https://northwind.example/pricing">the pricing guide</a>.</p>
  <script>document.body.innerHTML = '<p id="pwned">script ran</p>'; parent.document.title = 'pwned';</script>
  <img alt="" src="data:," onerror="document.body.innerHTML = '<p id=pwned>onerror ran</p>'">
</body></html>
"""
TEXT = "Hi Ana,\n\nthis is the plain-text version: the pricing guide is at https://northwind.example/pricing\n"


def send_pricing_email(server: CaptureServer) -> None:
    message = EmailMessage()
    message["Subject"] = SUBJECT
    message["From"] = Address("Northwind Cloud", "nurture", "northwind.example")
    message["To"] = Address("Ana Lima", "ana", "example.com")
    message.set_content(TEXT)
    message.add_alternative(HTML, subtype="html")
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.send_message(message)


def test_read_an_email_in_the_browser(page, live_server: str, capture: CaptureServer) -> None:
    from playwright.sync_api import expect

    send_pricing_email(capture)

    browser_sign_in(page, live_server)
    page.goto(f"{live_server}/inbox")
    expect(page.get_by_test_id("message-count")).to_have_text("1 message")
    expect(page.get_by_role("link", name="Inbox", exact=True)).to_have_attribute("aria-current", "page")
    row = page.locator("table.inbox-table tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Northwind Cloud <nurture@northwind.example>")
    expect(row).to_contain_text("Ana Lima <ana@example.com>")

    page.get_by_role("link", name=SUBJECT).click()
    expect(page).to_have_url(re.compile(r"/inbox/[^/]+$"))
    expect(page.get_by_role("heading", name=SUBJECT)).to_be_visible()

    frame = page.frame_locator("iframe.email-html")
    expect(frame.locator("#headline")).to_have_text("Your pricing questions, answered")
    expect(frame.locator("#cta")).to_have_attribute("href", "https://northwind.example/pricing")
    # Neither the email's <script> nor its onerror handler ran, inside the frame or outside it.
    expect(frame.locator("#pwned")).to_have_count(0)
    expect(page).to_have_title(re.compile(r"^Grüße, Ana: your pricing questions, answered · nurture_mail$"))
    sandbox = page.locator("iframe.email-html").get_attribute("sandbox")
    assert sandbox is not None and "allow-scripts" not in sandbox

    expect(page.locator("pre.email-text")).to_have_text(TEXT)
    expect(page.locator("table.headers-table")).to_contain_text("multipart/alternative")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download .eml").click()
    assert Path(download.value.path()).read_bytes() == capture.store.list()[0].raw
    assert download.value.suggested_filename.endswith(".eml")


def test_clear_the_inbox_in_the_browser(page, live_server: str, capture: CaptureServer) -> None:
    from playwright.sync_api import expect

    send_pricing_email(capture)
    send_pricing_email(capture)

    browser_sign_in(page, live_server)
    page.goto(f"{live_server}/")
    page.get_by_role("link", name="Inbox", exact=True).click()
    expect(page.get_by_test_id("message-count")).to_have_text("2 messages")
    page.get_by_role("button", name="Clear inbox").click()
    expect(page.get_by_role("alert")).to_have_text("Inbox cleared: 2 messages deleted.")
    expect(page.get_by_test_id("message-count")).to_have_text("0 messages")
    expect(page.get_by_role("button", name="Clear inbox")).to_be_disabled()
    assert capture.store.count() == 0
