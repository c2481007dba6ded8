"""The monthly summary by email: on the 1st (``rq cron``) for the month just ended, or now
from the report page, to every active user subscribed to it.

Rendered by the app's sandboxed mail renderer (premailer-inlined, as every email) from
``templates/reports/monthly.html|txt``, built by ``mail.mime.build_message`` and sent through
``SMTPTransport``, the path of every other email. The scheduled send is idempotent per month
and user: a Redis key taken before sending and the same Message-ID for the same month and user,
so a second cron run (or two schedulers) sends nothing new.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from ..mail.compose import SenderView
from ..mail.mime import OutgoingEmail, build_message
from ..mail.transport import PermanentFailure, SMTPSettings, SMTPTransport
from ..models import User
from . import run_report
from .monthly import Month

if TYPE_CHECKING:
    from ..extensions import Services

__all__ = ["SendReport", "send_monthly_summary"]

log = logging.getLogger(__name__)

SUBJECT = "{{ sender.name }}: {{ month }} in one line"
#: A scheduled send of one month to one user is claimed for this long (then it may be retried).
CLAIM_SECONDS = 40 * 86400


@dataclass
class SendReport:
    month: str
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _message_id(svc: "Services", month: str, user_id: int, nonce: str) -> str:
    mac = hmac.new(svc.config.secret_key.encode(), f"nurture_mail monthly {month} {user_id} {nonce}".encode(),
                   hashlib.sha256).hexdigest()[:16]
    return f"<monthly.{month}.{user_id}.{mac}@{svc.config.sender_domain}>"


def send_monthly_summary(svc: "Services", now: datetime, month: str | None = None, scheduled: bool = False,
                         only_user_id: int | None = None) -> SendReport:
    """Email the summary of ``month`` (YYYY-MM; default: the month before ``now`` when
    ``scheduled``, else the current one) to the subscribed users (or just ``only_user_id``)."""
    with svc.db.session() as session:
        default = Month(now.year, now.month)
        chosen = Month.parse(month, now.date()) if month else (default.previous() if scheduled else default)
        result = run_report("monthly", session, svc.config, now, {"month": chosen.key()})
        table = result.table()
        query = select(User).where(User.active.is_(True))
        query = query.where(User.id == only_user_id) if only_user_id is not None else query.where(
            User.monthly_summary.is_(True))
        users = list(session.scalars(query.order_by(User.id)))
        recipients = [(u.id, u.email, u.name) for u in users]
    report = SendReport(chosen.key())
    base = svc.config.base_url.rstrip("/")
    sender = SenderView(svc.config.sender_name, svc.config.sender_email, svc.config.sender_address)
    settings = SMTPSettings.from_url(svc.config.effective_smtp_url, timeout=svc.config.smtp_timeout)
    for user_id, email, name in recipients:
        claim = f"nurture:reports:monthly:{chosen.key()}:{user_id}"
        if scheduled and not svc.redis.set(claim, "1", nx=True, ex=CLAIM_SECONDS):
            report.skipped.append(email)
            continue
        context = {
            "sender": sender, "recipient": {"email": email, "name": name}, "month": chosen.label(),
            "previous": chosen.previous().label(), "sentence": result.summary[0], "rows": table.rows,
            "note": result.notes[0], "report_url": f"{base}/reports/monthly?month={chosen.key()}",
            "account_url": f"{base}/reports/monthly",
        }
        subject, html, text = svc.renderer.render("reports/monthly.html", "reports/monthly.txt", SUBJECT, context)
        nonce = "scheduled" if scheduled else now.isoformat()
        message = OutgoingEmail(
            from_addr=svc.config.sender_email, from_name=svc.config.sender_name, to_addr=email, to_name=name,
            subject=subject, html=html, text=text, message_id=_message_id(svc, chosen.key(), user_id, nonce),
            date=now, extra_headers=(("X-Nurture-Report", f"monthly {chosen.key()}"),),
        )
        try:
            with SMTPTransport(settings) as transport:
                transport.send(svc.config.sender_email, email, build_message(message))
        except PermanentFailure as exc:
            log.error("monthly summary %s to %s refused: %s %s", chosen.key(), email, exc.code, exc.reply)
            report.failed.append(email)
            continue
        except Exception:
            if scheduled:
                svc.redis.delete(claim)  # a temporary failure: the job's retry sends it
            raise
        report.sent.append(email)
    log.info("monthly summary %s: sent to %d, skipped %d, failed %d", chosen.key(), len(report.sent),
             len(report.skipped), len(report.failed))
    return report
