"""The enrollment state machine, once: enroll, pause, resume, exit (which cancels queued mail)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from nurture_mail.exceptions import InvalidInput, NotFound
from nurture_mail.models import Delivery, DeliveryStatus, Enrollment, EnrollmentState, Lead, LeadStatus
from nurture_mail.nurture import enrollments
from nurture_mail.nurture.suppression import suppress
from nurture_mail.nurture.tick import run_tick

CAMPAIGN = "northwind-security"


def _enroll(bed, email: str) -> tuple[int, int]:
    lead_id = bed.add_lead(email)
    with bed.svc.db.session() as session:
        lead = session.get(Lead, lead_id)
        enrollment = enrollments.enroll(session, lead, enrollments.find_campaign(session, CAMPAIGN),
                                        bed.clock.now(), by="rep@northwind.example")
        assert enrollment.enrolled_by == "rep@northwind.example"
        return lead_id, enrollment.id


def _do(bed, action, enrollment_id: int, **kwargs) -> Enrollment:
    with bed.svc.db.session() as session:
        return action(session, session.get(Enrollment, enrollment_id), bed.clock.now(), by="tests", **kwargs)


def _deliveries(bed, lead_id: int) -> list[DeliveryStatus]:
    with bed.svc.db.session() as session:
        return list(session.scalars(select(Delivery.status).where(Delivery.lead_id == lead_id)))


def test_pause_and_resume_move_between_active_and_paused_only(nurture_bed):
    _, eid = _enroll(nurture_bed, "pause@example.com")
    paused = _do(nurture_bed, enrollments.pause, eid, reason="on vacation")
    assert (paused.state, paused.next_send_at, paused.state_reason) == (EnrollmentState.paused, None, "on vacation")
    with pytest.raises(enrollments.EnrollmentError) as again:
        _do(nurture_bed, enrollments.pause, eid)
    assert again.value.field == "state" and again.value.conflict
    resumed = _do(nurture_bed, enrollments.resume, eid)
    assert resumed.state == EnrollmentState.active and resumed.next_send_at is not None
    with pytest.raises(enrollments.EnrollmentError) as not_paused:
        _do(nurture_bed, enrollments.resume, eid)
    assert not_paused.value.field == "state"


def test_resume_checks_the_lead_again(nurture_bed):
    lead_id, eid = _enroll(nurture_bed, "resume@example.com")
    _do(nurture_bed, enrollments.pause, eid)
    with nurture_bed.svc.db.session() as session:
        session.get(Lead, lead_id).status = LeadStatus.unsubscribed
    with pytest.raises(enrollments.ResumeRefused) as refused:
        _do(nurture_bed, enrollments.resume, eid)
    assert refused.value.field == "lead_id" and refused.value.conflict
    with nurture_bed.svc.db.session() as session:
        assert session.get(Enrollment, eid).state == EnrollmentState.paused


def test_exit_cancels_queued_deliveries_of_that_campaign_and_ends_once(nurture_bed):
    lead_id, eid = _enroll(nurture_bed, "exit@example.com")
    with nurture_bed.svc.db.session() as session:
        due = session.get(Enrollment, eid).next_send_at
    run_tick(nurture_bed.svc, due, enqueue=False)
    assert _deliveries(nurture_bed, lead_id) == [DeliveryStatus.queued]

    exited = _do(nurture_bed, enrollments.exit_enrollment, eid, reason="asked us to stop")
    assert exited.state == EnrollmentState.exited and exited.next_send_at is None
    assert exited.state_reason == "asked us to stop" and exited.ended_at is not None
    assert _deliveries(nurture_bed, lead_id) == [DeliveryStatus.cancelled]
    with pytest.raises(enrollments.EnrollmentError) as ended:
        _do(nurture_bed, enrollments.exit_enrollment, eid)
    assert ended.value.field == "state" and "already ended" in ended.value.message


def test_enrolling_again_reactivates_an_exited_enrollment(nurture_bed):
    lead_id, eid = _enroll(nurture_bed, "again@example.com")
    _do(nurture_bed, enrollments.exit_enrollment, eid)
    with nurture_bed.svc.db.session() as session:
        lead = session.get(Lead, lead_id)
        again = enrollments.enroll(session, lead, enrollments.find_campaign(session, CAMPAIGN),
                                   nurture_bed.clock.now(), by="tests")
        assert (again.id, again.state, again.ended_at) == (eid, EnrollmentState.active, None)


def test_enroll_refuses_suppressed_and_unknown_topics(nurture_bed):
    lead_id = nurture_bed.add_lead("suppressed@example.com")
    with nurture_bed.svc.db.session() as session:
        suppress(session, "suppressed@example.com", nurture_bed.clock.now(), reason="unsubscribe", source="link")
    with nurture_bed.svc.db.session() as session, pytest.raises(InvalidInput) as caught:
        enrollments.enroll(session, session.get(Lead, lead_id), enrollments.find_campaign(session, CAMPAIGN),
                           nurture_bed.clock.now(), by="tests")
    assert caught.value.field == "email"
    other = nurture_bed.add_lead("topics@example.com")
    with nurture_bed.svc.db.session() as session, pytest.raises(InvalidInput) as unknown:
        enrollments.enroll(session, session.get(Lead, other), enrollments.find_campaign(session, CAMPAIGN),
                           nurture_bed.clock.now(), by="tests", knows=["no-such-topic"])
    assert unknown.value.field == "knows"


def test_find_enrollment_by_id_or_by_email_and_campaign(nurture_bed):
    _, eid = _enroll(nurture_bed, "find@example.com")
    with nurture_bed.svc.db.session() as session:
        assert enrollments.find_enrollment(session, email="FIND@example.com", campaign=CAMPAIGN).id == eid
        assert enrollments.find_enrollment(session, enrollment_id=eid).id == eid
        with pytest.raises(NotFound):
            enrollments.find_enrollment(session, enrollment_id=eid + 1000)
        with pytest.raises(NotFound):
            enrollments.find_enrollment(session, email="nobody@example.com", campaign=CAMPAIGN)
