"""Starting the platform's processes: worker, cron, and everything at once for ``run``."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flask import Flask
from rq import Queue, SimpleWorker
from rq.cron import CronScheduler
from sqlalchemy import select

from .extensions import redis_url_of
from .jobs.schedule import cron_table
from .tracking.ingest import start_drain_thread

log = logging.getLogger(__name__)


def run_worker(app: Flask, burst: bool = False, name: str | None = None, logging_level: str = "INFO") -> bool:
    """An RQ worker on the app's queue; jobs run in this process, inside the app context.

    SimpleWorker (no fork per job) because a job is a batch of hundreds of emails: a fork per
    job buys crash isolation we get from the delivery ledger instead, and costs a reconnect.
    """
    svc = app.extensions["nurture"]
    # A long-running worker also drains tracking hits as they arrive (a thread asleep in Redis
    # until a click): clicks teach, score and hand off within a second, not at the next cron run.
    drain = None if burst else start_drain_thread(app)
    try:
        with app.app_context():
            queue = Queue(svc.config.queue_name, connection=svc.redis)
            worker = SimpleWorker([queue], connection=svc.redis, name=name)
            return worker.work(burst=burst, with_scheduler=False, logging_level=logging_level)
    finally:
        if drain is not None:
            drain[1].set()
            drain[0].join(timeout=5)


def run_cron(app: Flask) -> None:
    """RQ's own cron scheduler enqueueing the entries of the cron table (blocks)."""
    svc = app.extensions["nurture"]
    scheduler = CronScheduler(connection=svc.redis, logging_level="INFO")
    for entry in cron_table(svc.config):
        scheduler.register(**entry)
    scheduler.start()


def child_env(app: Flask) -> dict[str, str]:
    """Environment for child processes: they reach the parent's embedded Redis by its socket."""
    svc = app.extensions["nurture"]
    env = dict(os.environ)
    env["REDIS_URL"] = redis_url_of(svc.redis)
    env["DATABASE_URL"] = svc.config.database_url
    env["INSTANCE_PATH"] = str(svc.config.instance_path)
    env["SECRET_KEY"] = svc.config.secret_key
    return env


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nurture_mail", *args], env=env,
                            cwd=str(Path(__file__).resolve().parent.parent))


def stop_all(processes: list[subprocess.Popen], timeout: float = 10) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()


DEMO_CAMPAIGN = "northwind-security"
DEMO_LEADS = Path(__file__).resolve().parent.parent / "samples" / "leads.csv"


DEMO_ADMIN = "admin@northwind.example"


def seed_demo_admin(app: Flask) -> str:
    """A demo admin with a fresh password and API token, printed so ``make run`` is usable.

    Created once; on later runs its password and token are replaced (the old token is revoked),
    since only hashes are stored and the previous values cannot be shown again, and it is made
    an active admin again.
    """
    import secrets

    from .auth.accounts import create_user, issue_token, set_password
    from .models import ApiToken, Role, User

    svc = app.extensions["nurture"]
    password = secrets.token_urlsafe(12)
    with app.app_context(), svc.db.session() as session:
        now = svc.clock.now()
        user = session.scalar(select(User).where(User.email == DEMO_ADMIN))
        if user is None:
            user = create_user(session, DEMO_ADMIN, "Demo admin", "admin", now, password=password)
        else:
            # a demo admin someone deactivated or demoted is an admin again: the printed sign-in must work
            set_password(user, password)
            user.active = True
            user.role = Role.admin
            for token in session.scalars(select(ApiToken).where(ApiToken.user_id == user.id,
                                                                ApiToken.name == "demo",
                                                                ApiToken.revoked_at.is_(None))):
                token.revoked_at = now
        issued = issue_token(session, user, "demo", now)
    return (f"demo admin: sign in at {svc.config.base_url}/signin as {DEMO_ADMIN} / {password}; "
            f"API token: {issued.secret}")


