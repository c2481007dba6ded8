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


@pytest.mark.parametrize("due, streams, expected", [
    (1_000, 2, 500),     # a 1k tick: two batches of 500 side by side
    (300, 2, 250),       # half is 150: rounded up to a whole send job
    (3_999, 2, 2_000),   # one round of full batches
    (4_000, 2, 250),     # the probe stops counting there: more may be due, the ramp starts small
    (0, 2, 250),         # nothing counted (some may be due by now): the ramp
    (1_000, 1, 1_000),   # SQLite's one stream takes it in one batch
    (5, 1, 250),
])
def test_the_first_batch_splits_a_small_tick_evenly_between_the_streams(due, streams, expected):
    from nurture_mail.nurture.tick import _first_batch

    assert _first_batch(due, streams, per_job=250, largest=2_000) == expected


@pytest.mark.parametrize("count", [1, 7, 23, 41])
def test_a_small_tick_sized_by_its_probe_queues_each_due_enrollment_once(make_app, database_url, smtp_server,
                                                                          clock, count):
    """Batches sized from the probe's count (up to two rounds of 20, in send jobs of 5): every
    enrollment due is queued once, whatever the count against the batch sizes."""
    platform = Platform(make_app(database_url, smtp_port=smtp_server.port, tick_batch_size=20, send_batch_size=5),
                        smtp_server, clock)
    platform.sync()
    for i in range(count):
        platform.add_lead(f"lead{i}@acme.example", timezone="America/New_York")
        platform.enroll(f"lead{i}@acme.example")
    with platform.svc.db.session() as session:
        session.execute(update(Enrollment).values(next_send_at=clock.now() - timedelta(minutes=1)))
    report = platform.tick()
    assert (report.due, report.queued) == (count, count)
    assert report.enqueued_deliveries == count and len(report.jobs) == -(-count // 5)
    with platform.svc.db.session() as session:
        per_enrollment = list(session.scalars(select(func.count()).select_from(Delivery).group_by(Delivery.enrollment_id)))
    assert per_enrollment == [1] * count
    assert (platform.tick().due, platform.tick().queued) == (0, 0)

