"""HMAC-signed tokens for the URLs an email carries: clicks, the open pixel, unsubscribe.

Each kind of token has its own salt, so a token made for one purpose never verifies as
another (an open token is not a click token). Keys rotate: ``SECRET_KEY`` signs, and every
key in ``SECRET_KEY_FALLBACKS`` still verifies, so emails already in inboxes keep working
while an old key is phased out.

A click token carries the delivery, the link and the link's URL, signed together: the
redirect needs no database read, and it can only ever go to a URL that this email contained.
"""
from __future__ import annotations

import binascii
import functools
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeSerializer
from itsdangerous.signer import HMACAlgorithm, Signer

from ..keyedmac import KeyedMAC

if TYPE_CHECKING:
    from ..config import Config

#: The longest target URL a click token may carry (``link.url`` is at most 2,000 characters).
MAX_URL_LENGTH = 2000
#: An http(s) URL with no whitespace, control character or backslash anywhere.
_SAFE_URL = re.compile(r"https?://[^\x00-\x20\x7f\\]+", re.IGNORECASE)


class TokenError(ValueError):
    """A token was tampered with, truncated, or made for another purpose."""


@dataclass(frozen=True)
class ClickTarget:
    """What a verified click token names: the delivery, and the link with its URL.

    The honeypot link of an email (hidden from people, see ``templates/base.html``) has no
    link row and no URL: ``link_id`` and ``url`` are None.
    """

    delivery_id: int
    link_id: int | None
    url: str | None

    @property
    def honeypot(self) -> bool:
        return self.link_id is None


