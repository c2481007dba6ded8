"""The ledger a sent batch writes (at the driver level: arrays on PostgreSQL, executemany on SQLite)."""
from __future__ import annotations

import threading
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import bindparam, case, select, update

from nurture_mail.models import (
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Knowledge,
    KnowledgeEvidence,
    KnowledgeLevel,
    Lead,
    LeadStatus,
    Step,
)
from nurture_mail.nurture.send import BatchReport, SendOutcome, _next_touch, claim, load_items, record_outcomes
from nurture_mail.nurture.sql import insert_ignoring_conflicts


def test_a_sent_batch_counts_every_touch_and_schedules_only_active_enrollments(platform):
    ids = {email: platform.add_lead(email) for email in ("ann@example.com", "ben@example.com")}
    enrollments = {email: platform.enroll(email) for email in ids}
    platform.svc.queue.empty()  # the first-touch job: this test sends by hand
    assert platform.tick().queued == 2
    now = platform.clock.now()
    with platform.svc.db.session() as session:
        claimed = claim(session, [d.id for d in platform.deliveries()], now)
    with platform.svc.db.session() as session:
        items = load_items(session, claimed)
        # Ben's enrollment is paused while his email is in flight: the touch counts, no next one.
        session.execute(update(Enrollment).where(Enrollment.id == enrollments["ben@example.com"])
                        .values(state=EnrollmentState.paused))
    before = platform.enrollment(enrollments["ben@example.com"]).next_send_at
    outcomes = [SendOutcome(item, "sent", sent_at=now, message_id=f"<{item.id}@test>") for item in items]
    with platform.svc.db.session() as session:
        record_outcomes(session, platform.svc, outcomes, now)
    assert {(d.status, d.sent_at, d.message_id) for d in platform.deliveries()} == {
        (DeliveryStatus.sent, now, f"<{d.id}@test>") for d in platform.deliveries()}
    ann, ben = (platform.enrollment(enrollments[e]) for e in ("ann@example.com", "ben@example.com"))
    assert (ann.touches_sent, ann.last_sent_at) == (1, now) and ann.next_send_at > now
    assert (ben.touches_sent, ben.last_sent_at, ben.next_send_at) == (1, now, before)
    with platform.svc.db.session() as session:
        assert set(session.scalars(select(Lead.status))) == {LeadStatus.nurturing}
        evidence = session.execute(select(KnowledgeEvidence.lead_id, KnowledgeEvidence.delivery_id)).all()
    assert {lead for lead, _ in evidence} == set(ids.values())  # the first step teaches: one row per change
    # Written again (a retried commit): nothing changes, nothing counts twice.
    with platform.svc.db.session() as session:
        record_outcomes(session, platform.svc, outcomes, now)
    assert platform.enrollment(enrollments["ann@example.com"]).touches_sent == 1


# -- the driver-level ledger writes what the Core statements wrote --------------------------------------


def _core_claim(session, delivery_ids: list[int], now) -> list[int]:
    """The claim as it was written before the driver level (an ORM UPDATE … RETURNING)."""
    result = session.execute(
        update(Delivery).where(Delivery.id.in_(delivery_ids), Delivery.status == DeliveryStatus.queued)
        .values(status=DeliveryStatus.sending, claimed_at=now, attempts=Delivery.attempts + 1)
        .returning(Delivery.id))
    return sorted(row[0] for row in result)


