"""Regressions of the API review: IDOR on handoffs, GDPR erase leftovers, idempotent replays after
erasure, events for erased leads, 500s on odd input (cursor, zone, dates, UTF-16, NUL, NaN), PATCH
validation, the field named by problems, unknown query parameters, request sizes, rate buckets."""
from __future__ import annotations

import io
import json

from sqlalchemy import select

from nurture_mail.auth.accounts import create_user, issue_token
from nurture_mail.models import (
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Handoff,
    HandoffAction,
    HandoffAssignment,
    HandoffState,
    ImportJob,
    ImportRowResult,
    KnowledgeEvidence,
    KnowledgeLevel,
    LeadScore,
    LeadStatus,
    SalesRep,
    Step,
)

from .conftest import ApiPlatform

SALES = "sales@northwind.example"


def _rep(api: ApiPlatform, email: str) -> int:
    with api.svc.db.session() as session:
        rep = session.scalar(select(SalesRep).where(SalesRep.email == email))
        if rep is None:
            rep = SalesRep(email=email, name=email.split("@")[0], created_at=api.clock.now())
            session.add(rep)
            session.flush()
        return rep.id


def _handoff(api: ApiPlatform, email: str, rep: str | None) -> int:
    lead_id = api.add_lead(email)
    rep_id = _rep(api, rep) if rep else None
    now = api.clock.now()
    with api.svc.db.session() as session:
        handoff = Handoff(lead_id=lead_id, reason="manual", state=HandoffState.notified, created_at=now,
                          notified_at=now, dossier={"lead": email}, rep_id=rep_id)
        session.add(handoff)
        session.flush()
        return handoff.id


# ---------------------------------------------------------------------- 1. IDOR


def test_a_rep_acts_only_on_handoffs_they_hold_admin_on_any(api: ApiPlatform) -> None:
    mine = _handoff(api, "mine@example.com", SALES)
    other = _handoff(api, "other@example.com", "closer@northwind.example")
    shared = _handoff(api, "shared@example.com", "closer@northwind.example")
    unassigned = _handoff(api, "nobody@example.com", None)
    with api.svc.db.session() as session:  # an open assignment (escalation) also lets the rep act
        session.add(HandoffAssignment(handoff_id=shared, rep_id=_rep(api, SALES), role="escalation",
                                      assigned_at=api.clock.now()))

    for handoff_id in (other, unassigned):
        for action, body in (("accept", None), ("won", {"value": "1.00"}), ("lost", {"reason": "x"}),
                             ("reject", {"kind": "bad_fit", "reason": "x"})):
            refused = api.call("POST", f"/api/v1/handoffs/{handoff_id}/{action}", role="sales", json=body)
            assert refused.status_code == 403, (handoff_id, action, refused.get_json())
            assert refused.get_json()["errors"][0]["field"] == "handoff_id"
    with api.svc.db.session() as session:
        assert session.get(Handoff, other).state == HandoffState.notified
        assert session.scalar(select(HandoffAction.id).where(HandoffAction.handoff_id == other)) is None

    assert api.call("POST", f"/api/v1/handoffs/{mine}/accept", role="sales").status_code == 200
    assert api.call("POST", f"/api/v1/handoffs/{shared}/accept", role="sales").status_code == 200
    admin = api.call("POST", f"/api/v1/handoffs/{other}/accept", role="admin")
    assert admin.status_code == 200 and admin.get_json()["actions"][-1]["actor"] == "admin@northwind.example"
    # an ended assignment no longer counts
    with api.svc.db.session() as session:
        for assignment in session.scalars(select(HandoffAssignment).where(HandoffAssignment.handoff_id == shared)):
            assignment.ended_at = api.clock.now()
    assert api.call("POST", f"/api/v1/handoffs/{shared}/won", role="sales",
                    json={"value": "5.00"}).status_code == 403


# ---------------------------------------------------------------------- 2-4. erasure


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


# ---------------------------------------------------------------------- 5. no 500s on odd input


