"""The content-gap engine (DESIGN §4): which step a lead gets next, and why others are skipped."""
from __future__ import annotations

from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nurture_mail.engine import CampaignPlan, Decision, Level, Skip, StepPlan, after_delivery, choose_next_step
from nurture_mail.engine.plan import STAGES

U, X, E, K = Level.unknown, Level.exposed, Level.engaged, Level.known


def step(key, stage="awareness", position=0, teaches=(), requires=(), alternate=None, alternate_of=None):
    return StepPlan(
        key=key, stage=stage, position=position, teaches=frozenset(teaches), requires=frozenset(requires),
        alternate=alternate, alternate_of=alternate_of,
    )


def plan(*steps, max_touches=12):
    return CampaignPlan("test", tuple(steps), max_touches=max_touches)


def run(campaign, knowledge=None, delivered=(), touches_sent=0, clicks=None):
    """Drive the engine like the scheduler does: choose, deliver, repeat until complete.

    ``clicks`` maps a step key to topics raised to engaged right after that step is delivered.
    Returns (sent keys, final decision, every decision).
    """
    knowledge = dict(knowledge or {})
    delivered = set(delivered)
    sent, decisions = [], []
    for _ in range(len(campaign.steps) + 2):
        decision = choose_next_step(campaign, knowledge, delivered, touches_sent)
        decisions.append(decision)
        if decision.complete:
            return sent, decision, decisions
        sent.append(decision.step.key)
        delivered.add(decision.step.key)
        knowledge = after_delivery(knowledge, decision.step)
        for topic in (clicks or {}).get(decision.step.key, ()):
            knowledge[topic] = max(knowledge.get(topic, U), E)
        touches_sent += 1
    raise AssertionError(f"engine did not complete: sent {sent}")


# -- 1. candidates and 2. skip what is known ---------------------------------------------------


def test_first_choice_is_the_first_step_and_says_what_it_teaches():
    campaign = plan(step("a", teaches=["x"]), step("b", position=1, teaches=["y"]))
    decision = choose_next_step(campaign, {}, set(), 0)
    assert decision.step.key == "a"
    assert not decision.complete
    assert decision.reason == "teaches x"
    assert decision.skipped == ()


def test_delivered_steps_are_not_candidates():
    campaign = plan(step("a", teaches=["x"]), step("b", position=1, teaches=["y"]))
    assert choose_next_step(campaign, {"x": X}, {"a"}, 1).step.key == "b"


@pytest.mark.parametrize("level", [E, K])
def test_step_is_skipped_when_every_taught_topic_is_engaged_or_known(level):
    campaign = plan(step("a", teaches=["x", "y"]), step("b", position=1, teaches=["z"]))
    decision = choose_next_step(campaign, {"x": level, "y": K}, set(), 0)
    assert decision.step.key == "b"
    assert decision.skipped == (Skip(campaign.step("a"), "known", "already knows x, y"),)


@pytest.mark.parametrize("level", [U, X])
def test_step_is_not_skipped_when_a_topic_is_only_exposed_or_unknown(level):
    campaign = plan(step("a", teaches=["x", "y"]), step("b", position=1, teaches=["z"]))
    knowledge = {"x": K, "y": level}
    decision = choose_next_step(campaign, knowledge, set(), 0)
    assert decision.step.key == "a"
    # The reason names only the gap, not the topic already known.
    assert decision.reason == "teaches y"


def test_exposed_topic_is_taught_again_by_its_own_step():
    """Exposed (delivered elsewhere, never clicked) is a gap, not knowledge."""
    campaign = plan(step("a", teaches=["x"]))
    assert choose_next_step(campaign, {"x": X}, set(), 0).step.key == "a"


def test_step_teaching_nothing_is_never_skipped_as_known():
    campaign = plan(step("welcome"), step("a", position=1, teaches=["x"]))
    everything_known = {"x": K, "y": K}
    decision = choose_next_step(campaign, everything_known, set(), 0)
    assert decision.step.key == "welcome"
    assert decision.reason == "next in campaign order"
    assert decision.skipped == ()
    sent, final, _ = run(campaign, everything_known)
    assert sent == ["welcome"]
    assert final.skipped == (Skip(campaign.step("a"), "known", "already knows x"),)


