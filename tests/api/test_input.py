"""Input the API refuses with a problem naming the field, never a 500: odd values (cursor, zone,
dates, UTF-16, NUL, NaN), PATCH's checks, unknown query parameters, request sizes, rate buckets."""
from __future__ import annotations

import io
import json

from sqlalchemy import select

from nurture_mail.auth.accounts import create_user, issue_token
from nurture_mail.models import (
    Enrollment,
    Handoff,
    HandoffState,
    LeadStatus,
)

from .conftest import ApiPlatform

SALES = "sales@northwind.example"


def _handoff_for(api: ApiPlatform, lead_id: int) -> None:
    with api.svc.db.session() as session:
        session.add(Handoff(lead_id=lead_id, reason="manual", state=HandoffState.notified,
                            created_at=api.clock.now(), dossier={}))


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
    handoff = api.handoff("nul-handoff@example.com", SALES)[1]
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


def test_unknown_query_parameters_are_refused(api: ApiPlatform) -> None:
    api.add_lead("q@example.com")
    for path in ("/api/v1/leads?stauts=new", "/api/v1/handoffs?sate=open"):
        response = api.call("GET", path)
        assert response.status_code == 422, path
        assert response.get_json()["errors"][0]["field"] in ("stauts", "sate")


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
