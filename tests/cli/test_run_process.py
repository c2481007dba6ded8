"""``run`` as an operator starts and stops it: every child goes, the embedded redis-server too.

The real command in a subprocess (embedded SQLite, embedded redis-server, capture inbox), a
web sign-in with the credentials it keeps in ``instance/``, then SIGTERM or Ctrl-C (SIGINT).
"""
from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
#: This suite's own port range on a shared machine.
PORTS = range(5130, 5140)


def _free_ports(count: int) -> list[int]:
    free = []
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        free.append(port)
        if len(free) == count:
            return free
    pytest.skip("no free ports in 5130-5139")


def _start(tmp_path: Path, web: int, smtp: int) -> tuple[subprocess.Popen, Path]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SMTP_URL", "CLOCK_EPOCH")}
    env.update(INSTANCE_PATH=str(tmp_path / "instance"), BASE_URL=f"http://127.0.0.1:{web}",
               CAPTURE_SMTP_PORT=str(smtp), SECRET_KEY="run-test", PYTHONUNBUFFERED="1")
    out = tmp_path / "run.log"
    handle = open(out, "ab")
    process = subprocess.Popen([sys.executable, "-m", "nurture_mail", "run", "--demo", "--workers", "2"],
                               env=env, cwd=str(ROOT), stdout=handle, stderr=subprocess.STDOUT,
                               start_new_session=True)
    handle.close()
    return process, out


def _wait_started(process: subprocess.Popen, out: Path, web: int, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = out.read_text(errors="replace")
        if process.poll() is not None:
            raise AssertionError(f"run exited with {process.returncode}:\n{text[-3000:]}")
        if "Ctrl-C stops everything" in text:
            try:
                if requests.get(f"http://127.0.0.1:{web}/signin", timeout=2).status_code == 200:
                    return text
            except requests.RequestException:
                pass
        time.sleep(0.5)
    raise AssertionError(f"run did not start within {timeout:g} s:\n{out.read_text(errors='replace')[-3000:]}")


def _sign_in(web: int, instance: Path) -> None:
    saved = dict(line.split("=", 1) for line in (instance / "demo-credentials.txt").read_text().splitlines())
    session = requests.Session()
    page = session.get(f"http://127.0.0.1:{web}/signin", timeout=10).text
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = session.post(f"http://127.0.0.1:{web}/signin", timeout=10, allow_redirects=False,
                            data={"csrf_token": csrf, "email": saved["email"], "password": saved["password"]})
    assert response.status_code == 303, response.text[:500]
    assert session.get(f"http://127.0.0.1:{web}/", timeout=10).status_code == 200


def _stop(process: subprocess.Popen, signum: int, out: Path) -> list[psutil.Process]:
    family = psutil.Process(process.pid).children(recursive=True)
    assert any("redis-server" in " ".join(p.cmdline()) for p in family), "the redis-server is not run's child"
    process.send_signal(signum)
    try:
        assert process.wait(60) == 0, out.read_text(errors="replace")[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
    _, alive = psutil.wait_procs(family, timeout=5)
    for leftover in alive:
        leftover.kill()
    return alive


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_run_stops_every_child_after_a_sign_in(tmp_path, signum):
    web, smtp = _free_ports(2)
    process, out = _start(tmp_path, web, smtp)
    try:
        banner = _wait_started(process, out, web)
        _sign_in(web, tmp_path / "instance")
    except BaseException:
        process.kill()
        raise
    alive = _stop(process, signum, out)
    text = out.read_text(errors="replace")
    assert not alive, f"left running after run stopped: {[p.cmdline() for p in alive]}"
    assert "shutdown failed" not in text and "Traceback" not in text, text[-3000:]
    assert not (tmp_path / "instance" / "redis.sock").exists()
    # The framed start-up block names the URL, the sign-in, the inbox and where the credentials are.
    block = banner[banner.index("+--"):]
    assert f"http://127.0.0.1:{web}/signin" in block and "/inbox" in block and "admin@northwind.example" in block
    credentials = tmp_path / "instance" / "demo-credentials.txt"
    assert str(credentials) in block
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600


def test_a_second_run_resumes_the_demo_clock_from_the_data(tmp_path):
    web, smtp = _free_ports(2)
    process, out = _start(tmp_path, web, smtp)
    try:
        first = _wait_started(process, out, web)
        assert "demo clock starts now" in first
        deadline = time.monotonic() + 90  # let the demo send a batch (its console line is the sign)
        while ("send batch:" not in out.read_text(errors="replace")
               and time.monotonic() < deadline and process.poll() is None):
            time.sleep(0.5)
    finally:
        _stop(process, signal.SIGTERM, out)
    console = out.read_text(errors="replace")
    # The operator's console: one line per send batch; the SMTP dialogue only at DEBUG.
    assert "nurture_mail.nurture.send INFO send batch:" in console, console[-3000:]
    assert "mail.log" not in console and "rq.worker INFO" not in console
    out.write_text("")
    process, out = _start(tmp_path, web, smtp)
    try:
        second = _wait_started(process, out, web)
    finally:
        _stop(process, signal.SIGTERM, out)
    assert "demo clock resumed from the data" in second, second[-3000:]


def test_a_command_on_the_embedded_redis_leaves_no_server_behind(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(INSTANCE_PATH=str(tmp_path / "instance"), SECRET_KEY="run-test")
    for args in (["init"], ["tick"]):
        result = subprocess.run([sys.executable, "-m", "nurture_mail", *args], env=env, cwd=str(ROOT),
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "shutdown failed" not in result.stderr
    time.sleep(0.5)
    left = [p for p in psutil.process_iter(["cmdline"])
            if "redis-server" in " ".join(p.info["cmdline"] or []) and str(tmp_path) in " ".join(p.info["cmdline"])]
    assert not left, [p.info["cmdline"] for p in left]


def test_a_worker_pool_starts_again_a_worker_that_died(tmp_path, redis):
    from nurture_mail.extensions import redis_url_of

    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(INSTANCE_PATH=str(tmp_path / "instance"), SECRET_KEY="pool-test", REDIS_URL=redis_url_of(redis),
               DATABASE_URL=f"sqlite:///{tmp_path / 'pool.db'}")
    subprocess.run([sys.executable, "-m", "nurture_mail", "init"], env=env, cwd=str(ROOT), check=True,
                   capture_output=True)
    pool = subprocess.Popen([sys.executable, "-m", "nurture_mail", "worker", "--count", "2"], env=env, cwd=str(ROOT),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(psutil.Process(pool.pid).children()) < 2:
            assert time.monotonic() < deadline and pool.poll() is None, "the pool did not start two workers"
            time.sleep(0.2)
        first = psutil.Process(pool.pid).children()
        first[0].kill()  # SIGKILL, as the OOM killer would
        deadline = time.monotonic() + 30
        while True:
            now = {p.pid for p in psutil.Process(pool.pid).children()}
            if len(now) == 2 and first[0].pid not in now:
                break
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.2)
        family = psutil.Process(pool.pid).children(recursive=True)
        pool.send_signal(signal.SIGTERM)
        assert pool.wait(60) == 0
        _, alive = psutil.wait_procs(family, timeout=10)
        assert not alive, [p.cmdline() for p in alive]
    finally:
        if pool.poll() is None:
            pool.kill()
