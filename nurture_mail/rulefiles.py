"""Start-up check of the rule files beside the campaigns: a broken file is reported before any
work is accepted, not discovered by the first drain or the first upload."""
from __future__ import annotations

from .config import Config
from .exceptions import RuleFileError


def rule_file_problems(config: Config) -> list[str]:
    """Every problem of the scoring rules, the hygiene rules and the sales team file, one line each."""
    from .leads.hygiene import validate_hygiene_file
    from .sales.team import load_team
    from .scoring.rules import read_rules_file

    checks = [lambda: read_rules_file(config.scoring_rules_path), lambda: validate_hygiene_file(config.hygiene_path)]
    if config.sales_team_path.exists():
        checks.append(lambda: load_team(config.sales_team_path))
    problems: list[str] = []
    for check in checks:
        try:
            check()
        except RuleFileError as exc:
            problems.extend(str(problem) for problem in exc.problems)
    return problems
