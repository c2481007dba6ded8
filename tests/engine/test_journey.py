"""Journey preview: what a lead would get next, when and why, without sending anything (DESIGN §4)."""
from __future__ import annotations

import copy
from datetime import datetime, time, timedelta, timezone
from types import MappingProxyType
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from nurture_mail.engine import (
    CampaignPlan,
    Journey,
    Level,
    PlannedTouch,
    SendWindow,
    StepPlan,
    after_delivery,
    choose_next_step,
    in_window,
    preview_journey,
)
from nurture_mail.engine.plan import STAGES

UTC = timezone.utc
NY, LONDON, SYDNEY = ZoneInfo("America/New_York"), ZoneInfo("Europe/London"), ZoneInfo("Australia/Sydney")
U, X, E, K = Level.unknown, Level.exposed, Level.engaged, Level.known
DAY = 86400
# Monday 2026-03-02 14:00 UTC = 09:00 in New York.
MONDAY_0900_NY = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def step(key, stage="awareness", position=0, teaches=(), requires=(), alternate=None, alternate_of=None):
    return StepPlan(key, stage, position, frozenset(teaches), frozenset(requires), alternate, alternate_of)


def plan(*steps, cadence_seconds=3 * DAY, max_touches=12, window=SendWindow()):
    return CampaignPlan("test", tuple(steps), cadence_seconds=cadence_seconds, max_touches=max_touches,
                        window=window)


def three_steps(**kw):
    return plan(
        step("welcome", teaches=["risk"]),
        step("basics", "consideration", 0, teaches=["basics"]),
        step("pricing", "decision", 0, teaches=["pricing"], requires=["basics"]),
        **kw,
    )


def test_preview_lists_every_touch_with_cadence_spacing_inside_the_window():
    journey = preview_journey(three_steps(), {}, set(), 0, MONDAY_0900_NY, NY)
    assert isinstance(journey, Journey)
    assert journey.touches == (
        PlannedTouch("welcome", MONDAY_0900_NY, "teaches risk"),
        PlannedTouch("basics", datetime(2026, 3, 5, 14, 0, tzinfo=UTC), "teaches basics"),   # Thursday
        # Three days later is Sunday: held to Monday 09:00, which is EDT by then (UTC-4).
        PlannedTouch("pricing", datetime(2026, 3, 9, 13, 0, tzinfo=UTC), "teaches pricing"),
    )
    assert journey.skipped == ()
    assert journey.outcome == "every gap is filled or has been taught"


def test_first_touch_waits_for_the_window():
    saturday = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
    journey = preview_journey(three_steps(), {}, set(), 0, saturday, LONDON)
    assert journey.touches[0].send_at == datetime(2026, 3, 9, 9, 0, tzinfo=UTC)


def test_every_touch_is_inside_the_window_and_at_least_a_cadence_apart():
    campaign = plan(*(step(f"s{i}", position=i, teaches=[f"t{i}"]) for i in range(10)), cadence_seconds=36 * 3600)
    journey = preview_journey(campaign, {}, set(), 0, datetime(2026, 3, 20, 3, 17, tzinfo=UTC), SYDNEY)
    assert [t.step_key for t in journey.touches] == [f"s{i}" for i in range(10)]
    for touch in journey.touches:
        assert touch.send_at.tzinfo == UTC
        assert in_window(touch.send_at, SYDNEY, campaign.window)
    for a, b in zip(journey.touches, journey.touches[1:]):
        assert b.send_at - a.send_at >= timedelta(seconds=campaign.cadence_seconds)


def test_short_cadence_fits_several_touches_in_one_day():
    campaign = plan(*(step(f"s{i}", position=i) for i in range(4)), cadence_seconds=3 * 3600)
    journey = preview_journey(campaign, {}, set(), 0, MONDAY_0900_NY, NY)
    assert [t.send_at.astimezone(NY).strftime("%a %H:%M") for t in journey.touches] == [
        "Mon 09:00", "Mon 12:00", "Mon 15:00", "Tue 09:00",
    ]


