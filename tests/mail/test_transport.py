"""The SMTP transport against a real server (aiosmtpd, tests/mail/conftest.py)."""
from __future__ import annotations

import email
import re
import time
from datetime import UTC, datetime
from email import policy
from typing import TYPE_CHECKING

import pytest

from nurture_mail.mail.mime import OutgoingEmail, build_message, message_id_for
from nurture_mail.mail.transport import (
    PermanentFailure,
    SMTPSettings,
    SMTPTransport,
    TemporaryFailure,
)

if TYPE_CHECKING:  # the fixtures' type; conftest modules are not imported by name at run time
    from conftest import RelayServer

SENDER = "bounces@northwind.example"


def message(n: int = 1, **changes: object) -> bytes:
    fields: dict = {
        "from_addr": "nurture@northwind.example", "from_name": "Northwind Cloud",
        "to_addr": f"lead{n}@customer.example", "to_name": f"Zoë Lead {n}",
        "subject": f"Hello {n}: what your compute bill hides", "html": f"<p>Hello {n} 👋</p>\n" * 200,
        "text": f"Hello {n}\n" * 200, "message_id": message_id_for(n, b"secret", "northwind.example"),
        "date": datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
    }
    fields.update(changes)
    return build_message(OutgoingEmail(**fields))


def transport_for(server: RelayServer, **params: str) -> SMTPTransport:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return SMTPTransport(SMTPSettings.from_url(server.url + (f"?{query}" if query else ""), timeout=5))


# -- URLs --------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, expected", [
    ("smtp://mail.example.com", {"host": "mail.example.com", "port": 25, "security": "none", "username": None, "password": None}),
    ("smtp://mail.example.com:2525", {"port": 2525, "security": "none"}),
    ("smtp://mail.example.com?starttls=1", {"port": 25, "security": "starttls-if-offered"}),
    ("smtp://mail.example.com?starttls=true", {"security": "starttls-if-offered"}),
    ("smtp://mail.example.com?starttls=0", {"security": "none"}),
    ("smtp+starttls://mail.example.com", {"port": 587, "security": "starttls"}),
    ("smtp+starttls://mail.example.com?starttls=1", {"port": 587, "security": "starttls"}),
    ("SMTP+STARTTLS://Mail.Example.COM:2587", {"host": "mail.example.com", "port": 2587, "security": "starttls"}),
    ("smtps://mail.example.com", {"port": 465, "security": "tls"}),
    ("smtps://mail.example.com:4650/", {"port": 4650, "security": "tls"}),
    ("smtps://apikey:s3cr%40t%3A%2F@smtp.sendgrid.net",
     {"host": "smtp.sendgrid.net", "username": "apikey", "password": "s3cr@t:/", "security": "tls"}),
    ("smtp://user%40example.com:p%20w@127.0.0.1:1025", {"username": "user@example.com", "password": "p w", "port": 1025}),
    ("smtp://user@mail.example.com", {"username": "user", "password": None}),
    ("smtp://[::1]:2525", {"host": "::1", "port": 2525}),
    ("smtp://mail.example.com?timeout=2.5", {"timeout": 2.5}),
    ("smtp://mail.example.com?ehlo=sender.example", {"local_hostname": "sender.example"}),
    ("smtp://mail.example.com", {"timeout": 30, "local_hostname": None}),
])
def test_url_forms(url: str, expected: dict) -> None:
    settings = SMTPSettings.from_url(url)
    assert {key: getattr(settings, key) for key in expected} == expected


def test_url_timeout_argument() -> None:
    assert SMTPSettings.from_url("smtp://h", timeout=7).timeout == 7
    assert SMTPSettings.from_url("smtp://h?timeout=3", timeout=7).timeout == 3


