"""Sales handoff: routing, dossier, notifications, sales actions, SLA and ownership."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the sales blueprints (signed accept / reject links)."""
    from .views import bp

    app.register_blueprint(bp)
