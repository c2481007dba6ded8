"""The HTTP API under ``/api/v1`` with its OpenAPI document at ``/api/openapi.json``."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the API blueprints."""
