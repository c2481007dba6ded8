"""Every change to a lead's own record: upsert, patch (with the status rules), GDPR erase.

The API, the CLI and the web UI call these and only translate: a :class:`LeadError` names the
field at fault; ``conflict`` is True when the lead's state forbids the change (erased, a status
the system owns) rather than a value being unusable. None of these commits: the caller's
session does.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..exceptions import InvalidInput
from ..models import (
    Delivery,
    Enrollment,
    Event,
    Handoff,
    HandoffAction,
    KnowledgeEvidence,
    Lead,
    LeadScore,
    LeadStatus,
)
from ..nurture.suppression import stop_mailing
from .errors import LeadValueError
from .hygiene import Hygiene
from .imports import erase_import_traces
from .upsert import lead_values
from .upsert import upsert_lead as _upsert_lead

__all__ = ["ERASED_DOMAIN", "PATCHABLE_STATUS", "STORED_RESPONSES_INDEX", "LeadError", "erase_lead",
           "find_lead", "patch_lead", "upsert_lead"]

ERASED_DOMAIN = "erased.invalid"
#: Redis set of the keys of stored API responses about a lead (``Idempotency-Key`` replays):
#: erasing the lead deletes them, so a replay cannot return the person's data.
STORED_RESPONSES_INDEX = "nurture:idempotency:lead:"

#: The only status a person may set: every other one is driven by the system (sends, bounces,
#: unsubscribes, scoring, sales actions). A lead with sales, unsubscribed or bounced stays so.
PATCHABLE_STATUS = {LeadStatus.disqualified: frozenset({LeadStatus.new, LeadStatus.nurturing, LeadStatus.mql,
                                                        LeadStatus.recycled, LeadStatus.lost})}


class LeadError(InvalidInput):
    """A lead change that cannot be made; ``field`` names the input at fault, ``message`` says why.

    ``conflict``: the lead's state forbids it (erased; a status only the system sets is not one),
    as opposed to an unusable value.
    """

    def __init__(self, message: str, field: str | None, *, conflict: bool = False) -> None:
        super().__init__(message, field=field)
        self.message = message
        self.conflict = conflict


class _Redis(Protocol):
    def smembers(self, name: str) -> Any: ...
    def delete(self, *names: Any) -> Any: ...


def find_lead(session: Session, email: str) -> Lead | None:
    """The lead with this address (stored lower-cased), or None."""
    return session.scalar(select(Lead).where(Lead.email == email.strip().lower()))


def upsert_lead(session: Session, values: Mapping[str, Any], now: datetime, *, hygiene: Hygiene, source: str,
                check_deliverability: bool = False) -> tuple[Lead, str]:
    """Create or merge the lead with ``values["email"]``: ``(lead, created|updated|unchanged)``.

    The merge policy and hygiene flags of a CSV import (``leads.upsert``); a known value is never
    blanked. An erased lead cannot be updated (a conflict on ``email``).
    """
    try:
        lead, outcome = _upsert_lead(session, values, now, hygiene=hygiene, source=source,
                                     check_deliverability=check_deliverability)
    except LeadValueError as error:
        raise LeadError(error.message, error.field) from None
    if lead.erased_at is not None:
        raise LeadError("this lead was erased and cannot be updated", "email", conflict=True)
    return lead, outcome


def patch_lead(session: Session, lead: Lead, changes: Mapping[str, Any], now: datetime, *,
               by: str | None = None) -> Lead:
    """Set the fields in ``changes``; ``None`` clears one; qualification and custom fields merge by key.

    Every value goes through the checks of an upsert; ``status`` follows :data:`PATCHABLE_STATUS`.
    Nothing is changed when any value is refused. ``by`` is who asks (kept for the audit of faces).
    """
    del by  # the lead row has no audit column; faces log the actor
    if lead.erased_at is not None:
        raise LeadError("this lead was erased and cannot be changed", "lead_id", conflict=True)
    checked = _checked_changes(changes)
    if "status" in checked:
        check_status(lead.status, checked["status"])
    for name, value in checked.items():
        if name in ("qualification", "custom_fields"):
            merged = {**(getattr(lead, name) or {}), **value}
            setattr(lead, name, {k: v for k, v in merged.items() if v is not None})
        else:
            setattr(lead, name, value)
    lead.updated_at = now
    session.flush()
    return lead


def check_status(current: LeadStatus, wanted: LeadStatus) -> None:
    """Refuse a status change a person may not make (``LeadError`` on ``status``)."""
    if wanted == current:
        return
    allowed_from = PATCHABLE_STATUS.get(wanted)
    if allowed_from is None:
        raise LeadError(f"status {wanted.value} is set by the system, not by hand (you may set: "
                        f"{', '.join(s.value for s in PATCHABLE_STATUS)})", "status")
    if current not in allowed_from:
        raise LeadError(f"a {current.value} lead cannot become {wanted.value}", "status")


def _checked_changes(values: Mapping[str, Any]) -> dict[str, Any]:
    """The changes through the same checks as an upsert (``leads.upsert.lead_values``); ``None`` clears."""
    checked: dict[str, Any] = {}
    try:
        for name, value in values.items():
            if name == "email":
                raise LeadError("the address identifies the lead and cannot be changed (erase it, or "
                                "upsert the new address)", "email")
            if name == "status":
                checked[name] = _status(value)
            elif value is None:
                checked[name] = None
            elif name == "qualification":
                given = lead_values({"qualification": {k: v for k, v in value.items() if v is not None}})
                checked[name] = {**{k: None for k, v in value.items() if v is None}, **given.qualification}
            elif name == "custom_fields":
                given = lead_values({"custom_fields": value})
                checked[name] = {**{k: None for k, v in value.items() if v in (None, "")}, **given.custom}
            else:
                given = lead_values({name: value})
                if name not in given.columns and given.problems:
                    field, message = given.problems[0]
                    raise LeadValueError(message, field)
                checked[name] = given.columns.get(name)
    except LeadValueError as error:
        raise LeadError(error.message, error.field) from None
    return checked


def _status(value: Any) -> LeadStatus:
    if isinstance(value, LeadStatus):
        return value
    try:
        return LeadStatus(value)
    except ValueError:
        raise LeadError(f"unknown status {value!r} (statuses: {', '.join(s.value for s in LeadStatus)})",
                        "status") from None


def erase_lead(session: Session, lead: Lead, now: datetime, *, by: str, redis: _Redis | None) -> bool:
    """GDPR erasure: remove what identifies the person; keep the row, its events (anonymised) and scores.

    Gone: email (replaced by ``erased-<id>@erased.invalid``), names, title, company, time zone,
    qualification notes, custom fields, consent; events' IP, user agent and detail; knowledge
    evidence notes; score breakdowns (they quote event titles); deliveries' last error (it can
    quote the address); the reasons of ended enrollments; handoff dossiers, reason details,
    reject and lost reasons and the details of handoff actions; the address in import reports
    (rows of this lead and rows with this address); stored ``Idempotency-Key`` responses about
    the lead (in ``redis``; None only where no API runs). Kept: status, source, industry, size,
    region, hygiene flags, knowledge levels, score values, event kinds and times, deliveries (no
    address). Ongoing enrollments are exited and their queued deliveries cancelled, so nothing
    is sent again. Erasing twice changes nothing; returns False then.
    """
    if lead.erased_at is not None:
        return False
    old_email = lead.email
    for name in ("first_name", "last_name", "title", "company", "timezone"):
        setattr(lead, name, None)
    lead.email = f"erased-{lead.id}@{ERASED_DOMAIN}"
    lead.qualification = {}
    lead.custom_fields = {}
    lead.consent = False
    lead.erased_at = now
    lead.updated_at = now
    session.flush()
    plain = {"synchronize_session": False}
    session.execute(update(Event).where(Event.lead_id == lead.id).values(ip=None, user_agent=None, detail={})
                    .execution_options(**plain))
    session.execute(update(KnowledgeEvidence).where(KnowledgeEvidence.lead_id == lead.id).values(note=None)
                    .execution_options(**plain))
    session.execute(update(LeadScore).where(LeadScore.lead_id == lead.id)
                    .values(fit_breakdown=[], engagement_breakdown=[]).execution_options(**plain))
    session.execute(update(Delivery).where(Delivery.lead_id == lead.id).values(last_error=None)
                    .execution_options(**plain))
    handoffs = select(Handoff.id).where(Handoff.lead_id == lead.id).scalar_subquery()
    session.execute(update(HandoffAction).where(HandoffAction.handoff_id.in_(handoffs)).values(detail={})
                    .execution_options(**plain))
    session.execute(update(Handoff).where(Handoff.lead_id == lead.id)
                    .values(dossier={"erased": True}, reason_detail=None, reject_reason=None, lost_reason=None)
                    .execution_options(**plain))
    erase_import_traces(session, lead.id, old_email)
    session.execute(update(Enrollment).where(Enrollment.lead_id == lead.id).values(state_reason=None)
                    .execution_options(**plain))
    stop_mailing(session, lead.id, now, f"personal data erased by {by}")
    session.expire_all()
    if redis is not None:
        forget_stored_responses(redis, lead.id)
    return True


def forget_stored_responses(redis: _Redis, lead_id: int) -> int:
    """Delete every stored API response about this lead; returns how many went."""
    index = f"{STORED_RESPONSES_INDEX}{lead_id}"
    keys = list(redis.smembers(index))
    if keys:
        redis.delete(*keys)
    redis.delete(index)
    return len(keys)
