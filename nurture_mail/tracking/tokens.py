"""HMAC-signed tokens for the URLs an email carries (unsubscribe, and later clicks and opens)."""
from __future__ import annotations

from itsdangerous import BadSignature, URLSafeSerializer


class TokenError(ValueError):
    """A token was tampered with, truncated, or made for another purpose."""


class Tokens:
    def __init__(self, secret_key: str | list[str]) -> None:
        # A list of keys allows rotation: the first signs, all verify.
        keys = [secret_key] if isinstance(secret_key, str) else list(secret_key)
        self._unsubscribe = URLSafeSerializer(keys, salt="nurture.unsubscribe")

    def unsubscribe(self, delivery_id: int, lead_id: int) -> str:
        return self._unsubscribe.dumps([delivery_id, lead_id])

    def read_unsubscribe(self, token: str) -> tuple[int, int]:
        try:
            delivery_id, lead_id = self._unsubscribe.loads(token)
            return int(delivery_id), int(lead_id)
        except (BadSignature, ValueError, TypeError):
            raise TokenError("invalid unsubscribe token") from None
