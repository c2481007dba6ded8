"""Signed one-click links for sales reps: a token names one handoff and one rep.

Same house pattern as ``tracking/tokens.py`` (itsdangerous, SECRET_KEY signs and
SECRET_KEY_FALLBACKS still verify) with a salt of its own, so no tracking token ever verifies
as a sales link. The link opens a page; only the page's CSRF-protected forms act.

Links are timestamped and expire ``OWNERSHIP_DAYS`` + :data:`MARGIN_DAYS` after they were made
(a link is made when its email is rendered), so a forwarded or leaked email stops acting.
Links are never stored in the dossier nor posted to the webhook: only the rep's email has them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from ..config import Config

__all__ = ["HandoffLink", "LinkError", "LinkExpired", "SalesLinks"]

SALT = "nurture.sales.handoff"
#: Days a link keeps working after the ownership window it was made for.
MARGIN_DAYS = 2


class LinkError(ValueError):
    """A sales link was tampered with, truncated, or made for another purpose."""


class LinkExpired(LinkError):
    """A genuine sales link, older than the ownership window plus the margin."""


@dataclass(frozen=True)
class HandoffLink:
    handoff_id: int
    rep_id: int


class SalesLinks:
    def __init__(self, config: Config, clock: Any = None) -> None:
        """``clock`` (an object with ``now()``, the app's injected clock) dates and checks links."""
        keys: list[str] = []
        for key in (config.secret_key, *config.secret_key_fallbacks):
            if key and key not in keys:
                keys.append(key)
        if not keys:
            raise ValueError("a secret key is required to sign sales links")
        # itsdangerous signs with the last key of its list and verifies with all of them.
        signer: type[TimestampSigner] = TimestampSigner
        if clock is not None:
            class _ClockSigner(TimestampSigner):
                def get_timestamp(self) -> int:
                    return int(clock.now().timestamp())

            signer = _ClockSigner
        self._serializer = URLSafeTimedSerializer(list(reversed(keys)), salt=SALT, signer=signer)
        self.base_url = config.base_url.rstrip("/")
        self.max_age = (config.ownership_days + MARGIN_DAYS) * 86400

    def token(self, handoff_id: int, rep_id: int) -> str:
        return self._serializer.dumps([handoff_id, rep_id])

    def read(self, token: str) -> HandoffLink:
        try:
            payload = self._serializer.loads(token, max_age=self.max_age)
        except SignatureExpired:
            raise LinkExpired("this sales link has expired") from None
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
