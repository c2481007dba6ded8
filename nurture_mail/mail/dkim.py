"""Optional DKIM signing (dkimpy), on when DKIM_SELECTOR and DKIM_PRIVATE_KEY_PATH are set.

The signature covers the headers a receiver judges the email by, including both RFC 8058
headers (Gmail and Yahoo honour one-click only when List-Unsubscribe and List-Unsubscribe-Post
are signed). Canonicalization is relaxed/relaxed so a relay that refolds a header or changes
trailing whitespace does not break it. Headers listed but absent (Reply-To when none is
configured) are still in ``h=``: that signs their absence, so nobody can add one later.

The key is read and parsed once per signer (once per send batch), and a bad key fails the
batch before any email is claimed: nothing goes out unsigned by accident.

dkimpy (and dnspython under it, 40 ms of CPU) is imported when a signer is made, i.e. only
when DKIM is configured: a worker without it does not pay for it at start.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .ratelimit import DeliverabilitySettings

__all__ = ["SIGNED_HEADERS", "DkimError", "DkimSigner"]

SIGNED_HEADERS = (
    "from", "to", "subject", "date", "message-id", "reply-to", "list-unsubscribe", "list-unsubscribe-post",
    "mime-version", "content-type",
)


class DkimError(ValueError):
    """The DKIM key or settings cannot be used; the message names the setting."""


@dataclass(frozen=True)
class DkimSigner:
    selector: str
    domain: str
    private_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        from dkim.crypto import UnparsableKeyError, parse_pem_private_key

        try:
            parse_pem_private_key(self.private_key)
        except (UnparsableKeyError, ValueError, IndexError) as exc:
            raise DkimError(f"DKIM_PRIVATE_KEY_PATH: not an RSA private key in PEM form ({exc})") from None

    @classmethod
    def from_settings(cls, settings: DeliverabilitySettings) -> DkimSigner | None:
        if not settings.dkim_enabled:
            return None
        path = Path(settings.dkim_private_key_path)
        try:
            key = path.read_bytes()
        except OSError as exc:
            raise DkimError(f"DKIM_PRIVATE_KEY_PATH: cannot read {path}: {exc.strerror}") from None
        return cls(settings.dkim_selector, settings.dkim_domain, key)

    def sign(self, message: bytes) -> bytes:
        """``message`` with a DKIM-Signature header in front (CRLF line endings kept)."""
        import dkim

        header = dkim.sign(
            message, self.selector.encode("ascii"), self.domain.encode("ascii"), self.private_key,
            canonicalize=(b"relaxed", b"relaxed"), include_headers=[h.encode("ascii") for h in SIGNED_HEADERS],
            linesep=b"\r\n",
        )
        return header + message
