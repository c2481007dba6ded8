"""``/api/v1/events``: an event from the future is refused by the injected clock."""
from __future__ import annotations

from .conftest import ApiPlatform


def test_events_in_the_future_are_refused_by_the_injected_clock(api: ApiPlatform) -> None:
    lead_id = api.add_lead("future@example.com")
    now = api.clock.now()
    later = (now.replace(microsecond=0)).isoformat().replace("+00:00", "Z")
    ok = api.call("POST", "/api/v1/events", json={"lead_id": lead_id, "kind": "form", "at": later})
    assert ok.status_code == 201, ok.get_json()
    future = now.replace(year=now.year + 1).isoformat()
    response = api.call("POST", "/api/v1/events", json={"lead_id": lead_id, "kind": "form", "at": future})
    assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "at"
