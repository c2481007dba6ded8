"""The built-in SMTP capture server: the zero-setup default relay, read through the web inbox.

Messages land in a Maildir (``mailbox.Maildir``), so delivery is lock-free and atomic
(written under ``tmp/``, fsynced, then linked into ``new/``) and any number of processes
(the SMTP thread, web workers, test code) can read and write the same folder.

Each stored file is the original message, byte for byte, preceded by a few private
``X-Capture-*`` lines holding the SMTP envelope (which the message itself does not carry):

    X-Capture-Lines: 3              <- how many envelope lines follow this one
    X-Capture-Received-At: 2026-03-02T09:30:00.123456+00:00
    X-Capture-Envelope-From: nurture@northwind.example
    X-Capture-Rcpt-To: ana@example.com      <- one line per recipient

The first line counts the others, so a message that itself begins with ``X-Capture-``
headers (a captured mail forwarded back in) is still split exactly. Values are
percent-encoded outside printable ASCII so an SMTPUTF8 address cannot break a line.
"""
from __future__ import annotations

import asyncio
import builtins
import email.policy
import errno
import logging
import mailbox
import os
import re
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from functools import cached_property
from pathlib import Path
from typing import Self
from urllib.parse import quote, unquote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from ..clock import Clock, SystemClock, as_utc

__all__ = ["CaptureServer", "CaptureStore", "CapturedMessage", "MessageHook"]

log = logging.getLogger(__name__)

_COUNT = b"X-Capture-Lines"
_RECEIVED = b"X-Capture-Received-At"
_FROM = b"X-Capture-Envelope-From"
_RCPT = b"X-Capture-Rcpt-To"
_MAILDIR_NAME = re.compile(r"(\d+)\.M(\d+)P\d+Q(\d+)")
# Printable ASCII except "%" stays readable; everything else (space, CR, LF, UTF-8) is escaped.
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


@dataclass(frozen=True)
class CapturedMessage:
    """One message as the capture server received it: SMTP envelope plus the exact bytes."""

    key: str
    envelope_from: str
    rcpt_tos: list[str]
    received_at: datetime
    raw: bytes = field(repr=False)

    @cached_property
    def message(self) -> EmailMessage:
        """The parsed message (``email.policy.default``), parsed once."""
        parsed = BytesParser(policy=email.policy.default).parsebytes(self.raw)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def from_(self) -> str:
        return str(self.message.get("From", ""))

    @property
    def to(self) -> str:
        return str(self.message.get("To", ""))

    @property
    def message_id(self) -> str:
        return str(self.message.get("Message-ID", ""))

    @property
    def html(self) -> str | None:
        """The text/html body part, decoded; None when the message has none."""
        return self._body("html")

    @property
    def text(self) -> str | None:
        """The text/plain body part, decoded; None when the message has none."""
        return self._body("plain")

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The message's own headers in order, values decoded (RFC 2047 words become text)."""
        return [(name, str(value)) for name, value in self.message.items()]

    @property
    def size(self) -> int:
        return len(self.raw)

    def _body(self, subtype: str) -> str | None:
        part = self.message.get_body(preferencelist=(subtype,))
        if part is None or part.get_content_subtype() != subtype:
            return None
        try:
            content = part.get_content()
        except (LookupError, UnicodeError):
            # An unknown or lying charset: show what we can rather than nothing.
            payload = part.get_payload(decode=True)
            content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
        if not isinstance(content, str):
            return None
        # SMTP bodies arrive with CRLF; unencoded (7bit/8bit) parts keep it through the parser.
        return content.replace("\r\n", "\n")


MessageHook = Callable[[CapturedMessage], None]


