"""Reading files as people export them, and turning cells into lead values (pure: no database)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nurture_mail.addresses import InvalidEmail, normalize_email
from nurture_mail.leads.csvfile import ROW_ERROR, decode, detect_delimiter, parse
from nurture_mail.leads.errors import ImportOptionsError, LeadValueError
from nurture_mail.leads.fields import LeadValues, convert, parse_int
from nurture_mail.leads.hygiene import DEFAULT_RULES, Hygiene, HygieneConfigError
from nurture_mail.leads.imports import safe_cell
from nurture_mail.leads.merge import changes_for

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ROOT = Path(__file__).resolve().parents[2]


def test_messy_file_bom_semicolons_excel_headers_blank_lines():
    parsed = parse((FIXTURES / "leads_messy.csv").read_bytes())
    assert (parsed.encoding, parsed.delimiter) == ("utf-8", ";")
    assert parsed.header[0] == "E-mail"  # the BOM is not part of the first header
    assert {c.header: c.target for c in parsed.columns} == {
        "E-mail": "email", "First Name": "first_name", "Last Name": "last_name", "Company Name": "company",
        "Job Title": "title", "Country/Region": "country", "Employees": "employees", "Budget": "budget",
        "Booth Notes": "custom:booth_notes",
    }
    rows = list(parsed.rows())
    # Row numbers are the spreadsheet's: the blank line (3) and the line of bare ';' (9) are skipped.
    assert [n for n, _ in rows] == [2, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18]
    assert rows[0][1]["first_name"] == "María" and rows[9][1]["first_name"] == "李"
    assert rows[1][1]["email"] == "ZOE.Hartley@Fernhill.example"  # stripped
    assert rows[9][1]["custom:booth_notes"] == '=HYPERLINK("http://evil","x")'


def test_latin1_file_decodes_accents():
    parsed = parse((FIXTURES / "leads_latin1.csv").read_bytes())
    assert parsed.encoding == "windows-1252" and parsed.delimiter == ","
    names = [(cells["first_name"], cells["last_name"], cells["title"]) for _, cells in parsed.rows()]
    assert names == [("Françoise", "Lemaître", "Directrice générale"), ("Søren", "Madsen", "IT-chef")]


def test_decode_variants():
    assert decode("é".encode()) == ("é", "utf-8")
    assert decode(b"\xef\xbb\xbfa") == ("a", "utf-8")
    assert decode("€uro".encode("cp1252")) == ("€uro", "windows-1252")
    assert decode(b"\x81x") == ("\x81x", "latin-1")  # undefined in cp1252: plain Latin-1
    assert decode("email\nä".encode("utf-16")) == ("email\nä", "utf-16")


@pytest.mark.parametrize("line, expected", [
    ("email,first_name", ","), ("email;first_name;company", ";"), ("email\tname", "\t"),
    ('"Smith, John";email;company', ";"), ("email", ","), ('"a;b",c,d', ","),
])
def test_delimiter_detection(line, expected):
    assert detect_delimiter(line) == expected


def test_explicit_mapping_overrides_and_validates():
    data = b"Contact,Org,Email,Notes\nann@x.example,Acme,other@x.example,hi\n"
    parsed = parse(data, {"Contact": "email", "org": "company", "Email": "ignore", "Notes": "custom:remark"})
    assert list(parsed.rows()) == [(2, {"email": "ann@x.example", "company": "Acme", "custom:remark": "hi"})]
    with pytest.raises(ImportOptionsError) as bad_target:
        parse(data, {"Contact": "e_mail"})
    assert bad_target.value.field == "mapping" and "unknown field 'e_mail'" in bad_target.value.message
    with pytest.raises(ImportOptionsError) as bad_column:
        parse(data, {"Phone": "title"})
    assert bad_column.value.field == "mapping" and "column 'Phone' is not in the file" in str(bad_column.value)


def test_two_columns_for_one_field_the_first_wins_the_other_is_kept():
    parsed = parse(b"Email,E-mail\na@x.example,b@x.example\n")
    assert list(parsed.rows()) == [(2, {"email": "a@x.example", "custom:e_mail": "b@x.example"})]


@pytest.mark.parametrize("data, message", [
    (b"", "the file is empty"),
    (b"\n\n  \n", "the file is empty"),
    (b"name,company\nAnn,Acme\n", "no email column in the header (columns: 'name', 'company')"),
    (b"ann@acme.example\nbob@acme.example\n", "no header row"),
])
def test_unusable_files_say_why(data, message):
    with pytest.raises(ImportOptionsError) as error:
        parse(data)
    assert error.value.field == "file" and message in error.value.message


def test_normalize_email():
    assert normalize_email("  <Zoë.Hartley@Fernhill.EXAMPLE> ") == "zoë.hartley@fernhill.example"
    for bad, why in [("", "empty"), ("not-an-email", "@-sign"), ("a..b@x.example", "two periods"),
                     ("a@b@c.example", "@"), ("x@localhost", "period")]:
        with pytest.raises(InvalidEmail) as error:
            normalize_email(bad)
        assert why in str(error.value)


def test_hygiene_flags():
    hygiene = Hygiene.from_rules(DEFAULT_RULES)
    assert hygiene.check("info@acme.example") == ["role_account"]
    assert hygiene.check("noreply+news@acme.example") == ["role_account"]
    assert hygiene.check("sam@cs.stanford.edu") == ["deny:student"]
    assert hygiene.check("sam@ox.ac.uk") == ["deny:student"]
    assert hygiene.check("sam@student.uva.nl") == ["deny:student"]
    assert hygiene.check("eve@wiz.io") == ["deny:competitor"]
    assert hygiene.check("pat@uk.deloitte.com") == ["deny:consultant"]  # a subdomain of a listed domain
    assert hygiene.check("sales@accenture.com", suppressed=True) == ["role_account", "deny:consultant", "suppressed"]
    assert hygiene.check("maria@brightpath.example") == []
    assert hygiene.check("maria@notwiz.io") == [] and hygiene.check("ed@education.example") == []


def test_student_patterns_do_not_flag_companies_named_student():
    """``student.*`` flagged student.com; only a student host of a university domain is flagged."""
    hygiene = Hygiene.load(ROOT / "campaigns" / "hygiene.yaml")
    for address in ("jan@students.uu.nl", "sam@student.uva.nl", "kai@stud.uni-hannover.de"):
        assert hygiene.check(address) == ["deny:student"], address
    for address in ("ann@student.com", "bob@students.com", "cy@mail.student.com", "dee@stud.io"):
        assert hygiene.check(address) == [], address


def test_validate_hygiene_file_names_the_file_and_key(tmp_path):
    """The check the app runs at startup (and ``create_import`` before accepting a file)."""
    from nurture_mail.leads.hygiene import validate_hygiene_file

    assert validate_hygiene_file(ROOT / "campaigns" / "hygiene.yaml").check("info@x.example") == ["role_account"]
    assert validate_hygiene_file(tmp_path / "missing.yaml").source == "built-in defaults"
    path = tmp_path / "hygiene.yaml"
    path.write_text("deny: [oops\n")
    with pytest.raises(HygieneConfigError, match="invalid YAML"):
        validate_hygiene_file(path)
    path.write_bytes(b"deny:\n  x: ['\xff']\n")
    with pytest.raises(HygieneConfigError, match="cannot read file"):
        validate_hygiene_file(path)
    path.write_text("role_accounts: info\n")
    with pytest.raises(HygieneConfigError, match=f"{path}: role_accounts: expected a list"):
        validate_hygiene_file(path)


def test_a_stray_quote_rejects_its_row_and_keeps_the_rest():
    """An unclosed quote used to swallow every later row, silently."""
    data = (b"email,company,notes\n"
            b'a@x.example,"Big\n'
            b"b@x.example,Acme,hi\n"
            b'c@x.example,Co,"a note\nover two lines"\n'
            b"\n"
            b"d@x.example,D,x\n")
    parsed = parse(data)
    rows = list(parsed.rows())
    assert [number for number, _ in rows] == [2, 3, 4, 6] and parsed.count_rows() == 4
    assert rows[0][1]["email"] == "a@x.example" and "unbalanced quote" in rows[0][1][ROW_ERROR]
    assert rows[1][1] == {"email": "b@x.example", "company": "Acme", "custom:notes": "hi"}
    assert rows[2][1]["custom:notes"] == "a note\nover two lines"  # a real multi-line cell is kept
    assert rows[3][1]["email"] == "d@x.example"


def test_a_stray_quote_before_a_huge_tail_is_one_bad_row_not_a_csv_error():
    """Past the csv module's field limit (128 KiB) it raised ``_csv.Error`` from ``count_rows``."""
    tail = b"".join(b"filler %d\n" % i for i in range(20000))  # ~200 KiB with no address in it
    parsed = parse(b"email,company\n" + b'a@x.example,"Big\n' + tail + b"z@x.example,Z\n")
    assert parsed.count_rows() == 20002
    rows = list(parsed.rows())
    assert "field larger than field limit" in rows[0][1][ROW_ERROR]
    assert rows[-1] == (20003, {"email": "z@x.example", "company": "Z"})
    with pytest.raises(ImportOptionsError, match="file: the header row cannot be read"):
        parse(b"email," + b'"' + b"x" * 200_000 + b"\n")


