"""Start-up check of the rule files beside the campaigns: a broken file is reported before any
work is accepted, not discovered by the first drain or the first upload."""
from __future__ import annotations

from .config import Config


def rule_file_problems(config: Config) -> list[str]:
    """Every problem of the scoring rules, the hygiene rules and the sales team file, one line each."""
    from .leads.hygiene import HygieneConfigError, validate_hygiene_file
    from .sales.team import SalesTeamError, load_team
    from .scoring.rules import validate_rules_file

    problems = list(validate_rules_file(config.scoring_rules_path))
    try:
        validate_hygiene_file(config.hygiene_path)
    except HygieneConfigError as exc:
        problems.append(str(exc))
    if config.sales_team_path.exists():
        try:
            load_team(config.sales_team_path)
        except SalesTeamError as exc:
            problems.extend(str(problem) for problem in exc.problems)
    return problems
