"""``/api/v1/enrollments``: resuming an enrollment of a lead that may not be nurtured is a conflict."""
from __future__ import annotations

from nurture_mail.models import (
    Enrollment,
    EnrollmentState,
    LeadStatus,
)

from .conftest import ApiPlatform


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
