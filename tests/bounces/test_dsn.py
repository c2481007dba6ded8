"""Bounces by SMTP: RFC 3464 DSNs sent to the VERP return path of emails the real SMTP server
received, applied by the capture server's hook; then the tick and a real RQ worker."""
from __future__ import annotations

import smtplib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from nurture_mail.bounces.dsn import RecipientStatus, classify, parse_dsn
from nurture_mail.bounces.inbound import attach_inbound
from nurture_mail.bounces.verp import delivery_of_return_path, verp_address
from nurture_mail.models import (
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Event,
    EventKind,
    Lead,
    LeadStatus,
    Suppression,
)
from nurture_mail.nurture.send import backoff

SECOND_TOUCH = datetime(2026, 3, 5, 14, 0, tzinfo=UTC)
SECRET = b"test-secret"
_counter = iter(range(1, 10_000))


def dsn(original, *, to: str | None = None, action: str = "failed", status: str = "5.1.1",
        diagnostic: str = "smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown",
        quote_headers: bool = True, recipient: str | None = None) -> tuple[str, bytes]:
    """(envelope recipient, bytes) of a Postfix-style DSN about ``original`` (a captured message)."""
    rcpt = recipient or original.rcpt_tos[0]
    returned = ""
    if quote_headers:
        returned = (
            "--BOUNDARY\r\nContent-Description: Undelivered Message Headers\r\n"
            "Content-Type: text/rfc822-headers\r\n\r\n"
            f"From: {original.message['From']}\r\nTo: {rcpt}\r\nSubject: (original)\r\n"
            f"Message-ID: {original.message_id}\r\n\r\n"
        )
    body = (
        "From: MAILER-DAEMON@mx.acme.example (Mail Delivery System)\r\n"
        f"To: {to or original.envelope_from}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <dsn{next(_counter)}.{id(original)}@mx.acme.example>\r\n"
        "Date: Mon, 2 Mar 2026 14:05:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"\r\n\r\n'
        "--BOUNDARY\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n\r\n"
        "--BOUNDARY\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.acme.example\r\n"
        "Arrival-Date: Mon, 2 Mar 2026 14:00:01 +0000\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\n"
        f"Original-Recipient: rfc822;{rcpt}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        "Remote-MTA: dns; mail.acme.example\r\n"
        f"Diagnostic-Code: {diagnostic.format(rcpt=rcpt)}\r\n\r\n"
        f"{returned}"
        "--BOUNDARY--\r\n"
    )
    return to or original.envelope_from, body.encode("ascii")


def send_dsn(platform, envelope_to: str, data: bytes) -> None:
    # MAIL FROM:<>, the null sender of every real DSN (RFC 3464 §2: no bounce of a bounce).
    with smtplib.SMTP(platform.smtp.host, platform.smtp.port, timeout=10) as client:
        client.sendmail("", [envelope_to], data)


@pytest.fixture
def bounces(platform):
    attach_inbound(platform.smtp, platform.svc)
    platform.add_lead("ana@acme.example", first_name="Ana")
    platform.add_lead("bob@acme.example", first_name="Bob")
    platform.enroll("ana@acme.example")
    platform.enroll("bob@acme.example")
    platform.tick_and_work()
    return platform


def state(platform, email: str):
    with platform.svc.db.session() as s:
        lead = s.scalar(select(Lead).where(Lead.email == email))
        return (
            lead,
            list(s.scalars(select(Enrollment).where(Enrollment.lead_id == lead.id))),
            list(s.scalars(select(Delivery).where(Delivery.lead_id == lead.id).order_by(Delivery.id))),
            [(x.scope, x.reason, x.source) for x in s.scalars(select(Suppression).where(Suppression.email == email))],
            list(s.scalars(select(Event).where(Event.lead_id == lead.id, Event.kind != EventKind.unsubscribe)
                           .order_by(Event.id))),
        )


def test_every_email_carries_a_verp_return_path_that_names_its_delivery(bounces):
    [message] = bounces.received("ana@acme.example")
    _, _, [delivery], _, _ = state(bounces, "ana@acme.example")
    assert message.envelope_from == verp_address(delivery.id, SECRET, "northwind.example")
    assert message.envelope_from.startswith(f"bounces+{delivery.id}-")
    assert delivery_of_return_path(message.envelope_from, SECRET, "northwind.example") == delivery.id
    forged = message.envelope_from.replace(f"+{delivery.id}-", f"+{delivery.id + 1}-")
    assert delivery_of_return_path(forged, SECRET, "northwind.example") is None
    assert "Return-Path" not in message.message  # the receiving MTA writes it, not us


