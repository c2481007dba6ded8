"""``init`` refuses broken rule files (scoring, hygiene, sales team), naming file and key."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_init(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environ.update(INSTANCE_PATH=str(tmp_path / "instance"), SECRET_KEY="cli-secret", **env)
    return subprocess.run([sys.executable, "-m", "nurture_mail", "init"], env=environ, cwd=str(ROOT),
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_init_lists_every_rule_file_problem_and_creates_nothing(tmp_path):
    scoring = tmp_path / "scoring.yaml"
    scoring.write_text("engagement:\n  weights: {open: lots}\n  half_life_days: 30\n")
    hygiene = tmp_path / "hygiene.yaml"
    hygiene.write_text("role_accounts: 5\n")
    team = tmp_path / "team.yaml"
    team.write_text("reps:\n  - {email: not-an-address, name: X}\n")
    result = run_init(tmp_path, SCORING_RULES_PATH=str(scoring), HYGIENE_PATH=str(hygiene), SALES_TEAM_PATH=str(team))
    assert result.returncode == 1
    assert "engagement.weights.open: expected a number, got 'lots'" in result.stderr
    assert "hygiene.yaml: role_accounts:" in result.stderr
    assert "team.yaml: reps[0]" in result.stderr
    assert "error(s) in rule files" in result.stderr
    assert "database ready" not in result.stdout  # refused before migrating anything


def test_init_with_the_shipped_rule_files_syncs_campaigns_and_the_sales_team(tmp_path):
    result = run_init(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "campaigns: 1 created" in result.stdout
    assert "sales team: reps: 6 created" in result.stdout
    again = run_init(tmp_path)
    assert "sales team: reps: 0 created, 0 updated, 6 unchanged" in again.stdout
