"""The lead's timeline shows every touch and act, with bots flagged and the reason kept."""
from __future__ import annotations

from click.testing import CliRunner
from support.tracking import BROWSER, first_email, stored_events, visible_links

from nurture_mail.cli import main
from nurture_mail.extensions import redis_url_of
from nurture_mail.nurture.timeline import lead_story


def test_timeline_lists_emails_bot_and_human_clicks_and_knowledge_evidence(platform, clock):
    _, msg = first_email(platform)
    report = visible_links(msg.html)["Read the 2026 report"]
    client = platform.app.test_client()
    clock.advance(seconds=2)
    client.get(report.path, headers={"User-Agent": BROWSER})  # a scanner's pre-fetch
    clock.advance(hours=2)
    client.get(report.path, headers={"User-Agent": BROWSER})  # the person
    stored_events(platform)

    with platform.svc.db.session() as session:
        story = lead_story(session, "sec@bank.example")
    texts = [(e.kind, e.text) for e in story.entries]
    assert texts[0] == ("email", "northwind-security/welcome: sent")
    assert ("event", "click on 'report' [cloud-risk-landscape] — suspected bot: 2.0 s after delivery (< 10 s)") in texts
    assert ("event", "click on 'report' [cloud-risk-landscape]") in texts
    assert ("knows", "cloud-risk-landscape → engaged (click)") in texts
    assert story.knowledge == {"cloud-risk-landscape": "engaged"}
    assert story.enrollments[0].startswith("northwind-security: active, 1 sent, next ")

    config = platform.svc.config
    env = {"DATABASE_URL": config.database_url, "REDIS_URL": redis_url_of(platform.svc.redis),
           "INSTANCE_PATH": str(config.instance_path), "SECRET_KEY": config.secret_key}
    result = CliRunner().invoke(main, ["lead", "SEC@bank.example"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "status=nurturing" in result.output
    assert "suspected bot: 2.0 s after delivery (< 10 s)" in result.output
