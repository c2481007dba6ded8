"""Runtime commands: migrate, scheduler tick, worker (``worker.py``), cron, and ``run`` (everything at once)."""
from __future__ import annotations

from urllib.parse import urlsplit

import click

from .. import services
from ..clock import parse_instant
from ..migrate import upgrade
from ..nurture.tick import run_tick
from ..rulefiles import rule_file_problems
from ..worker import worker_command  # noqa: F401  (registered by cli/__init__.py)
from .campaigns import sync_from_files
from .common import make_app, with_app


@click.command("init")
@with_app
def init_command() -> None:
    """Create or migrate the database schema and sync campaigns/*.yaml."""
    svc = services()
    rule_problems = rule_file_problems(svc.config)
    if rule_problems:
        for problem in rule_problems:
            click.echo(f"error: {problem}", err=True)
        raise click.ClickException(f"{len(rule_problems)} error(s) in rule files; fix them and run init again")
    upgrade(svc.db)
    click.echo(f"database ready: {_safe_url(svc.config.database_url)}")
    result, problems = sync_from_files()
    click.echo(f"campaigns: {len(result.created)} created, {len(result.updated)} updated, "
               f"{len(result.unchanged)} unchanged")
    team_path = svc.config.sales_team_path
    if team_path.exists():
        from ..sales.team import sync_sales_team

        with svc.db.session() as session:
            click.echo(f"sales team: {sync_sales_team(session, team_path, svc.clock.now()).summary()}")
    if problems:
        for campaign_problem in problems:
            click.echo(f"error: {campaign_problem}", err=True)
        raise click.ClickException(f"{len(problems)} error(s) in campaign files; those files were not synced")


@click.command("tick")
@click.option("--now", "now_text", help="Run the pass as of this ISO-8601 instant (default: the clock).")
@click.option("--no-enqueue", is_flag=True, help="Queue deliveries in the database but enqueue no send job.")
@with_app
def tick_command(now_text: str | None, no_enqueue: bool) -> None:
    """One scheduler pass: queue the next touch of every due enrollment."""
    svc = services()
    now = parse_instant(now_text) if now_text else svc.clock.now()
    report = run_tick(svc, now, enqueue=not no_enqueue)
    click.echo(f"tick at {now:%Y-%m-%d %H:%M:%S} UTC: {report.summary()}")


@click.command("cron")
def cron_command() -> None:
    """Run RQ's cron scheduler, enqueueing the scheduler tick every TICK_INTERVAL seconds."""
    from ..runtime import configure_logging, run_cron

    configure_logging()
    run_cron(make_app())


@click.command("run")
@click.option("--demo/--no-demo", default=False,
              help="Seed samples/leads.csv into the demo campaign and run the clock fast (see README).")
@click.option("--speed", default=1800.0, show_default=True, help="With --demo: simulated seconds per real second.")
@click.option("--host", default=None, help="Web host (default: from BASE_URL).")
@click.option("--port", default=None, type=int, help="Web port (default: from BASE_URL).")
@click.option("--workers", default="auto", show_default=True, help="Worker processes ('auto': one per core).")
def run_command(demo: bool, speed: float, host: str | None, port: int | None, workers: str) -> None:
    """Start everything on this machine: web, workers, cron, embedded Redis and SMTP capture."""
    from ..runtime import run_platform, worker_count

    try:
        count = worker_count(workers)
    except ValueError as exc:
        raise click.BadParameter(str(exc).replace("--count", "--workers"), param_hint="--workers") from None

    run_platform(demo=demo, host=host, port=port, workers=count, speed=speed)


def _safe_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
