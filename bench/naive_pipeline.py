"""The naive way, for comparison: premailer on every email, stdlib MIME generator, a new SMTP
connection per email, one RQ job per email, one commit per email."""
from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from nurture_mail import services
from nurture_mail.mail.compose import Composer
from nurture_mail.mail.render import Renderer
from nurture_mail.mail.transport import SMTPSettings
from nurture_mail.models import Delivery, DeliveryStatus, Step
from nurture_mail.tracking.urls import TrackingUrls


def naive_send_one(delivery_id: int) -> None:
    svc = services()
    with svc.db.session() as session:
        delivery = session.scalars(select(Delivery).where(Delivery.id == delivery_id).options(
            selectinload(Delivery.lead), selectinload(Delivery.step).selectinload(Step.links),
            selectinload(Delivery.step).selectinload(Step.campaign))).one()
        urls = TrackingUrls(svc.config)
        composer = Composer(svc.config, Renderer(svc.config.templates_dir),  # no cache: inline every time
                            link_url=urls.link, unsubscribe_url=urls.unsubscribe)
        email = composer.compose(delivery, delivery.lead, delivery.step, delivery.step.campaign, svc.clock.now())
        message = EmailMessage()
        message["From"] = f"{email.from_name} <{email.from_addr}>"
        message["To"] = email.to_addr
        message["Subject"] = email.subject
        message["Message-ID"] = email.message_id
        message.set_content(email.text, cte="base64")
        message.add_alternative(email.html, subtype="html", cte="base64")
        settings = SMTPSettings.from_url(svc.config.effective_smtp_url)
        with smtplib.SMTP(settings.host, settings.port) as smtp:
            smtp.sendmail(email.from_addr, [email.to_addr], message.as_bytes(policy=SMTP_POLICY))
        delivery.status = DeliveryStatus.sent
        delivery.sent_at = svc.clock.now()
