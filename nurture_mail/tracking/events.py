"""The tracking event buffer: hits pushed to a Redis list by the web app, drained in batches.

A synchronous SQL write per click costs far more than verifying a token (DESIGN §9), so the
request path only pushes one compact JSON line (``RPUSH``) and answers. ``tracking/ingest.py``
moves the lines into the database.

Nothing is lost if a drainer dies: a batch is *moved* atomically from the queue list to a
processing list (Lua), stored in one transaction, and deleted only after the commit. A batch
left in the processing list by a dead drainer is stored again by the next one; the event's
``uid`` makes the second insert a no-op. One drainer at a time holds a lock with a lease,
renewed at every batch, so a dead holder frees it after ``LOCK_LEASE_MS``.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

from redis import Redis

QUEUE_KEY = "nurture:tracking:events"
PROCESSING_KEY = "nurture:tracking:events:processing"
LOCK_KEY = "nurture:tracking:drain-lock"
LOCK_LEASE_MS = 60_000

KINDS = ("click", "open")

# KEYS: queue, processing, lock. ARGV: batch size, lock token.
# A batch left behind by a drainer that died is handed out again before any new one.
_CLAIM = """
if redis.call('GET', KEYS[3]) ~= ARGV[2] then return false end
local pending = redis.call('LRANGE', KEYS[2], 0, -1)
if #pending > 0 then return pending end
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local n = #items
if n > 0 then
  redis.call('LTRIM', KEYS[1], n, -1)
  for i = 1, n, 500 do
    redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 499, n)))
  end
end
return items
"""

#: Longest single wait on the buffer: the waiting drainer renews nothing while it blocks, and
#: a Redis that went away is noticed within this time.
MAX_BLOCK_SECONDS = 2.0

# KEYS: processing, lock. ARGV: lock token, lease ms. Only the lock's holder may acknowledge.
_ACK = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class TrackedHit:
    """One request to a tracking URL, as captured: what the drain turns into an ``event`` row."""

    #: Idempotency key (``event.uid``): the same hit stored twice is stored once.
    uid: str
    #: ``click`` or ``open``
    kind: str
    delivery_id: int
    #: The link clicked; None for an open and for the honeypot link.
    link_id: int | None
    #: The URL the click was redirected to.
    url: str | None
    honeypot: bool
    #: Seconds since the epoch (UTC), from the injected clock.
    at: float
    method: str
    user_agent: str
    ip: str | None

    def to_json(self) -> str:
        data: dict[str, Any] = {"u": self.uid, "k": self.kind, "d": self.delivery_id, "t": self.at,
                                "m": self.method, "a": self.user_agent}
        if self.link_id is not None:
            data["l"] = self.link_id
        if self.url is not None:
            data["r"] = self.url
        if self.honeypot:
            data["h"] = 1
        if self.ip:
            data["i"] = self.ip
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: bytes | str) -> "TrackedHit":
        """Parse one buffered line; ValueError for anything malformed."""
        try:
            data = json.loads(raw)
            hit = cls(
                uid=str(data["u"]), kind=data["k"], delivery_id=data["d"], link_id=data.get("l"),
                url=data.get("r"), honeypot=bool(data.get("h")), at=float(data["t"]),
                method=str(data.get("m") or "GET"), user_agent=str(data.get("a") or ""), ip=data.get("i"),
            )
        except (TypeError, KeyError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"malformed tracking event: {exc}") from None
        if hit.kind not in KINDS or type(hit.delivery_id) is not int or not 0 < len(hit.uid) <= 64:
            raise ValueError("malformed tracking event")
        if hit.link_id is not None and type(hit.link_id) is not int:
            raise ValueError("malformed tracking event: link")
        return hit


def new_uid() -> str:
    return "trk-" + os.urandom(16).hex()


class EventBuffer:
    """The Redis side of tracking: push from the web app, claim / acknowledge from the drain."""

    def __init__(self, redis: Redis, queue_key: str = QUEUE_KEY, processing_key: str = PROCESSING_KEY,
                 lock_key: str = LOCK_KEY) -> None:
        self.redis = redis
        self.queue_key = queue_key
        self.processing_key = processing_key
        self.lock_key = lock_key
        self._claim = redis.register_script(_CLAIM)
        self._ack = redis.register_script(_ACK)
        self._unlock = redis.register_script(_UNLOCK)

    def push(self, hit: TrackedHit) -> None:
        self.redis.rpush(self.queue_key, hit.to_json())

    def pending(self) -> int:
        """Hits waiting, including a batch a drainer holds or left behind."""
        return int(self.redis.llen(self.queue_key)) + int(self.redis.llen(self.processing_key))  # type: ignore[arg-type]

    # -- draining ----------------------------------------------------------------------------

    def lock(self, wait: float = 0.0, lease_ms: int = LOCK_LEASE_MS) -> str | None:
        """A token proving this caller is the one drainer, or None if another holds the lock."""
        token = os.urandom(12).hex()
        deadline = time.monotonic() + wait
        while True:
            if self.redis.set(self.lock_key, token, nx=True, px=lease_ms):
                return token
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def unlock(self, token: str) -> None:
        self._unlock(keys=[self.lock_key], args=[token])

    def claim(self, token: str, size: int) -> list[bytes] | None:
        """The next batch (a leftover one first), moved to the processing list; None if the
        lock was lost."""
        items = self._claim(keys=[self.queue_key, self.processing_key, self.lock_key], args=[size, token])
        return None if items is None else list(items)

    def wait(self, timeout: float) -> bool:
        """Block until a hit is waiting (or a batch is left behind), at most ``timeout`` seconds.

        Takes nothing: ``BLMOVE`` from the queue to its own tail wakes on the first push and
        only rotates that hit to the end of the list, so the lock holder still claims it (a hit
        moved anywhere else could be lost to another drainer's acknowledgement).
        """
        if self.redis.llen(self.processing_key):
            return True
        seconds = min(max(timeout, 0.01), MAX_BLOCK_SECONDS)
        return self.redis.blmove(self.queue_key, self.queue_key, seconds, "LEFT", "RIGHT") is not None  # type: ignore[arg-type]  # a float timeout is valid

    def ack(self, token: str, lease_ms: int = LOCK_LEASE_MS) -> bool:
        """Forget the batch just stored and renew the lease; False if the lock was lost."""
        return bool(self._ack(keys=[self.processing_key, self.lock_key], args=[token, lease_ms]))
