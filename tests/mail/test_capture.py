"""The capture server with real SMTP conversations (smtplib) and a real Maildir on disk."""
from __future__ import annotations

import logging
import smtplib
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

import pytest

from nurture_mail.clock import FrozenClock
from nurture_mail.mail.capture import CapturedMessage, CaptureServer, CaptureStore

START = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> CaptureStore:
    return CaptureStore(tmp_path / "inbox")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def server(store: CaptureStore, clock: FrozenClock):
    with CaptureServer(store, clock=clock) as running:
        yield running


def smtp(server: CaptureServer) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, timeout=10)


def alternative(subject: str = "Pricing, explained", to: str = "ana@example.com") -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = Address("Northwind Cloud", "nurture", "northwind.example")
    message["To"] = to
    message["Message-ID"] = "<delivery-42@northwind.example>"
    message.set_content("Hello Ana,\nhere is how pricing works.\n")
    message.add_alternative("<html><body><h1>Pricing</h1><p>Hello Ana</p></body></html>", subtype="html")
    return message


def test_stores_envelope_and_exact_bytes(server: CaptureServer, store: CaptureStore) -> None:
    data = (
        b"From: Northwind <nurture@northwind.example>\r\n"
        b"To: Ana <ana@example.com>\r\n"
        b"Subject: Exact bytes\r\n"
        b"X-Odd:   spacing   kept  \r\n"
        b"\r\n"
        b"first line\r\n"
        b".a line starting with a dot\r\n"
        b"last line without newline"
    )
    with smtp(server) as client:
        refused = client.sendmail("bounces+42@northwind.example", ["ana@example.com", "bcc@example.org"], data)
    assert refused == {}

    assert store.count() == 1
    (captured,) = store.list()
    assert captured.envelope_from == "bounces+42@northwind.example"
    assert captured.rcpt_tos == ["ana@example.com", "bcc@example.org"]
    # smtplib terminates the last line with CRLF before the final dot; nothing else changes.
    assert captured.raw == data + b"\r\n"
    assert captured.received_at == START
    assert captured.received_at.tzinfo is not None
    assert captured.subject == "Exact bytes"
    assert captured.to == "Ana <ana@example.com>"
    assert ("X-Odd", "spacing   kept  ") in captured.headers
    assert store.get(captured.key).raw == captured.raw


def test_non_ascii_subject_and_names(server: CaptureServer, store: CaptureStore) -> None:
    message = EmailMessage()
    message["Subject"] = "Grüße aus Köln: 価格 – 20 % günstiger 📈"
    message["From"] = Address("Zoë Müller-Łukasz", "zoe", "northwind.example")
    message["To"] = Address("José Ñúñez", "jose", "example.com")
    message.set_content("Ça marche, José ✓\n")
    with smtp(server) as client:
        client.send_message(message)

    (captured,) = store.list()
    assert captured.subject == "Grüße aus Köln: 価格 – 20 % günstiger 📈"
    assert captured.from_ == "Zoë Müller-Łukasz <zoe@northwind.example>"
    assert captured.to == "José Ñúñez <jose@example.com>"
    assert captured.text == "Ça marche, José ✓\n"
    assert captured.html is None
    # On the wire the headers were RFC 2047 encoded; the raw bytes keep them so.
    assert b"=?utf-8?" in captured.raw


def test_multipart_alternative_parts(server: CaptureServer, store: CaptureStore) -> None:
    with smtp(server) as client:
        client.send_message(alternative())

    captured = store.list()[0]
    assert captured.message.get_content_type() == "multipart/alternative"
    assert captured.text == "Hello Ana,\nhere is how pricing works.\n"
    assert captured.html == "<html><body><h1>Pricing</h1><p>Hello Ana</p></body></html>\n"
    assert captured.from_ == "Northwind Cloud <nurture@northwind.example>"
    assert captured.message_id == "<delivery-42@northwind.example>"
    names = [name for name, _value in captured.headers]
    assert names[:4] == ["Subject", "From", "To", "Message-ID"]
    assert captured.message is captured.message  # parsed once


@pytest.mark.parametrize("code", [451, 550])
def test_fail_next_refuses_recipients_and_stores_nothing(server: CaptureServer, store: CaptureStore, code: int) -> None:
    server.fail_next(code, "4.7.1 Try again later" if code == 451 else "5.1.1 No such user", times=2)
    for _ in range(2):
        with smtp(server) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.send_message(alternative())
        reply_code, reply = refused.value.recipients["ana@example.com"]
        assert reply_code == code
        assert (b"Try again later" if code == 451 else b"No such user") in reply
    assert store.count() == 0

    with smtp(server) as client:
        client.send_message(alternative())  # the failures were used up
    assert store.count() == 1


def test_fail_next_counts_recipients_not_messages(server: CaptureServer, store: CaptureStore) -> None:
    server.fail_next(550, "5.1.1 No such user")
    with smtp(server) as client:
        refused = client.sendmail("nurture@northwind.example", ["gone@example.com", "ana@example.com"], b"Subject: x\r\n\r\nhi\r\n")
    assert refused == {"gone@example.com": (550, b"5.1.1 No such user")}
    (captured,) = store.list()
    assert captured.rcpt_tos == ["ana@example.com"]


