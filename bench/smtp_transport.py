#!/usr/bin/env python
"""CPU per email of ``SMTPTransport.send`` against Postfix's smtp-sink (PIPELINING offered).

Sends N pre-built personalized messages (~14 KB, quoted-printable bodies) over one connection,
five times; prints the client's CPU time per email (process time, median of the 5 runs) (and of it the
user time) and wall-clock emails/s. The sink is Postfix's ``smtp-sink`` (C, a separate process; see
``bench/send_pipeline.py``: ``postfix_sink()``), or aiosmtpd with ``--sink aiosmtpd``; with
``--sink none`` a scripted socket answers in-process (the transport's Python alone).
Run: ``.venv/bin/python bench/smtp_transport.py [-n 5000]``.
"""
from __future__ import annotations

import argparse
import binascii
import io
import resource
import smtplib
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from harness import free_port  # noqa: E402
from send_pipeline import start_sink  # noqa: E402

from nurture_mail.mail.transport import SMTPSettings, SMTPTransport  # noqa: E402

RUNS = 5


def messages(n: int) -> list[tuple[str, bytes]]:
    """Personalized messages as a nurture email is now written (multipart/alternative, both
    bodies quoted-printable: dots on many lines, CRLF), built here so that older versions of
    the package can be measured with the very same bytes."""
    paragraph = ("<p style=\"margin:0 0 16px\">Teams that move their nightly batch jobs to autoscaling "
                 "workers cut their bill by a third. See <a href=\"https://track.northwind.example/c/{token}\">"
                 "how Ünïcode &amp; Co. did it</a>.</p>\n")
    out = []
    for i in range(n):
        to = f"lead{i:06d}@bench.example"
        token = f"WzEwMDAwMDAsMzExLCJodHRwczovL25vcnRod2luZC5leGFtcGxlL3JlcG9ydHMiXQ.{i:043d}"
        html = f"<html><body><p>Hello Zoë {i},</p>\n" + paragraph.format(token=token) * 28 + "</body></html>\n"
        text = f"Hello Zoë {i},\n\n" + ("Teams that move their nightly batch jobs to autoscaling workers cut their "
                                         f"bill by a third. See https://track.northwind.example/c/{token}\n") * 16
        head = (f"From: Northwind Cloud <nurture@northwind.example>\r\nTo: Zoë {i} <{to}>\r\n"
                f"Subject: Zoë {i}, what your compute bill hides\r\nDate: Mon, 02 Mar 2026 09:30:00 +0000\r\n"
                f"Message-ID: <d{i}.0123456789abcdef@northwind.example>\r\nMIME-Version: 1.0\r\n"
                f"List-Unsubscribe: <https://track.northwind.example/u/{token}>\r\n"
                'Content-Type: multipart/alternative; boundary="=_b"\r\n\r\n')
        parts = [head.encode("utf-8")]
        for subtype, body in (("plain", text), ("html", html)):
            parts.append(f'--=_b\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
                         "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode())
            parts.append(binascii.b2a_qp(body.replace("\n", "\r\n").encode("utf-8"), istext=True) + b"\r\n")
        parts.append(b"--=_b--\r\n")
        out.append((to, b"".join(parts)))
    return out


class ScriptedSocket:
    """``--sink none``: a socket that answers as smtp-sink does, at once and in-process, so the
    figure is the transport's own Python, without system calls or a server to wait for."""

    GROUP = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"

    def __init__(self) -> None:
        self.pending = [b"220 sink ESMTP\r\n"]

    def sendall(self, data: bytes) -> None:
        if data.startswith((b"EHLO", b"ehlo")):
            self.pending.append(b"250-sink\r\n250-PIPELINING\r\n250 SIZE 102400000\r\n")
        elif data.endswith(b"\r\nDATA\r\n"):
            self.pending.append(self.GROUP)
        elif data.endswith(b"\r\n.\r\n"):
            self.pending.append(b"250 2.0.0 Ok\r\n")
        else:
            self.pending.append(b"221 Bye\r\n" if data.upper().startswith(b"QUIT") else b"250 Ok\r\n")

    def recv(self, size: int) -> bytes:
        return self.pending.pop(0) if self.pending else b""

    def recv_into(self, buffer, size: int = 0) -> int:  # type: ignore[no-untyped-def]
        data = self.recv(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def makefile(self, mode: str) -> io.BufferedReader:
        socket = self

        class Raw(io.RawIOBase):
            def readable(self) -> bool:
                return True

            def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
                return socket.recv_into(buffer)

        return io.BufferedReader(Raw())

    def close(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="emails per run (default 5000)")
    parser.add_argument("--sink", choices=["postfix", "aiosmtpd", "none"], default="postfix")
    args = parser.parse_args()
    batch = messages(args.n)
    port = free_port()
    sink = None
    if args.sink == "none":
        smtplib.SMTP._get_socket = lambda *_: ScriptedSocket()  # type: ignore[method-assign]
    else:
        sink = start_sink(args.sink, port)
    try:
        cpu, user, rates = [], [], []
        with SMTPTransport(SMTPSettings.from_url(f"smtp://127.0.0.1:{port}")) as transport:
            transport.open()
            assert transport.pipelining, "the sink should offer PIPELINING"
            for _ in range(RUNS):
                wall, start = time.perf_counter(), time.process_time()
                user_start = resource.getrusage(resource.RUSAGE_SELF).ru_utime
                for to, data in batch:
                    transport.send("bounces+1-0123456789@northwind.example", to, data)
                cpu.append((time.process_time() - start) / args.n * 1e6)
                user.append((resource.getrusage(resource.RUSAGE_SELF).ru_utime - user_start) / args.n * 1e6)
                rates.append(args.n / (time.perf_counter() - wall))
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait()
    size = sum(len(d) for _, d in batch) / len(batch)
    print(f"SMTPTransport.send, {args.sink} sink, {args.n:,} emails of {size / 1000:.1f} KB, one connection:")
    print(f"  {statistics.median(cpu):6.1f} µs CPU per email (median of {RUNS}; runs: "
          f"{', '.join(f'{c:.1f}' for c in cpu)}; user {statistics.median(user):.1f}, the rest in the kernel),  "
          f"{statistics.median(rates):7.0f} emails/s")


if __name__ == "__main__":
    main()
