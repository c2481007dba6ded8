"""A write-ahead record in Redis of every email the SMTP server accepted.

Marking each send in the database as it happens would cost a commit per email; batching the
commits would leave a crash with no trace of which claimed emails actually went out. So each
accepted email is noted here before the next is sent, the database is updated in batches, and
a note is dropped once its batch is committed. Recovery of a crashed batch reads the notes:
noted means sent, not noted means send again. Only the email whose SMTP transaction was in
flight when the worker died can go out twice.

The sender does not wait for Redis after each email: :class:`JournalWriter` writes the note
(HSET) on a connection of its own and reads the reply just before the next SMTP transaction,
after the next email has been rendered, by which time the reply is normally there already. So
no email is offered to the server before the previous one's note is confirmed, which is what
the crash promise needs, and the round trip overlaps with rendering instead of adding to it.
A note that cannot be written or confirmed raises :class:`JournalUnavailable`: the sender stops
there and records what it sent from memory.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from redis import Redis
from redis.exceptions import RedisError

from ..clock import parse_instant

KEY = "nurture:sent-journal"
#: Seconds a note's reply may take before the journal counts as lost.
CONFIRM_TIMEOUT = 5.0

log = logging.getLogger(__name__)


class JournalUnavailable(Exception):
    """Redis did not take a note: nothing more may be sent until it does."""


class SentJournal:
    def __init__(self, redis: Redis, key: str = KEY) -> None:
        self.redis = redis
        self.key = key

    def mark(self, delivery_id: int, message_id: str, sent_at: datetime) -> None:
        self.redis.hset(self.key, str(delivery_id), _note(message_id, sent_at))

    def lookup(self, delivery_ids: Iterable[int]) -> dict[int, tuple[datetime, str]]:
        ids = [str(i) for i in delivery_ids]
        if not ids:
            return {}
        found: dict[int, tuple[datetime, str]] = {}
        for delivery_id, raw in zip(ids, self.redis.hmget(self.key, ids)):  # type: ignore[arg-type]
            if raw is not None:
                sent_at, _, message_id = raw.decode().partition("|")
                found[int(delivery_id)] = (parse_instant(sent_at), message_id)
        return found

    def forget(self, delivery_ids: Iterable[int]) -> None:
        ids = [str(i) for i in delivery_ids]
        if ids:
            self.redis.hdel(self.key, *ids)

    def forget_quietly(self, delivery_ids: Iterable[int]) -> None:
        """Drop notes whose outcome is committed; a note left behind is harmless (recovery only
        reads notes of deliveries still ``sending``), so Redis being away is not an error here."""
        try:
            self.forget(delivery_ids)
        except RedisError as exc:
            log.warning("sent-journal: notes not dropped (%s); they are harmless", exc)

    def writer(self, timeout: float = CONFIRM_TIMEOUT) -> JournalWriter:
        return JournalWriter(self.redis, self.key, timeout)


class JournalWriter:
    """Notes written without waiting: one connection, requests pipelined, replies read later."""

    def __init__(self, redis: Redis, key: str, timeout: float) -> None:
        pool = redis.connection_pool
        kwargs = dict(pool.connection_kwargs, socket_timeout=timeout, socket_connect_timeout=timeout,
                      health_check_interval=0)
        kwargs.pop("retry", None)
        self._connection = pool.connection_class(**kwargs)
        self.key = key
        # ``HSET key`` in RESP, encoded once per writer: a note then costs two bulk strings
        # joined by hand instead of redis-py's general packer per email.
        encoded_key = key.encode()
        self._prefix = b"*4\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n" % (len(encoded_key), encoded_key)
        #: Notes written whose reply is not read yet.
        self.unconfirmed = 0
        #: Why the journal was lost, once it was: every later call raises at once.
        self.lost: str | None = None

    def note(self, delivery_id: int, message_id: str, sent_at: datetime) -> None:
        """Write the note; returns at once (the reply is read by :meth:`confirm`)."""
        self._check()
        try:
            field = str(delivery_id).encode()
            value = _note(message_id, sent_at).encode()
            self._connection.send_packed_command(  # a list of chunks, as redis-py's packer returns
                [b"%s$%d\r\n%s\r\n$%d\r\n%s\r\n" % (self._prefix, len(field), field, len(value), value)],
                check_health=False)
        except Exception as exc:  # redis-py raises more than RedisError on a dead connection
            self._lose(exc)
        self.unconfirmed += 1

    def confirm(self) -> None:
        """Read every outstanding reply; raises JournalUnavailable if Redis did not take one."""
        self._check()
        try:
            while self.unconfirmed:
                reply = self._connection.read_response()
                if isinstance(reply, Exception):
                    raise reply
                self.unconfirmed -= 1
        except Exception as exc:
            self._lose(exc)

    def _check(self) -> None:
        if self.lost is not None:
            raise JournalUnavailable(self.lost)

    def _lose(self, exc: Exception) -> None:
        self.lost = f"sent-journal: {type(exc).__name__}: {exc}"[:1000]
        self.unconfirmed = 0
        self.close()
        raise JournalUnavailable(self.lost) from None

    def close(self) -> None:
        try:
            self._connection.disconnect()
        except Exception:  # closing a connection that is already gone
            pass


def _note(message_id: str, sent_at: datetime) -> str:
    return f"{sent_at.isoformat()}|{message_id}"
