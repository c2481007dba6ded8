"""Seed a campaign's history straight into the ledger: enrollments in every state, sent emails,
human and bot opens and clicks, steps skipped because known. For report tests and screenshots."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture_mail.models import (
    Campaign,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Event,
    EventKind,
    Lead,
    LeadStatus,
    Step,
    StepSkip,
)


@dataclass
class Seeded:
    """What was written, so a test can state what the reports must say."""

    enrolled: int
    active: int
    completed: int
    handed_off: int
    sent: int
    human_clicked: int
    first_step_sent: int
    first_step_opened: int
    first_step_clicked: int
    first_step_skipped: int


def seed_activity(session: Session, slug: str, now: datetime, leads: int = 40) -> Seeded:
    campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
    steps = list(session.scalars(select(Step).where(Step.campaign_id == campaign.id, Step.active.is_(True),
                                                    Step.alternate_of_id.is_(None)).order_by(Step.position)))
    counts = dict(active=0, completed=0, handed_off=0, sent=0, human_clicked=0, s0_sent=0, s0_open=0, s0_click=0,
                  s0_skip=0)
    for i in range(leads):
        lead = Lead(email=f"seed{i}@acme{i % 7}.example", first_name=f"Lead{i}", company=f"Acme {i % 7}",
                    status=LeadStatus.nurturing, qualification={}, custom_fields={}, hygiene=[],
                    created_at=now - timedelta(days=30), updated_at=now)
        session.add(lead)
        session.flush()
        state, reason = EnrollmentState.active, None
        if i % 5 == 0:
            state, reason = EnrollmentState.completed, "every step sent"
        elif i % 8 == 1:
            state, reason = EnrollmentState.exited, "handed off to sales: engagement 31 >= 25"
        enrollment = Enrollment(lead_id=lead.id, campaign_id=campaign.id, state=state, state_reason=reason,
                                touches_sent=0, enrolled_at=now - timedelta(days=30),
                                next_send_at=now + timedelta(days=1) if state == EnrollmentState.active else None)
        session.add(enrollment)
        session.flush()
        counts["active" if state == EnrollmentState.active else
               "completed" if state == EnrollmentState.completed else "handed_off"] += 1
        if i % 6 == 5:  # knew the first step's topics: skipped it
            session.add(StepSkip(enrollment_id=enrollment.id, step_id=steps[0].id, reason="already knows", at=now))
            counts["s0_skip"] += 1
            first = 1
        else:
            first = 0
        for position, step in enumerate(steps[first: first + 1 + i % 4], start=first):
            sent_at = now - timedelta(days=20 - 3 * position)
            delivery = Delivery(enrollment_id=enrollment.id, step_id=step.id, lead_id=lead.id,
                                status=DeliveryStatus.sent, scheduled_for=sent_at, next_attempt_at=sent_at,
                                sent_at=sent_at, attempts=1)
            session.add(delivery)
            session.flush()
            counts["sent"] += 1
            if position == 0:
                counts["s0_sent"] += 1
            # Every email is pre-clicked by a scanner: recorded, never counted.
            session.add(Event(lead_id=lead.id, delivery_id=delivery.id, kind=EventKind.click, at=sent_at,
                              suspected_bot=True, bot_reason="clicked 2 s after delivery", detail={}))
            if i % 3 != 2:
                session.add(Event(lead_id=lead.id, delivery_id=delivery.id, kind=EventKind.open,
                                  at=sent_at + timedelta(hours=2), detail={}))
                if position == 0:
                    counts["s0_open"] += 1
            if i % 4 == 0:
                for _ in range(2):  # two clicks on one email count once
                    session.add(Event(lead_id=lead.id, delivery_id=delivery.id, kind=EventKind.click,
                                      at=sent_at + timedelta(hours=3), detail={}))
                counts["human_clicked"] += 1
                if position == 0:
                    counts["s0_click"] += 1
                    if i % 3 == 2:
                        counts["s0_open"] += 1  # a click without a tracked open still counts as opened
        enrollment.touches_sent = min(1 + i % 4, len(steps))
    session.flush()
    return Seeded(leads, counts["active"], counts["completed"], counts["handed_off"], counts["sent"],
                  counts["human_clicked"], counts["s0_sent"], counts["s0_open"], counts["s0_click"], counts["s0_skip"])
