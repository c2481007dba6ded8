"""Create or update one lead by email (the API's door), with the import's merge policy and hygiene.

``values`` is flat, as a JSON body is: ``{"email": …, "first_name": …, "employees": 250,
"budget": "approved"}``; qualification attributes may also come nested under
``"qualification"`` and custom fields under ``"custom_fields"``. ``None`` or ``""`` means "not
given", never "erase" (``leads.merge``). A value we cannot use raises ``LeadValueError`` naming
its field, before anything is written.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..addresses import InvalidEmail
from ..models import ALL_EMAIL, Lead, Suppression
from ..models.lead import QUALIFICATION_ATTRIBUTES
from ..onelinetext import free_text
from .errors import LeadValueError
from .fields import CUSTOM_PREFIX, MAX_NOTE, TARGET_FIELDS, LeadValues, convert
from .hygiene import Hygiene
from .merge import changes_for, new_lead_row

__all__ = ["LeadValueError", "lead_values", "upsert_lead"]

_SCALARS = (str, int, float, bool)


def lead_values(values: Mapping[str, Any]) -> LeadValues:
    """The checked values of an API body (email excluded); ``LeadValueError`` on the first bad one."""
    flat: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for key, value in values.items():
        if key == "email":
            continue
        if key == "qualification":
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise LeadValueError("expected an object of attribute -> text", "qualification")
            for name, note in value.items():
                if name not in QUALIFICATION_ATTRIBUTES:
                    raise LeadValueError(f"unknown attribute (attributes: {', '.join(QUALIFICATION_ATTRIBUTES)})",
                                         f"qualification.{name}")
                if note is not None and not isinstance(note, _SCALARS):
                    raise LeadValueError("expected text", f"qualification.{name}")
                flat[name] = note  # convert(): True is "yes", False (or "no") is not known
            continue
        if key == "custom_fields":
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise LeadValueError("expected an object of name -> value", "custom_fields")
            for name, item in value.items():
                if item is None or item == "":
                    continue
                if not isinstance(item, _SCALARS) or (isinstance(item, float) and not math.isfinite(item)):
                    raise LeadValueError("expected text, a number or true/false", f"custom_fields.{name}")
                # Free text: line breaks and tabs become a space, other control characters go.
                custom[free_text(name)[:80]] = free_text(item).strip()[:MAX_NOTE] if isinstance(item, str) else item
            continue
        if key not in TARGET_FIELDS or key.startswith(CUSTOM_PREFIX):
            raise LeadValueError("unknown field", key)
        if value is not None and not isinstance(value, _SCALARS):
            raise LeadValueError("expected a single value", key)
        flat[key] = value
    result = convert(flat, strict=True)
    result.custom.update(custom)
    return result


def upsert_lead(session: Session, values: Mapping[str, Any], now: datetime, *, hygiene: Hygiene,
                source: str, check_deliverability: bool = False) -> tuple[Lead, str]:
    """Create or merge the lead with ``values["email"]``; returns ``(lead, created|updated|unchanged)``.

    ``Lead.hygiene`` gets the flags of the address (role account, deny lists, suppressed for all
    email), added to any it had. ``source`` is the lead source of a new lead (unless ``values``
    names one); an existing lead keeps its own.
    """
    raw = values.get("email")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise LeadValueError("required", "email")
    if not isinstance(raw, str):
        raise LeadValueError("expected text", "email")
    try:
        email = hygiene.normalize_email(raw, check_deliverability)
    except InvalidEmail as exc:
        raise LeadValueError(f"invalid address: {exc}", "email") from None
    checked = lead_values(values)
    suppressed = session.scalar(
        select(Suppression.id).where(Suppression.email == email, Suppression.scope == ALL_EMAIL)) is not None
    flags = hygiene.check(email, suppressed=suppressed)

    lead = session.scalar(select(Lead).where(Lead.email == email))
    if lead is None:
        lead = Lead(**new_lead_row(email, checked, flags, source, now))
        try:
            with session.begin_nested():
                session.add(lead)
                session.flush()
            return lead, "created"
        except IntegrityError:  # created meanwhile by another request or an import: merge into it
            lead = session.scalar(select(Lead).where(Lead.email == email))
            if lead is None:
                raise
    current = {column.key: getattr(lead, column.key) for column in Lead.__table__.columns}
    changes = changes_for(current, checked, flags)
    if not changes:
        return lead, "unchanged"
    for name, value in changes.items():
        setattr(lead, name, value)
    lead.updated_at = now
    session.flush()
    return lead, "updated"
