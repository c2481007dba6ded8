"""The sales webhook without SALES_WEBHOOK_SECRET signs with a key derived from SECRET_KEY, which
the CLI prints; never SECRET_KEY itself."""
from __future__ import annotations

from click.testing import CliRunner
from support.platform import Platform
from support.sales import hand_off, sync_team

from nurture_mail.cli import common
from nurture_mail.cli import sales as sales_cli
from nurture_mail.sales.destinations.webhook import verify, webhook_secret_text

from .test_webhook import Receiver


def run_cli(platform, monkeypatch, command, *args):
    monkeypatch.setattr(common, "make_app", lambda: platform.app)
    monkeypatch.setattr(platform.svc, "close", lambda: None)
    result = CliRunner().invoke(command, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_webhook_without_its_secret_signs_with_a_derived_key_the_cli_prints(make_app, database_url, smtp_server,
                                                                           clock, team_file, monkeypatch):
    with Receiver([200]) as receiver:
        app = make_app(database_url, smtp_port=smtp_server.port, sales_webhook_url=receiver.url,
                       sales_webhook_secret="", retry_backoff_seconds=0, sales_webhook_timeout=5.0)
        platform = Platform(app, smtp_server, clock)
        platform.sync()
        sync_team(platform, team_file)
        platform.add_lead("derived@acme.example", region="AMER")
        hand_off(platform, "derived@acme.example")
        platform.work()
    [post] = receiver.posts
    config = platform.svc.config
    printed = run_cli(platform, monkeypatch, sales_cli.webhook_secret_command).stdout.strip().splitlines()[0]
    assert printed == webhook_secret_text(config) and len(printed) == 64
    assert printed != config.secret_key and config.secret_key not in printed
    headers = post["headers"]
    assert verify(printed.encode(), headers["X-Nurture-Timestamp"], post["body"], headers["X-Nurture-Signature"])
    assert not verify(config.secret_key.encode(), headers["X-Nurture-Timestamp"], post["body"],
                      headers["X-Nurture-Signature"])
