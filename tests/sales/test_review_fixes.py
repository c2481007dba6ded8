"""Regression tests for the review findings fixed on the sales side (numbers from review 1)."""
from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from integration.conftest import Platform
from sqlalchemy import select

from nurture_mail.cli import common
from nurture_mail.cli import sales as sales_cli
from nurture_mail.models import (
    Enrollment,
    EnrollmentState,
    Event,
    EventKind,
    Handoff,
    HandoffAction,
    HandoffAssignment,
    HandoffState,
    Lead,
    LeadScore,
    LeadStatus,
)
from nurture_mail.nurture.enroll import EnrollmentRefused, enroll, enrollment_blocker, find_campaign
from nurture_mail.sales import actions
from nurture_mail.sales.actions import HandoffActionError
from nurture_mail.sales.destinations.email import notify_by_email
from nurture_mail.sales.destinations.webhook import verify, webhook_secret_text
from nurture_mail.sales.dossier import HISTORY_LIMIT
from nurture_mail.sales.handoff import sla_due
from nurture_mail.sales.housekeeping import (
    RENOTIFY_MAX,
    _write_lock,
    escalate_overdue,
    run_housekeeping,
)
from nurture_mail.sales.links import MARGIN_DAYS

from .conftest import get_handoff, hand_off, rep_email, sales_links, sync_team
from .test_webhook import Receiver

FRIDAY_4PM = datetime(2026, 3, 6, 16, 0, tzinfo=UTC)


def housekeeping(platform, at):
    platform.clock.set(at)
    with platform.app.app_context():
        return run_housekeeping(platform.svc, at)


def run_cli(platform, monkeypatch, command, *args):
    monkeypatch.setattr(common, "make_app", lambda: platform.app)
    monkeypatch.setattr(platform.svc, "close", lambda: None)
    result = CliRunner().invoke(command, list(args))
    assert result.exit_code == 0, result.output
    return result


# -- 1: links are kept out of the stored / posted dossier and expire ---------------------------


def test_links_are_only_in_the_email_and_expire(platform, team, clock):
    platform.add_lead("leak@acme.example", first_name="Lea", region="AMER")
    handoff_id = hand_off(platform, "leak@acme.example")
    platform.work()
    handoff = get_handoff(platform, handoff_id)
    stored = json.dumps(handoff.dossier)
    assert handoff.dossier["links"] == {} and "/sales/handoffs/" not in stored
    assert "Open:" not in handoff.dossier["text"]
    [message] = platform.received(to="ava@sales.example")
    links = sales_links(message.text)
    path = urlsplit(links["Accept"]).path
    client = platform.app.test_client()
    clock.advance(days=platform.svc.config.ownership_days + MARGIN_DAYS - 1)
    assert client.get(path).status_code == 200  # still within the window and its margin
    clock.advance(days=2)
    expired = client.get(path)
    assert expired.status_code == 410 and "This link has expired" in expired.get_data(as_text=True)


# -- 2: the webhook key is derived from SECRET_KEY, never SECRET_KEY itself ----------------------


def test_webhook_without_its_secret_signs_with_a_derived_key_the_cli_prints(make_app, database_url, smtp_server,
                                                                           clock, team_file, monkeypatch):
    with Receiver([200]) as receiver:
        app = make_app(database_url, smtp_port=smtp_server.port, sales_webhook_url=receiver.url,
                       sales_webhook_secret="", retry_backoff_seconds=0, sales_webhook_timeout=5.0)
        platform = Platform(app, smtp_server, clock)
        platform.sync()
        sync_team(platform, team_file)
        platform.add_lead("derived@acme.example", region="AMER")
        hand_off(platform, "derived@acme.example")
        platform.work()
    [post] = receiver.posts
    config = platform.svc.config
    printed = run_cli(platform, monkeypatch, sales_cli.webhook_secret_command).stdout.strip().splitlines()[0]
    assert printed == webhook_secret_text(config) and len(printed) == 64
    assert printed != config.secret_key and config.secret_key not in printed
    headers = post["headers"]
    assert verify(printed.encode(), headers["X-Nurture-Timestamp"], post["body"], headers["X-Nurture-Signature"])
    assert not verify(config.secret_key.encode(), headers["X-Nurture-Timestamp"], post["body"],
                      headers["X-Nurture-Signature"])


