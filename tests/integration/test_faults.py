"""Faults survived without a person: a real redis-server killed and started again, PostgreSQL
backends terminated, mid-batch, with real worker and cron processes; the SMTP server counts.

The promises (docs/operations.md): a Redis restart alone loses nothing and duplicates nothing,
and sending resumes within 60 s of Redis answering, even when Redis comes back empty; a
PostgreSQL connection lost mid-batch loses no sent record and duplicates nothing.
"""
from __future__ import annotations

import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import create_engine, text
from support.platform import Platform

from nurture_mail import create_app
from nurture_mail.clock import SystemClock
from nurture_mail.config import Config
from nurture_mail.models import DeliveryStatus

ROOT = Path(__file__).resolve().parents[2]
#: This suite's own port range on a shared machine (never the shared 6379).
PORTS = range(5130, 5140)


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port in 5130-5139")


class RedisProcess:
    """A redis-server of our own, without persistence: it comes back empty after a kill."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        from nurture_mail.embedded_redis import redis_server_binary

        self.process = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except Exception:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def own_redis(tmp_path):
    server = RedisProcess(_free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


class Children:
    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []

    def start(self, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        handle = open(log, "ab")
        process = subprocess.Popen([sys.executable, "-m", "nurture_mail", *args], env=env, cwd=str(ROOT),
                                   stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        handle.close()
        self.processes.append(process)
        return process

    def stop(self) -> None:
        import psutil

        descendants = []
        for process in self.processes:
            if process.poll() is None:
                try:
                    descendants += psutil.Process(process.pid).children(recursive=True)
                except psutil.NoSuchProcess:
                    pass
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _, alive = psutil.wait_procs(descendants, timeout=10)
        for leftover in alive:
            leftover.kill()
        assert not alive, f"children left running after their parent stopped: {alive}"


@pytest.fixture
def children():
    started = Children()
    yield started
    started.stop()


def _platform(tmp_path, database_url, smtp_server, clock, redis_client, leads: int) -> Platform:
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir(exist_ok=True)
    shutil.copy(ROOT / "tests/fixtures/always_on.yaml", campaigns / "always_on.yaml")
    config = Config.from_env(
        {}, instance_path=tmp_path / "instance", database_url=database_url,
        smtp_url=f"smtp://127.0.0.1:{smtp_server.port}", secret_key="test-secret", base_url="http://nurture.test",
        campaigns_dir=campaigns, templates_dir=ROOT / "templates", send_batch_size=100,
    )
    app = create_app(config, clock=clock, redis=redis_client)
    clock.set(SystemClock().now())  # the child processes run on real time
    platform = Platform(app, smtp_server, clock)
    platform.sync()
    for i in range(leads):
        platform.add_lead(f"lead{i:04d}@faults.example", "UTC", first_name=f"L{i}")
        platform.enroll(f"lead{i:04d}@faults.example", campaign="always-on")
    return platform


def _env(platform: Platform, redis_url: str, database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    config = platform.svc.config
    return dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, SMTP_URL=config.smtp_url,
                SECRET_KEY=config.secret_key, BASE_URL=config.base_url, INSTANCE_PATH=str(tmp_path / "child"),
                CAMPAIGNS_DIR=str(config.campaigns_dir), SEND_BATCH_SIZE="100", **extra)


def _wait_for(condition, timeout: float, what: str, logs: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tail = logs.read_text(errors="replace")[-4000:] if logs and logs.exists() else ""
            raise AssertionError(f"{what} within {timeout:g} s\n{tail}")
        time.sleep(0.2)


def _received(smtp_server) -> collections.Counter:
    return collections.Counter(m.rcpt_tos[0] for m in smtp_server.store.list())


def test_redis_killed_mid_batch_and_back_empty_loses_nothing_duplicates_nothing(
    database_url, smtp_server, clock, tmp_path, own_redis, children
):
    leads, kill_at = 1000, 150
    redis_client = Redis(port=own_redis.port)
    platform = _platform(tmp_path, database_url, smtp_server, clock, redis_client, leads)
    env = _env(platform, f"redis://127.0.0.1:{own_redis.port}/0", database_url, tmp_path)
    logs = tmp_path / "children.log"
    killed = threading.Event()
    count = 0

    def slow_then_kill(message) -> None:
        nonlocal count
        count += 1
        time.sleep(0.002)  # a relay a little slower than loopback: both workers are mid-batch
        if count == kill_at:
            own_redis.kill()  # while this message's 250 is held
            killed.set()

    smtp_server.on_message.append(slow_then_kill)
    children.start(["worker", "--count", "2"], env, logs)
    children.start(["cron"], env, logs)
    _wait_for(killed.is_set, 60, "Redis was not killed: too few messages", logs)
    smtp_server.on_message.remove(slow_then_kill)
    time.sleep(3)
    stalled_at = smtp_server.store.count()
    own_redis.start()  # same port, empty: every queued send job is gone
    answered = time.monotonic()
    _wait_for(lambda: smtp_server.store.count() > stalled_at, 60, "sending did not resume", logs)
    resumed_after = time.monotonic() - answered
    print(f"sending resumed {resumed_after:.1f} s after Redis answered")
    _wait_for(lambda: len(_received(smtp_server)) == leads, 120, "not every lead got its email", logs)
    time.sleep(2)  # anything sent twice would arrive now

    counts = _received(smtp_server)
    duplicates = {rcpt: n for rcpt, n in counts.items() if n > 1}
    assert not duplicates, (len(duplicates), logs.read_text(errors="replace")[-4000:])
    assert resumed_after < 60
    _wait_for(lambda: {d.status for d in platform.deliveries()} == {DeliveryStatus.sent}, 30,
              "deliveries not all recorded sent", logs)
    log_text = logs.read_text(errors="replace")
    assert "send batch stopped" in log_text  # a worker did lose Redis mid-batch, and said so
    # The jobs Redis lost were enqueued again from the ledger, not after SEND_LEASE_SECONDS.
    assert "had lost their send job in Redis" in log_text


def test_postgresql_backends_terminated_mid_batch_lose_no_sent_record(
    database_url, smtp_server, clock, tmp_path, redis, children
):
    if not database_url.startswith("postgresql"):
        pytest.skip("terminating backends is a PostgreSQL fault")
    leads, kill_at = 300, 60
    platform = _platform(tmp_path, database_url, smtp_server, clock, redis, leads)
    app_name = f"nurture-faults-{uuid.uuid4().hex[:8]}"
    child_url = f"{database_url}&application_name={app_name}"
    from nurture_mail.extensions import redis_url_of

    env = _env(platform, redis_url_of(redis), child_url, tmp_path)
    logs = tmp_path / "children.log"
    admin = create_engine(database_url)
    terminated: list[int] = []
    count = 0

    def terminate_ours(message) -> None:
        nonlocal count
        count += 1
        if count in (kill_at, kill_at + 120):
            with admin.begin() as conn:  # only the backends of this test's worker
                terminated.extend(conn.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"
                ), {"name": app_name}).scalars())

    smtp_server.on_message.append(terminate_ours)
    try:
        platform.tick()  # three send jobs of 100
        children.start(["worker"], env, logs)
        _wait_for(lambda: len(_received(smtp_server)) == leads, 90, "not every lead got its email", logs)
        _wait_for(lambda: {d.status for d in platform.deliveries()} == {DeliveryStatus.sent}, 60,
                  "deliveries not all recorded sent", logs)
    finally:
        smtp_server.on_message.remove(terminate_ours)
        admin.dispose()
    assert terminated, "no backend of the worker was terminated"
    counts = _received(smtp_server)
    assert not {rcpt: n for rcpt, n in counts.items() if n > 1}
    # Nothing is sent again by later ticks: every sent email is on record.
    platform.tick()
    time.sleep(3)
    assert smtp_server.store.count() == leads


class StallingServer:
    """An SMTP server that stops answering at a chosen point: after its banner, or inside DATA."""

    def __init__(self, stall: str) -> None:
        self.stall = stall
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        try:
            conn.sendall(b"220 stall.test ESMTP\r\n")
            if self.stall == "banner":
                return  # never another byte
            buffer = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                while b"\r\n" in buffer:
                    line, buffer = buffer.split(b"\r\n", 1)
                    verb = line[:4].upper()
                    if verb in (b"EHLO", b"HELO"):
                        conn.sendall(b"250 stall.test\r\n")
                    elif verb in (b"MAIL", b"RCPT"):
                        conn.sendall(b"250 OK\r\n")
                    elif verb == b"DATA":
                        conn.sendall(b"354 go ahead\r\n")
                        return  # reads nothing more and never answers the final dot
        except OSError:
            return

    def close(self) -> None:
        self.listener.close()
        for conn in self.connections:
            conn.close()


@pytest.mark.parametrize("stall", ["banner", "data"])
def test_a_relay_that_stalls_is_bounded_by_smtp_timeout(make_app, database_url, clock, stall):
    server = StallingServer(stall)
    try:
        app = make_app(database_url, smtp_port=server.port, smtp_timeout=1)
        platform = Platform(app, None, clock)
        platform.sync()
        for i in range(5):
            platform.add_lead(f"s{i}@stall.example", first_name="S")
            platform.enroll(f"s{i}@stall.example")
        platform.tick()
        started = time.monotonic()
        platform.work()
        elapsed = time.monotonic() - started
    finally:
        server.close()
    # One timeout for the batch, not one per email: the relay is unreachable, the rest waits.
    assert elapsed < 8, elapsed
    deliveries = platform.deliveries()
    assert {d.status for d in deliveries} == {DeliveryStatus.queued}
    assert all("no reply within 1 s" in (d.last_error or "") or "connection" in (d.last_error or "")
               for d in deliveries), [d.last_error for d in deliveries]