def test_knowledge_declared_at_enrollment_skips_steps():
    """Sales hands a lead over saying it already knows pricing and security."""
    campaign = plan(
        step("intro", teaches=["overview"]),
        step("security", "consideration", 0, teaches=["security"]),
        step("pricing", "decision", 0, teaches=["pricing"]),
        step("rollout", "decision", 1, teaches=["rollout", "pricing"]),
    )
    sent, final, decisions = run(campaign, {"security": K, "pricing": K})
    assert sent == ["intro", "rollout"]
    assert final.complete
    assert final.reason == "every gap is filled or has been taught"
    assert [(s.step.key, s.kind, s.reason) for s in decisions[1].skipped] == [
        ("security", "known", "already knows security"),
        ("pricing", "known", "already knows pricing"),
    ]
    assert decisions[1].reason == "teaches rollout"


def test_a_click_takes_effect_at_the_very_next_choice():
    campaign = plan(step("a", teaches=["x"]), step("b", position=1, teaches=["y"]),
                    step("c", position=2, teaches=["z"]))
    # The click on 'a' demonstrates interest in y as well (a link with topic y).
    sent, _, decisions = run(campaign, clicks={"a": ["y"]})
    assert sent == ["a", "c"]
    assert [s.step.key for s in decisions[1].skipped] == ["b"]


# -- 3. prerequisites first --------------------------------------------------------------------


def test_step_requiring_an_unknown_topic_waits_for_it_then_comes_back_in_order():
    campaign = plan(
        step("deep-dive", position=0, teaches=["advanced"], requires=["basics"]),
        step("basics", position=1, teaches=["basics"]),
        step("other", position=2, teaches=["other"]),
    )
    first = choose_next_step(campaign, {}, set(), 0)
    assert first.step.key == "basics"
    assert first.skipped == (Skip(campaign.step("deep-dive"), "prerequisite", "needs basics first"),)
    sent, final, _ = run(campaign)
    # Once basics is exposed, deep-dive is first in campaign order again, ahead of 'other'.
    assert sent == ["basics", "deep-dive", "other"]
    assert final.skipped == ()


@pytest.mark.parametrize("level", [X, E, K])
def test_prerequisite_is_met_once_the_topic_is_at_least_exposed(level):
    campaign = plan(step("a", teaches=["b"], requires=["x"]))
    assert choose_next_step(campaign, {"x": level}, set(), 0).step.key == "a"


def test_prerequisite_reason_lists_every_missing_topic_sorted():
    campaign = plan(step("a", teaches=["t"], requires=["zeta", "alpha", "mid"]), step("b", position=1))
    decision = choose_next_step(campaign, {"mid": X}, set(), 0)
    assert decision.step.key == "b"
    assert decision.skipped[0].kind == "prerequisite"
    assert decision.skipped[0].reason == "needs alpha, zeta first"


def test_known_skip_wins_over_prerequisite_skip():
    campaign = plan(step("a", teaches=["t"], requires=["x"]))
    decision = choose_next_step(campaign, {"t": K}, set(), 0)
    assert decision.skipped[0].kind == "known"


def test_prerequisite_that_never_arrives_completes_with_its_reason():
    campaign = plan(step("a", teaches=["t"], requires=["never"]), step("b", position=1, teaches=["u"]))
    sent, final, _ = run(campaign)
    assert sent == ["b"]
    assert final.complete
    assert final.reason == "no step left whose prerequisites are met"
    assert [(s.step.key, s.kind) for s in final.skipped] == [("a", "prerequisite")]


# -- 4. campaign order: stage, then position ---------------------------------------------------


def test_campaign_order_is_stage_order_then_position_not_definition_order():
    campaign = plan(
        step("d0", "decision", 0, teaches=["d0"]),
        step("c5", "consideration", 5, teaches=["c5"]),
        step("a9", "awareness", 9, teaches=["a9"]),
        step("c1", "consideration", 1, teaches=["c1"]),
        step("a2", "awareness", 2, teaches=["a2"]),
    )
    sent, _, _ = run(campaign)
    assert sent == ["a2", "a9", "c1", "c5", "d0"]


def test_decision_step_at_position_zero_comes_after_consideration_steps():
    campaign = plan(step("pricing", "decision", 0, teaches=["p"]),
                    step("compare", "consideration", 7, teaches=["c"]))
    assert choose_next_step(campaign, {}, set(), 0).step.key == "compare"


