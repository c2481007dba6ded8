"""Sales actions: reject as not ready (back to nurture, known steps stay skipped), bad fit, won,
lost, and sales handing a lead to nurture with what the prospect already knows."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from support.sales import get_handoff, hand_off

from nurture_mail.models import (
    Enrollment,
    EnrollmentState,
    Handoff,
    HandoffState,
    Lead,
    LeadStatus,
)
from nurture_mail.sales import actions
from nurture_mail.sales.actions import HandoffActionError

CSPM = "CSPM in plain English (no acronyms after this one)"
BUCKET = "What one open storage bucket really costs"


def act(platform, handoff_id, func, *args):
    with platform.svc.db.session() as session:
        return func(session, session.get(Handoff, handoff_id), *args)


def lead_of(platform, email) -> Lead:
    with platform.svc.db.session() as session:
        return session.scalar(select(Lead).where(Lead.email == email))


def test_not_ready_goes_back_to_nurture_and_known_steps_stay_skipped(platform, team, clock):
    email = "back@acme.example"
    platform.add_lead(email, first_name="Bo", company="Acme", region="AMER")
    enrollment_id = platform.enroll(email, knows=("misconfiguration-costs", "shared-responsibility"))
    platform.tick_and_work()
    assert [m.subject for m in platform.received(to=email)] == ["Bo, the 5 cloud risks mid-market teams underestimate"]
    handoff_id = hand_off(platform, email)
    platform.work()
    assert platform.enrollment(enrollment_id).state == EnrollmentState.exited

    clock.advance(hours=1)
    with platform.svc.db.session() as session:
        actions.reject(session, platform.svc, session.get(Handoff, handoff_id), "ava@sales.example", "api",
                       "not_ready", "no budget until next year", clock.now())
    handoff = get_handoff(platform, handoff_id)
    assert (handoff.state, handoff.reject_kind, handoff.first_action_at) == (HandoffState.rejected, "not_ready",
                                                                            clock.now())
    [reject] = [a for a in handoff.actions if a.action == "reject"]
    assert reject.detail == {"kind": "not_ready", "reason": "no budget until next year",
                             "campaign": "northwind-security", "enrollment_id": enrollment_id}
    assert lead_of(platform, email).status == LeadStatus.recycled
    enrollment = platform.enrollment(enrollment_id)  # the same enrollment, reactivated
    assert enrollment.state == EnrollmentState.active and enrollment.touches_sent == 1

    # The next touch: not the welcome again (delivered), not the bucket email (its topics are known).
    platform.tick_and_work(clock.now() + timedelta(days=3))
    subjects = [m.subject for m in platform.received(to=email)]
    assert subjects[1:] == [CSPM]
    assert not any(s.startswith(BUCKET) for s in subjects)
    assert lead_of(platform, email).status == LeadStatus.nurturing


def test_bad_fit_disqualifies_and_nothing_more_is_sent(platform, team, clock):
    email = "bad@acme.example"
    platform.add_lead(email, region="AMER")
    platform.enroll(email)
    platform.tick_and_work()
    handoff_id = hand_off(platform, email)
    act(platform, handoff_id, lambda s, h: actions.reject(s, platform.svc, h, "ava@sales.example", "api", "bad_fit",
                                                          "competitor's employee", clock.now()))
    assert lead_of(platform, email).status == LeadStatus.disqualified
    platform.tick_and_work(clock.now() + timedelta(days=30))
    assert len(platform.received(to=email)) == 1
    # A disqualified lead is never handed off again.
    assert hand_off(platform, email) is None


def test_transitions_and_inputs_are_checked(platform, team, clock):
    platform.add_lead("x@acme.example", region="AMER")
    handoff_id = hand_off(platform, "x@acme.example")
    with pytest.raises(HandoffActionError) as caught:
        act(platform, handoff_id, lambda s, h: actions.reject(s, platform.svc, h, "ava", "api", "later", "x",
                                                              clock.now()))
    assert caught.value.field == "kind" and "not_ready, bad_fit" in str(caught.value)
    for value in ("-1", "abc", None, "NaN", True):
        with pytest.raises(HandoffActionError) as caught:
            act(platform, handoff_id, lambda s, h, v=value: actions.mark_won(s, h, "ava", "api", v, clock.now()))
        assert caught.value.field == "value"
    with pytest.raises(HandoffActionError) as caught:
        act(platform, handoff_id, lambda s, h: actions.mark_lost(s, h, "ava", "api", "  ", clock.now()))
    assert caught.value.field == "reason"
    with pytest.raises(HandoffActionError) as caught:
        act(platform, handoff_id, lambda s, h: actions.accept(s, h, "ava", "fax", clock.now()))
    assert caught.value.field == "via"
    assert get_handoff(platform, handoff_id).first_action_at is None  # nothing recorded by refusals

    act(platform, handoff_id, lambda s, h: actions.accept(s, h, "ava@sales.example", "web", clock.now()))
    with pytest.raises(HandoffActionError) as caught:
        act(platform, handoff_id, lambda s, h: actions.accept(s, h, "ava@sales.example", "web", clock.now()))
    assert caught.value.field == "state" and "is accepted" in str(caught.value)
    clock.advance(days=2)
    act(platform, handoff_id, lambda s, h: actions.mark_lost(s, h, "ava@sales.example", "api", "chose a competitor",
                                                             clock.now()))
    handoff = get_handoff(platform, handoff_id)
    assert (handoff.state, handoff.lost_reason, handoff.closed_at) == (HandoffState.lost, "chose a competitor",
                                                                       clock.now())
    assert handoff.first_action_at == clock.now() - timedelta(days=2)  # the first action, not the last
    assert [a.action for a in handoff.actions] == ["accept", "lost"]
    assert lead_of(platform, "x@acme.example").status == LeadStatus.lost
    with pytest.raises(HandoffActionError):
        act(platform, handoff_id, lambda s, h: actions.mark_won(s, h, "ava", "api", "10", clock.now()))

    platform.add_lead("y@acme.example", region="AMER")
    won = hand_off(platform, "y@acme.example")
    act(platform, won, lambda s, h: actions.mark_won(s, h, "cy@sales.example", "api", Decimal("0"), clock.now()))
    assert get_handoff(platform, won).deal_value == Decimal("0.00")


def test_sales_hands_a_lead_to_nurture_declaring_what_it_knows(platform, team, clock):
    platform.add_lead("met@acme.example", first_name="Meg", company="Acme")
    lead = lead_of(platform, "met@acme.example")
    with pytest.raises(HandoffActionError) as caught:
        with platform.svc.db.session() as session:
            actions.hand_to_nurture(session, platform.svc, session.get(Lead, lead.id), "northwind-security",
                                    ["cloud-risk-landscape", "quantum-crypto"], "ava@sales.example", clock.now())
    assert caught.value.field == "known_topics" and "quantum-crypto" in str(caught.value)
    assert "cloud-risk-landscape" not in str(caught.value)
    with pytest.raises(HandoffActionError) as caught:
        with platform.svc.db.session() as session:
            actions.hand_to_nurture(session, platform.svc, session.get(Lead, lead.id), "no-such-track", [],
                                    "ava@sales.example", clock.now())
    assert caught.value.field == "campaign"
    with platform.svc.db.session() as session:
        enrollment = actions.hand_to_nurture(session, platform.svc, session.get(Lead, lead.id), "northwind-security",
                                             ["cloud-risk-landscape"], "ava@sales.example", clock.now())
        enrollment_id = enrollment.id
    with platform.svc.db.session() as session:
        enrollment = session.get(Enrollment, enrollment_id)
        assert enrollment.state == EnrollmentState.active and enrollment.enrolled_by == "ava@sales.example"
    platform.tick_and_work()
    [first] = platform.received(to="met@acme.example")
    assert first.subject == f"{BUCKET} Acme"  # the welcome teaches what Meg knows: skipped
