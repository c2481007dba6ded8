"""The scoring shell: load facts and events for a batch of leads, score them, store the scores,
and decide which leads are ready for sales.

Candidates are leads with an active or paused enrollment (both routes, by that campaign's rule)
or, when none, a completed one (a hand-raiser click on a finished campaign's email still hands
off). After a handoff only newer evidence counts (``engine.scoring.evaluate``'s ``since``).

A batch costs a fixed number of queries whatever its size (leads, events, enrollments with
their campaigns' rules, handoffs, then one upsert), so a drain batch of 1,000 events over 500
leads rescores in one round of SQL, not 500.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..config import Config
from ..engine.scoring import (
    Evaluation,
    EventFact,
    LeadFacts,
    Score,
    ScoringRules,
    evaluate,
    first_hand_raiser,
    handoff_due,
)
from ..models import (
    Campaign,
    Delivery,
    Enrollment,
    EnrollmentState,
    Event,
    EventKind,
    Handoff,
    HandoffState,
    Lead,
    LeadScore,
    LeadStatus,
    Link,
    Step,
)
from ..sales.decision import HandoffDecision
from .rules import ScoringRulesError, campaign_rules, load_rules

log = logging.getLogger(__name__)

#: Leads in these statuses are with sales already, or must never be handed off.
NOT_CANDIDATES = frozenset({
    LeadStatus.handed_off, LeadStatus.accepted, LeadStatus.won, LeadStatus.lost,
    LeadStatus.disqualified, LeadStatus.unsubscribed, LeadStatus.bounced,
})
#: Handoffs still with sales: no second one while one of these is open.
OPEN_HANDOFF_STATES = frozenset({HandoffState.notified, HandoffState.accepted})
NURTURING = (EnrollmentState.active, EnrollmentState.paused)
#: Enrollments whose campaign still decides: nurturing ones, and completed ones (a hand-raiser
#: click on an email of a finished campaign still hands the lead off).
DECIDING = (*NURTURING, EnrollmentState.completed)
#: The custom field holding the lead's free-text industry (the CSV column ``industry``).
INDUSTRY_FIELD = "industry"
#: Leads per round of queries (IN lists stay well under every backend's parameter limit).
CHUNK = 500
#: Events older than this many half-lives are not loaded (their weight is under 1/4000).
HORIZON_HALF_LIVES = 12
TRACKED_KINDS = (EventKind.open, EventKind.click)


@dataclass
class _Enrolled:
    campaign_id: int
    slug: str
    rules: ScoringRules


@dataclass
class _LeadData:
    lead_id: int
    facts: LeadFacts
    status: LeadStatus
    clean: bool
    events: list[EventFact] = field(default_factory=list)
    #: active or paused enrollments, oldest first
    enrollments: list[_Enrolled] = field(default_factory=list)
    #: completed enrollments, oldest first (only the hand-raiser route applies to these)
    completed: list[_Enrolled] = field(default_factory=list)
    #: event id -> campaign of the email it came from
    event_campaign: dict[int, int] = field(default_factory=dict)
    open_handoff: bool = False
    last_handoff_at: datetime | None = None


@dataclass(frozen=True)
class ScoredBatch:
    scores: dict[int, LeadScore]
    decisions: list[HandoffDecision]


def rules_of(config: Config) -> ScoringRules:
    """The rules file, read again only when it changed."""
    return load_rules(config.scoring_rules_path)


def rescore_leads(session: Session, config: Config, lead_ids: Iterable[int], now: datetime) -> dict[int, LeadScore]:
    """Recompute and store fit and engagement (with breakdowns) for these leads, as of ``now``."""
    return score_and_decide(session, config, lead_ids, now, decide=False).scores


def decide_handoffs(session: Session, config: Config, lead_ids: Iterable[int], now: datetime) -> list[HandoffDecision]:
    """The leads among these that meet their campaign's handoff rule now: at most one decision each."""
    return score_and_decide(session, config, lead_ids, now, store=False).decisions