def _core_record_sent(session, svc, outcomes: list[SendOutcome]) -> None:
    """A sent batch recorded as before the driver level: Core statements, executemany, SQLAlchemy's types."""
    d, e, lead, k = Delivery.__table__, Enrollment.__table__, Lead.__table__, Knowledge.__table__
    sending = set(session.scalars(select(Delivery.id).where(Delivery.id.in_([o.item.id for o in outcomes]),
                                                            Delivery.status == DeliveryStatus.sending)))
    sent = [o for o in outcomes if o.item.id in sending]
    if not sent:
        return
    connection = session.connection()
    connection.execute(update(d).where(d.c.id == bindparam("d_id")).values(
        status=DeliveryStatus.sent.value, sent_at=bindparam("d_sent_at"), message_id=bindparam("d_message_id"),
        last_error=None), [{"d_id": o.item.id, "d_sent_at": o.sent_at, "d_message_id": o.message_id} for o in sent])
    connection.execute(update(e).where(e.c.id == bindparam("e_id")).values(
        touches_sent=e.c.touches_sent + 1, last_sent_at=bindparam("e_sent_at"),
        next_send_at=case((e.c.state == EnrollmentState.active.value,
                           bindparam("e_next", type_=e.c.next_send_at.type)), else_=e.c.next_send_at)),
        [{"e_id": o.item.enrollment_id, "e_sent_at": o.sent_at, "e_next": _next_touch(svc, o)} for o in sent])
    fresh = sorted({o.item.lead_id for o in sent if o.item.lead.status in (LeadStatus.new, LeadStatus.recycled)})
    if fresh:
        connection.execute(update(lead).where(lead.c.id.in_(fresh),
                                              lead.c.status.in_([LeadStatus.new, LeadStatus.recycled]))
                           .values(status=LeadStatus.nurturing))
    exposures: dict = {}
    for o in sent:
        for topic in o.item.step.teaches:
            exposures.setdefault((o.item.lead_id, topic), (o.item.id, o.accepted_at))
    inserted = connection.execute(
        insert_ignoring_conflicts(session, k, ["lead_id", "topic"]).returning(k.c.lead_id, k.c.topic, k.c.updated_at),
        [dict(lead_id=lead_id, topic=topic, level=KnowledgeLevel.exposed, updated_at=at)
         for (lead_id, topic), (_, at) in exposures.items()]).all()
    if inserted:
        connection.execute(KnowledgeEvidence.__table__.insert(), [
            dict(lead_id=lead_id, topic=topic, level=KnowledgeLevel.exposed.value, source="delivery",
                 delivery_id=exposures[(lead_id, topic)][0], at=at) for lead_id, topic, at in inserted])


def _ledger(session, prefix: str) -> dict[str, list[tuple]]:
    """The rows of the leads whose address starts with ``prefix``, as the driver reads them (no SQLAlchemy
    type processing: SQLite's stored text byte for byte), each table's own id and the leads' ids left out."""
    run = session.connection().exec_driver_sql
    leads = f"SELECT id FROM lead WHERE substr(email, 1, {len(prefix)}) = '{prefix}'"
    numbered = {"delivery": ["step_id", "status", "scheduled_for", "next_attempt_at", "enqueued_at", "claimed_at",
                             "sent_at", "attempts", "message_id", "last_error"],
                "enrollment": ["campaign_id", "state", "next_send_at", "touches_sent", "last_sent_at", "state_reason",
                               "enrolled_by", "enrolled_at", "ended_at"],
                "knowledge": ["topic", "level", "updated_at"],
                "knowledge_evidence": ["topic", "level", "source", "event_id", "declared_by", "note", "at"],
                "lead": ["email", "status", "soft_bounces", "updated_at"]}
    rows = {}
    for table, columns in numbered.items():
        key = "id" if table == "lead" else "lead_id"
        got = run(f"SELECT {', '.join(columns)} FROM {table} WHERE {key} IN ({leads}) ORDER BY id").all()
        rows[table] = [tuple((type(v).__name__, v) for v in row) for row in got]
    rows["lead"] = [tuple(v if i else ("email", v[1].split("-", 1)[1]) for i, v in enumerate(r)) for r in rows["lead"]]
    evidence_of = run(f"SELECT d.step_id FROM knowledge_evidence AS k JOIN delivery AS d ON d.id = k.delivery_id "
                      f"WHERE k.lead_id IN ({leads}) ORDER BY k.id").all()
    rows["evidence deliveries"] = [tuple(r) for r in evidence_of]
    return rows


