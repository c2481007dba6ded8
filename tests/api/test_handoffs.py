"""``/api/v1/handoffs``: a rep acts only on the handoffs they hold; an admin on any."""
from __future__ import annotations

from sqlalchemy import select

from nurture_mail.models import (
    Handoff,
    HandoffAction,
    HandoffAssignment,
    HandoffState,
)

from .conftest import ApiPlatform

SALES = "sales@northwind.example"


def test_a_rep_acts_only_on_handoffs_they_hold_admin_on_any(api: ApiPlatform) -> None:
    mine = api.handoff("mine@example.com", SALES)[1]
    other = api.handoff("other@example.com", "closer@northwind.example")[1]
    shared = api.handoff("shared@example.com", "closer@northwind.example")[1]
    unassigned = api.handoff("nobody@example.com", None)[1]
    with api.svc.db.session() as session:  # an open assignment (escalation) also lets the rep act
        session.add(HandoffAssignment(handoff_id=shared, rep_id=api.rep(SALES), role="escalation",
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