def test_country_is_kept_and_gives_the_sales_region():
    """A Country column filled ``region`` with "Spain"; routing and scoring want AMER/EMEA/APAC."""
    parsed = parse(b"Email,Country/Region,Region\na@x.example,Spain,\nb@x.example,Spain,AMER\nc@x.example,Atlantis,\n")
    assert {c.header: c.target for c in parsed.columns} == {"Email": "email", "Country/Region": "country",
                                                            "Region": "region"}
    values = [convert(cells) for _, cells in parsed.rows()]
    assert (values[0].columns, values[0].custom) == ({"region": "EMEA"}, {"country": "Spain"})
    assert values[1].columns == {"region": "AMER"}  # an explicit region wins
    assert (values[2].columns, values[2].custom) == ({}, {"country": "Atlantis"})
    assert convert({"region": "United States"}).columns == {"region": "AMER"}
    assert convert({"country": "japan"}).columns == {"region": "APAC"}


def test_hygiene_file(tmp_path):
    path = tmp_path / "hygiene.yaml"
    path.write_text("role_accounts: [hello]\ndeny:\n  partner: ['*.partner.example', reseller.example]\n")
    hygiene = Hygiene.load(path)
    assert hygiene.check("hello@x.example") == ["role_account"] and hygiene.check("info@x.example") == []
    assert hygiene.check("a@eu.partner.example") == ["deny:partner"] and hygiene.check("a@reseller.example")
    assert Hygiene.load(tmp_path / "missing.yaml").check("info@x.example") == ["role_account"]  # defaults
    path.write_text("roles: [x]\n")
    with pytest.raises(HygieneConfigError, match="roles: unknown key"):
        Hygiene.load(path)
    path.write_text("deny:\n  student: '*.edu'\n")
    with pytest.raises(HygieneConfigError, match="deny.student: expected a list"):
        Hygiene.load(path)


