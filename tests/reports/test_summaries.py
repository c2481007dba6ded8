"""The summaries the topics and monthly reports read (``reports/summaries.py``) give exactly the
numbers of a recount from the raw tables, after every kind of change the product makes: new
events through the tracking path, new knowledge and enrollments, new handoffs, their state
changes, an erasure. Every report is compared whole (its tables and summary sentences), the
summarised run against the same report with the summaries' watermarks removed (a live count)."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import delete, func, select
from support.sales import get_handoff, hand_off
from support.tracking import BROWSER, visible_links

from nurture_mail.jobs.sales import refresh_report_counters
from nurture_mail.leads.service import erase_lead
from nurture_mail.models import Campaign, EngagedLeadMonth, Lead, ReportWatermark, TopicDayCount
from nurture_mail.nurture.knowledge import declare_known
from nurture_mail.reports import REPORTS, run_report
from nurture_mail.reports.summaries import live_topic_levels, refresh_summaries, stored_topic_levels
from nurture_mail.sales import actions
from nurture_mail.tracking.ingest import drain_events

from . import scenario
from .conftest import sign_in

#: The variants compared: default ranges, ranges ending before / on the scenario's days, both months.
VARIANTS = [(name, {}) for name in REPORTS] + [
    ("topics", {"to": "2026-03-01"}), ("topics", {"to": "2026-03-02"}), ("topics", {"from": "2026-03-01"}),
    ("monthly", {"month": "2026-03"}), ("monthly", {"month": "2026-02"}), ("monthly", {"month": "2026-04"}),
    ("closure", {"from": "2026-03-01"}), ("forecast", {"from": "2026-03-01"}),
]


@pytest.fixture
def world(platform, team):
    return scenario.build(platform)


def refresh(platform) -> dict[str, int]:
    with platform.svc.db.session() as session:
        return refresh_summaries(session, platform.clock.now())


def shown(result) -> tuple:
    """What a report shows, apart from its notes (which say where the figures come from)."""
    return ([(t.key, t.rows) for t in result.tables], result.summary)


def assert_summaries_match_a_recount(platform, *, stale: tuple[str, ...] = ()) -> None:
    """``stale``: reports that may lag until the next refresh (the topics' levels; their page says so)."""
    svc, now = platform.svc, platform.clock.now()
    for name, params in VARIANTS:
        if name in stale:
            continue
        with svc.db.session() as session:
            summarised = run_report(name, session, svc.config, now, params)
        with svc.db.session() as session:
            session.execute(delete(ReportWatermark))  # no watermark: every report counts live
            live = run_report(name, session, svc.config, now, params)
            session.rollback()
        assert shown(summarised) == shown(live), (name, params)


def click_latest(platform, email: str, user_agent: str = BROWSER) -> None:
    """A click on the first tracked link of the latest email to ``email``, through the tracking path."""
    message = platform.received(to=email)[-1]
    link = next(link for link in visible_links(message.html).values() if "/c/" in link.path)
    platform.app.test_client().get(link.path, headers={"User-Agent": user_agent})
    drain_events(platform.svc)


def lead_id(platform, email: str) -> int:
    with platform.svc.db.session() as session:
        return session.scalar(select(Lead.id).where(Lead.email == email))


def test_summaries_give_the_numbers_of_a_recount_after_every_kind_of_change(platform, world):
    svc = platform.svc
    assert_summaries_match_a_recount(platform)  # before the first refresh: both count live
    first = refresh(platform)
    assert first["topic_rows"] > 0 and first["engaged_months"] == 1
    with svc.db.session() as session:
        assert session.scalar(select(func.count()).select_from(EngagedLeadMonth)) == 2  # Nora and Omar clicked
    assert_summaries_match_a_recount(platform)

    # Nothing happened: the run after next recounts nothing (one run of overlap re-reads the last ids).
    platform.clock.advance(minutes=5)
    refresh(platform)
    platform.clock.advance(minutes=5)
    assert refresh(platform)["topic_groups"] == 0

    # New events through the tracking path: Sue clicks (engaged knowledge, an engagement), a scanner
    # clicks Raj's email (recorded, flagged, counted nowhere).
    platform.clock.advance(minutes=5)
    click_latest(platform, "sue@moss.example")
    click_latest(platform, "raj@kite.example", scenario.SCANNER)
    # Before the next refresh the monthly figure already includes Sue (the newest events are counted
    # live); the topics' levels wait for the refresh.
    assert_summaries_match_a_recount(platform, stale=("topics",))
    changed = refresh(platform)
    assert changed["topic_groups"] == 1  # the five leads enrolled the same day: one group recounted
    assert_summaries_match_a_recount(platform)

    # A new lead enrolled the next day, who declares topics known.
    platform.clock.advance(days=1)
    platform.add_lead("tom@vale.example", first_name="Tom", title="CTO", lead_source="referral", employees=40)
    platform.enroll("tom@vale.example")
    with svc.db.session() as session:
        topics = [t for t, in session.execute(select(TopicDayCount.topic).distinct()).all()][:2]
        declare_known(session, lead_id(platform, "tom@vale.example"), topics, platform.clock.now(), by="rep@test",
                      source="sales")
    refresh(platform)
    assert_summaries_match_a_recount(platform)

    # The send path exposes Tom to the topics of his first email (its own bulk insert of knowledge
    # and evidence): with the overlap window empty, only that evidence can make the refresh see it.
    for _ in range(2):
        platform.clock.advance(minutes=5)
        refresh(platform)
    sent_before = len(platform.received(to="tom@vale.example"))
    platform.tick_and_work()
    assert len(platform.received(to="tom@vale.example")) == sent_before + 1
    assert refresh(platform)["topic_groups"] >= 1
    assert_summaries_match_a_recount(platform)

    # A new handoff (Sue: no longer "under development"), and state changes of the others.
    hand_off(platform, "sue@moss.example")
    now = platform.clock.now()
    with svc.db.session() as session:
        handoffs = {e: session.merge(get_handoff(platform, world.handoffs[e])) for e in world.handoffs}
        actions.accept(session, handoffs["nora@quinn.example"], "rep@test", "web", now)
        actions.mark_won(session, handoffs["nora@quinn.example"], "rep@test", "web", "42000", now)
        actions.accept(session, handoffs["omar@ridge.example"], "rep@test", "web", now)
        actions.mark_lost(session, handoffs["omar@ridge.example"], "rep@test", "web", "no budget", now)
        actions.accept(session, handoffs["pia@lund.example"], "rep@test", "web", now)
    assert_summaries_match_a_recount(platform)
    refresh(platform)
    assert_summaries_match_a_recount(platform)

    # An erasure: Raj's identity goes, his levels and events stay; his enrollment ends.
    with svc.db.session() as session:
        raj = session.scalar(select(Lead).where(Lead.email == "raj@kite.example"))
        assert erase_lead(session, raj, platform.clock.now(), by="admin@test", redis=None)
    assert_summaries_match_a_recount(platform)
    refresh(platform)
    assert_summaries_match_a_recount(platform)


def test_topic_levels_from_the_summary_equal_the_live_count_for_every_end_day(platform, world):
    """Per enrollment day: a range ending before, on and after the day the leads enrolled."""
    click_latest(platform, "nora@quinn.example")
    refresh(platform)
    with platform.svc.db.session() as session:
        campaign_id = session.scalar(select(Campaign.id).where(Campaign.slug == "northwind-security"))
        topics = [t for t, in session.execute(select(TopicDayCount.topic).distinct())]
        assert topics
        for last in (date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 31)):
            stored = stored_topic_levels(session, campaign_id, topics, last)
            before = datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC)
            live = live_topic_levels(session, campaign_id, topics, before)
            assert stored == live, last
        assert sum(stored.values()) > 0


