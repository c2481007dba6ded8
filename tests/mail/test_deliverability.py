"""Deliverability basics on real components: encoding through a real SMTP server, Reply-To,
the postal address, DKIM verified at the receiving end, and send-rate limits over Redis."""
from __future__ import annotations

import base64
import shutil
import subprocess
import threading
import time
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta

import pytest
from ci import require
from redis import Redis
from sqlalchemy import select

from nurture_mail.config import Config
from nurture_mail.extensions import redis_url_of
from nurture_mail.mail.ratelimit import SendRateLimiter
from nurture_mail.models import Delivery, DeliveryStatus

START = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def configure(platform, monkeypatch, **settings) -> None:
    """Settings by Config field when Config has it, else by environment variable."""
    names = {f.name for f in fields(Config)}
    on_config = {k: v for k, v in settings.items() if k in names}
    if on_config:
        monkeypatch.setattr(platform.svc, "config", replace(platform.svc.config, **on_config))
    for name, value in settings.items():
        if name not in names:
            monkeypatch.setenv(name.upper(), str(value))


def test_non_ascii_names_and_subjects_reach_the_smtp_server_intact(platform, monkeypatch):
    configure(platform, monkeypatch, sender_name="Nörthwind Cloud — Sécurité", reply_to="ventes@northwind.example")
    platform.add_lead("zoe@acme.example", first_name="Zoë", last_name="Ørsted-Müller", company="Hale & Morrow")
    platform.enroll("zoe@acme.example")
    platform.tick_and_work()
    [message] = platform.received("zoe@acme.example")

    message.raw.decode("ascii")  # 7-bit on the wire: every non-ASCII header is RFC 2047-encoded
    parsed = message.message
    assert parsed["From"].addresses[0].display_name == "Nörthwind Cloud — Sécurité"
    assert parsed["From"].addresses[0].addr_spec == "nurture@northwind.example"
    assert parsed["To"].addresses[0].display_name == "Zoë Ørsted-Müller"
    assert parsed["Subject"].startswith("Zoë, ")
    assert str(parsed["Reply-To"]) == "ventes@northwind.example"
    assert not parsed.defects and not any(part.defects for part in parsed.walk())

    text, html = message.text, message.html
    assert "Hi Zoë" in text
    # CAN-SPAM: the sender's postal address in both parts; the text part reads as text.
    for part in (text, html):
        assert "500 Market Street, Suite 300, San Francisco, CA 94105" in part
    assert "<p" not in text and "&amp;" not in text and "&#" not in text
    assert "Unsubscribe with one click: http://nurture.test/u/" in text


def _keypair(tmp_path) -> tuple[str, bytes]:
    if shutil.which("openssl") is None:
        require("openssl is not installed", "apt-get install -y openssl (it makes the test DKIM key)")
    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True,
                            capture_output=True).stdout
    return str(key), b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def test_dkim_signature_verifies_at_the_receiving_end(platform, monkeypatch, tmp_path):
    dkim = pytest.importorskip("dkim")
    key_path, txt = _keypair(tmp_path)
    configure(platform, monkeypatch, dkim_selector="nm2026", dkim_private_key_path=key_path)
    platform.add_lead("ana@acme.example", first_name="Ana")
    platform.enroll("ana@acme.example")
    platform.tick_and_work()
    [message] = platform.received("ana@acme.example")

    looked_up = []

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        looked_up.append(name)
        return txt if name == b"nm2026._domainkey.northwind.example." else None

    assert dkim.verify(message.raw, dnsfunc=dns)
    assert looked_up == [b"nm2026._domainkey.northwind.example."]
    signature = " ".join(str(message.message["DKIM-Signature"]).split())
    signed = {h.strip() for h in signature.split(" h=")[1].split(";")[0].split(":")}
    assert {"from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post",
            "mime-version", "content-type"} <= signed
    assert "d=northwind.example" in signature and "c=relaxed/relaxed" in signature

    # A relay that rewrites the unsubscribe URL (or anything signed) breaks the signature.
    tampered = message.raw.replace(b"http://nurture.test/u/", b"http://evil.test/u/", 1)
    assert tampered != message.raw and not dkim.verify(tampered, dnsfunc=dns)


