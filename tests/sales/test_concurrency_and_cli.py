"""Two workers handing off the same lead at once; the CLI commands on a real platform."""
from __future__ import annotations

import threading

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from nurture_mail.cli import common
from nurture_mail.cli import sales as sales_cli
from nurture_mail.models import Handoff, HandoffAssignment, HandoffState, Lead
from nurture_mail.sales.decision import HandoffDecision
from nurture_mail.sales.handoff import start_handoff

from .conftest import get_handoff, hand_off


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
