"""Read ``campaigns/scoring.yaml`` and campaign ``handoff:`` blocks into ScoringRules, strictly.

Every error names the file and the place (``campaigns/scoring.yaml: fit.employees[1].min:
expected a number``), all of them at once, in the style of the campaign loader. The rules are
read once per process and again only when the file changes (its mtime), so a worker picks up
an edited file at its next batch without a restart.
"""
from __future__ import annotations

import difflib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from ..engine.scoring import (
    WEIGHT_KEYS,
    EngagementRules,
    FitRules,
    HandoffRule,
    IndustryRule,
    RangeRule,
    RegionRule,
    RuleOverride,
    ScoringRules,
)
from ..exceptions import Problem, RuleFileError
from ..models.lead import QUALIFICATION_ATTRIBUTES
from ..yamlfile import YamlFileError, read_yaml

TOP_KEYS = {"fit", "engagement", "handoff"}
FIT_KEYS = {"industry", "employees", "revenue", "region", "qualification"}
INDUSTRY_KEYS = {"label", "points", "sic", "naics", "names"}
RANGE_KEYS = {"label", "points", "min", "max"}
REGION_KEYS = {"label", "points", "regions"}
ENGAGEMENT_KEYS = {"weights", "half_life_days"}
THRESHOLD_KEYS = {"engagement_at_least", "fit_at_least", "hand_raiser"}
#: The rule when scoring.yaml has no ``handoff:`` block, or leaves a key out (DESIGN §5: engagement
#: and fit both at a threshold, or any hand-raiser click). An explicit ``null`` turns a threshold off.
DEFAULT_HANDOFF = HandoffRule(engagement_at_least=25.0, fit_at_least=40.0, hand_raiser=True)
#: Keys of a campaign's ``handoff:`` block.
CAMPAIGN_HANDOFF_KEYS = THRESHOLD_KEYS | {"scoring"}


class ScoringRulesError(RuleFileError):
    """The scoring rules have errors; ``problems`` lists every one."""


class _Collector:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.source, path, message))


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _unknown(data: Mapping, allowed: set[str], path: str, c: _Collector) -> None:
    for key in sorted(set(data) - allowed, key=str):
        close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        c.add(_join(path, str(key)), f"unknown key{hint}; expected one of {', '.join(sorted(allowed))}")


def _number(value: Any, path: str, c: _Collector, *, minimum: float | None = None,
            positive: bool = False) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        c.add(path, f"expected a number, got {value!r}")
        return None
    if positive and value <= 0:
        c.add(path, f"must be greater than 0, got {value!r}")
        return None
    if minimum is not None and value < minimum:
        c.add(path, f"must be at least {minimum:g}, got {value!r}")
        return None
    return float(value)


def _mapping(value: Any, path: str, c: _Collector, what: str) -> dict | None:
    if not isinstance(value, dict):
        c.add(path, f"expected a mapping ({what}), got {type(value).__name__}")
        return None
    return value


def _list(value: Any, path: str, c: _Collector) -> list | None:
    if value is None:
        return []
    if not isinstance(value, list):
        c.add(path, "expected a list of rules")
        return None
    return value


def _label(item: Mapping[str, Any], path: str, c: _Collector) -> str:
    label = item.get("label")
    if not isinstance(label, str) or not label.strip():
        c.add(_join(path, "label"), "required: the words a breakdown line shows")
        return ""
    return label.strip()


def _codes(value: Any, path: str, c: _Collector) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    codes: list[str] = []
    for i, item in enumerate(items):
        code = str(item) if isinstance(item, int) and not isinstance(item, bool) else item
        if not isinstance(code, str) or not code.isdigit() or len(code) > 8:
            c.add(f"{path}[{i}]" if isinstance(value, list) else path,
                  f"expected a code prefix of up to 8 digits (quote it to keep leading zeros), got {item!r}")
            continue
        codes.append(code)
    return tuple(codes)


def _names(value: Any, path: str, c: _Collector, what: str = "industry names") -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(n, str) and n.strip() for n in value):
        c.add(path, f"expected a non-empty list of {what}, got {value!r}")
        return ()
    return tuple(n.strip() for n in value)


# -- sections --------------------------------------------------------------------------------


def _fit(raw: Any, c: _Collector) -> FitRules:
    if raw is None:
        return FitRules()
    data = _mapping(raw, "fit", c, "industry, employees, revenue, region, qualification")
    if data is None:
        return FitRules()
    _unknown(data, FIT_KEYS, "fit", c)
    return FitRules(_fit_rules(data, "industry", "label, points, sic, naics, names", _industry_rule, c),
                    _fit_rules(data, "employees", "label, points, min, max", _range_rule, c),
                    _fit_rules(data, "revenue", "label, points, min, max", _range_rule, c),
                    _fit_rules(data, "region", "label, points, regions", _region_rule, c),
                    _qualification_points(data.get("qualification"), c))


