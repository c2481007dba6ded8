"""Instant first touch: enrolling inside the send window sends the first step without a tick."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from nurture_mail.models import Delivery, DeliveryStatus, Enrollment
from nurture_mail.nurture.first_touch import JOB
from tests.conftest import START


def _jobs(platform) -> list[str]:
    return [job.func_name for job in platform.svc.queue.get_jobs()]


def test_enrolling_in_the_window_sends_the_first_step_without_a_tick(platform):
    platform.add_lead("ada@example.com", first_name="Ada")  # New York: 09:00 on a Monday
    platform.enroll("ada@example.com")
    assert _jobs(platform) == [JOB]  # enqueued once the enrollment committed
    platform.add_lead("eve@example.com")
    platform.enroll("eve@example.com")
    assert _jobs(platform) == [JOB]  # one job takes every enrollment waiting
    platform.work()  # first touch, then its send job; no tick ran
    assert len(platform.received("ada@example.com")) == 1 and len(platform.received("eve@example.com")) == 1
    deliveries = platform.deliveries()
    assert {(d.status, d.scheduled_for) for d in deliveries} == {(DeliveryStatus.sent, START)}
    assert len(deliveries) == 2


def test_a_tick_at_the_same_moment_does_not_send_it_twice(platform):
    platform.add_lead("bo@example.com")
    platform.enroll("bo@example.com")
    report = platform.tick()  # the tick got there first: it queues and enqueues the delivery
    assert report.queued == 1
    platform.work()  # the first-touch job finds nothing due; one send job sends it once
    assert len(platform.received("bo@example.com")) == 1
    platform.tick()
    platform.work()
    assert len(platform.received("bo@example.com")) == 1


def test_the_first_touch_job_running_twice_sends_once(platform):
    platform.add_lead("cy@example.com")
    enrollment_id = platform.enroll("cy@example.com")
    from nurture_mail.nurture.first_touch import run_first_touch

    assert run_first_touch(platform.svc, [enrollment_id], platform.clock.now()) == (1, 1)
    assert run_first_touch(platform.svc, [enrollment_id], platform.clock.now()) == (0, 0)
    platform.work()
    assert len(platform.received("cy@example.com")) == 1


def test_outside_the_window_nothing_goes_until_it_opens(platform, clock):
    clock.set(START + timedelta(hours=12))  # 21:00 in New York: outside the window
    platform.add_lead("di@example.com")
    enrollment_id = platform.enroll("di@example.com")
    assert _jobs(platform) == []
    platform.work()
    assert platform.received("di@example.com") == []
    with platform.svc.db.session() as session:
        due = session.scalar(select(Enrollment.next_send_at).where(Enrollment.id == enrollment_id))
        assert session.scalar(select(Delivery.id)) is None
    platform.tick(due)
    platform.work()
    assert len(platform.received("di@example.com")) == 1