class CaptureStore:
    """The captured messages in a Maildir at ``path``; safe to share between threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._ensure_folders()
        self._maildir = mailbox.Maildir(str(self.path), factory=None, create=False)
        # Maildir's table of contents is rebuilt in place, so one lock per store keeps
        # threads from reading it half-built; other processes need no lock (see module doc).
        self._lock = threading.RLock()
        # key -> received_at; stored files never change, so this only grows or forgets.
        self._received: dict[str, datetime] = {}

    def add(self, envelope_from: str, rcpt_tos: builtins.list[str], data: bytes, received_at: datetime) -> str:
        """Store one message durably (fsynced file and directory) and return its key."""
        received_at = as_utc(received_at)
        stored = _envelope_lines(envelope_from, rcpt_tos, received_at) + bytes(data)
        # No lock around the write: Maildir.add touches no shared state but a name counter,
        # and a clash on that counter is caught below, so concurrent deliveries fsync in parallel.
        for attempt in range(5):
            try:
                key = self._maildir.add(stored)
                break
            except mailbox.ExternalClashError:
                # Two threads named a file in the same microsecond: take a new name.
                if attempt == 4:
                    raise
            except FileNotFoundError:
                # Someone removed the folder (rm -rf instance/capture_inbox): start it again.
                if attempt == 4:
                    raise
                self._ensure_folders()
        _fsync_dir(self.path / "new")
        with self._lock:
            self._received[key] = received_at
        return key

    def list(self, limit: int | None = None, offset: int = 0) -> builtins.list[CapturedMessage]:
        """Messages, newest first; ``limit``/``offset`` read only the page asked for."""
        keys = self._keys_newest_first()
        page = keys[offset:] if limit is None else keys[offset : offset + limit]
        messages = []
        for key in page:
            try:
                messages.append(self.get(key))
            except KeyError:  # removed by another process since we listed it
                continue
        return messages

    def get(self, key: str) -> CapturedMessage:
        """The message stored under ``key``; KeyError if there is none."""
        with self._lock:
            try:
                stored = self._maildir.get_bytes(key)
            except FileNotFoundError:
                raise KeyError(key) from None
        envelope_from, rcpt_tos, received_at, raw = _split(stored)
        if received_at is None:
            received_at = self._file_time(key)
        return CapturedMessage(key, envelope_from, rcpt_tos, received_at, raw)

    def count(self) -> int:
        with self._lock:
            return len(self._maildir)

    def clear(self) -> None:
        """Remove every message (those other processes add meanwhile may survive)."""
        with self._lock:
            for key in self._maildir.keys():  # noqa: SIM118 - iterating a Mailbox yields messages
                self._maildir.discard(key)
            self._received.clear()

    def _ensure_folders(self) -> None:
        # mailbox.Maildir(create=True) only creates tmp/new/cur when the folder itself is new.
        for sub in ("tmp", "new", "cur"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)

    def _keys_newest_first(self) -> builtins.list[str]:
        with self._lock:
            keys = set(self._maildir.keys())
            for gone in self._received.keys() - keys:
                del self._received[gone]
            for key in keys - self._received.keys():
                try:
                    self._received[key] = self._read_received_at(key)
                except (KeyError, FileNotFoundError):
                    continue
            index = [(received, _arrival(key), key) for key, received in self._received.items()]
        index.sort(reverse=True)
        return [key for _received, _order, key in index]

    def _read_received_at(self, key: str) -> datetime:
        """Only the first lines are read: sorting a big inbox must not read every body."""
        with self._maildir.get_file(key) as file:
            head = file.read(512)
        lines = head.split(b"\r\n")
        if head.startswith(_COUNT + b":") and len(lines) > 2 and lines[1].startswith(_RECEIVED + b":"):
            try:
                return as_utc(datetime.fromisoformat(lines[1].partition(b":")[2].strip().decode("ascii")))
            except ValueError:
                pass
        return self._file_time(key)

    def _file_time(self, key: str) -> datetime:
        """For a file someone else dropped in: when it was delivered (the file's mtime)."""
        delivered: float
        try:
            with self._lock:
                delivered = self._maildir.get_message(key).get_date()
        except (KeyError, OSError):
            delivered = 0.0
        return datetime.fromtimestamp(delivered, UTC)


def _arrival(key: str) -> tuple[int, int, int]:
    """Delivery order from a Maildir name (``sec.MusecPpidQn.host``), for equal received_at.

    Equal times are common: a frozen or simulated clock stamps a whole batch alike.
    """
    match = _MAILDIR_NAME.match(key)
    if match is None:
        return (0, 0, 0)
    seconds, micros, counter = match.groups()
    return (int(seconds), int(micros), int(counter))


def _envelope_lines(envelope_from: str, rcpt_tos: Iterable[str], received_at: datetime) -> bytes:
    lines = [_RECEIVED + b": " + received_at.isoformat().encode("ascii")]
    lines.append(_FROM + b": " + quote(envelope_from, safe=_SAFE).encode("ascii"))
    lines.extend(_RCPT + b": " + quote(rcpt, safe=_SAFE).encode("ascii") for rcpt in rcpt_tos)
    head = _COUNT + b": " + str(len(lines)).encode("ascii")
    return b"".join(line + b"\r\n" for line in [head, *lines])


def _split(stored: bytes) -> tuple[str, list[str], datetime | None, bytes]:
    """Undo ``_envelope_lines``: (envelope_from, rcpt_tos, received_at, original bytes)."""
    if not stored.startswith(_COUNT + b":"):
        return "", [], None, stored
    end = stored.find(b"\r\n")
    try:
        count = int(stored[len(_COUNT) + 1 : end])
    except ValueError:
        return "", [], None, stored
    envelope_from, rcpt_tos = "", []
    received_at: datetime | None = None
    position = end + 2
    for _ in range(count):
        end = stored.find(b"\r\n", position)
        if end < 0:
            return "", [], None, stored
        name, _, value = stored[position:end].partition(b":")
        text = unquote(value.strip().decode("ascii", errors="replace"))
        if name == _RECEIVED:
            try:
                received_at = as_utc(datetime.fromisoformat(text))
            except ValueError:
                received_at = None
        elif name == _FROM:
            envelope_from = text
        elif name == _RCPT:
            rcpt_tos.append(text)
        position = end + 2
    return envelope_from, rcpt_tos, received_at, stored[position:]


def _fsync_dir(path: Path) -> None:
    """Make the rename into ``new/`` survive a crash, not just the file's bytes."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Handler:
    """aiosmtpd handler: store on DATA, then call the hooks; replies injected by ``fail_next``."""

    def __init__(self, server: CaptureServer) -> None:
        self._server = server

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        failure = self._server._take_failure("RCPT")
        if failure is not None:
            return failure
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        failure = self._server._take_failure("DATA")
        if failure is not None:
            return failure
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._server._deliver, envelope)
        except Exception:
            log.exception("capture: could not store a message from %s", envelope.mail_from)
            return "451 4.3.0 Local error: message not stored"
        return "250 2.0.0 Message captured"


class CaptureServer:
    """An SMTP server (aiosmtpd ``Controller``) on a background thread, storing into a CaptureStore.

    A message is on disk before its ``250`` is sent. The ``on_message`` hooks then run one at a
    time (never concurrently), still before the ``250``, so once ``sendmail`` returns every hook
    has seen the message; a hook that raises is logged and the message stays stored.
    """

    def __init__(
        self,
        store: CaptureStore,
        host: str = "127.0.0.1",
        port: int = 0,
        on_message: list[MessageHook] | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self._host = host
        self._requested_port = port
        self._port = port
        self.on_message: list[MessageHook] = list(on_message or [])
        self.clock: Clock = clock or SystemClock()
        self._controller: Controller | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._failures: deque[tuple[str, str]] = deque()
        self._failures_lock = threading.Lock()
        self._hooks_lock = threading.Lock()

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The bound port once started (the requested one before, 0 meaning "any free port")."""
        return self._port

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        if self._controller is not None:
            raise RuntimeError("capture server already running")
        executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="capture-store")
        # aiosmtpd 1.4 cannot bind port 0 itself (it probes the port it was given, aio-libs/aiosmtpd#388),
        # so ask the OS for a free port and retry if another process takes it first.
        attempts = 1 if self._requested_port else 5
        for attempt in range(attempts):
            port = self._requested_port or _free_port(self._host)
            controller = Controller(
                _Handler(self),
                hostname=self._host,
                port=port,
                server_hostname="localhost",  # the default, getfqdn(), can wait seconds on DNS
                ident="nurture_mail capture",
            )
            controller.loop.set_default_executor(executor)
            try:
                controller.start()
            except BaseException as error:
                if not controller.loop.is_closed():
                    controller.loop.close()
                in_use = isinstance(error, OSError) and error.errno == errno.EADDRINUSE
                if in_use and attempt < attempts - 1:
                    continue
                executor.shutdown(wait=False)
                raise
            self._controller, self._executor, self._port = controller, executor, port
            log.info("capture SMTP server listening on %s:%s, storing in %s", self._host, port, self.store.path)
            return

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        self._port = self._requested_port

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def fail_next(self, code: int, message: str, times: int = 1, *, command: str = "RCPT") -> None:
        """Answer the next ``times`` RCPT TO (or DATA) commands with ``code message``.

        Simulates a relay's temporary (4xx, e.g. 451 greylisting) or permanent (5xx, e.g. 550
        no such user) refusal; a refused message is not stored.
        """
        if not 400 <= code <= 599:
            raise ValueError(f"fail_next: {code} is not an SMTP failure code (400-599)")
        if "\r" in message or "\n" in message:
            raise ValueError("fail_next: the message must be a single line")
        command = command.upper()
        if command not in ("RCPT", "DATA"):
            raise ValueError(f"fail_next: command must be RCPT or DATA, not {command!r}")
        with self._failures_lock:
            self._failures.extend([(command, f"{code} {message}".rstrip())] * times)

    def _take_failure(self, command: str) -> str | None:
        with self._failures_lock:
            for index, (failing, reply) in enumerate(self._failures):
                if failing == command:
                    del self._failures[index]
                    return reply
        return None

    def _deliver(self, envelope: Envelope) -> None:
        """Runs on a worker thread: store first, then the hooks."""
        data = envelope.original_content or b""
        received_at = as_utc(self.clock.now())
        rcpt_tos = list(envelope.rcpt_tos)
        key = self.store.add(envelope.mail_from or "", rcpt_tos, data, received_at)
        if not self.on_message:
            return
        captured = CapturedMessage(key, envelope.mail_from or "", rcpt_tos, received_at, bytes(data))
        with self._hooks_lock:
            for hook in list(self.on_message):  # tests add and remove hooks while it runs
                try:
                    hook(captured)
                except Exception:
                    log.exception("capture: on_message hook %r failed for message %s (kept)", hook, key)


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
