"""Riding out a database or Redis that goes away for a while: retries with backoff.

Every long-running process (worker, cron, ``run``) and every step of a send batch that must not
lose what it knows (the claim, the record of what was sent) goes through these, so a restart of
PostgreSQL or Redis is waited out instead of ending the process or the batch.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a send batch waits for the database to come back before it gives up (its sent
#: emails are then settled from the Redis journal by the next tick that finds them stale).
DB_RETRY_SECONDS = 120.0
#: Errors that mean Redis is (for now) unreachable, as opposed to a bad command.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


def is_db_outage(exc: BaseException) -> bool:
    """A lost or refused database connection (worth waiting out), not a bad statement."""
    if isinstance(exc, (OperationalError, DisconnectionError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def backoff(first: float = 0.2, cap: float = 5.0) -> Iterator[float]:
    """0.2, 0.4, 0.8 … seconds, capped."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)


def retry_db(action: Callable[[], T], what: str, budget: float = DB_RETRY_SECONDS,
             sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``action`` (which opens its own session) until the database answers, within ``budget``."""
    deadline = time.monotonic() + budget
    delays = backoff()
    while True:
        try:
            return action()
        except Exception as exc:
            if not is_db_outage(exc):
                raise
            delay = next(delays)
            if time.monotonic() + delay > deadline:
                log.error("database still unavailable after %.0f s (%s): giving up on %s", budget,
                          _first_line(exc), what)
                raise
            log.warning("database unavailable (%s); %s again in %.1f s", _first_line(exc), what, delay)
            sleep(delay)


def wait_for_redis(redis, what: str, stop: Callable[[], bool] = lambda: False,
                   sleep: Callable[[float], None] = time.sleep) -> bool:
    """Block until Redis answers a PING (True), or ``stop()`` says to give up (False)."""
    delays = backoff(0.2, 2.0)
    announced = False
    while not stop():
        try:
            redis.ping()
            if announced:
                log.info("Redis answers again; %s resumes", what)
            return True
        except REDIS_DOWN as exc:
            if not announced:
                log.warning("Redis unavailable (%s); %s waits for it", _first_line(exc), what)
                announced = True
            sleep(next(delays))
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]