# -- 5. alternates ------------------------------------------------------------------------------


def alt_campaign(**kw):
    return plan(
        step("cost", "awareness", 0, teaches=["cost"], alternate="cost-alt"),
        step("cost-alt", "awareness", 0, teaches=["cost"], alternate_of="cost"),
        step("roi", "consideration", 0, teaches=["roi"], alternate="roi-alt"),
        step("roi-alt", "consideration", 0, teaches=["roi"], alternate_of="roi"),
        step("plain", "decision", 0, teaches=["plain"]),
        **kw,
    )


def test_alternates_come_only_after_every_primary_in_campaign_order():
    campaign = alt_campaign()
    sent, final, decisions = run(campaign)
    assert sent == ["cost", "roi", "plain", "cost-alt", "roi-alt"]
    assert decisions[3].reason == "re-approaches cost (only exposed so far)"
    assert final.reason == "every gap is filled or has been taught"


def test_alternates_wait_for_primaries_that_were_skipped_as_known_too():
    campaign = alt_campaign()
    sent, _, _ = run(campaign, {"roi": K})
    assert sent == ["cost", "plain", "cost-alt"]


@pytest.mark.parametrize("level", [E, K])
def test_no_alternate_when_the_topic_became_engaged_or_known(level):
    campaign = alt_campaign()
    knowledge = {"cost": X, "roi": level, "plain": X}
    decision = choose_next_step(campaign, knowledge, {"cost", "roi", "plain"}, 3)
    assert decision.step.key == "cost-alt"
    knowledge["cost"] = level
    decision = choose_next_step(campaign, knowledge, {"cost", "roi", "plain"}, 3)
    assert decision.complete


def test_clicked_primary_gets_no_alternate():
    sent, _, _ = run(alt_campaign(), clicks={"cost": ["cost"]})
    assert sent == ["cost", "roi", "plain", "roi-alt"]


def test_alternate_is_never_sent_twice():
    campaign = alt_campaign()
    knowledge = {"cost": X, "roi": X, "plain": X}
    decision = choose_next_step(campaign, knowledge, {"cost", "roi", "plain", "cost-alt", "roi-alt"}, 5)
    assert decision.complete


def test_no_alternate_for_a_primary_without_one():
    campaign = plan(step("a", teaches=["x"]), step("b", position=1, teaches=["y"], alternate="b-alt"),
                    step("b-alt", position=1, teaches=["y"], alternate_of="b"))
    decision = choose_next_step(campaign, {"x": X, "y": E}, {"a", "b"}, 2)
    assert decision.complete
    assert decision.reason == "every gap is filled or has been taught"


def test_alternate_re_approaches_only_the_topics_still_exposed():
    campaign = plan(step("a", teaches=["x", "y"], alternate="a2"),
                    step("a2", teaches=["x", "y"], alternate_of="a"))
    decision = choose_next_step(campaign, {"x": E, "y": X}, {"a"}, 1)
    assert decision.step.key == "a2"
    assert decision.reason == "re-approaches y (only exposed so far)"


def test_alternates_are_never_chosen_as_primaries():
    # The alternate sorts before its primary and before everything else, yet is no primary.
    campaign = plan(
        step("zz-alt", "awareness", 0, teaches=["x"], alternate_of="main"),
        step("main", "decision", 3, teaches=["x"], alternate="zz-alt"),
        step("other", "consideration", 0, teaches=["o"]),
    )
    assert [s.key for s in campaign.primary_steps()] == ["other", "main"]
    sent, _, decisions = run(campaign)
    assert sent == ["other", "main", "zz-alt"]
    # Before 'main' is delivered its alternate is not a candidate, and is never reported skipped.
    for decision in decisions[:2]:
        assert all(s.step.key != "zz-alt" for s in decision.skipped)


def test_no_alternate_for_a_primary_that_was_never_delivered():
    """Skipped as known or blocked by a prerequisite: there is nothing to re-approach."""
    campaign = plan(
        step("a", teaches=["x"], requires=["never"], alternate="a2"),
        step("a2", teaches=["x"], alternate_of="a"),
        step("b", position=1, teaches=["y"], alternate="b2"),
        step("b2", position=1, teaches=["y"], alternate_of="b"),
    )
    # x exposed by some other campaign's email, y known: no alternate applies.
    sent, final, _ = run(campaign, {"x": X, "y": K})
    assert sent == []
    assert final.complete


