"""The inbox through Flask's test client: routing, 404s, escaping, CSRF, raw download."""
from __future__ import annotations

import re
import smtplib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html import unescape
from pathlib import Path

from flask import Flask

from nurture_mail import create_app
from nurture_mail.config import Config
from nurture_mail.mail.capture import CaptureServer, CaptureStore

from .conftest import add_users, sign_in


def send(server: CaptureServer, subject: str, html: str | None = None, text: str = "Plain words.\n") -> None:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = "Northwind Cloud <nurture@northwind.example>"
    message["To"] = "Ana Lima <ana@example.com>"
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.send_message(message)


def csrf_token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the page has no CSRF token field"
    return match.group(1)


def test_list_and_message_pages(web_app: Flask, capture: CaptureServer) -> None:
    send(capture, "First touch")
    send(capture, "Second touch <b>bold?</b>", html='<p title="q">Hi <script>alert(1)</script></p>')
    client = sign_in(web_app.test_client())

    page = client.get("/inbox/").get_data(as_text=True)
    assert "2 messages" in page
    assert page.index("Second touch") < page.index("First touch")  # newest first
    assert "Second touch &lt;b&gt;bold?&lt;/b&gt;" in page  # subjects are escaped
    assert client.get("/inbox").status_code == 308  # /inbox redirects to /inbox/

    key = capture.store.list()[0].key
    response = client.get(f"/inbox/{key}")
    assert response.status_code == 200
    assert "script-src 'none'" in response.headers["Content-Security-Policy"]
    body = response.get_data(as_text=True)
    iframe = re.search(r"<iframe([^>]*)>", body)
    assert iframe is not None
    attributes = iframe.group(1)
    assert ' sandbox="' in attributes and "allow-scripts" not in attributes and "allow-same-origin" not in attributes
    srcdoc = re.search(r'srcdoc="([^"]*)"', attributes)
    assert srcdoc is not None  # the email's quotes were escaped, so the attribute did not end early
    assert unescape(srcdoc.group(1)) == '<base target="_blank"><p title="q">Hi <script>alert(1)</script></p>\n'
    assert '<pre class="email-text">Plain words.\n</pre>' in body
    assert "Northwind Cloud &lt;nurture@northwind.example&gt;" in body


def test_raw_download_is_the_exact_message(web_app: Flask, capture: CaptureServer) -> None:
    send(capture, "Raw please")
    captured = capture.store.list()[0]
    response = sign_in(web_app.test_client()).get(f"/inbox/{captured.key}/raw")
    assert response.status_code == 200
    assert response.mimetype == "message/rfc822"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert ".eml" in response.headers["Content-Disposition"]
    assert response.data == captured.raw


def test_unknown_key_is_404(web_app: Flask, capture: CaptureServer) -> None:
    client = sign_in(web_app.test_client())
    assert client.get("/inbox/no-such-message").status_code == 404
    assert client.get("/inbox/no-such-message/raw").status_code == 404
    assert client.get("/inbox/..%2F..%2Fsecret_key").status_code == 404


def test_inbox_is_404_when_a_relay_is_configured(tmp_path: Path) -> None:
    config = Config.from_env({"SMTP_URL": "smtp://relay.example.com:587"}, instance_path=tmp_path, secret_key="x")
    CaptureStore(config.capture_dir).add("a@example.com", ["b@example.com"], b"Subject: old\r\n\r\nx\r\n", datetime.now(UTC))
    app = create_app(config)
    add_users(app)
    client = sign_in(app.test_client())
    assert client.get("/inbox/").status_code == 404
    key = CaptureStore(config.capture_dir).list()[0].key
    assert client.get(f"/inbox/{key}").status_code == 404
    home = client.get("/")
    assert home.status_code == 200
    assert "/inbox" not in home.get_data(as_text=True)  # no Inbox link in the nav either


def test_clear_needs_the_csrf_token(web_app: Flask, capture: CaptureServer) -> None:
    send(capture, "Keep me until a real clear")
    client = sign_in(web_app.test_client())

    refused = client.post("/inbox/clear")
    assert refused.status_code == 400
    assert "This form has expired" in refused.get_data(as_text=True)
    refused = client.post("/inbox/clear", data={"csrf_token": "forged"})
    assert refused.status_code == 400
    assert capture.store.count() == 1

    token = csrf_token(client.get("/inbox/").get_data(as_text=True))
    cleared = client.post("/inbox/clear", data={"csrf_token": token})
    assert cleared.status_code == 303
    assert capture.store.count() == 0
    page = client.get(cleared.headers["Location"]).get_data(as_text=True)
    assert "Inbox cleared: 1 message deleted." in page
    assert "No messages yet" in page


def test_home_links_to_the_inbox(web_app: Flask, capture: CaptureServer) -> None:
    send(capture, "Counted")
    client = sign_in(web_app.test_client())
    page = client.get("/").get_data(as_text=True)
    assert 'href="/inbox/"' in page
    assert "<strong>1</strong> captured email" in page
    assert client.get("/assets/app.css").status_code == 200


def test_pages_of_fifty(web_app: Flask, web_config: Config) -> None:
    store = CaptureStore(web_config.capture_dir)
    start = datetime(2026, 3, 2, tzinfo=UTC)
    for n in range(55):
        store.add("a@example.com", ["b@example.com"], b"Subject: number %02d\r\n\r\nx\r\n" % n, start + timedelta(minutes=n))
    client = sign_in(web_app.test_client())
    first = client.get("/inbox/").get_data(as_text=True)
    assert "55 messages" in first and "number 54" in first and "number 05" in first and "number 04" not in first
    second = client.get("/inbox/?page=2").get_data(as_text=True)
    assert "number 04" in second and "number 00" in second and "number 05" not in second
    assert "Page 2 of 2" in second
    assert client.get("/inbox/?page=99").status_code == 200  # clamped to the last page