@pytest.mark.parametrize("url, complaint", [
    ("http://mail.example.com", "unknown scheme http://"),
    ("mail.example.com:25", "unknown scheme"),
    ("mail.example.com", "unknown scheme"),
    ("", "unknown scheme"),
    ("smtp://", "no host"),
    ("smtp://:25", "no host"),
    ("smtp://mail.example.com:0", "port must be a number from 1 to 65535"),
    ("smtp://mail.example.com:65536", "port must be a number from 1 to 65535"),
    ("smtp://mail.example.com:smtp", "port must be a number from 1 to 65535"),
    ("smtp://mail.example.com:-1", "port must be a number from 1 to 65535"),
    ("smtp://mail.example.com/inbox", "unexpected path"),
    ("smtp://mail.example.com?tls=1", "unknown parameter 'tls'"),
    ("smtp://mail.example.com?starttls=maybe", "starttls must be 1 or 0"),
    ("smtps://mail.example.com?starttls=1", "contradicts smtps://"),
    ("smtp+starttls://mail.example.com?starttls=0", "contradicts smtp+starttls://"),
    ("smtp://mail.example.com?timeout=soon", "timeout must be a number"),
    ("smtp://mail.example.com?timeout=0", "timeout must be positive"),
    ("smtp://:secret@mail.example.com", "password without a user name"),
])
def test_bad_urls_are_refused_clearly(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=f"^SMTP URL .*{re.escape(complaint)}"):
        SMTPSettings.from_url(url)


def test_passwords_stay_out_of_messages_and_repr() -> None:
    with pytest.raises(ValueError) as refused:
        SMTPSettings.from_url("smtp://user:hunter2@mail.example.com:99999")
    assert "hunter2" not in str(refused.value)
    assert "user:***@mail.example.com" in str(refused.value)
    assert "hunter2" not in repr(SMTPSettings.from_url("smtp://user:hunter2@mail.example.com"))


# -- delivery ----------------------------------------------------------------------------------

def test_many_messages_over_one_connection_arrive_intact(relay: RelayServer) -> None:
    sent = [message(n) for n in range(200)]
    with transport_for(relay) as transport:
        for n, data in enumerate(sent):
            transport.send(SENDER, f"lead{n}@customer.example", data)
    assert [r.data for r in relay.received] == sent
    assert [r.rcpt_tos for r in relay.received] == [(f"lead{n}@customer.example",) for n in range(200)]
    assert {r.mail_from for r in relay.received} == {SENDER}
    assert len({r.peer for r in relay.received}) == 1, "one connection for the whole batch"
    assert relay.received[7].mail_options == (f"SIZE={len(sent[7])}",)
    parsed = email.message_from_bytes(relay.received[7].data, policy=policy.default)
    assert parsed["To"].addresses[0].display_name == "Zoë Lead 7"
    assert parsed.get_body(("plain",)).get_content() == "Hello 7\r\n" * 200


def test_dot_stuffing_and_null_sender(relay: RelayServer) -> None:
    data = b"Subject: dots\r\n\r\n.\r\n.leading dot\r\n..two dots\r\nlast line without a dot\r\n"
    with transport_for(relay) as transport:
        transport.send("", "postmaster@customer.example", data)
    (received,) = relay.received
    assert received.data == data
    assert received.mail_from == "<>"


@pytest.mark.parametrize("reply, failure, code, text", [
    ("451 4.3.0 Mailbox temporarily unavailable", TemporaryFailure, 451, "4.3.0 Mailbox temporarily unavailable"),
    ("452 4.2.2 Mailbox full", TemporaryFailure, 452, "4.2.2 Mailbox full"),
    ("550 5.1.1 No such user here", PermanentFailure, 550, "5.1.1 No such user here"),
    ("553 5.1.3 Bad recipient address syntax", PermanentFailure, 553, "5.1.3 Bad recipient address syntax"),
])
def test_refused_recipient_then_the_next_message_goes_through(
    relay: RelayServer, reply: str, failure: type, code: int, text: str,
) -> None:
    with transport_for(relay) as transport:
        transport.send(SENDER, "first@customer.example", message(1))
        relay.handler.answer_rcpt(reply)
        with pytest.raises(failure) as refused:
            transport.send(SENDER, "refused@customer.example", message(2))
        transport.send(SENDER, "next@customer.example", message(3))
    assert (refused.value.code, refused.value.reply, refused.value.stage) == (code, text, "rcpt")
    assert isinstance(refused.value, TemporaryFailure if code < 500 else PermanentFailure)
    assert [r.rcpt_tos for r in relay.received] == [("first@customer.example",), ("next@customer.example",)]
    assert relay.received[1].data == message(3)
    assert relay.received[0].peer == relay.received[1].peer, "still the same connection"