def test_an_unreadable_dkim_key_fails_the_batch_before_anything_is_claimed(platform, monkeypatch, tmp_path):
    configure(platform, monkeypatch, dkim_selector="nm2026", dkim_private_key_path=str(tmp_path / "missing.pem"))
    platform.add_lead("ana@acme.example")
    platform.enroll("ana@acme.example")
    platform.tick_and_work()  # the job fails (RQ keeps it in the failed registry)
    assert platform.received() == []
    [delivery] = platform.deliveries()
    assert delivery.status == DeliveryStatus.queued and delivery.attempts == 0  # nothing sent unsigned


def test_over_a_domain_limit_deliveries_are_deferred_to_the_next_window_without_an_attempt(platform, monkeypatch):
    configure(platform, monkeypatch, send_rate_per_domain_per_minute=2)
    for i in range(5):
        platform.add_lead(f"p{i}@big.example")
        platform.enroll(f"p{i}@big.example")
    platform.add_lead("solo@small.example")
    platform.enroll("solo@small.example")

    platform.tick_and_work(START)
    assert sorted(m.rcpt_tos[0] for m in platform.received()) == ["p0@big.example", "p1@big.example",
                                                                 "solo@small.example"]
    with platform.svc.db.session() as s:
        waiting = s.scalars(select(Delivery).where(Delivery.status == DeliveryStatus.queued)).all()
        assert len(waiting) == 3
        for delivery in waiting:
            assert delivery.attempts == 0  # the claim's attempt was given back
            assert delivery.next_attempt_at == START + timedelta(minutes=1)
            assert delivery.last_error.startswith("deferred: rate limit for big.example")

    platform.tick_and_work(START + timedelta(seconds=30))  # same window: nothing more
    assert len(platform.received()) == 3
    platform.tick_and_work(START + timedelta(minutes=1))
    assert len(platform.received()) == 5
    platform.tick_and_work(START + timedelta(minutes=2))
    assert len(platform.received()) == 6
    with platform.svc.db.session() as s:
        assert {(d.status, d.attempts) for d in s.scalars(select(Delivery))} == {(DeliveryStatus.sent, 1)}


def test_over_the_global_limit_the_sender_waits(platform, monkeypatch):
    configure(platform, monkeypatch, send_rate_per_second=20)
    for i in range(8):
        platform.add_lead(f"g{i}@many.example")
        platform.enroll(f"g{i}@many.example")
    platform.tick()
    started = time.monotonic()
    platform.work()
    elapsed = time.monotonic() - started
    assert len(platform.received()) == 8
    assert elapsed >= 7 / 20 - 0.02  # 8 emails, 1/20 s apart


def test_the_global_limit_is_shared_by_workers(redis):
    """Two workers (two connections, two threads) reserve slots from one schedule in Redis."""
    url = redis_url_of(redis)  # a second connection, also to an embedded (unix socket) server
    limiters = [SendRateLimiter(Redis.from_url(url), per_second=40) for _ in range(2)]
    stamps: list[float] = []
    lock = threading.Lock()

    def worker(limiter: SendRateLimiter) -> None:
        for _ in range(10):
            limiter.wait_for_slot()
            with lock:
                stamps.append(time.monotonic())

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(limiter,)) for limiter in limiters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(stamps) == 20
    # 20 slots 1/40 s apart: the last is 19/40 s after the first, whichever worker took it.
    assert max(stamps) - started >= 19 / 40 - 0.02
    # And never a burst: no second of the run holds more than 40 + 1 sends.
    assert all(sum(1 for t in stamps if s <= t < s + 1) <= 41 for s in stamps)