def score_and_decide(session: Session, config: Config, lead_ids: Iterable[int], now: datetime, *,
                     store: bool = True, decide: bool = True) -> ScoredBatch:
    """One load for both jobs: the scores (stored when ``store``) and the handoff decisions."""
    base = rules_of(config)
    ids = sorted(set(lead_ids))
    scores: dict[int, LeadScore] = {}
    decisions: list[HandoffDecision] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        data = _load(session, chunk, base, now)
        evaluations = {lead_id: _evaluate(d, base, now) for lead_id, d in data.items()}
        if store and evaluations:
            scores.update(_store(session, {k: v[0] for k, v in evaluations.items()}, now))
        if decide:
            decisions.extend(decision for _, decision in evaluations.values() if decision is not None)
    return ScoredBatch(scores, decisions)


# -- pure part over loaded data ----------------------------------------------------------------


def _evaluate(d: _LeadData, base: ScoringRules, now: datetime) -> tuple[Evaluation, HandoffDecision | None]:
    """The stored score uses the rules of the lead's first campaign; each campaign decides by its own."""
    primary = d.enrollments[0].rules if d.enrollments else base
    stored = evaluate(d.facts, d.events, primary, now, since=d.last_handoff_at)
    lead_id = d.lead_id
    if not _candidate(d):
        return stored, None
    for enrolled in d.enrollments:
        result = stored if enrolled.rules == primary else evaluate(
            d.facts, d.events, enrolled.rules, now, since=d.last_handoff_at)
        if result.due is not None:
            reason, detail = result.due
            trigger = result.trigger
            return stored, HandoffDecision(
                lead_id=lead_id, campaign_id=enrolled.campaign_id, reason=reason, detail=detail,
                trigger_event_id=trigger.id if trigger else None, triggered_at=trigger.at if trigger else None,
            )
    if not d.enrollments and d.completed:
        return stored, _after_completion(d)
    return stored, None


def _after_completion(d: _LeadData) -> HandoffDecision | None:
    """A lead whose nurture ended: a human hand-raiser click still hands it off, by the rule of the
    campaign whose email carried the click (else the latest finished one)."""
    raiser = first_hand_raiser(d.events, d.last_handoff_at)
    if raiser is None:
        return None
    by_campaign = {e.campaign_id: e for e in d.completed}
    enrolled = by_campaign.get(d.event_campaign.get(raiser.id or 0, 0)) or d.completed[-1]
    due = handoff_due(enrolled.rules.handoff, Score(0), Score(0), raiser)
    if due is None or due[0] != "hand_raiser":
        return None
    return HandoffDecision(lead_id=d.lead_id, campaign_id=enrolled.campaign_id, reason=due[0], detail=due[1],
                           trigger_event_id=raiser.id, triggered_at=raiser.at)


def _candidate(d: _LeadData) -> bool:
    return ((bool(d.enrollments) or bool(d.completed)) and d.clean and not d.open_handoff
            and d.status not in NOT_CANDIDATES)


# -- loading -----------------------------------------------------------------------------------


