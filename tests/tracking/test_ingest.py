"""The drain from Redis to the database: batched, idempotent, and losing nothing when it dies."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.tracking import BROWSER, visible_links

from nurture_mail.extensions import redis_url_of
from nurture_mail.models import Event, KnowledgeEvidence
from nurture_mail.tracking import ingest
from nurture_mail.tracking.events import LOCK_KEY, PROCESSING_KEY, QUEUE_KEY, EventBuffer, TrackedHit
from nurture_mail.tracking.ingest import drain_events

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clicked(platform, clock):
    """One welcome email and a function clicking its report link ``n`` times, 20 minutes later."""
    lead_id = platform.add_lead("drain@acme.example")
    platform.enroll("drain@acme.example")
    platform.tick_and_work()
    [msg] = platform.received()
    path = visible_links(msg.html)["Read the 2026 report"].path
    client = platform.app.test_client()
    clock.advance(minutes=20)

    def click(n: int = 1) -> None:
        for _ in range(n):
            assert client.get(path, headers={"User-Agent": BROWSER}).status_code == 302

    click.lead_id = lead_id
    return click


def counts(platform) -> tuple[int, int, int]:
    """(events, click evidence, hits still buffered)"""
    with platform.svc.db.session() as s:
        events = s.scalar(select(func.count()).select_from(Event))
        proofs = s.scalar(select(func.count()).select_from(KnowledgeEvidence).where(KnowledgeEvidence.source == "click"))
    return events, proofs, EventBuffer(platform.svc.redis).pending()


def test_draining_twice_stores_each_hit_once(platform, clicked):
    clicked(5)
    first = drain_events(platform.svc)
    assert (first.read, first.stored, first.taught, first.batches) == (5, 5, 1, 1)
    second = drain_events(platform.svc)
    assert (second.read, second.stored) == (0, 0)
    assert counts(platform) == (5, 1, 0)
    assert platform.svc.redis.exists(PROCESSING_KEY, LOCK_KEY) == 0


def test_hits_are_moved_in_batches_of_the_configured_size(make_app, database_url, smtp_server, clock):
    from support.platform import Platform

    platform = Platform(make_app(database_url, smtp_port=smtp_server.port, event_drain_batch_size=3), smtp_server, clock)
    platform.sync()
    platform.add_lead("batch@acme.example")
    platform.enroll("batch@acme.example")
    platform.tick_and_work()
    path = visible_links(platform.received()[0].html)["Read the 2026 report"].path
    clock.advance(minutes=20)
    client = platform.app.test_client()
    for _ in range(10):
        client.get(path, headers={"User-Agent": BROWSER})
    report = drain_events(platform.svc)
    assert (report.batches, report.read, report.stored) == (4, 10, 10)
    assert drain_events(platform.svc, max_batches=1).read == 0


def _die_without_unlocking(monkeypatch):
    """A drainer that dies keeps its lock until the lease runs out (``unlock`` never runs)."""
    monkeypatch.setattr(EventBuffer, "unlock", lambda self, token: None)


def _lease_runs_out(platform):
    platform.svc.redis.delete(LOCK_KEY)


def test_a_drainer_dying_before_its_commit_loses_nothing(platform, clicked, monkeypatch):
    clicked(4)

    def die(*args, **kwargs):
        raise SystemExit("killed mid-batch")

    with monkeypatch.context() as m:
        _die_without_unlocking(m)
        m.setattr(ingest, "store_hits", die)
        with pytest.raises(SystemExit):
            drain_events(platform.svc)
    assert counts(platform) == (0, 0, 4)  # rolled back; the batch sits in the processing list
    assert platform.svc.redis.llen(PROCESSING_KEY) == 4
    clicked(2)  # more clicks arrive meanwhile
    assert drain_events(platform.svc).busy  # the dead drainer's lease still holds
    _lease_runs_out(platform)
    report = drain_events(platform.svc)
    assert (report.read, report.stored, report.duplicates, report.batches) == (6, 6, 0, 2)
    assert counts(platform) == (6, 1, 0)


def test_a_drainer_dying_after_its_commit_stores_nothing_twice(platform, clicked, monkeypatch):
    clicked(3)

    def die(self, token, lease_ms=0):
        raise SystemExit("killed between commit and acknowledgement")

    with monkeypatch.context() as m:
        _die_without_unlocking(m)
        m.setattr(EventBuffer, "ack", die)
        with pytest.raises(SystemExit):
            drain_events(platform.svc)
    assert counts(platform) == (3, 1, 3)  # stored and committed, but still in the processing list
    _lease_runs_out(platform)
    report = drain_events(platform.svc)
    assert (report.read, report.stored, report.duplicates, report.taught) == (3, 0, 3, 0)
    assert counts(platform) == (3, 1, 0)


_KILLED_DRAIN = """
import os, signal, sys
from nurture_mail import create_app
from nurture_mail.config import Config
from nurture_mail.tracking import ingest
from nurture_mail.tracking.events import EventBuffer

