"""The merge policy: what new information about a lead we already have changes, and what it never does.

One policy for every way a lead comes in (a CSV row, a duplicate row of the same file, an API
upsert), so a lead never depends on the door it came through:

1. a non-empty value replaces the stored one; an empty or missing value never erases anything;
2. ``qualification`` and ``custom_fields`` merge key by key under rule 1;
3. ``lead_source`` is set when the lead is created and never changed afterwards (the source
   that brought the lead keeps the credit);
4. hygiene flags only accumulate: an import adds flags, and only a person removes one;
5. ``status``, enrollments, knowledge and scores are never touched by a merge.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ..models.lead import LeadStatus
from .fields import LeadValues

#: Columns rule 3 protects on an existing lead.
SET_ONCE = frozenset({"lead_source"})


def merged_flags(existing: Iterable[str] | None, new: Iterable[str]) -> list[str]:
    """Union of the flags, in first-seen order."""
    return list(dict.fromkeys([*(existing or ()), *new]))


def changes_for(existing: Mapping[str, Any], values: LeadValues, flags: Iterable[str]) -> dict[str, Any]:
    """Column -> new value for the columns of ``existing`` (a lead row as a mapping) that change."""
    changes: dict[str, Any] = {}
    for name, value in values.columns.items():
        if name in SET_ONCE:
            continue
        if existing.get(name) != value:
            changes[name] = value
    for name, new in (("qualification", values.qualification), ("custom_fields", values.custom)):
        if not new:
            continue
        current = dict(existing.get(name) or {})
        merged = {**current, **new}
        if merged != current:
            changes[name] = merged
    hygiene = merged_flags(existing.get("hygiene"), flags)
    if hygiene != list(existing.get("hygiene") or []):
        changes["hygiene"] = hygiene
    return changes


def new_lead_row(email: str, values: LeadValues, flags: list[str], source: str | None, now: datetime) -> dict[str, Any]:
    """Every column of a new ``lead`` row (so a batch INSERT has one shape)."""
    columns = values.columns
    return {
        "email": email,
        "first_name": columns.get("first_name"),
        "last_name": columns.get("last_name"),
        "title": columns.get("title"),
        "company": columns.get("company"),
        "lead_source": (columns.get("lead_source") or source or None),
        "timezone": columns.get("timezone"),
        "consent": columns.get("consent", True),
        "industry_sic": columns.get("industry_sic"),
        "industry_naics": columns.get("industry_naics"),
        "revenue": columns.get("revenue"),
        "employees": columns.get("employees"),
        "locations": columns.get("locations"),
        "region": columns.get("region"),
        "qualification": dict(values.qualification),
        "custom_fields": dict(values.custom),
        "status": LeadStatus.new,
        "soft_bounces": 0,
        "hygiene": list(flags),
        "erased_at": None,
        "created_at": now,
        "updated_at": now,
    }
