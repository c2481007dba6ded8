"""The transport's reply reader reads exactly what ``smtplib.getreply`` reads.

``_ReplyReader.replies`` parses several replies per recv; whatever the bytes and however they
are cut into reads, it must give the same codes, texts and errors as smtplib reading the same
stream one line at a time, leave the rest for the next reply, and close the session where
smtplib does. ``readline`` (what smtplib itself calls through ``smtp.file``) must behave as
``BufferedReader.readline``.
"""
from __future__ import annotations

import io
import smtplib
from collections.abc import Iterable

import pytest

from nurture_mail.mail.transport import _MAXLINE, _ReplyReader


class FakeSocket:
    """A socket whose recv hands out the given chunks, then b"" (the end of the connection),
    or raises ``error`` once the chunks are used up."""

    def __init__(self, chunks: Iterable[bytes], error: OSError | None = None) -> None:
        self.chunks = [c for c in chunks if c]
        self.error = error
        self.closed = False
        self.recvs = 0

    def recv(self, size: int) -> bytes:
        self.recvs += 1
        if self.chunks:
            return self.chunks.pop(0)
        if self.error is not None:
            raise self.error
        return b""

    def close(self) -> None:
        self.closed = True


def ours(chunks: Iterable[bytes], error: OSError | None = None) -> tuple[smtplib.SMTP, _ReplyReader]:
    smtp = smtplib.SMTP()
    smtp.sock = FakeSocket(chunks, error)  # type: ignore[assignment]
    reader = _ReplyReader(smtp)
    smtp.file = reader
    return smtp, reader


def smtplib_reads(stream: bytes, count: int, error: OSError | None = None) -> list:
    """What ``getreply`` makes of ``stream``: ``count`` replies, or the replies before an
    exception and the exception's (type, args)."""
    smtp = smtplib.SMTP()

    class Raw(io.RawIOBase):
        def __init__(self) -> None:
            self.data = stream

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            if not self.data:
                if error is not None:
                    raise error
                return 0
            n = min(len(buffer), len(self.data))
            buffer[:n], self.data = self.data[:n], self.data[n:]
            return n

    smtp.file = io.BufferedReader(Raw())
    got: list = []
    for _ in range(count):
        try:
            got.append(smtp.getreply())
        except smtplib.SMTPException as exc:
            got.append((type(exc), exc.args))
            break
    return got


def our_reads(chunks: list[bytes], count: int, error: OSError | None = None) -> tuple[list, _ReplyReader, smtplib.SMTP]:
    smtp, reader = ours(chunks, error)
    try:
        got: list = list(reader.replies(count))
    except smtplib.SMTPException as exc:
        got = [*smtplib_reads(b"".join(chunks), reader.complete, error)[:reader.complete], (type(exc), exc.args)]
    return got, reader, smtp


STREAMS = [
    b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n",
    b"250-first line\r\n250-second\r\n250 last\r\n550 5.1.1 no\r\n503 5.5.1 need RCPT\r\n",
    b"550-5.1.1 The email account that you tried to reach does not exist.\r\n550 5.1.1 Please try again\r\n"
    b"250 ok\r\n354 go\r\n",
    b"250 bare line feeds\n250-and\n250 more\n354 go ahead\n",
    b"250\r\n250 \r\n354\r\n",                    # no text, a space, no text
    b"250 ok  \t \r\n421-4.7.0 closing\r\n421 4.7.0 bye\r\n250 x\r\n",
    b"abc not a code\r\n250 ok\r\n354 go\r\n",    # code -1, the reply ends at that line
    b"25x-broken\r\n250 ok\r\n354 go\r\n",
    b"250-x\r\nzzz not a code either\r\n250 y\r\n354 z\r\n",
    b" 25 leading space\r\n+25 sign\r\n2_5 underscore\r\n",  # whatever int() accepts, as smtplib
    b"250 ok\r\n250 ok\r\n",                      # the connection ends before the third
    b"250 ok\r\n250-more to come\r\n",            # ends inside a multi-line reply
    b"250 ok\r\n250 partial last line",           # ends in the middle of a line
    b"",                                          # ends at once
    b"250 " + b"x" * (_MAXLINE - 6) + b"\r\n250 ok\r\n354 go\r\n",    # exactly the longest line
    b"250 " + b"x" * (_MAXLINE - 5) + b"\r\n250 ok\r\n354 go\r\n",    # one byte too long
    b"250 ok\r\n250 " + b"y" * (_MAXLINE + 50) + b"\r\n354 go\r\n",  # too long, no LF in reach
    b"250 ok\r\n250 ok\r\n354 go\r\n250 2.0.0 queued\r\n",           # more than asked: kept for later
]


