"""RFC 3464 delivery status notifications, read with the stdlib ``email`` package.

A DSN is ``multipart/report; report-type=delivery-status`` with three parts: a human text, a
``message/delivery-status`` part (one block of per-message fields, then one block per
recipient: Final-Recipient, Action, Status, Diagnostic-Code …) and the original message or
its headers (``message/rfc822`` or ``text/rfc822-headers``), where our Message-ID is quoted.

How a recipient block is read (RFC 3463 status codes):

- ``Action: failed`` with a 5.x.x status: **hard** bounce (no such user, domain gone …),
  except 5.2.2 "mailbox full", which receivers (Gmail among them) use for a temporary state:
  **soft**;
- ``Action: failed`` with a 4.x.x status (the relay gave up retrying): **soft**;
- ``Action: delayed``: **delayed**, a warning; the relay is still trying, so we neither retry
  (a copy would arrive twice) nor count it;
- ``delivered``, ``relayed``, ``expanded``: not a bounce (None).
"""
from __future__ import annotations

import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import BytesParser, HeaderParser
from typing import Any

__all__ = ["DeliveryStatusNotification", "RecipientStatus", "classify", "parse_dsn"]

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
#: Statuses of a failed delivery that describe a passing state of the mailbox.
_SOFT_PERMANENT = frozenset({"5.2.2"})


@dataclass(frozen=True)
class RecipientStatus:
    """One per-recipient block of a DSN."""

    final_recipient: str | None
    original_recipient: str | None
    action: str
    status: str
    diagnostic: str | None = None
    remote_mta: str | None = None


@dataclass(frozen=True)
class DeliveryStatusNotification:
    #: The DSN's own Message-ID (identifies the report, for idempotency).
    message_id: str | None
    reporting_mta: str | None
    #: The Message-ID of the message that bounced, from the returned headers.
    original_message_id: str | None
    recipients: tuple[RecipientStatus, ...]


def parse_dsn(raw: bytes) -> DeliveryStatusNotification | None:
    """The report in ``raw``, or None when it is not an RFC 3464 DSN (an auto-reply, spam …)."""
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    report = _find_report(message)
    if report is None:
        return None
    status_part, original = report
    blocks = status_part.get_payload()
    if not isinstance(blocks, list) or not blocks:
        return None
    per_message, per_recipient = blocks[0], blocks[1:]
    recipients = []
    for block in per_recipient:
        action = _text(block, "Action")
        if not action:
            continue
        recipients.append(RecipientStatus(
            final_recipient=_address(_text(block, "Final-Recipient")),
            original_recipient=_address(_text(block, "Original-Recipient")),
            action=action.lower(),
            status=_status(_text(block, "Status"), _text(block, "Diagnostic-Code")),
            diagnostic=_value(_text(block, "Diagnostic-Code")),
            remote_mta=_value(_text(block, "Remote-MTA")),
        ))
    return DeliveryStatusNotification(
        message_id=_text(message, "Message-ID"),
        reporting_mta=_value(_text(per_message, "Reporting-MTA")),
        original_message_id=_original_message_id(original),
        recipients=tuple(recipients),
    )


def classify(recipient: RecipientStatus) -> str | None:
    """``hard``, ``soft``, ``delayed``, or None when the block reports no failure."""
    if recipient.action == "delayed":
        return "delayed"
    if recipient.action != "failed":
        return None
    if recipient.status.startswith("4.") or recipient.status in _SOFT_PERMANENT:
        return "soft"
    return "hard"


def _find_report(message: Message) -> tuple[Message, Message | None] | None:
    """The delivery-status part and the returned message part, searching nested parts too
    (some gateways wrap the report in a multipart/mixed)."""
    for part in message.walk():
        report_type = part.get_param("report-type")
        if part.get_content_type() == "multipart/report" and isinstance(report_type, str) \
                and report_type.lower() == "delivery-status":
            status: Any = None
            original: Any = None
            child: Any
            for child in part.iter_parts() if isinstance(part, EmailMessage) else part.get_payload():
                kind = child.get_content_type()
                if kind in ("message/delivery-status", "message/global-delivery-status") and status is None:
                    status = child
                elif kind in ("message/rfc822", "text/rfc822-headers", "message/global-headers") and original is None:
                    original = child
            if status is not None:
                return status, original
    return None


def _original_message_id(part: Message | None) -> str | None:
    if part is None:
        return None
    if part.get_content_type() == "message/rfc822":
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        return _text(inner, "Message-ID") if inner is not None else None
    try:
        headers = part.get_content() if isinstance(part, EmailMessage) else part.get_payload(decode=True)
    except (LookupError, UnicodeError):
        headers = part.get_payload(decode=True)
    if isinstance(headers, bytes):
        headers = headers.decode("utf-8", errors="replace")
    if not isinstance(headers, str):
        return None
    return _text(HeaderParser(policy=email.policy.default).parsestr(headers, headersonly=True), "Message-ID")


def _text(message: Any, name: str) -> str | None:
    """A header of a part (any of the stdlib's message classes), or None when absent or malformed."""
    try:
        value = message.get(name)
    except Exception:  # a malformed header in a stranger's report must not stop the rest
        return None
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def _value(typed: str | None) -> str | None:
    """``dns; mx.example`` → ``mx.example``; ``smtp; 550 …`` → ``550 …`` (the type is dropped)."""
    if typed is None:
        return None
    kind, sep, rest = typed.partition(";")
    return rest.strip() if sep else typed.strip()


def _address(typed: str | None) -> str | None:
    value = _value(typed)
    if not value:
        return None
    return value.strip("<>").strip().lower() or None


def _status(status: str | None, diagnostic: str | None) -> str:
    """The RFC 3463 code; when Status is missing or malformed, the one in the diagnostic, else
    5.0.0 ("failed" means permanent in RFC 3464 when nothing says otherwise)."""
    for text in (status, diagnostic):
        match = _STATUS.search(text or "")
        if match:
            return ".".join(match.groups())
    return "5.0.0"