def test_alternate_stops_at_max_touches():
    campaign = alt_campaign(max_touches=3)
    sent, final, _ = run(campaign)
    assert sent == ["cost", "roi", "plain"]
    assert final.reason == "reached max touches (3)"


# -- max touches and completion ----------------------------------------------------------------


def test_max_touches_completes_the_enrollment_with_steps_left():
    campaign = plan(*(step(f"s{i}", position=i, teaches=[f"t{i}"]) for i in range(5)), max_touches=3)
    sent, final, _ = run(campaign)
    assert sent == ["s0", "s1", "s2"]
    assert final.complete and final.step is None
    assert final.reason == "reached max touches (3)"


def test_touches_from_before_count_towards_max():
    campaign = plan(step("a", teaches=["x"]), max_touches=2)
    assert choose_next_step(campaign, {}, set(), 2).reason == "reached max touches (2)"
    assert choose_next_step(campaign, {}, set(), 5).complete
    assert choose_next_step(campaign, {}, set(), 1).step.key == "a"


def test_completion_when_every_step_was_sent():
    campaign = plan(step("a", teaches=["x"]))
    decision = choose_next_step(campaign, {"x": X}, {"a"}, 1)
    assert decision == Decision(None, "every gap is filled or has been taught", ())
    assert decision.complete


def test_completion_when_everything_is_known_lists_every_skip():
    campaign = plan(step("a", teaches=["x"]), step("b", "decision", 0, teaches=["y"]))
    decision = choose_next_step(campaign, {"x": K, "y": E}, set(), 0)
    assert decision.complete
    assert decision.reason == "every gap is filled or has been taught"
    assert [(s.step.key, s.kind, s.reason) for s in decision.skipped] == [
        ("a", "known", "already knows x"), ("b", "known", "already knows y"),
    ]


def test_empty_campaign_completes():
    assert choose_next_step(plan(), {}, set(), 0).complete


def test_choose_next_step_does_not_mutate_its_inputs():
    campaign = alt_campaign()
    knowledge = MappingProxyType({"cost": X})
    delivered = frozenset({"cost"})
    choose_next_step(campaign, knowledge, delivered, 1)
    assert dict(knowledge) == {"cost": X}


# -- after_delivery ----------------------------------------------------------------------------


def test_after_delivery_exposes_unknown_topics_and_keeps_higher_levels():
    original = {"b": E, "c": K, "d": X, "other": U}
    updated = after_delivery(original, step("s", teaches=["a", "b", "c", "d"]))
    assert updated == {"a": X, "b": E, "c": K, "d": X, "other": U}
    assert original == {"b": E, "c": K, "d": X, "other": U}
    assert updated is not original


def test_after_delivery_of_a_step_teaching_nothing_changes_nothing():
    assert after_delivery({"a": E}, step("welcome")) == {"a": E}


# -- properties over random campaigns ----------------------------------------------------------

TOPICS = ["t0", "t1", "t2", "t3", "t4", "t5"]
LEVELS = [U, X, E, K]


def topics_of(mask: int) -> frozenset[str]:
    return frozenset(t for i, t in enumerate(TOPICS) if mask >> i & 1)


# One step: (teaches bitmask, requires bitmask, stage, position, has an alternate).
STEP_SHAPES = st.tuples(
    st.integers(0, 63), st.integers(0, 63), st.sampled_from(STAGES), st.integers(0, 6),
    st.sampled_from([False, False, True]),
)


@st.composite
def campaigns(draw):
    """1-12 primary steps over six topics, random stages and positions (ties too), some alternates,
    listed in a random order (the engine must sort them itself)."""
    shapes = draw(st.lists(STEP_SHAPES, min_size=1, max_size=12))
    steps = []
    for i, (teach_mask, require_mask, stage, position, has_alternate) in enumerate(shapes):
        teaches = topics_of(teach_mask)
        requires = topics_of(require_mask) - teaches
        key = f"s{i}"
        alternate = f"s{i}-alt" if has_alternate else None
        steps.append(StepPlan(key, stage, position, teaches, requires, alternate=alternate))
        if alternate:
            steps.append(StepPlan(alternate, stage, position, teaches, requires, alternate_of=key))
    draw(st.randoms(use_true_random=False)).shuffle(steps)
    max_touches = draw(st.integers(1, 20))
    return CampaignPlan("random", tuple(steps), max_touches=max_touches)


