"""The ledger a sent batch writes (Core statements; arrays on PostgreSQL, executemany on SQLite)."""
from __future__ import annotations

from sqlalchemy import select, update

from nurture_mail.models import (
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    KnowledgeEvidence,
    Lead,
    LeadStatus,
)
from nurture_mail.nurture.send import SendOutcome, claim, load_items, record_outcomes


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
