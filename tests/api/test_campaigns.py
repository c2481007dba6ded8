"""``/api/v1/campaigns``: the journey preview renders each subject for the lead."""
from __future__ import annotations

from .conftest import ApiPlatform


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
