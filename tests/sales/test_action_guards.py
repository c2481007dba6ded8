"""What sales actions refuse: enrolling leads sales holds, flagged or erased leads (unless sales
hands them back), recycling an erased lead, a stale second action; a double submit applies once."""
from __future__ import annotations

import threading

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
from nurture_mail.nurture.enroll import EnrollmentRefused, enroll, enrollment_blocker, find_campaign
from nurture_mail.sales import actions
from nurture_mail.sales.actions import HandoffActionError


def test_enroll_refuses_sales_held_and_flagged_leads_unless_sales_overrides(platform, team, clock):
    platform.add_lead("held@acme.example", region="AMER")
    platform.add_lead("info@acme.example", hygiene=["role_account"])
    platform.add_lead("fresh@acme.example")
    enrollment_id = platform.enroll("held@acme.example")
    handoff_id = hand_off(platform, "held@acme.example")
    with platform.svc.db.session() as session:
        held = session.scalar(select(Lead).where(Lead.email == "held@acme.example"))
        flagged = session.scalar(select(Lead).where(Lead.email == "info@acme.example"))
        assert "handed_off" in enrollment_blocker(held) and "failed hygiene (role_account)" in enrollment_blocker(flagged)
        campaign = find_campaign(session, "northwind-security")
        with pytest.raises(EnrollmentRefused) as refused:
            enroll(session, held, campaign, clock.now())
        assert "handed_off" in refused.value.reason and refused.value.field == "email"
        with pytest.raises(EnrollmentRefused, match="failed hygiene"):
            enroll(session, flagged, campaign, clock.now(), override=True)  # override never lifts hygiene
        session.rollback()
    assert platform.enrollment(enrollment_id).state == EnrollmentState.exited
    platform.enroll("fresh@acme.example")  # plain new leads: unchanged
    # Sales closes the deal, then declares the customer should be nurtured: allowed.
    with platform.svc.db.session() as session:
        actions.mark_won(session, session.get(Handoff, handoff_id), "ava@sales.example", "api", "100", clock.now())
    with platform.svc.db.session() as session:
        lead = session.scalar(select(Lead).where(Lead.email == "held@acme.example"))
        enrollment = actions.hand_to_nurture(session, platform.svc, lead, "northwind-security", [], "ava",
                                             clock.now())
        assert enrollment.state == EnrollmentState.active and lead.status == LeadStatus.nurturing
        flagged = session.scalar(select(Lead).where(Lead.email == "info@acme.example"))
        with pytest.raises(HandoffActionError, match=r"info@acme.example cannot be nurtured: it failed hygiene"):
            actions.hand_to_nurture(session, platform.svc, flagged, "northwind-security", [], "ava", clock.now())
        session.rollback()


def test_reject_not_ready_still_recycles_but_not_an_erased_lead(platform, team, clock):
    platform.add_lead("gone@acme.example", region="AMER")
    platform.enroll("gone@acme.example")
    handoff_id = hand_off(platform, "gone@acme.example")
    with platform.svc.db.session() as session:
        session.scalar(select(Lead).where(Lead.email == "gone@acme.example")).erased_at = clock.now()
    with platform.svc.db.session() as session:
        with pytest.raises(HandoffActionError, match="erased"):
            actions.reject(session, platform.svc, session.get(Handoff, handoff_id), "ava", "api", "not_ready",
                           "later", clock.now())
        session.rollback()
    assert get_handoff(platform, handoff_id).state == HandoffState.notified


def test_a_stale_second_action_is_refused(platform, team, clock):
    platform.add_lead("dup@acme.example", region="AMER")
    handoff_id = hand_off(platform, "dup@acme.example")
    with platform.svc.db.Session() as stale:
        seen = stale.get(Handoff, handoff_id)
        assert seen.state == HandoffState.notified
        with platform.svc.db.session() as session:  # the rep marks it won meanwhile
            actions.mark_won(session, session.get(Handoff, handoff_id), "ava@sales.example", "web", "500",
                             clock.now())
        with pytest.raises(HandoffActionError, match="is won"):
            actions.reject(stale, platform.svc, seen, "mo@sales.example", "api", "bad_fit", "no budget",
                           clock.now())
        stale.rollback()
    handoff = get_handoff(platform, handoff_id)
    assert handoff.state == HandoffState.won and [a.action for a in handoff.actions] == ["won"]
    with platform.svc.db.session() as session:
        assert session.scalar(select(Lead.status).where(Lead.email == "dup@acme.example")) == LeadStatus.won


def test_double_submit_in_two_threads_applies_once(platform, team, clock):
    platform.add_lead("twice@acme.example", region="AMER")
    handoff_id = hand_off(platform, "twice@acme.example")
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def submit(kind: str):
        try:
            with platform.svc.db.session() as session:
                handoff = session.get(Handoff, handoff_id)
                barrier.wait()
                if kind == "won":
                    actions.mark_won(session, handoff, "ava@sales.example", "web", "10", clock.now())
                else:
                    actions.mark_lost(session, handoff, "mo@sales.example", "api", "went elsewhere", clock.now())
            outcomes.append(kind)
        except HandoffActionError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=submit, args=(k,)) for k in ("won", "lost")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 2 and sum(isinstance(o, HandoffActionError) for o in outcomes) == 1
    handoff = get_handoff(platform, handoff_id)
    assert len(handoff.actions) == 1 and handoff.state.value == handoff.actions[0].action


def test_enrollments_of_a_plain_lead_unchanged(platform, team, clock):
    """The default stays: new, nurturing and recycled leads enroll as before."""
    platform.add_lead("plain@acme.example")
    platform.add_lead("back@acme.example")
    with platform.svc.db.session() as session:
        session.scalar(select(Lead).where(Lead.email == "back@acme.example")).status = LeadStatus.recycled
    for email in ("plain@acme.example", "back@acme.example"):
        enrollment = platform.enrollment(platform.enroll(email))
        assert enrollment.state == EnrollmentState.active
    with platform.svc.db.session() as session:
        assert set(session.scalars(select(Lead.status))) == {LeadStatus.nurturing}
        assert len(session.scalars(select(Enrollment)).all()) == 2
