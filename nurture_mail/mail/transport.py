"""SMTP transport: one connection reused across a batch, one recipient per message.

Every refusal comes back as one of two exceptions, so a send job can record it:

- :class:`PermanentFailure` — a 5xx reply to MAIL, RCPT or DATA; the message will never go.
- :class:`TemporaryFailure` — a 4xx reply, or no usable session at all (connection refused,
  dropped twice, timed out, greeting/EHLO/STARTTLS/AUTH refused). ``code`` is the reply code
  of the refused MAIL/RCPT/DATA, and None when the session itself failed: the server is
  unreachable or misconfigured, not this message, so a batch stops there (the reply text then
  carries the server's own code, if any).

The transport is fast because it does nothing per message but MAIL, RCPT and DATA (no NOOP,
no RSET after success), and, when the server offers PIPELINING (RFC 2920), it sends MAIL, RCPT
and DATA in one write and reads the three replies together: two round trips per message (the
command group, then the content) instead of four. It is safe because every reply is still read
and checked in order (a refused RCPT means the content is never sent, even if a careless server
answers DATA with 354: then only the terminating dot goes, and the transaction is reset), a
refused transaction is followed by RSET, and a connection found dropped (say, closed by the
server while idle between batches) is opened again once and the message retried.

Replies are read by the transport's own reader (:class:`_ReplyReader`, also smtplib's
``file`` once the session is up): one recv usually brings a group's three replies, parsed
together, where smtplib's ``getreply`` costs a readline and a Python loop per reply; the
codes, texts and errors are exactly smtplib's (tests/mail/test_smtp_replies.py).
"""
from __future__ import annotations

import atexit
import os
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["PermanentFailure", "SMTPFailure", "SMTPSettings", "SMTPTransport", "TemporaryFailure", "close_kept",
           "keep_transport", "kept_transport"]

#: A session kept between batches and idle this long (seconds) is asked NOOP before it is used.
IDLE_CHECK = 10.0

