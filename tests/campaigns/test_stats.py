"""Campaign and step counts: enrollments by state, handoffs, sent, humans only for opens and clicks."""
from __future__ import annotations

from activity import seed_activity  # tests/campaigns is on sys.path (no __init__.py)

from nurture_mail.campaigns import CampaignLoader, sync_all
from nurture_mail.campaigns.stats import campaign_counts, step_counts
from nurture_mail.models import Campaign, Step


def test_counts_exclude_bots_and_count_each_email_once(make_app, database_url, clock) -> None:
    app = make_app(database_url)
    svc = app.extensions["nurture"]
    specs, _ = CampaignLoader(svc.config.templates_dir).load_dir(svc.config.campaigns_dir)
    with svc.db.session() as session:
        sync_all(session, specs, clock.now())
        seeded = seed_activity(session, "northwind-security", clock.now())
    with svc.db.session() as session:
        campaign = session.query(Campaign).filter_by(slug="northwind-security").one()
        counts = campaign_counts(session)[campaign.id]
        assert (counts.enrolled, counts.active, counts.completed, counts.handed_off) == (
            seeded.enrolled, seeded.active, seeded.completed, seeded.handed_off)
        assert counts.sent == seeded.sent
        assert counts.clicked == seeded.human_clicked  # every email also has a bot click: not counted
        assert counts.click_rate == seeded.human_clicked / seeded.sent
        first = session.query(Step).filter_by(campaign_id=campaign.id, key="welcome").one()
        step = step_counts(session, campaign.id)[first.id]
        assert (step.sent, step.opened, step.clicked, step.skipped_known) == (
            seeded.first_step_sent, seeded.first_step_opened, seeded.first_step_clicked, seeded.first_step_skipped)
        assert 0 < step.clicked < step.opened < step.sent