def seed_demo(app: Flask) -> str:
    """Import the sample leads into the demo campaign once; later runs leave data alone."""
    from sqlalchemy import func

    from .leads.importer import import_rows, read_rows
    from .models import Lead
    from .nurture.enroll import enroll, find_campaign

    svc = app.extensions["nurture"]
    with app.app_context(), svc.db.session() as session:
        if session.scalar(select(func.count()).select_from(Lead)):
            return "demo data already present"
        campaign = find_campaign(session, DEMO_CAMPAIGN)
        now = svc.clock.now()
        _, rows = read_rows(DEMO_LEADS)
        report = import_rows(session, rows, "demo", now)
        for lead_id in report.lead_ids:
            enroll(session, session.get(Lead, lead_id), campaign, now, source="import", declared_by="demo",
                   default_timezone=svc.config.default_timezone)
        imported = len(report.all_lead_ids)
        return (f"seeded {imported} sample leads; {len(report.lead_ids)} clean ones enrolled in {DEMO_CAMPAIGN} "
                f"(flagged by hygiene: {imported - len(report.lead_ids)})")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_platform(demo: bool = False, host: str | None = None, port: int | None = None) -> None:
    """Web, worker, cron, embedded Redis and the SMTP capture inbox; Ctrl-C stops them all."""
    from urllib.parse import urlsplit

    from werkzeug.serving import run_simple

    from . import create_app
    from .campaigns import CampaignLoader, sync_all
    from .config import Config
    from .migrate import upgrade

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = Config.from_env()
    if config.clock_speed != 1.0 and not config.clock_epoch:
        os.environ["CLOCK_EPOCH"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        config = Config.from_env()
    from .rulefiles import rule_file_problems

    rule_problems = rule_file_problems(config)
    if rule_problems:
        for problem in rule_problems:
            log.error("rule file error: %s", problem)
        raise SystemExit(f"{len(rule_problems)} error(s) in rule files; nothing was started")
    app = create_app(config)
    svc = app.extensions["nurture"]
    upgrade(svc.db)
    loader = CampaignLoader(config.templates_dir, root=config.campaigns_dir.parent)
    specs, problems = loader.load_dir(config.campaigns_dir)
    for problem in problems:
        log.error("campaign file error: %s", problem)
    with svc.db.session() as session:
        sync_all(session, specs, svc.clock.now())
    if config.sales_team_path.exists():
        from .sales.team import sync_sales_team

        with svc.db.session() as session:
            log.info("sales team: %s", sync_sales_team(session, config.sales_team_path, svc.clock.now()).summary())
    if demo:
        log.info(seed_demo(app))
        # Printed (not only logged) so the credentials are visible whatever the log level.
        print(seed_demo_admin(app), flush=True)

    capture = None
    if config.embedded_smtp:
        from .bounces.inbound import attach_inbound
        from .mail.capture import CaptureServer, CaptureStore

        capture = CaptureServer(CaptureStore(config.capture_dir), host=config.capture_smtp_host,
                                port=config.capture_smtp_port, clock=svc.clock)
        # The capture server is the relay, so what comes back arrives here too: DSNs at the
        # VERP bounce address and mailto unsubscribes are applied as they are received.
        attach_inbound(capture, svc)
        capture.start()
        log.info("SMTP capture server on %s:%s", config.capture_smtp_host, capture.port)

    env = child_env(app)
    children = [spawn(["worker"], env), spawn(["cron"], env)]
    url = urlsplit(config.base_url)
    host = host or url.hostname or "127.0.0.1"
    port = port or url.port or 5000
    log.info("nurture_mail on %s (inbox: %s/inbox)%s", config.base_url, config.base_url,
             f"; demo clock x{config.clock_speed:g}" if config.clock_speed != 1.0 else "")
    # Ctrl-C, and SIGTERM from a supervisor, stop everything the same way; SIGINT may have been
    # ignored by a non-interactive parent shell, so its default handler is put back explicitly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_simple(host, port, app, use_reloader=False, threaded=True)
    except KeyboardInterrupt:
        pass
    finally:
        log.info("stopping worker and cron …")
        stop_all(children)
        if capture is not None:
            capture.stop()
        svc.close()
        shutdown = getattr(svc.redis, "shutdown", None)
        if config.embedded_redis and shutdown is not None:
            try:
                shutdown(save=True, now=True)
            except Exception:  # already stopped with the last client
                pass