def _load(session: Session, ids: Sequence[int], base: ScoringRules, now: datetime) -> dict[int, _LeadData]:
    data: dict[int, _LeadData] = {}
    for (lead_id, sic, naics, industry, employees, revenue, region, qualification, status, hygiene,
         erased_at) in session.execute(
        select(Lead.id, Lead.industry_sic, Lead.industry_naics, Lead.custom_fields[INDUSTRY_FIELD].as_string(),
               Lead.employees, Lead.revenue, Lead.region, Lead.qualification, Lead.status, Lead.hygiene,
               Lead.erased_at).where(Lead.id.in_(ids))
    ):
        data[lead_id] = _LeadData(
            lead_id=lead_id,
            facts=LeadFacts(industry_sic=sic, industry_naics=naics,
                            industry_name=str(industry) if industry is not None else None,
                            employees=employees, revenue=revenue, region=region,
                            qualification=qualification or {}),
            status=LeadStatus(status), clean=not hygiene and erased_at is None,
        )
    if not data:
        return data
    present = list(data)
    for row in session.execute(
        select(Enrollment.lead_id, Enrollment.campaign_id, Enrollment.state, Campaign.slug, Campaign.source,
               Campaign.handoff_rule)
        .join(Campaign, Campaign.id == Enrollment.campaign_id)
        .where(Enrollment.lead_id.in_(present), Enrollment.state.in_(DECIDING))
        .order_by(Enrollment.enrolled_at, Enrollment.id)
    ):
        enrolled = _Enrolled(row.campaign_id, row.slug, _campaign_rules(base, row.handoff_rule, row.source, row.slug))
        d = data[row.lead_id]
        (d.completed if EnrollmentState(row.state) == EnrollmentState.completed else d.enrollments).append(enrolled)
    for lead_id, state, created_at in session.execute(
        select(Handoff.lead_id, Handoff.state, Handoff.created_at).where(Handoff.lead_id.in_(present))
    ):
        d = data[lead_id]
        if HandoffState(state) in OPEN_HANDOFF_STATES:
            d.open_handoff = True
        if d.last_handoff_at is None or created_at > d.last_handoff_at:
            d.last_handoff_at = created_at
    # Older events weigh less than 1/4000 of their points under every half-life in play: skipped.
    longest = max([base.engagement.half_life_days] + [e.rules.engagement.half_life_days
                                                      for d in data.values() for e in d.enrollments])
    horizon = now - timedelta(days=HORIZON_HALF_LIVES * longest)
    # ``detail`` (JSON) is decoded only where it names the event: external events and link-less clicks.
    details: dict[int, Any] = dict(session.execute(
        select(Event.id, Event.detail).where(
            Event.lead_id.in_(present), Event.at >= horizon,
            or_(Event.kind.not_in(TRACKED_KINDS), and_(Event.kind == EventKind.click, Event.link_id.is_(None))))
    ).tuples().all())
    for (event_id, lead_id, kind, at, delivery_id, link_id, bot, bot_reason, label, name, hand_raiser,
         step_key, campaign_id) in session.execute(
        select(Event.id, Event.lead_id, Event.kind, Event.at, Event.delivery_id, Event.link_id,
               Event.suspected_bot, Event.bot_reason, Link.label, Link.name, Link.hand_raiser, Step.key,
               Step.campaign_id)
        .outerjoin(Link, Link.id == Event.link_id)
        .outerjoin(Delivery, Delivery.id == Event.delivery_id)
        .outerjoin(Step, Step.id == Delivery.step_id)
        .where(Event.lead_id.in_(present), Event.at >= horizon)
    ):
        detail = details.get(event_id) or {}
        kind = kind.value
        title = None
        if kind == "click":
            label = label or name or detail.get("url")
            hand_raiser = bool(hand_raiser or detail.get("hand_raiser"))
        else:
            label, hand_raiser = None, False
            title = detail.get("title") if kind != "open" else step_key
        d = data[lead_id]
        d.events.append(EventFact(
            id=event_id, kind=kind, at=at, delivery_id=delivery_id, link_id=link_id, label=label,
            hand_raiser=hand_raiser, suspected_bot=bool(bot), bot_reason=bot_reason, title=title,
        ))
        if hand_raiser and campaign_id is not None and d.completed:
            d.event_campaign[event_id] = campaign_id
    return data


def _campaign_rules(base: ScoringRules, handoff_rule: Any, source: str, slug: str) -> ScoringRules:
    try:
        return campaign_rules(base, handoff_rule, source or slug)
    except ScoringRulesError as exc:
        # Files are validated at sync; a rule edited elsewhere that does not validate falls back.
        log.error("campaign %s: invalid handoff rule, using the defaults of scoring.yaml: %s", slug, exc)
        return base


# -- storing -----------------------------------------------------------------------------------


def _store(session: Session, evaluations: dict[int, Evaluation], now: datetime) -> dict[int, LeadScore]:
    """Upsert in one statement (two rescoring workers racing on a lead both succeed)."""
    rows: list[dict[str, Any]] = [
        dict(lead_id=lead_id, fit=e.fit.total, engagement=e.engagement.total,
             fit_breakdown=e.fit.breakdown(), engagement_breakdown=e.engagement.breakdown(), computed_at=now)
        for lead_id, e in evaluations.items()
    ]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(LeadScore.__table__)  # Core executemany: the ORM bulk path costs a third more
    statement = statement.on_conflict_do_update(
        index_elements=["lead_id"],
        set_={name: statement.excluded[name] for name in
              ("fit", "engagement", "fit_breakdown", "engagement_breakdown", "computed_at")},
    )
    session.connection().execute(statement, rows)
    # Snapshots of what was stored, not attached to the session (the rows were written in bulk).
    return {row["lead_id"]: LeadScore(**row) for row in rows}