def test_odd_input_is_a_problem_naming_the_field_not_a_500(api: ApiPlatform) -> None:
    lead_id = api.add_lead("odd@example.com")
    import base64

    huge = base64.urlsafe_b64encode(json.dumps({"after": 2**31}).encode()).decode().rstrip("=")
    for path in (f"/api/v1/leads?cursor={huge}", f"/api/v1/handoffs?cursor={huge}"):
        response = api.call("GET", path)
        assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "cursor", path
    for zone in ("America", "Etc", "Europe/", "../../etc/passwd"):
        response = api.call("PATCH", f"/api/v1/leads/{lead_id}", json={"timezone": zone})
        assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "timezone", zone
    for stamp in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00Z"):
        response = api.call("GET", "/api/v1/leads", query_string={"updated_since": stamp})
        assert response.status_code == 422, response.get_json()
        assert response.get_json()["errors"][0]["field"] == "updated_since"
        response = api.call("POST", "/api/v1/events", json={"lead_id": lead_id, "kind": "form", "at": stamp})
        assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "at"
    upload = api.call("POST", "/api/v1/imports", data={"file": (io.BytesIO(b"\xff\xfe\x00\x00garbage"), "u.csv")},
                      content_type="multipart/form-data")
    assert upload.status_code == 422, upload.get_json()
    assert upload.get_json()["errors"][0]["field"] == "file"


def test_nul_characters_are_refused_everywhere(api: ApiPlatform) -> None:
    lead_id = api.add_lead("nul@example.com")
    cases = [
        ("PATCH", f"/api/v1/leads/{lead_id}", {"json": {"company": "A\x00B"}}, "company"),
        ("PATCH", f"/api/v1/leads/{lead_id}", {"json": {"custom_fields": {"a": "b\x00"}}}, "custom_fields"),
        ("PATCH", f"/api/v1/leads/{lead_id}", {"json": {"qualification": {"budget": "x\x00"}}},
         "qualification.budget"),
        ("POST", "/api/v1/leads", {"json": {"email": "n@example.com", "title": "\x00"}}, "title"),
        ("GET", "/api/v1/leads", {"query_string": {"email": "a\x00@example.com"}}, "email"),
        ("GET", "/api/v1/leads", {"query_string": {"source": "\x00"}}, "source"),
        ("GET", "/api/v1/leads", {"query_string": {"campaign": "x\x00"}}, "campaign"),
        ("POST", "/api/v1/events", {"json": {"lead_id": lead_id, "kind": "form", "topics": ["a\x00"]}}, "topics.0"),
        ("POST", "/api/v1/events", {"json": {"lead_id": lead_id, "kind": "form", "detail": {"t": "\x00"}}},
         "detail"),
        ("POST", "/api/v1/enrollments", {"json": {"lead_id": lead_id, "campaign": "x\x00"}}, "campaign"),
    ]
    for method, path, kwargs, field in cases:
        response = api.call(method, path, **kwargs)
        assert response.status_code == 422, (path, kwargs, response.get_json())
        assert field in [e["field"] for e in response.get_json()["errors"]], (path, kwargs, response.get_json())
    assert api.call("GET", "/api/v1/campaigns/a%00b").status_code == 404
    assert api.call("GET", f"/api/v1/campaigns/a%00b/journey/{lead_id}").status_code == 404
    handoff = _handoff(api, "nul-handoff@example.com", SALES)
    response = api.call("POST", f"/api/v1/handoffs/{handoff}/lost", role="sales", json={"reason": "x\x00"})
    assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "reason"


def test_nan_and_infinity_are_not_json(api: ApiPlatform) -> None:
    lead_id = api.add_lead("nan@example.com")
    for method, path, raw in (
        ("PATCH", f"/api/v1/leads/{lead_id}", '{"custom_fields": {"score": NaN}}'),
        ("POST", "/api/v1/leads", '{"email": "nan2@example.com", "custom_fields": {"x": Infinity}}'),
        ("POST", "/api/v1/events", '{"lead_id": ' + str(lead_id) + ', "kind": "form", "detail": {"v": -Infinity}}'),
    ):
        response = api.call(method, path, data=raw, content_type="application/json")
        assert response.status_code == 400, (path, response.get_json())
        assert response.mimetype == "application/problem+json"