knowledge_maps = st.dictionaries(st.sampled_from(TOPICS), st.sampled_from(LEVELS), max_size=6)
# Between touches: a bitmask of topics raised (as a click or a sales note would), and to which level.
CLICKS = st.tuples(st.integers(0, 63), st.sampled_from([E, K]))


def eligible(s, knowledge):
    knows_all = bool(s.teaches) and all(knowledge.get(t, U) >= E for t in s.teaches)
    blocked = any(knowledge.get(t, U) == U for t in s.requires)
    return not knows_all and not blocked


@settings(max_examples=200, deadline=None, database=None)
@given(st.data(), campaigns(), knowledge_maps)
def test_property_simulated_enrollments_keep_every_engine_invariant(data, campaign, knowledge):
    """Drive the engine like the scheduler: choose, deliver, expose, sometimes click, repeat.

    (a) no step key is chosen twice; (b) a step whose every taught topic is engaged/known is never
    chosen; (c) touches never exceed max_touches; (d) a completion decision comes within
    len(steps)+1 choices; (e) a chosen step has no unknown prerequisite. Also: the choice is the
    first eligible primary in campaign order, and an alternate only when no primary is eligible,
    its primary was delivered and one of its topics is still only exposed.
    """
    knowledge = dict(knowledge)
    delivered: set[str] = set()
    chosen: list[str] = []
    for _ in range(len(campaign.steps) + 1):
        decision = choose_next_step(campaign, knowledge, delivered, len(chosen))
        if decision.complete:
            break
        s = decision.step
        # (a)
        assert s.key not in delivered, f"{s.key} chosen twice"
        # (b)
        if s.teaches:
            assert not all(knowledge.get(t, U) >= E for t in s.teaches), f"{s.key} re-teaches known {knowledge}"
        # (e)
        assert all(knowledge.get(t, U) > U for t in s.requires), f"{s.key} sent before {s.requires}: {knowledge}"
        # (c)
        assert len(chosen) < campaign.max_touches
        # campaign order and alternate rules
        open_primaries = [p for p in campaign.primary_steps() if p.key not in delivered and eligible(p, knowledge)]
        if s.alternate_of is None:
            assert open_primaries[0] == s
        else:
            assert not open_primaries
            assert s.alternate_of in delivered
            assert campaign.step(s.alternate_of).alternate == s.key
            assert any(knowledge.get(t, U) == X for t in s.teaches)
        chosen.append(s.key)
        delivered.add(s.key)
        knowledge = after_delivery(knowledge, s)
        mask, level = data.draw(CLICKS, label="clicks")
        for topic in topics_of(mask):
            knowledge[topic] = max(knowledge.get(topic, U), level)
    else:
        raise AssertionError(f"(d) no completion within {len(campaign.steps) + 1} choices: chose {chosen}")
    # (a), (c), (d)
    assert len(chosen) == len(set(chosen))
    assert len(chosen) <= campaign.max_touches
    assert decision.complete and decision.step is None
    if len(chosen) == campaign.max_touches:
        assert decision.reason == f"reached max touches ({campaign.max_touches})"
    else:
        assert decision.reason in {"no step left whose prerequisites are met", "every gap is filled or has been taught"}


@settings(max_examples=100, deadline=None, database=None)
@given(campaigns(), knowledge_maps, st.data())
def test_property_skips_explain_every_passed_over_step(campaign, knowledge, data):
    delivered = set(data.draw(st.lists(st.sampled_from([s.key for s in campaign.steps]), max_size=4)))
    decision = choose_next_step(campaign, knowledge, delivered, 0)
    primaries = [s for s in campaign.primary_steps() if s.key not in delivered]
    cut = primaries.index(decision.step) if decision.step in primaries else len(primaries)
    assert [s.step for s in decision.skipped] == primaries[:cut]
    for skip in decision.skipped:
        if skip.kind == "known":
            assert skip.step.teaches and all(knowledge.get(t, U) >= E for t in skip.step.teaches)
            assert skip.reason == "already knows " + ", ".join(sorted(skip.step.teaches))
        else:
            assert skip.kind == "prerequisite"
            missing = sorted(t for t in skip.step.requires if knowledge.get(t, U) == U)
            assert missing and skip.reason == f"needs {', '.join(missing)} first"
