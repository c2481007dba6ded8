"""The sent-journal writer: notes pipelined on their own connection, a lost Redis said at once."""
from __future__ import annotations

import socket
import time
from datetime import datetime, timezone

import pytest
from redis import Redis

from nurture_mail.nurture.journal import JournalUnavailable, SentJournal

AT = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)


def test_notes_are_written_without_waiting_and_confirmed_before_the_next_email(redis):
    journal = SentJournal(redis, key="test:journal")
    writer = journal.writer()
    writer.note(1, "<m1@x>", AT)
    writer.note(2, "<m2@x>", AT)
    assert writer.unconfirmed == 2  # nothing read yet
    writer.confirm()
    assert writer.unconfirmed == 0
    assert journal.lookup([1, 2, 3]) == {1: (AT, "<m1@x>"), 2: (AT, "<m2@x>")}
    writer.close()


def test_a_redis_that_is_gone_stops_the_writer_for_good():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    writer = SentJournal(Redis(port=port), key="test:journal").writer(timeout=0.5)
    with pytest.raises(JournalUnavailable):
        writer.note(1, "<m1@x>", AT)
    with pytest.raises(JournalUnavailable):  # no second try on a lost journal: stop sending
        writer.confirm()


def test_a_redis_that_stops_answering_is_lost_within_the_timeout():
    listener = socket.socket()  # accepts, reads, never answers
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        writer = SentJournal(Redis(port=listener.getsockname()[1]), key="test:journal").writer(timeout=0.3)
        started = time.monotonic()
        with pytest.raises(JournalUnavailable, match="Timeout"):
            writer.note(1, "<m1@x>", AT)  # the connection's handshake already waits in vain
            writer.confirm()
        assert time.monotonic() - started < 2
    finally:
        listener.close()


def test_a_hand_packed_note_is_the_note_mark_writes(redis):
    """The writer packs HSET itself: the stored field and value must be what ``mark`` stores,
    under a key of any length, for ids of any width."""
    key = "test:journal:ünïcode-key-" + "k" * 300
    written, marked = SentJournal(redis, key=key), SentJournal(redis, key=key + ":mark")
    writer = written.writer()
    for delivery_id in (7, 1234567890123):
        writer.note(delivery_id, f"<{delivery_id}.long-message-id@mail.example>", AT)
        marked.mark(delivery_id, f"<{delivery_id}.long-message-id@mail.example>", AT)
    writer.confirm()
    writer.close()
    assert redis.hgetall(key) == redis.hgetall(key + ":mark")
    assert len(redis.hgetall(key)) == 2
    redis.delete(key, key + ":mark")
