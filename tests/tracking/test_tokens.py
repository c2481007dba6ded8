"""Signed tokens: round trips, key rotation, purposes that never cross, the redirect guard."""
from __future__ import annotations

import hashlib

import pytest
from itsdangerous import URLSafeSerializer

from nurture_mail.config import Config
from nurture_mail.tracking.tokens import ClickTarget, TokenError, Tokens, is_safe_target

URL = "https://northwind.example/reports/cloud-risk-2026"


def test_click_token_names_delivery_link_and_url():
    tokens = Tokens("key-one")
    token = tokens.click(41, 7, URL)
    assert tokens.read_click(token) == ClickTarget(41, 7, URL)
    assert not tokens.read_click(token).honeypot
    # An ordinary itsdangerous token (HMAC-SHA256), readable by the library itself.
    serializer = URLSafeSerializer(["key-one"], salt="nurture.click", signer_kwargs={"digest_method": hashlib.sha256})
    assert serializer.loads(token) == [41, 7, URL]


def test_honeypot_token_has_no_link_and_no_url():
    tokens = Tokens("key-one")
    target = tokens.read_click(tokens.honeypot(41))
    assert target == ClickTarget(41, None, None) and target.honeypot


def test_open_token_round_trip():
    tokens = Tokens("key-one")
    assert tokens.read_open(tokens.open(99)) == 99


def test_key_rotation_new_key_signs_fallbacks_verify():
    old = Tokens("old-key")
    rotated = Tokens("new-key", fallbacks=["old-key"])
    in_inboxes = old.click(1, 2, URL)
    assert rotated.read_click(in_inboxes) == ClickTarget(1, 2, URL)
    fresh = rotated.click(1, 2, URL)
    assert Tokens("new-key").read_click(fresh) == ClickTarget(1, 2, URL)  # signed with the new key
    with pytest.raises(TokenError):
        old.read_click(fresh)
    with pytest.raises(TokenError):  # once the old key is retired, its tokens stop working
        Tokens("new-key").read_click(in_inboxes)
    # The unsubscribe tokens rotate the same way; a list's first key signs.
    assert Tokens(["new-key", "old-key"]).read_unsubscribe(old.unsubscribe(5, 6)) == (5, 6)
    assert Tokens("new-key").read_unsubscribe(Tokens(["new-key", "old-key"]).unsubscribe(5, 6)) == (5, 6)


def test_from_config_reads_secret_key_fallbacks(tmp_path):
    config = Config.from_env({"SECRET_KEY": "new", "SECRET_KEY_FALLBACKS": "older, old", "INSTANCE_PATH": str(tmp_path)})
    assert config.secret_key_fallbacks == ("older", "old")
    tokens = Tokens.from_config(config)
    assert tokens.read_open(Tokens("old").open(3)) == 3
    assert tokens.read_open(Tokens("older").open(3)) == 3
    assert Tokens("new").read_open(tokens.open(3)) == 3


def test_a_token_made_for_one_purpose_never_verifies_as_another():
    tokens = Tokens("key-one")
    with pytest.raises(TokenError):
        tokens.read_click(tokens.open(1))
    with pytest.raises(TokenError):
        tokens.read_open(tokens.click(1, 2, URL))
    with pytest.raises(TokenError):
        tokens.read_click(tokens.unsubscribe(1, 2))
    with pytest.raises(TokenError):
        tokens.read_unsubscribe(tokens.open(1))


@pytest.mark.parametrize("token", ["", ".", "abc", "abc.def", "W10.", "WzFd", "..", "%00"])
def test_garbage_is_rejected(token):
    tokens = Tokens("key-one")
    with pytest.raises(TokenError):
        tokens.read_click(token)
    with pytest.raises(TokenError):
        tokens.read_open(token)


