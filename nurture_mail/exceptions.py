"""Domain exceptions: each says what is wrong and where."""
from __future__ import annotations

from dataclasses import dataclass


class NurtureError(Exception):
    """Base of every error nurture_mail raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One error at one place: ``campaigns/x.yaml: steps[3].teaches: unknown topic 'pricng'``."""

    source: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: {self.path}" if self.path else self.source
        return f"{where}: {self.message}"


class RuleFileError(NurtureError):
    """A rule file (campaign, scoring rules, sales team, hygiene) has errors; ``problems`` lists
    all of them, not just the first, each naming the file and the path inside it."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class CampaignDefinitionError(RuleFileError):
    """A campaign definition has errors."""


class NotFound(NurtureError):
    """A lead, campaign or other record named by the caller does not exist."""


class InvalidInput(NurtureError):
    """Input from a user (CLI argument, API field, CSV cell) that cannot be used."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)