# ---------------------------------------------------------------------- 7. PATCH = upsert's checks


def test_patch_refusals_are_problems_naming_the_field(api: ApiPlatform) -> None:
    """The rules are tested in tests/leads/test_service.py; here only their mapping."""
    lead_id = api.add_lead("patch@example.com", first_name="Pat")
    nested = api.call("PATCH", f"/api/v1/leads/{lead_id}", json={"custom_fields": {"a": {"b": 1}}})
    assert nested.status_code == 422 and nested.headers["Content-Type"] == "application/problem+json"
    assert nested.get_json()["errors"][0]["field"].startswith("custom_fields")
    status = api.call("PATCH", f"/api/v1/leads/{lead_id}", json={"status": "won"})
    assert status.status_code == 422 and status.get_json()["errors"][0]["field"] == "status"
    assert status.get_json()["detail"].startswith("status: status won is set by the system")
    ok = api.call("PATCH", f"/api/v1/leads/{lead_id}", json={"custom_fields": {"booth": "B1"}, "company": " Acme "})
    assert ok.status_code == 200 and ok.get_json()["company"] == "Acme"


# ---------------------------------------------------------------------- 9-10. problems name the right field


def test_problems_name_the_field_that_was_sent(api: ApiPlatform) -> None:
    lead_id = api.add_lead("field@example.com", consent=True)
    unknown = api.call("POST", "/api/v1/enrollments", json={"lead_id": lead_id, "campaign": "nope"})
    assert unknown.status_code == 404 and unknown.get_json()["errors"][0]["field"] == "campaign"
    bounced = api.add_lead("bounced@example.com", status=LeadStatus.bounced)
    by_id = api.call("POST", "/api/v1/enrollments", json={"lead_id": bounced, "campaign": "northwind-security"})
    assert by_id.status_code == 409 and by_id.get_json()["errors"][0]["field"] == "lead_id", by_id.get_json()
    by_email = api.call("POST", "/api/v1/enrollments", json={"email": "bounced@example.com",
                                                             "campaign": "northwind-security"})
    assert by_email.status_code == 409 and by_email.get_json()["errors"][0]["field"] == "email"
    with api.svc.db.session() as session:
        assert session.scalar(select(Enrollment.id).where(Enrollment.lead_id == bounced)) is None
    held = api.add_lead("held@example.com", consent=True)
    _handoff_for(api, held)
    back = api.call("POST", f"/api/v1/leads/{held}/hand-to-nurture", role="sales",
                    json={"campaign": "northwind-security"})
    assert back.status_code == 409 and back.get_json()["errors"][0]["field"] == "lead_id", back.get_json()
    knows = api.call("POST", f"/api/v1/leads/{lead_id}/hand-to-nurture", role="sales",
                     json={"campaign": "northwind-security", "knows": ["no-such-topic"]})
    assert knows.status_code == 422 and knows.get_json()["errors"][0]["field"] == "knows"


def _handoff_for(api: ApiPlatform, lead_id: int) -> None:
    with api.svc.db.session() as session:
        session.add(Handoff(lead_id=lead_id, reason="manual", state=HandoffState.notified,
                            created_at=api.clock.now(), dossier={}))


def test_unknown_query_parameters_are_refused(api: ApiPlatform) -> None:
    api.add_lead("q@example.com")
    for path in ("/api/v1/leads?stauts=new", "/api/v1/handoffs?sate=open"):
        response = api.call("GET", path)
        assert response.status_code == 422, path
        assert response.get_json()["errors"][0]["field"] in ("stauts", "sate")


# ---------------------------------------------------------------------- 6, 13, 16


def test_request_size_limits(api: ApiPlatform) -> None:
    big = {"email": "big@example.com", "custom_fields": {"blob": "x" * (1024 * 1024 + 10)}}
    response = api.call("POST", "/api/v1/leads", json=big)
    assert response.status_code == 413 and response.mimetype == "application/problem+json"
    assert api.app.config["MAX_CONTENT_LENGTH"] >= 50 * 1024 * 1024
    # an upload larger than 1 MB (but under the upload limit) is accepted
    rows = "email;company\n" + "".join(f"u{i}@example.com;{'C' * 40}\n" for i in range(25000))
    upload = api.call("POST", "/api/v1/imports", data={"file": (io.BytesIO(rows.encode()), "big.csv")},
                      content_type="multipart/form-data")
    assert upload.status_code == 202, upload.get_json()