def test_the_driver_level_ledger_writes_the_rows_core_wrote(platform):
    """Two twin groups of leads: one claimed and recorded by ``claim``/``record_outcomes``, the other by
    the Core statements they replaced; their rows are equal value for value, type for type."""
    svc, now = platform.svc, platform.clock.now()
    groups: dict[str, list[int]] = {}
    for prefix in ("fast", "core"):
        emails = [f"{prefix}-{n}@example.com" for n in range(5)]
        for n, email in enumerate(emails):
            platform.add_lead(email, timezone=("Europe/Paris", "America/New_York", "Europe/London")[n % 3])
        enrollments = [platform.enroll(email) for email in emails]
        with svc.db.session() as session:
            lead_ids = [session.scalar(select(Lead.id).where(Lead.email == email)) for email in emails]
            # One lead already nurturing, one already exposed to the first step's topic (no evidence row).
            session.execute(update(Lead).where(Lead.id == lead_ids[1]).values(status=LeadStatus.nurturing))
            session.add(Knowledge(lead_id=lead_ids[2], topic="cloud-risk-landscape", level=KnowledgeLevel.exposed,
                                  updated_at=now))
        groups[prefix] = enrollments
    platform.svc.queue.empty()
    assert platform.tick().queued == 10
    by_enrollment = {d.enrollment_id: d.id for d in platform.deliveries()}
    for prefix, enrollments in groups.items():
        ids = [by_enrollment[e] for e in enrollments]
        with svc.db.session() as session:
            claimed = (claim if prefix == "fast" else _core_claim)(session, ids, now)
        assert claimed == sorted(ids)
        with svc.db.session() as session:
            items = load_items(session, claimed)
            # Paused while in flight: the touch counts, the next one is not scheduled.
            session.execute(update(Enrollment).where(Enrollment.id == enrollments[3])
                            .values(state=EnrollmentState.paused))
        # Send times: a whole second (SQLite keeps ".000000"), microseconds, another zone than UTC.
        times = [now, now + timedelta(microseconds=1), now + timedelta(seconds=1, microseconds=999999),
                 (now + timedelta(seconds=7)).astimezone(ZoneInfo("America/New_York")), now + timedelta(minutes=1)]
        outcomes = [SendOutcome(item, "sent", sent_at=at, message_id=f"<{n}@test>")
                    for n, (item, at) in enumerate(zip(items, times, strict=True))]
        for _ in range(2):  # written twice (a retried commit): nothing changes the second time
            with svc.db.session() as session:
                if prefix == "fast":
                    record_outcomes(session, svc, outcomes, now)
                else:
                    _core_record_sent(session, svc, outcomes)
    with svc.db.session() as session:
        fast, core = _ledger(session, "fast-"), _ledger(session, "core-")
    assert [len(fast[t]) for t in fast] == [5, 5, 5, 4, 5, 4]
    assert fast == core


def test_two_deliveries_of_one_enrollment_in_a_batch_count_two_touches(platform):
    platform.add_lead("ann@example.com")
    enrollment_id = platform.enroll("ann@example.com")
    platform.svc.queue.empty()
    assert platform.tick().queued == 1
    first = platform.deliveries()[0]
    now = platform.clock.now()
    with platform.svc.db.session() as session:
        second_step = session.scalar(select(Step.id).where(Step.campaign_id == Enrollment.campaign_id,
                                                           Enrollment.id == enrollment_id, Step.id != first.step_id)
                                     .order_by(Step.position).limit(1))
        session.add(Delivery(enrollment_id=enrollment_id, step_id=second_step, lead_id=first.lead_id,
                             status=DeliveryStatus.queued, scheduled_for=now, next_attempt_at=now))
    ids = [d.id for d in platform.deliveries()]
    with platform.svc.db.session() as session:
        claimed = claim(session, ids, now)
    with platform.svc.db.session() as session:
        items = load_items(session, claimed)
    with platform.svc.db.session() as session:
        record_outcomes(session, platform.svc, [SendOutcome(i, "sent", sent_at=now, message_id=f"<{i.id}@t>")
                                                for i in items], now)
    assert platform.enrollment(enrollment_id).touches_sent == 2
    assert {d.status for d in platform.deliveries()} == {DeliveryStatus.sent}


@pytest.mark.parametrize("mixed", [False, True], ids=["all-sent", "mixed"])
def test_two_settlers_of_one_batch_take_turns(platform, mixed):
    """PostgreSQL: the first settler's row locks hold the second until it commits; the second then finds
    nothing still ``sending`` and writes nothing (the statement that marks a sent batch locks and re-checks)."""
    svc = platform.svc
    if svc.db.engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite serializes writers)")
    for email in ("ann@example.com", "ben@example.com"):
        platform.add_lead(email)
        platform.enroll(email)
    svc.queue.empty()
    assert platform.tick().queued == 2
    now = platform.clock.now()
    with svc.db.session() as session:
        claimed = claim(session, [d.id for d in platform.deliveries()], now)
    with svc.db.session() as session:
        items = load_items(session, claimed)
    outcomes = [SendOutcome(item, "cancelled" if mixed and n else "sent", sent_at=now, message_id=f"<{item.id}@t>",
                            error="address is suppressed (all email)" if mixed and n else None)
                for n, item in enumerate(items)]
    first = svc.db.Session()
    record_outcomes(first, svc, outcomes, now)  # not committed yet: the rows stay locked
    seen: dict[str, BatchReport] = {}

    def second() -> None:
        with svc.db.session() as session:
            seen["report"] = BatchReport()
            record_outcomes(session, svc, outcomes, now, seen["report"])

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive()  # waiting for the first settler's locks
    first.commit()
    first.close()
    thread.join(10)
    assert not thread.is_alive()
    assert (seen["report"].sent, seen["report"].cancelled) == (0, 0)
    touches = sorted(platform.enrollment(item.enrollment_id).touches_sent for item in items)
    assert touches == ([0, 1] if mixed else [1, 1])
