#!/usr/bin/env python
"""Signed tokens per email: the five tokens, the Message-ID and the VERP return path.

What the send path asks of ``tracking/urls.py``, ``mail.mime.message_id_for`` and
``bounces.verp.verp_address`` for one email: two click URLs, the open pixel and honeypot URLs
(``context_extras``), the unsubscribe URL and the List-Unsubscribe headers (one signature,
asked twice), the Message-ID and the VERP address. Prints µs of CPU per email (process time,
median of 5 runs of 20,000 emails, delivery ids from 1,000,000 up), and the same for each part.
Run: ``.venv/bin/python bench/tokens.py``.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nurture_mail.bounces.verp import verp_address
from nurture_mail.config import Config
from nurture_mail.mail.mime import message_id_for
from nurture_mail.tracking.urls import TrackingUrls

EMAILS = 20_000
RUNS = 5
FIRST_ID = 1_000_000


def main() -> None:
    with tempfile.TemporaryDirectory() as instance:
        config = Config.from_env({"SECRET_KEY": "bench-secret-key-0123456789abcdef", "INSTANCE_PATH": instance,
                                  "BASE_URL": "https://track.northwind.example", "SENDER_EMAIL":
                                  "nurture@northwind.example"})
    urls = TrackingUrls(config)
    secret = config.secret_key.encode()
    domain = config.sender_domain
    bounce_domain = f"bounces.{domain}"
    links = [SimpleNamespace(id=311, name="report", url="https://northwind.example/reports/cloud-risk-2026"),
             SimpleNamespace(id=312, name="demo", url="https://northwind.example/demo?utm_source=nurture&utm_medium=email")]
    deliveries = [SimpleNamespace(id=FIRST_ID + n, lead_id=500_000 + n) for n in range(EMAILS)]

    def email(delivery: SimpleNamespace) -> None:
        for link in links:
            urls.link(delivery, link)
        urls.context_extras(delivery)
        urls.unsubscribe(delivery)
        urls.list_unsubscribe_headers(delivery)
        message_id_for(delivery.id, secret, domain)
        verp_address(delivery.id, secret, bounce_domain)

    parts = {
        "click x2": lambda d: (urls.link(d, links[0]), urls.link(d, links[1])),
        "open+honeypot": urls.context_extras,
        "unsubscribe+headers": lambda d: (urls.unsubscribe(d), urls.list_unsubscribe_headers(d)),
        "message id": lambda d: message_id_for(d.id, secret, domain),
        "verp": lambda d: verp_address(d.id, secret, bounce_domain),
    }

    def timed(fn) -> float:
        samples = []
        for _ in range(RUNS):
            urls._last = (0, "")
            start = time.process_time()
            for delivery in deliveries:
                fn(delivery)
            samples.append((time.process_time() - start) / EMAILS * 1e6)
        return statistics.median(samples)

    email(deliveries[0])  # warm caches (the links' JSON, the keyed HMACs)
    print(f"per email (5 tokens + Message-ID + VERP): {timed(email):6.2f} µs CPU  "
          f"(median of {RUNS} × {EMAILS:,} emails)")
    for label, fn in parts.items():
        print(f"  {label:<22}{timed(fn):6.2f} µs")


if __name__ == "__main__":
    main()
