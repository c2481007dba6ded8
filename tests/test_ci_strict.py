"""Under CI=true a missing PostgreSQL, Redis service or Chromium fails the run; locally it skips.

Each case runs one real test of the suite in a child pytest, with the component pointed at
something that is not there.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_TEST = "tests/leads/test_role_accounts.py::test_it_team_in_the_shipped_sample_is_flagged_not_enrolled[postgresql]"
REDIS_TEST = "tests/leads/test_role_accounts.py::test_it_team_in_the_shipped_sample_is_flagged_not_enrolled[sqlite]"
BROWSER_TEST = "tests/web/test_signin_browser.py"
NOWHERE_PG = "postgresql+psycopg://postgres@127.0.0.1:1/test"


def run(test: str, ci: bool, **env: str) -> subprocess.CompletedProcess:
    child = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_XDIST_WORKER")}
    if ci:
        child["CI"] = "true"
    child.update(env)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-rsf", "-x", test],
                          cwd=str(ROOT), env=child, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("test", "env", "missing"), [
    (PG_TEST, {"NURTURE_TEST_PG": NOWHERE_PG}, "PostgreSQL is not reachable at postgresql+psycopg://postgres@127.0.0.1:1/test"),
    (REDIS_TEST, {"NURTURE_TEST_REDIS": "127.0.0.1:1"}, "no Redis service answers on 127.0.0.1:1"),
    (BROWSER_TEST, {"NURTURE_TEST_CHROMIUM": "/nonexistent/chromium"}, "no Chromium at /nonexistent/chromium"),
])
def test_a_missing_component_fails_on_ci_with_a_clear_message(test, env, missing):
    result = run(test, ci=True, **env)
    assert result.returncode == 1, result.stdout[-2000:]
    assert f"CI=true and {missing}" in result.stdout, result.stdout[-2000:]
    assert " skipped" not in result.stdout.splitlines()[-1]


def test_locally_a_missing_component_skips_saying_why():
    result = run(PG_TEST, ci=False, NURTURE_TEST_PG=NOWHERE_PG)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "1 skipped" in result.stdout.splitlines()[-1]
    assert "PostgreSQL is not reachable at postgresql+psycopg://postgres@127.0.0.1:1/test" in result.stdout
    result = run(BROWSER_TEST, ci=False, NURTURE_TEST_CHROMIUM="/nonexistent/chromium")
    assert result.returncode == 0 and "no Chromium at /nonexistent/chromium" in result.stdout