def is_safe_target(url: object) -> bool:
    """An absolute http(s) URL with a host and nothing a browser could reinterpret.

    Campaign files only admit http(s) URLs; this is the second guard, at both ends of a click
    token, so ``javascript:``, ``data:``, protocol-relative ``//host`` and backslash or
    whitespace tricks can never become a redirect.
    """
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH or not _SAFE_URL.fullmatch(url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


class Tokens:
    """Signs and verifies every kind of token an email carries.

    ``secret_key`` signs; each of ``fallbacks`` (older keys) also verifies. A list given as
    ``secret_key`` is read the same way: its first key signs, all verify.
    """

    def __init__(self, secret_key: str | Sequence[str], fallbacks: Sequence[str] = ()) -> None:
        given = [secret_key] if isinstance(secret_key, str) else list(secret_key)
        keys: list[str] = []
        for key in [*given, *fallbacks]:
            if key and key not in keys:
                keys.append(key)
        if not keys:
            raise ValueError("a secret key is required to sign tokens")
        # itsdangerous signs with the *last* key of its list and verifies with all of them.
        ordered = list(reversed(keys))
        self._unsubscribe = URLSafeSerializer(ordered, salt="nurture.unsubscribe")
        self._unsubscribe_signer = _KeyedSigner(self._unsubscribe.make_signer())
        self._click = _Purpose(ordered, "nurture.click")
        self._open = _Purpose(ordered, "nurture.open")
        # The signers of the send path, bound once (several tokens per email).
        self._sign_click = self._click._keyed.sign_json
        self._sign_open = self._open._keyed.sign_json

    @classmethod
    def from_config(cls, config: "Config") -> "Tokens":
        """Tokens that sign with SECRET_KEY and also accept SECRET_KEY_FALLBACKS."""
        return cls(config.secret_key, config.secret_key_fallbacks)

    # -- unsubscribe -----------------------------------------------------------------------

    def unsubscribe(self, delivery_id: int, lead_id: int) -> str:
        """``URLSafeSerializer.dumps([delivery_id, lead_id])``: the same string, made faster.

        The serializer zlib-compresses every payload to see whether that makes it shorter (a
        few µs, and for two ids it almost never does); :func:`_incompressible` proves that it
        cannot for most payloads, and only the others are given to the serializer.
        """
        if type(delivery_id) is int and type(lead_id) is int and delivery_id >= 0 and lead_id >= 0:
            payload = b"[%d,%d]" % (delivery_id, lead_id)
            if _incompressible(payload):
                return self._unsubscribe_signer.sign_json(payload)
        return self._unsubscribe_signer.sign_str(self._unsubscribe.dump_payload([delivery_id, lead_id]))

    def read_unsubscribe(self, token: str) -> tuple[int, int]:
        try:
            delivery_id, lead_id = self._unsubscribe.loads(token)
            return int(delivery_id), int(lead_id)
        except (BadSignature, ValueError, TypeError):
            raise TokenError("invalid unsubscribe token") from None

    # -- clicks ----------------------------------------------------------------------------

    def click(self, delivery_id: int, link_id: int, url: str) -> str:
        """The token of one link of one email; refuses a URL that must never be a redirect."""
        if type(delivery_id) is int and type(link_id) is int and type(url) is str:
            # ``,<link id>,<url as JSON>]``, made once per link (the links repeat from email to email).
            return self._sign_click(b"[%d%s" % (delivery_id, _click_tail(link_id, url)))
        if not is_safe_target(url):
            raise ValueError(f"link {link_id}: not an absolute http(s) URL: {url[:100]!r}")
        return self._click.dumps([delivery_id, link_id, url])

    def honeypot(self, delivery_id: int) -> str:
        """The token of the hidden link no person can see: whoever follows it is a machine."""
        if type(delivery_id) is int:
            return self._sign_click(b"[%d,null,null]" % delivery_id)
        return self._click.dumps([delivery_id, None, None])

    def read_click(self, token: str) -> ClickTarget:
        try:
            payload = self._click.loads(token)
        except (BadSignature, ValueError, TypeError):
            raise TokenError("invalid click token") from None
        if not isinstance(payload, list) or len(payload) != 3 or not _is_id(payload[0]):
            raise TokenError("invalid click token")
        delivery_id, link_id, url = payload
        if link_id is None and url is None:
            return ClickTarget(delivery_id, None, None)
        if not _is_id(link_id) or not is_safe_target(url):
            raise TokenError("invalid click token")
        return ClickTarget(delivery_id, link_id, url)

    # -- opens -----------------------------------------------------------------------------

    def open(self, delivery_id: int) -> str:
        if type(delivery_id) is int:
            return self._sign_open(b"[%d]" % delivery_id)
        return self._open.dumps([delivery_id])

    def read_open(self, token: str) -> int:
        try:
            payload = self._open.loads(token)
        except (BadSignature, ValueError, TypeError):
            raise TokenError("invalid open token") from None
        if not isinstance(payload, list) or len(payload) != 1 or not _is_id(payload[0]):
            raise TokenError("invalid open token")
        return payload[0]


class _Purpose:
    """One kind of token: itsdangerous's URL-safe format, HMAC-SHA256, built for speed.

    An email carries a click token per link (20 links: 20 signatures per email, DESIGN §9), so
    the signer is made once rather than per call, and payloads are not zlib-compressed (they
    are short). The tokens are ordinary ``URLSafeSerializer`` tokens: ``loads`` reads them.
    """

    def __init__(self, keys: list[str], salt: str) -> None:
        self.serializer = URLSafeSerializer(keys, salt=salt, signer_kwargs={"digest_method": hashlib.sha256})
        self.signer = self.serializer.make_signer()
        self._keyed = _KeyedSigner(self.signer)

    def dumps(self, payload: Any) -> str:
        return self._keyed.sign_str(_b64(_compact_json(payload)))

    def loads(self, token: str) -> Any:
        return self.serializer.load_payload(self.signer.unsign(token))


class _KeyedSigner:
    """``signer.sign`` with the key derived once: the same bytes, at a fraction of the cost.

    itsdangerous derives the signing key (a hash of salt and secret) on every call and keys a
    new HMAC with it; five signatures per email made that most of the cost of a token. Here
    the HMAC is keyed once (:class:`~nurture_mail.keyedmac.KeyedMAC`), so a token is still
    HMAC(derived key, value), verified by ``signer``.
    """

    def __init__(self, signer: Signer) -> None:
        if not isinstance(signer.algorithm, HMACAlgorithm):
            raise TypeError("only HMAC signers are supported")
        self.sep = signer.sep
        # Our serializers sign with SHA-1 (unsubscribe) and SHA-256: what KeyedMAC keys.
        self._digest: Callable[[bytes], bytes] = KeyedMAC(
            signer.derive_key(), signer.algorithm.digest_method().name).digest

    def sign_str(self, value: bytes) -> str:
        """``signer.sign(value)``, as text (a token is ASCII)."""
        return (value + self.sep + _b64(self._digest(value))).decode("ascii")

    def sign_json(self, payload: bytes) -> str:
        """The token of a payload written as compact JSON."""
        return self.sign_str(_b64(payload))


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> bytes:
    """``itsdangerous.encoding.base64_encode`` of bytes: URL-safe base64 without padding."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


def _incompressible(payload: bytes) -> bool:
    """True when ``zlib.compress(payload)`` is certainly not shorter than ``len(payload) - 1``,
    the test ``URLSafeSerializer.dump_payload`` makes before it compresses; for the payload
    ``[<id>,<id>]`` of two non-negative ids. False means: ask zlib.

    zlib writes 6 bytes around the deflate data, so compression wins only if that data takes
    at most ``n - 8`` bytes (``n`` the payload's length), that is ``8·n - 64`` bits. Lower
    bounds of the three kinds of deflate block, with ``k`` the number of distinct bytes (the
    first occurrence of each must be a literal; a match, at least 3 bytes, costs a length and
    a distance code):

    - stored: more than ``8·n`` bits;
    - fixed Huffman: 10 bits, 8 per literal (every byte here is below 144), 12 per match:
      ``10 + 8·k + min(8·(n - k), 12)``, and exactly ``10 + 8·n`` when no 3 bytes repeat
      (then there is no match at all);
    - dynamic Huffman: 17 bits of counts, 4 code-length codes of 3 bits, the code lengths of
      symbols 0…256 and of a distance code (at least 42 bits: the zero runs 0-43, 45-47,
      58-90 and 94-255 take at least 8, 3, 8 and 16 bits; ``,``, the digits, ``[``, 92,
      ``]``, 256 and the distance code at least 1 each), then at least a bit per literal,
      2 per match and 1 for the end of the block: ``72 + k + min(n - k, 2)``, or ``72 + n``
      when no 3 bytes repeat.
    """
    n = len(payload)
    k = len(set(payload))
    most = 8 * n - 64  # the most deflate bits that would still make compression win
    if 10 + 8 * k + min(8 * (n - k), 12) > most and 72 + k + min(n - k, 2) > most:
        return True
    return 72 + n > most and len({payload[i:i + 3] for i in range(n - 2)}) == n - 2


def _compact_json(payload: Any) -> bytes:
    """``payload`` as itsdangerous's compact JSON, encoded (the tokens' fallback path: the usual
    payloads, plain ints, are formatted by hand in :class:`Tokens`)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


@functools.lru_cache(maxsize=4096)
def _click_tail(link_id: int, url: str) -> bytes:
    """``,<link_id>,<url as JSON>]`` of a click payload; ValueError for a URL that must never
    be a redirect. Only for an ``int`` link id (``True`` would share the cache entry of 1)."""
    if not is_safe_target(url):
        raise ValueError(f"link {link_id}: not an absolute http(s) URL: {url[:100]!r}")
    return f",{link_id},{json.dumps(url, ensure_ascii=False)}]".encode()


def _is_id(value: object) -> bool:
    return type(value) is int and value > 0
