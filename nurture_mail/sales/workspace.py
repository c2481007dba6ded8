"""What the sales workspace pages read: a user's rep, the inbox with its SLA countdowns, the
team's load, and a rep's time away. The state changes themselves are in ``actions.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..engine.routing import business_hours_between, parse_hhmm
from ..exceptions import InvalidInput
from ..models import Handoff, HandoffAction, HandoffAssignment, HandoffState, Lead, SalesRep
from .handoff import OPEN_STATES

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["REJECT_REASONS", "InboxRow", "TeamLoad", "holds", "inbox", "inbox_row", "rep_for_email", "set_away", "team_load", "team_of"]

#: The reason codes a rep picks from when rejecting, per kind (a free text may add detail).
REJECT_REASONS: dict[str, tuple[str, ...]] = {
    "not_ready": ("no budget yet", "timing: not this quarter", "not the decision maker", "still researching",
                  "no project yet"),
    "bad_fit": ("too small", "wrong industry", "no need for the product", "competitor", "student or consultant",
                "duplicate or invalid contact"),
}

#: The longest a rep can mark themselves away at once.
MAX_AWAY_DAYS = 366
STATES = tuple(s.value for s in HandoffState)


def rep_for_email(session: Session, email: str) -> SalesRep | None:
    """The rep a signed-in user is (users and reps share the email address)."""
    return session.scalar(select(SalesRep).where(func.lower(SalesRep.email) == email.strip().lower()))


def team_of(session: Session, manager: SalesRep) -> list[SalesRep]:
    """The reps reporting to ``manager``, directly or through another manager."""
    found: list[SalesRep] = []
    frontier = [manager.id]
    seen = {manager.id}
    while frontier:
        reps = list(session.scalars(select(SalesRep).where(SalesRep.manager_id.in_(frontier)).order_by(SalesRep.name)))
        frontier = [r.id for r in reps if r.id not in seen]
        for rep in reps:
            if rep.id not in seen:
                seen.add(rep.id)
                found.append(rep)
    return found


def holds(session: Session, rep: SalesRep | None, handoff: Handoff) -> bool:
    """The rep holds the handoff: its owner, or an open assignment (a manager's escalation)."""
    if rep is None:
        return False
    return handoff.rep_id == rep.id or session.scalar(
        select(HandoffAssignment.id).where(HandoffAssignment.handoff_id == handoff.id,
                                           HandoffAssignment.rep_id == rep.id,
                                           HandoffAssignment.ended_at.is_(None)).limit(1)) is not None


@dataclass(frozen=True)
class InboxRow:
    handoff: Handoff
    lead: Lead
    rep: SalesRep | None
    #: Business hours left before the SLA (negative: overdue); None once acted on or closed.
    sla_hours: float | None

    @property
    def overdue(self) -> bool:
        return self.sla_hours is not None and self.sla_hours < 0

    def countdown(self) -> str:
        if self.sla_hours is None:
            return ""
        hours = abs(self.sla_hours)
        text = f"{int(hours)} h {int(round((hours % 1) * 60)):02d} min" if hours < 100 else f"{hours:.0f} h"
        return f"overdue by {text}" if self.overdue else f"{text} left"


def _sla_hours(config: "Config", handoff: Handoff, now: datetime) -> float | None:
    if handoff.state != HandoffState.notified or handoff.first_action_at is not None or handoff.sla_due_at is None:
        return None
    return business_hours_between(now, handoff.sla_due_at, config.sales_timezone,
                                  parse_hhmm(config.sales_day_start), parse_hhmm(config.sales_day_end))


def inbox_row(config: "Config", handoff: Handoff, lead: Lead, rep: SalesRep | None, now: datetime) -> InboxRow:
    return InboxRow(handoff, lead, rep, _sla_hours(config, handoff, now))


def inbox(session: Session, config: "Config", now: datetime, rep_ids: list[int] | None,
          state: str | None = None, limit: int = 200) -> list[InboxRow]:
    """Handoffs of ``rep_ids`` (None: everyone's), overdue first, then by SLA due time, newest last.

    ``state``: one of the handoff states, ``open`` (notified or accepted, the default) or ``all``.
    """
    query = select(Handoff, Lead, SalesRep).join(Lead, Lead.id == Handoff.lead_id).outerjoin(
        SalesRep, SalesRep.id == Handoff.rep_id)
    if rep_ids is not None:
        held = select(HandoffAssignment.handoff_id).where(HandoffAssignment.rep_id.in_(rep_ids),
                                                          HandoffAssignment.ended_at.is_(None))
        query = query.where(Handoff.rep_id.in_(rep_ids) | Handoff.id.in_(held))
    state = (state or "open").strip()
    if state == "open":
        query = query.where(Handoff.state.in_(OPEN_STATES))
    elif state != "all":
        if state not in STATES:
            raise InvalidInput(f"expected open, all or one of {', '.join(STATES)}, got {state!r}", field="state")
        query = query.where(Handoff.state == HandoffState(state))
    rows = [InboxRow(h, lead, rep, _sla_hours(config, h, now))
            for h, lead, rep in session.execute(query.order_by(Handoff.id.desc()).limit(limit))]
    far = datetime.max.replace(tzinfo=UTC)
    # Overdue first, then those still waiting by due time, then the rest (acted on) newest first.
    rows.sort(key=lambda r: (not r.overdue, r.sla_hours is None,
                             (r.handoff.sla_due_at or far) if r.sla_hours is not None else far, -r.handoff.id))
    return rows


@dataclass(frozen=True)
class TeamLoad:
    rep: SalesRep
    open: int
    overdue: int
    accepted_this_month: int
    away_until: datetime | None


def team_load(session: Session, reps: list[SalesRep], now: datetime) -> list[TeamLoad]:
    """Per rep: open handoffs, those past their SLA with no action, and acceptances this month."""
    ids = [r.id for r in reps]
    if not ids:
        return []
    open_counts = dict(session.execute(
        select(Handoff.rep_id, func.count()).where(Handoff.rep_id.in_(ids), Handoff.state.in_(OPEN_STATES))
        .group_by(Handoff.rep_id)).tuples().all())
    overdue = dict(session.execute(
        select(Handoff.rep_id, func.count()).where(Handoff.rep_id.in_(ids), Handoff.state == HandoffState.notified,
                                                   Handoff.first_action_at.is_(None), Handoff.sla_due_at < now)
        .group_by(Handoff.rep_id)).tuples().all())
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    accepted = dict(session.execute(
        select(Handoff.rep_id, func.count(func.distinct(Handoff.id))).join(HandoffAction,
                                                                           HandoffAction.handoff_id == Handoff.id)
        .where(Handoff.rep_id.in_(ids), HandoffAction.action == "accept", HandoffAction.at >= month_start)
        .group_by(Handoff.rep_id)).tuples().all())
    return [TeamLoad(r, open_counts.get(r.id, 0), overdue.get(r.id, 0), accepted.get(r.id, 0),
                     r.away_until if r.is_away(now) else None) for r in reps]


def set_away(session: Session, rep: SalesRep, until: str | date | None, note: str, now: datetime,
             timezone: str) -> SalesRep:
    """Mark ``rep`` away through the end of ``until`` (a date, in the sales team's timezone);
    None or an empty string: back now. Routing skips the rep until then."""
    if until is None or (isinstance(until, str) and not until.strip()):
        rep.away_until = None
        rep.away_note = None
        return rep
    if isinstance(until, str):
        try:
            until = date.fromisoformat(until.strip())
        except ValueError:
            raise InvalidInput(f"expected a date such as 2026-03-20, got {until!r}", field="away_until") from None
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    if until < today:
        raise InvalidInput(f"the end date {until} is in the past", field="away_until")
    if (until - today).days > MAX_AWAY_DAYS:
        raise InvalidInput(f"at most {MAX_AWAY_DAYS} days away at once, got {(until - today).days}",
                           field="away_until")
    # Away through the whole last day: back at the next local midnight.
    rep.away_until = datetime.combine(until + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    rep.away_note = (note or "").strip()[:200] or None
    return rep
