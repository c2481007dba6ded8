"""One email sent on its own (a sales notification), on the same path as a nurture batch:
the message built by ``mime.build_message``, DKIM-signed when configured, under both send-rate
limits, over the configured relay (the SMTP capture inbox by default).

Send batches (``nurture/send.py``) keep their own loop, for speed, but sign through the same
:func:`signed_message`.
"""
from __future__ import annotations

from datetime import datetime

from redis import Redis

from ..config import Config
from .dkim import DkimSigner
from .mime import OutgoingEmail, build_message
from .ratelimit import SendRateLimiter, deliverability_settings
from .transport import SMTPSettings, SMTPTransport, TemporaryFailure

__all__ = ["RateLimited", "send_one", "signed_message"]


class RateLimited(TemporaryFailure):
    """The recipient's domain has had its emails for this minute: try again in the next window."""


def signed_message(email: OutgoingEmail, signer: DkimSigner | None) -> bytes:
    """The bytes to hand to the relay: the built message, with a DKIM signature when configured."""
    data = build_message(email)
    return signer.sign(data) if signer is not None else data


def send_one(config: Config, redis: Redis, email: OutgoingEmail, now: datetime) -> None:
    """Sign and send ``email``; raises the transport's failures, and :class:`RateLimited` when the
    recipient's domain is over its limit (the caller's job is retried later, as a batch defers)."""
    settings = deliverability_settings(config)
    signer = DkimSigner.from_settings(settings)
    limiter = SendRateLimiter.from_settings(redis, settings)
    if limiter is not None:
        _, deferred = limiter.admit([email], lambda e: e.to_addr.rpartition("@")[2], now)
        if deferred:
            window = deferred[0][1]
            raise RateLimited(None, f"rate limit for {window.domain} reached for this minute", "rate-limit")
    data = signed_message(email, signer)
    if limiter is not None:
        limiter.wait_for_slot()
    with SMTPTransport(SMTPSettings.from_url(config.effective_smtp_url, timeout=config.smtp_timeout)) as transport:
        transport.send(email.return_path or email.from_addr, email.to_addr, data)