def test_a_hard_bounce_dsn_by_smtp_suppresses_the_lead(bounces):
    [welcome] = bounces.received("ana@acme.example")
    envelope_to, data = dsn(welcome)
    send_dsn(bounces, envelope_to, data)

    lead, [enrollment], [delivery], suppressions, [event] = state(bounces, "ana@acme.example")
    assert lead.status == LeadStatus.bounced
    assert suppressions == [("*", "hard_bounce", "dsn")]
    assert enrollment.state == EnrollmentState.exited and "hard bounce" in enrollment.state_reason
    assert delivery.status == DeliveryStatus.bounced and "5.1.1" in delivery.last_error
    assert event.kind == EventKind.bounce and event.delivery_id == delivery.id
    assert event.detail["type"] == "hard" and event.detail["status"] == "5.1.1"
    assert "User unknown" in event.detail["diagnostic"] and event.detail["source"] == "dsn"

    send_dsn(bounces, envelope_to, data)  # the same report again: nothing new
    assert len(state(bounces, "ana@acme.example")[4]) == 1

    bounces.tick_and_work(SECOND_TOUCH)
    assert len(bounces.received("ana@acme.example")) == 1
    assert len(bounces.received("bob@acme.example")) == 2


def test_a_dsn_to_the_plain_bounce_address_is_matched_by_the_quoted_message_id(bounces):
    [welcome] = bounces.received("ana@acme.example")
    send_dsn(bounces, *dsn(welcome, to="bounces@northwind.example"))
    assert state(bounces, "ana@acme.example")[0].status == LeadStatus.bounced


def test_a_dsn_that_names_no_delivery_of_ours_changes_nothing(bounces):
    """Anybody can mail the bounce address: a report without a valid VERP address or
    Message-ID must not suppress the lead its Final-Recipient names."""
    [welcome] = bounces.received("ana@acme.example")
    send_dsn(bounces, *dsn(welcome, to="bounces@northwind.example", quote_headers=False))
    forged_verp = welcome.envelope_from[:-len("@northwind.example") - 1] + "0@northwind.example"
    send_dsn(bounces, *dsn(welcome, to=forged_verp, quote_headers=False))
    lead, [enrollment], _, suppressions, events = state(bounces, "ana@acme.example")
    assert (lead.status, enrollment.state, suppressions, events) == (
        LeadStatus.nurturing, EnrollmentState.active, [], [])


def test_a_message_that_is_no_dsn_is_ignored(bounces):
    [welcome] = bounces.received("ana@acme.example")
    with smtplib.SMTP(bounces.smtp.host, bounces.smtp.port, timeout=10) as client:
        client.sendmail("ana@acme.example", [welcome.envelope_from],
                        b"From: ana@acme.example\r\nSubject: Out of office\r\n\r\nBack on Monday.\r\n")
    assert state(bounces, "ana@acme.example")[3:] == ([], [])


def _soft(platform, message) -> None:
    send_dsn(platform, *dsn(message, status="4.2.2",
                            diagnostic="smtp; 452 4.2.2 <{rcpt}>: Mailbox full, try again later"))


def test_a_soft_bounce_is_retried_with_backoff_and_three_in_a_row_suppress(bounces, clock):
    _soft(bounces, bounces.received("ana@acme.example")[0])
    lead, [enrollment], [delivery], suppressions, [event] = state(bounces, "ana@acme.example")
    assert lead.soft_bounces == 1 and lead.status == LeadStatus.nurturing and suppressions == []
    assert delivery.status == DeliveryStatus.queued and delivery.attempts == 1  # attempts kept
    assert delivery.next_attempt_at == clock.now() + backoff(60, 2)
    assert "Mailbox full" in delivery.last_error
    # The touch did not land: the retry is the outstanding delivery, so no next touch is due.
    assert enrollment.next_send_at is None and enrollment.touches_sent == 0
    assert event.detail["type"] == "soft" and event.detail["soft_bounces"] == 1

    bounces.tick_and_work(delivery.next_attempt_at - timedelta(seconds=1))  # backoff not over
    assert len(bounces.received("ana@acme.example")) == 1
    for count in (2, 3):
        bounces.tick_and_work(state(bounces, "ana@acme.example")[2][0].next_attempt_at)
        retried = bounces.received("ana@acme.example")
        assert len(retried) == count
        assert retried[-1].message_id == retried[0].message_id  # the same email, the same Message-ID
        # A resend of a bounced email is no evidence the mailbox works: the count is kept.
        assert state(bounces, "ana@acme.example")[0].soft_bounces == count - 1
        _soft(bounces, retried[-1])

    lead, [enrollment], [delivery], suppressions, events = state(bounces, "ana@acme.example")
    assert lead.soft_bounces == 3 and lead.status == LeadStatus.bounced
    assert suppressions == [("*", "soft_bounces", "dsn")]
    assert enrollment.state == EnrollmentState.exited and "3 soft bounces in a row" in enrollment.state_reason
    assert delivery.status == DeliveryStatus.bounced and delivery.attempts == 3
    assert [e.detail["soft_bounces"] for e in events] == [1, 2, 3] and events[-1].detail["suppressed"]

    bounces.tick_and_work(SECOND_TOUCH + timedelta(days=7))
    assert len(bounces.received("ana@acme.example")) == 3