def test_preview_shows_skipped_steps_with_their_reasons():
    campaign = plan(
        step("welcome", teaches=["risk"]),
        step("security", "consideration", 0, teaches=["security"]),
        step("legacy", "consideration", 1, teaches=["legacy"], requires=["mainframes"]),
        step("pricing", "decision", 0, teaches=["pricing"]),
    )
    journey = preview_journey(campaign, {"security": K}, set(), 0, MONDAY_0900_NY, NY)
    assert [t.step_key for t in journey.touches] == ["welcome", "pricing"]
    assert {(s.step.key, s.kind, s.reason) for s in journey.skipped} == {
        ("security", "known", "already knows security"),
        ("legacy", "prerequisite", "needs mainframes first"),
    }
    assert journey.outcome == "no step left whose prerequisites are met"


def test_a_step_held_back_for_a_prerequisite_and_sent_later_is_not_listed_as_skipped():
    campaign = plan(step("advanced", teaches=["adv"], requires=["basics"]),
                    step("basics", position=1, teaches=["basics"]))
    journey = preview_journey(campaign, {}, set(), 0, MONDAY_0900_NY, NY)
    assert [t.step_key for t in journey.touches] == ["basics", "advanced"]
    assert journey.skipped == ()


def test_preview_stops_at_max_touches_and_counts_touches_already_sent():
    journey = preview_journey(three_steps(max_touches=2), {}, set(), 0, MONDAY_0900_NY, NY)
    assert [t.step_key for t in journey.touches] == ["welcome", "basics"]
    assert journey.outcome == "reached max touches (2)"
    journey = preview_journey(three_steps(max_touches=2), {"risk": X}, {"welcome"}, 1, MONDAY_0900_NY, NY)
    assert [t.step_key for t in journey.touches] == ["basics"]
    journey = preview_journey(three_steps(max_touches=2), {}, set(), 2, MONDAY_0900_NY, NY)
    assert journey.touches == ()
    assert journey.outcome == "reached max touches (2)"


def test_preview_continues_from_what_was_delivered():
    journey = preview_journey(three_steps(), {"risk": X, "basics": X}, {"welcome", "basics"}, 2, MONDAY_0900_NY, NY)
    assert [t.step_key for t in journey.touches] == ["pricing"]


def test_preview_assumes_nothing_is_clicked_so_alternates_follow_the_primaries():
    campaign = plan(
        step("cost", teaches=["cost"], alternate="cost-alt"),
        step("cost-alt", teaches=["cost"], alternate_of="cost"),
        step("roi", "consideration", 0, teaches=["roi"]),
    )
    journey = preview_journey(campaign, {}, set(), 0, MONDAY_0900_NY, NY)
    assert [(t.step_key, t.reason) for t in journey.touches] == [
        ("cost", "teaches cost"), ("roi", "teaches roi"),
        ("cost-alt", "re-approaches cost (only exposed so far)"),
    ]
    assert journey.outcome == "every gap is filled or has been taught"


def test_completed_enrollment_previews_no_touch():
    journey = preview_journey(three_steps(), {"risk": K, "basics": K, "pricing": K}, set(), 0, MONDAY_0900_NY, NY)
    assert journey.touches == ()
    assert len(journey.skipped) == 3
    assert journey.outcome == "every gap is filled or has been taught"


