"""Events recorded from outside (API): stored once per uid, teaching topics, scored by the RQ job."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from nurture_mail.exceptions import InvalidInput, NotFound
from nurture_mail.models import Event, Knowledge, KnowledgeLevel, LeadScore
from nurture_mail.nurture.external_events import record_external_event


def levels(platform, lead_id):
    with platform.svc.db.session() as session:
        return {k.topic: k.level for k in session.scalars(select(Knowledge).where(Knowledge.lead_id == lead_id))}


def test_an_external_event_is_stored_once_per_uid_and_teaches(platform, clock):
    lead_id = platform.add_lead("web@acme.example")
    at = clock.now() - timedelta(hours=1)
    with platform.svc.db.session() as session:
        first = record_external_event(session, lead_id, "webinar", at, topics=["pricing", "security-roi"],
                                      detail={"title": "CSPM 101"}, uid="zoom-991", now=clock.now())
        again = record_external_event(session, lead_id, "webinar", at, topics=["pricing"], uid="zoom-991", now=clock.now())
        assert again.id == first.id
        assert session.scalar(select(func.count()).select_from(Event)) == 1
        assert first.detail == {"title": "CSPM 101", "source": "api", "topics": ["pricing", "security-roi"]}
        record_external_event(session, lead_id, "form", at, topics=["pricing"], uid="form-1", source="hubspot", now=clock.now())
    assert levels(platform, lead_id) == {"pricing": KnowledgeLevel.known, "security-roi": KnowledgeLevel.engaged}


def test_bad_input_is_named(platform, clock):
    lead_id = platform.add_lead("bad@acme.example")
    other = platform.add_lead("other@acme.example")
    with platform.svc.db.session() as session:
        with pytest.raises(InvalidInput, match="^kind: expected one of reply, form, webinar, meeting"):
            record_external_event(session, lead_id, "click", clock.now(), now=clock.now())
        with pytest.raises(InvalidInput, match="^topics: unknown topic 'pricng'"):
            record_external_event(session, lead_id, "form", clock.now(), topics=["pricng"], now=clock.now())
        with pytest.raises(NotFound):
            record_external_event(session, 999_999, "reply", clock.now(), now=clock.now())
        record_external_event(session, lead_id, "reply", clock.now(), uid="mail-1", now=clock.now())
        with pytest.raises(InvalidInput, match="^uid: already used for another lead"):
            record_external_event(session, other, "reply", clock.now(), uid="mail-1", now=clock.now())


def test_the_rescore_job_scores_external_events_in_the_worker(platform, clock):
    lead_id = platform.add_lead("meet@acme.example")
    platform.enroll("meet@acme.example")
    with platform.svc.db.session() as session:
        record_external_event(session, lead_id, "meeting", clock.now(), detail={"title": "Discovery call"}, now=clock.now())
        record_external_event(session, lead_id, "reply", clock.now(), now=clock.now())
    platform.svc.queue.enqueue("nurture_mail.jobs.scoring.rescore_leads", [lead_id])
    platform.work()
    with platform.svc.db.session() as session:
        score = session.get(LeadScore, lead_id)
    assert score.engagement == 35
    assert {line["text"] for line in score.engagement_breakdown} == {
        "+25 had meeting 'Discovery call' on 2026-03-02", "+10 replied on 2026-03-02"}


def test_rescore_all_applies_a_day_of_decay_to_every_scored_lead(platform, clock):
    ids = [platform.add_lead(f"r{i}@acme.example") for i in range(3)]
    with platform.svc.db.session() as session:
        for lead_id in ids:
            record_external_event(session, lead_id, "form", clock.now(), now=clock.now())
    platform.svc.queue.enqueue("nurture_mail.jobs.scoring.rescore_leads", ids)
    platform.work()
    clock.advance(days=14)  # no enrollment: the defaults of scoring.yaml (half-life 14 days)
    job = platform.svc.queue.enqueue("nurture_mail.jobs.scoring.rescore_all", 2)  # batches of two
    platform.work()
    assert job.return_value()["scored"] == 3
    with platform.svc.db.session() as session:
        assert [s.engagement for s in session.scalars(select(LeadScore).order_by(LeadScore.lead_id))] == [7.5] * 3


def test_an_event_from_the_future_is_refused_naming_the_field(platform, clock):
    """A future ``at`` would count undecayed and could tip a handoff before it happened."""
    from nurture_mail.nurture.external_events import MAX_CLOCK_SKEW, EventInFuture

    lead_id = platform.add_lead("future@acme.example")
    with platform.svc.db.session() as session:
        with pytest.raises(EventInFuture, match="^at: .* is in the future") as info:
            record_external_event(session, lead_id, "meeting", clock.now() + timedelta(minutes=6), now=clock.now())
        assert info.value.field == "at"
        assert isinstance(info.value, ValueError) and isinstance(info.value, InvalidInput)
        # A sender's clock a little ahead of ours is fine.
        event = record_external_event(session, lead_id, "reply", clock.now() + MAX_CLOCK_SKEW, now=clock.now())
        assert event.id is not None
        # ``now`` is required: no fallback to the system clock.
        with pytest.raises(TypeError):
            record_external_event(session, lead_id, "form", clock.now())
    with platform.svc.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Event).where(Event.lead_id == lead_id)) == 1
