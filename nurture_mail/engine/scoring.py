"""Lead scoring: fit from who the lead is, engagement from what they did, and the handoff rule.

Pure functions over plain data (DESIGN §5): the shell (``nurture_mail/scoring/``) loads the
lead's facts and events and stores what comes out. Every point has a line saying why, so the
score a rep sees in the dossier is one they can check against the contact history.

- **Fit**: per category (industry, employees, revenue, region) the first matching rule adds its
  points; each of the ten qualification attributes adds its points when it is known.
- **Engagement**: each human event adds the weight of its kind, halved every ``half_life_days``
  since it happened. Suspected bots are listed with 0 points and their reason; unsubscribes,
  bounces and complaints add nothing. An email opened five times counts once, and so does a
  link clicked five times in one email: interest, not stamina.
- **Handoff**: a human hand-raiser click, or engagement and fit both at their thresholds. After
  a handoff only newer evidence counts: the hand-raiser click must be newer, and the engagement
  that meets the threshold is the engagement earned since (a lead rejected as "not ready" is not
  handed straight back by the clicks sales already saw, nor by one more open).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

#: Event kinds that can earn engagement points, with the weight key each uses.
SCORING_KINDS = ("open", "click", "reply", "form", "webinar", "meeting")
#: Weight keys: the scoring kinds plus ``hand_raiser`` (a click on a hand-raiser link).
WEIGHT_KEYS = (*SCORING_KINDS, "hand_raiser")
#: Engagement lines kept in a breakdown; older ones are summed into the last line.
MAX_LINES = 100
#: Kinds that are recorded but never earn points (they say the opposite of interest).
NEGATIVE_KINDS = ("unsubscribe", "bounce", "complaint")

_VERBS = {
    "open": "opened",
    "reply": "replied",
    "form": "submitted form",
    "webinar": "attended webinar",
    "meeting": "had meeting",
    "unsubscribe": "unsubscribed",
    "bounce": "bounced",
    "complaint": "complained (spam report)",
}


# -- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeadFacts:
    """What fit is scored on: firmographics and the ten qualification attributes."""

    industry_sic: str | None = None
    industry_naics: str | None = None
    #: Free-text industry as imported ("Financial Services"), matched by an industry rule's ``names``.
    industry_name: str | None = None
    employees: int | None = None
    revenue: int | None = None
    region: str | None = None
    #: attribute name -> value; a value that is None, empty or false is "not known".
    qualification: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EventFact:
    """One stored event, with what a breakdown line needs to name it."""

    id: int | None
    kind: str
    at: datetime
    delivery_id: int | None = None
    link_id: int | None = None
    #: The link's label ("Read the 2026 report"); else its name or URL.
    label: str | None = None
    hand_raiser: bool = False
    suspected_bot: bool = False
    bot_reason: str | None = None
    #: For external events: what it was ("Cloud posture 101", "Pricing request form").
    title: str | None = None


# -- rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndustryRule:
    label: str
    points: float
    sic: tuple[str, ...] = ()
    naics: tuple[str, ...] = ()
    #: Free-text industry names, compared after :func:`normalize_name` ("Financial services" = "financial-services").
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class RangeRule:
    """``min <= value <= max``; either bound may be open (None)."""

    label: str
    points: float
    min: float | None = None
    max: float | None = None

    def matches(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


@dataclass(frozen=True)
class RegionRule:
    label: str
    points: float
    #: Region names, compared case-insensitively.
    regions: tuple[str, ...] = ()


@dataclass(frozen=True)
class FitRules:
    industry: tuple[IndustryRule, ...] = ()
    employees: tuple[RangeRule, ...] = ()
    revenue: tuple[RangeRule, ...] = ()
    region: tuple[RegionRule, ...] = ()
    #: attribute -> points when known
    qualification: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EngagementRules:
    #: weight key (see WEIGHT_KEYS) -> points before decay
    weights: Mapping[str, float] = field(default_factory=dict)
    half_life_days: float = 30.0


@dataclass(frozen=True)
class HandoffRule:
    """None for a threshold: that score is not required; both None: no score handoff."""

    engagement_at_least: float | None = None
    fit_at_least: float | None = None
    hand_raiser: bool = True

    @property
    def by_score(self) -> bool:
        return self.engagement_at_least is not None or self.fit_at_least is not None


@dataclass(frozen=True)
class ScoringRules:
    fit: FitRules = field(default_factory=FitRules)
    engagement: EngagementRules = field(default_factory=EngagementRules)
    handoff: HandoffRule = field(default_factory=HandoffRule)

    def overridden(self, override: "RuleOverride | None") -> "ScoringRules":
        """These rules with a campaign's ``handoff:`` block applied on top."""
        if override is None or override.empty:
            return self
        weights = dict(self.engagement.weights)
        weights.update(override.weights)
        engagement = EngagementRules(
            weights=weights,
            half_life_days=override.half_life_days if override.half_life_days is not None
            else self.engagement.half_life_days,
        )
        handoff = self.handoff
        for name in ("engagement_at_least", "fit_at_least", "hand_raiser"):
            if name in override.handoff:
                handoff = replace(handoff, **{name: override.handoff[name]})
        return ScoringRules(fit=self.fit, engagement=engagement, handoff=handoff)


