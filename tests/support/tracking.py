"""Helpers that read what the SMTP server received the way a mail client would: the links of the
HTML part, the hidden honeypot link and the open pixel.
"""
from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urlsplit

from sqlalchemy import select

from nurture_mail.models import Event
from nurture_mail.tracking.ingest import drain_events

BROWSER = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.4 Safari/605.1.15")


@dataclass(frozen=True)
class FoundLink:
    href: str
    text: str
    hidden: bool

    @property
    def path(self) -> str:
        """The path a client requests (the app is reached directly, not at BASE_URL's host)."""
        return urlsplit(self.href).path


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[FoundLink] = []
        self.images: list[str] = []
        self._hidden_depth = 0
        self._stack: list[bool] = []
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        style = (attributes.get("style") or "").replace(" ", "").lower()
        hidden = "display:none" in style or attributes.get("aria-hidden") == "true"
        if tag in ("div", "span", "td", "table", "p"):
            self._stack.append(hidden)
            self._hidden_depth += hidden
        if tag == "a" and attributes.get("href"):
            self._open = {"href": attributes["href"], "text": "", "hidden": bool(self._hidden_depth) or hidden}
        if tag == "img" and attributes.get("src"):
            self.images.append(attributes["src"])

    def handle_endtag(self, tag):
        if tag in ("div", "span", "td", "table", "p") and self._stack:
            self._hidden_depth -= self._stack.pop()
        if tag == "a" and self._open is not None:
            self.links.append(FoundLink(self._open["href"], " ".join(self._open["text"].split()), self._open["hidden"]))
            self._open = None

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data


def parse_html(html: str) -> _LinkParser:
    parser = _LinkParser()
    parser.feed(html)
    parser.close()
    return parser


def visible_links(html: str) -> dict[str, FoundLink]:
    """Links a person sees, by their text."""
    return {link.text: link for link in parse_html(html).links if not link.hidden and link.text}


def honeypot_link(html: str) -> FoundLink:
    [hidden] = [link for link in parse_html(html).links if link.hidden]
    return hidden


def pixel_url(html: str) -> str:
    [pixel] = [src for src in parse_html(html).images if "/o/" in src]
    return pixel


def first_email(platform):
    """A lead enrolled and sent its first email through the real tick and worker: (lead id, message)."""
    lead_id = platform.add_lead("sec@bank.example", first_name="Sec")
    platform.enroll("sec@bank.example")
    platform.tick_and_work()
    [msg] = platform.received()
    return lead_id, msg


def stored_events(platform) -> list[Event]:
    """Every event, after draining the tracking buffer into the database."""
    drain_events(platform.svc)
    with platform.svc.db.session() as s:
        return list(s.scalars(select(Event).order_by(Event.id)))
