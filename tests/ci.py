"""Skips that CI cannot hide: a component a test needs is missing → skip locally, fail on CI.

``CI=true`` (set by CI services) turns every such skip into a failure naming what is missing and
how to provide it, so a CI machine without PostgreSQL, the Redis service or Chromium cannot
pass by skipping a third of the suite.
"""
from __future__ import annotations

import os

import pytest

ON_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
#: The PostgreSQL test database (``NURTURE_TEST_PG``; ``off`` turns its tests off).
PG_URL = os.environ.get("NURTURE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def require(missing: str, fix: str) -> None:
    """A component a test needs is missing: skip the test here, fail it on CI."""
    if ON_CI:
        pytest.fail(f"CI=true and {missing}: {fix} (tests skip only outside CI)", pytrace=False)
    pytest.skip(f"{missing} ({fix})")
