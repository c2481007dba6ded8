"""A write-ahead record in Redis of every email the SMTP server accepted.

Marking each send in the database as it happens would cost a commit per email; batching the
commits would leave a crash with no trace of which claimed emails actually went out. So each
accepted email is noted here (one HSET, ~0.05 ms) before the next is sent, the database is
updated in batches, and a note is dropped once its batch is committed. Recovery of a crashed
batch reads the notes: noted means sent, not noted means send again. Only the email whose SMTP
transaction was in flight when the worker died can go out twice.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from redis import Redis

from ..clock import parse_instant

KEY = "nurture:sent-journal"


class SentJournal:
    def __init__(self, redis: Redis, key: str = KEY) -> None:
        self.redis = redis
        self.key = key

    def mark(self, delivery_id: int, message_id: str, sent_at: datetime) -> None:
        self.redis.hset(self.key, str(delivery_id), f"{sent_at.isoformat()}|{message_id}")

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
