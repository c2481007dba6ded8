"""The pure routing rules: rotation, territory match, business-hours SLA; the team file's checks."""
from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from nurture_mail.engine.routing import (
    RepCandidate,
    TerritoryRule,
    add_business_hours,
    match_territory,
    pick_incoming,
)
from nurture_mail.sales.team import SalesTeamError, parse_team

NINE, FIVE = time(9), time(17)


def rotate(reps: list[RepCandidate], handoffs: int, start: datetime) -> list[int]:
    """Simulate assignments: each pick becomes the most recently assigned."""
    order = []
    for n in range(handoffs):
        picked = pick_incoming(reps)
        order.append(picked.id)
        reps = [RepCandidate(r.id, r.available, r.incoming, start + timedelta(minutes=n)) if r.id == picked.id else r
                for r in reps]
    return order


def test_least_recently_assigned_first_never_assigned_before_all():
    t = datetime(2026, 3, 2, 9, tzinfo=UTC)
    reps = [RepCandidate(1, True, True, t - timedelta(hours=1)), RepCandidate(2, True, True, None),
            RepCandidate(3, True, True, t - timedelta(hours=2)), RepCandidate(4, True, True, None)]
    assert rotate(reps, 8, t) == [2, 4, 3, 1, 2, 4, 3, 1]


def test_unavailable_and_non_incoming_reps_are_skipped():
    t = datetime(2026, 3, 2, 9, tzinfo=UTC)
    reps = [RepCandidate(1, True, True, None), RepCandidate(2, False, True, None),
            RepCandidate(3, True, False, None), RepCandidate(4, True, True, None)]
    assert rotate(reps, 5, t) == [1, 4, 1, 4, 1]
    assert pick_incoming([RepCandidate(2, False, True, None)]) is None


def test_territory_most_specific_wins():
    territories = [TerritoryRule(1, "Americas", 10, region="AMER"),
                   TerritoryRule(2, "Americas finance", 11, region="AMER", industry="52"),
                   TerritoryRule(3, "Finance", 12, industry="5"),
                   TerritoryRule(4, "Banks", 13, industry="5221")]
    assert match_territory(territories, "amer", ["522110"]).name == "Americas finance"
    assert match_territory(territories, "AMER", ["7372"]).name == "Americas"
    assert match_territory(territories, "EMEA", [None, "522110"]).name == "Banks"
    assert match_territory(territories, "EMEA", ["5411"]).name == "Finance"
    assert match_territory(territories, "APAC", ["7372"]) is None
    assert match_territory(territories, None, []) is None


def test_friday_afternoon_handoff_is_due_monday_noon():
    friday = datetime(2026, 3, 6, 16, 0, tzinfo=UTC)
    assert friday.weekday() == 4
    assert add_business_hours(friday, 4, "UTC", NINE, FIVE) == datetime(2026, 3, 9, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("start, due", [
    (datetime(2026, 3, 2, 10, 0), datetime(2026, 3, 2, 14, 0)),   # Monday within hours
    (datetime(2026, 3, 2, 6, 30), datetime(2026, 3, 2, 13, 0)),   # before opening: counts from 09:00
    (datetime(2026, 3, 2, 20, 0), datetime(2026, 3, 3, 13, 0)),   # after closing: from Tuesday 09:00
    (datetime(2026, 3, 7, 11, 0), datetime(2026, 3, 9, 13, 0)),   # Saturday: from Monday 09:00
    (datetime(2026, 3, 2, 13, 0), datetime(2026, 3, 2, 17, 0)),   # ends exactly at closing
])
def test_business_hours_skip_nights_and_weekends(start, due):
    assert add_business_hours(start.replace(tzinfo=UTC), 4, "UTC", NINE, FIVE) == due.replace(tzinfo=UTC)


def test_business_hours_in_the_sales_timezone_across_dst():
    # New York moves to summer time on Sunday 2026-03-08: Friday 16:00 EST = 21:00 UTC,
    # due Monday 12:00 EDT = 16:00 UTC.
    start = datetime(2026, 3, 6, 21, 0, tzinfo=UTC)
    assert add_business_hours(start, 4, "America/New_York", NINE, FIVE) == datetime(2026, 3, 9, 16, 0, tzinfo=UTC)
    # A 20-hour SLA spans two and a half working days.
    assert add_business_hours(datetime(2026, 3, 2, 9, tzinfo=UTC), 20, "UTC", NINE, FIVE) == datetime(
        2026, 3, 4, 13, 0, tzinfo=UTC)


def test_team_file_errors_name_the_file_and_path():
    data = {
        "reps": [
            {"email": "ava@x.example", "name": "Ava", "incoming": "yes"},
            {"email": "AVA@x.example", "name": "Ava again"},
            {"email": "not-an-email", "name": "Bad"},
            {"email": "bo@x.example", "name": "Bo", "manager": "ghost@x.example", "avaliable": True},
            {"email": "cy@x.example", "name": "Cy\r\nBcc: x@evil.example"},
            {"email": "dee\x00@x.example", "name": "Dee"},
        ],
        "territories": [
            {"name": "Nowhere", "owner": "bo@x.example"},
            {"name": "EU", "region": "EMEA", "industry": "software", "owner": "nobody@x.example"},
        ],
    }
    with pytest.raises(SalesTeamError) as caught:
        parse_team(data, "team.yaml")
    lines = str(caught.value).splitlines()
    assert "team.yaml: reps[0].incoming: expected true or false, got 'yes'" in lines
    assert "team.yaml: reps[1].email: ava@x.example is already listed at reps[0]" in lines
    assert "team.yaml: reps[2].email: expected an email address, got 'not-an-email'" in lines
    assert "team.yaml: reps[4].name: contains a control character (carriage return); one line of text expected" in lines
    assert "team.yaml: reps[5].email: expected an email address, got 'dee\\x00@x.example'" in lines
    assert any(line.startswith("team.yaml: reps[3].avaliable: unknown key") for line in lines)
    assert "team.yaml: reps[3].manager: ghost@x.example is not a rep of this file" in lines
    assert "team.yaml: territories[0]: a territory needs a region, an industry, or both" in lines
    assert any(line.startswith("team.yaml: territories[1].industry: expected a SIC/NAICS") for line in lines)
    assert any(line.startswith("team.yaml: territories[1].owner: expected the email of a rep") for line in lines)


def test_the_sample_team_file_is_valid():
    from pathlib import Path

    from nurture_mail.sales.team import load_team

    team = load_team(Path(__file__).resolve().parents[2] / "campaigns" / "sales_team.yaml")
    assert sum(r.incoming for r in team.reps) == 3
    owners = {t.owner for t in team.territories}
    assert len(owners) == 2 and not owners & {r.email for r in team.reps if r.incoming}
    managers = {r.manager for r in team.reps if r.manager}
    assert len(managers) == 1