def test_events_in_the_future_are_refused_by_the_injected_clock(api: ApiPlatform) -> None:
    lead_id = api.add_lead("future@example.com")
    now = api.clock.now()
    later = (now.replace(microsecond=0)).isoformat().replace("+00:00", "Z")
    ok = api.call("POST", "/api/v1/events", json={"lead_id": lead_id, "kind": "form", "at": later})
    assert ok.status_code == 201, ok.get_json()
    future = now.replace(year=now.year + 1).isoformat()
    response = api.call("POST", "/api/v1/events", json={"lead_id": lead_id, "kind": "form", "at": future})
    assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "at"


def test_rate_limit_is_per_user_not_per_token(make_app, sqlite_url, clock) -> None:
    from .conftest import build_platform

    api = build_platform(make_app(sqlite_url, api_write_rate_per_minute=3), clock)
    with api.svc.db.session() as session:
        user = create_user(session, "two.tokens@northwind.example", "Two", "marketer", clock.now())
        first = issue_token(session, user, "a", clock.now()).secret
        second = issue_token(session, user, "b", clock.now()).secret
    statuses = []
    for i in range(4):
        token = first if i % 2 == 0 else second
        response = api.client.post("/api/v1/leads", headers={"Authorization": f"Bearer {token}"},
                                   json={"email": f"r{i}@example.com"})
        statuses.append(response.status_code)
    assert statuses == [201, 201, 201, 429], statuses


def test_resume_of_a_refused_lead_is_a_conflict(api: ApiPlatform) -> None:
    lead_id = api.add_lead("resume@example.com", consent=True)
    enrollment = api.call("POST", "/api/v1/enrollments", json={"lead_id": lead_id, "campaign": "northwind-security"})
    assert enrollment.status_code == 201, enrollment.get_json()
    eid = enrollment.get_json()["id"]
    assert api.call("POST", f"/api/v1/enrollments/{eid}/pause").status_code == 200
    with api.svc.db.session() as session:
        from nurture_mail.models import Lead

        session.get(Lead, lead_id).status = LeadStatus.unsubscribed
    response = api.call("POST", f"/api/v1/enrollments/{eid}/resume")
    assert response.status_code == 409 and response.get_json()["errors"][0]["field"] == "lead_id"
    with api.svc.db.session() as session:
        assert session.get(Enrollment, eid).state == EnrollmentState.paused


# ---------------------------------------------------------------------- 17-18


def test_journey_subject_is_rendered_for_the_lead(api: ApiPlatform) -> None:
    lead_id = api.add_lead("subject@example.com", first_name="Sofia", company="Sofico", consent=True)
    journey = api.call("GET", f"/api/v1/campaigns/northwind-security/journey/{lead_id}", role="viewer")
    assert journey.status_code == 200, journey.get_json()
    touches = journey.get_json()["touches"]
    assert touches
    for touch in touches:
        assert "{{" not in touch["subject"] and touch["subject_template"]
    assert any("Sofia" in t["subject"] or "Sofico" in t["subject"] for t in touches), touches
    assert any("{{" in t["subject_template"] for t in touches)


def test_lead_timeline_is_bounded(api: ApiPlatform) -> None:
    from datetime import timedelta

    from nurture_mail.models import Event, EventKind

    lead_id = api.add_lead("busy@example.com")
    now = api.clock.now()
    with api.svc.db.session() as session:
        session.add_all([Event(lead_id=lead_id, kind=EventKind.open, at=now - timedelta(minutes=i), detail={})
                         for i in range(130)])
    body = api.call("GET", f"/api/v1/leads/{lead_id}").get_json()
    assert len(body["timeline"]) == 100 and body["timeline_omitted"] == 30
    assert body["timeline"][-1]["at"] >= body["timeline"][0]["at"]
