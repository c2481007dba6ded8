"""Notification destination ``webhook``: the dossier posted as JSON to SALES_WEBHOOK_URL, HMAC-signed.

Body: ``{"event": "handoff.created", "handoff_id": …, "text": "<Slack-compatible summary>",
"dossier": {…}}``. Headers: ``X-Nurture-Timestamp: <unix seconds>`` and
``X-Nurture-Signature: sha256=<hex>``, the HMAC-SHA256 of ``"<timestamp>.<raw body>"`` with
SALES_WEBHOOK_SECRET. When that is unset, a key of its own is derived from SECRET_KEY
(``HMAC-SHA256(SECRET_KEY, "nurture.sales.webhook")``, hex): a receiver never needs the master
key; ``flask webhook-secret`` prints the key in use. Signing the timestamp with the body lets a
receiver refuse replays: recompute, compare in constant time, and reject old timestamps.

The dossier carries no signed links (they would let anyone in the channel act as the rep).

Each attempt is counted on a ``WebhookDelivery`` row (status, attempts, last status code and
error). A failed attempt raises so RQ retries the job with backoff; the last allowed attempt
marks the row ``failed`` instead, so failures stay visible (``handoffs`` CLI).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from ...models import Handoff, WebhookDelivery
from .base import Destination, Notice

if TYPE_CHECKING:
    from ...config import Config
    from ...extensions import Services

__all__ = ["WebhookDestination", "WebhookFailed", "post_webhook", "sign", "verify"]

log = logging.getLogger(__name__)


class WebhookFailed(RuntimeError):
    """One attempt failed; RQ retries the job."""


@dataclass(frozen=True)
class WebhookResult:
    #: delivered | failed | retrying | skipped
    outcome: str
    attempts: int
    status_code: int | None = None


#: The label of the key derived from SECRET_KEY when SALES_WEBHOOK_SECRET is empty.
DERIVED_LABEL = b"nurture.sales.webhook"


def webhook_secret_text(config: "Config") -> str:
    """The signing key as configured on the receiver: SALES_WEBHOOK_SECRET, or the derived key."""
    if config.sales_webhook_secret:
        return config.sales_webhook_secret
    if not config.secret_key:
        raise ValueError("SALES_WEBHOOK_SECRET or SECRET_KEY is required to sign webhooks")
    return hmac.new(config.secret_key.encode(), DERIVED_LABEL, hashlib.sha256).hexdigest()


def webhook_secret(config: "Config") -> bytes:
    return webhook_secret_text(config).encode()


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (also used by the tests): constant-time compare of the signature."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def payload(handoff: Handoff) -> dict[str, Any]:
    # Never post links (dossiers stored before links were kept out of them still had them).
    dossier = {k: v for k, v in (handoff.dossier or {}).items() if k != "links"}
    return {"event": "handoff.created", "handoff_id": handoff.id, "text": dossier.get("text", ""),
            "dossier": dossier}


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not an instruction: the signed body goes to the configured URL only."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int | None, str | None]:
    """One POST with the stdlib; (status code, error or None when 2xx)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(65536)
            return response.status, None
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode("utf-8", "replace") if exc.fp is not None else ""
        return exc.code, f"HTTP {exc.code}: {detail}"[:1000]
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"{type(exc).__name__}: {reason}"[:1000]


def post_webhook(svc: "Services", delivery_id: int) -> WebhookResult:
    config = svc.config
    with svc.db.session() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.status != "pending":
            return WebhookResult("skipped", delivery.attempts if delivery else 0)
        handoff = session.get(Handoff, delivery.handoff_id) if delivery.handoff_id else None
        body = json.dumps(payload(handoff) if handoff else {"event": "handoff.deleted"},
                          separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")
        url = delivery.url
        delivery.attempts += 1
        attempts = delivery.attempts
        session.commit()  # the attempt counts even if this worker dies during the request
        now: datetime = svc.clock.now()
        timestamp = str(int(now.timestamp()))
        headers = {"Content-Type": "application/json", "User-Agent": "nurture_mail-webhook/1",
                   "X-Nurture-Timestamp": timestamp, "X-Nurture-Signature": sign(webhook_secret(config), timestamp, body),
                   "X-Nurture-Delivery": str(delivery_id)}
        status_code, error = _post(url, body, headers, config.sales_webhook_timeout)
        delivery.last_status_code = status_code
        delivery.last_error = error
        if error is None:
            delivery.status = "delivered"
            delivery.delivered_at = svc.clock.now()
            log.info("webhook delivery %s for handoff #%s delivered (attempt %d)", delivery_id, delivery.handoff_id,
                     attempts)
            return WebhookResult("delivered", attempts, status_code)
        if attempts >= config.sales_webhook_max_attempts:
            delivery.status = "failed"
            log.error("webhook delivery %s for handoff #%s failed after %d attempts: %s", delivery_id,
                      delivery.handoff_id, attempts, error)
            return WebhookResult("failed", attempts, status_code)
        log.warning("webhook delivery %s attempt %d failed, will retry: %s", delivery_id, attempts, error)
    # Committed above (the context manager); raising makes RQ schedule the next attempt.
    raise WebhookFailed(f"webhook delivery {delivery_id} attempt {attempts}: {error}")


class WebhookDestination(Destination):
    """The dossier of each new handoff, posted to SALES_WEBHOOK_URL (on when that is set)."""

    name = "webhook"

    def enabled(self) -> bool:
        return bool(self.svc.config.sales_webhook_url)

    @property
    def max_attempts(self) -> int:
        return self.svc.config.sales_webhook_max_attempts

    @property
    def job_timeout(self) -> int:
        return int(self.svc.config.sales_webhook_timeout) + 30

    def prepare(self, session: Session, handoff: Handoff, notice: Notice, now: datetime) -> Notice:
        """A ``pending`` delivery row, created with the handoff: its attempts are counted on it."""
        delivery = WebhookDelivery(handoff_id=handoff.id, url=self.svc.config.sales_webhook_url, status="pending",
                                   attempts=0, created_at=now)
        session.add(delivery)
        session.flush()
        return Notice(notice.handoff_id, notice.kind, notice.rep_id, ref=delivery.id)

    def notify(self, notice: Notice) -> WebhookResult:
        if notice.ref is None:
            raise ValueError(f"webhook notice of handoff #{notice.handoff_id} has no delivery row")
        return post_webhook(self.svc, notice.ref)
