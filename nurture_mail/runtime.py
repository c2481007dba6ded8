"""Starting the platform's processes: worker, cron, and everything at once for ``run``."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from rq import Queue, SimpleWorker
from sqlalchemy import select

from .clock import SystemClock, as_utc
from .config import Config
from .embedded_redis import die_with_parent
from .extensions import redis_url_of

log = logging.getLogger(__name__)


#: Exit status of a worker or cron that gave up on its own (not a requested stop): ``run``
#: and ``worker --count`` start it again.
EXIT_RESTART = 75


def configure_logging(level: str | None = None) -> None:
    """One line per event at INFO: batches, ticks, faults; RQ's per-job lines and the SMTP
    dialogue of the capture server only at DEBUG (``LOG_LEVEL=DEBUG``)."""
    level = (level or Config.from_env().log_level).upper()
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger().setLevel(level)
    if level != "DEBUG":
        for noisy in ("rq.worker", "rq.job", "rq.queue", "rq.cron", "rq.scheduler", "mail.log"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def run_worker(app: Flask, burst: bool = False, name: str | None = None, logging_level: str = "INFO") -> bool:
    """An RQ worker on the app's queue; jobs run in this process, inside the app context.

    SimpleWorker (no fork per job) because a job is a batch of hundreds of emails: a fork per
    job buys crash isolation we get from the delivery ledger instead, and costs a reconnect.

    Redis going away does not end it: RQ's own loop waits while idle; a loss during a job (the
    batch then stops and records what it sent, see ``nurture/send.py``) or a loss RQ gives up
    on ends that RQ worker, and a new one is started here as soon as Redis answers again.
    """
    svc = app.extensions["nurture"]
    # A long-running worker also drains tracking hits as they arrive (a thread asleep in Redis
    # until a click): clicks teach, score and hand off within a second, not at the next cron run.
    # A burst worker runs no drain, nor imports it.
    drain = None
    if not burst:
        from .tracking.ingest import start_drain_thread

        drain = start_drain_thread(app)
    try:
        return _work_until_stopped(app, svc, burst, name, logging_level)
    finally:
        if drain is not None:
            drain[1].set()
            drain[0].join(timeout=5)


def _stop_or_asked(stop: _StopFlag, worker: SimpleWorker) -> bool:
    return stop.requested or _stop_asked(worker)


def _work_until_stopped(app: Flask, svc, burst: bool, name: str | None, logging_level: str) -> bool:
    """RQ workers one after another: a new one as soon as Redis answers again after a loss."""
    from rq.exceptions import StopRequested

    from .resilience import REDIS_DOWN, wait_for_redis

    stop = _StopFlag(install=not burst)
    generation = 0
    worked = False
    with app.app_context():
        while True:
            queue = Queue(svc.config.queue_name, connection=svc.redis)
            worker_name = name if generation == 0 or name is None else f"{name}.{generation}"
            worker = (_BurstWorker if burst else SimpleWorker)([queue], connection=svc.redis, name=worker_name)
            try:
                worked = worker.work(burst=burst, with_scheduler=False, logging_level=_rq_level(logging_level)) or worked
            except REDIS_DOWN as exc:
                log.warning("worker lost Redis: %s", exc)
            if burst or _stop_asked(worker) or stop.requested:
                return worked
            if not _redis_alive(svc.redis):
                try:
                    if not wait_for_redis(svc.redis, "the worker",
                                          stop=partial(_stop_or_asked, stop, worker)):
                        return worked
                except (KeyboardInterrupt, StopRequested):
                    return worked
            elif generation and generation % 5 == 0:
                time.sleep(1)  # an RQ worker ending for another reason: do not spin
            generation += 1
            log.info("worker starting again (%s)", f"restart {generation}")


class _BurstWorker(SimpleWorker):
    """A burst worker that ends without waiting a second for RQ's pubsub thread.

    After the unsubscribe, that thread waits up to 60 s for a new subscription (redis-py's
    ``get_message``), so RQ's ``join(timeout=1)`` always lasts the full second: a second of
    every burst run. The thread is a daemon; it ends with the process.
    """

    def unsubscribe(self) -> None:
        if self.pubsub_thread:
            self.pubsub.unsubscribe()
            self.pubsub_thread.stop()


def _stop_asked(worker: SimpleWorker) -> bool:
    """SIGTERM/SIGINT reached RQ's handler (it records when, busy or idle)."""
    return getattr(worker, "_shutdown_requested_date", None) is not None or worker._stop_requested


def _rq_level(level: str) -> str:
    """RQ logs several lines per job at INFO: shown only when the operator asks for DEBUG."""
    root = logging.getLogger().getEffectiveLevel()
    if root <= logging.DEBUG or level.upper() == "DEBUG":
        return "DEBUG"
    return "WARNING" if level.upper() == "INFO" else level