#: ``none``: plain SMTP; ``starttls-if-offered``: upgrade when the server offers it;
#: ``starttls``: upgrade or fail; ``tls``: implicit TLS from the first byte (smtps).
SECURITY_MODES = ("none", "starttls-if-offered", "starttls", "tls")
_SCHEMES = {"smtp": ("none", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class SMTPSettings:
    """Where and how to connect; usually from ``SMTP_URL`` via :meth:`from_url`."""

    host: str
    port: int
    security: str = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    #: The name given in EHLO; None lets smtplib use this machine's FQDN.
    local_hostname: str | None = None

    def __post_init__(self) -> None:
        if self.security not in SECURITY_MODES:
            raise ValueError(f"SMTP security: expected one of {', '.join(SECURITY_MODES)}, got {self.security!r}")

    @classmethod
    def from_url(cls, url: str, timeout: float = 30) -> SMTPSettings:
        """``smtp://[user:pass@]host[:port][?starttls=1]`` (port 25; STARTTLS when offered if
        asked), ``smtp+starttls://…`` (587; STARTTLS required), ``smtps://…`` (465; implicit TLS).

        User and password are percent-decoded. Query parameters: ``starttls`` (smtp:// only),
        ``timeout`` (seconds; overrides the argument), ``ehlo`` (the name to give in EHLO).
        """
        shown = _redacted(url)
        try:
            parts = urlsplit(url.strip())
        except ValueError as exc:
            raise ValueError(f"SMTP URL {shown!r}: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise ValueError(f"SMTP URL {shown!r}: unknown scheme {parts.scheme + '://' if parts.scheme else '(none)'}; "
                             "expected smtp://, smtp+starttls:// or smtps://")
        security, default_port = _SCHEMES[scheme]
        if not parts.hostname:
            raise ValueError(f"SMTP URL {shown!r}: no host")
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port is None:
            port = default_port
        elif not 0 < port < 65536:
            raise ValueError(f"SMTP URL {shown!r}: the port must be a number from 1 to 65535")
        if parts.path not in ("", "/") or parts.fragment:
            raise ValueError(f"SMTP URL {shown!r}: unexpected path or fragment")
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(set(params) - {"starttls", "timeout", "ehlo"})
        if unknown:
            raise ValueError(f"SMTP URL {shown!r}: unknown parameter {unknown[0]!r}; known: starttls, timeout, ehlo")
        if "starttls" in params:
            flag = params["starttls"].lower()
            if flag not in _TRUE + _FALSE:
                raise ValueError(f"SMTP URL {shown!r}: starttls must be 1 or 0, got {params['starttls']!r}")
            if scheme == "smtp":
                security = "starttls-if-offered" if flag in _TRUE else "none"
            elif (flag in _TRUE) != (security == "starttls"):
                raise ValueError(f"SMTP URL {shown!r}: starttls={params['starttls']} contradicts {scheme}://")
        if "timeout" in params:
            try:
                timeout = float(params["timeout"])
            except ValueError:
                raise ValueError(f"SMTP URL {shown!r}: timeout must be a number of seconds") from None
        if not timeout > 0:
            raise ValueError(f"SMTP URL {shown!r}: timeout must be positive, got {timeout!r}")
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        if password is not None and username is None:
            raise ValueError(f"SMTP URL {shown!r}: a password without a user name")
        return cls(host=parts.hostname, port=port, security=security, username=username, password=password,
                   timeout=float(timeout), local_hostname=params.get("ehlo") or None)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class SMTPFailure(Exception):
    """The server, or the way to it, did not take a message."""

    def __init__(self, code: int | None, reply: str, stage: str) -> None:
        self.code = code
        self.reply = reply
        #: ``connect`` (no usable session), ``mail``, ``rcpt`` or ``data``.
        self.stage = stage
        super().__init__(f"{code} {reply}" if code is not None else reply)


class TemporaryFailure(SMTPFailure):
    """Try again later: a 4xx reply (``code``), or no usable session (``code`` is None)."""

    code: int | None


class PermanentFailure(SMTPFailure):
    """A 5xx reply to MAIL, RCPT or DATA: this message will never be accepted as it is."""

    code: int

    def __init__(self, code: int, reply: str, stage: str) -> None:
        super().__init__(code, reply, stage)


class _ConnectionLost(Exception):
    """The session ended under us (dropped, or a 421): worth one more try on a new connection."""

    def __init__(self, code: int | None, reply: str, stage: str) -> None:
        super().__init__(reply)
        self.code, self.reply, self.stage = code, reply, stage


class SMTPTransport:
    """A connection reused for a batch of messages; not for sharing between threads.

    Opens lazily at the first :meth:`send` (or at :meth:`open`); use it as a context manager,
    or call :meth:`close`, to end the session with QUIT.
    """

    def __init__(self, settings: SMTPSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None
        self._tls: ssl.SSLContext | None = None
        #: ``time.monotonic()`` of the last exchange; and the process that opened the session.
        self.last_used = 0.0
        self.pid = os.getpid()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def open(self) -> None:
        """Connect now rather than at the first message; raises TemporaryFailure (``code`` None)."""
        if self._smtp is None:
            self._smtp = self._connect()

    @property
    def is_open(self) -> bool:
        return self._smtp is not None

    def check_alive(self, idle_after: float = IDLE_CHECK) -> None:
        """A session unused for ``idle_after`` seconds is asked NOOP; one that does not answer
        250 (say, closed by the server meanwhile) is dropped, and the next send opens another."""
        if self._smtp is None or time.monotonic() - self.last_used < idle_after:
            return
        try:
            code, _ = self._smtp.noop()
        except (OSError, smtplib.SMTPException):
            code = 0
        if code == 250:
            self.last_used = time.monotonic()
        else:
            self._discard()

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):  # already gone: nothing to say goodbye to
            smtp.close()

    def send(self, envelope_from: str, recipient: str, data: bytes) -> None:
        """Deliver ``data`` (CRLF lines, as :func:`~nurture_mail.mail.mime.build_message`
        writes) to one recipient; returns once the server has accepted it (250 to DATA).

        ``envelope_from`` may be ``""`` (the null reverse-path). Raises TemporaryFailure or
        PermanentFailure; ValueError for an address with a line break or non-ASCII text.
        """
        _check_address("envelope sender", envelope_from)
        _check_address("recipient", recipient)
        self.last_used = time.monotonic()
        try:
            self._transaction(envelope_from, recipient, data)
        except _ConnectionLost:
            # Typically a connection the server closed while we were not using it. Retrying
            # once is no more a risk of a duplicate than the later retry a TemporaryFailure
            # would bring (a drop after the final "." may hide an acceptance), and the
            # Message-ID stays the same, so clients fold a duplicate.
            self._discard()
            try:
                self._transaction(envelope_from, recipient, data)
            except _ConnectionLost as lost:
                self._discard()
                raise TemporaryFailure(lost.code, lost.reply, lost.stage) from None

    # -- internals ------------------------------------------------------------------------------

    @property
    def pipelining(self) -> bool:
        """Whether the open session pipelines (the server offered PIPELINING); False when closed."""
        return self._smtp is not None and self._smtp.has_extn("pipelining")

    def _transaction(self, envelope_from: str, recipient: str, data: bytes) -> None:
        if self._smtp is None:
            self._smtp = self._connect()
        smtp = self._smtp
        stage = "mail"
        reply: bytes | str
        try:
            options = [f"SIZE={len(data)}"] if smtp.has_extn("size") else []
            if smtp.has_extn("pipelining"):
                at = [stage]
                try:
                    refused = self._pipelined(smtp, envelope_from, recipient, data, options, at)
                except (OSError, smtplib.SMTPException):
                    stage = at[0]
                    raise
                if refused is None:
                    return
                stage, code, reply = refused
            else:
                code, reply = smtp.mail(envelope_from, options)
                if code == 250:
                    stage = "rcpt"
                    code, reply = smtp.rcpt(recipient)
                    if code in (250, 251):
                        stage = "data"
                        try:
                            code, reply = smtp.data(data)
                        except smtplib.SMTPDataError as refused:  # DATA answered with something not 354
                            code, reply = refused.smtp_code, _not_354(refused.smtp_code, refused.smtp_error)
                        else:
                            if code == 250:
                                return
        except (OSError, smtplib.SMTPException) as exc:
            # smtplib turns every socket error, timeouts included, into SMTPServerDisconnected.
            cause = exc.__context__ if isinstance(exc, smtplib.SMTPServerDisconnected) else exc
            if isinstance(cause, TimeoutError):
                # A server this slow would be as slow again; and the session's state is unknown.
                self._discard()
                raise TemporaryFailure(
                    None, f"{self.settings.address}: no reply within {self.settings.timeout:g} s ({stage.upper()})",
                    stage) from None
            raise _ConnectionLost(None, f"{self.settings.address}: connection lost ({stage.upper()}): {exc}",
                                  stage) from None
        self._refused(smtp, code, _text(reply), stage)

    @staticmethod
    def _pipelined(smtp: smtplib.SMTP, envelope_from: str, recipient: str, data: bytes,
                   options: list[str], at: list[str]) -> tuple[str, int, bytes | str] | None:
        """MAIL, RCPT and DATA in one write (RFC 2920), then the content once DATA got 354.

        Returns (stage, code, reply) of the first refusal, or None when the message was
        accepted. The three replies are always all read, so the session stays in
        step whatever was refused. ``at[0]`` names the reply being waited for (for a timeout).
        """
        mail = f"MAIL FROM:{_quoted(envelope_from)}{''.join(' ' + o for o in options)}"
        smtp.send(f"{mail}\r\nRCPT TO:{_quoted(recipient)}\r\nDATA\r\n".encode("ascii"))
        reader = smtp.file
        if isinstance(reader, _ReplyReader):
            try:
                (mail_code, mail_reply), (rcpt_code, rcpt_reply), (data_code, data_reply) = reader.replies(3)
            except BaseException:
                at[0] = _GROUP_STAGES[min(reader.complete, 2)]
                raise
            at[0] = "data"
            if mail_code == 250 and rcpt_code in (250, 251) and data_code == 354:
                smtp.send(_dot_stuffed(data))
                ((code, reply),) = reader.replies(1)
                return None if code == 250 else ("data", code, reply)
        else:  # not ours (only if smtplib replaced it): one reply at a time
            mail_code, mail_reply = smtp.getreply()
            at[0] = "rcpt"
            rcpt_code, rcpt_reply = smtp.getreply()
            at[0] = "data"
            data_code, data_reply = smtp.getreply()
        at[0] = "data"
        if mail_code != 250:
            failed = ("mail", mail_code, mail_reply)
        elif rcpt_code not in (250, 251):
            failed = ("rcpt", rcpt_code, rcpt_reply)
        elif data_code != 354:  # no content went: whatever the code, this message was not taken
            return "data", data_code, _not_354(data_code, data_reply)
        else:
            smtp.send(_dot_stuffed(data))
            code, reply = smtp.getreply()
            return None if code == 250 else ("data", code, reply)
        if data_code == 354:
            # A server that let DATA through after refusing the envelope: end the (empty) content
            # at once; whatever it answers, this message was refused at MAIL or RCPT.
            smtp.send(b".\r\n")
            smtp.getreply()
        return failed

    def _refused(self, smtp: smtplib.SMTP, code: int, reply: str, stage: str) -> None:
        if code == 421:  # the server is closing this session; a new one may well be welcome
            raise _ConnectionLost(code, reply, stage)
        try:
            smtp.rset()  # leave the session ready for the next message
        except (OSError, smtplib.SMTPException):
            self._discard()
        if 500 <= code <= 599:
            raise PermanentFailure(code, reply, stage)
        raise TemporaryFailure(code, reply, stage)

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        where = settings.address
        try:
            if settings.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    settings.host, settings.port, local_hostname=settings.local_hostname,
                    timeout=settings.timeout, context=self._tls_context())
            else:
                smtp = smtplib.SMTP(settings.host, settings.port, local_hostname=settings.local_hostname,
                                    timeout=settings.timeout)
        except smtplib.SMTPConnectError as exc:  # a greeting other than 220
            raise TemporaryFailure(None, f"{where} greeting: {exc.smtp_code} {_text(exc.smtp_error)}", "connect") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporaryFailure(None, f"cannot connect to {where}: {exc or type(exc).__name__}", "connect") from None
        try:
            self._start_session(smtp)
        except BaseException:
            smtp.close()
            raise
        # From here on every reply is read through one buffer of ours (smtplib's getreply too):
        # smtplib has read every reply it asked for, and a server speaks only when spoken to.
        smtp.file = _ReplyReader(smtp)
        return smtp

    def _start_session(self, smtp: smtplib.SMTP) -> None:
        settings = self.settings
        where = settings.address
        step = "EHLO"
        try:
            smtp.ehlo_or_helo_if_needed()
            if settings.security in ("starttls", "starttls-if-offered"):
                step = "STARTTLS"
                if smtp.has_extn("starttls"):
                    code, reply = smtp.starttls(context=self._tls_context())
                    if code == 220:
                        smtp.ehlo()
                    elif settings.security == "starttls":
                        raise TemporaryFailure(None, f"{where} STARTTLS: {code} {_text(reply)}", "connect")
                elif settings.security == "starttls":
                    raise TemporaryFailure(None, f"{where} does not offer STARTTLS, which the URL requires", "connect")
            if settings.username is not None:
                step = "AUTH"
                smtp.login(settings.username, settings.password or "")
        except smtplib.SMTPResponseException as exc:
            raise TemporaryFailure(None, f"{where} {step}: {exc.smtp_code} {_text(exc.smtp_error)}", "connect") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporaryFailure(None, f"{where} {step}: {exc or type(exc).__name__}", "connect") from None

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:  # loading the CA store takes milliseconds: once per transport
            self._tls = ssl.create_default_context()
        return self._tls

    def _discard(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()


#: A bare ``local@domain`` (or the null path): ``<…>`` is its quoted form, which
#: ``smtplib.quoteaddr`` (an RFC 822 parse, a fifth of an email's SMTP CPU) would also give.
_BARE_ADDRESS = re.compile(r"[^\s<>()\[\]\\,;:\"@]+@[^\s<>()\[\]\\,;:\"@]+\Z|\Z")


def _quoted(address: str) -> str:
    return f"<{address}>" if _BARE_ADDRESS.match(address) else smtplib.quoteaddr(address)


_kept: SMTPTransport | None = None
_kept_lock = threading.Lock()


def kept_transport(settings: SMTPSettings) -> SMTPTransport:
    """The session the last batch of this process left open to the same relay, checked
    (:meth:`SMTPTransport.check_alive`); otherwise a new transport. Give it back with
    :func:`keep_transport`, or close it."""
    global _kept
    with _kept_lock:
        transport, _kept = _kept, None
    if transport is not None:
        if transport.pid != os.getpid():  # inherited across fork: the parent's socket, not ours
            transport._smtp = None
        elif transport.settings == settings:
            transport.check_alive()
            return transport
        else:
            transport.close()
    return SMTPTransport(settings)


def keep_transport(transport: SMTPTransport) -> None:
    """Keep ``transport``'s session open for the next batch of this process (one kept at most)."""
    global _kept
    if not transport.is_open:
        return
    with _kept_lock:
        previous, _kept = _kept, transport
    if previous is not None and previous is not transport:
        previous.close()


def close_kept() -> None:
    """End the kept session with QUIT (at exit)."""
    global _kept
    with _kept_lock:
        transport, _kept = _kept, None
    if transport is not None and transport.pid == os.getpid():
        transport.close()


atexit.register(close_kept)


def _dot_stuffed(data: bytes) -> bytes:
    """The content as DATA sends it: leading dots doubled, CRLF at the end, then the final dot."""
    # Most messages have no line that starts with a dot: finding that out with a regex (which
    # jumps from line break to line break with memchr) costs a third of bytes.replace's scan
    # of every byte; the replace (not a multiline regex: a twentieth of its cost) only when needed.
    if data[:1] == b"." or _LINE_DOT.search(data) is not None:
        stuffed = (b"." + data if data[:1] == b"." else data).replace(b"\n.", b"\n..")
    else:
        stuffed = data
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


#: A line that starts with a dot (see :func:`_dot_stuffed`).
_LINE_DOT = re.compile(rb"\n\.")
#: What the replies to a pipelined group answer, in order.
_GROUP_STAGES = ("mail", "rcpt", "data")
#: smtplib's longest reply line, its line break included (``smtplib._MAXLINE``).
_MAXLINE = 8192
#: The replies of the groups read lately, by their bytes (one line each; see ``replies``).
_GROUPS_READ: dict[bytes, tuple[tuple[int, bytes], ...]] = {}


class _ReplyReader:
    """The replies of an open session, read from its socket into one buffer and parsed in bulk.

    Installed as ``smtp.file`` once the session is up, so smtplib's own ``getreply`` (RSET,
    NOOP, QUIT, the path without PIPELINING) reads through :meth:`readline` from the same
    buffer. :meth:`replies` parses as many replies as a recv brought (the three of a pipelined
    group usually arrive in one segment) where ``getreply`` costs a Python loop and a readline
    per reply, and gives exactly what ``getreply`` would have, errors included: lines end at
    LF; a reply line of more than 8,192 bytes closes the session (``SMTPResponseException``
    500, "Line too long."); so does the end of the connection (``SMTPServerDisconnected``,
    raised while handling the socket's error when there was one, so a timeout stays
    recognisable as the context); a line whose code is no number is a reply of code -1; a
    partial last line before the end of the connection counts as a line.
    """

    __slots__ = ("_smtp", "_sock", "_buffer", "complete")

    def __init__(self, smtp: smtplib.SMTP) -> None:
        if smtp.sock is None:
            raise ValueError("the session is not open")
        self._smtp = smtp
        self._sock: socket.socket = smtp.sock
        self._buffer = b""
        #: How many replies the current (or last) :meth:`replies` call has read in full.
        self.complete = 0

    def replies(self, count: int) -> Sequence[tuple[int, bytes]]:
        """The next ``count`` replies: ``(code, text)`` each, as ``smtplib.getreply`` returns."""
        self.complete = 0
        buffer = self._buffer or self._recv()
        if count > 1:
            # A server answers MAIL, RCPT and DATA the same way message after message: the
            # bytes of a group seen before are parsed already.
            known = _GROUPS_READ.get(buffer)
            if known is not None and len(known) == count:
                self._buffer = b""
                self.complete = count
                return known
        if buffer[-1:] == b"\n" and len(buffer) <= _MAXLINE and buffer.count(b"\n") == count:
            # What a recv usually brings: exactly these replies, one line each.
            found = []
            for line in buffer.split(b"\n")[:-1]:
                code = line[:3]
                if line[3:4] != b" " or not code.isdigit():
                    break  # a multi-line reply, or something odd: read as getreply would
                found.append((int(code), line[4:].strip(b" \t\r\n")))
            else:
                self._buffer = b""
                self.complete = count
                if count > 1:
                    if len(_GROUPS_READ) >= 64:
                        _GROUPS_READ.clear()
                    _GROUPS_READ[buffer] = tuple(found)
                return found
        return self._replies(count, buffer)

    def _replies(self, count: int, buffer: bytes) -> list[tuple[int, bytes]]:
        found: list[tuple[int, bytes]] = []
        lines: list[bytes] = []  # of the reply being read
        start = 0
        while True:
            end = buffer.find(b"\n", start) + 1
            if not end or end - start > _MAXLINE:
                if end or len(buffer) - start > _MAXLINE:
                    self._lost()
                    raise smtplib.SMTPResponseException(500, "Line too long.")
                buffer, start = buffer[start:], 0
                chunk = self._recv(eof_ok=bool(buffer))
                if chunk:
                    buffer += chunk
                    continue
                line, buffer = buffer, b""  # the end of the connection ends the last line
            else:
                line, start = buffer[start:end], end
            lines.append(line[4:].strip(b" \t\r\n"))
            try:
                code = int(line[:3])
            except ValueError:
                code = -1
            else:
                if line[3:4] == b"-":
                    continue
            found.append((code, b"\n".join(lines)))
            lines = []
            self.complete += 1
            if self.complete == count:
                self._buffer = buffer[start:]
                return found

    def _recv(self, eof_ok: bool = False) -> bytes:
        """What the socket has (waiting for it); at the end of the connection b"" if
        ``eof_ok``, else SMTPServerDisconnected. A socket error closes the session too."""
        try:
            chunk = self._sock.recv(65536)
        except OSError as exc:
            self._lost()
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed: " + str(exc))
        if not chunk and not eof_ok:
            self._lost()
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return chunk

    def _lost(self) -> None:
        self._buffer = b""
        self._smtp.close()

    def readline(self, limit: int = -1) -> bytes:
        """``BufferedReader.readline``, for smtplib's ``getreply``."""
        buffer = self._buffer
        while True:
            end = buffer.find(b"\n") + 1
            if end and (limit < 0 or end <= limit):
                self._buffer = buffer[end:]
                return buffer[:end]
            if 0 <= limit <= len(buffer):
                self._buffer = buffer[limit:]
                return buffer[:limit]
            chunk = self._sock.recv(65536)
            if not chunk:
                self._buffer = b""
                return buffer
            buffer = self._buffer = buffer + chunk

    def close(self) -> None:
        self._buffer = b""


def _check_address(what: str, address: str) -> None:
    if "\r" in address or "\n" in address:
        raise ValueError(f"{what}: line break in address (command injection?): {address!r}")
    if not address.isascii():
        raise ValueError(f"{what}: non-ASCII address needs SMTPUTF8, which this transport does not use: {address!r}")


def _not_354(code: int, reply: bytes | str) -> str | bytes:
    """The reply to a DATA not answered 354; one that is no refusal (a 250) says so, since it
    would otherwise read as if the message had been taken."""
    return reply if code >= 400 else f"DATA not answered 354, no content sent: {_text(reply)}"


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _redacted(url: str) -> str:
    """The URL with any password replaced, for error messages and logs."""
    scheme, sep, rest = url.partition("://")
    netloc_end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    userinfo, at, hostport = rest[:netloc_end].rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hostport}{rest[netloc_end:]}"