def splits(stream: bytes) -> Iterable[list[bytes]]:
    yield [stream]
    if len(stream) < 400:
        for cut in range(1, len(stream)):
            yield [stream[:cut], stream[cut:]]
        yield [bytes([b]) for b in stream]
    else:
        for cut in (1, 3, 4, 100, _MAXLINE - 1, _MAXLINE, _MAXLINE + 1, len(stream) - 2):
            yield [stream[:cut], stream[cut:]]


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("count", [1, 2, 3])
def test_replies_are_what_getreply_reads_however_the_bytes_arrive(stream: bytes, count: int) -> None:
    expected = smtplib_reads(stream, count)
    for chunks in splits(stream):
        got, reader, smtp = our_reads(chunks, count)
        assert got == expected, chunks
        failed = isinstance(got[-1][0], type)
        assert reader.complete == len(got) - failed
        assert (smtp.sock is None) == failed, "closed exactly when smtplib closes"


@pytest.mark.parametrize("stream", STREAMS)
def test_what_is_left_after_replies_is_what_smtplib_reads_next(stream: bytes) -> None:
    expected = smtplib_reads(stream, 4)
    for chunks in splits(stream):
        smtp, reader = ours(chunks)
        got: list = []
        try:
            reader.complete = 0
            got.extend(reader.replies(2))
            reader.complete = 0
            got.append(smtp.getreply())  # smtplib, through reader.readline
            got.extend(reader.replies(1))
        except smtplib.SMTPException as exc:
            # replies() raises, dropping the replies it had read before: only their number is kept
            got += expected[len(got):len(got) + reader.complete] + [(type(exc), exc.args)]
        assert got == expected[:len(got)], chunks
        assert len(got) == len(expected)


@pytest.mark.parametrize("error", [TimeoutError("timed out"), ConnectionResetError(104, "Connection reset by peer")])
def test_a_socket_error_closes_the_session_and_stays_the_context(error: OSError) -> None:
    smtp, reader = ours([b"250 ok\r\n250-part"], error)
    with pytest.raises(smtplib.SMTPServerDisconnected) as lost:
        reader.replies(3)
    assert str(lost.value) == f"Connection unexpectedly closed: {error}"
    assert lost.value.__context__ is error  # how the transport tells a timeout from a drop
    assert reader.complete == 1 and smtp.sock is None
    expected = smtplib_reads(b"250 ok\r\n250-part", 3, error)
    assert expected[-1] == (smtplib.SMTPServerDisconnected, (f"Connection unexpectedly closed: {error}",))


def test_one_recv_serves_a_whole_group() -> None:
    smtp, reader = ours([b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n", b"250 2.0.0 queued\r\n"])
    assert list(reader.replies(3)) == [(250, b"2.1.0 Ok"), (250, b"2.1.5 Ok"), (354, b"go")]
    sock = smtp.sock
    assert isinstance(sock, FakeSocket) and sock.recvs == 1
    assert reader.replies(1) == [(250, b"2.0.0 queued")]


@pytest.mark.parametrize("limit", [-1, 1, 5, 9, 100])
def test_readline_is_buffered_readers(limit: int) -> None:
    stream = b"250-one\r\n250 two\r\nno line break at the end"
    reference = io.BufferedReader(io.BytesIO(stream))
    for chunks in splits(stream):
        _, reader = ours(chunks)
        lines = [reader.readline(limit) for _ in range(12)]
        reference.seek(0)
        assert lines == [reference.readline(limit) for _ in range(12)], chunks


def test_a_group_read_before_is_read_the_same_and_only_for_its_count() -> None:
    group = b"250 2.1.0 sender ok\r\n250 2.1.5 recipient ok\r\n354 send it\r\n"
    expected = [(250, b"2.1.0 sender ok"), (250, b"2.1.5 recipient ok"), (354, b"send it")]
    for _ in range(3):  # parsed, then remembered
        _, reader = ours([group])
        assert list(reader.replies(3)) == expected and reader.complete == 3
    smtp, reader = ours([group])
    assert list(reader.replies(2)) == expected[:2]
    assert smtp.getreply() == expected[2]