_Rule = TypeVar("_Rule")


def _fit_rules(data: Mapping[str, Any], section: str, keys: str,
               parse: Callable[[Mapping[str, Any], str, _Collector], _Rule | None], c: _Collector) -> tuple[_Rule, ...]:
    """The rules of one list of the fit block (``fit.industry``, …), each item checked by ``parse``."""
    rules: list[_Rule] = []
    for i, item in enumerate(_list(data.get(section), f"fit.{section}", c) or []):
        path = f"fit.{section}[{i}]"
        if _mapping(item, path, c, keys) is None:
            continue
        rule = parse(item, path, c)
        if rule is not None:
            rules.append(rule)
    return tuple(rules)


def _industry_rule(item: Mapping[str, Any], path: str, c: _Collector) -> IndustryRule | None:
    _unknown(item, INDUSTRY_KEYS, path, c)
    label = _label(item, path, c)
    points = _number(item.get("points"), f"{path}.points", c)
    sic = _codes(item.get("sic"), f"{path}.sic", c)
    naics = _codes(item.get("naics"), f"{path}.naics", c)
    names = _names(item.get("names"), f"{path}.names", c) if "names" in item else ()
    if not any(k in item for k in ("sic", "naics", "names")):
        c.add(path, "expected sic and/or naics code prefixes, and/or industry names")
    return IndustryRule(label, points, sic, naics, names) if label and points is not None else None


def _range_rule(item: Mapping[str, Any], path: str, c: _Collector) -> RangeRule | None:
    _unknown(item, RANGE_KEYS, path, c)
    label = _label(item, path, c)
    points = _number(item.get("points"), f"{path}.points", c)
    bounds: dict[str, float | None] = {}
    for bound in ("min", "max"):
        bounds[bound] = (None if item.get(bound) is None
                         else _number(item.get(bound), f"{path}.{bound}", c, minimum=0))
    low, high = bounds["min"], bounds["max"]
    if item.get("min") is None and item.get("max") is None:
        c.add(path, "expected min and/or max")
    elif low is not None and high is not None and low > high:
        c.add(path, f"min {low:g} is above max {high:g}")
    return RangeRule(label, points, low, high) if label and points is not None else None


def _region_rule(item: Mapping[str, Any], path: str, c: _Collector) -> RegionRule | None:
    _unknown(item, REGION_KEYS, path, c)
    label = _label(item, path, c)
    points = _number(item.get("points"), f"{path}.points", c)
    names = _names(item.get("regions"), f"{path}.regions", c, what="region names")
    return RegionRule(label, points, names) if label and points is not None else None


