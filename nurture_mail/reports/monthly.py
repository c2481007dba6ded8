"""The month's summary, with the month before beside it:

"N new prospects entered nurture, M opportunities under development, K fully nurtured
opportunities handed to sales worth $X".

- N: leads whose first enrollment in any campaign began that month.
- M: leads that engaged that month (a human click, a reply, a form, a webinar or a meeting;
  bot-flagged events excluded) and were not handed to sales that month: nurture in progress.
- K: handoffs made that month by a campaign's rule (score or hand-raiser; manual ones not).
- X: what those K are worth: the value of the ones won, plus the mean won deal (the forecast's
  history, the 365 days before the month's end) for each one still open; rejected and lost add 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import distinct, exists, func, select
from sqlalchemy.orm import Session, aliased

from ..exceptions import InvalidInput
from ..models import Enrollment, Handoff, HandoffState
from .common import Chart, Column, DateRange, ReportResult, Series, Table
from .forecast import model
from .summaries import EVENTS, engaged_leads, refreshed_at

COLUMNS = [
    Column("metric", "", "text"),
    Column("this_month", "This month", "text"),
    Column("month_before", "Month before", "text"),
    Column("change", "Change", "text"),
]


@dataclass(frozen=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, value: str, today: date) -> "Month":
        value = (value or "").strip()
        if not value:
            return cls(today.year, today.month)
        try:
            year, month = (int(p) for p in value.split("-"))
            if not (1 <= month <= 12 and 2000 <= year <= 2999):
                raise ValueError
        except ValueError:
            raise InvalidInput(f"expected a month such as 2026-03, got {value!r}", field="month") from None
        return cls(year, month)

    @property
    def start(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def end(self) -> date:
        """The last day."""
        return self.next().start - timedelta(days=1)

    def next(self) -> "Month":
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> "Month":
        return Month(self.year - (self.month == 1), 12 if self.month == 1 else self.month - 1)

    @property
    def span(self) -> DateRange:
        return DateRange(self.start, self.end)

    def label(self) -> str:
        return f"{self.start:%B %Y}"

    def key(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True)
class MonthFigures:
    month: Month
    new_prospects: int
    developing: int
    handed_off: int
    worth: Decimal

    def sentence(self) -> str:
        return (f"In {self.month.label()}, {self.new_prospects:,} new prospect{'' if self.new_prospects == 1 else 's'} "
                f"entered nurture, {self.developing:,} opportunit{'y' if self.developing == 1 else 'ies'} under "
                f"development, {self.handed_off:,} fully nurtured opportunit{'y' if self.handed_off == 1 else 'ies'} "
                f"handed to sales worth ${self.worth:,.2f}.")


def figures(session: Session, month: Month) -> MonthFigures:
    start = datetime.combine(month.start, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(month.next().start, datetime.min.time(), tzinfo=UTC)
    # Entered this month, with no enrollment before it: the month's rows by the enrolled_at
    # index, each checked against the lead's earlier ones by the lead_id index.
    earlier = aliased(Enrollment)
    new_prospects = session.scalar(
        select(func.count(distinct(Enrollment.lead_id))).where(
            Enrollment.enrolled_at >= start, Enrollment.enrolled_at < end,
            ~exists().where(earlier.lead_id == Enrollment.lead_id, earlier.enrolled_at < start))
    ) or 0
    handed = select(Handoff.lead_id).where(Handoff.created_at >= start, Handoff.created_at < end)
    # The month's engaged leads: the stored summary plus the newest events (see reports/summaries.py).
    engaged = engaged_leads(session, month.start)
    leads = engaged.subquery()
    developing = session.scalar(
        select(func.count(distinct(leads.c.lead_id))).where(leads.c.lead_id.not_in(handed))
    ) or 0
    handoffs = session.execute(
        select(Handoff.state, Handoff.deal_value).where(Handoff.created_at >= start, Handoff.created_at < end,
                                                        Handoff.reason != "manual")
    ).all()
    history = model(session, DateRange(month.end - timedelta(days=364), month.end))
    worth = Decimal(0)
    for state, value in handoffs:
        if state == HandoffState.won:
            worth += value or Decimal(0)
        elif state in (HandoffState.notified, HandoffState.accepted):
            worth += history["deal_value"]
    return MonthFigures(month, new_prospects, developing, len(handoffs), worth.quantize(Decimal("0.01")))


def _change(now: float, before: float, money: bool = False) -> str:
    delta = now - before
    text = f"{'+' if delta >= 0 else '−'}{'$' if money else ''}{abs(delta):,.2f}" if money else f"{delta:+,d}"
    if before:
        text += f" ({delta / before * 100:+.0f}%)"
    return text


def build(session: Session, span: DateRange | None, ctx, params: dict[str, str]) -> ReportResult:
    month = Month.parse(params.get("month", ""), ctx.today)
    this, before = figures(session, month), figures(session, month.previous())
    rows = [
        {"metric": "New prospects entered nurture", "this_month": f"{this.new_prospects:,}",
         "month_before": f"{before.new_prospects:,}", "change": _change(this.new_prospects, before.new_prospects)},
        {"metric": "Opportunities under development", "this_month": f"{this.developing:,}",
         "month_before": f"{before.developing:,}", "change": _change(this.developing, before.developing)},
        {"metric": "Fully nurtured opportunities handed to sales", "this_month": f"{this.handed_off:,}",
         "month_before": f"{before.handed_off:,}", "change": _change(this.handed_off, before.handed_off)},
        {"metric": "Worth", "this_month": f"${this.worth:,.2f}", "month_before": f"${before.worth:,.2f}",
         "change": _change(float(this.worth), float(before.worth), money=True)},
    ]
    chart = Chart("bars", f"{month.label()} beside {month.previous().label()}",
                  ["New prospects", "Under development", "Handed to sales"],
                  [Series(month.previous().label(), [before.new_prospects, before.developing, before.handed_off], "s1"),
                   Series(month.label(), [this.new_prospects, this.developing, this.handed_off], "s2")])
    notes = ["New prospects: leads whose first enrollment began that month. Under development: leads that engaged "
             "that month (a click, reply, form, webinar or meeting; bot-flagged events excluded) and were not handed "
             "to sales that month. Handed to sales: handoffs made by a campaign's rule. Worth: the value of those "
             "won, plus the mean won deal of the past year for each one still open."]
    fresh_at = refreshed_at(session, EVENTS)
    if fresh_at is not None:
        notes.append(f"Under development reads a summary of each month's engaged leads that the report counters "
                     f"job refreshes every five minutes (last at {fresh_at:%d %b %Y %H:%M} UTC) and counts the "
                     f"events since then live: the figures are complete up to now.")
    table = Table("monthly", f"{month.label()} and {month.previous().label()}", COLUMNS, rows)
    result = ReportResult("monthly", f"Monthly summary: {month.label()}", month.span, [table], chart,
                          summary=[this.sentence()], notes=notes)
    result.options.update(month=month.key(), previous=month.previous().key(), next=month.next().key(),
                          figures=this, before=before)
    return result
