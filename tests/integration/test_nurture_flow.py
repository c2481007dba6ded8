"""End to end on real components: campaign files → tick → RQ worker → SMTP server."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from nurture_mail.models import Delivery, DeliveryStatus, EnrollmentState, Knowledge, KnowledgeEvidence, StepSkip

UTC = timezone.utc


def test_first_touch_is_personalized_inlined_multipart_and_in_the_leads_window(platform):
    platform.add_lead("zoe@acme.example", "America/New_York", first_name="Zoë", last_name="Ørsted",
                      company="Hale & Morrow", title="CISO", custom_fields={"industry": "insurance"})
    platform.add_lead("wei@lion.example", "Asia/Singapore", first_name="Wei", company="Lion Bank")
    platform.enroll("zoe@acme.example")
    wei = platform.enroll("wei@lion.example")
    # Enrolled at 22:00 in Singapore: the first touch waits for 09:00 there.
    assert platform.enrollment(wei).next_send_at == datetime(2026, 3, 3, 1, 0, tzinfo=UTC)

    # Monday 14:00 UTC: 09:00 in New York, 22:00 in Singapore.
    report = platform.tick_and_work()
    assert (report.due, report.queued) == (1, 1)
    [msg] = platform.received()
    assert msg.rcpt_tos == ["zoe@acme.example"]
    assert msg.message.get_content_type() == "multipart/alternative"
    assert "Zoë" in msg.subject
    assert "Zoë Ørsted" in str(msg.message["To"])
    html, text = msg.html, msg.text
    assert "Hi Zoë" in text and "Zoë" in html
    assert "Hale &amp; Morrow" in html or "Hale & Morrow" not in html
    # CSS inlined once per template version: style attributes, class rules applied.
    assert re.search(r'<a [^>]*class="button"[^>]*style="[^"]*background-color', html) or \
        re.search(r"<a [^>]*class=\"button\"[^>]*style='[^']*background-color", html)
    assert "@media" in html  # responsive rules kept in a <style> block
    assert "500 Market Street" in text and "500 Market Street" in html  # postal address
    assert msg.message["Message-ID"].startswith("<d") and msg.message["Date"]
    assert msg.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "{{" not in html and "NMJTAG" not in html

    # 01:00 UTC Tuesday is 09:00 in Singapore: now Wei gets the welcome.
    platform.tick_and_work(datetime(2026, 3, 3, 1, 0, tzinfo=UTC))
    assert [m.rcpt_tos[0] for m in platform.received()] == ["zoe@acme.example", "wei@lion.example"]
    wei = platform.received("wei@lion.example")[0]
    assert "Wei" in wei.subject


def test_campaign_unfolds_over_days_with_cadence_and_weekends_skipped(platform, clock):
    platform.add_lead("ana@bolt.example", "Europe/London", first_name="Ana")
    enrollment_id = platform.enroll("ana@bolt.example")
    platform.tick_and_work()  # Monday 14:00 London: welcome
    first = platform.enrollment(enrollment_id)
    assert first.touches_sent == 1
    # Cadence 3d from Monday 14:00 is Thursday 14:00 (inside 09-17 London).
    assert first.next_send_at == datetime(2026, 3, 5, 14, 0, tzinfo=UTC)

    platform.tick_and_work(datetime(2026, 3, 4, 14, 0, tzinfo=UTC))  # Wednesday: nothing due
    assert len(platform.received()) == 1
    platform.tick_and_work(datetime(2026, 3, 5, 14, 0, tzinfo=UTC))
    assert len(platform.received()) == 2
    second = platform.enrollment(enrollment_id)
    # Thursday + 3 days is Sunday: moved to Monday 09:00 London.
    assert second.next_send_at == datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
    platform.tick_and_work(datetime(2026, 3, 8, 12, 0, tzinfo=UTC))  # Sunday: nothing
    assert len(platform.received()) == 2

    for _ in range(30):  # jump the clock to each next touch until the enrollment ends
        current = platform.enrollment(enrollment_id)
        if current.state != EnrollmentState.active:
            break
        platform.tick_and_work(current.next_send_at)
    subjects = [m.subject for m in platform.received()]
    done = platform.enrollment(enrollment_id)
    assert done.state == EnrollmentState.completed
    assert len(subjects) == len(set(subjects))  # never the same email twice
    # 11 primary steps; with no clicks every alternate re-approaches its exposed topics.
    assert len(subjects) == 14
    with platform.svc.db.session() as s:
        for d in s.scalars(select(Delivery)):
            local = d.scheduled_for.astimezone(__import__("zoneinfo").ZoneInfo("Europe/London"))
            assert local.weekday() < 5 and 9 <= local.hour < 17


def test_declared_knowledge_skips_steps_and_is_recorded_with_evidence(platform):
    platform.add_lead("raj@core.example", "America/New_York", first_name="Raj")
    platform.enroll("raj@core.example", knows=("cloud-risk-landscape", "misconfiguration-costs",
                                                "shared-responsibility"))
    platform.tick_and_work()
    [msg] = platform.received()
    with platform.svc.db.session() as s:
        [delivery] = s.scalars(select(Delivery))
        assert delivery.step.key == "posture-management-basics"
        skipped = {skip.step.key: skip.reason for skip in s.scalars(select(StepSkip))}
        assert set(skipped) == {"welcome", "misconfiguration-costs"}
        assert "already knows" in skipped["welcome"]
        evidence = s.scalars(select(KnowledgeEvidence).where(KnowledgeEvidence.source == "sales")).all()
        assert {e.topic for e in evidence} == {"cloud-risk-landscape", "misconfiguration-costs", "shared-responsibility"}
        assert {e.declared_by for e in evidence} == {"rep@northwind.example"}
        exposed = s.scalars(select(Knowledge).where(Knowledge.topic == "posture-management-basics")).one()
        assert exposed.level.value == "exposed"
        proof = s.scalars(select(KnowledgeEvidence).where(KnowledgeEvidence.source == "delivery")).one()
        assert proof.delivery_id == delivery.id


def test_knowledge_gained_between_touches_takes_effect_at_the_next_choice(platform):
    from nurture_mail.models import KnowledgeLevel
    from nurture_mail.nurture.knowledge import raise_knowledge

    lead_id = platform.add_lead("kim@delta.example", "America/New_York")
    platform.enroll("kim@delta.example")
    platform.tick_and_work()
    with platform.svc.db.session() as s:
        raise_knowledge(s, lead_id, ["misconfiguration-costs", "shared-responsibility"], KnowledgeLevel.engaged,
                        "click", platform.clock.now())
    platform.tick_and_work(datetime(2026, 3, 5, 15, 0, tzinfo=UTC))
    keys = [d.step.key for d in _deliveries_with_steps(platform)]
    assert keys == ["welcome", "posture-management-basics"]


def _deliveries_with_steps(platform):
    from sqlalchemy.orm import selectinload

    with platform.svc.db.session() as s:
        return list(s.scalars(select(Delivery).options(selectinload(Delivery.step)).order_by(Delivery.id)))


def test_running_the_tick_twice_and_duplicate_jobs_send_each_step_once(platform):
    from nurture_mail.jobs.send import send_batch

    for i in range(5):
        platform.add_lead(f"p{i}@dup.example", "America/New_York")
        platform.enroll(f"p{i}@dup.example")
    platform.tick()
    platform.tick()  # a second cron process, or a restarted one, runs the same tick
    ids = [d.id for d in platform.deliveries()]
    assert len(ids) == 5
    # The same batch enqueued again (RQ is at-least-once): the claim makes it a no-op.
    platform.svc.queue.enqueue(send_batch, ids)
    platform.svc.queue.enqueue(send_batch, ids)
    platform.work()
    assert sorted(m.rcpt_tos[0] for m in platform.received()) == sorted(f"p{i}@dup.example" for i in range(5))


def test_temporary_failure_is_retried_with_backoff_and_permanent_failure_recorded(platform, clock):
    platform.add_lead("soft@retry.example")
    platform.add_lead("hard@gone.example")
    soft = platform.enroll("soft@retry.example")
    hard = platform.enroll("hard@gone.example")
    platform.tick()
    by_email = {}
    with platform.svc.db.session() as s:
        for d in s.scalars(select(Delivery)):
            by_email[d.lead.email] = d.id
    # Deliveries go out in id order: soft first (451), hard second (550).
    platform.smtp.fail_next(451, "4.7.1 Greylisted, try again later")
    platform.smtp.fail_next(550, "5.1.1 User unknown")
    platform.work()
    assert platform.received() == []
    with platform.svc.db.session() as s:
        d_soft = s.get(Delivery, by_email["soft@retry.example"])
        d_hard = s.get(Delivery, by_email["hard@gone.example"])
        assert d_soft.status == DeliveryStatus.queued and d_soft.attempts == 1
        assert d_soft.last_error.startswith("451") and "Greylisted" in d_soft.last_error
        assert d_soft.next_attempt_at == clock.now() + timedelta(seconds=60)
        assert d_hard.status == DeliveryStatus.failed and d_hard.last_error.startswith("550")
    assert platform.enrollment(hard).state == EnrollmentState.exited
    assert "550" in platform.enrollment(hard).state_reason

    platform.tick_and_work()  # backoff not over: nothing
    assert platform.received() == []
    platform.tick_and_work(clock.now() + timedelta(seconds=61))
    assert [m.rcpt_tos[0] for m in platform.received()] == ["soft@retry.example"]
    assert platform.enrollment(soft).touches_sent == 1


def test_an_unsubscribed_lead_gets_nothing_even_if_already_queued(platform):
    from nurture_mail.models import Lead, LeadStatus

    platform.add_lead("gone@later.example")
    enrollment_id = platform.enroll("gone@later.example")
    platform.tick()
    with platform.svc.db.session() as s:
        s.scalars(select(Lead)).one().status = LeadStatus.unsubscribed
    platform.work()
    assert platform.received() == []
    [delivery] = platform.deliveries()
    assert delivery.status == DeliveryStatus.cancelled
    assert platform.enrollment(enrollment_id).state == EnrollmentState.exited