# -- 3: many handoffs at the same instant still rotate -----------------------------------------


def test_handoffs_at_the_same_instant_rotate(platform, team, clock):
    emails = [f"same{n}@acme.example" for n in range(6)]
    for email in emails:
        platform.add_lead(email, region="AMER")
    assigned = [rep_email(platform, get_handoff(platform, hand_off(platform, email)).rep_id) for email in emails]
    assert assigned == ["ava@sales.example", "cy@sales.example"] * 3


# -- 5: enroll refuses leads sales holds, hygiene-flagged and erased leads ---------------------


def test_enroll_refuses_sales_held_and_flagged_leads_unless_sales_overrides(platform, team, clock):
    platform.add_lead("held@acme.example", region="AMER")
    platform.add_lead("info@acme.example", hygiene=["role_account"])
    platform.add_lead("fresh@acme.example")
    enrollment_id = platform.enroll("held@acme.example")
    handoff_id = hand_off(platform, "held@acme.example")
    with platform.svc.db.session() as session:
        held = session.scalar(select(Lead).where(Lead.email == "held@acme.example"))
        flagged = session.scalar(select(Lead).where(Lead.email == "info@acme.example"))
        assert "handed_off" in enrollment_blocker(held) and "failed hygiene (role_account)" in enrollment_blocker(flagged)
        campaign = find_campaign(session, "northwind-security")
        with pytest.raises(EnrollmentRefused) as refused:
            enroll(session, held, campaign, clock.now())
        assert "handed_off" in refused.value.reason and refused.value.field == "email"
        with pytest.raises(EnrollmentRefused, match="failed hygiene"):
            enroll(session, flagged, campaign, clock.now(), override=True)  # override never lifts hygiene
        session.rollback()
    assert platform.enrollment(enrollment_id).state == EnrollmentState.exited
    platform.enroll("fresh@acme.example")  # plain new leads: unchanged
    # Sales closes the deal, then declares the customer should be nurtured: allowed.
    with platform.svc.db.session() as session:
        actions.mark_won(session, session.get(Handoff, handoff_id), "ava@sales.example", "api", "100", clock.now())
    with platform.svc.db.session() as session:
        lead = session.scalar(select(Lead).where(Lead.email == "held@acme.example"))
        enrollment = actions.hand_to_nurture(session, platform.svc, lead, "northwind-security", [], "ava",
                                             clock.now())
        assert enrollment.state == EnrollmentState.active and lead.status == LeadStatus.nurturing
        flagged = session.scalar(select(Lead).where(Lead.email == "info@acme.example"))
        with pytest.raises(HandoffActionError, match=r"info@acme.example cannot be nurtured: it failed hygiene"):
            actions.hand_to_nurture(session, platform.svc, flagged, "northwind-security", [], "ava", clock.now())
        session.rollback()


def test_reject_not_ready_still_recycles_but_not_an_erased_lead(platform, team, clock):
    platform.add_lead("gone@acme.example", region="AMER")
    platform.enroll("gone@acme.example")
    handoff_id = hand_off(platform, "gone@acme.example")
    with platform.svc.db.session() as session:
        session.scalar(select(Lead).where(Lead.email == "gone@acme.example")).erased_at = clock.now()
    with platform.svc.db.session() as session:
        with pytest.raises(HandoffActionError, match="erased"):
            actions.reject(session, platform.svc, session.get(Handoff, handoff_id), "ava", "api", "not_ready",
                           "later", clock.now())
        session.rollback()
    assert get_handoff(platform, handoff_id).state == HandoffState.notified


# -- 9: two actions at once: exactly one applies ----------------------------------------------


def test_a_stale_second_action_is_refused(platform, team, clock):
    platform.add_lead("dup@acme.example", region="AMER")
    handoff_id = hand_off(platform, "dup@acme.example")
    with platform.svc.db.Session() as stale:
        seen = stale.get(Handoff, handoff_id)
        assert seen.state == HandoffState.notified
        with platform.svc.db.session() as session:  # the rep marks it won meanwhile
            actions.mark_won(session, session.get(Handoff, handoff_id), "ava@sales.example", "web", "500",
                             clock.now())
        with pytest.raises(HandoffActionError, match="is won"):
            actions.reject(stale, platform.svc, seen, "mo@sales.example", "api", "bad_fit", "no budget",
                           clock.now())
        stale.rollback()
    handoff = get_handoff(platform, handoff_id)
    assert handoff.state == HandoffState.won and [a.action for a in handoff.actions] == ["won"]
    with platform.svc.db.session() as session:
        assert session.scalar(select(Lead.status).where(Lead.email == "dup@acme.example")) == LeadStatus.won


