"""Enrollments, campaigns and journey previews, events, imports and handoffs through the API."""
from __future__ import annotations

import csv
import io

from sqlalchemy import select

from nurture_mail.models import Enrollment, EnrollmentState, Knowledge
from nurture_mail.runtime import run_worker

from .conftest import ApiPlatform


def test_enroll_with_known_topics_then_pause_resume_exit(api: ApiPlatform) -> None:
    lead_id = api.add_lead("ena@example.com")
    campaign = api.call("GET", "/api/v1/campaigns/northwind-security", role="viewer").get_json()
    topic = next(t for step in campaign["steps"] for t in step["teaches"])
    response = api.call("POST", "/api/v1/enrollments", role="marketer",
                        json={"email": "ENA@example.com", "campaign": "northwind-security", "knows": [topic]})
    assert response.status_code == 201, response.get_json()
    enrollment = response.get_json()
    assert enrollment["state"] == "active" and enrollment["enrolled_by"] == "marketer@northwind.example"
    assert response.headers["Location"] == f"/api/v1/enrollments/{enrollment['id']}"
    with api.svc.db.session() as session:
        assert session.scalar(select(Knowledge.level).where(Knowledge.lead_id == lead_id,
                                                            Knowledge.topic == topic)).value == "known"
    journey = api.call("GET", f"/api/v1/campaigns/northwind-security/journey/{lead_id}", role="viewer").get_json()
    assert journey["knowledge"][topic] == "known"
    assert journey["touches"] and all(topic not in t["step_key"] or True for t in journey["touches"])
    assert any(topic in s["reason"] or "know" in s["reason"] for s in journey["skipped"]), journey["skipped"]

    eid = enrollment["id"]
    paused = api.call("POST", f"/api/v1/enrollments/{eid}/pause", json={"reason": "on vacation"})
    assert paused.status_code == 200 and paused.get_json()["state"] == "paused"
    assert paused.get_json()["next_send_at"] is None and paused.get_json()["state_reason"] == "on vacation"
    assert api.call("POST", f"/api/v1/enrollments/{eid}/pause", json={}).status_code == 409
    resumed = api.call("POST", f"/api/v1/enrollments/{eid}/resume", json={})
    assert resumed.get_json()["state"] == "active" and resumed.get_json()["next_send_at"] is not None
    exited = api.call("POST", f"/api/v1/enrollments/{eid}/exit", json={})
    assert exited.get_json()["state"] == "exited" and exited.get_json()["ended_at"] is not None
    assert api.call("POST", f"/api/v1/enrollments/{eid}/exit", json={}).status_code == 409
    assert api.call("GET", f"/api/v1/enrollments/{eid}", role="sales").get_json()["state"] == "exited"

    bad = api.call("POST", "/api/v1/enrollments", json={"lead_id": lead_id, "campaign": "northwind-security",
                                                        "knows": ["no-such-topic"]})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "knows"
    both = api.call("POST", "/api/v1/enrollments", json={"lead_id": lead_id, "email": "ena@example.com",
                                                         "campaign": "northwind-security"})
    assert both.status_code == 422 and both.get_json()["errors"][0]["field"] == "lead_id"
    assert api.call("POST", "/api/v1/enrollments", json={"lead_id": lead_id, "campaign": "nope"}).status_code == 404


def test_campaign_list_and_unknowns(api: ApiPlatform) -> None:
    listed = api.call("GET", "/api/v1/campaigns", role="viewer").get_json()
    assert "northwind-security" in [c["slug"] for c in listed]
    assert api.call("GET", "/api/v1/campaigns/nope").status_code == 404
    assert api.call("GET", "/api/v1/campaigns/northwind-security/journey/99999").status_code == 404


