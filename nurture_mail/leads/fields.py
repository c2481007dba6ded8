"""The fields a lead can be given (by an import column or the API), and turning text into them.

Pure functions, no database: ``convert`` turns ``{target: text}`` into the values to store,
and a list of problems, each naming its field. An empty value is *absent*, never a blank to
store: that is what makes "never overwrite a known value with an empty one" hold everywhere.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..models.lead import QUALIFICATION_ATTRIBUTES
from ..onelinetext import CONTROL, control_problem, free_text
from .errors import LeadControlError, LeadValueError
from .regions import region_value, sales_region

IGNORE = "ignore"
CUSTOM_PREFIX = "custom:"

#: Text columns of ``Lead`` and their maximum length.
TEXT_FIELDS: dict[str, int] = {
    "first_name": 120, "last_name": 120, "title": 200, "company": 200, "lead_source": 120, "region": 64,
    "industry_sic": 8, "industry_naics": 8,
}
#: Whole-number columns of ``Lead`` and their largest value.
INT_FIELDS: dict[str, int] = {"revenue": 2**63 - 1, "employees": 2**31 - 1, "locations": 2**31 - 1}
LEAD_FIELDS = ("email", *TEXT_FIELDS, *INT_FIELDS, "timezone", "consent")
#: Not a column: kept as the custom field ``country``, and its sales region fills ``region`` (``regions``).
COUNTRY = "country"
TARGET_FIELDS = frozenset({*LEAD_FIELDS, COUNTRY, *QUALIFICATION_ATTRIBUTES})
#: The longest qualification note or custom value kept.
MAX_NOTE = 2000

_INT = re.compile(r"^\d+$|^\d{1,3}(?:([,. _'\u00a0\u202f])\d{3})(?:\1\d{3})*$")
_TRUE = {"1", "true", "yes", "y", "opt-in", "opted in", "on"}
_FALSE = {"0", "false", "no", "n", "opt-out", "opted out", "off"}
_QUALIFICATION = frozenset(QUALIFICATION_ATTRIBUTES)
#: A qualification value saying "no" is not something known about the lead: it is left out.
_NOT_KNOWN = {"false", "no", "n", "none", "n/a", "na", "-", "unknown"}


def header_key(name: str) -> str:
    """``'E-mail Address'`` -> ``'e_mail_address'``: how headers and synonyms are compared."""
    return re.sub(r"\W+", "_", name.strip().casefold()).strip("_")


def custom_target(key: str) -> str:
    return CUSTOM_PREFIX + key


@dataclass
class LeadValues:
    """What one row or API body says about a lead; only what it says (absent = unknown)."""

    columns: dict[str, Any] = field(default_factory=dict)
    qualification: dict[str, str] = field(default_factory=dict)
    custom: dict[str, str] = field(default_factory=dict)
    #: (field, message) of values that were not usable and were left out
    problems: list[tuple[str, str]] = field(default_factory=list)
    #: (field, message) of a value that refuses the whole row (a control character), if any
    refused: tuple[str, str] | None = None

    def merge_from(self, later: "LeadValues") -> None:
        """A later row about the same address: its non-empty values win, its blanks change nothing."""
        self.columns.update(later.columns)
        self.qualification.update(later.qualification)
        self.custom.update(later.custom)


@lru_cache(maxsize=1024)
def _zone_ok(name: str) -> bool:
    if not name or len(name) > 64:
        return False
    try:
        ZoneInfo(name)
        return True
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file path
        return False


def _text(value: Any, name: str) -> str:
    """One-line text: a control character refuses the value (and the lead: ``LeadControlError``)."""
    text = str(value)
    problem = control_problem(text)
    if problem is not None:
        raise LeadControlError(problem, name)
    return text


def parse_int(text: str, name: str) -> int:
    if text.isascii() and text.isdigit() and len(text) < 19:  # the common case: plain digits
        number = int(text)
        if number > INT_FIELDS[name]:
            raise LeadValueError(f"too large ({text!r})", name)
        return number
    value = text.strip().replace("\u00a0", " ")
    if value.endswith(".0"):
        value = value[:-2]
    if not _INT.match(value):
        raise LeadValueError(f"not a whole number ({text!r})", name)
    number = int(re.sub(r"\D", "", value))
    if number > INT_FIELDS[name]:
        raise LeadValueError(f"too large ({text!r})", name)
    return number


def convert_one(name: str, value: Any) -> Any:
    """One value for a lead column, checked; ``LeadValueError`` naming the field when unusable."""
    if isinstance(value, str):
        value = value.strip()
    limit = TEXT_FIELDS.get(name)
    if limit is not None:
        text = _text(value, name)
        if len(text) > limit:
            raise LeadValueError(f"longer than {limit} characters", name)
        return text
    if name in INT_FIELDS:
        if isinstance(value, bool):
            raise LeadValueError(f"not a whole number ({value!r})", name)
        if isinstance(value, int):
            if not 0 <= value <= INT_FIELDS[name]:
                raise LeadValueError(f"out of range ({value})", name)
            return value
        return parse_int(str(value), name)
    if name == "timezone":
        if not _zone_ok(_text(value, name)):
            raise LeadValueError(f"unknown IANA zone {str(value)[:80]!r}", name)
        return str(value)
    if name == "consent":
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise LeadValueError(f"expected yes/no ({value!r})", name)
    if name in QUALIFICATION_ATTRIBUTES:
        if value is True:
            return "yes"
        return free_text(value).strip()[:MAX_NOTE]
    raise LeadValueError("unknown field", name)


@lru_cache(maxsize=1024)
def _custom_key(target: str) -> str:
    """``custom:Booth Notes`` -> the key it is kept under (one line), once per column."""
    return free_text(target[len(CUSTOM_PREFIX):])


def convert(cells: Mapping[str, Any], *, strict: bool = False) -> LeadValues:
    """Values of ``{target: value}`` (email excluded: it is the key); empty values are skipped.

    Lenient (an import): an unusable value is left out and listed in ``problems``, but a control
    character in a one-line field refuses the whole row (``refused``). Strict (the API): the first
    unusable value raises ``LeadValueError`` (``LeadControlError`` for a control character).
    Free text (qualification notes, custom values) is normalised instead (``free_text``).
    """
    values = LeadValues()
    country_region = None
    for target, raw in cells.items():
        if target == "email" or raw is None or raw == "" or (type(raw) is str and raw.isspace()):
            continue  # not given (0 and False are values)
        if target == COUNTRY:
            try:
                text = _text(str(raw).strip(), COUNTRY)[:MAX_NOTE]
            except LeadControlError as exc:
                if strict:
                    raise
                values.refused = values.refused or (exc.field, exc.message)
                continue
            values.custom[COUNTRY] = text
            country_region = sales_region(text)
            continue
        qualification = target in _QUALIFICATION
        if qualification and (raw is False or (isinstance(raw, str) and raw.strip().casefold() in _NOT_KNOWN)):
            continue  # "no" / false: nothing known (a True is recorded as "yes")
        if target.startswith(CUSTOM_PREFIX):
            values.custom[_custom_key(target)] = free_text(raw).strip()[:MAX_NOTE]
            continue
        limit = TEXT_FIELDS.get(target)
        if limit is not None and type(raw) is str and len(raw) <= limit and CONTROL.search(raw) is None:
            values.columns[target] = raw.strip()  # the common case
            continue
        try:
            value = convert_one(target, raw)
        except LeadControlError as exc:
            if strict:
                raise
            values.refused = values.refused or (exc.field, exc.message)
            continue
        except LeadValueError as exc:
            if strict:
                raise
            values.problems.append((exc.field, f"{exc.message}, ignored"))
            continue
        if qualification:
            values.qualification[target] = value
        else:
            values.columns[target] = value
    if "region" in values.columns:
        values.columns["region"] = region_value(values.columns["region"])
    elif country_region is not None:
        values.columns["region"] = country_region
    return values