@pytest.mark.parametrize("reply, failure, code", [
    ("451 4.7.1 Greylisted, try again in 5 minutes", TemporaryFailure, 451),
    ("554 5.7.1 Message rejected as spam", PermanentFailure, 554),
])
def test_refused_at_data_then_the_next_message_goes_through(
    relay: RelayServer, reply: str, failure: type, code: int,
) -> None:
    relay.handler.answer_data(reply, times=2)
    with transport_for(relay) as transport:
        for n in (1, 2):
            with pytest.raises(failure) as refused:
                transport.send(SENDER, f"lead{n}@customer.example", message(n))
            assert (refused.value.code, refused.value.reply, refused.value.stage) == (code, reply[4:], "data")
        transport.send(SENDER, "lead3@customer.example", message(3))
        transport.send(SENDER, "lead4@customer.example", message(4))
    assert [r.data for r in relay.received] == [message(3), message(4)]
    assert relay.received[0].peer == relay.received[1].peer


def test_each_outcome_of_a_mixed_batch_belongs_to_its_own_message(relay: RelayServer) -> None:
    """Refusals at RCPT and after the content, in a row and between acceptances, over one
    connection: no reply is left over to be read as the next message's."""
    plan = {2: ("rcpt", "550 5.1.1 No such user"), 3: ("data", "451 4.7.1 Greylisted"),
            4: ("data", "554 5.7.1 Spam"), 7: ("rcpt", "452 4.2.2 Mailbox full"), 9: ("data", "552 5.3.4 Too big")}
    outcomes = []
    with transport_for(relay) as transport:
        for n in range(12):
            stage, reply = plan.get(n, ("", ""))
            if stage == "rcpt":
                relay.handler.answer_rcpt(reply)
            elif stage == "data":
                relay.handler.answer_data(reply)
            try:
                transport.send(SENDER, f"lead{n}@customer.example", message(n))
                outcomes.append((n, "sent"))
            except (TemporaryFailure, PermanentFailure) as refused:
                outcomes.append((n, f"{refused.stage} {refused.code} {refused.reply}"))
    assert outcomes == [(n, f"{plan[n][0]} {plan[n][1]}" if n in plan else "sent") for n in range(12)]
    assert [r.data for r in relay.received] == [message(n) for n in range(12) if n not in plan]
    assert len({r.peer for r in relay.received}) == 1


def test_failures_are_exceptions_with_readable_text(relay: RelayServer) -> None:
    relay.handler.answer_rcpt("550 5.1.1 No such user")
    with transport_for(relay) as transport, pytest.raises(PermanentFailure, match=r"^550 5\.1\.1 No such user$"):
        transport.send(SENDER, "gone@customer.example", message())


def test_reconnects_after_the_server_restarts(relay: RelayServer) -> None:
    with transport_for(relay) as transport:
        transport.send(SENDER, "before@customer.example", message(1))
        relay.restart()  # drops the connection the transport holds
        transport.send(SENDER, "after@customer.example", message(2))
        transport.send(SENDER, "after2@customer.example", message(3))
    assert [r.data for r in relay.received] == [message(1), message(2), message(3)]
    first, second, third = (r.peer for r in relay.received)
    assert first != second == third


def test_a_connection_dropped_once_is_reopened_and_the_message_retried(relay: RelayServer) -> None:
    with transport_for(relay) as transport:
        transport.send(SENDER, "a@customer.example", message(1))
        relay.handler.drop_at_mail(1)
        transport.send(SENDER, "b@customer.example", message(2))
    assert [r.data for r in relay.received] == [message(1), message(2)]
    assert relay.received[0].peer != relay.received[1].peer


def test_a_connection_dropped_twice_is_a_temporary_failure(relay: RelayServer) -> None:
    relay.handler.drop_at_mail(2)
    with transport_for(relay) as transport:
        with pytest.raises(TemporaryFailure) as failed:
            transport.send(SENDER, "a@customer.example", message(1))
        assert (failed.value.code, failed.value.stage) == (None, "mail")
        assert "connection lost" in failed.value.reply
        transport.send(SENDER, "b@customer.example", message(2))  # and then it recovers
    assert [r.rcpt_tos for r in relay.received] == [("b@customer.example",)]