def test_an_email_that_never_bounced_resets_the_soft_bounce_count(bounces):
    _soft(bounces, bounces.received("ana@acme.example")[0])
    retry_at = state(bounces, "ana@acme.example")[2][0].next_attempt_at
    bounces.tick_and_work(retry_at)  # the retry goes out and does not bounce
    assert state(bounces, "ana@acme.example")[0].soft_bounces == 1
    bounces.tick_and_work(SECOND_TOUCH + timedelta(days=1))  # the next touch: a new email
    lead, [enrollment], deliveries, _, _ = state(bounces, "ana@acme.example")
    assert [d.status for d in deliveries] == [DeliveryStatus.sent, DeliveryStatus.sent]
    assert lead.soft_bounces == 0 and enrollment.touches_sent == 2


def test_a_delayed_dsn_is_recorded_and_nothing_is_resent(bounces):
    [welcome] = bounces.received("ana@acme.example")
    send_dsn(bounces, *dsn(welcome, action="delayed", status="4.4.1",
                           diagnostic="smtp; 421 4.4.1 Connection timed out; will keep trying"))
    lead, [enrollment], [delivery], suppressions, [event] = state(bounces, "ana@acme.example")
    assert event.detail["type"] == "delayed"
    assert (lead.soft_bounces, delivery.status, suppressions) == (0, DeliveryStatus.sent, [])


# -- the parser alone: report shapes seen from other MTAs ---------------------------------------


def test_parse_dsn_reads_a_wrapped_report_with_the_whole_original_message():
    raw = (
        b"From: postmaster@gw.example\r\nSubject: Delivery failure\r\nMessage-ID: <r1@gw.example>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="OUTER"\r\n\r\n'
        b"--OUTER\r\nContent-Type: text/plain\r\n\r\nA gateway note.\r\n"
        b'--OUTER\r\nContent-Type: multipart/report; report-type="delivery-status"; boundary="IN"\r\n\r\n'
        b"--IN\r\nContent-Type: text/plain\r\n\r\nFailed.\r\n"
        b"--IN\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns;gw.example\r\n\r\n"
        b"Final-Recipient: RFC822; <Zoe@Acme.Example>\r\nAction: FAILED\r\n"
        b"Diagnostic-Code: smtp; 552-5.2.2 The email account that you tried to reach is over quota\r\n\r\n"
        b"--IN\r\nContent-Type: message/rfc822\r\n\r\nFrom: nurture@northwind.example\r\n"
        b"Message-ID: <d9.0123456789abcdef@northwind.example>\r\nSubject: hi\r\n\r\nbody\r\n"
        b"--IN--\r\n--OUTER--\r\n"
    )
    report = parse_dsn(raw)
    assert report.message_id == "<r1@gw.example>" and report.reporting_mta == "gw.example"
    assert report.original_message_id == "<d9.0123456789abcdef@northwind.example>"
    [recipient] = report.recipients
    assert recipient.final_recipient == "zoe@acme.example" and recipient.action == "failed"
    assert recipient.status == "5.2.2"  # no Status field: taken from the diagnostic
    assert classify(recipient) == "soft"  # mailbox full is passing, even as a 5xx


def test_classify_follows_rfc_3463_classes():
    def status(action: str, code: str) -> str | None:
        return classify(RecipientStatus("a@b.example", None, action, code))

    assert status("failed", "5.1.1") == "hard" and status("failed", "5.7.1") == "hard"
    assert status("failed", "4.4.7") == "soft" and status("delayed", "4.4.1") == "delayed"
    assert status("delivered", "2.0.0") is None and status("relayed", "2.0.0") is None


def test_parse_dsn_is_none_for_mail_that_is_no_delivery_report():
    assert parse_dsn(b"From: a@b.example\r\nSubject: Out of office\r\n\r\nAway.\r\n") is None
    assert parse_dsn(b'Content-Type: multipart/report; report-type=disposition-notification; boundary="B"\r\n\r\n'
                     b"--B\r\nContent-Type: text/plain\r\n\r\nread\r\n--B--\r\n") is None
