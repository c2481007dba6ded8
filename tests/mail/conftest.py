"""A real SMTP server in-process (aiosmtpd), started once, that records what it receives and
can be told to refuse the next messages at RCPT or DATA, or be restarted on the same port."""
from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Received:
    mail_from: str
    mail_options: tuple[str, ...]
    rcpt_tos: tuple[str, ...]
    data: bytes
    #: The client's (host, port): the same for messages sent over one connection.
    peer: tuple[str, int]


class RecordingHandler:
    """Accepts everything and keeps it, unless told to answer the next messages otherwise.

    ``pipelining``: offer PIPELINING (RFC 2920) in the EHLO reply (aiosmtpd does not by itself;
    it reads commands in order from its buffer, so a pipelined client is served correctly).
    """

    def __init__(self) -> None:
        self.pipelining = False
        self.received: list[Received] = []
        self._rcpt_replies: deque[str] = deque()
        self._data_replies: deque[str] = deque()
        self._mail_drops: deque[bool] = deque()
        self._data_delays: deque[float] = deque()

    def reset(self) -> None:
        self.received.clear()
        self._rcpt_replies.clear()
        self._data_replies.clear()
        self._mail_drops.clear()
        self._data_delays.clear()

    def delay_data(self, seconds: float, times: int = 1) -> None:
        """The next ``times`` messages are accepted, but only after ``seconds`` of silence."""
        self._data_delays.extend([seconds] * times)

    def drop_at_mail(self, times: int = 1) -> None:
        """The next ``times`` MAIL commands get no reply: the server closes the connection."""
        self._mail_drops.extend([True] * times)

    def answer_rcpt(self, reply: str, times: int = 1) -> None:
        """The next ``times`` RCPT commands get ``reply`` (e.g. ``"451 4.3.0 Try later"``)."""
        self._rcpt_replies.extend([reply] * times)

    def answer_data(self, reply: str, times: int = 1) -> None:
        """The next ``times`` messages are refused with ``reply`` at the end of DATA."""
        self._data_replies.extend([reply] * times)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            return [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    # deque.popleft is atomic: the test thread arms replies while the server thread pops them.
    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]) -> str:
        try:
            self._mail_drops.popleft()
        except IndexError:
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
            return "250 2.1.0 OK"
        server.transport.close()
        return "421 4.4.2 Closing"  # never sent: the transport is already closed

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        try:
            return self._rcpt_replies.popleft()
        except IndexError:
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        try:
            return self._data_replies.popleft()
        except IndexError:
            pass
        try:
            await asyncio.sleep(self._data_delays.popleft())
        except IndexError:
            pass
        self.received.append(Received(envelope.mail_from, tuple(envelope.mail_options), tuple(envelope.rcpt_tos),
                                      envelope.content, session.peer))
        return "250 2.0.0 Message accepted"


class _FreePortController(Controller):
    """aiosmtpd's Controller, taught port 0: it learns the port the OS chose before its
    readiness probe connects to it."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class RelayServer:
    def __init__(self) -> None:
        self.handler = RecordingHandler()
        self.host = "127.0.0.1"
        self.port = 0  # the OS chooses at the first start; restarts keep it
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        # A stopped Controller has closed its event loop: every start needs a new one.
        self._controller = _FreePortController(self.handler, hostname=self.host, port=self.port)
        self._controller.start()
        self.port = self._controller.port

    def stop(self) -> None:
        """Stop listening and drop every open connection."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def relay_server() -> Iterator[RelayServer]:
    server = RelayServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["plain", "pipelining"])
def relay(relay_server: RelayServer, request) -> Iterator[RelayServer]:
    """The session's server, running, emptied and answering normally; every test that uses it
    runs twice: without PIPELINING (MAIL, RCPT, DATA each wait for their reply) and with it."""
    if not relay_server.running:  # a test stopped it and could not start it again
        relay_server.start()
    relay_server.handler.reset()
    relay_server.handler.pipelining = request.param == "pipelining"
    yield relay_server
    relay_server.handler.reset()
    relay_server.handler.pipelining = False


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel completes the handshake) but never speaks."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]