@dataclass(frozen=True)
class RuleOverride:
    """A campaign's ``handoff:`` block, validated: only what it sets."""

    #: subset of engagement_at_least / fit_at_least / hand_raiser
    handoff: Mapping[str, Any] = field(default_factory=dict)
    weights: Mapping[str, float] = field(default_factory=dict)
    half_life_days: float | None = None

    @property
    def empty(self) -> bool:
        return not self.handoff and not self.weights and self.half_life_days is None


# -- outputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreLine:
    """One explained contribution: ``points`` counted now, ``raw`` before decay."""

    points: float
    reason: str
    at: datetime | None = None
    event_id: int | None = None
    raw: float | None = None

    @property
    def text(self) -> str:
        """``+15 clicked 'Security whitepaper' on 2026-03-02 (→ 7.5 after decay)``."""
        base = self.raw if self.raw is not None else self.points
        line = f"{_signed(base)} {self.reason}"
        if self.raw is not None and _fmt(self.raw) != _fmt(self.points):
            line += f" (→ {_fmt(self.points)} after decay)"
        return line

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "points": self.points, "reason": self.reason,
            "at": self.at.isoformat() if self.at is not None else None, "event_id": self.event_id,
            "text": self.text,
        }
        if self.raw is not None:
            data["raw"] = self.raw
        return data


@dataclass(frozen=True)
class Score:
    total: float
    lines: tuple[ScoreLine, ...] = ()

    def breakdown(self) -> list[dict[str, Any]]:
        return [line.as_json() for line in self.lines]


