"""The lead service's rules, once: patch (checks, merging, status), upsert of an erased lead, erase."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from nurture_mail.leads import service
from nurture_mail.leads.hygiene import Hygiene
from nurture_mail.models import Delivery, DeliveryStatus, Enrollment, EnrollmentState, Lead, LeadStatus
from nurture_mail.nurture import enrollments
from nurture_mail.nurture.tick import run_tick


def _patch(bed, lead_id: int, changes: dict) -> Lead:
    with bed.svc.db.session() as session:
        lead = session.get(Lead, lead_id)
        service.patch_lead(session, lead, changes, bed.clock.now(), by="tests")
        return lead


def _refused(bed, lead_id: int, changes: dict) -> service.LeadError:
    with pytest.raises(service.LeadError) as caught:
        _patch(bed, lead_id, changes)
    return caught.value


def test_patch_checks_values_like_an_upsert_and_merges_by_key(bed):
    lead_id = bed.add_lead("patch@example.com", first_name="Pat", company="Old Co",
                           qualification={"budget": "approved"}, custom_fields={"booth": "B1", "n": 3})
    assert _refused(bed, lead_id, {"custom_fields": {"a": {"b": 1}}}).field == "custom_fields.a"
    assert _refused(bed, lead_id, {"first_name": "Pat\r\nBcc: x@example.com"}).field == "first_name"
    assert _refused(bed, lead_id, {"company": "x" * 201}).field == "company"
    assert _refused(bed, lead_id, {"employees": "lots"}).field == "employees"
    assert _refused(bed, lead_id, {"email": "x@example.com"}).field == "email"

    lead = _patch(bed, lead_id, {"company": "  New Co ", "title": None, "qualification": {"urgency": "Q3"},
                                 "custom_fields": {"booth": None}, "timezone": "Europe/Berlin"})
    assert (lead.company, lead.title, lead.first_name, lead.timezone) == ("New Co", None, "Pat", "Europe/Berlin")
    assert lead.qualification == {"budget": "approved", "urgency": "Q3"}
    assert lead.custom_fields == {"n": 3}
    # free text that never becomes a header on its own is made one line, not refused
    assert _patch(bed, lead_id, {"custom_fields": {"x": "a\x00b\nc"}}).custom_fields == {"n": 3, "x": "ab c"}
    assert lead.updated_at == bed.clock.now()


def test_a_refused_patch_changes_nothing(bed):
    lead_id = bed.add_lead("atomic@example.com", company="Kept")
    _refused(bed, lead_id, {"company": "Changed", "status": "won"})
    with bed.svc.db.session() as session:
        assert session.get(Lead, lead_id).company == "Kept"


@pytest.mark.parametrize("wanted", ["handed_off", "won", "accepted", "nurturing", "unsubscribed", "no-such"])
def test_only_disqualified_may_be_set_by_hand(bed, wanted):
    lead_id = bed.add_lead("status@example.com")
    error = _refused(bed, lead_id, {"status": wanted})
    assert error.field == "status" and not error.conflict


@pytest.mark.parametrize("current,allowed", [(LeadStatus.mql, True), (LeadStatus.lost, True),
                                             (LeadStatus.unsubscribed, False), (LeadStatus.handed_off, False)])
def test_disqualified_from_marketing_statuses_only(bed, current, allowed):
    lead_id = bed.add_lead("dq@example.com", status=current)
    if allowed:
        assert _patch(bed, lead_id, {"status": "disqualified"}).status == LeadStatus.disqualified
    else:
        assert _refused(bed, lead_id, {"status": "disqualified"}).field == "status"


def test_an_erased_lead_is_a_conflict_for_patch(bed):
    lead_id = bed.add_lead("gone@example.com")
    with bed.svc.db.session() as session:
        service.erase_lead(session, session.get(Lead, lead_id), bed.clock.now(), by="tests", redis=None)
    error = _refused(bed, lead_id, {"company": "x"})
    assert error.conflict and error.field == "lead_id"


def test_upsert_names_the_field_of_a_bad_value(bed):
    with bed.svc.db.session() as session, pytest.raises(service.LeadError) as caught:
        service.upsert_lead(session, {"email": "new@example.com", "employees": "lots"}, bed.clock.now(),
                            hygiene=Hygiene.from_config(bed.svc.config), source="api")
    assert caught.value.field == "employees" and not caught.value.conflict


def test_erase_exits_enrollments_cancels_queued_mail_and_forgets_stored_responses(bed):
    lead_id = bed.add_lead("erase.me@example.com", first_name="Eva", company="Acme", consent=True,
                           timezone="UTC", employees=300)
    with bed.svc.db.session() as session:
        lead = session.get(Lead, lead_id)
        enrollment = enrollments.enroll(session, lead, enrollments.find_campaign(session, "northwind-security"),
                                        bed.clock.now(), by="tests")
        due = enrollment.next_send_at
    run_tick(bed.svc, due, enqueue=False)
    redis = bed.svc.redis
    redis.set("nurture:idempotency:test-response", "Eva's data")
    redis.sadd(f"{service.STORED_RESPONSES_INDEX}{lead_id}", "nurture:idempotency:test-response")

    with bed.svc.db.session() as session:
        assert service.erase_lead(session, session.get(Lead, lead_id), due, by="dpo", redis=redis) is True
    with bed.svc.db.session() as session:
        lead = session.get(Lead, lead_id)
        assert lead.email == f"erased-{lead_id}@{service.ERASED_DOMAIN}" and lead.erased_at == due
        assert (lead.first_name, lead.company, lead.consent, lead.employees) == (None, None, False, 300)
        assert session.scalar(select(Enrollment.state).where(Enrollment.lead_id == lead_id)) == EnrollmentState.exited
        statuses = set(session.scalars(select(Delivery.status).where(Delivery.lead_id == lead_id)))
        assert statuses == {DeliveryStatus.cancelled}
    assert not redis.exists("nurture:idempotency:test-response")
    assert not redis.exists(f"{service.STORED_RESPONSES_INDEX}{lead_id}")

    with bed.svc.db.session() as session:  # twice changes nothing
        assert service.erase_lead(session, session.get(Lead, lead_id), due, by="dpo", redis=redis) is False
