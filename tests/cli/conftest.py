"""The documented CLI, run as a user runs it: ``python -m nurture_mail …`` in a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nurture_mail.extensions import redis_url_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(tmp_path, redis, smtp_server):
    env = dict(
        os.environ,
        INSTANCE_PATH=str(tmp_path / "instance"),
        REDIS_URL=redis_url_of(redis),
        SMTP_URL=f"smtp://127.0.0.1:{smtp_server.port}",
        SECRET_KEY="cli-secret",
    )
    env.pop("DATABASE_URL", None)

    def run(*args: str, ok: bool = True, **extra_env: str) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "nurture_mail", *args], env={**env, **extra_env}, cwd=str(ROOT),
                                capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    return run


@pytest.fixture
def cli_in_process(make_app, database_url, clock, monkeypatch):
    """The commands in this process on an app over each database (SQLite and PostgreSQL), campaigns
    synced: ``run("erase", "x@y", "--yes")`` gives (exit code, stdout, stderr)."""
    from click.testing import CliRunner

    import nurture_mail.cli.common as common
    from nurture_mail.campaigns import CampaignLoader, sync_all
    from nurture_mail.cli import main

    app = make_app(database_url)
    svc = app.extensions["nurture"]
    specs, _problems = CampaignLoader(svc.config.templates_dir).load_dir(svc.config.campaigns_dir)
    with svc.db.session() as session:
        sync_all(session, specs, clock.now())
    monkeypatch.setattr(common, "make_app", lambda: app)
    monkeypatch.setattr(svc, "close", lambda: None)  # the fixture closes it
    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(main, list(args), catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    run.app = app
    return run
