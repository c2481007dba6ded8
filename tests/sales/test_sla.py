"""The sales clock: escalation after the SLA in business hours, transfer after the ownership window."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from support.sales import get_handoff, hand_off, rep_email, sales_links

from nurture_mail.jobs.schedule import cron_table
from nurture_mail.models import HandoffState
from nurture_mail.sales import actions
from nurture_mail.sales.housekeeping import run_housekeeping

FRIDAY_4PM = datetime(2026, 3, 6, 16, 0, tzinfo=UTC)


def housekeeping(platform, at):
    platform.clock.set(at)
    with platform.app.app_context():
        return run_housekeeping(platform.svc, at)


def test_an_unanswered_handoff_is_escalated_to_the_manager_after_the_sla(platform, team, clock):
    clock.set(FRIDAY_4PM)
    platform.add_lead("fri@acme.example", first_name="Fritz", region="AMER")
    platform.add_lead("quick@acme.example", region="AMER")
    slow = hand_off(platform, "fri@acme.example")
    quick = hand_off(platform, "quick@acme.example")
    platform.work()
    assert get_handoff(platform, slow).sla_due_at == datetime(2026, 3, 9, 12, 0, tzinfo=UTC)  # Monday noon
    with platform.svc.db.session() as session:  # Cy acts on his at once; it is never escalated
        actions.accept(session, session.get(type(get_handoff(platform, quick)), quick), "cy@sales.example", "api",
                       clock.now())

    assert housekeeping(platform, datetime(2026, 3, 9, 11, 59, tzinfo=UTC)).escalated == 0  # the weekend is free
    report = housekeeping(platform, datetime(2026, 3, 9, 12, 0, tzinfo=UTC))
    assert report.escalated == 1
    platform.work()
    [email] = platform.received(to="mo@sales.example")
    assert email.subject == f"Escalated: handoff #{slow} Fritz has had no action"
    assert "ESCALATED TO YOU: Ava Closer has not acted on this handoff within the SLA" in email.text
    handoff = get_handoff(platform, slow)
    assert handoff.escalated_at == clock.now() and handoff.state == HandoffState.notified
    assert [(a.role, rep_email(platform, a.rep_id)) for a in handoff.assignments] == [
        ("incoming", "ava@sales.example"), ("escalation", "mo@sales.example")]
    assert [a.action for a in handoff.actions] == ["notified", "escalate", "notified"]
    # The manager's own links work for them.
    page = platform.app.test_client().get(urlsplit(sales_links(email.text)["Accept"]).path)
    assert page.status_code == 200 and "For Mo Manager" in page.get_data(as_text=True)

    # Idempotent: the cron entry again, a minute later, in a real worker: nothing new.
    [entry] = [e for e in cron_table(platform.svc.config) if e["name"] == "nurture-sales-housekeeping"]
    assert entry["interval"] == 60
    clock.advance(minutes=1)
    platform.svc.queue.enqueue(entry["func"])
    platform.work()
    assert len(platform.received(to="mo@sales.example")) == 1
    assert len(get_handoff(platform, slow).assignments) == 2


def test_not_won_in_fourteen_days_moves_to_the_territory_owner(platform, team, clock):
    platform.add_lead("emea@acme.example", first_name="Elsa", region="EMEA")
    platform.add_lead("won@acme.example", region="EMEA")
    moving = hand_off(platform, "emea@acme.example")
    closed = hand_off(platform, "won@acme.example")
    platform.work()
    [first_email] = platform.received(to="ava@sales.example")
    with platform.svc.db.session() as session:
        from nurture_mail.models import Handoff

        actions.accept(session, session.get(Handoff, moving), "ava@sales.example", "api", clock.now())
        actions.mark_won(session, session.get(Handoff, closed), "cy@sales.example", "api", "9000", clock.now())
    start = clock.now()
    assert get_handoff(platform, moving).ownership_ends_at == start + timedelta(days=14)
    assert housekeeping(platform, start + timedelta(days=14) - timedelta(minutes=1)).transferred == 0
    assert housekeeping(platform, start + timedelta(days=14)).transferred == 1
    handoff = get_handoff(platform, moving)
    assert rep_email(platform, handoff.rep_id) == "eve@sales.example" and handoff.transferred_at == clock.now()
    assert handoff.state == HandoffState.accepted
    # Both assignments are kept for credit; the first one ended.
    [incoming, territory] = handoff.assignments
    assert (incoming.role, rep_email(platform, incoming.rep_id), incoming.ended_at) == (
        "incoming", "ava@sales.example", clock.now())
    assert (territory.role, rep_email(platform, territory.rep_id), territory.ended_at) == (
        "territory", "eve@sales.example", None)
    platform.work()
    [email] = platform.received(to="eve@sales.example")
    assert email.subject == "Transferred to you: Elsa"
    assert "TRANSFERRED TO YOU" in email.text
    # The old owner's link no longer acts; the new owner's does.
    client = platform.app.test_client()
    assert client.get(urlsplit(sales_links(first_email.text)["Accept"]).path).status_code == 403
    assert client.get(urlsplit(sales_links(email.text)["Accept"]).path).status_code == 200
    # Won deals stay with whoever won them; a second run changes nothing.
    assert rep_email(platform, get_handoff(platform, closed).rep_id) == "cy@sales.example"
    assert housekeeping(platform, start + timedelta(days=20)).transferred == 0
    platform.work()
    assert len(platform.received(to="eve@sales.example")) == 1