def _redis_alive(redis) -> bool:
    from .resilience import REDIS_DOWN

    try:
        return bool(redis.ping())
    except REDIS_DOWN:
        return False


class _StopFlag:
    """Set by SIGTERM/SIGINT between RQ workers (RQ installs its own handlers while working)."""

    def __init__(self, install: bool = True) -> None:
        self.requested = False
        if install and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._set)

    def _set(self, signum, frame) -> None:
        self.requested = True
        raise KeyboardInterrupt


def run_cron(app: Flask) -> None:
    """RQ's cron scheduler enqueueing the entries of the cron table (blocks until stopped).

    RQ's own loop ends at the first Redis error; this one waits for Redis to answer again, then
    enqueues a scheduler tick at once (Redis may have come back empty: the tick re-enqueues
    from the ledger the send jobs that were lost) and carries on with the same schedule.
    """
    from rq.cron import CronScheduler
    from rq.exceptions import StopRequested

    from .jobs.schedule import cron_table
    from .resilience import REDIS_DOWN, wait_for_redis

    svc = app.extensions["nurture"]
    scheduler = CronScheduler(connection=svc.redis, logging_level="INFO")
    entries = cron_table(svc.config)
    for entry in entries:
        scheduler.register(**entry)
    tick_name = entries[0]["name"]
    scheduler._install_signal_handlers()
    born = False
    run_id = None

    def tick_at_once() -> None:
        for job in scheduler.get_jobs():
            if job.name == tick_name:
                job.latest_enqueue_time = None
                job.next_enqueue_time = None

    try:
        while True:
            try:
                # redis-py reconnects by itself, so a restart may pass unnoticed: its run id says.
                current = svc.redis.info("server").get("run_id")
                if run_id is not None and current != run_id:
                    log.warning("Redis restarted (new run id): a tick now re-enqueues what it lost")
                    born = False
                    tick_at_once()
                run_id = current
                if not born:
                    scheduler.register_birth()
                    born = True
                if scheduler.enqueue_jobs():
                    scheduler.save()
                scheduler.heartbeat()
                pause = scheduler.calculate_sleep_interval()
                if pause > 0:
                    time.sleep(min(pause, 5))  # the run-id check above comes at least every 5 s
            except REDIS_DOWN as exc:
                log.warning("cron lost Redis: %s", exc)
                born = False
                wait_for_redis(svc.redis, "cron")
                tick_at_once()
    except (KeyboardInterrupt, StopRequested):
        log.info("cron stopping")
    finally:
        try:
            if born:
                scheduler.register_death()
        except REDIS_DOWN:
            pass


def child_env(app: Flask) -> dict[str, str]:
    """Environment for child processes: they reach the parent's embedded Redis by its socket."""
    svc = app.extensions["nurture"]
    return svc.config.child_environ(REDIS_URL=redis_url_of(svc.redis))


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """A ``python -m nurture_mail`` child in a process group of its own.

    Its own group: a Ctrl-C in the terminal reaches only the parent, which stops its children
    once each (a second signal would make an RQ worker abandon its batch).
    """
    return subprocess.Popen([sys.executable, "-m", "nurture_mail", *args], env=env,
                            cwd=str(Path(__file__).resolve().parent.parent), process_group=0,
                            preexec_fn=die_with_parent)


def stop_all(processes: list[subprocess.Popen], timeout: float = 20) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("pid %s did not stop within %.0f s; killed", process.pid, timeout)
            process.kill()
            process.wait()


