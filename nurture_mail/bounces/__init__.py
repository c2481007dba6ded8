"""What comes back from mailboxes: bounces (DSNs, VERP), complaints and replies, by SMTP or webhook.

``verp`` and ``dsn`` are pure (no Flask, no database): the sender imports ``verp`` to write the
return path. ``feedback`` applies a bounce, complaint or reply to the database; ``inbound`` is
the capture server's hook for DSNs and mailto unsubscribes; ``webhook`` is the ESP endpoint.
"""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the ESP webhook (``POST /api/v1/webhooks/events``); safe to call twice."""
    from . import webhook

    if webhook.bp.name not in app.blueprints:
        app.register_blueprint(webhook.bp)
