"""The fast signing of the send path writes exactly the strings itsdangerous and hmac write.

Tokens, Message-IDs and VERP addresses of emails already sent must keep verifying, and a
resend must produce the same Message-ID: every string is compared with the one the libraries
themselves make (``URLSafeSerializer``/``Signer``, ``hmac.new``), for ids small and large,
round and repetitive (which zlib compresses), every kind of token and several keys.
"""
from __future__ import annotations

import enum
import hashlib
import hmac
import json
import random
import zlib

import pytest
from itsdangerous import Signer, URLSafeSerializer
from itsdangerous.encoding import base64_encode

from nurture_mail.bounces.verp import delivery_of_message_id, delivery_of_return_path, verp_address
from nurture_mail.keyedmac import KeyedMAC, keyed_mac
from nurture_mail.mail.mime import message_id_for
from nurture_mail.tracking.tokens import Tokens, _incompressible

KEYS = ["key-one", "a much longer secret key, longer than a SHA-256 block of 64 bytes: " * 2, "é-ünicode"]
URLS = [
    "https://northwind.example/reports/cloud-risk-2026",
    "http://x.example/a?b=1&c=%22q%22#frag",
    "https://northwind.example/é/ü?name=Zoë&x=\u2028",
    "https://northwind.example/" + "a" * 1950,
    "https://h.example/" + "0000000000" * 20,
]


def _ids() -> list[int]:
    ids = {0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 2**31 - 1, 2**31, 2**63 - 1, 10**30, 10**30 + 1}
    for digits in range(1, 20):
        ids |= {10**digits, 10**digits - 1, int("1" * digits), int("12" * digits), 5 * 10**digits}
    rnd = random.Random(2026)
    ids |= {rnd.randrange(10 ** rnd.randrange(1, 19)) for _ in range(300)}
    return sorted(ids)


IDS = _ids()