def test_preview_never_mutates_its_inputs():
    campaign = plan(
        step("cost", teaches=["cost"], alternate="cost-alt"),
        step("cost-alt", teaches=["cost"], alternate_of="cost"),
        step("roi", "consideration", 0, teaches=["roi"], requires=["cost"]),
        step("pricing", "decision", 0, teaches=["pricing"]),
    )
    knowledge = {"pricing": K}
    delivered = {"welcome-from-before"}
    before = (copy.deepcopy(campaign), dict(knowledge), set(delivered))
    first = preview_journey(campaign, knowledge, delivered, 0, MONDAY_0900_NY, NY)
    assert (campaign, knowledge, delivered) == before
    # The same call again gives the same answer (no hidden state), and read-only inputs work.
    again = preview_journey(campaign, MappingProxyType(knowledge), frozenset(delivered), 0, MONDAY_0900_NY, NY)
    assert again == first
    assert [t.step_key for t in first.touches] == ["cost", "roi", "cost-alt"]


# -- the preview is the engine -----------------------------------------------------------------

TOPICS = ["t0", "t1", "t2", "t3", "t4", "t5"]


def topics_of(mask):
    return frozenset(t for i, t in enumerate(TOPICS) if mask >> i & 1)


STEP_SHAPES = st.tuples(st.integers(0, 63), st.integers(0, 63), st.sampled_from(STAGES), st.integers(0, 6),
                        st.sampled_from([False, False, True]))


@st.composite
def campaigns(draw):
    steps = []
    for i, (tm, rm, stage, position, alt) in enumerate(draw(st.lists(STEP_SHAPES, min_size=1, max_size=12))):
        teaches, key = topics_of(tm), f"s{i}"
        steps.append(StepPlan(key, stage, position, teaches, topics_of(rm) - teaches, alternate=f"{key}-alt" if alt else None))
        if alt:
            steps.append(StepPlan(f"{key}-alt", stage, position, teaches, topics_of(rm) - teaches, alternate_of=key))
    draw(st.randoms(use_true_random=False)).shuffle(steps)
    window = draw(st.sampled_from([SendWindow(), SendWindow(weekdays_only=False), SendWindow(time(7), time(9))]))
    return CampaignPlan("random", tuple(steps), cadence_seconds=draw(st.sampled_from([3600, 36 * 3600, 3 * DAY, 7 * DAY])),
                        max_touches=draw(st.integers(1, 20)), window=window)


@settings(max_examples=200, deadline=None, database=None)
@given(
    campaigns(),
    st.dictionaries(st.sampled_from(TOPICS), st.sampled_from([U, X, E, K]), max_size=6),
    st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 31)).map(lambda d: d.replace(tzinfo=UTC)),
    st.sampled_from([NY, LONDON, SYDNEY, ZoneInfo("Asia/Singapore")]),
    st.data(),
)
def test_property_preview_agrees_with_repeated_choose_next_step(campaign, knowledge, start, tz, data):
    delivered = set(data.draw(st.lists(st.sampled_from([s.key for s in campaign.steps]), max_size=3)))
    touches_sent = data.draw(st.integers(0, 3))
    journey = preview_journey(campaign, knowledge, delivered, touches_sent, start, tz)

    # What the scheduler would do, one choose_next_step at a time, nothing clicked.
    k, d, n, expected = dict(knowledge), set(delivered), touches_sent, []
    while True:
        decision = choose_next_step(campaign, k, d, n)
        if decision.complete:
            break
        expected.append((decision.step.key, decision.reason))
        d.add(decision.step.key)
        k = after_delivery(k, decision.step)
        n += 1
        assert n <= touches_sent + len(campaign.steps)
    assert [(t.step_key, t.reason) for t in journey.touches] == expected
    assert journey.outcome == decision.reason

    # Skips: the final decision's skips are all there, with its reasons; none was delivered.
    listed = {s.step.key: s for s in journey.skipped}
    for skip in decision.skipped:
        assert listed[skip.step.key] == skip
    assert not set(listed) & d

    # Timing: inside the window, a cadence apart, in UTC.
    times = [t.send_at for t in journey.touches]
    assert all(t.tzinfo == UTC and in_window(t, tz, campaign.window) for t in times)
    if times:
        assert times[0] >= start
    for a, b in zip(times, times[1:]):
        assert b - a >= timedelta(seconds=campaign.cadence_seconds)
