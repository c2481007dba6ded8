"""Report numbers against a world built through the real send path (see scenario.py)."""
from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from support.sales import get_handoff

from nurture_mail.models import Step, StepDayCount
from nurture_mail.reports import run_report
from nurture_mail.reports.common import DateRange
from nurture_mail.reports.counters import refresh_days, step_counts
from nurture_mail.sales import actions

from . import scenario


@pytest.fixture
def world(platform, team):
    return scenario.build(platform)


def report(platform, name, **params):
    with platform.svc.db.session() as session:
        return run_report(name, session, platform.svc.config, platform.clock.now(), params)


def rows_by(result, key):
    return {row[key]: row for row in result.table().rows}


def test_steps_count_what_the_smtp_server_received_and_exclude_bots(platform, world):
    received = scenario.received_per_step(platform)
    assert sum(received.values()) >= 10  # five welcomes, then the second touch
    steps = rows_by(report(platform, "steps", campaign="northwind-security", **{"from": "2026-03-01"}), "step")
    for key, row in steps.items():
        assert row["sent"] == received.get(key, 0), key
        assert row["delivered"] == row["sent"]
        assert row["opens"] == world.human_opens.get(key, 0), key
        assert row["clicks"] == world.human_clicks.get(key, 0), key
    result = report(platform, "campaigns", **{"from": "2026-03-01"})
    [row] = result.table().rows
    assert row["sent"] == sum(received.values())
    assert (row["opens"], row["clicks"]) == (2, 2)  # Pia's scanner hits count nowhere
    assert row["enrolled"] == 5 and row["handed_off"] == 3
    assert f"{world.bot_hits} bot-flagged events excluded" in result.notes[0]


def test_stored_daily_counters_give_the_same_numbers_as_the_live_count(platform, world):
    span = DateRange(datetime(2026, 3, 1).date(), datetime(2026, 3, 6).date())
    with platform.svc.db.session() as session:
        live = step_counts(session, span)
        refresh_days(session, [span.start.replace(day=d) for d in range(1, 7)], platform.clock.now())
    with platform.svc.db.session() as session:
        stored = step_counts(session, span)
        rows = session.scalar(select(func.count()).select_from(StepDayCount))
        platform.clock.advance(minutes=30)  # activity after the refresh is counted live on top
        steps = session.scalar(select(func.count()).select_from(Step))

    def nonzero(counts):
        return {k: dict(v) for k, v in counts.items() if any(v.values())}

    assert nonzero(stored) == nonzero(live)
    assert rows == 5 * steps  # 1 to 5 March, every step, idle ones as zeros (6 March is still to come)
    assert sum(v["sent"] for v in stored.values()) >= 10


def test_closure_and_forecast_match_hand_computed_values(platform, world):
    svc, now = platform.svc, platform.clock.now()
    nora, omar, pia = (world.handoffs[e] for e in scenario.LEADS if e in world.handoffs)
    with svc.db.session() as session:
        h = {i: get_handoff(platform, i) for i in (nora, omar, pia)}
        for i in h:
            h[i] = session.merge(h[i])
        actions.accept(session, h[nora], "rep@test", "web", now)
        actions.mark_won(session, h[nora], "rep@test", "web", "30000", now)
        actions.accept(session, h[omar], "rep@test", "web", now)
        actions.mark_lost(session, h[omar], "rep@test", "web", "went with a competitor", now)
        actions.accept(session, h[pia], "rep@test", "web", now)
    closure = report(platform, "closure", **{"from": "2026-03-01"})
    by = {(r["dimension"], r["group"]): r for r in closure.table().rows}
    assert by[("lead source", "webinar")]["handed_off"] == 2 and by[("lead source", "webinar")]["won"] == 1
    assert by[("lead source", "webinar")]["closure_rate"] == 0.5
    assert by[("lead source", "trade show")]["closure_rate"] == 0.0
    assert by[("industry", "Transportation")]["won_value"] == Decimal("30000.00")
    assert by[("role", "Director / head")]["won"] == 1 and by[("size", "250–999")]["won"] == 1
    assert "3 handoffs in the range, 1 won: closure rate 33.3%" in closure.summary[0]
    forecast = report(platform, "forecast", **{"from": "2026-03-01"})
    model = forecast.options["model"]
    assert model["win_rate"] == 0.5 and model["deal_value"] == Decimal("30000.00")
    [rep] = forecast.table("reps").rows  # Pia's deal, accepted just now: age 0, probability = win rate
    assert (rep["deals"], rep["pipeline"], rep["forecast_30"]) == (1, Decimal("30000.00"), Decimal("15000.00"))
    horizons = {r["horizon"]: r for r in forecast.table().rows}
    # Nora was won the moment she was accepted: the cycle is 1 day (the floor), so Pia is due within 30.
    assert horizons["30 days"]["forecast"] == Decimal("15000.00") == horizons["90 days"]["forecast"]
    assert forecast.options["pipeline"] == Decimal("30000.00")
    monthly = report(platform, "monthly", month="2026-03")
    figures = monthly.options["figures"]
    assert (figures.new_prospects, figures.handed_off) == (5, 3)
    assert figures.worth == Decimal("60000.00")  # won 30,000 + Pia open at the mean won deal (30,000)
    assert figures.developing == 0  # the two who clicked were handed to sales this month
    assert "5 new prospects entered nurture" in monthly.summary[0]


def test_each_csv_parses_and_matches_its_page(platform, world, users):
    client = platform.app.test_client()
    from .conftest import sign_in

    sign_in(client, "viewer@northwind.example")
    for name in ("campaigns", "steps", "topics", "closure", "reps", "forecast", "monthly"):
        params = {"from": "2026-03-01"} if name != "monthly" else {"month": "2026-03"}
        response = client.get(f"/reports/{name}.csv", query_string=params)
        assert response.status_code == 200 and response.mimetype == "text/csv"
        parsed = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
        page = client.get(f"/reports/{name}", query_string=params).get_data(as_text=True)
        table = report(platform, name, **params).table()
        assert parsed[0] == [c.label for c in table.columns]
        assert len(parsed) - 1 == len(table.rows)
        for line in parsed[1:]:
            for cell, column in zip(line, table.columns):
                if column.kind in ("int", "money", "pct") and cell:
                    shown = f"{int(cell):,}" if column.kind == "int" else (
                        f"${float(cell):,.2f}" if column.kind == "money" else cell)
                    assert f">{shown}<" in page, (name, column.label, shown)
                elif cell:
                    if cell[:2] in ("'+", "'-", "'=", "'@"):
                        cell = cell[1:]  # the CSV's guard against spreadsheet formulas
                    assert cell.replace("&", "&amp;") in page.replace("&#39;", "'"), (name, column.label, cell)