def test_events_teach_topics_once_per_uid_and_queue_a_rescore(api: ApiPlatform) -> None:
    lead_id = api.add_lead("ev@example.com")
    topic = next(t for s in api.call("GET", "/api/v1/campaigns/northwind-security").get_json()["steps"]
                 for t in s["teaches"])
    body = {"email": "ev@example.com", "kind": "form", "topics": [topic], "uid": "crm-123",
            "detail": {"title": "Pricing form"}, "at": "2026-03-02T10:00:00Z"}
    first = api.call("POST", "/api/v1/events", role="marketer", json=body)
    assert first.status_code == 201, first.get_json()
    again = api.call("POST", "/api/v1/events", role="marketer", json=body)
    assert again.get_json()["id"] == first.get_json()["id"]
    assert first.get_json()["at"].startswith("2026-03-02T10:00:00")
    assert api.svc.queue.count >= 1
    detail = api.call("GET", f"/api/v1/leads/{lead_id}").get_json()
    assert detail["knowledge"][topic] == "known"
    bad = api.call("POST", "/api/v1/events", json={"lead_id": lead_id, "kind": "tweet"})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "kind"
    bad = api.call("POST", "/api/v1/events", json={"lead_id": lead_id, "kind": "form", "topics": ["nope"]})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "topics"
    run_worker(api.app, burst=True, logging_level="WARNING")  # the queued rescore runs cleanly


def test_import_upload_progress_and_report(api: ApiPlatform) -> None:
    data = ("email;first_name;company\n"
            "ana@example.com;Ana;Acme\n"
            "not-an-address;Bob;Bobco\n"
            "info@example.com;Info;Acme\n"
            "=HYPERLINK(\"http://x\")@example.com;Evil;=1+1\n").encode("utf-8-sig")
    response = api.call("POST", "/api/v1/imports", role="marketer",
                        data={"file": (io.BytesIO(data), "show.csv"), "lead_source": "tradeshow"},
                        content_type="multipart/form-data")
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert job["status"] == "queued" and job["filename"] == "show.csv" and job["total_rows"] == 4
    run_worker(api.app, burst=True, logging_level="WARNING")
    done = api.call("GET", f"/api/v1/imports/{job['id']}", role="viewer").get_json()
    assert done["status"] == "done" and done["processed_rows"] == 4, done
    report = api.call("GET", done["report_url"], role="viewer")
    assert report.status_code == 200 and report.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(report.get_data(as_text=True))))
    assert len(rows) == 5
    assert not any(cell.startswith(("=", "+", "@")) for row in rows for cell in row)
    missing = api.call("POST", "/api/v1/imports", data={"lead_source": "x"}, content_type="multipart/form-data")
    assert missing.status_code == 422 and missing.get_json()["errors"][0]["field"] == "file"
    bad_mapping = api.call("POST", "/api/v1/imports", data={"file": (io.BytesIO(data), "a.csv"), "mapping": "{"},
                           content_type="multipart/form-data")
    assert bad_mapping.status_code == 422 and bad_mapping.get_json()["errors"][0]["field"] == "mapping"
    bad_campaign = api.call("POST", "/api/v1/imports", data={"file": (io.BytesIO(data), "a.csv"), "campaign": "x"},
                            content_type="multipart/form-data")
    assert bad_campaign.status_code == 422 and bad_campaign.get_json()["errors"][0]["field"] == "campaign"
    assert api.call("GET", "/api/v1/imports/4242").status_code == 404