@pytest.mark.parametrize("payload", [
    [1, 2, "javascript:alert(1)"],
    [1, 2, "//evil.example/"],
    [1, 2, "https:/\\evil.example"],
    [1, 2, "data:text/html,<script>alert(1)</script>"],
    [1, 2, " https://evil.example"],
    [1, 2, None],
    [1, None, URL],
    [0, 2, URL],
    ["1", 2, URL],
    [1, 2.5, URL],
    [1, True, URL],
    [1, 2],
    {"d": 1},
])
def test_a_validly_signed_token_with_an_unsafe_or_malformed_payload_is_rejected(payload):
    """Even with the real key (a campaign loader bypassed, a bug), no such token reads."""
    tokens = Tokens("key-one")
    forged = tokens._click.dumps(payload)
    with pytest.raises(TokenError):
        tokens.read_click(forged)


@pytest.mark.parametrize("url", ["javascript:alert(1)", "//evil.example", "ftp://x.example/", "https://", "/local"])
def test_signing_refuses_a_url_that_must_never_be_a_redirect(url):
    with pytest.raises(ValueError):
        Tokens("key-one").click(1, 2, url)


@pytest.mark.parametrize("url, safe", [
    ("https://northwind.example/a?b=1&c=2#d", True),
    ("HTTP://NORTHWIND.EXAMPLE/", True),
    ("https://northwind.example:8443/x", True),
    ("https://bücher.example/straße", True),
    ("javascript:alert(1)", False),
    ("JavaScript://%0aalert(1)", False),
    ("//evil.example", False),
    ("///evil.example", False),
    ("https:/\\evil.example", False),
    ("https:\\\\evil.example", False),
    ("https://evil.example\\@northwind.example", False),
    ("https:// evil.example", False),
    ("https://evil.example/\n", False),
    ("https://\tevil.example", False),
    ("https://", False),
    ("https://@/x", False),
    ("http:evil.example", False),
    ("mailto:a@b.example", False),
    ("", False),
    (None, False),
    ("https://x.example/" + "a" * 2000, False),
])
def test_is_safe_target(url, safe):
    assert is_safe_target(url) is safe


def test_tokens_keyed_once_are_the_bytes_itsdangerous_signs():
    """The signing key is derived once per Tokens (not per signature): the tokens must stay the
    ones itsdangerous makes, so emails already sent keep verifying and old tokens still verify."""
    import json

    from itsdangerous.encoding import base64_encode

    tokens = Tokens("new-key", ["old-key"])
    keys = ["old-key", "new-key"]  # itsdangerous signs with the last
    assert tokens.unsubscribe(12, 34) == URLSafeSerializer(keys, salt="nurture.unsubscribe").dumps([12, 34])
    click = URLSafeSerializer(keys, salt="nurture.click", signer_kwargs={"digest_method": hashlib.sha256})
    payload = base64_encode(json.dumps([5, 6, "https://x.example/a?b=1"], separators=(",", ":")).encode())
    assert tokens.click(5, 6, "https://x.example/a?b=1") == click.make_signer().sign(payload).decode()
    assert tokens.read_click(tokens.click(5, 6, "https://x.example/a?b=1")) == ClickTarget(5, 6, "https://x.example/a?b=1")
    assert tokens.read_unsubscribe(tokens.unsubscribe(12, 34)) == (12, 34)
    assert tokens.read_open(tokens.open(7)) == 7
    # A token another key signed does not verify, however cheaply it was made.
    with pytest.raises(TokenError):
        Tokens("other-key").read_unsubscribe(tokens.unsubscribe(12, 34))


@pytest.mark.parametrize("payload", [
    [12, 34], [7], [5, None, None], [5, 6, 'https://x.example/a?b=1&c="q"\\#ü'], [1, 2, "é\u2028\n\t/"],
    [True, 2], [1.5], [[1], 2], [], {"a": 1}, [10**30, -3, 0],
])
def test_token_payloads_are_the_bytes_the_json_encoder_writes(payload):
    """Payloads are joined by hand for speed: the bytes signed must stay the encoder's, or the
    tokens of emails already sent would stop verifying."""
    import json

    from nurture_mail.tracking.tokens import _compact_json

    assert _compact_json(payload) == json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
