"""A worker killed with SIGKILL mid-batch: every due email still arrives, none twice.

The bound: the one message whose SMTP transaction was in flight when the worker died may
arrive twice (the server accepted it, the worker never learned so). Everything else is
decided by the delivery ledger and the Redis sent-journal (``nurture_mail/nurture/journal.py``).
"""
from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

from support.platform import Platform

from nurture_mail.clock import SystemClock
from nurture_mail.extensions import redis_url_of
from nurture_mail.models import DeliveryStatus

ROOT = Path(__file__).resolve().parents[2]
LEADS = 300
KILL_AT = 40


def _worker(env: dict[str, str], burst: bool) -> subprocess.Popen:
    args = [sys.executable, "-m", "nurture_mail", "worker"] + (["--burst"] if burst else [])
    return subprocess.Popen(args, env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_mid_batch_then_restart_loses_nothing_and_duplicates_at_most_one(
    make_app, database_url, smtp_server, clock, tmp_path, redis
):
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    shutil.copy(ROOT / "tests/fixtures/always_on.yaml", campaigns / "always_on.yaml")
    app = make_app(database_url, smtp_port=smtp_server.port, campaigns_dir=campaigns, send_batch_size=100)
    clock.set(SystemClock().now())  # the worker subprocess runs on real time
    platform = Platform(app, smtp_server, clock)
    platform.sync()
    for i in range(LEADS):
        platform.add_lead(f"lead{i:03d}@crash.example", "UTC", first_name=f"L{i}")
        platform.enroll(f"lead{i:03d}@crash.example", campaign="always-on")

    config = platform.svc.config
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url_of(redis),
               SMTP_URL=config.smtp_url, SECRET_KEY=config.secret_key, BASE_URL=config.base_url,
               INSTANCE_PATH=str(tmp_path / "worker-instance"), CAMPAIGNS_DIR=str(campaigns),
               SEND_BATCH_SIZE="100")

    report = platform.tick()
    assert report.enqueued_deliveries == LEADS and len(report.jobs) == 3

    worker = _worker(env, burst=False)
    received = 0
    killed = threading.Event()

    def kill_mid_batch(message) -> None:
        nonlocal received
        received += 1
        if received == KILL_AT:
            # The server holds its "250 OK" for this message while the worker dies.
            os.kill(worker.pid, signal.SIGKILL)
            killed.set()

    smtp_server.on_message.append(kill_mid_batch)
    try:
        assert killed.wait(60), "the worker never sent 40 messages: " + worker.stderr.read().decode()[-2000:]
        worker.wait(10)
    finally:
        smtp_server.on_message.remove(kill_mid_batch)
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == -signal.SIGKILL
    assert smtp_server.store.count() == KILL_AT

    # Restart: a fresh worker drains the two batches still queued in RQ ...
    restarted = _worker(env, burst=True)
    assert restarted.wait(120) == 0, restarted.stderr.read().decode()[-2000:]
    # ... and once the dead worker's lease expires, the next tick settles its claimed batch.
    clock.set(SystemClock().now() + timedelta(seconds=config.send_lease_seconds + 1))
    recovery = platform.tick()
    assert recovery.recovered_sent == KILL_AT - 1  # journaled before the kill
    assert recovery.recovered_requeued == 100 - (KILL_AT - 1)
    finisher = _worker(env, burst=True)
    assert finisher.wait(120) == 0, finisher.stderr.read().decode()[-2000:]

    counts = collections.Counter(m.rcpt_tos[0] for m in smtp_server.store.list())
    assert set(counts) == {f"lead{i:03d}@crash.example" for i in range(LEADS)}, (
        "an email was lost", collections.Counter((d.status, d.last_error) for d in platform.deliveries()))
    duplicates = {rcpt: n for rcpt, n in counts.items() if n > 1}
    assert len(duplicates) <= 1 and all(n == 2 for n in duplicates.values()), duplicates
    assert {d.status for d in platform.deliveries()} == {DeliveryStatus.sent}
    # Nothing is sent again by further ticks.
    platform.tick()
    platform.work()
    assert smtp_server.store.count() == sum(counts.values())
