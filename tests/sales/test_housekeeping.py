"""Sales housekeeping: a late assignment restarts the clocks, notifications are re-sent a bounded
number of times and never after a permanent refusal, two runs at once do the work once, a transfer
ends the manager's escalation, and the notify lease outlives the commit of its record."""
from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select
from support.sales import get_handoff, hand_off, rep_email, sales_links, sync_team

from nurture_mail.models import (
    HandoffAction,
    HandoffAssignment,
)
from nurture_mail.sales.destinations.email import notify_by_email
from nurture_mail.sales.handoff import sla_due
from nurture_mail.sales.housekeeping import (
    RENOTIFY_MAX,
    _write_lock,
    escalate_overdue,
    run_housekeeping,
)

FRIDAY_4PM = datetime(2026, 3, 6, 16, 0, tzinfo=UTC)


def housekeeping(platform, at):
    platform.clock.set(at)
    with platform.app.app_context():
        return run_housekeeping(platform.svc, at)


def unavailable_team(team):
    text = team.read_text().replace("available: false, ", "")
    team.write_text(text.replace("{email:", "{available: false, email:"))


def test_a_late_assignment_restarts_the_sla_and_ownership_clocks(platform, team, clock):
    clock.set(FRIDAY_4PM - timedelta(days=4))  # Monday
    original = team.read_text()
    unavailable_team(team)
    sync_team(platform, team)
    platform.add_lead("late@acme.example", region="AMER")
    handoff_id = hand_off(platform, "late@acme.example")
    assert get_handoff(platform, handoff_id).rep_id is None
    later = clock.now() + timedelta(days=3)
    clock.set(later)
    team.write_text(original)
    sync_team(platform, team)
    report = housekeeping(platform, later)
    assert report.assigned == 1 and report.escalated == 0
    handoff = get_handoff(platform, handoff_id)
    assert handoff.sla_due_at == sla_due(platform.svc.config, later)
    assert handoff.ownership_ends_at == later + timedelta(days=platform.svc.config.ownership_days)
    assert handoff.dossier["handoff"]["sla_due_at"] == handoff.sla_due_at.isoformat()
    assert housekeeping(platform, later + timedelta(minutes=1)).escalated == 0


def test_a_permanently_refused_notification_is_not_renotified(platform, team, clock):
    platform.add_lead("nobody@acme.example", region="AMER")
    platform.smtp.fail_next(550, "5.1.1 no such user")
    handoff_id = hand_off(platform, "nobody@acme.example")
    platform.work()
    assert [a.action for a in get_handoff(platform, handoff_id).actions] == ["notify_failed"]
    for minutes in (3, 15, 30):
        platform.svc.redis.delete(f"nurture:sales:renotify:{handoff_id}")
        assert housekeeping(platform, clock.now() + timedelta(minutes=minutes)).renotified == 0
    assert len(platform.svc.queue) == 0


def test_a_lost_notification_is_renotified_a_bounded_number_of_times(platform, team, clock):
    platform.add_lead("lost@acme.example", region="AMER")
    handoff_id = hand_off(platform, "lost@acme.example")
    platform.svc.queue.empty()  # the job is lost
    start = clock.now()
    counts = []
    for n in range(RENOTIFY_MAX + 2):
        platform.svc.redis.delete(f"nurture:sales:renotify:{handoff_id}")  # the lease has expired
        counts.append(housekeeping(platform, start + timedelta(minutes=3 + 10 * n)).renotified)
        platform.svc.queue.empty()  # and the job is lost again
    assert counts == [1] * RENOTIFY_MAX + [0, 0]
    renotify = [a for a in get_handoff(platform, handoff_id).actions if a.action == "renotify"]
    assert [a.detail["attempt"] for a in renotify] == list(range(1, RENOTIFY_MAX + 1))


def test_two_housekeeping_runs_at_once_escalate_once(platform, team, clock):
    clock.set(FRIDAY_4PM)
    platform.add_lead("twice@acme.example", region="AMER")
    handoff_id = hand_off(platform, "twice@acme.example")
    platform.work()
    due = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
    clock.set(due)
    results: list[object] = []

    def second_run():
        try:
            with platform.app.app_context():
                results.append(run_housekeeping(platform.svc, due))
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            results.append(exc)

    with platform.app.app_context(), platform.svc.db.Session() as first:
        _write_lock(first)
        assert escalate_overdue(platform.svc, first, due) == 1  # not committed yet
        thread = threading.Thread(target=second_run)
        thread.start()
        time.sleep(1.0)
        first.commit()
    thread.join(60)
    [report] = results
    assert report.escalated == 0
    with platform.svc.db.session() as session:
        roles = session.scalars(select(HandoffAssignment.role).where(HandoffAssignment.handoff_id == handoff_id))
        assert sorted(roles) == ["escalation", "incoming"]
        assert len(session.scalars(select(HandoffAction).where(HandoffAction.action == "escalate")).all()) == 1


def test_the_notify_lease_is_released_after_the_record_commits(platform, team, clock, monkeypatch):
    platform.add_lead("lease@acme.example", region="AMER")
    handoff_id = hand_off(platform, "lease@acme.example")
    redis = platform.svc.redis
    original = redis.delete
    seen: list[bool] = []

    def delete(*keys):
        if any(str(k).startswith("nurture:sales:notify:") for k in keys):
            with platform.svc.db.session() as session:
                seen.append(session.scalar(select(HandoffAction.id).where(
                    HandoffAction.handoff_id == handoff_id, HandoffAction.action == "notified")) is not None)
        return original(*keys)

    monkeypatch.setattr(redis, "delete", delete)
    with platform.app.app_context():
        assert notify_by_email(platform.svc, handoff_id).outcome == "sent"
        assert notify_by_email(platform.svc, handoff_id).outcome == "already-sent"
    assert seen == [True]
    assert len(platform.received(to="ava@sales.example")) == 1


def test_a_transfer_ends_the_managers_escalation(platform, team, clock):
    clock.set(FRIDAY_4PM)
    platform.add_lead("esc@acme.example", first_name="Esc", region="AMER")
    handoff_id = hand_off(platform, "esc@acme.example")
    platform.work()
    assert housekeeping(platform, datetime(2026, 3, 9, 12, 0, tzinfo=UTC)).escalated == 1
    platform.work()
    [escalation] = platform.received(to="mo@sales.example")
    manager_path = urlsplit(sales_links(escalation.text)["Accept"]).path
    client = platform.app.test_client()
    assert client.get(manager_path).status_code == 200
    assert housekeeping(platform, FRIDAY_4PM + timedelta(days=14)).transferred == 1
    handoff = get_handoff(platform, handoff_id)
    assert rep_email(platform, handoff.rep_id) == "dee@sales.example"
    assert {(a.role, a.ended_at is None) for a in handoff.assignments} == {
        ("incoming", False), ("escalation", False), ("territory", True)}
    assert client.get(manager_path).status_code == 403
