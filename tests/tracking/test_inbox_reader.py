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
from web.conftest import add_users, sign_in

from nurture_mail import create_app
from nurture_mail.config import Config
from nurture_mail.mail.capture import CaptureStore
from nurture_mail.models import Event
from nurture_mail.tracking.ingest import drain_events

from .conftest import BROWSER, parse_html, pixel_url, visible_links


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
