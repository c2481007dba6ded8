"""Scoring tests run on the integration platform (app, real SMTP server, Redis, a database)."""
from __future__ import annotations

from integration.conftest import Platform, platform  # noqa: F401  (the fixture, reused)
