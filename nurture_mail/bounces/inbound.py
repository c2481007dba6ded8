"""Mail that comes back to us by SMTP: DSNs at the bounce address, mailto unsubscribes.

In the embedded default the built-in capture server is the relay, so it also receives what
comes back; :class:`InboundMail` is its ``on_message`` hook (``runtime.py`` attaches it, tests
use :func:`attach_inbound`). It runs on the capture server's thread before the ``250`` reply,
so once a client's ``sendmail`` returns, the report has been applied.

Routing is by envelope recipient:

- ``bounces@`` / ``bounces+<delivery>-<mac>@`` the bounce domain: an RFC 3464 DSN. The delivery
  is named by the VERP recipient, else by our Message-ID quoted in the report; both carry a
  MAC. A report naming neither is ignored, even if its Final-Recipient is one of our leads:
  anybody can mail the bounce address, and a forged DSN must not suppress someone. A message
  there that is no DSN (an auto-reply) is ignored too.
- ``unsubscribe@`` the sender domain (the mailto of List-Unsubscribe): an unsubscribe from all
  email. The subject carries the email's unsubscribe token, which names the address we wrote
  to even when the reply comes from an alias; without one, the From address is unsubscribed.
"""
from __future__ import annotations

import hashlib
import logging
import re
from email.utils import getaddresses

from sqlalchemy import select

from ..addresses import address_key
from ..extensions import Services
from ..mail.capture import CapturedMessage, CaptureServer
from ..mail.ratelimit import deliverability_settings
from ..models import Lead
from ..nurture.suppression import suppress, unsubscribe
from ..tracking.tokens import TokenError, Tokens
from .dsn import classify, parse_dsn
from .feedback import UNMATCHED, Feedback, FeedbackKind, FeedbackPolicy, apply_feedback, uid_for
from .verp import delivery_of_message_id, delivery_of_return_path, is_bounce_address

__all__ = ["InboundMail", "attach_inbound"]

log = logging.getLogger(__name__)

_KINDS = {"hard": FeedbackKind.hard_bounce, "soft": FeedbackKind.soft_bounce, "delayed": FeedbackKind.delayed}
#: Candidate tokens in a subject: itsdangerous URL-safe output (base64url and dots).
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")


class InboundMail:
    """A capture-server hook; also callable directly with a :class:`CapturedMessage`."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def __call__(self, message: CapturedMessage) -> None:
        config = self.svc.config
        settings = deliverability_settings(config)
        bounce_rcpts = [r for r in message.rcpt_tos if is_bounce_address(r, settings.bounce_domain)]
        if bounce_rcpts:
            self.ingest_dsn(message, bounce_rcpts)
        elif f"unsubscribe@{config.sender_domain}".lower() in (r.lower() for r in message.rcpt_tos):
            self.ingest_mailto_unsubscribe(message)

    def ingest_dsn(self, message: CapturedMessage, bounce_rcpts: list[str]) -> list[str]:
        """Apply each failed recipient of the DSN; returns the results (see feedback.py)."""
        report = parse_dsn(message.raw)
        if report is None:
            log.info("bounce address got a message that is no DSN (%s); ignored", message.subject[:80])
            return []
        config = self.svc.config
        policy = FeedbackPolicy.of(config)
        bounce_domain = deliverability_settings(config).bounce_domain
        delivery_id = next((d for d in (delivery_of_return_path(r, policy.secrets, bounce_domain)
                                        for r in bounce_rcpts) if d is not None), None)
        if delivery_id is None and report.original_message_id:
            delivery_id = delivery_of_message_id(report.original_message_id, policy.secrets)
        if delivery_id is None:
            log.warning("DSN %s names none of our deliveries (no valid VERP address or Message-ID); ignored",
                        report.message_id)
            return [UNMATCHED for r in report.recipients if classify(r) is not None]
        # A DSN is identified by its own Message-ID; without one, by its bytes.
        identity = report.message_id or hashlib.sha256(message.raw).hexdigest()
        now = self.svc.clock.now()
        results = []
        with self.svc.db.session() as session:
            for index, recipient in enumerate(report.recipients):
                kind = classify(recipient)
                if kind is None:
                    continue
                feedback = Feedback(
                    kind=_KINDS[kind], uid=uid_for("dsn", identity, index), source="dsn",
                    delivery_id=delivery_id, message_id=report.original_message_id,
                    email=recipient.final_recipient or recipient.original_recipient, at=now,
                    detail={"status": recipient.status, "diagnostic": recipient.diagnostic,
                            "action": recipient.action, "reporting_mta": report.reporting_mta,
                            "remote_mta": recipient.remote_mta, "dsn_message_id": report.message_id},
                )
                results.append(apply_feedback(session, feedback, now, policy))
        log.info("DSN %s: %s", identity[:80], ", ".join(results) or "no failed recipient")
        return results

    def ingest_mailto_unsubscribe(self, message: CapturedMessage) -> str | None:
        """Unsubscribe the address the email was sent to (by token) or the From address;
        returns the address unsubscribed, or None when none could be found."""
        now = self.svc.clock.now()
        target = self._lead_of_token(message.subject)
        with self.svc.db.session() as session:
            if target is not None:
                lead = session.get(Lead, target[1])
                if lead is not None:
                    unsubscribe(session, lead, now, source="mailto", delivery_id=target[0])
                    return lead.email
            sender = _from_address(message)
            if sender is None:
                log.info("mailto unsubscribe without a usable From address; ignored")
                return None
            lead = session.scalar(select(Lead).where(Lead.email == sender))
            if lead is not None:
                unsubscribe(session, lead, now, source="mailto")
            else:
                suppress(session, sender, now, reason="unsubscribe", source="mailto")
            return sender

    def _lead_of_token(self, subject: str) -> tuple[int, int] | None:
        tokens = Tokens.from_config(self.svc.config)
        for candidate in _TOKEN_LIKE.findall(subject):
            try:
                return tokens.read_unsubscribe(candidate)
            except TokenError:
                continue
        return None


def _from_address(message: CapturedMessage) -> str | None:
    try:
        header = message.message.get("From")
    except Exception:  # a malformed From from a stranger
        header = None
    candidates = [addr for _, addr in getaddresses([str(header)])] if header else []
    candidates.append(message.envelope_from)
    for address in candidates:
        if address and "@" in address:
            return address_key(address)
    return None


def attach_inbound(server: CaptureServer, svc: Services) -> InboundMail:
    """Make ``server`` apply the DSNs and mailto unsubscribes it receives."""
    hook = InboundMail(svc)
    server.on_message.append(hook)
    return hook