def test_421_means_a_new_connection_for_the_same_message(relay: RelayServer) -> None:
    relay.handler.answer_rcpt("421 4.7.0 Too many messages on this connection")
    with transport_for(relay) as transport:
        transport.send(SENDER, "a@customer.example", message(1))
    assert [r.rcpt_tos for r in relay.received] == [("a@customer.example",)]

    relay.handler.reset()
    relay.handler.answer_rcpt("421 4.3.2 Shutting down", times=2)
    with transport_for(relay) as transport, pytest.raises(TemporaryFailure) as failed:
        transport.send(SENDER, "b@customer.example", message(2))
    assert (failed.value.code, failed.value.reply) == (421, "4.3.2 Shutting down")


def test_connection_refused_is_temporary(closed_port: int) -> None:
    transport = SMTPTransport(SMTPSettings.from_url(f"smtp://127.0.0.1:{closed_port}", timeout=5))
    with pytest.raises(TemporaryFailure) as failed:
        transport.send(SENDER, "a@customer.example", message())
    assert (failed.value.code, failed.value.stage) == (None, "connect")
    assert f"cannot connect to 127.0.0.1:{closed_port}" in failed.value.reply
    with pytest.raises(TemporaryFailure):
        transport.open()
    transport.close()


def test_server_gone_for_good_is_temporary(relay: RelayServer) -> None:
    with transport_for(relay) as transport:
        transport.send(SENDER, "a@customer.example", message(1))
        relay.stop()
        try:
            with pytest.raises(TemporaryFailure) as failed:
                transport.send(SENDER, "b@customer.example", message(2))
        finally:
            relay.start()
        assert failed.value.code is None
        transport.send(SENDER, "c@customer.example", message(3))  # back: it reconnects
    assert [r.rcpt_tos for r in relay.received] == [("a@customer.example",), ("c@customer.example",)]


def test_a_server_that_never_answers_times_out(silent_port: int) -> None:
    transport = SMTPTransport(SMTPSettings.from_url(f"smtp://127.0.0.1:{silent_port}?timeout=0.3"))
    started = time.monotonic()
    with pytest.raises(TemporaryFailure) as failed:
        transport.send(SENDER, "a@customer.example", message())
    assert time.monotonic() - started < 3
    assert (failed.value.code, failed.value.stage) == (None, "connect")


def test_no_reply_to_data_in_time_is_temporary_and_not_retried(relay: RelayServer) -> None:
    # A server this slow would likely be as slow again, and a late acceptance may follow: the
    # transport gives up on the session without an immediate retry (a retry would go through
    # here, since only the first DATA is delayed); the caller retries later.
    relay.handler.delay_data(0.6)
    transport = SMTPTransport(SMTPSettings.from_url(relay.url, timeout=0.3))
    with pytest.raises(TemporaryFailure, match="no reply within 0.3 s") as failed:
        transport.send(SENDER, "slow@customer.example", message(1))
    assert (failed.value.code, failed.value.stage) == (None, "data")
    transport.send(SENDER, "next@customer.example", message(2))  # on a new connection
    transport.close()
    assert [r.rcpt_tos for r in relay.received] == [("next@customer.example",)]


def test_starttls_required_but_not_offered(relay: RelayServer) -> None:
    transport = SMTPTransport(SMTPSettings.from_url(f"smtp+starttls://{relay.host}:{relay.port}", timeout=5))
    with pytest.raises(TemporaryFailure, match="does not offer STARTTLS") as failed:
        transport.send(SENDER, "a@customer.example", message())
    assert (failed.value.code, failed.value.stage) == (None, "connect")
    assert relay.received == []


def test_starttls_if_offered_goes_on_in_plain_text_without_it(relay: RelayServer) -> None:
    with transport_for(relay, starttls="1") as transport:
        transport.send(SENDER, "a@customer.example", message())
    assert len(relay.received) == 1


def test_implicit_tls_against_a_plain_server_is_temporary(relay: RelayServer) -> None:
    transport = SMTPTransport(SMTPSettings.from_url(f"smtps://{relay.host}:{relay.port}", timeout=5))
    with pytest.raises(TemporaryFailure) as failed:
        transport.send(SENDER, "a@customer.example", message())
    assert (failed.value.code, failed.value.stage) == (None, "connect")


def test_login_where_the_server_offers_no_auth_is_temporary(relay: RelayServer) -> None:
    transport = SMTPTransport(SMTPSettings.from_url(f"smtp://user:pw@{relay.host}:{relay.port}", timeout=5))
    with pytest.raises(TemporaryFailure, match="AUTH") as failed:
        transport.send(SENDER, "a@customer.example", message())
    assert (failed.value.code, failed.value.stage) == (None, "connect")


