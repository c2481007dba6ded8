"""Notification destination ``email``: email to a rep, through the same pipeline as nurture emails.

Sandboxed Jinja ``Renderer`` (premailer inlining once per template version) with
``templates/sales/handoff.html|txt``, the sender headers of ``mail.compose.outgoing_email``, and
``mail.outbox.send_one``: DKIM signature, send-rate limits and the configured relay (or the
capture inbox), as for nurture emails. A recipient domain over its rate limit raises, and RQ
retries the job later.

Kinds: ``new`` (the assigned rep, at handoff), ``escalation`` (the rep's manager, SLA missed),
``transfer`` (the territory owner, ownership window over). Each send is recorded as a
``HandoffAction("notified")``; ``new`` also sets ``Handoff.notified_at``. A run finding that
record does nothing, so a re-run of the job never sends twice; a Redis lease keeps two
workers from sending the same notification at the same moment, and is released only after the
"notified" record is committed (a second worker then finds it). An SMTP temporary failure
raises, and RQ retries the job; a permanent refusal is recorded as ``notify_failed`` and not
retried (housekeeping does not re-send it either).

The rep's signed links are added here, at render time, for the recipient: they are never
stored in the dossier.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from ...clock import real_seconds
from ...mail.compose import SenderView, outgoing_email
from ...mail.outbox import send_one
from ...mail.transport import PermanentFailure
from ...models import Handoff, HandoffAction, Lead, SalesRep
from ..dossier import build_dossier, dossier_links
from .base import KINDS, Destination, Notice

if TYPE_CHECKING:
    from ...extensions import Services

__all__ = ["EmailDestination", "NotifyResult", "notify_by_email"]

log = logging.getLogger(__name__)

HTML_TEMPLATE = "sales/handoff.html"
TEXT_TEMPLATE = "sales/handoff.txt"
SUBJECTS = {
    "new": "New handoff: {{ contact.name or contact.email }}{% if company.name %} ({{ company.name }}){% endif %}"
           " — {{ handoff.reason|replace('_', '-') }}",
    "escalation": "Escalated: handoff #{{ handoff.id }} {{ contact.name or contact.email }} has had no action",
    "transfer": "Transferred to you: {{ contact.name or contact.email }}{% if company.name %} "
                "({{ company.name }}){% endif %}",
}
LEASE_SECONDS = 120


@dataclass(frozen=True)
class NotifyResult:
    #: sent | already-sent | busy | no-recipient | failed
    outcome: str
    message_id: str | None = None
    latency_seconds: float | None = None


def message_id(svc: "Services", handoff_id: int, kind: str, rep_id: int) -> str:
    """The same notification always has the same Message-ID (a resend folds into the first)."""
    mac = hmac.new(svc.config.secret_key.encode(), f"nurture_mail sales {handoff_id} {kind} {rep_id}".encode(),
                   hashlib.sha256).hexdigest()[:16]
    return f"<h{handoff_id}.{kind}.{rep_id}.{mac}@{svc.config.sender_domain}>"


def _already_sent(handoff: Handoff, kind: str, rep_id: int) -> bool:
    if kind == "new" and handoff.notified_at is not None:
        return True
    return any(a.action == "notified" and a.detail.get("kind") == kind and a.detail.get("rep_id") == rep_id
               for a in handoff.actions)


def render_notification(svc: "Services", kind: str, dossier: dict[str, Any], recipient: SalesRep,
                        extra: dict[str, Any] | None = None) -> tuple[str, str, str]:
    config = svc.config
    context = {
        **dossier,
        "kind": kind,
        "recipient": {"name": recipient.name, "email": recipient.email},
        "sender": SenderView(config.sender_name, config.sender_email, config.sender_address),
        "notice": extra or {},
    }
    return svc.renderer.render(HTML_TEMPLATE, TEXT_TEMPLATE, SUBJECTS[kind], context)


def notify_by_email(svc: "Services", handoff_id: int, kind: str = "new", rep_id: int | None = None) -> NotifyResult:
    if kind not in KINDS:
        raise ValueError(f"notification kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    lease: str | None = None
    try:
        with svc.db.session() as session:
            handoff = session.get(Handoff, handoff_id)
            if handoff is None:
                log.warning("notification of handoff #%s skipped: it no longer exists", handoff_id)
                return NotifyResult("no-recipient")
            rep_id = rep_id or handoff.rep_id
            rep = session.get(SalesRep, rep_id) if rep_id else None
            if rep is None:
                log.warning("notification of handoff #%s skipped: nobody to notify", handoff_id)
                return NotifyResult("no-recipient")
            if _already_sent(handoff, kind, rep.id):
                return NotifyResult("already-sent")
            key = f"nurture:sales:notify:{handoff_id}:{kind}:{rep.id}"
            if not svc.redis.set(key, "1", nx=True, ex=LEASE_SECONDS):
                log.info("notification of handoff #%s (%s) is being sent by another worker", handoff_id, kind)
                return NotifyResult("busy")
            lease = key
            # Re-read under the lease: a worker that released it has committed its record.
            session.expire(handoff)
            if _already_sent(handoff, kind, rep.id):
                return NotifyResult("already-sent")
            result = _send(svc, session, handoff, kind, rep)
        # The session has committed the "notified" (or "notify_failed") record: only now may
        # another worker take the lease, and it will find the record.
        return result
    finally:
        if lease is not None:
            svc.redis.delete(lease)


def _send(svc: "Services", session, handoff: Handoff, kind: str, rep: SalesRep) -> NotifyResult:
    now = svc.clock.now()
    if kind == "new" and handoff.dossier:
        dossier = dict(handoff.dossier)
    else:  # later notifications show the story as it is now
        lead = session.get(Lead, handoff.lead_id)
        dossier = build_dossier(session, handoff, lead, now)
    dossier["links"] = dossier_links(svc.config, handoff.id, rep.id, svc.clock)
    extra = _notice(session, handoff, kind)
    subject, html, text = render_notification(svc, kind, dossier, rep, extra)
    mid = message_id(svc, handoff.id, kind, rep.id)
    email = outgoing_email(
        svc.config, to_addr=rep.email, to_name=rep.name, subject=subject, html=html, text=text,
        message_id=mid, date=now,
        extra_headers=(("X-Nurture-Handoff", str(handoff.id)), ("X-Nurture-Notification", kind)),
    )
    try:
        send_one(svc.config, svc.redis, email, now)
    except PermanentFailure as exc:  # a rep address the relay refuses: recorded, visible, not retried
        session.add(HandoffAction(handoff_id=handoff.id, action="notify_failed", actor="system", via="email",
                                  detail={"kind": kind, "rep_id": rep.id, "rep": rep.email,
                                          "error": f"{exc.code} {exc.reply}"[:500]}, at=now))
        log.error("notification of handoff #%s to %s refused: %s %s", handoff.id, rep.email, exc.code, exc.reply)
        return NotifyResult("failed")
    sent_at = svc.clock.now()
    latency = None
    if kind == "new":
        handoff.notified_at = sent_at
        if handoff.triggered_at is not None:
            # Real seconds: on a demo clock, clock time runs CLOCK_SPEED times faster.
            latency = real_seconds(svc.clock, sent_at - handoff.triggered_at)
    session.add(HandoffAction(handoff_id=handoff.id, action="notified", actor="system", via="email",
                              detail={"kind": kind, "rep_id": rep.id, "rep": rep.email, "message_id": mid,
                                      "latency_seconds": latency}, at=sent_at))
    if latency is not None:
        log.info("handoff #%s notified to %s %.3f s after the event that triggered it", handoff.id, rep.email, latency)
    else:
        log.info("handoff #%s: %s notification sent to %s", handoff.id, kind, rep.email)
    return NotifyResult("sent", mid, latency)


def _notice(session, handoff: Handoff, kind: str) -> dict[str, Any]:
    if kind == "escalation":
        first = session.get(SalesRep, handoff.rep_id) if handoff.rep_id else None
        return {"owner": first.name if first else "", "owner_email": first.email if first else "",
                "sla_due_at": _fmt(handoff.sla_due_at)}
    if kind == "transfer":
        return {"ownership_ended_at": _fmt(handoff.ownership_ends_at)}
    return {}


def _fmt(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else ""


class EmailDestination(Destination):
    """The rep's email: every kind of notice (new, escalation, transfer)."""

    name = "email"
    kinds = frozenset(KINDS)

    @property
    def max_attempts(self) -> int:
        return self.svc.config.smtp_max_attempts

    @property
    def job_timeout(self) -> int:
        return 120

    def prepare(self, session: Session, handoff: Handoff, notice: Notice, now: datetime) -> Notice | None:
        return notice if (notice.rep_id or handoff.rep_id) is not None else None

    def notify(self, notice: Notice) -> NotifyResult:
        return notify_by_email(self.svc, notice.handoff_id, notice.kind, notice.rep_id)
