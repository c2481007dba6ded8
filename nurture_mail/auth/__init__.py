"""Users, roles, passwords, API tokens, and the checks that guard every view and API route."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Install sign-in for the web UI and token authentication for the API."""
