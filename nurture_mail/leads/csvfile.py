"""Reading a lead CSV as people export it: any common encoding, ``,`` or ``;``, Excel headers.

The result maps every column to a target field of the lead (``email``, ``first_name``, a
qualification attribute, …) by a table of header synonyms, overridable by an explicit mapping;
columns nobody recognises are kept under their own (snake_case) name for ``custom_fields``.
Rows are numbered as a spreadsheet shows them: the header is row 1, a blank line counts.
"""
from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from .errors import ImportOptionsError
from .fields import IGNORE, TARGET_FIELDS, custom_target, header_key

DELIMITERS = (",", ";", "\t", "|")
#: The key of a row that could not be read (its cells hold the reason); see ``ParsedFile.records``.
ROW_ERROR = "!row_error"
_ADDRESS = re.compile(r"<?[^\s@<>\"]+@[^\s@<>\"]+\.[^\s@<>\"]+>?")

#: Header synonyms (compared as ``header_key``: lower case, runs of other characters as ``_``).
DEFAULT_SYNONYMS: dict[str, tuple[str, ...]] = {
    "email": ("email", "e_mail", "email_address", "e_mail_address", "mail", "work_email", "business_email",
              "email_id", "mail_address"),
    "first_name": ("first_name", "firstname", "first", "given_name", "forename"),
    "last_name": ("last_name", "lastname", "last", "surname", "family_name"),
    "title": ("title", "job_title", "jobtitle", "position", "job_role", "role"),
    "company": ("company", "company_name", "organization", "organisation", "organization_name", "account",
                "account_name", "employer"),
    "lead_source": ("lead_source", "source"),
    "timezone": ("timezone", "time_zone", "tz"),
    "region": ("region", "sales_region", "territory"),
    "country": ("country", "country_region", "country_or_region", "country_name", "nation"),
    "industry_sic": ("industry_sic", "sic", "sic_code"),
    "industry_naics": ("industry_naics", "naics", "naics_code"),
    "revenue": ("revenue", "annual_revenue", "company_revenue"),
    "employees": ("employees", "number_of_employees", "no_of_employees", "employee_count", "headcount",
                  "company_size"),
    "locations": ("locations", "number_of_locations", "no_of_locations", "sites"),
    "consent": ("consent", "opt_in", "email_opt_in", "marketing_consent"),
    "industry_code": ("industry_code",),
    "firmographics": ("firmographics",),
    "decision_makers_identified": ("decision_makers_identified", "decision_makers"),
    "environment_documented": ("environment_documented", "environment"),
    "decision_maker_engaged": ("decision_maker_engaged",),
    "pain_validated": ("pain_validated", "pain", "pain_points", "business_pain"),
    "decision_process_timeframe": ("decision_process_timeframe", "timeframe", "timeline", "decision_timeframe"),
    "budget": ("budget",),
    "competitive_landscape": ("competitive_landscape", "competition", "competitors"),
    "urgency": ("urgency", "compelling_event"),
}
SYNONYMS: dict[str, str] = {syn: target for target, syns in DEFAULT_SYNONYMS.items() for syn in syns}