def test_the_pages_say_how_fresh_the_summaries_are(platform, world, users):
    svc = platform.svc
    with svc.db.session() as session:
        topics = run_report("topics", session, svc.config, platform.clock.now(), {})
    assert not any("refreshes every five minutes" in n for n in topics.notes)  # live until the first refresh
    with platform.app.app_context():
        result = refresh_report_counters(now=platform.clock.now().isoformat())  # the cron job itself
    assert result["topic_rows"] > 0
    stamp = f"{platform.clock.now():%d %b %Y %H:%M} UTC"
    with svc.db.session() as session:
        topics = run_report("topics", session, svc.config, platform.clock.now(), {})
        monthly = run_report("monthly", session, svc.config, platform.clock.now(), {})
    assert any(stamp in n and "refreshes every five minutes" in n for n in topics.notes)
    assert any(stamp in n and "complete up to now" in n for n in monthly.notes)
    client = sign_in(platform.app.test_client(), "viewer@northwind.example")
    for name in ("topics", "monthly"):
        assert stamp in client.get(f"/reports/{name}").get_data(as_text=True), name


def test_the_nightly_full_recount_repairs_what_an_incremental_refresh_cannot_see(platform, world):
    """A knowledge row whose transaction committed after two refreshes had read past its id is never
    recounted by the incremental refreshes; the nightly cron entry recounts everything."""
    from nurture_mail.jobs.schedule import cron_table

    click_latest(platform, "nora@quinn.example")
    refresh(platform)
    with platform.svc.db.session() as session:
        # What a late row leaves behind: one group's count off by one.
        row = session.scalars(select(TopicDayCount).order_by(TopicDayCount.topic).limit(1)).one()
        row.leads += 1
    for _ in range(2):
        platform.clock.advance(minutes=5)
        assert refresh(platform)["topic_groups"] == 0  # nothing new above the watermark: nothing recounted
    with pytest.raises(AssertionError):
        assert_summaries_match_a_recount(platform)

    [nightly] = [e for e in cron_table(platform.svc.config) if e["name"] == "nurture-reports-full-recount"]
    assert nightly["cron"] and nightly["kwargs"] == {"full": True}
    with platform.app.app_context():  # as in a worker
        nightly["func"](now=platform.clock.now().isoformat(), **nightly["kwargs"])
    assert_summaries_match_a_recount(platform)