app = create_app(Config.from_env())
svc = app.extensions["nurture"]
if sys.argv[1] == "before-commit":
    store = ingest.store_hits

    def store_then_die(session, *args):
        store(session, *args)
        session.flush()  # the rows are written, the transaction is open: now the process dies
        os.kill(os.getpid(), signal.SIGKILL)

    ingest.store_hits = store_then_die
else:
    EventBuffer.ack = lambda self, token, lease_ms=0: os.kill(os.getpid(), signal.SIGKILL)
with app.app_context():
    ingest.drain_events(svc)
"""


@pytest.mark.parametrize("when", ["before-commit", "after-commit"])
def test_sigkill_mid_drain_then_another_drain_loses_and_duplicates_nothing(platform, clicked, tmp_path, when):
    clicked(7)
    config = platform.svc.config
    env = dict(os.environ, DATABASE_URL=config.database_url, REDIS_URL=redis_url_of(platform.svc.redis),
               SECRET_KEY=config.secret_key, INSTANCE_PATH=str(tmp_path / "drainer"))
    process = subprocess.run([sys.executable, "-c", _KILLED_DRAIN, when], env=env, cwd=str(ROOT),
                             capture_output=True, timeout=120)
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()[-2000:]
    expected_events = 0 if when == "before-commit" else 7
    assert counts(platform) == (expected_events, min(expected_events, 1), 7)
    assert drain_events(platform.svc).busy
    _lease_runs_out(platform)
    report = drain_events(platform.svc)
    assert report.read == 7 and report.stored == 7 - expected_events
    assert counts(platform) == (7, 1, 0)


def test_a_drainer_that_lost_its_lease_stops_and_the_next_one_finishes(platform, clicked, monkeypatch):
    clicked(3)
    store = ingest.store_hits

    def slow_store(*args):
        store(*args)
        platform.svc.redis.set(LOCK_KEY, "someone-else")  # the lease ran out and another took over

    monkeypatch.setattr(ingest, "store_hits", slow_store)
    report = drain_events(platform.svc)
    assert report.stored == 3
    assert platform.svc.redis.llen(PROCESSING_KEY) == 3  # not acknowledged: it was not the holder
    assert platform.svc.redis.get(LOCK_KEY) == b"someone-else"  # and it did not free another's lock
    monkeypatch.setattr(ingest, "store_hits", store)
    _lease_runs_out(platform)
    again = drain_events(platform.svc)
    assert (again.read, again.stored, again.duplicates) == (3, 0, 3)
    assert counts(platform) == (3, 1, 0)


def test_malformed_hits_and_unknown_deliveries_are_dropped_without_blocking_the_rest(platform, clicked, caplog):
    clicked(2)
    redis = platform.svc.redis
    redis.rpush(QUEUE_KEY, b"not json", b'{"u":"x"}', b"[1,2]")
    ghost = TrackedHit(uid="trk-ghost", kind="click", delivery_id=999_999, link_id=1, url="https://x.example/",
                       honeypot=False, at=0.0, method="GET", user_agent=BROWSER, ip="127.0.0.1")
    redis.rpush(QUEUE_KEY, ghost.to_json())
    clicked(1)
    report = drain_events(platform.svc)
    assert (report.read, report.stored, report.dropped) == (7, 3, 4)
    assert counts(platform) == (3, 1, 0)
    assert "unknown delivery 999999" in caplog.text


def test_the_tick_drains_before_it_chooses(platform, clicked):
    clicked(2)
    platform.tick()
    assert counts(platform)[0] == 2


def test_a_failing_drain_does_not_stop_the_tick(platform, clicked, monkeypatch, caplog):
    clicked(1)
    monkeypatch.setattr(ingest, "store_hits", lambda *a: (_ for _ in ()).throw(RuntimeError("database away")))
    platform.tick()
    assert "tracking drain failed" in caplog.text
    assert counts(platform) == (0, 0, 1)


def _wait_for(predicate, seconds: float = 10.0) -> float:
    """Seconds until ``predicate()`` held (polled every 10 ms); fails after ``seconds``."""
    import time

    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < seconds, "condition not reached in time"
        time.sleep(0.01)
    return time.monotonic() - started


def test_the_drain_loop_stores_and_teaches_a_click_as_it_arrives(platform, clicked):
    thread, stop = ingest.start_drain_thread(platform.app)
    try:
        clicked()
        # Nothing but the loop drains here: no tick, no cron job, no explicit drain call.
        waited = _wait_for(lambda: counts(platform) == (1, 1, 0))
        assert waited < 5.0
        clicked(3)
        _wait_for(lambda: counts(platform) == (4, 1, 0))
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert platform.svc.redis.exists(PROCESSING_KEY, LOCK_KEY) == 0


def test_an_idle_drain_loop_leaves_the_lock_free_for_the_tick(platform, clicked):
    thread, stop = ingest.start_drain_thread(platform.app)
    try:
        import time

        for _ in range(5):
            time.sleep(0.1)  # the loop is asleep in its blocking wait
            assert not drain_events(platform.svc, wait=0).busy
    finally:
        stop.set()
        thread.join(timeout=5)


def test_waiting_on_the_buffer_takes_nothing_from_it(platform, clicked):
    buffer = EventBuffer(platform.svc.redis)
    assert buffer.wait(0.05) is False
    clicked(2)
    assert buffer.wait(0.05) is True
    assert buffer.pending() == 2
    assert platform.svc.redis.llen(PROCESSING_KEY) == 0
    assert drain_events(platform.svc).stored == 2


def test_the_drain_loop_stores_a_batch_a_dead_drainer_left_behind(platform, clicked, monkeypatch):
    clicked(2)
    buffer = EventBuffer(platform.svc.redis)
    token = buffer.lock()
    assert len(buffer.claim(token, 100)) == 2  # taken, never stored: the drainer "dies" here
    platform.svc.redis.delete(LOCK_KEY)  # its lease ran out
    assert platform.svc.redis.llen(QUEUE_KEY) == 0
    thread, stop = ingest.start_drain_thread(platform.app)
    try:
        _wait_for(lambda: counts(platform) == (2, 1, 0))
    finally:
        stop.set()
        thread.join(timeout=5)


def test_the_drain_loop_survives_a_failing_drain(platform, clicked, monkeypatch):
    calls = []
    real = ingest.drain_events

    def flaky(svc, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("database went away")
        return real(svc, **kwargs)

    monkeypatch.setattr(ingest, "drain_events", flaky)
    thread, stop = ingest.start_drain_thread(platform.app)
    try:
        clicked()
        _wait_for(lambda: counts(platform) == (1, 1, 0))
    finally:
        stop.set()
        thread.join(timeout=5)
    assert len(calls) >= 2
