"""The pure scoring engine: fit, engagement with half-life decay, explained lines, the handoff rule."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nurture_mail.engine.scoring import (
    EngagementRules,
    EventFact,
    FitRules,
    HandoffRule,
    IndustryRule,
    LeadFacts,
    RangeRule,
    RegionRule,
    RuleOverride,
    Score,
    ScoreLine,
    ScoringRules,
    decay_factor,
    engagement_score,
    evaluate,
    first_hand_raiser,
    fit_score,
    handoff_due,
)

NOW = datetime(2026, 3, 16, 12, 0, tzinfo=timezone.utc)
WEIGHTS = {"open": 1, "click": 5, "reply": 10, "form": 15, "webinar": 15, "meeting": 25, "hand_raiser": 30}
RULES = ScoringRules(
    fit=FitRules(
        industry=(IndustryRule("software", 15, sic=("737",), naics=("5112",)),
                  IndustryRule("finance", 12, naics=("52",))),
        employees=(RangeRule("mid-market", 20, 200, 2000), RangeRule("tiny", -10, None, 19)),
        revenue=(RangeRule("USD 20M–1B", 10, 20_000_000, 1_000_000_000),),
        region=(RegionRule("covered", 5, ("north-america", "EMEA")),),
        qualification={"budget": 6, "urgency": 6, "pain_validated": 5},
    ),
    engagement=EngagementRules(WEIGHTS, half_life_days=14),
    handoff=HandoffRule(engagement_at_least=25, fit_at_least=40, hand_raiser=True),
)


def click(at, label="Security whitepaper", *, id=1, delivery=1, link=1, hand_raiser=False, bot=None):
    return EventFact(id=id, kind="click", at=at, delivery_id=delivery, link_id=link, label=label,
                     hand_raiser=hand_raiser, suspected_bot=bot is not None, bot_reason=bot)


# -- fit ---------------------------------------------------------------------------------------


def test_fit_explains_each_category_and_known_attribute():
    facts = LeadFacts(industry_sic="7372", employees=600, revenue=50_000_000, region="North-America",
                      qualification={"budget": "USD 80k approved", "urgency": "", "pain_validated": True})
    score = fit_score(facts, RULES)
    assert [line.text for line in score.lines] == [
        "+15 industry SIC 7372 is software",
        "+20 employees 600: mid-market",
        "+10 revenue 50,000,000: USD 20M–1B",
        "+5 region North-America: covered",
        "+6 budget known",
        "+5 pain validated known",
    ]
    assert score.total == 61


def test_fit_first_matching_rule_per_category_and_negative_points():
    facts = LeadFacts(industry_naics="522110", employees=8)
    score = fit_score(facts, RULES)
    assert [line.text for line in score.lines] == ["+12 industry NAICS 522110 is finance", "−10 employees 8: tiny"]
    assert score.total == 2


def test_fit_of_an_unknown_lead_is_zero_with_no_lines():
    assert fit_score(LeadFacts(), RULES) == Score(0, ())


# -- engagement --------------------------------------------------------------------------------


def test_click_line_names_the_link_and_shows_the_decay():
    score = engagement_score([click(NOW - timedelta(days=14), id=7)], RULES, NOW)
    [line] = score.lines
    assert (line.points, line.raw, line.event_id) == (2.5, 5, 7)
    assert line.text == "+5 clicked 'Security whitepaper' on 2026-03-02 (→ 2.5 after decay)"
    assert line.as_json()["at"] == "2026-03-02T12:00:00+00:00"
    assert score.total == 2.5


def test_a_fresh_event_shows_no_decay():
    [line] = engagement_score([click(NOW)], RULES, NOW).lines
    assert line.text == "+5 clicked 'Security whitepaper' on 2026-03-16"


def test_bots_listed_with_zero_and_their_reason_and_unsubscribes_add_nothing():
    events = [
        click(NOW, bot="clicked 2 s after delivery", id=1),
        EventFact(id=2, kind="unsubscribe", at=NOW),
        EventFact(id=3, kind="open", at=NOW, delivery_id=1, title="welcome"),
    ]
    score = engagement_score(events, RULES, NOW)
    assert score.total == 1
    texts = [line.text for line in score.lines]
    assert "+0 clicked 'Security whitepaper' on 2026-03-16: ignored, suspected bot (clicked 2 s after delivery)" in texts
    assert "+0 unsubscribed on 2026-03-16: no points" in texts
    assert "+1 opened email 'welcome' on 2026-03-16" in texts


def test_repeats_count_once_but_other_links_and_emails_count():
    events = [click(NOW, id=i) for i in range(1, 6)]  # one link clicked five times
    events.append(click(NOW, "Pricing", id=6, link=2))
    events.append(click(NOW, id=7, delivery=2))  # the same link in another email
    events += [EventFact(id=8 + i, kind="open", at=NOW, delivery_id=1) for i in range(3)]
    assert engagement_score(events, RULES, NOW).total == 5 + 5 + 5 + 1


def test_hand_raiser_weighs_most_and_external_kinds_score():
    events = [click(NOW, "Book a demo", hand_raiser=True),
              EventFact(id=2, kind="webinar", at=NOW, title="CSPM 101"),
              EventFact(id=3, kind="meeting", at=NOW), EventFact(id=4, kind="reply", at=NOW)]
    score = engagement_score(events, RULES, NOW)
    texts = {line.text for line in score.lines}
    assert "+30 clicked hand-raiser 'Book a demo' on 2026-03-16" in texts
    assert "+15 attended webinar 'CSPM 101' on 2026-03-16" in texts
    assert score.total == 30 + 15 + 25 + 10


def test_lines_are_newest_first():
    events = [click(NOW - timedelta(days=3), "Old", id=1, link=1), click(NOW, "New", id=2, link=2)]
    assert [line.event_id for line in engagement_score(events, RULES, NOW).lines] == [2, 1]


@given(st.floats(min_value=0, max_value=3650), st.floats(min_value=0.01, max_value=3650),
       st.floats(min_value=0.5, max_value=365))
def test_decay_never_grows_with_age(younger, extra, half_life):
    assert decay_factor(younger + extra, half_life) <= decay_factor(younger, half_life) <= 1


@given(st.integers(min_value=1, max_value=365), st.integers(min_value=0, max_value=8))
def test_half_life_is_exact(half_life, periods):
    assert decay_factor(half_life * periods, half_life) == pytest.approx(0.5 ** periods, rel=1e-12)


@given(st.lists(st.integers(min_value=0, max_value=60 * 24 * 90), min_size=1, max_size=20),
       st.integers(min_value=1, max_value=60 * 24 * 30))
def test_engagement_never_grows_as_time_passes(minutes_ago, later):
    events = [click(NOW - timedelta(minutes=m), f"link {i}", id=i, link=i) for i, m in enumerate(minutes_ago)]
    now_score = engagement_score(events, RULES, NOW).total
    later_score = engagement_score(events, RULES, NOW + timedelta(minutes=later)).total
    assert later_score <= now_score


def test_an_event_from_the_future_counts_in_full():
    assert engagement_score([click(NOW + timedelta(hours=1))], RULES, NOW).total == 5


# -- handoff -----------------------------------------------------------------------------------


def test_score_rule_needs_both_thresholds():
    fit, low_fit = Score(45), Score(39.99)
    hot, cold = Score(25), Score(24.9)
    assert handoff_due(RULES.handoff, fit, hot, None) == ("score", "engagement 25 ≥ 25 and fit 45 ≥ 40")
    assert handoff_due(RULES.handoff, low_fit, hot, None) is None
    assert handoff_due(RULES.handoff, fit, cold, None) is None


def test_any_human_hand_raiser_click_wins_unless_the_campaign_turns_it_off():
    raiser = click(NOW, "Book a demo", hand_raiser=True)
    assert handoff_due(RULES.handoff, Score(0), Score(0), raiser) == (
        "hand_raiser", "clicked hand-raiser 'Book a demo' on 2026-03-16")
    off = HandoffRule(engagement_at_least=25, fit_at_least=40, hand_raiser=False)
    assert handoff_due(off, Score(0), Score(0), raiser) is None


def test_a_bot_hand_raiser_click_is_no_hand_raiser():
    events = [click(NOW, "Book a demo", hand_raiser=True, bot="scanner")]
    assert first_hand_raiser(events) is None
    assert evaluate(LeadFacts(), events, RULES, NOW).due is None


def test_a_null_threshold_is_not_required_and_two_nulls_turn_the_score_rule_off():
    engagement_only = HandoffRule(engagement_at_least=10, fit_at_least=None)
    assert handoff_due(engagement_only, Score(0), Score(10), None) == ("score", "engagement 10 ≥ 10")
    assert handoff_due(HandoffRule(None, None), Score(100), Score(100), None) is None


def test_evaluate_names_the_tipping_event_and_ignores_evidence_before_the_last_handoff():
    facts = LeadFacts(industry_sic="7372", employees=600, region="emea")  # fit 40
    events = [click(NOW - timedelta(hours=h), f"link {h}", id=h, link=h) for h in range(1, 6)]  # ~25
    events.append(click(NOW - timedelta(minutes=5), "Pricing", id=99, link=99))
    result = evaluate(facts, events, RULES, NOW)
    assert result.due is not None and result.due[0] == "score"
    assert result.trigger.id == 99
    handed_off_at = NOW - timedelta(minutes=1)
    assert evaluate(facts, events, RULES, NOW, since=handed_off_at).due is None
    raiser = click(NOW - timedelta(hours=2), "Book a demo", id=50, link=50, hand_raiser=True)
    assert evaluate(LeadFacts(), [raiser], RULES, NOW, since=handed_off_at).due is None
    assert evaluate(LeadFacts(), [raiser], RULES, NOW).trigger.id == 50


def test_a_campaign_override_changes_weights_half_life_and_thresholds():
    override = RuleOverride(handoff={"engagement_at_least": 4, "hand_raiser": False},
                            weights={"click": 8}, half_life_days=7)
    rules = RULES.overridden(override)
    assert rules.engagement.weights["click"] == 8 and rules.engagement.weights["open"] == 1
    assert rules.engagement.half_life_days == 7
    assert rules.handoff == HandoffRule(engagement_at_least=4, fit_at_least=40, hand_raiser=False)
    assert engagement_score([click(NOW - timedelta(days=7))], rules, NOW).total == 4
    assert RULES.overridden(RuleOverride()) is RULES


def test_score_line_json_has_the_stored_shape():
    data = ScoreLine(7.5, "clicked 'X' on 2026-03-02", NOW, 3, 15).as_json()
    assert data == {"points": 7.5, "raw": 15, "reason": "clicked 'X' on 2026-03-02",
                    "at": NOW.isoformat(), "event_id": 3, "text": "+15 clicked 'X' on 2026-03-02 (→ 7.5 after decay)"}


def test_a_long_history_folds_its_oldest_lines_and_still_adds_up():
    events = [click(NOW - timedelta(hours=i), f"link {i}", id=i, link=i) for i in range(150)]
    score = engagement_score(events, RULES, NOW)
    assert len(score.lines) == 100
    assert score.lines[0].event_id == 0
    last = score.lines[-1]
    assert (last.reason, last.raw, last.event_id) == ("51 earlier events", 255, None)
    assert score.total == pytest.approx(sum(line.points for line in score.lines), abs=0.01)


# -- handoff rule defaults, industry and region -------------------------------------------------


def opened(at, *, id, delivery):
    return EventFact(id=id, kind="open", at=at, delivery_id=delivery)


def test_after_a_handoff_only_engagement_earned_since_meets_the_threshold():
    """A lead rejected as not ready is not handed back by one more open."""
    facts = LeadFacts(industry_sic="7372", employees=600, region="emea")  # fit 40
    handed_off_at = NOW - timedelta(days=1)
    old = [EventFact(id=1, kind="meeting", at=handed_off_at - timedelta(hours=2)),
           EventFact(id=2, kind="reply", at=handed_off_at - timedelta(hours=1))]  # 35, ~33 now
    assert evaluate(facts, old, RULES, NOW).due is not None  # what handed it off
    reopen = opened(NOW - timedelta(minutes=5), id=3, delivery=7)
    result = evaluate(facts, [*old, reopen], RULES, NOW, since=handed_off_at)
    assert result.due is None
    assert result.engagement.total > 25  # the stored score keeps the whole history
    # New evidence of its own that meets the threshold: handed off again, and the detail says so.
    fresh = [EventFact(id=4, kind="meeting", at=NOW - timedelta(minutes=3)), reopen]
    result = evaluate(facts, [*old, *fresh], RULES, NOW, since=handed_off_at)
    assert result.due == ("score", "engagement since the last handoff 26 ≥ 25 and fit 40 ≥ 40")
    assert result.trigger.id == 4


def test_reopening_an_email_already_opened_before_the_handoff_is_not_new_evidence():
    engagement_only = ScoringRules(RULES.fit, RULES.engagement, HandoffRule(engagement_at_least=1))
    handed_off_at = NOW - timedelta(days=1)
    first = opened(handed_off_at - timedelta(hours=1), id=1, delivery=7)
    again = opened(NOW - timedelta(minutes=1), id=2, delivery=7)
    assert evaluate(LeadFacts(), [first, again], engagement_only, NOW, since=handed_off_at).due is None
    other = opened(NOW - timedelta(minutes=1), id=3, delivery=8)
    assert evaluate(LeadFacts(), [first, other], engagement_only, NOW, since=handed_off_at).due is not None


def test_a_fit_only_rule_fires_without_any_event_and_again_only_after_new_engagement():
    """``engagement_at_least: null`` needs no tipping event (none can exist)."""
    fit_only = ScoringRules(RULES.fit, RULES.engagement, HandoffRule(None, 40, hand_raiser=True))
    facts = LeadFacts(industry_sic="7372", employees=600, region="emea")
    result = evaluate(facts, [], fit_only, NOW)
    assert (result.due, result.trigger) == (("score", "fit 40 ≥ 40"), None)
    assert evaluate(LeadFacts(employees=600), [], fit_only, NOW).due is None
    handed_off_at = NOW - timedelta(days=2)
    assert evaluate(facts, [], fit_only, NOW, since=handed_off_at).due is None  # recycled: not straight back
    later = click(NOW - timedelta(hours=1), id=5)
    result = evaluate(facts, [later], fit_only, NOW, since=handed_off_at)
    assert result.due == ("score", "fit 40 ≥ 40") and result.trigger.id == 5


def test_free_text_industry_and_region_names_ignore_case_and_punctuation():
    """An imported industry ("Financial Services") and region or country score."""
    rules = FitRules(
        industry=(IndustryRule("software", 15, sic=("737",), names=("SaaS", "software")),
                  IndustryRule("healthcare", 12, sic=("80",), names=("hospital and health care",))),
        region=(RegionRule("EMEA", 5, ("EMEA", "Spain", "ES", "United Kingdom")),),
    )
    lines = fit_score(LeadFacts(industry_name=" saas ", region="united-kingdom"), rules).lines
    assert [line.text for line in lines] == ["+15 industry saas is software", "+5 region united-kingdom: EMEA"]
    assert fit_score(LeadFacts(industry_name="Hospital & Health Care", region="es"), rules).total == 17
    # A code decides before the name: SIC 8011 is healthcare whatever the free text says.
    assert [line.text for line in fit_score(LeadFacts(industry_sic="8011", industry_name="SaaS"), rules).lines] == [
        "+12 industry SIC 8011 is healthcare"]
    assert fit_score(LeadFacts(industry_name="Logistics", region="Narnia"), rules).total == 0
