"""Turn a delivery (lead × step) into an OutgoingEmail: render context, subject, bodies, headers."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ..bounces.verp import verp_address
from ..config import Config
from ..onelinetext import free_text
from .mime import OutgoingEmail, message_id_for
from .ratelimit import deliverability_settings
from .render import Renderer, link_function, plain_view


class LeadLike(Protocol):
    """What an email reads of a lead: a ``Lead``, or a row of the send path."""

    @property
    def email(self) -> str: ...
    @property
    def first_name(self) -> str | None: ...
    @property
    def last_name(self) -> str | None: ...
    @property
    def title(self) -> str | None: ...
    @property
    def company(self) -> str | None: ...
    @property
    def custom_fields(self) -> dict[str, Any] | None: ...


class LinkLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def url(self) -> str: ...


class StepLike(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def preheader(self) -> str | None: ...
    @property
    def html_template(self) -> str: ...
    @property
    def text_template(self) -> str: ...
    @property
    def links(self) -> Sequence[Any]: ...


class CampaignLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def slug(self) -> str: ...


class DeliveryLike(Protocol):
    @property
    def id(self) -> int: ...


@plain_view
@dataclass(frozen=True)
class LeadView:
    """What templates may read of a lead; missing values are empty strings, never errors."""

    email: str
    first_name: str = ""
    last_name: str = ""
    title: str = ""
    company: str = ""
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p)

    @classmethod
    def of(cls, lead: LeadLike) -> "LeadView":
        # Values stored before control characters were refused at the door are made one line
        # here, so that a name never breaks the To: header or a subject (onelinetext).
        return cls(
            email=lead.email, first_name=free_text(lead.first_name or ""), last_name=free_text(lead.last_name or ""),
            title=free_text(lead.title or ""), company=free_text(lead.company or ""),
            fields=dict(lead.custom_fields or {}),
        )


@plain_view
@dataclass(frozen=True)
class SenderView:
    name: str
    email: str
    address: str


def outgoing_email(config: Config, *, to_addr: str, to_name: str, subject: str, html: str, text: str,
                   message_id: str, date: datetime, return_path: str | None = None,
                   extra_headers: tuple[tuple[str, str], ...] = (), text_qp: bytes | None = None,
                   html_qp: bytes | None = None) -> OutgoingEmail:
    """An email from the configured sender (From, Reply-To): every email the platform sends, nurture
    or sales notification, gets its sender headers here."""
    return OutgoingEmail(
        from_addr=config.sender_email, from_name=config.sender_name, to_addr=to_addr, to_name=to_name,
        subject=subject, html=html, text=text, message_id=message_id, date=date,
        reply_to=config.reply_to or None, return_path=return_path, extra_headers=extra_headers,
        text_qp=text_qp, html_qp=html_qp,
    )


class Composer:
    """Builds each email of a batch; the renderer's compiled templates are shared across batches."""

    def __init__(
        self,
        config: Config,
        renderer: Renderer,
        link_url: Callable[[Any, Any], str],
        unsubscribe_url: Callable[[Any], str],
        extra_headers: Callable[[Any], tuple[tuple[str, str], ...]] | None = None,
        context_extras: Callable[[Any], dict[str, Any]] | None = None,
    ) -> None:
        self.config = config
        self.renderer = renderer
        self.link_url = link_url
        self.unsubscribe_url = unsubscribe_url
        self.extra_headers = extra_headers
        #: More template variables per email (the open pixel and honeypot URLs of the layout).
        self.context_extras = context_extras
        self.sender = SenderView(config.sender_name, config.sender_email, config.sender_address)
        self._secret = config.secret_key.encode()
        self.bounce_domain = deliverability_settings(config).bounce_domain

    def context(self, delivery: DeliveryLike, lead: LeadLike, step: StepLike, campaign: CampaignLike) -> dict[str, Any]:
        urls = {link.name: self.link_url(delivery, link) for link in self.links_of(step)}
        extras = self.context_extras(delivery) if self.context_extras is not None else {}
        return {
            **extras,
            "lead": LeadView.of(lead),
            "campaign": {"name": campaign.name, "slug": campaign.slug},
            "step": {"key": step.key, "subject": step.subject},
            "preheader": step.preheader or "",
            "sender": self.sender,
            "link": link_function(urls),
            "unsubscribe_url": self.unsubscribe_url(delivery),
        }

    @staticmethod
    def links_of(step: StepLike) -> list[Any]:
        return list(step.links)

    def compose(self, delivery: DeliveryLike, lead: LeadLike, step: StepLike, campaign: CampaignLike,
                now: datetime) -> OutgoingEmail:
        context = self.context(delivery, lead, step, campaign)
        # What the context holds per step (renderer.STEP_CONSTANTS) is named by this key: each
        # email only fills in its own values (mail/slots.py).
        step_key = (campaign.slug, campaign.name, step.key, step.subject, step.preheader, self.sender)
        rendered = self.renderer.render_step(step.html_template, step.text_template, step.subject, context, step_key)
        headers: tuple[tuple[str, str], ...] = (("X-Nurture-Campaign", campaign.slug),)
        if self.extra_headers is not None:
            headers += self.extra_headers(delivery)
        return outgoing_email(
            self.config, to_addr=lead.email, to_name=context["lead"].name,
            subject=rendered.subject, html=rendered.html, text=rendered.text,
            text_qp=rendered.text_qp, html_qp=rendered.html_qp,
            message_id=message_id_for(delivery.id, self._secret, self.config.sender_domain), date=now,
            # VERP: a bounce sent back to this envelope sender names the delivery (bounces/verp.py).
            return_path=verp_address(delivery.id, self._secret, self.bounce_domain), extra_headers=headers,
        )
