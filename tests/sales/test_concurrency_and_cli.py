"""Two workers handing off the same lead at once; the CLI commands on a real platform."""
from __future__ import annotations

import re
import threading

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from support.sales import get_handoff, hand_off

from nurture_mail.cli import common
from nurture_mail.cli import sales as sales_cli
from nurture_mail.models import Handoff, HandoffAssignment, HandoffState, Lead
from nurture_mail.sales.decision import HandoffDecision
from nurture_mail.sales.handoff import start_handoff


def test_two_workers_racing_hand_off_once(platform, team, clock):
    platform.add_lead("race@acme.example", region="AMER")
    with platform.svc.db.session() as session:
        lead_id = session.scalar(select(Lead.id).where(Lead.email == "race@acme.example"))
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def worker():
        try:
            with platform.svc.db.session() as session:
                barrier.wait()
                decision = HandoffDecision(lead_id, None, "hand_raiser", "clicked 'Book a demo'", None, clock.now())
                outcomes.append(start_handoff(platform.svc, session, decision, clock.now()))
        except OperationalError as exc:  # SQLite: the loser's write is refused ("database is locked")
            outcomes.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    handoffs = [o for o in outcomes if isinstance(o, Handoff)]
    assert len(outcomes) == 2 and len(handoffs) == 1
    with platform.svc.db.session() as session:
        assert len(session.scalars(select(Handoff)).all()) == 1
        assert len(session.scalars(select(HandoffAssignment)).all()) == 1
    assert len(platform.svc.queue) == 1  # one notification


@pytest.fixture
def cli(platform, monkeypatch):
    monkeypatch.setattr(common, "make_app", lambda: platform.app)
    monkeypatch.setattr(platform.svc, "close", lambda: None)  # the fixture closes it
    runner = CliRunner()

    def run(command, *args, ok=True):
        result = runner.invoke(command, list(args))
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run


def test_sync_list_and_act_from_the_cli(platform, cli, team_file, clock):
    out = cli(sales_cli.sync_sales_team_command, "--file", str(team_file)).output
    assert "reps: 6 created, 0 updated, 0 unchanged, 0 retired; territories: 2 created" in out
    assert "reps: 0 created, 0 updated, 6 unchanged" in cli(sales_cli.sync_sales_team_command,
                                                            "--file", str(team_file)).output
    bad = team_file.parent / "bad.yaml"
    bad.write_text("reps:\n  - {email: x@y.example, name: X, incoming: maybe}\n")
    failed = cli(sales_cli.sync_sales_team_command, "--file", str(bad), ok=False)
    assert failed.exit_code == 1 and f"{bad}: reps[0].incoming: expected true or false, got 'maybe'" in failed.output

    assert "no handoffs" in cli(sales_cli.handoffs_command).output
    platform.add_lead("cli@acme.example", region="AMER")
    handoff_id = hand_off(platform, "cli@acme.example")
    listing = cli(sales_cli.handoffs_command).output
    assert "cli@acme.example" in listing and "ava@sales.example" in listing and "notified" in listing
    assert "due 03-03 10:00" in listing and "pending" in listing  # SLA due, notification not sent yet
    platform.work()
    clock.advance(minutes=90)
    assert "0.0s" in cli(sales_cli.handoffs_command).output  # notification latency (frozen clock)

    refused = cli(sales_cli.handoff_command, "cli@acme.example", "won", "--value", "-3", ok=False)
    assert refused.exit_code == 1 and "value: a deal value cannot be negative" in refused.output
    assert "kind: --kind not_ready or bad_fit is required" in cli(sales_cli.handoff_command, "cli@acme.example",
                                                                  "reject", ok=False).output
    out = cli(sales_cli.handoff_command, str(handoff_id), "accept", "--actor", "ava@sales.example").output
    assert f"handoff #{handoff_id}: accepted" in out
    handoff = get_handoff(platform, handoff_id)
    assert handoff.state == HandoffState.accepted and handoff.actions[-1].via == "cli"
    assert "acted in 1h30" in cli(sales_cli.handoffs_command).output
    assert "no handoff 'nobody@acme.example'" in cli(sales_cli.handoff_command, "nobody@acme.example", "accept",
                                                     ok=False).output


def _scaled_clock_at(instant, speed):
    """A demo clock (``run --demo``) whose now is ``instant``, running ``speed`` times real time."""
    from datetime import datetime, timezone

    from nurture_mail.clock import ScaledClock

    real = datetime.now(timezone.utc)
    return ScaledClock(real + (real - instant) / (speed - 1), speed)


def test_handoffs_under_the_demo_clock_show_real_durations_never_negative(platform, cli, team, clock, monkeypatch):
    from datetime import timedelta

    platform.add_lead("demo@acme.example", region="AMER")
    handoff_id = hand_off(platform, "demo@acme.example", triggered_at=clock.now())
    with platform.svc.db.session() as session:
        handoff = session.get(Handoff, handoff_id)
        # As on a x1800 demo clock: notified 0.9 real seconds (27 demo minutes) after the click,
        # accepted 3 real minutes (90 demo hours) after the handoff.
        handoff.notified_at = handoff.triggered_at + timedelta(seconds=0.9 * 1800)
        handoff.first_action_at = handoff.created_at + timedelta(minutes=3 * 1800)
        created = handoff.created_at
    monkeypatch.setattr(platform.svc, "clock", _scaled_clock_at(created + timedelta(hours=60), 1800))
    row = next(line for line in cli(sales_cli.handoffs_command).output.splitlines() if "demo@acme.example" in line)
    assert " 0.9s " in row and "acted in 3m" in row
    assert " 2m " in row  # 60 demo hours = 2 real minutes old

    # Read on a clock behind the data (a real-time shell on a demo's data): no negative age.
    monkeypatch.setattr(platform.svc, "clock", _scaled_clock_at(created - timedelta(hours=60), 1800))
    result = cli(sales_cli.handoffs_command)
    row = next(line for line in result.output.splitlines() if "demo@acme.example" in line)
    assert " 0s " in row and not re.search(r" -\d", row)
    assert "dated after this clock's now" in result.output


def test_the_notification_latency_is_measured_in_real_seconds_on_a_demo_clock(platform, cli, team, monkeypatch):
    from datetime import datetime, timezone

    from nurture_mail.models import HandoffAction

    speed = 36000  # ten demo hours a real second: demo seconds could not pass for real ones
    demo = _scaled_clock_at(datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc), speed)
    monkeypatch.setattr(platform.svc, "clock", demo)
    platform.add_lead("fast@acme.example", region="AMER")
    handoff_id = hand_off(platform, "fast@acme.example", triggered_at=demo.now())
    platform.work()
    with platform.svc.db.session() as session:
        detail = session.scalar(select(HandoffAction.detail).where(
            HandoffAction.handoff_id == handoff_id, HandoffAction.action == "notified"))
        handoff = session.get(Handoff, handoff_id)
        demo_seconds = (handoff.notified_at - handoff.triggered_at).total_seconds()
    assert 0 <= detail["latency_seconds"] < 60 < demo_seconds
    assert abs(detail["latency_seconds"] - demo_seconds / speed) < 0.01
    row = next(line for line in cli(sales_cli.handoffs_command).output.splitlines() if "fast@acme.example" in line)
    assert f" {detail['latency_seconds']:.1f}s " in row
