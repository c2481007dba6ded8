"""``POST /api/v1/webhooks/events``: bounces, complaints and replies from any ESP, HMAC-signed.

Any provider (or a small adapter in front of one) posts a JSON batch::

    {"events": [{"id": "evt_1", "type": "bounce", "bounce_type": "hard",
                 "message_id": "<d42.…@northwind.example>", "email": "ana@example.com",
                 "occurred_at": "2026-03-02T14:00:00Z", "status": "5.1.1",
                 "diagnostic": "550 5.1.1 user unknown"}]}

signed with the shared ``WEBHOOK_SECRET``::

    X-Nurture-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>

The timestamp is inside the MAC, and one more than five minutes away from our time is refused,
so a captured request cannot be replayed later. Several ``v1=`` are accepted (secret rotation:
sign with both). Items are applied in one transaction, idempotent by their ``id``; a batch with
an invalid item is refused whole (422, naming the field) so nothing is half-applied. The full
format is in docs/deliverability.md. Errors are problem+json (RFC 9457).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue

from .. import services
from ..clock import parse_instant
from ..mail.ratelimit import deliverability_settings
from .feedback import Feedback, FeedbackKind, FeedbackPolicy, apply_feedback, uid_for

__all__ = ["SIGNATURE_HEADER", "TOLERANCE_SECONDS", "bp", "sign", "verify_signature"]

bp = Blueprint("webhooks", __name__, url_prefix="/api/v1/webhooks")

SIGNATURE_HEADER = "X-Nurture-Signature"
TOLERANCE_SECONDS = 300
MAX_BODY = 1_000_000
MAX_EVENTS = 1000

_KINDS = {
    ("bounce", "hard"): FeedbackKind.hard_bounce,
    ("bounce", "soft"): FeedbackKind.soft_bounce,
    ("complaint", None): FeedbackKind.complaint,
    ("reply", None): FeedbackKind.reply,
}


class SignatureError(ValueError):
    pass


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value a sender writes: ``t=…,v1=…``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, body: bytes, header: str | None, now: float) -> None:
    """Raises SignatureError saying why ``header`` does not vouch for ``body`` at ``now``.

    ``now`` is wall-clock time (``time.time()``), not the app's injectable clock: replay
    protection is about real seconds, and a demo's accelerated clock would refuse everything.
    """
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    timestamp, macs = None, []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            macs.append(value.lower())
    if timestamp is None or not timestamp.isdigit() or not macs:
        raise SignatureError(f"{SIGNATURE_HEADER}: expected t=<unix seconds>,v1=<hex>")
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise SignatureError(f"{SIGNATURE_HEADER}: timestamp is more than {TOLERANCE_SECONDS} s from our time")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, mac) for mac in macs):
        raise SignatureError(f"{SIGNATURE_HEADER}: signature does not match")


def problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Response(json.dumps(body), status=status, mimetype="application/problem+json")


@bp.post("/events")
def events() -> ResponseReturnValue:
    svc = services()
    secret = deliverability_settings(svc.config).webhook_secret
    if not secret:
        return problem(404, "Not Found", "the events webhook is off: set WEBHOOK_SECRET to turn it on")
    if (request.content_length or 0) > MAX_BODY:
        return problem(413, "Payload Too Large", f"at most {MAX_BODY} bytes per request")
    body = request.get_data(cache=False)
    if len(body) > MAX_BODY:
        return problem(413, "Payload Too Large", f"at most {MAX_BODY} bytes per request")
    try:
        verify_signature(secret, body, request.headers.get(SIGNATURE_HEADER), time.time())
    except SignatureError as error:
        return problem(401, "Unauthorized", str(error))
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        return problem(400, "Bad Request", f"body: not JSON ({error})")
    now = svc.clock.now()
    items, errors = parse_events(payload, now)
    if errors:
        return problem(422, "Unprocessable Content", f"{len(errors)} invalid field(s); nothing was applied",
                       errors=errors)
    policy = FeedbackPolicy.of(svc.config)
    results = []
    with svc.db.session() as session:
        for event_id, feedback in items:
            results.append({"id": event_id, "result": apply_feedback(session, feedback, now, policy)})
    counts: dict[str, int] = {}
    for result in results:
        counts[result["result"]] = counts.get(result["result"], 0) + 1
    return {"received": len(results), "counts": counts, "results": results}


def parse_events(payload: Any, now: datetime) -> tuple[list[tuple[str, Feedback]], list[dict[str, str]]]:
    """The batch as Feedback items, or the list of ``{field, message}`` errors."""
    errors = _Errors()
    if not isinstance(payload, Mapping) or not isinstance(payload.get("events"), list):
        errors.add("events", 'expected {"events": [ … ]}')
        return [], errors.found
    events = payload["events"]
    if len(events) > MAX_EVENTS:
        errors.add("events", f"at most {MAX_EVENTS} events per request")
        return [], errors.found
    items: list[tuple[str, Feedback]] = []
    for index, item in enumerate(events):
        parsed = _parse_event(item, f"events[{index}]", now, errors)
        if parsed is not None:
            items.append(parsed)
    return items, errors.found


class _Errors:
    """The ``{field, message}`` errors of one batch, in the order found."""

    def __init__(self) -> None:
        self.found: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.found.append({"field": field, "message": message})


def _parse_event(item: Any, where: str, now: datetime, errors: _Errors) -> tuple[str, Feedback] | None:
    """One event as ``(event id, Feedback)``, or None after adding every error it has."""
    if not isinstance(item, Mapping):
        errors.add(where, "expected an object")
        return None
    before = len(errors.found)
    event_id = item.get("id")
    if not isinstance(event_id, str) or not event_id.strip() or len(event_id) > 200:
        errors.add(f"{where}.id", "required: the provider's event id (a string of 1-200 characters), "
                                  "used to apply each event once")
    kind = _event_kind(item, where, errors)
    message_id, email = _event_target(item, where, errors)
    occurred_at = _instant(item.get("occurred_at"), now)
    if occurred_at is None:
        errors.add(f"{where}.occurred_at", "expected ISO-8601 or unix seconds")
    detail = _event_detail(item, where, errors)
    if len(errors.found) > before or kind is None or occurred_at is None or not isinstance(event_id, str):
        return None
    detail["event_id"] = event_id
    return event_id, Feedback(
        kind=kind, uid=uid_for("webhook", event_id), source="webhook", message_id=message_id or None,
        email=email or None, at=occurred_at, detail=detail,
    )


def _event_kind(item: Mapping[str, Any], where: str, errors: _Errors) -> FeedbackKind | None:
    kind_name, bounce_type = item.get("type"), item.get("bounce_type")
    if kind_name not in ("bounce", "complaint", "reply"):
        errors.add(f"{where}.type", "expected bounce, complaint or reply")
        return None
    if kind_name == "bounce" and bounce_type not in ("hard", "soft"):
        errors.add(f"{where}.bounce_type", "expected hard or soft")
        return None
    return _KINDS[(kind_name, bounce_type if kind_name == "bounce" else None)]


def _event_target(item: Mapping[str, Any], where: str, errors: _Errors) -> tuple[Any, Any]:
    """``(message_id, email)``: which email or address the event is about (at least one is needed)."""
    message_id, email = item.get("message_id"), item.get("email")
    for name, value in (("message_id", message_id), ("email", email)):
        if value is not None and (not isinstance(value, str) or len(value) > 320):
            errors.add(f"{where}.{name}", "expected a string")
    if not message_id and not email:
        errors.add(where, "needs message_id or email to say which email or address the event is about")
    elif email is not None and isinstance(email, str) and "@" not in email:
        errors.add(f"{where}.email", "not an email address")
    return message_id, email


def _event_detail(item: Mapping[str, Any], where: str, errors: _Errors) -> dict[str, str]:
    detail = {}
    for name in ("status", "diagnostic", "feedback_type", "subject"):
        value = item.get(name)
        if value is not None:
            if not isinstance(value, str):
                errors.add(f"{where}.{name}", "expected a string")
            else:
                detail[name] = value[:500]
    return detail


def _instant(value: Any, default: datetime) -> datetime | None:
    if value is None:
        return default
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            return parse_instant(value)
        except ValueError:
            return None
    return None
