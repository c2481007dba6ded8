"""Signed one-click links for sales reps: a token names one handoff and one rep.

Same house pattern as ``tracking/tokens.py`` (itsdangerous, SECRET_KEY signs and
SECRET_KEY_FALLBACKS still verify) with a salt of its own, so no tracking token ever verifies
as a sales link. The link opens a page; only the page's CSRF-protected forms act.
"""
from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

from ..config import Config

__all__ = ["HandoffLink", "LinkError", "SalesLinks"]

SALT = "nurture.sales.handoff"


class LinkError(ValueError):
    """A sales link was tampered with, truncated, or made for another purpose."""


@dataclass(frozen=True)
class HandoffLink:
    handoff_id: int
    rep_id: int


class SalesLinks:
    def __init__(self, config: Config) -> None:
        keys: list[str] = []
        for key in (config.secret_key, *config.secret_key_fallbacks):
            if key and key not in keys:
                keys.append(key)
        if not keys:
            raise ValueError("a secret key is required to sign sales links")
        # itsdangerous signs with the last key of its list and verifies with all of them.
        self._serializer = URLSafeSerializer(list(reversed(keys)), salt=SALT)
        self.base_url = config.base_url.rstrip("/")

    def token(self, handoff_id: int, rep_id: int) -> str:
        return self._serializer.dumps([handoff_id, rep_id])

    def read(self, token: str) -> HandoffLink:
        try:
            payload = self._serializer.loads(token)
        except (BadSignature, ValueError, TypeError):
            raise LinkError("invalid sales link") from None
        if (not isinstance(payload, list) or len(payload) != 2
                or not all(type(v) is int and v > 0 for v in payload)):
            raise LinkError("invalid sales link")
        return HandoffLink(payload[0], payload[1])

    def page_url(self, handoff_id: int, rep_id: int, action: str | None = None) -> str:
        """The handoff's page; ``action`` (accept / reject) only preselects a form there."""
        url = f"{self.base_url}/sales/handoffs/{self.token(handoff_id, rep_id)}"
        return f"{url}?do={action}" if action else url
