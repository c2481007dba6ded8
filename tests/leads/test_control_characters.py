"""Control characters never get into a lead: refused with the field named, or normalised.

Any of them in a one-line field would reach an email header (``To:`` names, subjects) and
fail every send to the lead ("line break in header value"); they are stopped at the door.
"""
from __future__ import annotations

import pytest

from nurture_mail.leads.errors import LeadControlError
from nurture_mail.leads.fields import convert
from nurture_mail.leads.imports import run_import
from nurture_mail.leads.upsert import lead_values

CONTROLS = ["\r", "\n", "\r\n", "\x00", "\x07", "\x1b", "\x1f", "\x7f", "\x0b", "\t"]


@pytest.mark.parametrize("char", CONTROLS)
@pytest.mark.parametrize("field", ["first_name", "last_name", "title", "company", "lead_source", "region",
                                   "industry_sic", "timezone", "country"])
def test_a_control_character_in_a_one_line_field_is_refused_naming_it(field, char):
    value = f"Ann{char}Bcc: x@evil.example" if field != "industry_sic" else f"73{char}72"
    with pytest.raises(LeadControlError) as error:
        lead_values({field: value})
    assert error.value.field == field and "control character" in error.value.message
    assert convert({field: value}).refused == (field, error.value.message)


def test_the_character_is_named():
    with pytest.raises(LeadControlError, match=r"contains a control character \(carriage return\)"):
        lead_values({"first_name": "A\rB"})
    with pytest.raises(LeadControlError, match=r"\(U\+001B\)"):
        lead_values({"company": "A\x1bB"})


def test_surrounding_whitespace_is_trimmed_not_refused():
    assert lead_values({"first_name": "\tAnn\r\n"}).columns == {"first_name": "Ann"}


def test_free_text_is_normalised_to_one_line():
    values = lead_values({"qualification": {"budget": "approved\r\nQ3\tmaybe\x00"},
                          "custom_fields": {"booth\n": "B12\nhall 3\x07"}})
    assert values.qualification == {"budget": "approved Q3 maybe"}
    assert values.custom == {"booth ": "B12 hall 3"}
    assert convert({"custom:notes": "line one\nline two", "budget": "yes\rno"}).custom == {"notes": "line one line two"}


def test_an_import_row_with_a_control_character_is_rejected_with_its_reason(bed):
    data = (b'email,first_name,company,title\r\n'
            b'ok@acme.example,Ok,Acme,CTO\r\n'
            b'"crlf@acme.example","Eve\r\nBcc: x@evil.example",Acme,CTO\r\n'
            b'"bell@acme.example",Bell,"Acme\x07",CTO\r\n'
            b'"notes@acme.example",Nat,Acme,"Head\tof IT"\r\n')
    import_id = bed.create(data)
    run_import(bed.svc, import_id)
    assert bed.outcomes(import_id) == [
        (2, "ok@acme.example", "created", None),
        (3, "crlf@acme.example", "rejected", "first_name"),
        (4, "bell@acme.example", "rejected", "company"),
        (5, "notes@acme.example", "rejected", "title"),
    ]
    reasons = bed.reasons(import_id)
    assert reasons[3] == "first_name: contains a control character (carriage return)"
    assert reasons[4] == "company: contains a control character (U+0007)"
    assert reasons[5] == "title: contains a control character (tab)"
    assert bed.lead("crlf@acme.example") is None and bed.lead("bell@acme.example") is None


def test_a_name_stored_before_the_door_was_closed_still_sends(platform):
    """A lead saved with a line break in its name (older data) gets its email, one-line To: name."""
    platform.add_lead("eve@acme.example", first_name="Eve\r\nBcc: x@evil.example", last_name="Lee\x07")
    platform.enroll("eve@acme.example")
    platform.tick_and_work()
    [email] = platform.received("eve@acme.example")
    assert email.message["To"] == '"Eve Bcc: x@evil.example Lee" <eve@acme.example>'
    assert email.message["Bcc"] is None and "Eve" in email.subject
