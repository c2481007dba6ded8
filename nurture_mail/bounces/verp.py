"""VERP return paths and our own Message-IDs: which delivery a bounce is about, unforgeably.

The envelope sender of every email is ``bounces+<delivery id>-<mac>@<bounce domain>``, so a
bounce sent back to it names the delivery even when the DSN quotes nothing of the original.
The MAC (HMAC-SHA256 over the id with ``SECRET_KEY``, 10 hex digits) keeps strangers from
bouncing deliveries they never saw: without it, ``bounces+1@…``, ``bounces+2@…`` … would
suppress every address we ever mailed. Readers take several secrets (SECRET_KEY first, then
SECRET_KEY_FALLBACKS), so bounces of emails sent before a key rotation are still recognised.
"""
from __future__ import annotations

import hmac
import re
from collections.abc import Sequence

from ..keyedmac import keyed_mac
from ..mail.mime import message_id_for

__all__ = ["BOUNCE_LOCAL_PART", "delivery_of_message_id", "delivery_of_return_path", "is_bounce_address",
           "verp_address"]

BOUNCE_LOCAL_PART = "bounces"
_MAC_HEX = 10
_VERP = re.compile(rf"{BOUNCE_LOCAL_PART}\+(\d{{1,18}})-([0-9a-f]{{{_MAC_HEX}}})@([^@\s>]+)\Z", re.IGNORECASE)
_OUR_MESSAGE_ID = re.compile(r"<?d(\d{1,18})\.([0-9a-f]{16})@([^@\s>]+)>?\Z")


def _mac(delivery_id: int, secret: bytes) -> str:
    """HMAC-SHA256(secret, ``nurture_mail verp <id>``), its first 10 hex digits (the secret
    keyed once per process: :func:`~nurture_mail.keyedmac.keyed_mac`)."""
    return keyed_mac(secret).hexdigest(b"nurture_mail verp %d" % delivery_id)[:_MAC_HEX]


def verp_address(delivery_id: int, secret: bytes, domain: str) -> str:
    """``bounces+42-1f0c9a7e3b@northwind.example``."""
    return f"{BOUNCE_LOCAL_PART}+{delivery_id}-{_mac(delivery_id, secret)}@{domain}"


def _secrets(secret: bytes | Sequence[bytes]) -> Sequence[bytes]:
    return (secret,) if isinstance(secret, bytes) else secret


def delivery_of_return_path(address: str, secret: bytes | Sequence[bytes], domain: str | None = None) -> int | None:
    """The delivery id a VERP address names, or None if it is not one of ours (bad MAC, other
    domain, plain ``bounces@``)."""
    match = _VERP.match(address.strip().strip("<>"))
    if match is None:
        return None
    delivery_id, mac, at = int(match.group(1)), match.group(2).lower(), match.group(3)
    if domain is not None and at.lower() != domain.lower():
        return None
    if any(hmac.compare_digest(mac, _mac(delivery_id, key)) for key in _secrets(secret)):
        return delivery_id
    return None


def is_bounce_address(address: str, domain: str) -> bool:
    """``bounces@domain`` or ``bounces+anything@domain`` (MAC not checked: routing only)."""
    local, _, at = address.strip().strip("<>").rpartition("@")
    local = local.lower()
    return at.lower() == domain.lower() and (local == BOUNCE_LOCAL_PART or local.startswith(BOUNCE_LOCAL_PART + "+"))


def delivery_of_message_id(message_id: str, secret: bytes | Sequence[bytes]) -> int | None:
    """The delivery id behind one of our Message-IDs (``<d42.<mac>@domain>``), MAC checked."""
    match = _OUR_MESSAGE_ID.match(message_id.strip())
    if match is None:
        return None
    delivery_id, domain = int(match.group(1)), match.group(3)
    given = f"<d{delivery_id}.{match.group(2)}@{domain}>"
    for key in _secrets(secret):
        try:
            expected = message_id_for(delivery_id, key, domain)
        except ValueError:  # not a domain we could have written
            return None
        if hmac.compare_digest(expected, given):
            return delivery_id
    return None