def _reference_signed(key: str, salt: str, payload: object) -> str:
    """How the tokens of emails sent so far were made: a ``URLSafeSerializer`` payload, never
    compressed, signed with HMAC-SHA256."""
    signer = Signer(key, salt=salt, digest_method=hashlib.sha256)
    value = base64_encode(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    return signer.sign(value).decode("ascii")


@pytest.mark.parametrize("key", KEYS)
def test_click_open_and_honeypot_tokens_are_the_bytes_itsdangerous_signs(key):
    tokens = Tokens(key)
    rnd = random.Random(7)
    for delivery_id in IDS:
        url = rnd.choice(URLS)
        link_id = rnd.choice(IDS)
        assert tokens.click(delivery_id, link_id, url) == _reference_signed(
            key, "nurture.click", [delivery_id, link_id, url])
        assert tokens.honeypot(delivery_id) == _reference_signed(key, "nurture.click", [delivery_id, None, None])
        assert tokens.open(delivery_id) == _reference_signed(key, "nurture.open", [delivery_id])


@pytest.mark.parametrize("key", KEYS)
def test_unsubscribe_tokens_are_url_safe_serializer_dumps(key):
    tokens = Tokens(key)
    serializer = URLSafeSerializer(key, salt="nurture.unsubscribe")
    rnd = random.Random(11)
    compressed = 0
    for delivery_id in IDS:
        for lead_id in (rnd.choice(IDS), delivery_id, delivery_id // 2, 1):
            token = tokens.unsubscribe(delivery_id, lead_id)
            assert token == serializer.dumps([delivery_id, lead_id])
            compressed += token.startswith(".")
    assert compressed > 10  # the zlib branch of itsdangerous is exercised too


def test_rotation_signs_with_the_first_key():
    rotated = Tokens("new-key", fallbacks=["old-key"])
    assert rotated.unsubscribe(12, 34) == URLSafeSerializer("new-key", salt="nurture.unsubscribe").dumps([12, 34])
    assert rotated.open(12) == _reference_signed("new-key", "nurture.open", [12])
    assert Tokens(["new-key", "old-key"]).click(1, 2, URLS[0]) == _reference_signed(
        "new-key", "nurture.click", [1, 2, URLS[0]])


class _Number(enum.IntEnum):
    ONE = 1


@pytest.mark.parametrize("odd", [True, _Number.ONE, 10**30, 0])
def test_unusual_ids_take_the_encoders_path(odd):
    """Not a plain int (a bool is written ``true``), or very large: the same bytes as before."""
    tokens = Tokens("key-one")
    assert tokens.open(odd) == _reference_signed("key-one", "nurture.open", [odd])
    assert tokens.honeypot(odd) == _reference_signed("key-one", "nurture.click", [odd, None, None])
    assert tokens.click(odd, odd, URLS[0]) == _reference_signed("key-one", "nurture.click", [odd, odd, URLS[0]])
    assert tokens.unsubscribe(odd, odd) == URLSafeSerializer("key-one", salt="nurture.unsubscribe").dumps([odd, odd])


def test_a_bad_link_is_refused_every_time():
    tokens = Tokens("key-one")
    for _ in range(2):  # the per-link cache must not remember a refusal as a success
        with pytest.raises(ValueError, match="not an absolute http"):
            tokens.click(1, 2, "javascript:alert(1)")


def test_incompressible_never_claims_what_zlib_would_compress():
    """The proof in ``_incompressible``'s docstring, checked: whenever it says zlib would not
    make the payload shorter than ``len - 1``, zlib indeed does not."""
    rnd = random.Random(3)
    pairs = [(d, lead) for d in range(0, 400) for lead in range(0, 400, 7)]
    pairs += [(d, lead) for d in IDS for lead in IDS[::5]]
    pairs += [(rnd.randrange(10 ** rnd.randrange(1, 10)), rnd.randrange(10 ** rnd.randrange(1, 10)))
              for _ in range(50_000)]
    claimed = 0
    for d, lead in pairs:
        payload = b"[%d,%d]" % (d, lead)
        if _incompressible(payload):
            claimed += 1
            assert len(zlib.compress(payload)) >= len(payload) - 1, payload
    assert claimed > len(pairs) // 3  # and it is the common case, or it would not save anything


@pytest.mark.parametrize("name", ["sha1", "sha256"])
@pytest.mark.parametrize("key", [b"", b"k", b"x" * 63, b"x" * 64, b"x" * 65, bytes(range(256))])
def test_keyed_mac_is_hmac(name, key):
    mac = KeyedMAC(key, name)
    for message in (b"", b"a", b"nurture_mail verp 42", bytes(range(256)) * 3):
        assert mac.digest(message) == hmac.new(key, message, name).digest()
        assert mac.hexdigest(message) == hmac.new(key, message, name).hexdigest()
    assert keyed_mac(key, name) is keyed_mac(key, name)


@pytest.mark.parametrize("secret", [b"s", b"bench-secret-key-0123456789abcdef", b"z" * 100])
def test_message_id_and_verp_are_the_same_strings(secret):
    for delivery_id in IDS:
        mac = hmac.new(secret, b"nurture_mail message-id %d" % delivery_id, hashlib.sha256).hexdigest()[:16]
        message_id = message_id_for(delivery_id, secret, "northwind.example")
        assert message_id == f"<d{delivery_id}.{mac}@northwind.example>"
        verp = hmac.new(secret, b"nurture_mail verp %d" % delivery_id, hashlib.sha256).hexdigest()[:10]
        address = verp_address(delivery_id, secret, "bounces.northwind.example")
        assert address == f"bounces+{delivery_id}-{verp}@bounces.northwind.example"
        if delivery_id < 10**18:
            assert delivery_of_message_id(message_id, [b"other", secret]) == delivery_id
            assert delivery_of_return_path(address, [b"other", secret]) == delivery_id
    assert delivery_of_message_id(message_id_for(5, secret, "n.example"), b"other") is None


def test_message_id_still_validates_its_arguments():
    for bad in (-1, True, 1.0, "1"):
        with pytest.raises(ValueError, match="delivery id"):
            message_id_for(bad, b"s", "n.example")
    with pytest.raises(ValueError, match="secret"):
        message_id_for(1, b"", "n.example")
    with pytest.raises(ValueError, match="domain"):
        message_id_for(1, b"s", "bad domain")