@pytest.mark.parametrize("sender, recipient, complaint", [
    (SENDER, "a@customer.example\r\nRCPT TO:<victim@example.com>", "^recipient: line break"),
    (SENDER + "\n", "a@customer.example", "^envelope sender: line break"),
    (SENDER, "zoë@customer.example", "^recipient: non-ASCII"),
])
def test_envelope_injection_is_refused_before_anything_is_sent(
    relay: RelayServer, sender: str, recipient: str, complaint: str,
) -> None:
    with transport_for(relay) as transport:
        with pytest.raises(ValueError, match=complaint):
            transport.send(sender, recipient, message())
        transport.send(SENDER, "ok@customer.example", message())
    assert [r.rcpt_tos for r in relay.received] == [("ok@customer.example",)]


def test_close_is_idempotent_and_the_transport_reopens(relay: RelayServer) -> None:
    transport = transport_for(relay)
    transport.close()
    transport.open()
    transport.open()
    transport.send(SENDER, "a@customer.example", message(1))
    transport.close()
    transport.close()
    transport.send(SENDER, "b@customer.example", message(2))
    transport.close()
    assert len(relay.received) == 2
    assert relay.received[0].peer != relay.received[1].peer


# -- PIPELINING, exactly (a scripted server on a real socket) ---------------------------------

class ScriptedServer:
    """Offers PIPELINING and answers nothing of a transaction until MAIL, RCPT and DATA have all
    arrived: a client that waits for the MAIL reply before sending RCPT gets no reply at all."""

    def __init__(self, replies: bytes, content_reply: bytes = b"250 2.0.0 queued\r\n", chunk: int | None = None) -> None:
        import socket
        import threading

        self.replies, self.content_reply = replies, content_reply
        #: Replies go out in pieces of this many bytes, a moment apart (each its own read).
        self.chunk = chunk
        self.lines: list[bytes] = []
        self.grouped = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self._listener.accept()
        conn.settimeout(5)
        buffer = b""

        def line() -> bytes:
            nonlocal buffer
            while b"\r\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    raise ConnectionError("client went away")
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n")
            self.lines.append(head)
            return head

        with conn:
            conn.sendall(b"220 scripted ESMTP\r\n")
            line()  # EHLO
            conn.sendall(b"250-scripted\r\n250-PIPELINING\r\n250 SIZE 10000000\r\n")
            mail, rcpt, data = line(), line(), line()  # no reply before all three are here
            self.grouped = mail.startswith(b"MAIL") and rcpt.startswith(b"RCPT") and data == b"DATA"
            self._send(conn, self.replies)
            if self.replies.endswith(b"354 go ahead\r\n"):
                while line() != b".":
                    pass
                self._send(conn, self.content_reply)
            while True:
                try:
                    command = line()
                except (ConnectionError, OSError):
                    return
                conn.sendall(b"221 bye\r\n" if command.upper() == b"QUIT" else b"250 2.0.0 ok\r\n")
                if command.upper() == b"QUIT":
                    return

    def _send(self, conn, data: bytes) -> None:  # type: ignore[no-untyped-def]
        if self.chunk is None:
            conn.sendall(data)
            return
        for at in range(0, len(data), self.chunk):
            conn.sendall(data[at:at + self.chunk])
            time.sleep(0.002)

    def close(self) -> None:
        self._thread.join(timeout=5)
        self._listener.close()


def _scripted_transport(server: ScriptedServer) -> SMTPTransport:
    return SMTPTransport(SMTPSettings.from_url(f"smtp://127.0.0.1:{server.port}", timeout=3))


