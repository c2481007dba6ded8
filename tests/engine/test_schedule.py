"""Send windows: local business hours in the lead's own timezone (DESIGN §3, Campaign)."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nurture_mail.engine import SendWindow, in_window, next_in_window, zone

UTC = timezone.utc
NY, LONDON = ZoneInfo("America/New_York"), ZoneInfo("Europe/London")
SINGAPORE, SYDNEY = ZoneInfo("Asia/Singapore"), ZoneInfo("Australia/Sydney")
BUSINESS = SendWindow()  # 09:00-17:00, weekdays only
EVERY_DAY = SendWindow(weekdays_only=False)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def local(tz, *args):
    return datetime(*args, tzinfo=tz)


def test_default_window_is_nine_to_five_on_weekdays():
    assert BUSINESS == SendWindow(time(9), time(17), True)


# -- in_window ---------------------------------------------------------------------------------

# Monday 2026-03-02: New York is UTC-5, London UTC+0, Singapore UTC+8, Sydney UTC+11 (AEDT).
@pytest.mark.parametrize("tz, instant, expected", [
    (NY, utc(2026, 3, 2, 14, 0), True),             # 09:00 local: the start is inside
    (NY, utc(2026, 3, 2, 13, 59, 59), False),       # 08:59:59
    (NY, utc(2026, 3, 2, 21, 59, 59), True),        # 16:59:59
    (NY, utc(2026, 3, 2, 22, 0), False),            # 17:00 local: the end is outside
    (LONDON, utc(2026, 3, 2, 9, 0), True),
    (LONDON, utc(2026, 3, 2, 17, 0), False),
    (SINGAPORE, utc(2026, 3, 2, 1, 0), True),       # 09:00 in Singapore, 01:00 UTC
    (SINGAPORE, utc(2026, 3, 2, 9, 0), False),      # 17:00 in Singapore
    (SYDNEY, utc(2026, 3, 1, 22, 0), True),         # Sunday in UTC, Monday 09:00 in Sydney
    (SYDNEY, utc(2026, 3, 2, 6, 0), False),         # Monday 17:00 in Sydney
])
def test_in_window_uses_the_leads_local_time(tz, instant, expected):
    assert in_window(instant, tz, BUSINESS) is expected


@pytest.mark.parametrize("tz", [NY, LONDON, SINGAPORE, SYDNEY])
def test_weekend_is_outside_a_weekdays_only_window_and_inside_an_every_day_one(tz):
    saturday_noon = local(tz, 2026, 3, 7, 12, 0)
    sunday_noon = local(tz, 2026, 3, 8, 12, 0)
    for instant in (saturday_noon, sunday_noon):
        assert not in_window(instant, tz, BUSINESS)
        assert in_window(instant, tz, EVERY_DAY)
        assert in_window(instant.astimezone(UTC), tz, EVERY_DAY)


def test_weekend_is_decided_by_the_local_day_not_the_utc_day():
    # Friday 23:00 UTC is already Saturday 10:00 in Sydney ...
    assert not in_window(utc(2026, 3, 6, 23, 0), SYDNEY, BUSINESS)
    # ... and Sunday 23:00 UTC is Monday 10:00 there.
    assert in_window(utc(2026, 3, 8, 23, 0), SYDNEY, BUSINESS)


# -- next_in_window ----------------------------------------------------------------------------


@pytest.mark.parametrize("tz", [NY, LONDON, SINGAPORE, SYDNEY])
def test_an_instant_inside_the_window_is_returned_unchanged_in_utc(tz):
    instant = local(tz, 2026, 3, 4, 11, 17, 5)  # a Wednesday
    result = next_in_window(instant, tz, BUSINESS)
    assert result == instant
    assert result.tzinfo == UTC


@pytest.mark.parametrize("tz, earliest, expected", [
    # Before hours: later the same day.
    (NY, local(NY, 2026, 3, 2, 7, 0), utc(2026, 3, 2, 14, 0)),
    (SINGAPORE, local(SINGAPORE, 2026, 3, 3, 0, 30), utc(2026, 3, 3, 1, 0)),
    # After hours: the next day's start.
    (NY, local(NY, 2026, 3, 2, 17, 0), utc(2026, 3, 3, 14, 0)),
    (LONDON, local(LONDON, 2026, 3, 3, 23, 59), utc(2026, 3, 4, 9, 0)),
    (SINGAPORE, local(SINGAPORE, 2026, 3, 2, 18, 0), utc(2026, 3, 3, 1, 0)),
    (SYDNEY, local(SYDNEY, 2026, 3, 3, 17, 30), utc(2026, 3, 3, 22, 0)),
    # Friday after hours: Monday (weekdays only).
    (LONDON, local(LONDON, 2026, 3, 6, 17, 0), utc(2026, 3, 9, 9, 0)),
    (SINGAPORE, local(SINGAPORE, 2026, 3, 6, 20, 0), utc(2026, 3, 9, 1, 0)),
    (SYDNEY, local(SYDNEY, 2026, 3, 6, 17, 0), utc(2026, 3, 8, 22, 0)),  # Monday 09:00 AEDT
    # Saturday, before or after hours, and Sunday: Monday.
    (LONDON, local(LONDON, 2026, 3, 7, 8, 0), utc(2026, 3, 9, 9, 0)),
    (LONDON, local(LONDON, 2026, 3, 7, 12, 0), utc(2026, 3, 9, 9, 0)),
    (SINGAPORE, local(SINGAPORE, 2026, 3, 8, 23, 0), utc(2026, 3, 9, 1, 0)),
])
def test_next_in_window_weekdays_only(tz, earliest, expected):
    result = next_in_window(earliest, tz, BUSINESS)
    assert result == expected
    assert result.tzinfo == UTC
    assert result.astimezone(tz).time() == time(9, 0)
    assert result.astimezone(tz).weekday() < 5


@pytest.mark.parametrize("tz", [NY, LONDON, SINGAPORE, SYDNEY])
def test_weekends_are_allowed_when_not_weekdays_only(tz):
    friday_evening = local(tz, 2026, 3, 13, 18, 0)
    result = next_in_window(friday_evening, tz, EVERY_DAY)
    assert result.astimezone(tz) == local(tz, 2026, 3, 14, 9, 0)  # Saturday 09:00
    saturday_noon = local(tz, 2026, 3, 14, 12, 0)
    assert next_in_window(saturday_noon, tz, EVERY_DAY) == saturday_noon


def test_custom_window_hours():
    window = SendWindow(time(10, 30), time(12, 0), weekdays_only=True)
    assert next_in_window(local(LONDON, 2026, 3, 2, 12, 0), LONDON, window) == utc(2026, 3, 3, 10, 30)
    assert next_in_window(local(LONDON, 2026, 3, 2, 10, 29), LONDON, window) == utc(2026, 3, 2, 10, 30)


def test_earliest_given_in_another_zone_is_compared_as_an_instant():
    # 08:00 in London is 03:00 in New York: the New York window opens at 14:00 UTC.
    assert next_in_window(local(LONDON, 2026, 3, 2, 8, 0), NY, BUSINESS) == utc(2026, 3, 2, 14, 0)


# -- daylight saving time ----------------------------------------------------------------------


def test_us_spring_forward_weekend_gives_monday_0900_edt():
    # Friday 2026-03-06 after hours in EST; clocks go forward on Sunday 2026-03-08.
    result = next_in_window(local(NY, 2026, 3, 6, 18, 0), NY, BUSINESS)
    assert result == utc(2026, 3, 9, 13, 0)  # 09:00 EDT (UTC-4), not 14:00 UTC
    assert result.astimezone(NY).time() == time(9, 0)


def test_us_spring_forward_day_itself_gives_local_0900():
    result = next_in_window(local(NY, 2026, 3, 7, 18, 0), NY, EVERY_DAY)
    assert result == utc(2026, 3, 8, 13, 0)
    assert result.astimezone(NY).replace(tzinfo=None) == datetime(2026, 3, 8, 9, 0)


def test_us_spring_forward_from_inside_the_skipped_hour():
    # 01:59 EST on the day; one second later it is 03:00 EDT. The window still opens at 09:00 EDT.
    earliest = utc(2026, 3, 8, 6, 59)
    assert next_in_window(earliest, NY, EVERY_DAY) == utc(2026, 3, 8, 13, 0)


def test_eu_spring_forward_weekend_gives_monday_0900_bst():
    # Clocks go forward in London on Sunday 2026-03-29 at 01:00 UTC.
    result = next_in_window(local(LONDON, 2026, 3, 27, 17, 30), LONDON, BUSINESS)
    assert result == utc(2026, 3, 30, 8, 0)
    assert result.astimezone(LONDON).time() == time(9, 0)
    sunday = next_in_window(local(LONDON, 2026, 3, 28, 17, 30), LONDON, EVERY_DAY)
    assert sunday == utc(2026, 3, 29, 8, 0)
    assert sunday.astimezone(LONDON).replace(tzinfo=None) == datetime(2026, 3, 29, 9, 0)


def test_fall_back_days_also_give_local_0900():
    # New York falls back on 2026-11-01, London on 2026-10-25, Sydney springs forward 2026-10-04.
    assert next_in_window(local(NY, 2026, 10, 31, 18, 0), NY, EVERY_DAY) == utc(2026, 11, 1, 14, 0)
    assert next_in_window(local(LONDON, 2026, 10, 24, 18, 0), LONDON, EVERY_DAY) == utc(2026, 10, 25, 9, 0)
    assert next_in_window(local(SYDNEY, 2026, 10, 3, 18, 0), SYDNEY, EVERY_DAY) == utc(2026, 10, 3, 22, 0)


def test_window_opening_inside_the_dst_gap_opens_when_the_clocks_jump():
    window = SendWindow(time(2, 30), time(6, 0), weekdays_only=False)
    earliest = local(NY, 2026, 3, 7, 18, 0)
    assert in_window(utc(2026, 3, 8, 7, 0), NY, window)  # 03:00 EDT is inside the window
    assert next_in_window(earliest, NY, window) == utc(2026, 3, 8, 7, 0)  # actual: 07:30 UTC


# -- zone --------------------------------------------------------------------------------------


def test_zone_returns_the_named_zone():
    assert zone("Asia/Singapore") == SINGAPORE
    assert zone("Australia/Sydney", "Europe/London") == SYDNEY


@pytest.mark.parametrize("name", [None, "", "Mars/Olympus_Mons", "america/new_yrok", "../../etc/passwd",
                                  "/etc/localtime", "Europe/London\x00"])
def test_unknown_or_empty_zone_falls_back_to_the_default(name):
    assert zone(name) == ZoneInfo("UTC")
    assert zone(name, "America/New_York") == NY


def test_unknown_fallback_falls_back_to_utc():
    assert zone("Nowhere/Special", "Also/Nowhere") == ZoneInfo("UTC")
    assert zone(None, "") == ZoneInfo("UTC")


@pytest.mark.parametrize("name", ["America", "US", "Europe"])
def test_zone_named_after_a_tz_folder_falls_back_to_the_default(name):
    assert zone(name, "Europe/London") == LONDON


# -- properties --------------------------------------------------------------------------------

ZONES = [NY, LONDON, SINGAPORE, SYDNEY, ZoneInfo("UTC"), ZoneInfo("Asia/Kolkata"), ZoneInfo("America/Los_Angeles")]
# Window edges from 04:00 on: every DST gap or overlap of these zones is between 00:00 and 04:00.
def _window(start: int, length: int, weekdays_only: bool) -> SendWindow:
    end = time(start + length) if start + length <= 23 else time(23, 59)
    return SendWindow(time(start), end, weekdays_only)


windows = st.builds(_window, st.integers(4, 20), st.integers(1, 10), st.booleans())
instants = st.datetimes(datetime(2025, 12, 1), datetime(2027, 2, 1)).map(lambda d: d.replace(tzinfo=UTC))


@settings(max_examples=200, deadline=None, database=None)
@given(instants, st.sampled_from(ZONES), windows)
def test_property_next_in_window_is_the_first_instant_inside_the_window(earliest, tz, window):
    result = next_in_window(earliest, tz, window)
    assert result.tzinfo == UTC
    assert result >= earliest
    assert in_window(result, tz, window)
    if in_window(earliest, tz, window):
        assert result == earliest
    else:
        # It opens exactly at the window start, and nothing earlier was inside the window.
        assert result.astimezone(tz).time() == window.start
        assert not in_window(result - timedelta(seconds=1), tz, window)
        probe = earliest
        while probe < result:
            assert not in_window(probe, tz, window), probe
            probe += timedelta(minutes=20)
    # Never more than a long weekend away.
    assert result - earliest < timedelta(days=3, hours=2)