def test_handoff_list_get_and_actions(api: ApiPlatform) -> None:
    _, first = api.handoff("h1@example.com")
    _, second = api.handoff("h2@example.com")
    lead3, third = api.handoff("h3@example.com")
    page = api.call("GET", "/api/v1/handoffs?limit=2", role="viewer").get_json()
    assert [h["id"] for h in page["items"]] == [first, second] and page["next_cursor"]
    rest = api.call("GET", f"/api/v1/handoffs?limit=2&cursor={page['next_cursor']}").get_json()
    assert [h["id"] for h in rest["items"]] == [third] and rest["next_cursor"] is None

    accepted = api.call("POST", f"/api/v1/handoffs/{first}/accept", role="sales")
    assert accepted.status_code == 200, accepted.get_json()
    body = accepted.get_json()
    assert body["state"] == "accepted" and body["actions"][-1]["via"] == "api"
    assert body["actions"][-1]["actor"] == "sales@northwind.example"
    assert api.call("POST", f"/api/v1/handoffs/{first}/accept", role="sales").status_code == 409
    won = api.call("POST", f"/api/v1/handoffs/{first}/won", role="sales", json={"value": "12500.50"})
    assert won.status_code == 200 and won.get_json()["deal_value"] == "12500.50"
    lost = api.call("POST", f"/api/v1/handoffs/{second}/lost", role="sales", json={"reason": "budget cut"})
    assert lost.get_json()["state"] == "lost" and lost.get_json()["lost_reason"] == "budget cut"
    bad = api.call("POST", f"/api/v1/handoffs/{third}/reject", role="sales", json={"kind": "meh", "reason": "x"})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "kind"
    rejected = api.call("POST", f"/api/v1/handoffs/{third}/reject", role="sales",
                        json={"kind": "bad_fit", "reason": "a student"})
    assert rejected.status_code == 200 and rejected.get_json()["state"] == "rejected"
    assert api.call("GET", "/api/v1/handoffs?state=rejected").get_json()["items"][0]["id"] == third
    assert api.call("GET", f"/api/v1/handoffs/{third}").get_json()["reject_reason"] == "a student"
    assert api.call("GET", "/api/v1/handoffs/9999").status_code == 404


def test_hand_to_nurture(api: ApiPlatform) -> None:
    lead_id = api.add_lead("back@example.com")
    response = api.call("POST", f"/api/v1/leads/{lead_id}/hand-to-nurture", role="sales",
                        json={"campaign": "northwind-security"})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["state"] == "active" and response.get_json()["enrolled_by"] == "sales@northwind.example"
    with api.svc.db.session() as session:
        assert session.scalar(select(Enrollment.state).where(Enrollment.lead_id == lead_id)) == EnrollmentState.active
    bad = api.call("POST", f"/api/v1/leads/{lead_id}/hand-to-nurture", role="sales",
                   json={"campaign": "northwind-security", "knows": ["nope"]})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "knows"


def test_an_api_exit_cancels_the_enrollments_queued_deliveries(api: ApiPlatform) -> None:
    from nurture_mail.models import Delivery, DeliveryStatus
    from nurture_mail.nurture.tick import run_tick

    lead_id = api.add_lead("queued@example.com", consent=True)
    created = api.call("POST", "/api/v1/enrollments", json={"lead_id": lead_id, "campaign": "northwind-security"})
    eid = created.get_json()["id"]
    with api.svc.db.session() as session:
        due = session.get(Enrollment, eid).next_send_at
    run_tick(api.svc, due, enqueue=False)
    with api.svc.db.session() as session:
        assert list(session.scalars(select(Delivery.status).where(Delivery.lead_id == lead_id))) == [
            DeliveryStatus.queued]

    exited = api.call("POST", f"/api/v1/enrollments/{eid}/exit", json={"reason": "asked us to stop"})
    assert exited.status_code == 200 and exited.get_json()["state"] == "exited"
    with api.svc.db.session() as session:
        assert list(session.scalars(select(Delivery.status).where(Delivery.lead_id == lead_id))) == [
            DeliveryStatus.cancelled]
    again = api.call("POST", f"/api/v1/enrollments/{eid}/exit", json={})
    assert again.status_code == 409 and again.headers["Content-Type"] == "application/problem+json"
    assert again.get_json()["errors"] == [{"field": "state", "message": "the enrollment has already ended (exited)"}]
    assert api.call("POST", "/api/v1/enrollments/999999/exit", json={}).status_code == 404
