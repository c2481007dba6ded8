"""The handoff decision end to end (real SMTP, real drain, both databases): a recycled lead needs
new evidence, a finished nurture still hands off on a hand-raiser click, a fit-only rule fires with
no event, and an imported free-text industry scores."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from support.tracking import BROWSER, pixel_url, visible_links

from nurture_mail.models import Campaign, Enrollment, EnrollmentState, Handoff, HandoffState, Lead, LeadStatus
from nurture_mail.nurture.external_events import record_external_event
from nurture_mail.sales import actions
from nurture_mail.scoring import pipeline
from nurture_mail.tracking.ingest import drain_events

from .test_pipeline import ALL_BUT_VENDOR, GOOD_FIT, click, score_of, send_first_email

#: Everything but the two steps with hand-raiser links (vendor comparison first, then customer proof).
BUT_TWO = tuple(t for t in ALL_BUT_VENDOR if t != "customer-proof")


def handoffs(platform, lead_id) -> list[Handoff]:
    with platform.svc.db.session() as session:
        return list(session.scalars(select(Handoff).where(Handoff.lead_id == lead_id).order_by(Handoff.id)))


def test_a_lead_rejected_as_not_ready_is_handed_back_only_on_new_evidence(platform, clock):
    """Reject not ready, one open of the next email → no handoff; a new hand-raiser click → handoff."""
    email = "recycled@acme.example"
    lead_id, _ = send_first_email(platform, email, knows=BUT_TWO, **GOOD_FIT)  # fit 40
    clock.advance(minutes=20)
    with platform.svc.db.session() as session:  # engagement 35 ≥ 25: handed off by score
        record_external_event(session, lead_id, "meeting", clock.now(), detail={"title": "Discovery call"},
                              now=clock.now())
        record_external_event(session, lead_id, "reply", clock.now(), now=clock.now())
    report = pipeline.after_events(platform.svc, [lead_id], clock.now())
    [first] = handoffs(platform, lead_id)
    assert report.handoffs == [first.id] and first.reason == "score"

    clock.advance(hours=1)
    with platform.svc.db.session() as session:
        actions.reject(session, platform.svc, session.get(Handoff, first.id), "ava@sales.example", "api",
                       "not_ready", "no budget before next quarter", clock.now())
    platform.tick_and_work(clock.now() + timedelta(days=3))
    [_, second] = platform.received(to=email)
    assert "Talk to a specialist" in visible_links(second.html)  # the customer-proof email

    clock.advance(minutes=20)
    response = platform.app.test_client().get(urlsplit(pixel_url(second.html)).path, headers={"User-Agent": BROWSER})
    assert response.status_code == 200
    report = drain_events(platform.svc)
    assert (report.stored, report.rescored, report.handoffs) == (1, 1, 0)
    assert score_of(platform, lead_id).engagement > 25  # the stored score still shows the whole history
    assert [h.id for h in handoffs(platform, lead_id)] == [first.id]
    with platform.svc.db.session() as session:
        assert session.get(Lead, lead_id).status in (LeadStatus.recycled, LeadStatus.nurturing)

    clock.advance(minutes=5)
    click(platform, visible_links(second.html)["Talk to a specialist"])
    report = drain_events(platform.svc)
    assert report.handoffs == 1
    [_, again] = handoffs(platform, lead_id)
    assert (again.reason, again.state) == ("hand_raiser", HandoffState.notified)
    assert again.reason_detail == "clicked hand-raiser 'Talk to a specialist' on 2026-03-05"


def test_a_hand_raiser_click_after_the_nurture_completed_hands_off(platform, clock):
    """The click on an email of a finished campaign decides by that campaign's rule."""
    email = "finished@acme.example"
    lead_id, links = send_first_email(platform, email, knows=ALL_BUT_VENDOR)
    with platform.svc.db.session() as session:  # the campaign ran out of steps
        session.execute(update(Enrollment).where(Enrollment.lead_id == lead_id).values(
            state=EnrollmentState.completed, next_send_at=None, ended_at=clock.now()))
    clock.advance(days=2)
    click(platform, links["Book a 20-minute demo"])
    report = drain_events(platform.svc)
    assert report.handoffs == 1
    [handoff] = handoffs(platform, lead_id)
    with platform.svc.db.session() as session:
        campaign_id = session.scalar(select(Campaign.id).where(Campaign.slug == "northwind-security"))
        assert session.get(Lead, lead_id).status == LeadStatus.handed_off
    assert (handoff.reason, handoff.campaign_id) == ("hand_raiser", campaign_id)
    assert handoff.reason_detail == "clicked hand-raiser 'Book a 20-minute demo' on 2026-03-04"


def test_after_completion_a_campaign_without_hand_raiser_handoffs_does_not_decide(platform, clock):
    email = "quiet@acme.example"
    lead_id, links = send_first_email(platform, email, knows=ALL_BUT_VENDOR, **GOOD_FIT)
    with platform.svc.db.session() as session:
        session.execute(update(Enrollment).where(Enrollment.lead_id == lead_id).values(
            state=EnrollmentState.completed, next_send_at=None, ended_at=clock.now()))
        session.execute(update(Campaign).where(Campaign.slug == "northwind-security").values(
            handoff_rule={"hand_raiser": False, "engagement_at_least": 1}))
    clock.advance(days=2)
    click(platform, links["Book a 20-minute demo"])
    assert drain_events(platform.svc).handoffs == 0  # and no score route once the nurture is over
    assert handoffs(platform, lead_id) == []


def test_a_fit_only_rule_hands_off_at_the_daily_rescore_without_any_event(platform, clock):
    """``engagement_at_least: null`` fires on fit alone; the lead was never scored."""
    with platform.svc.db.session() as session:
        session.execute(update(Campaign).where(Campaign.slug == "northwind-security").values(
            handoff_rule={"engagement_at_least": None, "fit_at_least": 40}))
    fits = platform.add_lead("fits@acme.example", **GOOD_FIT)
    small = platform.add_lead("small@acme.example", employees=30)
    platform.enroll("fits@acme.example")
    platform.enroll("small@acme.example")
    job = platform.svc.queue.enqueue("nurture_mail.jobs.scoring.rescore_all")
    platform.work()
    result = job.return_value()
    assert (result["scored"], result["decisions"], len(result["handoffs"])) == (2, 1, 1)
    [handoff] = handoffs(platform, fits)
    assert (handoff.reason, handoff.reason_detail, handoff.trigger_event_id) == ("score", "fit 40 ≥ 40", None)
    assert handoffs(platform, small) == []
    # Run again (the next day): the open handoff, then the last handoff, keep it from repeating.
    platform.svc.queue.enqueue("nurture_mail.jobs.scoring.rescore_all")
    platform.work()
    with platform.svc.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Handoff)) == 1


def test_an_imported_free_text_industry_counts_toward_fit(platform, clock):
    """The CSV's ``industry`` column lands in custom_fields; the rules read it there."""
    lead_id = platform.add_lead("dan@ledgerstone.example", employees=640, region="AMER",
                                custom_fields={"industry": "Financial Services"})
    platform.enroll("dan@ledgerstone.example")
    pipeline.after_events(platform.svc, [lead_id], clock.now())
    score = score_of(platform, lead_id)
    assert score.fit == 40
    assert [line["text"] for line in score.fit_breakdown] == [
        "+15 industry Financial Services is financial services", "+20 employees 640: mid-market (200–2,000)",
        "+5 region AMER: sales coverage (AMER)"]
