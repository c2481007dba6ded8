"""The tick over many enrollments due at one instant: batched, set-based, served by its index."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update
from support.platform import Platform

from nurture_mail.models import Delivery, Enrollment, EnrollmentState, Lead, LeadStatus


@pytest.fixture
def crowd(make_app, database_url, smtp_server, clock):
    """23 enrolled leads, all due at one instant, ticked 5 at a time: 15 in New York (in the
    send window), 5 in Tokyo (outside it), 3 in New York who unsubscribed after enrolling."""
    platform = Platform(make_app(database_url, smtp_port=smtp_server.port, tick_batch_size=5), smtp_server, clock)
    platform.sync()
    emails = ([(f"ny{i}@acme.example", "America/New_York") for i in range(15)]
              + [(f"tokyo{i}@acme.example", "Asia/Tokyo") for i in range(5)]
              + [(f"gone{i}@acme.example", "America/New_York") for i in range(3)])
    for email, tz in emails:
        platform.add_lead(email, timezone=tz)
        platform.enroll(email)
    due_at = clock.now() - timedelta(minutes=1)
    with platform.svc.db.session() as session:
        session.execute(update(Enrollment).values(next_send_at=due_at))
        session.execute(update(Lead).where(Lead.email.like("gone%")).values(status=LeadStatus.unsubscribed))
    return platform


def test_a_tick_takes_every_enrollment_due_at_one_instant_once(crowd, clock):
    report = crowd.tick()
    assert (report.due, report.queued, report.rescheduled, report.exited) == (23, 15, 5, 3)
    with crowd.svc.db.session() as session:
        rows = {email: (state, next_send_at) for email, state, next_send_at in session.execute(
            select(Lead.email, Enrollment.state, Enrollment.next_send_at).join(Lead, Lead.id == Enrollment.lead_id))}
        per_enrollment = list(session.scalars(select(func.count()).select_from(Delivery).group_by(Delivery.enrollment_id)))
        reasons = set(session.scalars(select(Enrollment.state_reason).where(Enrollment.state == EnrollmentState.exited)))
    assert per_enrollment == [1] * 15
    assert all(rows[f"ny{i}@acme.example"] == (EnrollmentState.active, None) for i in range(15))
    assert all(rows[f"gone{i}@acme.example"] == (EnrollmentState.exited, None) for i in range(3))
    assert reasons == {"lead is unsubscribed"}
    for i in range(5):  # moved to the start of the next send window in Tokyo, in the future
        state, next_send_at = rows[f"tokyo{i}@acme.example"]
        assert state == EnrollmentState.active and next_send_at > clock.now()
    again = crowd.tick()
    assert (again.due, again.queued) == (0, 0)


def test_the_due_selection_is_read_in_index_order_without_a_sort(crowd, clock):
    """The tick's own statement (lead joined, delivered steps read per row), as the tick sends it."""
    if crowd.svc.db.engine.dialect.name != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    from nurture_mail.nurture.tick import due_statement

    with crowd.svc.db.session() as session:
        session.execute(text("SET LOCAL enable_seqscan = off"))
        compiled = due_statement(session, clock.now(), 500).compile(
            dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True})
        plan = "\n".join(session.scalars(text(f"EXPLAIN {compiled}")))
    assert "ix_enrollment_due" in plan
    assert "Sort" not in plan, plan
    assert "FOR UPDATE" in str(compiled) and "SKIP LOCKED" in str(compiled)


def test_a_bulk_load_refreshes_the_planner_statistics_on_postgresql(make_app, database_url):
    from nurture_mail.nurture.sql import ANALYZE_AFTER_ROWS, analyze_after_bulk

    database = make_app(database_url).extensions["nurture"].db
    assert analyze_after_bulk(database, ["lead", "enrollment"], ANALYZE_AFTER_ROWS - 1) is False
    ran = analyze_after_bulk(database, ["lead", "enrollment"], ANALYZE_AFTER_ROWS)
    if database.engine.dialect.name != "postgresql":
        assert ran is False
        return
    assert ran is True
    with database.engine.connect() as connection:
        analyzed = dict(connection.execute(text(
            "SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables"
            " WHERE schemaname = current_schema() AND relname IN ('lead', 'enrollment')")).all())
    assert analyzed == {"lead": True, "enrollment": True}