class Supervisor:
    """Starts children and starts again any that dies, until :meth:`stop`."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.children: dict[str, list] = {}  # name -> [args, process, started, failures]
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.restarts = 0

    def add(self, name: str, args: list[str]) -> None:
        with self._lock:
            self.children[name] = [args, spawn(args, self.env), time.monotonic(), 0]

    def pids(self) -> list[int]:
        with self._lock:
            return [child[1].pid for child in self.children.values()]

    def start(self, interval: float = 0.5) -> None:
        self._thread = threading.Thread(target=self._watch, args=(interval,), name="supervisor", daemon=True)
        self._thread.start()

    def _watch(self, interval: float) -> None:
        while not self._stopping.wait(interval):
            with self._lock:
                for name, child in self.children.items():
                    args, process, started, failures = child
                    code = process.poll()
                    if code is None or self._stopping.is_set():
                        continue
                    failures = 0 if time.monotonic() - started > 30 else failures + 1
                    delay = min(0.5 * 2 ** max(failures - 1, 0), 10.0)
                    log.warning("%s (pid %s) exited with status %s; starting it again in %.1f s",
                                name, process.pid, code, delay)
                    if self._stopping.wait(delay):
                        return
                    child[1:] = [spawn(args, self.env), time.monotonic(), failures]
                    self.restarts += 1

    def stop(self, timeout: float = 20) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            stop_all([child[1] for child in self.children.values()], timeout)


def worker_count(value: str | int | None) -> int:
    """``auto`` (or 0/None): one worker per core; otherwise the number given."""
    if value in (None, "", "auto", 0, "0"):
        return max(1, os.cpu_count() or 1)
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"--count: expected a number or 'auto', got {value!r}") from None
    if count < 1:
        raise ValueError(f"--count: expected at least 1, got {count}")
    return count




DEMO_CAMPAIGN = "northwind-security"
DEMO_LEADS = Path(__file__).resolve().parent.parent / "samples" / "leads.csv"


DEMO_ADMIN = "admin@northwind.example"


def seed_demo_admin(app: Flask) -> str:
    """A demo admin with a fresh password and API token, in words (see :func:`demo_admin_credentials`)."""
    svc = app.extensions["nurture"]
    password, token = demo_admin_credentials(app)
    return (f"demo admin: sign in at {svc.config.base_url}/signin as {DEMO_ADMIN} / {password}; "
            f"API token: {token}")


def demo_admin_credentials(app: Flask) -> tuple[str, str]:
    """A demo admin with a fresh password and API token, so ``make run`` is usable.

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
    return password, issued.secret


CREDENTIALS_FILE = "demo-credentials.txt"


def save_credentials(instance_path: Path, base_url: str, password: str, token: str) -> Path:
    """The demo sign-in, kept in ``instance/`` readable by this user only (mode 0600)."""
    instance_path.mkdir(parents=True, exist_ok=True)
    path = instance_path / CREDENTIALS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"url={base_url}/signin\nemail={DEMO_ADMIN}\npassword={password}\napi_token={token}\n")
    os.chmod(path, 0o600)  # an older file keeps its mode through O_TRUNC
    return path


def framed(lines: list[str]) -> str:
    width = max(len(line) for line in lines)
    bar = "+" + "-" * (width + 2) + "+"
    return "\n".join([bar, *(f"| {line.ljust(width)} |" for line in lines), bar])


def resume_demo_clock(database_url: str, speed: float, real_now: datetime) -> tuple[str, str]:
    """The CLOCK_EPOCH that puts the demo clock where the data left off, and a sentence saying so.

    The demo clock runs ``speed`` times real time from its epoch. A second ``run --demo`` on the
    same data starts it at the latest instant the data records (the last email, click or
    enrollment), so the simulated days resume instead of waiting for real time to catch up.
    """
    from sqlalchemy import func

    from .extensions import Database
    from .models import Delivery, Enrollment, Event

    database = Database(database_url)
    try:
        with database.Session() as session:
            found = [session.scalar(select(func.max(column))) for column in
                     (Delivery.sent_at, Delivery.scheduled_for, Enrollment.enrolled_at, Event.at)]
    finally:
        database.dispose()
    latest: list[datetime] = [as_utc(value) for value in found if value is not None]
    start = max(latest) if latest else None
    if start is None or start <= real_now or speed <= 1:
        return real_now.isoformat(), f"demo clock starts now (x{speed:g})"
    # ScaledClock: demo_now = epoch + (real - epoch) * speed; solve demo_now(real_now) = start.
    epoch = real_now - (start - real_now) / (speed - 1)
    return epoch.isoformat(), (f"demo clock resumed from the data at {start:%Y-%m-%d %H:%M} UTC (x{speed:g}); "
                               f"delete instance/ for a fresh demo")


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


