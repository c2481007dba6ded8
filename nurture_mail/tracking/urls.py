"""The URLs an email carries: links, the unsubscribe page, and the List-Unsubscribe headers."""
from __future__ import annotations

from ..config import Config
from ..models import Delivery, Link
from .tokens import Tokens


class TrackingUrls:
    def __init__(self, config: Config) -> None:
        self.base_url = config.base_url
        self.tokens = Tokens(config.secret_key)
        self.unsubscribe_mailto = f"unsubscribe@{config.sender_domain}"
        self._last: tuple[int, str] = (0, "")

    def link(self, delivery: Delivery, link: Link) -> str:
        """The tracked click URL of one link of this email: ``{BASE_URL}/c/<signed token>``.

        The token signs the delivery, the link and its URL together, so the redirect can only
        go to this URL, and a click names this email (tracking/clicks.py).
        """
        return f"{self.base_url}/c/{self.tokens.click(delivery.id, link.id, link.url)}"

    def open_pixel(self, delivery: Delivery) -> str:
        """The open pixel's URL (a 1×1 GIF); fetched by mail clients, and by privacy proxies."""
        return f"{self.base_url}/o/{self.tokens.open(delivery.id)}.gif"

    def honeypot(self, delivery: Delivery) -> str:
        """A click URL hidden from people in the layout: only a machine follows it."""
        return f"{self.base_url}/c/{self.tokens.honeypot(delivery.id)}"

    def context_extras(self, delivery: Delivery) -> dict[str, str]:
        """Template variables for ``templates/base.html``: ``open_pixel_url``, ``honeypot_url``."""
        return {"open_pixel_url": self.open_pixel(delivery), "honeypot_url": self.honeypot(delivery)}

    def unsubscribe(self, delivery: Delivery) -> str:
        # Asked twice per email (body and List-Unsubscribe): sign once.
        if self._last[0] != delivery.id:
            self._last = (delivery.id, f"{self.base_url}/u/{self.tokens.unsubscribe(delivery.id, delivery.lead_id)}")
        return self._last[1]

    def list_unsubscribe_headers(self, delivery: Delivery) -> tuple[tuple[str, str], ...]:
        """RFC 8058: an HTTPS URI that alone names recipient and list, and the one-click flag.

        The mailto's subject carries the same token, so a mailto unsubscribe names the address
        we wrote to even when it comes back from an alias (bounces/inbound.py).
        """
        url = self.unsubscribe(delivery)
        token = url.rpartition("/")[2]
        return (
            ("List-Unsubscribe", f"<{url}>, <mailto:{self.unsubscribe_mailto}?subject=unsubscribe%20{token}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        )