def test_shipped_hygiene_file_matches_the_defaults():
    for candidate in (ROOT / "campaigns" / "hygiene.yaml", ROOT / "samples" / "hygiene.yaml"):
        if candidate.exists():
            assert yaml.safe_load(candidate.read_text(encoding="utf-8")) == DEFAULT_RULES
            break
    else:
        pytest.fail("no hygiene.yaml shipped")


@pytest.mark.parametrize("text, value", [("850", 850), ("1,200", 1200), ("1.200", 1200), ("12 500", 12500),
                                         ("2500.0", 2500), ("1\u00a0000", 1000)])
def test_whole_numbers(text, value):
    assert parse_int(text, "employees") == value


@pytest.mark.parametrize("text", ["lots", "-5", "1,20", "12.5", "1e3", "99999999999"])
def test_not_whole_numbers_name_the_field(text):
    with pytest.raises(LeadValueError) as error:
        parse_int(text, "employees")
    assert error.value.field == "employees"


def test_convert_is_lenient_for_imports_strict_for_the_api():
    values = convert({"email": "x", "first_name": " Ann ", "employees": "lots", "timezone": "Mars/Olympus",
                      "budget": "approved", "custom:notes": "hi", "last_name": "", "consent": "no"})
    assert values.columns == {"first_name": "Ann", "consent": False}
    assert values.qualification == {"budget": "approved"} and values.custom == {"notes": "hi"}
    assert values.problems == [("employees", "not a whole number ('lots'), ignored"),
                               ("timezone", "unknown IANA zone 'Mars/Olympus', ignored")]
    with pytest.raises(LeadValueError) as error:
        convert({"employees": "lots"}, strict=True)
    assert error.value.field == "employees"


def test_merge_never_overwrites_with_empty_and_keeps_the_source():
    existing = {"first_name": "Ann", "company": "Acme", "lead_source": "webinar", "qualification": {"budget": "Q3"},
                "custom_fields": {"a": "1"}, "hygiene": ["role_account"]}
    values = LeadValues(columns={"company": "Acme Corp", "lead_source": "trade-show"},
                        qualification={"urgency": "renewal in May"}, custom={"b": "2"})
    assert changes_for(existing, values, ["deny:student"]) == {
        "company": "Acme Corp", "qualification": {"budget": "Q3", "urgency": "renewal in May"},
        "custom_fields": {"a": "1", "b": "2"}, "hygiene": ["role_account", "deny:student"],
    }
    assert changes_for(existing, LeadValues(columns={"company": "Acme"}), ["role_account"]) == {}
    assert changes_for(existing, convert({"first_name": "", "company": "  "}), []) == {}


@pytest.mark.parametrize("cell, safe", [
    ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'), ("+1@x.example", "'+1@x.example"),
    ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"), ("ann@x.example", "ann@x.example"),
    (None, ""), (12, "12"),
])
def test_safe_cell(cell, safe):
    assert safe_cell(cell) == safe


def test_dns_answers_are_kept_per_hygiene_object_and_only_asked_for_when_wanted():
    hygiene = Hygiene.from_rules(DEFAULT_RULES)
    hygiene._dns_cache["acme.example"] = (False, "The domain name acme.example does not exist.")
    with pytest.raises(InvalidEmail, match="does not exist"):
        hygiene.normalize_email("ann@acme.example", check_deliverability=True)
    assert hygiene.normalize_email("ann@acme.example") == "ann@acme.example"  # syntax only: no DNS answer used
    assert Hygiene.from_rules(DEFAULT_RULES)._dns_cache == {}  # a new import asks again
