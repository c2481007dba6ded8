"""``upsert_lead`` (the API's create-or-update by email): same merge policy and hygiene as the import."""
from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from nurture_mail.addresses import InvalidEmail, normalize_email
from nurture_mail.leads.errors import LeadValueError
from nurture_mail.leads.hygiene import DEFAULT_RULES, Hygiene
from nurture_mail.leads.upsert import upsert_lead

HYGIENE = Hygiene.from_rules(DEFAULT_RULES)


def test_create_update_unchanged(bed):
    now = bed.clock.now()
    with bed.svc.db.session() as session:
        lead, outcome = upsert_lead(session, {"email": " Ann@Acme.Example ", "first_name": "Ann", "employees": "1,200",
                                              "budget": "approved", "custom_fields": {"crm_id": 42}},
                                    now, hygiene=HYGIENE, source="api")
        assert outcome == "created" and lead.id and lead.email == "ann@acme.example"
        assert (lead.employees, lead.lead_source, lead.hygiene) == (1200, "api", [])
        assert lead.qualification == {"budget": "approved"} and lead.custom_fields == {"crm_id": 42}
    bed.clock.advance(hours=1)
    with bed.svc.db.session() as session:
        lead, outcome = upsert_lead(session, {"email": "ann@acme.example", "first_name": None, "last_name": "Lee",
                                              "company": "", "qualification": {"urgency": "renewal"},
                                              "lead_source": "crm"},
                                    bed.clock.now(), hygiene=HYGIENE, source="api")
        assert outcome == "updated"
        assert (lead.first_name, lead.last_name, lead.lead_source) == ("Ann", "Lee", "api")
        assert lead.qualification == {"budget": "approved", "urgency": "renewal"}
        assert lead.updated_at == bed.clock.now() and lead.created_at == now
    with bed.svc.db.session() as session:
        _, outcome = upsert_lead(session, {"email": "ann@acme.example", "first_name": "Ann"}, bed.clock.now(),
                                 hygiene=HYGIENE, source="api")
        assert outcome == "unchanged"


def test_flags(bed):
    bed.suppress("gone@former.example")
    with bed.svc.db.session() as session:
        info, _ = upsert_lead(session, {"email": "info@acme.example"}, bed.clock.now(), hygiene=HYGIENE, source="api")
        gone, _ = upsert_lead(session, {"email": "gone@former.example"}, bed.clock.now(), hygiene=HYGIENE,
                              source="api")
        assert info.hygiene == ["role_account"] and not info.is_clean
        assert gone.hygiene == ["suppressed"]


@pytest.mark.parametrize("values, field", [
    ({}, "email"), ({"email": "nope"}, "email"), ({"email": 5}, "email"),
    ({"email": "a@x.example", "employees": "lots"}, "employees"),
    ({"email": "a@x.example", "employees": -3}, "employees"),
    ({"email": "a@x.example", "timezone": "Mars/Olympus"}, "timezone"),
    ({"email": "a@x.example", "first_name": "x" * 121}, "first_name"),
    ({"email": "a@x.example", "qualification": {"budgt": "x"}}, "qualification.budgt"),
    ({"email": "a@x.example", "custom_fields": {"a": [1]}}, "custom_fields.a"),
    ({"email": "a@x.example", "status": "won"}, "status"),
    ({"email": "a@x.example", "company": {"name": "x"}}, "company"),
    ({"email": "a@x.example", "first_name": "a\x00b"}, "first_name"),
    ({"email": "a@x.example", "timezone": "a" * 5000}, "timezone"),
    ({"email": "a@x.example", "custom_fields": {"x": float("nan")}}, "custom_fields.x"),
    ({"email": "a\x00@x.example"}, "email"),
])
def test_bad_values_name_the_field_and_write_nothing(bed, values, field):
    from sqlalchemy import func, select

    from nurture_mail.models import Lead

    with bed.svc.db.session() as session:
        with pytest.raises(LeadValueError) as error:
            upsert_lead(session, values, bed.clock.now(), hygiene=HYGIENE, source="api")
        assert error.value.field == field
        assert session.scalar(select(func.count()).select_from(Lead)) == 0


ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-."
local_parts = st.text(alphabet=ATEXT + "@ \"\\()<>,;:é李", min_size=0, max_size=70)
domains = st.one_of(
    st.sampled_from(["acme.example", "ACME.Example", "x.co.uk", "localhost", "a..b.example", "-a.example",
                     "[1.2.3.4]", "bücher.example", "xn--bcher-kva.example", "a.test", "a" * 64 + ".example",
                     "b.invalid", "a_b.example", "acme.example."]),
    st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z0-9-]{1,10}){1,3}", fullmatch=True),
)


def _reference(text: str) -> str | None:
    try:
        return validate_email(text.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


@settings(max_examples=400, deadline=None)
@given(local_parts, domains)
def test_the_fast_path_accepts_and_normalizes_exactly_like_email_validator(local, domain):
    text = f"{local}@{domain}"
    if text.startswith("<") and text.endswith(">"):
        return
    try:
        ours = normalize_email(text)
    except InvalidEmail:
        ours = None
    assert ours == _reference(text)


def test_a_false_qualification_value_is_not_known(bed):
    """``{"decision_maker_engaged": false}`` was stored as the text "False", which counted as known."""
    from nurture_mail.engine.scoring import is_known

    with bed.svc.db.session() as session:
        lead, _ = upsert_lead(session, {"email": "q@acme.example", "decision_maker_engaged": False,
                                        "qualification": {"budget": False, "urgency": True, "pain_validated": "no"},
                                        "environment_documented": True},
                              bed.clock.now(), hygiene=HYGIENE, source="api")
        assert lead.qualification == {"urgency": "yes", "environment_documented": "yes"}
        assert not any(is_known(lead.qualification.get(a)) for a in ("decision_maker_engaged", "budget"))
    with bed.svc.db.session() as session:  # and false never erases what is known
        lead, outcome = upsert_lead(session, {"email": "q@acme.example", "urgency": False}, bed.clock.now(),
                                    hygiene=HYGIENE, source="api")
        assert outcome == "unchanged" and lead.qualification["urgency"] == "yes"


domain_names = st.one_of(
    st.sampled_from(["acme.example", "ACME.Example", "a.b", "a.1", "1.a", "a.b1", "a.1b", "a.b-", "a.-b", "a-.b",
                     "ab--cd.example", "xn--bcher-kva.example", "x.local", "a.arpa", "localhost", "a.onion",
                     "a" * 63 + ".example", "a" * 64 + ".example", ".".join(["a" * 62] * 4) + ".ex",
                     ".".join(["a" * 63] * 4) + ".ex", "a.b.", ".a.b", "a..b", "a.b_c", "a.B", "A-1.B-2.Cd"]),
    st.from_regex(r"[a-zA-Z0-9-]{1,64}(\.[a-zA-Z0-9-]{1,12}){1,3}", fullmatch=True),
)


@settings(max_examples=600, deadline=None)
@given(domain_names)
def test_the_plain_domain_shortcut_agrees_with_email_validator(domain):
    from nurture_mail.addresses import _domain_check, _plain_domain

    plain = _plain_domain(domain)
    reference = _domain_check(domain, False)
    if plain is not None:  # the shortcut accepts only what email-validator accepts, normalized alike
        assert reference == (True, plain)
