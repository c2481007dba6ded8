"""Reading a YAML file we validate (campaigns, scoring rules, the sales team): one place that
turns an unreadable file or a syntax error into a :class:`Problem` with line and column."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .exceptions import Problem


class YamlFileError(Exception):
    """The file cannot be read or parsed; ``problem`` says where and why."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


def read_yaml(path: Path | str, source: str) -> Any:
    """The parsed document; ``source`` is how problems name the file."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise YamlFileError(Problem(source, where, f"invalid YAML: {reason}")) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlFileError(Problem(source, "", f"cannot read file: {exc}")) from None
