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
        return link.url

    def unsubscribe(self, delivery: Delivery) -> str:
        # Asked twice per email (body and List-Unsubscribe): sign once.
        if self._last[0] != delivery.id:
            self._last = (delivery.id, f"{self.base_url}/u/{self.tokens.unsubscribe(delivery.id, delivery.lead_id)}")
        return self._last[1]

    def list_unsubscribe_headers(self, delivery: Delivery) -> tuple[tuple[str, str], ...]:
        """RFC 8058: an HTTPS URI that alone names recipient and list, and the one-click flag."""
        return (
            ("List-Unsubscribe", f"<{self.unsubscribe(delivery)}>, <mailto:{self.unsubscribe_mailto}?subject=unsubscribe>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        )
