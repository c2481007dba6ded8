#!/usr/bin/env python
"""MIME writer micro-benchmark: ``mail.mime.build_message`` against the stdlib's EmailMessage.

Builds 20,000 emails of ~8 KB HTML (one email repeated, then 20,000 personalized ones) and a
thousand through ``EmailMessage.as_bytes``; prints milliseconds and messages per second for each.
Run: ``.venv/bin/python bench/mime_writer.py``.
"""
from __future__ import annotations

import sys
import timeit
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nurture_mail.mail.mime import OutgoingEmail, build_message, message_id_for


def main() -> None:

    paragraph = (
        '<p style="margin:0 0 16px;font-family:Helvetica,Arial,sans-serif;font-size:15px;color:#333">'
        'Teams that move their nightly batch jobs to <a href="https://track.example.com/c/{n}.'
        'AbCdEfGhIjKlMnOpQrStUvWxYz0123456789" style="color:#0b5cad">autoscaling workers</a> '
        "cut their bill by a third. Here is how Ünïcode &amp; Co. did it.</p>\n"
    )
    html = "<html><body>\n"
    while len(html.encode()) + len(paragraph) < 7_700:
        html += paragraph.format(n=html.count("<p "))
    footer = "Northwind Cloud Inc., 500 Market Street, San Francisco, CA 94105. " * 10
    html += "<p>" + footer[:7_700 - len(html.encode()) - 22] + "</p></body></html>\n"
    text = "Teams that move their nightly batch jobs to autoscaling workers cut their bill.\n" * 40
    base = OutgoingEmail(
        from_addr="nurture@northwind.example", from_name="Northwind Cloud",
        to_addr="jane.doe@customer.example", to_name="Jane Doé",
        subject="How Ünïcode & Co. cut their compute bill by a third",
        html=html, text=text,
        message_id=message_id_for(1, b"secret", "northwind.example"),
        date=datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
        reply_to="sales@northwind.example",
        extra_headers=(
            ("List-Unsubscribe", ("<https://track.example.com/u/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789>, "
                                 "<mailto:unsubscribe@northwind.example?subject=u-1>")),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("X-Nurture-Campaign", "cloud-cost-q1"),
        ),
    )
    # Personalized: every message its own recipient, subject, Message-ID, unsubscribe URL and
    # second, so no header cache helps (bodies are as large as in the shared case).
    personalized = [
        OutgoingEmail(
            from_addr=base.from_addr, from_name=base.from_name,
            to_addr=f"lead{n}@customer.example", to_name=f"Zoë Lead {n}",
            subject=f"Zoë {n}, how Ünïcode & Co. cut their compute bill by a third",
            html=html, text=text, message_id=message_id_for(n, b"secret", "northwind.example"),
            date=datetime(2026, 3, 2, 9, 30, tzinfo=UTC) + timedelta(seconds=n),
            reply_to=base.reply_to,
            extra_headers=((base.extra_headers[0][0], base.extra_headers[0][1].replace("Yz01", f"{n:04d}")),)
            + base.extra_headers[1:],
        )
        for n in range(20_000)
    ]

    def stdlib(email: OutgoingEmail) -> bytes:
        msg = EmailMessage(policy=SMTP)
        msg["From"] = Address(email.from_name, addr_spec=email.from_addr)
        msg["To"] = Address(email.to_name, addr_spec=email.to_addr)
        msg["Subject"] = email.subject
        msg["Date"] = email.date
        msg["Message-ID"] = email.message_id
        if email.reply_to:
            msg["Reply-To"] = email.reply_to
        for name, value in email.extra_headers:
            msg[name] = value
        msg.set_content(email.text, cte="base64")
        msg.add_alternative(email.html, subtype="html", cte="base64")
        return msg.as_bytes()

    def per_message(func, emails: list[OutgoingEmail], repeat: int = 5) -> float:
        def run() -> None:
            for one in emails:
                func(one)
        return min(timeit.repeat(run, number=1, repeat=repeat)) / len(emails)

    print(f"HTML body {len(html.encode()):,} bytes, text body {len(text.encode()):,} bytes, "
          f"message {len(build_message(base)):,} bytes")
    cases = (
        ("build_message, same email", build_message, [base] * 20_000),
        ("build_message, personalized", build_message, personalized),
        ("EmailMessage + as_bytes", stdlib, personalized[:1_000]),
    )
    for label, func, emails in cases:
        seconds = per_message(func, emails)
        print(f"{label:>28}: {seconds * 1e3:.3f} ms/message ({1 / seconds:,.0f}/s)")


if __name__ == "__main__":
    main()