def test_double_submit_in_two_threads_applies_once(platform, team, clock):
    platform.add_lead("twice@acme.example", region="AMER")
    handoff_id = hand_off(platform, "twice@acme.example")
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def submit(kind: str):
        try:
            with platform.svc.db.session() as session:
                handoff = session.get(Handoff, handoff_id)
                barrier.wait()
                if kind == "won":
                    actions.mark_won(session, handoff, "ava@sales.example", "web", "10", clock.now())
                else:
                    actions.mark_lost(session, handoff, "mo@sales.example", "api", "went elsewhere", clock.now())
            outcomes.append(kind)
        except HandoffActionError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=submit, args=(k,)) for k in ("won", "lost")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 2 and sum(isinstance(o, HandoffActionError) for o in outcomes) == 1
    handoff = get_handoff(platform, handoff_id)
    assert len(handoff.actions) == 1 and handoff.state.value == handoff.actions[0].action


# -- 10: a late assignment gets a fresh SLA and ownership window -------------------------------


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


# -- 13: a permanent SMTP refusal is not re-sent forever ---------------------------------------


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


# -- 14: two housekeeping runs at once do the work once ----------------------------------------


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


# -- 15: the notify lease outlives the commit of the "notified" record -------------------------


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


# -- 20, 21: a bounded dossier, no bot lines in its score --------------------------------------


def test_the_dossier_history_is_capped_and_bot_score_lines_dropped(platform, team, clock):
    lead_id = platform.add_lead("busy@acme.example", region="AMER")
    start = clock.now() - timedelta(days=30)
    with platform.svc.db.session() as session:
        for n in range(HISTORY_LIMIT + 20):
            session.add(Event(lead_id=lead_id, kind=EventKind.open, at=start + timedelta(minutes=n), detail={}))
        for n in range(3):
            session.add(Event(lead_id=lead_id, kind=EventKind.click, at=start + timedelta(minutes=n),
                              suspected_bot=True, bot_reason="scanner", detail={}))
        session.add(LeadScore(lead_id=lead_id, computed_at=clock.now(), fit=10.0, engagement=3.0, fit_breakdown=[],
                              engagement_breakdown=[
                                  {"points": 0.0, "reason": "clicked 'x': ignored, suspected bot (scanner)"},
                                  {"points": 3.0, "reason": "opened 'welcome'"}]))
    dossier = get_handoff(platform, hand_off(platform, "busy@acme.example")).dossier
    history = dossier["history"]
    assert len(history) == HISTORY_LIMIT and dossier["history_omitted"] == 20
    assert dossier["history_bots_excluded"] == 3
    assert history[-1]["at"] == (start + timedelta(minutes=HISTORY_LIMIT + 19)).isoformat()  # the newest kept
    assert [line["reason"] for line in dossier["score"]["engagement_breakdown"]] == ["opened 'welcome'"]
    platform.work()
    [message] = platform.received(to="ava@sales.example")
    assert "suspected bot" not in message.text


# -- 29: a transfer ends the manager's escalation too ------------------------------------------


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


def test_enrollments_of_a_plain_lead_unchanged(platform, team, clock):
    """The default stays: new, nurturing and recycled leads enroll as before."""
    platform.add_lead("plain@acme.example")
    platform.add_lead("back@acme.example")
    with platform.svc.db.session() as session:
        session.scalar(select(Lead).where(Lead.email == "back@acme.example")).status = LeadStatus.recycled
    for email in ("plain@acme.example", "back@acme.example"):
        enrollment = platform.enrollment(platform.enroll(email))
        assert enrollment.state == EnrollmentState.active
    with platform.svc.db.session() as session:
        assert set(session.scalars(select(Lead.status))) == {LeadStatus.nurturing}
        assert len(session.scalars(select(Enrollment)).all()) == 2
