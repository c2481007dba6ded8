"""start_handoff: nurture stops, routing rotates fairly, declines are idempotent, jobs wait for the commit."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from support.sales import get_handoff, hand_off, rep_email, sync_team

from nurture_mail.models import (
    Enrollment,
    EnrollmentState,
    Handoff,
    HandoffAssignment,
    HandoffState,
    Lead,
    LeadStatus,
    SalesRep,
)
from nurture_mail.sales.decision import HandoffDecision
from nurture_mail.sales.handoff import start_handoff
from nurture_mail.sales.team import sync_sales_team


def test_routing_rotates_least_recently_assigned_and_skips_unavailable(platform, team, clock):
    emails = [f"lead{n}@acme.example" for n in range(7)]
    for email in emails:
        platform.add_lead(email, region="AMER")
    assigned = []
    for email in emails[:6]:
        handoff_id = hand_off(platform, email)
        assigned.append(rep_email(platform, get_handoff(platform, handoff_id).rep_id))
        clock.advance(minutes=1)
    # Ben is unavailable: Ava and Cy alternate, Ava first (both never assigned, lower id first).
    assert assigned == ["ava@sales.example", "cy@sales.example"] * 3
    with platform.svc.db.session() as session:
        roles = set(session.scalars(select(HandoffAssignment.role)))
        ava = session.scalar(select(SalesRep).where(SalesRep.email == "ava@sales.example"))
        assert roles == {"incoming"}
        assert ava.last_assigned_at == clock.now() - timedelta(minutes=2)
    # Ben comes back: never assigned, so he is next.
    team.write_text(team.read_text().replace("available: false", "available: true"))
    sync_team(platform, team)
    assert rep_email(platform, get_handoff(platform, hand_off(platform, emails[6])).rep_id) == "ben@sales.example"


def test_no_closer_available_goes_to_the_territory_owner_then_the_manager(platform, team, clock):
    team.write_text(team.read_text().replace("incoming: true,", "incoming: true, available: false,")
                    .replace("available: false, available: false", "available: false"))
    sync_team(platform, team)
    platform.add_lead("emea@acme.example", region="EMEA")
    platform.add_lead("apac@acme.example", region="APAC")
    emea = get_handoff(platform, hand_off(platform, "emea@acme.example"))
    apac = get_handoff(platform, hand_off(platform, "apac@acme.example"))
    assert rep_email(platform, emea.rep_id) == "eve@sales.example"
    assert [a.role for a in emea.assignments] == ["territory"]
    assert rep_email(platform, apac.rep_id) == "mo@sales.example"  # no territory covers APAC
    assert [a.role for a in apac.assignments] == ["escalation"]


def test_handoff_stops_nurture_and_a_rerun_declines(platform, team, clock):
    platform.add_lead("ada@acme.example", region="AMER")
    enrollment_id = platform.enroll("ada@acme.example")
    platform.tick_and_work()
    assert len(platform.received(to="ada@acme.example")) == 1
    handoff_id = hand_off(platform, "ada@acme.example", detail="clicked 'Book a 20-minute demo'")
    assert handoff_id is not None
    enrollment = platform.enrollment(enrollment_id)
    assert enrollment.state == EnrollmentState.exited and enrollment.next_send_at is None
    assert enrollment.state_reason == "handed off to sales: clicked 'Book a 20-minute demo'"
    handoff = get_handoff(platform, handoff_id)
    assert handoff.state == HandoffState.notified
    assert handoff.ownership_ends_at == clock.now() + timedelta(days=14)
    # Monday 14:00 UTC, 4 business hours in 09–17 UTC: 3 on Monday, 1 on Tuesday.
    assert handoff.sla_due_at == clock.now().replace(hour=10) + timedelta(days=1)
    with platform.svc.db.session() as session:
        assert session.scalar(select(Lead.status).where(Lead.email == "ada@acme.example")) == LeadStatus.handed_off
    # The same decision again (a re-read batch, a second worker): declined, nothing doubled.
    assert hand_off(platform, "ada@acme.example") is None
    with platform.svc.db.session() as session:
        assert len(session.scalars(select(Handoff)).all()) == 1
        assert len(session.scalars(select(HandoffAssignment)).all()) == 1
    # And nurture sends nothing more.
    platform.tick_and_work(clock.now() + timedelta(days=10))
    assert len(platform.received(to="ada@acme.example")) == 1


def test_leads_that_must_never_reach_sales_are_declined(platform, team, clock, caplog):
    platform.add_lead("info@acme.example", hygiene=["role_account"])
    platform.add_lead("gone@acme.example")
    platform.add_lead("unsub@acme.example")
    platform.add_lead("dq@acme.example")
    with platform.svc.db.session() as session:
        session.scalar(select(Lead).where(Lead.email == "gone@acme.example")).erased_at = clock.now()
        session.scalar(select(Lead).where(Lead.email == "unsub@acme.example")).status = LeadStatus.unsubscribed
        session.scalar(select(Lead).where(Lead.email == "dq@acme.example")).status = LeadStatus.disqualified
    caplog.set_level("INFO", logger="nurture_mail.sales.handoff")
    for email in ("info@acme.example", "gone@acme.example", "unsub@acme.example", "dq@acme.example"):
        assert hand_off(platform, email) is None
    text = caplog.text
    assert "failed hygiene (role_account)" in text and "erased" in text
    assert "it is unsubscribed" in text and "it is disqualified" in text
    assert len(platform.svc.queue) == 0


def test_jobs_are_enqueued_only_after_the_commit(platform, team, clock):
    platform.add_lead("tx@acme.example", region="AMER")
    queue = platform.svc.queue
    with platform.svc.db.Session() as session:
        lead = session.scalar(select(Lead).where(Lead.email == "tx@acme.example"))
        decision = HandoffDecision(lead.id, None, "manual", "asked by phone", None, clock.now())
        assert start_handoff(platform.svc, session, decision, clock.now()) is not None
        assert len(queue) == 0  # not before the commit
        session.rollback()
    assert len(queue) == 0  # rolled back: nobody is told about a handoff that does not exist
    with platform.svc.db.session() as session:
        assert session.scalars(select(Handoff)).all() == []
        lead = session.scalar(select(Lead).where(Lead.email == "tx@acme.example"))
        start_handoff(platform.svc, session, HandoffDecision(lead.id, None, "manual", "asked", None, clock.now()),
                      clock.now())
        assert len(queue) == 0
    assert len(queue) == 1
    [job] = queue.get_jobs()
    assert job.func_name == "nurture_mail.jobs.sales.notify" and job.args[0] == "email"


def test_sync_is_idempotent_and_retires_reps_removed_from_the_file(platform, team_file, clock):
    with platform.svc.db.session() as session:
        first = sync_sales_team(session, team_file, clock.now())
    assert len(first.created) == 6 and len(first.territories_created) == 2
    with platform.svc.db.session() as session:
        again = sync_sales_team(session, team_file, clock.now())
    assert not again.changed and len(again.unchanged) == 6
    team_file.write_text(team_file.read_text().replace(
        "  - {email: cy@sales.example, name: Cy Closer, incoming: true, manager: mo@sales.example}\n", ""))
    with platform.svc.db.session() as session:
        third = sync_sales_team(session, team_file, clock.now())
        cy = session.scalar(select(SalesRep).where(SalesRep.email == "cy@sales.example"))
        ava = session.scalar(select(SalesRep).where(SalesRep.email == "ava@sales.example"))
        assert third.retired == ["cy@sales.example"] and not cy.incoming and not cy.available
        assert ava.manager.email == "mo@sales.example"


def test_enrollments_of_every_campaign_stop(platform, team, clock):
    platform.add_lead("two@acme.example", region="AMER")
    enrollment_id = platform.enroll("two@acme.example")
    with platform.svc.db.session() as session:
        session.get(Enrollment, enrollment_id).state = EnrollmentState.paused
    hand_off(platform, "two@acme.example")
    assert platform.enrollment(enrollment_id).state == EnrollmentState.exited
