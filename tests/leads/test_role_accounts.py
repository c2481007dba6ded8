"""Role accounts match on the leading tokens of the local part (docs/import.md "Hygiene")."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from nurture_mail.leads.hygiene import Hygiene
from nurture_mail.leads.imports import run_import
from nurture_mail.models import Enrollment, Lead

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = Hygiene.load(ROOT / "campaigns" / "hygiene.yaml")


@pytest.mark.parametrize("address", [
    "info@acme.example", "it-team@acme.example", "sales.team@acme.example", "info-uk@acme.example",
    "info_uk@acme.example", "Support.EMEA@acme.example", "no-reply@acme.example", "no.reply.eu@acme.example",
    "noreply-billing@acme.example", "info+expo@acme.example", "sales+emea.team@acme.example",
    "hr..team@acme.example",
])
def test_role_accounts_match_on_leading_local_part_tokens(address):
    assert SHIPPED.check(address.lower()) == ["role_account"]


@pytest.mark.parametrize("address", [
    "maria.lopez@acme.example", "steve.jobs@acme.example", "anna.sales@acme.example", "mark.press@acme.example",
    "itzel@acme.example", "information.officer.jones@acme.example", "teamwork@acme.example", "no@acme.example",
])
def test_people_are_not_role_accounts(address):
    assert SHIPPED.check(address) == []


def test_a_listed_entry_with_separators_matches_whatever_separators_the_address_uses():
    rules = Hygiene.from_rules({"role_accounts": ["Do_Not.Reply", "sales-team"]})
    assert rules.check("do-not-reply@x.example") == ["role_account"]
    assert rules.check("do.not.reply.uk@x.example") == ["role_account"]
    assert rules.check("sales.team.emea@x.example") == ["role_account"]
    assert rules.check("sales@x.example") == []


def test_it_team_in_the_shipped_sample_is_flagged_not_enrolled(bed):
    data = (ROOT / "samples" / "leads.csv").read_bytes()
    import_id = bed.create(data, filename="leads.csv", campaign_slug="northwind-security")
    run_import(bed.svc, import_id)
    lead = bed.lead("it-team@albionhousing.example")
    assert lead.hygiene == ["role_account"]
    reasons = bed.reasons(import_id)
    row = data.decode("utf-8").splitlines().index(
        next(line for line in data.decode("utf-8").splitlines() if line.startswith("it-team@"))) + 1
    assert reasons[row] == "role account (shared mailbox); lead created, not enrolled"
    with bed.svc.db.session() as session:
        assert session.scalar(select(Enrollment).where(Enrollment.lead_id == lead.id)) is None
        assert session.scalar(select(Lead.id).where(Lead.email == "it-team@albionhousing.example")) == lead.id
