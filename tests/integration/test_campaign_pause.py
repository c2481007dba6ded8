"""Pausing a whole campaign: nothing new is queued while paused; resuming picks up where it was."""
from __future__ import annotations

from datetime import timedelta

import pytest

from nurture_mail.campaigns.control import pause_campaign, resume_campaign
from nurture_mail.exceptions import NotFound
from nurture_mail.models import Campaign, EnrollmentState


def test_a_paused_campaign_queues_nothing_and_resumes_where_it_was(platform, clock):
    platform.add_lead("zoe@acme.example", first_name="Zoë")
    enrollment_id = platform.enroll("zoe@acme.example")
    with platform.svc.db.session() as session:
        change = pause_campaign(session, "northwind-security", by="ana@northwind.example", now=clock.now())
    assert change.changed and not change.active

    report = platform.tick_and_work()
    assert (report.due, report.queued) == (0, 0)
    assert platform.received() == [] and platform.deliveries() == []
    enrollment = platform.enrollment(enrollment_id)
    assert enrollment.state == EnrollmentState.active and enrollment.next_send_at is not None

    # A re-sync of the campaign file leaves the pause alone: it is not part of the definition.
    platform.sync()
    with platform.svc.db.session() as session:
        again = pause_campaign(session, "northwind-security", by="ana@northwind.example", now=clock.now())
        assert not again.changed
        assert session.query(Campaign).filter_by(slug="northwind-security").one().active is False

    with platform.svc.db.session() as session:
        assert resume_campaign(session, "northwind-security", by="ana@northwind.example", now=clock.now()).changed
    report = platform.tick_and_work(clock.now() + timedelta(minutes=5))
    assert report.queued == 1
    [message] = platform.received()
    assert "Zoë" in message.subject


def test_pausing_an_unknown_campaign_names_it(platform, clock):
    with platform.svc.db.session() as session, pytest.raises(NotFound, match="no campaign 'nope'"):
        pause_campaign(session, "nope", by="ana@northwind.example", now=clock.now())
