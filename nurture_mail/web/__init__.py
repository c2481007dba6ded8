"""Web UI blueprints, one per area; ``init_app`` registers them all."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register every blueprint of the web UI."""
