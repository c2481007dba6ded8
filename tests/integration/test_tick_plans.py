"""The tick keeps campaign plans across ticks (PostgreSQL), and a campaign change still counts at
the next tick: the plan is keyed by a fingerprint of the campaign's and its steps' rows."""
from __future__ import annotations

from sqlalchemy import event, update

from nurture_mail.models import Campaign, EnrollmentState, Step


def _statements(platform) -> list[str]:
    seen: list[str] = []

    @event.listens_for(platform.svc.db.engine, "before_cursor_execute")
    def _seen(conn, cursor, statement, parameters, context, executemany):
        seen.append(" ".join(statement.split()))

    return seen


def test_a_step_change_takes_effect_at_the_next_tick_and_an_unchanged_campaign_is_not_read_again(platform, clock):
    platform.add_lead("zoe@acme.example", first_name="Zoë")
    enrollment_id = platform.enroll("zoe@acme.example")
    report = platform.tick_and_work()
    assert report.queued == 1
    due_at = platform.enrollment(enrollment_id).next_send_at
    assert due_at is not None

    # Nothing due, nothing changed: the campaign's plan comes from the previous tick on PostgreSQL.
    seen = _statements(platform)
    assert platform.tick().due == 0
    loads = [s for s in seen if "campaign.cadence_seconds" in s]
    assert loads == [] or not platform.svc.db.is_postgresql

    # Every other step deactivated as the editor's or a sync's write would: the enrollment is
    # complete at its next due time, not sent the step the cached plan had next.
    with platform.svc.db.session() as session:
        campaign_id = session.query(Campaign.id).filter_by(slug="northwind-security").scalar()
        sent_step = platform.deliveries()[0].step_id
        session.execute(update(Step).where(Step.campaign_id == campaign_id, Step.id != sent_step)
                        .values(active=False))
    report = platform.tick_and_work(max(due_at, clock.now()))
    assert (report.due, report.queued, report.completed) == (1, 0, 1)
    assert platform.enrollment(enrollment_id).state == EnrollmentState.completed
    assert len(platform.received()) == 1
