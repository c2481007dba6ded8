"""The CLI faces of the lead, enrollment and handoff services: output, one-line errors, exit codes.

The rules themselves are tested at the service level (tests/leads/test_service.py,
tests/nurture/test_enrollments.py, tests/sales/); here only the mapping.
"""
from __future__ import annotations

from sqlalchemy import select

from nurture_mail.models import Enrollment, Lead, LeadStatus


def _lead(run, email: str, **fields) -> int:
    svc = run.app.extensions["nurture"]
    now = svc.clock.now()
    with svc.db.session() as session:
        lead = Lead(email=email, created_at=now, updated_at=now, status=LeadStatus.new, qualification={},
                    custom_fields={}, hygiene=[], timezone="UTC", consent=True, **fields)
        session.add(lead)
        session.flush()
        return lead.id


def _error(outcome, text: str) -> None:
    code, _out, err = outcome
    assert code == 1 and err.count("\n") == 1 and err.startswith("Error: ") and text in err, outcome


def test_enrollment_transitions_by_email_and_campaign_or_by_id(cli_in_process):
    run = cli_in_process
    _lead(run, "ann@acme.example")
    assert run("enroll", "ann@acme.example", "northwind-security")[0] == 0
    with run.app.extensions["nurture"].db.session() as session:
        eid = session.scalar(select(Enrollment.id))

    code, out, _ = run("enrollment", "pause", "ann@acme.example", "northwind-security", "--reason", "on leave")
    assert code == 0 and out.startswith(f"enrollment {eid}: paused")
    _error(run("enrollment", "pause", str(eid)), "state: only an active enrollment can be paused")
    code, out, _ = run("enrollment", "resume", str(eid))
    assert code == 0 and "active; next touch due" in out
    assert run("enrollment", "exit", str(eid)) == (0, f"enrollment {eid}: exited\n", "")
    _error(run("enrollment", "exit", str(eid)), "already ended (exited)")
    _error(run("enrollment", "exit", "999999"), "no enrollment with id 999999")
    code, _out, err = run("enrollment", "exit", "ann@acme.example")
    assert code == 2 and "CAMPAIGN" in err


def test_lead_update_erase_and_hand_to_nurture(cli_in_process):
    run = cli_in_process
    lead_id = _lead(run, "bo@acme.example", first_name="Bo", company="Acme")

    code, out, _ = run("lead-update", "bo@acme.example", "--set", "employees=250", "--set",
                       "qualification.budget=approved", "--clear", "company")
    assert code == 0 and "bo@acme.example updated (company, employees, qualification)" in out
    _error(run("lead-update", "bo@acme.example", "--set", "status=won"), "status: ")
    _error(run("lead-update", "bo@acme.example", "--set", "employees=lots"), "employees: ")
    assert run("lead-update", "bo@acme.example")[0] == 2

    code, out, _ = run("hand-to-nurture", "bo@acme.example", "northwind-security", "--actor", "rep@acme.example")
    assert code == 0 and "handed to nurture in northwind-security" in out
    _error(run("hand-to-nurture", "bo@acme.example", "nope"), "no campaign 'nope'")

    code, _out, err = run("erase", "bo@acme.example")
    assert code == 2 and "--yes" in err
    assert run("erase", "bo@acme.example", "--yes", "--by", "dpo@acme.example") == (0, f"lead {lead_id} erased\n", "")
    with run.app.extensions["nurture"].db.session() as session:
        assert session.get(Lead, lead_id).erased_at is not None
    _error(run("erase", "bo@acme.example", "--yes"), "no lead with email 'bo@acme.example'")


def test_import_resume_refuses_what_cannot_resume(cli_in_process):
    run = cli_in_process
    _error(run("import-resume", "7"), "no import with id 7")