def _qualification_points(raw: Any, c: _Collector) -> dict[str, float]:
    qualification: dict[str, float] = {}
    if raw is None or _mapping(raw, "fit.qualification", c, "attribute: points") is None:
        return qualification
    for key, value in raw.items():
        path = f"fit.qualification.{key}"
        if key not in QUALIFICATION_ATTRIBUTES:
            close = difflib.get_close_matches(str(key), QUALIFICATION_ATTRIBUTES, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            c.add(path, f"unknown qualification attribute{hint}")
            continue
        points = _number(value, path, c)
        if points is not None:
            qualification[key] = points
    return qualification


def _weights(raw: Any, path: str, c: _Collector) -> dict[str, float]:
    weights: dict[str, float] = {}
    data = _mapping(raw, path, c, "event kind: points")
    if data is None:
        return weights
    _unknown(data, set(WEIGHT_KEYS), path, c)
    for key in WEIGHT_KEYS:
        if key in data:
            value = _number(data[key], f"{path}.{key}", c, minimum=0)
            if value is not None:
                weights[key] = value
    return weights


def _engagement(raw: Any, c: _Collector, path: str = "engagement") -> tuple[dict[str, float], float | None]:
    """Weights and half-life as given (a campaign override may set either)."""
    data = _mapping(raw, path, c, "weights, half_life_days")
    if data is None:
        return {}, None
    _unknown(data, ENGAGEMENT_KEYS, path, c)
    weights = _weights(data["weights"], f"{path}.weights", c) if "weights" in data else {}
    half_life = None
    if "half_life_days" in data:
        half_life = _number(data["half_life_days"], f"{path}.half_life_days", c, positive=True)
    return weights, half_life


def _thresholds(data: Mapping, path: str, c: _Collector) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key in ("engagement_at_least", "fit_at_least"):
        if key in data:
            value = data[key]
            if value is None:
                found[key] = None  # explicitly not required
            else:
                number = _number(value, _join(path, key), c)
                if number is not None:
                    found[key] = number
    if "hand_raiser" in data:
        if not isinstance(data["hand_raiser"], bool):
            c.add(_join(path, "hand_raiser"), f"expected true or false, got {data['hand_raiser']!r}")
        else:
            found["hand_raiser"] = data["hand_raiser"]
    return found


def parse_rules(data: Any, source: str) -> ScoringRules:
    """Validate the rules file's content; ScoringRulesError lists every problem."""
    c = _Collector(source)
    if not isinstance(data, dict):
        raise ScoringRulesError([Problem(source, "", "expected a mapping with fit, engagement and handoff")])
    _unknown(data, TOP_KEYS, "", c)
    fit = _fit(data.get("fit"), c)
    weights: dict[str, float] = {}
    half_life: float | None = None
    if "engagement" not in data:
        c.add("engagement", "required: weights and half_life_days")
    else:
        weights, half_life = _engagement(data["engagement"], c)
        if isinstance(data["engagement"], dict):
            if "half_life_days" not in data["engagement"]:
                c.add("engagement.half_life_days", "required")
            if "weights" not in data["engagement"]:
                c.add("engagement.weights", "required")
    handoff = DEFAULT_HANDOFF
    raw_handoff = data.get("handoff")
    if raw_handoff is not None and _mapping(raw_handoff, "handoff", c, ", ".join(sorted(THRESHOLD_KEYS))):
        _unknown(raw_handoff, THRESHOLD_KEYS, "handoff", c)
        handoff = replace(DEFAULT_HANDOFF, **_thresholds(raw_handoff, "handoff", c))
    if c.problems:
        raise ScoringRulesError(c.problems)
    return ScoringRules(fit=fit, engagement=EngagementRules(weights, half_life or 30.0), handoff=handoff)


def check_handoff_block(data: Any, path: str, add) -> RuleOverride:
    """Validate a campaign's ``handoff:`` block; ``add(path, message)`` records each problem."""
    c = _Collector("")
    override = _override(data, path, c)
    for problem in c.problems:
        add(problem.path, problem.message)
    return override


def _override(data: Any, path: str, c: _Collector) -> RuleOverride:
    if data is None:
        return RuleOverride()
    block = _mapping(data, path, c, ", ".join(sorted(CAMPAIGN_HANDOFF_KEYS)))
    if block is None:
        return RuleOverride()
    _unknown(block, CAMPAIGN_HANDOFF_KEYS, path, c)
    thresholds = _thresholds(block, path, c)
    weights: dict[str, float] = {}
    half_life: float | None = None
    if block.get("scoring") is not None:
        weights, half_life = _engagement(block["scoring"], c, _join(path, "scoring"))
    return RuleOverride(handoff=thresholds, weights=weights, half_life_days=half_life)


def parse_override(data: Any, source: str = "campaign") -> RuleOverride:
    """A stored ``Campaign.handoff_rule``; ScoringRulesError when it does not validate."""
    c = _Collector(source)
    override = _override(data or None, "handoff", c)
    if c.problems:
        raise ScoringRulesError(c.problems)
    return override


# -- the file, cached by mtime ---------------------------------------------------------------

_cache: dict[Path, tuple[tuple[int, int], ScoringRules]] = {}
_lock = threading.Lock()


def _display(path: Path) -> str:
    parts = path.parts
    return str(Path(*parts[-2:])) if len(parts) >= 2 else str(path)


def read_rules_file(path: Path) -> ScoringRules:
    """Parse and validate the file, uncached (the CLI's check uses this)."""
    source = _display(Path(path))
    try:
        data = read_yaml(path, source)
    except YamlFileError as exc:
        raise ScoringRulesError([exc.problem]) from None
    return parse_rules(data, source)


def validate_rules_file(path: str | Path) -> list[str]:
    """Every problem of the rules file, one line each (``campaigns/scoring.yaml: handoff.x: …``);
    an empty list when it is valid. Never raises for a bad or missing file: ``init`` and ``run``
    print the lines and refuse to start."""
    try:
        read_rules_file(Path(path))
    except ScoringRulesError as exc:
        return [str(problem) for problem in exc.problems]
    return []


def load_rules(path: Path) -> ScoringRules:
    """The rules in ``path``, read again only when the file changed since the last call."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise ScoringRulesError([Problem(_display(path), "", f"cannot read file: {exc}")]) from None
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _lock:
        cached = _cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    rules = read_rules_file(path)
    with _lock:
        _cache[path] = (stamp, rules)
    return rules


_override_cache: dict[str, RuleOverride] = {}


def campaign_rules(base: ScoringRules, handoff_rule: Mapping[str, Any] | None, source: str) -> ScoringRules:
    """``base`` with a campaign's stored ``handoff_rule`` applied; parsed once per distinct rule."""
    if not handoff_rule:
        return base
    key = json.dumps(handoff_rule, sort_keys=True, default=str)
    override = _override_cache.get(key)
    if override is None:
        override = parse_override(handoff_rule, source)
        if len(_override_cache) > 1000:
            _override_cache.clear()
        _override_cache[key] = override
    return base.overridden(override)
