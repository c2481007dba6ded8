"""The suppression list, and what an unsubscribe, a bounce or a complaint does to a lead.

The ``suppression`` table is the source of truth the sender checks at send time: an address
suppressed for ``*`` gets no email from any campaign, one suppressed for a campaign's slug gets
none from that campaign. The lead's status and its enrollments follow (so reports and the tick
see it at once), but a send is refused by the table even when they have not caught up: an
address can be suppressed before it is ever imported as a lead.

Every act is also an ``Event`` on the lead's timeline. Acts that arrive from outside with an
identity (a DSN, a webhook item) are keyed by the event's ``uid``, written first, so the same
one applied twice changes nothing the second time; an unsubscribe is idempotent by state (an
address already suppressed for that scope records nothing new).
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..addresses import address_key
from ..leads.bulk import Bulk
from ..models import (
    ALL_EMAIL,
    Campaign,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Event,
    EventKind,
    Lead,
    LeadStatus,
    Suppression,
)
from .sql import insert_ignoring_conflicts, rows_changed

__all__ = [
    "NURTURE_STATUSES", "blocking_suppression", "lift_suppression", "record_event", "set_status", "stop_mailing",
    "suppress", "suppression_scopes", "unsubscribe",
]

#: Statuses an unsubscribe or bounce may overwrite. A lead sales owns (handed off, accepted, won,
#: lost) keeps its status: the suppression row alone stops the mail, and the deal stays visible.
NURTURE_STATUSES = frozenset({LeadStatus.new, LeadStatus.nurturing, LeadStatus.mql, LeadStatus.recycled})


def suppress(session: Session, email: str, now: datetime, *, reason: str, source: str, scope: str = ALL_EMAIL,
             detail: str | None = None) -> bool:
    """Add (email, scope) to the list once; True if it was not there yet. The first reason stays."""
    inserted = session.execute(
        insert_ignoring_conflicts(session, Suppression, ["email", "scope"]).values(
            email=address_key(email), scope=scope, reason=reason[:20], source=source[:20],
            detail=(detail or "")[:1000] or None, created_at=now,
        ).returning(Suppression.id)  # rowcount is not reliable here (psycopg reports -1)
    ).scalar_one_or_none()
    return inserted is not None


def suppression_scopes(session: Session, emails: Iterable[str]) -> dict[str, set[str]]:
    """{email: scopes} for those of ``emails`` that are suppressed anywhere: one query."""
    return scopes_of_keys(Bulk(session), sorted({address_key(e) for e in emails}))


def scopes_of_keys(bulk: Bulk, keys: list[str]) -> dict[str, set[str]]:
    """``suppression_scopes`` of addresses already in their stored form (``address_key``)."""
    found: dict[str, set[str]] = {}
    # At the driver level: a send batch's 250 addresses are one array parameter on PostgreSQL.
    for email, scope in bulk.select_in(Suppression.__table__, ["email", "scope"], "email", keys):
        found.setdefault(email, set()).add(scope)
    return found


def blocking_suppression(session: Session, email: str, campaign_slug: str | None = None) -> Suppression | None:
    """The row that forbids mailing ``email`` (in ``campaign_slug``, when given), if any."""
    scopes = [ALL_EMAIL] + ([campaign_slug] if campaign_slug else [])
    return session.scalars(
        select(Suppression).where(Suppression.email == address_key(email), Suppression.scope.in_(scopes))
        .order_by(Suppression.id).limit(1)
    ).first()


def record_event(session: Session, *, lead_id: int, kind: EventKind, at: datetime, uid: str | None = None,
                 delivery_id: int | None = None, detail: dict[str, Any] | None = None,
                 user_agent: str | None = None, ip: str | None = None) -> int | None:
    """Insert an event; with a ``uid`` already stored, insert nothing and return None."""
    values = dict(
        uid=uid, lead_id=lead_id, delivery_id=delivery_id, kind=kind.value, at=at,
        user_agent=(user_agent or "")[:500] or None, ip=(ip or "")[:64] or None,
        suspected_bot=False, detail=detail or {},
    )
    if uid is None:
        return session.execute(Event.__table__.insert().values(**values).returning(Event.id)).scalar_one()
    statement = insert_ignoring_conflicts(session, Event, ["uid"]).values(**values).returning(Event.id)
    return session.execute(statement).scalar_one_or_none()


def stop_mailing(session: Session, lead_id: int, now: datetime, reason: str, campaign_id: int | None = None) -> int:
    """Exit the lead's active or paused enrollments (all, or one campaign's) and cancel their
    queued deliveries; returns how many enrollments exited.

    A delivery a worker has already claimed (``sending``) is left to the sender, whose
    send-time check of the suppression list cancels it.
    """
    reason = reason[:500]
    enrollments = select(Enrollment.id).where(Enrollment.lead_id == lead_id)
    if campaign_id is not None:
        enrollments = enrollments.where(Enrollment.campaign_id == campaign_id)
    session.execute(
        update(Delivery)
        .where(Delivery.lead_id == lead_id, Delivery.status == DeliveryStatus.queued,
               Delivery.enrollment_id.in_(enrollments))
        .values(status=DeliveryStatus.cancelled, last_error=reason)
        .execution_options(synchronize_session=False)
    )
    result = session.execute(
        update(Enrollment)
        .where(Enrollment.id.in_(enrollments),
               Enrollment.state.in_([EnrollmentState.active, EnrollmentState.paused]))
        .values(state=EnrollmentState.exited, state_reason=reason, next_send_at=None, ended_at=now)
        .execution_options(synchronize_session=False)
    )
    return rows_changed(result)


def set_status(lead: Lead, status: LeadStatus, now: datetime) -> None:
    """Move a lead marketing still owns to ``status`` (see NURTURE_STATUSES)."""
    if lead.status in NURTURE_STATUSES:
        lead.status = status
        lead.updated_at = now


def unsubscribe(session: Session, lead: Lead, now: datetime, *, source: str, campaign: Campaign | None = None,
                delivery_id: int | None = None, user_agent: str | None = None, ip: str | None = None) -> bool:
    """Unsubscribe ``lead`` from all email, or from ``campaign`` only; effective at once.

    Idempotent by state rather than by request: True when this added the suppression (and its
    event), False when the address was already suppressed for that scope (mail providers may
    POST a one-click unsubscribe more than once). Enrollments are stopped either way.
    """
    scope = campaign.slug if campaign is not None else ALL_EMAIL
    added = suppress(session, lead.email, now, reason="unsubscribe", source=source, scope=scope,
                     detail=f"delivery {delivery_id}" if delivery_id else None)
    if added:
        detail: dict[str, Any] = {"scope": scope, "source": source}
        if campaign is not None:
            detail["campaign"] = campaign.slug
        record_event(session, lead_id=lead.id, kind=EventKind.unsubscribe, at=now, delivery_id=delivery_id,
                     detail=detail, user_agent=user_agent, ip=ip)
    if campaign is None:
        set_status(lead, LeadStatus.unsubscribed, now)
        stop_mailing(session, lead.id, now, f"unsubscribed from all email ({source})")
    else:
        stop_mailing(session, lead.id, now, f"unsubscribed from this campaign ({source})", campaign_id=campaign.id)
    return added


def lift_suppression(session: Session, suppression_id: int, now: datetime, *, by: str, reason: str) -> Suppression:
    """Remove a suppression (the address may be mailed again), keeping who, when and why in
    ``suppression_removal``. A reason is required: lifting one is a deliberate act.

    The lead's status is left as it is: an unsubscribed or bounced lead stays so until a person
    re-enrolls it, which checks everything again.
    """
    from ..exceptions import InvalidInput, NotFound
    from ..models import SuppressionRemoval

    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("say why the address may be mailed again", field="reason")
    row = session.get(Suppression, suppression_id)
    if row is None:
        raise NotFound(f"no suppression {suppression_id}")
    session.add(SuppressionRemoval(
        email=row.email, scope=row.scope, reason=row.reason, source=row.source, detail=row.detail,
        suppressed_at=row.created_at, removed_by=by[:320], removed_reason=reason[:500], removed_at=now,
    ))
    session.delete(row)
    session.flush()
    return row