def decode(data: bytes) -> tuple[str, str]:
    """The text and the encoding used: UTF-8 (BOM or not), UTF-16 with a BOM, else Windows-1252/Latin-1."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16"), "utf-16"
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        # Excel on Windows writes "ANSI": Windows-1252 is Latin-1 with printable 0x80-0x9F (€, …).
        return data.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def detect_delimiter(first_line: str) -> str:
    """The candidate that splits the header into the most columns; ``,`` on a tie."""
    best, best_count = ",", 1
    for candidate in DELIMITERS:
        count = len(next(csv.reader([first_line], delimiter=candidate), []))
        if count > best_count:
            best, best_count = candidate, count
    return best


@dataclass
class Column:
    index: int
    header: str
    #: a target field, ``custom:<name>`` or ``ignore``
    target: str


@dataclass
class ParsedFile:
    text: str
    encoding: str
    delimiter: str
    header: list[str]
    header_row: int
    columns: list[Column]

    @property
    def email_column(self) -> Column | None:
        return next((c for c in self.columns if c.target == "email"), None)

    def records(self) -> Iterator[tuple[int, list[str], str]]:
        """``(row number, cells, problem)`` of every record after the header; ``problem`` is "" or why it is broken.

        A quoted cell may span lines (a note typed with Alt+Enter in Excel). A stray opening
        quote (``ann@x.example,"Big``) would make the csv module swallow every following line
        into that cell, silently, up to its field size limit (then ``csv.Error``). So a record
        spanning lines is kept only when none of its continuation lines looks like a row of its
        own (at least as many cells as the header, an address in the email column); otherwise,
        or on a ``csv.Error``, only its first line is reported broken (its cells as that line
        alone reads) and reading starts again on the next line: one bad row, never the rest.
        """
        lines = io.StringIO(self.text, newline="").readlines()
        width = len(self.header)
        email_index = self.email_column.index if self.email_column else 0
        number = 0  # the spreadsheet row number of the last record (the header is row 1)
        base = 0  # the physical line the current reader started on
        while base < len(lines):
            reader = csv.reader(iter(lines[base:]), delimiter=self.delimiter)
            start = base
            restart = None
            for_problem = ""
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    restart, for_problem = start + 1, f"unreadable row ({exc}): an unbalanced quote (\")?"
                    break
                end = base + reader.line_num  # the physical line after this record
                if end - start > 1 and any(_looks_like_row(line, self.delimiter, width, email_index)
                                           for line in lines[start + 1:end]):
                    restart, for_problem = start + 1, ("unbalanced quote (\") in this row: it would take in the "
                                                       "rows after it; fix the quote and import the row again")
                    break
                number += 1
                if number > self.header_row:
                    yield number, cells, ""
                start = end
            if restart is None:
                return
            number += 1
            if number > self.header_row:
                yield number, _one_line(lines[start], self.delimiter), for_problem
            base = restart

    def rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        """``(row number, {target: cell})`` of every non-blank data row; custom columns keep their key.

        A broken row (see ``records``) comes as ``{ROW_ERROR: why, "email": its email cell}``.
        """
        used = [(c.index, c.target) for c in self.columns if c.target != IGNORE]
        email_index = self.email_column.index if self.email_column else 0
        for number, cells, problem in self.records():
            if problem:
                yield number, {ROW_ERROR: problem,
                               "email": cells[email_index].strip() if email_index < len(cells) else ""}
                continue
            if not "".join(cells).strip():  # blank: no cell holds anything but white space
                continue
            width = len(cells)
            yield number, {target: cells[i].strip() for i, target in used if i < width}

    def count_rows(self) -> int:
        """The rows ``rows()`` will yield, counted without building them."""
        return sum(1 for _number, cells, problem in self.records() if problem or "".join(cells).strip())


def _one_line(line: str, delimiter: str) -> list[str]:
    """The cells of one physical line read alone (a stray quote then runs to the end of the line)."""
    try:
        return next(csv.reader([line.rstrip("\r\n")], delimiter=delimiter), [])
    except csv.Error:
        return line.rstrip("\r\n").split(delimiter)


def _looks_like_row(line: str, delimiter: str, width: int, email_index: int) -> bool:
    """A line that is a whole row by itself: as many cells as the header and an address where the email goes."""
    if width < 2:
        return False
    cells = _one_line(line, delimiter)
    return len(cells) >= width and email_index < len(cells) and _ADDRESS.fullmatch(cells[email_index].strip()) is not None


def parse(data: bytes, mapping: Mapping[str, str] | None = None) -> ParsedFile:
    """Decode, find the header and map its columns; ``ImportOptionsError`` when the file is unusable."""
    try:
        return _parse(data, mapping)
    except csv.Error as exc:  # a header line the csv module cannot read (over its field size limit)
        raise ImportOptionsError(f"the header row cannot be read as CSV ({exc})", "file") from None


def _parse(data: bytes, mapping: Mapping[str, str] | None) -> ParsedFile:
    if not data or not data.strip():
        raise ImportOptionsError("the file is empty", "file")
    text, encoding = decode(data)
    text = text.replace("\x00", "")
    lines = text.splitlines()
    header_index = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_index is None:
        raise ImportOptionsError("the file is empty", "file")
    delimiter = detect_delimiter(lines[header_index])
    header = [h.strip() for h in next(csv.reader([lines[header_index]], delimiter=delimiter))]
    if not any(header):
        raise ImportOptionsError("no header row (the first line has no column names)", "file")
    columns = map_columns(header, mapping or {})
    parsed = ParsedFile(text, encoding, delimiter, header, header_index + 1, columns)
    if parsed.email_column is None:
        shown = ", ".join(repr(h) for h in header if h)
        if len(header) == 1 and "@" in header[0]:
            raise ImportOptionsError(f"no header row: the first line {header[0]!r} looks like data; "
                                     "add a header such as 'email,first_name,company'", "file")
        raise ImportOptionsError(f"no email column in the header (columns: {shown}); name one 'email' or map it "
                                 "with a mapping such as {'Contact': 'email'}", "file")
    return parsed


def map_columns(header: list[str], mapping: Mapping[str, str]) -> list[Column]:
    """Each header cell's target: explicit mapping first, then the synonyms, else a custom field.

    A target claimed by an earlier column is not given twice: the later column becomes custom.
    """
    explicit = validate_mapping(header, mapping)
    columns: list[Column] = []
    taken: set[str] = {t for t in explicit.values() if t in TARGET_FIELDS}
    for index, name in enumerate(header):
        if not name:
            columns.append(Column(index, name, IGNORE))
            continue
        if index in explicit:
            target = explicit[index]
        else:
            key = header_key(name)
            target = SYNONYMS.get(key, "")
            if not target or target in taken:
                target = custom_target(key or f"column_{index + 1}")
            taken.add(target)
        columns.append(Column(index, name, target))
    return columns


def validate_mapping(header: list[str], mapping: Mapping[str, str]) -> dict[int, str]:
    """Column index -> target of an explicit mapping; every column and target must exist."""
    if not isinstance(mapping, Mapping):
        raise ImportOptionsError("expected an object of column -> field", "mapping")
    by_key: dict[str, int] = {}
    for index, name in enumerate(header):
        by_key.setdefault(name, index)
        by_key.setdefault(header_key(name), index)
    result: dict[int, str] = {}
    for column, target in mapping.items():
        if not isinstance(column, str) or not isinstance(target, str):
            raise ImportOptionsError("expected an object of column -> field (both text)", "mapping")
        found = by_key.get(column, by_key.get(header_key(column)))
        if found is None:
            shown = ", ".join(repr(h) for h in header if h)
            raise ImportOptionsError(f"column {column!r} is not in the file (columns: {shown})", "mapping")
        target = target.strip()
        if target in ("", IGNORE):
            result[found] = IGNORE
        elif target.startswith("custom:") and re.fullmatch(r"custom:[\w.-]{1,80}", target):
            result[found] = target
        elif target in TARGET_FIELDS:
            result[found] = target
        else:
            raise ImportOptionsError(
                f"column {column!r}: unknown field {target!r} (fields: {', '.join(sorted(TARGET_FIELDS))}, "
                "custom:<name>, ignore)", "mapping")
    return result
