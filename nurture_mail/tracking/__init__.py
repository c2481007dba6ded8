"""What prospects do with their emails: clicks, opens, unsubscribes, bounces.

``init_app`` registers the public endpoints (no login: they are reached from emails and by
mail providers, and trust only HMAC-signed tokens).
"""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import clicks, unsubscribe

    app.register_blueprint(clicks.bp)
    app.register_blueprint(unsubscribe.bp)
