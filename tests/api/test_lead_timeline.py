"""``/api/v1/leads/{id}/timeline``: bounded, however long the lead's history."""
from __future__ import annotations

from .conftest import ApiPlatform


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
