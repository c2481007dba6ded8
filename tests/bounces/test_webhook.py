"""The ESP webhook: signatures, replay window, validation, idempotency, and its effects."""
from __future__ import annotations

import json
import time
from dataclasses import fields, replace

import pytest
from sqlalchemy import select

from nurture_mail.bounces.webhook import SIGNATURE_HEADER, sign
from nurture_mail.config import Config
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

SECRET = "whsec-test-0123456789"
URL = "/api/v1/webhooks/events"


def configure(platform, monkeypatch, **settings) -> None:
    """Settings by Config field when Config has it, else by environment variable."""
    names = {f.name for f in fields(Config)}
    on_config = {k: v for k, v in settings.items() if k in names}
    if on_config:
        monkeypatch.setattr(platform.svc, "config", replace(platform.svc.config, **on_config))
    for name, value in settings.items():
        if name not in names:
            monkeypatch.setenv(name.upper(), str(value))


@pytest.fixture
def hook(platform, monkeypatch):
    configure(platform, monkeypatch, webhook_secret=SECRET)
    for name in ("ana", "bob", "cy"):
        platform.add_lead(f"{name}@acme.example")
        platform.enroll(f"{name}@acme.example")
    platform.tick_and_work()
    return platform


def post(platform, payload, *, secret: str = SECRET, timestamp: int | None = None, header: str | None = None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signature = header if header is not None else sign(secret, body, int(time.time()) if timestamp is None
                                                       else timestamp)
    return platform.app.test_client().post(URL, data=body, headers={
        "Content-Type": "application/json", SIGNATURE_HEADER: signature})


def message_id(platform, email: str) -> str:
    [message] = platform.received(email)
    return message.message_id


def lead(platform, email: str) -> Lead:
    with platform.svc.db.session() as s:
        return s.scalar(select(Lead).where(Lead.email == email))


def events(platform, email: str) -> list[Event]:
    with platform.svc.db.session() as s:
        lead_id = s.scalar(select(Lead.id).where(Lead.email == email))
        return list(s.scalars(select(Event).where(Event.lead_id == lead_id).order_by(Event.id)))


def test_bad_missing_and_stale_signatures_are_refused_with_401(hook):
    payload = {"events": [{"id": "e1", "type": "complaint", "email": "ana@acme.example"}]}
    body = json.dumps(payload).encode()
    cases = {
        "wrong secret": post(hook, payload, secret="not-the-secret"),
        "no header": post(hook, payload, header=""),
        "garbage header": post(hook, payload, header="sha256=abc"),
        "stale (6 minutes)": post(hook, payload, timestamp=int(time.time()) - 360),
        "from the future": post(hook, payload, timestamp=int(time.time()) + 360),
        # A valid signature over another body (say, the same header replayed on a new payload).
        "body changed": post(hook, body.replace(b"ana", b"bob"), header=sign(SECRET, body, int(time.time()))),
    }
    for case, response in cases.items():
        assert response.status_code == 401, case
        assert response.mimetype == "application/problem+json", case
        assert response.get_json()["status"] == 401 and response.get_json()["detail"], case
    assert lead(hook, "ana@acme.example").status == LeadStatus.nurturing
    assert events(hook, "ana@acme.example") == []


def test_a_signed_batch_applies_hard_bounce_complaint_soft_bounce_and_reply(hook):
    now = int(time.time())
    payload = {"events": [
        {"id": "evt-1", "type": "bounce", "bounce_type": "hard", "message_id": message_id(hook, "ana@acme.example"),
         "email": "ana@acme.example", "occurred_at": "2026-03-02T14:03:00Z", "status": "5.1.1",
         "diagnostic": "550 5.1.1 user unknown"},
        {"id": "evt-2", "type": "complaint", "email": "bob@acme.example", "occurred_at": now,
         "feedback_type": "abuse"},
        {"id": "evt-3", "type": "bounce", "bounce_type": "soft", "message_id": message_id(hook, "cy@acme.example"),
         "diagnostic": "452 4.2.2 mailbox full"},
        {"id": "evt-4", "type": "reply", "email": "CY@acme.example", "subject": "Re: the cloud risks"},
        {"id": "evt-5", "type": "bounce", "bounce_type": "hard", "email": "stranger@elsewhere.example"},
        {"id": "evt-6", "type": "reply", "email": "stranger@elsewhere.example"},
    ]}
    response = post(hook, payload)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert [r["result"] for r in response.get_json()["results"]] == [
        "applied", "applied", "applied", "applied", "suppressed_address", "unmatched"]

    with hook.svc.db.session() as s:
        suppressed = {(x.email, x.reason, x.source) for x in s.scalars(select(Suppression))}
        by_email = {d.lead.email: d for d in s.scalars(select(Delivery))}
        states = {e.lead.email: e.state for e in s.scalars(select(Enrollment))}
    assert suppressed == {("ana@acme.example", "hard_bounce", "webhook"), ("bob@acme.example", "complaint", "webhook"),
                          ("stranger@elsewhere.example", "hard_bounce", "webhook")}
    assert lead(hook, "ana@acme.example").status == LeadStatus.bounced
    assert lead(hook, "bob@acme.example").status == LeadStatus.unsubscribed
    assert states == {"ana@acme.example": EnrollmentState.exited, "bob@acme.example": EnrollmentState.exited,
                      "cy@acme.example": EnrollmentState.active}
    assert by_email["ana@acme.example"].status == DeliveryStatus.bounced
    assert by_email["bob@acme.example"].status == DeliveryStatus.sent  # a complaint means it was delivered
    assert by_email["cy@acme.example"].status == DeliveryStatus.queued  # soft: retried
    assert lead(hook, "cy@acme.example").soft_bounces == 1

    [ana_event] = events(hook, "ana@acme.example")
    assert ana_event.kind == EventKind.bounce and ana_event.detail["type"] == "hard"
    assert ana_event.at.isoformat() == "2026-03-02T14:03:00+00:00"
    assert ana_event.detail["event_id"] == "evt-1" and ana_event.detail["source"] == "webhook"
    assert [e.kind for e in events(hook, "bob@acme.example")] == [EventKind.complaint]
    assert [e.kind for e in events(hook, "cy@acme.example")] == [EventKind.bounce, EventKind.reply]


def test_the_webhook_is_idempotent_by_event_id(hook):
    payload = {"events": [
        {"id": "evt-77", "type": "bounce", "bounce_type": "soft", "message_id": message_id(hook, "ana@acme.example")},
    ]}
    assert post(hook, payload).get_json()["counts"] == {"applied": 1}
    # The ESP retries (a timeout on its side): a fresh signature, the same event.
    again = post(hook, payload, timestamp=int(time.time()) + 1)
    assert again.status_code == 200 and again.get_json()["counts"] == {"duplicate": 1}
    assert lead(hook, "ana@acme.example").soft_bounces == 1
    assert len(events(hook, "ana@acme.example")) == 1


def test_an_invalid_item_refuses_the_whole_batch_naming_the_field(hook):
    payload = {"events": [
        {"id": "ok-1", "type": "complaint", "email": "ana@acme.example"},
        {"id": "bad-1", "type": "bounce", "bounce_type": "medium", "email": "bob@acme.example"},
        {"type": "reply"},
    ]}
    response = post(hook, payload)
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    fields_named = {e["field"] for e in response.get_json()["errors"]}
    assert fields_named == {"events[1].bounce_type", "events[2].id", "events[2]"}
    assert lead(hook, "ana@acme.example").status == LeadStatus.nurturing  # nothing half-applied

    assert post(hook, b"{not json").status_code == 400
    assert post(hook, {"event": []}).get_json()["errors"][0]["field"] == "events"


def test_a_forged_message_id_matches_nothing(hook):
    real = message_id(hook, "ana@acme.example")
    forged = real.replace(real[real.index(".") + 1:real.index("@")], "0" * 16)
    response = post(hook, {"events": [{"id": "f1", "type": "bounce", "bounce_type": "hard", "message_id": forged}]})
    assert response.get_json()["results"][0]["result"] == "unmatched"
    assert lead(hook, "ana@acme.example").status == LeadStatus.nurturing


def test_the_webhook_is_off_without_a_secret(platform, monkeypatch):
    configure(platform, monkeypatch, webhook_secret="")
    response = post(platform, {"events": []})
    assert response.status_code == 404 and "WEBHOOK_SECRET" in response.get_json()["detail"]


def test_reports_about_one_lead_in_one_batch_see_each_other(hook):
    """A hard bounce, then a late soft bounce of the same email: the second must not revive it."""
    mid = message_id(hook, "ana@acme.example")
    response = post(hook, {"events": [
        {"id": "h1", "type": "bounce", "bounce_type": "hard", "message_id": mid},
        {"id": "s1", "type": "bounce", "bounce_type": "soft", "message_id": mid},
    ]})
    assert response.get_json()["counts"] == {"applied": 2}
    with hook.svc.db.session() as s:
        [delivery] = s.scalars(select(Delivery).join(Lead).where(Lead.email == "ana@acme.example"))
        [enrollment] = s.scalars(select(Enrollment).join(Lead).where(Lead.email == "ana@acme.example"))
        assert delivery.status == DeliveryStatus.bounced
        assert (enrollment.state, enrollment.touches_sent) == (EnrollmentState.exited, 1)
    assert events(hook, "ana@acme.example")[-1].detail["retry"] == "not retried: delivery is bounced"