def run_platform(demo: bool = False, host: str | None = None, port: int | None = None,
                 workers: int | None = None, speed: float | None = None) -> None:
    """Web, workers, cron, embedded Redis and the SMTP capture inbox; Ctrl-C or SIGTERM stops them all.

    Every child is started by this process and stopped by it, whatever happened before: the
    embedded redis-server too (a child, not a daemon). A worker or cron that dies is started
    again (``Supervisor``).
    """
    # Ctrl-C, and SIGTERM from a supervisor, stop everything the same way; SIGINT may have been
    # ignored by a non-interactive parent shell, so its default handler is put back explicitly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    configure_logging()
    embedded = None
    supervisor = None
    capture = None
    svc = None
    try:
        config = Config.from_env()
        if demo and speed is not None:
            config = demo_clock_settings(config, speed)
        if config.embedded_redis:
            from .embedded_redis import EmbeddedRedis

            embedded = EmbeddedRedis(config.instance_path, preexec_fn=die_with_parent)
            embedded.start()
            config = replace(config, redis_url=embedded.url)
            log.info("embedded redis-server (pid %s) on %s", embedded.process.pid if embedded.process else "?",
                     embedded.url)
        app, svc, clock_note = _prepare_platform(config, demo)
        config = svc.config
        credentials = None
        if demo:
            log.info(seed_demo(app))
            password, token = demo_admin_credentials(app)
            credentials = (password, token, save_credentials(config.instance_path, config.base_url, password, token))

        if config.embedded_smtp:
            from .bounces.inbound import attach_inbound
            from .mail.capture import CaptureServer, CaptureStore

            capture = CaptureServer(CaptureStore(config.capture_dir), host=config.capture_smtp_host,
                                    port=config.capture_smtp_port, clock=svc.clock)
            # The capture server is the relay, so what comes back arrives here too: DSNs at the
            # VERP bounce address and mailto unsubscribes are applied as they are received.
            attach_inbound(capture, svc)
            capture.start()

        count = worker_count(workers)
        supervisor = Supervisor(child_env(app))
        # One pool process that forks its workers warm (worker.py), rather than a fresh
        # interpreter per worker: the send path's imports are paid once.
        supervisor.add("worker pool", ["worker", "--count", str(count), "--name", f"run.{os.getpid()}"])
        supervisor.add("cron", ["cron"])
        supervisor.start()
        url = urlsplit(config.base_url)
        host = host or url.hostname or "127.0.0.1"
        port = port or url.port or 5000
        # Printed, not only logged: visible whatever the log level, framed so it stands out.
        print(framed(_running_lines(config, count, redis_url_of(svc.redis), capture, credentials, clock_note)),
              flush=True)
        from werkzeug.serving import run_simple

        run_simple(host, port, app, use_reloader=False, threaded=True)
    except KeyboardInterrupt:
        pass
    finally:
        log.info("stopping …")
        if supervisor is not None:
            supervisor.stop()
        if capture is not None:
            capture.stop()
        if svc is not None:
            svc.close()
            try:
                svc.redis.close()
            except Exception:  # nothing to close
                pass
        if embedded is not None:
            embedded.stop()
        log.info("stopped")


def _running_lines(config: Config, count: int, redis_url: str, capture: Any, credentials: tuple[str, str, Path] | None,
                   clock_note: str) -> list[str]:
    """What ``run`` prints once everything is up: where to go, and how to sign in."""
    lines = [f"nurture_mail is running: {config.base_url}",
             f"  workers: {count}, cron: 1, Redis: {redis_url}"]
    if capture is not None:
        lines.append(f"  inbox (every email sent): {config.base_url}/inbox "
                     f"(SMTP on {config.capture_smtp_host}:{capture.port})")
    if credentials is not None:
        password, token, path = credentials
        lines += [f"  sign in: {config.base_url}/signin",
                  f"    email {DEMO_ADMIN}", f"    password {password}", f"    API token {token}",
                  f"  (kept in {path}, mode 0600; new ones at each start)"]
    if clock_note:
        lines.append(f"  {clock_note}")
    lines.append("  Ctrl-C stops everything")
    return lines


def demo_clock_settings(config: Config, speed: float) -> Config:
    """``run --demo``: the clock ``speed`` times real time and a tick every 2 s, unless the
    environment sets CLOCK_SPEED (then TICK_INTERVAL too is left as configured)."""
    if "CLOCK_SPEED" in config.environ:
        return config
    tick = config.tick_interval if "TICK_INTERVAL" in config.environ else 2
    return replace(config, clock_speed=speed, tick_interval=tick)


def _prepare_platform(config, demo: bool):
    """Checks, migrations, campaign and team sync; the demo clock set from the data."""
    from . import create_app
    from .campaigns import CampaignLoader, sync_all
    from .extensions import Database
    from .migrate import upgrade
    from .rulefiles import rule_file_problems

    clock_note = ""
    rule_problems = rule_file_problems(config)
    if rule_problems:
        for problem in rule_problems:
            log.error("rule file error: %s", problem)
        raise SystemExit(f"{len(rule_problems)} error(s) in rule files; nothing was started")
    database = Database(config.database_url)
    upgrade(database)
    database.dispose()
    if config.clock_speed != 1.0 and not config.clock_epoch:
        epoch, clock_note = resume_demo_clock(config.database_url, config.clock_speed, SystemClock().now())
        config = replace(config, clock_epoch=epoch)
    app = create_app(config)
    svc = app.extensions["nurture"]
    loader = CampaignLoader(config.templates_dir, root=config.campaigns_dir.parent)
    specs, problems = loader.load_dir(config.campaigns_dir)
    for campaign_problem in problems:
        log.error("campaign file error: %s", campaign_problem)
    with svc.db.session() as session:
        sync_all(session, specs, svc.clock.now())
    if config.sales_team_path.exists():
        from .sales.team import sync_sales_team

        with svc.db.session() as session:
            log.info("sales team: %s", sync_sales_team(session, config.sales_team_path, svc.clock.now()).summary())
    return app, svc, clock_note