def test_mail_rcpt_and_data_go_in_one_group_and_the_content_after_354() -> None:
    server = ScriptedServer(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n")
    data = b"Subject: piped\r\n\r\n.dot first\r\nbody\r\n"
    with _scripted_transport(server) as transport:
        transport.send(SENDER, "lead@customer.example", data)
        assert transport.pipelining
    server.close()
    assert server.grouped
    assert server.lines[1:4] == [f"MAIL FROM:<{SENDER}> SIZE={len(data)}".encode(), b"RCPT TO:<lead@customer.example>",
                                 b"DATA"]
    assert server.lines[4:8] == [b"Subject: piped", b"", b"..dot first", b"body"]
    assert [c.upper() for c in server.lines[8:]] == [b".", b"QUIT"]


@pytest.mark.parametrize("replies, stage, code, failure", [
    (b"250 2.1.0 ok\r\n550 5.1.1 no such user\r\n554 5.5.1 no valid recipients\r\n", "rcpt", 550, PermanentFailure),
    (b"250 2.1.0 ok\r\n450 4.2.1 try later\r\n503 5.5.1 need RCPT\r\n", "rcpt", 450, TemporaryFailure),
    (b"553 5.1.8 bad sender\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n", "mail", 553, PermanentFailure),
    (b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n451 4.3.0 not now\r\n", "data", 451, TemporaryFailure),
    (b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n554 5.3.4 too big\r\n", "data", 554, PermanentFailure),
    # DATA answered 250, not 354: no content went, so the message was not taken, whatever the code.
    (b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.0.0 ok\r\n", "data", 250, TemporaryFailure),
    (b"452-4.3.1 out of\r\n452 4.3.1 storage\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n", "mail", 452,
     TemporaryFailure),
    (b"250 2.1.0 ok\r\n550-5.1.1 no such\r\n550-5.1.1 user\r\n550 5.1.1 here\r\n554 5.5.1 no recipients\r\n",
     "rcpt", 550, PermanentFailure),
])
@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_a_refusal_in_the_group_sends_no_content_and_resets(replies, stage, code, failure, chunk) -> None:
    server = ScriptedServer(replies, chunk=chunk)
    with _scripted_transport(server) as transport, pytest.raises(failure) as refused:
        transport.send(SENDER, "lead@customer.example", b"Subject: x\r\n\r\nsecret body\r\n")
    server.close()
    assert (refused.value.stage, refused.value.code) == (stage, code)
    assert ("not answered 354" in refused.value.reply) == (code == 250)
    assert server.grouped
    assert [c.upper() for c in server.lines[4:]] == [b"RSET", b"QUIT"]


@pytest.mark.parametrize("chunk", [None, 1, 5])
def test_replies_split_across_reads_and_multi_line_replies_are_read_whole(chunk) -> None:
    server = ScriptedServer(b"250-2.1.0 sender\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n",
                            content_reply=b"250-2.0.0 queued\r\n250 2.0.0 as 4F2A9\r\n", chunk=chunk)
    data = b"Subject: piped\r\n\r\nbody\r\n"
    with _scripted_transport(server) as transport:
        transport.send(SENDER, "lead@customer.example", data)
        transport.check_alive(idle_after=0)  # NOOP: read through the same buffer, nothing left over
        assert transport.is_open
    server.close()
    assert server.grouped
    assert [c.upper() for c in server.lines[4:]] == [b"SUBJECT: PIPED", b"", b"BODY", b".", b"NOOP", b"QUIT"]


@pytest.mark.parametrize("chunk", [None, 1])
@pytest.mark.parametrize("content_reply, failure, code, text", [
    (b"554-5.7.1 rejected\r\n554 5.7.1 as spam\r\n", PermanentFailure, 554, "5.7.1 rejected\n5.7.1 as spam"),
    (b"451 4.7.1 greylisted, come back later\r\n", TemporaryFailure, 451, "4.7.1 greylisted, come back later"),
    (b"552 5.3.4 message too big\r\n", PermanentFailure, 552, "5.3.4 message too big"),
])
def test_a_refusal_after_the_final_dot_is_this_messages_and_resets(content_reply, failure, code, text, chunk) -> None:
    server = ScriptedServer(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n", content_reply=content_reply,
                            chunk=chunk)
    with _scripted_transport(server) as transport:
        with pytest.raises(failure) as refused:
            transport.send(SENDER, "lead@customer.example", b"Subject: x\r\n\r\nbody\r\n")
        assert transport.is_open  # RSET was answered: the session goes on
    server.close()
    assert (refused.value.stage, refused.value.code, refused.value.reply) == ("data", code, text)
    assert [c.upper() for c in server.lines[4:]] == [b"SUBJECT: X", b"", b"BODY", b".", b"RSET", b"QUIT"]


@pytest.mark.parametrize("replies, stage", [
    (b"", "mail"),
    (b"250 2.1.0 ok\r\n250-2.1.5 first line of two", "rcpt"),
    (b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n", "data"),
])
def test_a_group_answered_in_part_times_out_at_the_missing_reply(replies, stage) -> None:
    server = ScriptedServer(replies)
    transport = SMTPTransport(SMTPSettings.from_url(f"smtp://127.0.0.1:{server.port}", timeout=0.5))
    with pytest.raises(TemporaryFailure) as failed:
        transport.send(SENDER, "lead@customer.example", b"Subject: x\r\n\r\nbody\r\n")
    assert (failed.value.code, failed.value.stage) == (None, stage)
    assert f"no reply within 0.5 s ({stage.upper()})" in failed.value.reply
    assert not transport.is_open  # not retried: a server this slow would be as slow again
    server.close()


def test_a_server_answering_354_after_refusing_the_recipient_gets_only_the_final_dot() -> None:
    server = ScriptedServer(b"250 2.1.0 ok\r\n550 5.1.1 no such user\r\n354 go ahead\r\n",
                            content_reply=b"554 5.5.1 no valid recipients\r\n")
    with _scripted_transport(server) as transport, pytest.raises(PermanentFailure) as refused:
        transport.send(SENDER, "gone@customer.example", b"Subject: x\r\n\r\nsecret body\r\n")
    server.close()
    assert (refused.value.stage, refused.value.code, refused.value.reply) == ("rcpt", 550, "5.1.1 no such user")
    assert [c.upper() for c in server.lines[4:]] == [b".", b"RSET", b"QUIT"]


# -- a session kept across batches ------------------------------------------------------------

def test_a_kept_session_serves_the_next_batch_on_the_same_connection(relay: RelayServer) -> None:
    from nurture_mail.mail.transport import close_kept, keep_transport, kept_transport

    settings = SMTPSettings.from_url(relay.url, timeout=5)
    first = kept_transport(settings)
    first.send(SENDER, "lead1@customer.example", message(1))
    keep_transport(first)
    second = kept_transport(settings)
    second.send(SENDER, "lead2@customer.example", message(2))
    keep_transport(second)
    close_kept()
    assert second is first
    assert [r.rcpt_tos for r in relay.received] == [("lead1@customer.example",), ("lead2@customer.example",)]
    assert relay.received[0].peer == relay.received[1].peer  # one connection for both batches
    assert not first.is_open  # close_kept said QUIT


def test_a_kept_session_idle_and_dropped_is_found_out_by_noop_and_replaced(relay: RelayServer) -> None:
    from nurture_mail.mail.transport import close_kept, keep_transport, kept_transport

    settings = SMTPSettings.from_url(relay.url, timeout=5)
    transport = kept_transport(settings)
    transport.send(SENDER, "lead1@customer.example", message(1))
    keep_transport(transport)
    relay.restart()  # the server forgets the session while the worker waits for its next job
    transport.last_used -= 60  # idle for a minute
    again = kept_transport(settings)
    assert again is transport and not again.is_open  # NOOP failed: dropped before any message
    again.send(SENDER, "lead2@customer.example", message(2))
    keep_transport(again)
    close_kept()
    assert [r.rcpt_tos[0] for r in relay.received] == ["lead1@customer.example", "lead2@customer.example"]
    assert relay.received[0].peer != relay.received[1].peer


def test_another_relay_gets_its_own_session_and_the_kept_one_is_closed(relay: RelayServer) -> None:
    from nurture_mail.mail.transport import close_kept, keep_transport, kept_transport

    transport = kept_transport(SMTPSettings.from_url(relay.url, timeout=5))
    transport.send(SENDER, "lead1@customer.example", message(1))
    keep_transport(transport)
    other = kept_transport(SMTPSettings.from_url(relay.url, timeout=7))
    assert other is not transport and not transport.is_open
    close_kept()


@pytest.mark.parametrize("data", [b"", b".", b".a\r\n.b\r\n..c", b"a\r\n.\r\nb", b"abc\r\n", b"\r\n.\r\n.", b"x\n.y"])
def test_dot_stuffing_doubles_every_leading_dot_and_ends_with_the_final_dot(data: bytes) -> None:
    from nurture_mail.mail.transport import _dot_stuffed

    stuffed = re.sub(rb"(?m)^\.", b"..", data)
    assert _dot_stuffed(data) == stuffed + (b"" if stuffed.endswith(b"\r\n") else b"\r\n") + b".\r\n"