def _fmt(value: float) -> str:
    """2 decimals at most, none when whole: ``15``, ``7.5``, ``3.38``."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _signed(value: float) -> str:
    return ("+" if value >= 0 else "−") + _fmt(abs(value))


# -- fit -------------------------------------------------------------------------------------


def is_known(value: Any) -> bool:
    """A qualification attribute counts as known when it holds something."""
    if value is None or value is False:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (list, tuple, dict, set)):
        return bool(value)
    return True


@lru_cache(maxsize=8192)
def normalize_name(value: str) -> str:
    """Case and punctuation folded, ``&`` read as ``and``: ``"E-Commerce"`` = ``"e commerce"``,
    ``"Hospital & Health Care"`` = ``"hospital and health care"``."""
    return " ".join(re.sub(r"[^\w]+|_", " ", value.casefold().replace("&", " and ")).split())


def fit_score(facts: LeadFacts, rules: ScoringRules | FitRules) -> Score:
    """Firmographics and qualification attributes against the fit rules, first match per category.

    Industry: a code (SIC, then NAICS) decides when the lead has one; the free-text name only
    when no rule matched a code.
    """
    fit = rules.fit if isinstance(rules, ScoringRules) else rules
    lines: list[ScoreLine] = []
    sic = (facts.industry_sic or "").strip()
    naics = (facts.industry_naics or "").strip()
    name = normalize_name(facts.industry_name or "")
    for rule in fit.industry:
        if sic and any(sic.startswith(p) for p in rule.sic):
            lines.append(ScoreLine(rule.points, f"industry SIC {sic} is {rule.label}"))
            break
        if naics and any(naics.startswith(p) for p in rule.naics):
            lines.append(ScoreLine(rule.points, f"industry NAICS {naics} is {rule.label}"))
            break
    else:
        if name:
            for rule in fit.industry:
                if name in {normalize_name(n) for n in rule.names}:
                    lines.append(ScoreLine(rule.points, f"industry {(facts.industry_name or '').strip()} is {rule.label}"))
                    break
    for name, value, rules_ in (("employees", facts.employees, fit.employees),
                                ("revenue", facts.revenue, fit.revenue)):
        if value is None:
            continue
        for range_rule in rules_:
            if range_rule.matches(value):
                shown = f"{value:,}"
                lines.append(ScoreLine(range_rule.points, f"{name} {shown}: {range_rule.label}"))
                break
    region = normalize_name(facts.region or "")
    if region:
        for region_rule in fit.region:
            if region in {normalize_name(r) for r in region_rule.regions}:
                lines.append(ScoreLine(region_rule.points, f"region {facts.region}: {region_rule.label}"))
                break
    for attribute, points in fit.qualification.items():
        if is_known(facts.qualification.get(attribute)):
            lines.append(ScoreLine(points, f"{attribute.replace('_', ' ')} known"))
    lines = [line for line in lines if line.points != 0]
    return Score(total=round(sum(line.points for line in lines), 2), lines=tuple(lines))


# -- engagement ------------------------------------------------------------------------------


def decay_factor(age_days: float, half_life_days: float) -> float:
    """Half the weight every half-life; an event from the future (clock skew) counts in full."""
    return float(0.5 ** (max(age_days, 0.0) / half_life_days))


def weight_key(event: EventFact) -> str | None:
    if event.kind == "click":
        return "hand_raiser" if event.hand_raiser else "click"
    return event.kind if event.kind in SCORING_KINDS else None


def describe(event: EventFact) -> str:
    day = event.at.date().isoformat()
    if event.kind == "click":
        what = "clicked hand-raiser" if event.hand_raiser else "clicked"
        return f"{what} '{event.label}' on {day}" if event.label else f"{what} a link on {day}"
    verb = _VERBS.get(event.kind, event.kind)
    if event.kind == "open":
        return f"{verb} email '{event.title}' on {day}" if event.title else f"{verb} an email on {day}"
    return f"{verb} '{event.title}' on {day}" if event.title else f"{verb} on {day}"


def _repeat_key(event: EventFact) -> tuple[Any, ...] | None:
    """Events that are the same signal repeated (re-opens, re-clicks of one link in one email)."""
    if event.kind == "open" and event.delivery_id is not None:
        return ("open", event.delivery_id)
    if event.kind == "click" and event.delivery_id is not None:
        return ("click", event.delivery_id, event.link_id, event.label)
    return None


def _engagement_lines(events: Iterable[EventFact], engagement: EngagementRules,
                      now: datetime) -> list[tuple[ScoreLine, EventFact]]:
    """Every line with the event it explains, newest first, nothing folded."""
    seen: set[tuple[Any, ...]] = set()
    lines: list[tuple[ScoreLine, EventFact]] = []
    for event in sorted(events, key=lambda e: (e.at, e.id or 0)):
        repeat = _repeat_key(event)
        key = (event.suspected_bot, *repeat) if repeat is not None else None
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        reason = describe(event)
        if event.suspected_bot:
            why = event.bot_reason or "suspected bot"
            lines.append((ScoreLine(0.0, f"{reason}: ignored, suspected bot ({why})", event.at, event.id, 0.0),
                          event))
            continue
        wkey = weight_key(event)
        if wkey is None:
            if event.kind in NEGATIVE_KINDS:
                lines.append((ScoreLine(0.0, f"{reason}: no points", event.at, event.id, 0.0), event))
            continue
        raw = float(engagement.weights.get(wkey, 0.0))
        if raw == 0:
            continue
        age_days = (now - event.at).total_seconds() / 86400.0
        points = round(raw * decay_factor(age_days, engagement.half_life_days), 2)
        lines.append((ScoreLine(points, reason, event.at, event.id, raw), event))
    lines.reverse()
    return lines


def _folded(lines: list[ScoreLine]) -> Score:
    total = round(sum(line.points for line in lines), 2)
    if len(lines) > MAX_LINES:
        # A lead with years of history: the oldest lines fold into one, so the stored
        # breakdown stays small while the total still adds up.
        older = lines[MAX_LINES - 1:]
        lines = lines[:MAX_LINES - 1] + [ScoreLine(
            round(sum(line.points for line in older), 2), f"{len(older)} earlier events",
            older[0].at, None, round(sum(line.raw or 0 for line in older), 2))]
    return Score(total=total, lines=tuple(lines))


def engagement_score(events: Iterable[EventFact], rules: ScoringRules | EngagementRules, now: datetime) -> Score:
    """Weighted human events with half-life decay; lines newest first."""
    engagement = rules.engagement if isinstance(rules, ScoringRules) else rules
    return _folded([line for line, _ in _engagement_lines(events, engagement, now)])


def _since(lines: list[tuple[ScoreLine, EventFact]], since: datetime | None) -> tuple[Score, EventFact | None]:
    fresh = [(line, event) for line, event in lines if since is None or event.at > since]
    earning = [event for line, event in fresh if line.raw]
    latest = max(earning, key=lambda e: (e.at, e.id or 0)) if earning else None
    return _folded([line for line, _ in fresh]), latest


# -- handoff ---------------------------------------------------------------------------------


def first_hand_raiser(events: Iterable[EventFact], since: datetime | None = None) -> EventFact | None:
    """The first human hand-raiser click after ``since`` (the last handoff), if any."""
    found = [e for e in events if e.kind == "click" and e.hand_raiser and not e.suspected_bot
             and (since is None or e.at > since)]
    return min(found, key=lambda e: (e.at, e.id or 0)) if found else None


def handoff_due(rule: HandoffRule, fit: Score, engagement: Score,
                hand_raiser_event: EventFact | None, *, engagement_label: str = "engagement") -> tuple[str, str] | None:
    """``(reason, detail)`` when the rule is met, else None. A hand-raiser click wins over scores.

    ``hand_raiser_event`` must be a human click (callers pass ``first_hand_raiser(...)``).
    """
    if rule.hand_raiser and hand_raiser_event is not None:
        return "hand_raiser", describe(hand_raiser_event)
    if not rule.by_score:
        return None
    parts = []
    if rule.engagement_at_least is not None:
        if engagement.total < rule.engagement_at_least:
            return None
        parts.append(f"{engagement_label} {_fmt(engagement.total)} ≥ {_fmt(rule.engagement_at_least)}")
    if rule.fit_at_least is not None:
        if fit.total < rule.fit_at_least:
            return None
        parts.append(f"fit {_fmt(fit.total)} ≥ {_fmt(rule.fit_at_least)}")
    return "score", " and ".join(parts)


def evaluate(facts: LeadFacts, events: Sequence[EventFact], rules: ScoringRules, now: datetime,
             since: datetime | None = None) -> "Evaluation":
    """Both scores and, when the rule is met on evidence newer than ``since``, the handoff.

    ``since`` is the lead's last handoff. After it, the score route needs the engagement earned
    *since* to meet the threshold (the stored engagement keeps the whole history), and at least
    one new event that earned points: a fit-only rule (``engagement_at_least: null``) hands a
    lead off once on fit alone, and again only after new engagement.
    """
    fit = fit_score(facts, rules)
    lines = _engagement_lines(events, rules.engagement, now)
    engagement = _folded([line for line, _ in lines])
    raiser = first_hand_raiser(events, since) if rules.handoff.hand_raiser else None
    fresh, tipping = _since(lines, since)
    label = "engagement" if since is None else "engagement since the last handoff"
    due = handoff_due(rules.handoff, fit, fresh, raiser, engagement_label=label)
    trigger = None
    if due is not None:
        trigger = raiser if due[0] == "hand_raiser" else tipping
        if trigger is None and since is not None:  # met, but on evidence the last handoff already saw
            due = None
    return Evaluation(fit, engagement, due, trigger)


@dataclass(frozen=True)
class Evaluation:
    fit: Score
    engagement: Score
    #: (reason, detail) when a handoff is due
    due: tuple[str, str] | None
    trigger: EventFact | None
