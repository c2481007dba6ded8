"""GDPR erase through the API: every trace removed, stored Idempotency-Key replays included."""
from __future__ import annotations

import json

from sqlalchemy import select

from nurture_mail.models import (
    Delivery,
    DeliveryStatus,
    Enrollment,
    Handoff,
    HandoffAction,
    HandoffState,
    ImportJob,
    ImportRowResult,
    KnowledgeEvidence,
    KnowledgeLevel,
    LeadScore,
    Step,
)

from .conftest import ApiPlatform

SALES = "sales@northwind.example"


def test_erase_removes_every_trace_and_stored_replays(api: ApiPlatform) -> None:
    email = "trace.me@example.com"
    created = api.call("POST", "/api/v1/leads", headers={"Idempotency-Key": "create-trace"},
                       json={"email": email, "first_name": "Trace", "company": "Tracer Inc", "consent": True})
    assert created.status_code == 201, created.get_json()
    lead_id = created.get_json()["id"]
    event = api.call("POST", "/api/v1/events", role="marketer", headers={"Idempotency-Key": "event-trace"},
                     json={"email": email, "kind": "form", "detail": {"title": "Trace's pricing form"}})
    assert event.status_code == 201, event.get_json()
    first = api.call("POST", "/api/v1/enrollments", json={"lead_id": lead_id, "campaign": "northwind-security"})
    assert first.status_code == 201, first.get_json()
    enrollment_id = first.get_json()["id"]
    assert api.call("POST", f"/api/v1/enrollments/{enrollment_id}/exit",
                    json={"reason": "Trace asked us to stop"}).status_code == 200
    now = api.clock.now()
    with api.svc.db.session() as session:
        enrollment = session.get(Enrollment, enrollment_id)
        step = session.scalar(select(Step).where(Step.campaign_id == enrollment.campaign_id).order_by(Step.position))
        session.add(Delivery(enrollment_id=enrollment_id, step_id=step.id, lead_id=lead_id,
                             status=DeliveryStatus.failed, scheduled_for=now, next_attempt_at=now,
                             last_error=f"550 <{email}> mailbox unavailable"))
        session.add(KnowledgeEvidence(lead_id=lead_id, topic="cspm", level=KnowledgeLevel.known, source="sales",
                                      declared_by=SALES, note="Trace told me on the phone", at=now))
        score = session.get(LeadScore, lead_id) or LeadScore(lead_id=lead_id, fit=20, engagement=5, computed_at=now)
        score.fit_breakdown = [{"rule": "title", "text": "Trace is CISO at Tracer Inc"}]
        score.engagement_breakdown = [{"rule": "form", "text": "Trace's pricing form"}]
        session.add(score)
        handoff = Handoff(lead_id=lead_id, reason="manual", reason_detail="Trace wants a demo",
                          state=HandoffState.lost, created_at=now, dossier={"name": "Trace"},
                          reject_reason="Trace is a student", lost_reason="Trace chose a rival")
        session.add(handoff)
        session.flush()
        session.add(HandoffAction(handoff_id=handoff.id, action="lost", actor=SALES, via="api",
                                  detail={"reason": "Trace chose a rival"}, at=now))
        job = ImportJob(filename="show.csv", status="done", created_at=now)
        session.add(job)
        session.flush()
        # a rejected row has no lead: it is found by its address
        session.add(ImportRowResult(import_id=job.id, row=2, email=email.upper(), outcome="rejected"))
        session.add(ImportRowResult(import_id=job.id, row=3, email=email, outcome="updated", lead_id=lead_id))

    erased = api.call("POST", f"/api/v1/leads/{lead_id}/erase")
    assert erased.status_code == 200, erased.get_json()
    body = api.call("GET", f"/api/v1/leads/{lead_id}").get_json()
    assert "Trace" not in json.dumps(body) and "trace.me" not in json.dumps(body)
    assert body["scores"]["fit_breakdown"] == [] and body["scores"]["engagement_breakdown"] == []
    assert body["enrollments"][0]["state_reason"] is None
    with api.svc.db.session() as session:
        assert session.scalar(select(KnowledgeEvidence.note).where(KnowledgeEvidence.lead_id == lead_id)) is None
        assert session.scalar(select(Delivery.last_error).where(Delivery.lead_id == lead_id)) is None
        handoff = session.scalar(select(Handoff).where(Handoff.lead_id == lead_id))
        assert handoff.dossier == {"erased": True} and handoff.reason_detail is None
        assert handoff.reject_reason is None and handoff.lost_reason is None
        assert all(a.detail == {} for a in handoff.actions)
        assert list(session.scalars(select(ImportRowResult.email))) == [None, None]
    detail = api.call("GET", f"/api/v1/handoffs/{handoff.id}").get_json()
    assert "Trace" not in json.dumps(detail)

    # 3. a replay of the first POST must not give the person's data back: it runs again (and is refused)
    replay = api.call("POST", "/api/v1/leads", headers={"Idempotency-Key": "create-trace"},
                      json={"email": email, "first_name": "Trace", "company": "Tracer Inc", "consent": True})
    assert replay.headers.get("Idempotent-Replayed") is None
    assert "Tracer Inc" not in replay.get_data(as_text=True) or replay.get_json()["id"] != lead_id
    event_replay = api.call("POST", "/api/v1/events", role="marketer", headers={"Idempotency-Key": "event-trace"},
                            json={"email": email, "kind": "form", "detail": {"title": "Trace's pricing form"}})
    assert event_replay.headers.get("Idempotent-Replayed") is None
    assert api.svc.redis.exists(f"nurture:idempotency:lead:{lead_id}") in (0, 1)

    # 4. no events for an erased lead, by id
    refused = api.call("POST", "/api/v1/events", json={"lead_id": lead_id, "kind": "form"})
    assert refused.status_code == 409 and refused.get_json()["errors"][0]["field"] == "lead_id"


def test_replay_works_until_the_lead_is_erased(api: ApiPlatform) -> None:
    body = {"email": "replay@example.com", "first_name": "Rita"}
    first = api.call("POST", "/api/v1/leads", headers={"Idempotency-Key": "k1"}, json=body)
    again = api.call("POST", "/api/v1/leads", headers={"Idempotency-Key": "k1"}, json=body)
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    lead_id = first.get_json()["id"]
    assert api.call("POST", f"/api/v1/leads/{lead_id}/erase").status_code == 200
    after = api.call("POST", "/api/v1/leads", headers={"Idempotency-Key": "k1"}, json=body)
    assert after.headers.get("Idempotent-Replayed") is None
    assert "Rita" not in json.dumps(after.get_json()) or after.get_json()["id"] != lead_id