def test_fail_next_at_data(server: CaptureServer, store: CaptureStore) -> None:
    server.fail_next(452, "4.3.1 Insufficient system storage", command="DATA")
    with smtp(server) as client, pytest.raises(smtplib.SMTPDataError) as failed:
        client.send_message(alternative())
    assert failed.value.smtp_code == 452
    assert store.count() == 0


def test_fail_next_rejects_success_codes(server: CaptureServer) -> None:
    with pytest.raises(ValueError, match="400-599"):
        server.fail_next(250, "OK")


def test_two_stores_on_one_directory_see_each_other(tmp_path: Path, clock: FrozenClock) -> None:
    first = CaptureStore(tmp_path / "shared")
    second = CaptureStore(tmp_path / "shared")
    with CaptureServer(first, clock=clock) as server, smtp(server) as client:
        client.send_message(alternative("through the server"))
    key = second.add("a@example.com", ["b@example.com"], b"Subject: direct\r\n\r\nbody\r\n", START + timedelta(seconds=1))

    assert first.count() == second.count() == 2
    assert [m.subject for m in first.list()] == ["direct", "through the server"]
    assert first.get(key).subject == "direct"
    first.clear()
    assert second.count() == 0
    assert second.list() == []


def test_stores_in_several_processes(tmp_path: Path) -> None:
    path = tmp_path / "shared"
    store = CaptureStore(path)
    script = (
        "import sys; from datetime import UTC, datetime; from pathlib import Path\n"
        "from nurture_mail.mail.capture import CaptureStore\n"
        "s = CaptureStore(Path(sys.argv[1]))\n"
        "for i in range(25): s.add('x@example.com', ['y@example.com'], b'Subject: child %d\\r\\n\\r\\n' % i, datetime.now(UTC))\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(path)], cwd=Path(__file__).resolve().parents[2])
    for i in range(25):
        store.add("x@example.com", ["y@example.com"], b"Subject: parent %d\r\n\r\n" % i, datetime.now(UTC))
    assert child.wait(timeout=60) == 0
    subjects = {m.subject for m in store.list()}
    assert subjects == {f"parent {i}" for i in range(25)} | {f"child {i}" for i in range(25)}


def test_list_is_newest_first_and_pages(store: CaptureStore) -> None:
    keys = [store.add("a@example.com", ["b@example.com"], b"Subject: %d\r\n\r\n" % n, START + timedelta(minutes=n)) for n in (2, 0, 1)]
    assert [m.subject for m in store.list()] == ["2", "1", "0"]
    assert [m.subject for m in store.list(limit=1, offset=1)] == ["1"]
    assert store.get(keys[1]).received_at == START
    with pytest.raises(KeyError):
        store.get("no-such-key")


def test_equal_received_times_keep_arrival_order(server: CaptureServer, store: CaptureStore) -> None:
    # The frozen clock stamps every message alike, as a simulated clock stamps a batch.
    with smtp(server) as client:
        for n in range(30):
            client.sendmail("a@example.com", ["b@example.com"], b"Subject: %02d\r\n\r\nx\r\n" % n)
    assert {m.received_at for m in store.list()} == {START}
    assert [m.subject for m in store.list()] == [f"{n:02d}" for n in reversed(range(30))]


def test_envelope_lines_never_mix_with_the_message(store: CaptureStore) -> None:
    data = b"X-Capture-Lines: 99\r\nX-Capture-Rcpt-To: forged@example.com\r\nSubject: looks like ours\r\n\r\nbody\r\n"
    key = store.add("sender with space@example.com", ["Zoë@example.com"], data, START)
    captured = store.get(key)
    assert captured.raw == data
    assert captured.envelope_from == "sender with space@example.com"
    assert captured.rcpt_tos == ["Zoë@example.com"]
    assert captured.subject == "looks like ours"


def test_hooks_see_each_message_and_a_failing_hook_loses_nothing(
    store: CaptureStore, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[CapturedMessage] = []

    def broken(message: CapturedMessage) -> None:
        raise RuntimeError("hook exploded")

    with CaptureServer(store, on_message=[broken, seen.append], clock=clock) as server, smtp(server) as client:
        with caplog.at_level(logging.ERROR, logger="nurture_mail.mail.capture"):
            client.send_message(alternative())
        # Hooks have run by the time the sender has its 250.
        assert [m.subject for m in seen] == ["Pricing, explained"]

    assert store.count() == 1
    assert seen[0].key == store.list()[0].key
    assert seen[0].html is not None
    assert "hook exploded" in caplog.text


def test_port_zero_binds_distinct_free_ports(tmp_path: Path) -> None:
    one, two = CaptureServer(CaptureStore(tmp_path / "1")), CaptureServer(CaptureStore(tmp_path / "2"))
    with one, two:
        assert one.port and two.port and one.port != two.port
        for server in (one, two):
            with smtp(server) as client:
                assert client.noop()[0] == 250
    assert one.port == 0  # back to "any free port" once stopped
