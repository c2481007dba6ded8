"""The sales team file (``campaigns/sales_team.yaml``): validated strictly, synced idempotently.

The file is the source of truth for who sells: reps (closers in the incoming group, territory
owners, managers) and territories. Syncing upserts reps by email and territories by name; a
rep missing from the file is retired (kept for the handoffs it holds, but no longer incoming
or available), a territory missing from the file is removed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..addresses import InvalidEmail, normalize_email
from ..exceptions import Problem, RuleFileError
from ..models import SalesRep, Territory
from ..onelinetext import control_problem
from ..yamlfile import YamlFileError, read_yaml

__all__ = ["RepSpec", "SalesTeamError", "SyncReport", "TeamSpec", "TerritorySpec", "load_team", "sync_sales_team"]

_INDUSTRY = re.compile(r"\d{1,8}\Z")
REP_KEYS = frozenset({"email", "name", "incoming", "available", "manager"})
TERRITORY_KEYS = frozenset({"name", "region", "industry", "owner"})


class SalesTeamError(RuleFileError):
    """The team file has errors; ``problems`` lists every one, each naming file and path."""


@dataclass(frozen=True)
class RepSpec:
    email: str
    name: str
    incoming: bool = False
    available: bool = True
    manager: str | None = None


@dataclass(frozen=True)
class TerritorySpec:
    name: str
    owner: str
    region: str | None = None
    industry: str | None = None


@dataclass(frozen=True)
class TeamSpec:
    reps: tuple[RepSpec, ...]
    territories: tuple[TerritorySpec, ...]


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    territories_created: list[str] = field(default_factory=list)
    territories_updated: list[str] = field(default_factory=list)
    territories_removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.retired or self.territories_created
                    or self.territories_updated or self.territories_removed)

    def summary(self) -> str:
        return (f"reps: {len(self.created)} created, {len(self.updated)} updated, {len(self.unchanged)} unchanged, "
                f"{len(self.retired)} retired; territories: {len(self.territories_created)} created, "
                f"{len(self.territories_updated)} updated, {len(self.territories_removed)} removed")


def load_team(path: Path) -> TeamSpec:
    """Read and validate the team file; raises :class:`SalesTeamError` listing every problem."""
    source = str(path)
    try:
        data = read_yaml(path, source)
    except YamlFileError as exc:
        raise SalesTeamError([exc.problem]) from None
    return parse_team(data, source)


class _Problems:
    """The problems found so far in one team file."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.found: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.found.append(Problem(self.source, path, message))

    def unknown_keys(self, raw: dict, allowed: frozenset[str], where: str) -> None:
        for key in sorted(set(raw) - allowed, key=str):
            self.add(f"{where}.{key}", f"unknown key (expected one of {', '.join(sorted(allowed))})")


def _address(value: Any) -> str | None:
    """The normalized address, or None when ``value`` is not an email address."""
    if not isinstance(value, str):
        return None
    try:
        return normalize_email(value)
    except InvalidEmail:
        return None


def parse_team(data: Any, source: str) -> TeamSpec:
    """Validate the parsed team file; :class:`SalesTeamError` lists every problem."""
    problems = _Problems(source)
    if not isinstance(data, dict):
        raise SalesTeamError([Problem(source, "", "expected a mapping with 'reps' and 'territories'")])
    for key in sorted(set(data) - {"reps", "territories"}, key=str):
        problems.add(str(key), "unknown key (expected 'reps' and 'territories')")
    reps, seen = _parse_reps(data.get("reps"), problems)
    territories = _parse_territories(data.get("territories") or [], seen, problems)
    if problems.found:
        raise SalesTeamError(problems.found)
    return TeamSpec(tuple(reps), tuple(territories))


def _parse_reps(raw_reps: Any, problems: _Problems) -> tuple[list[RepSpec], dict[str, int]]:
    """The valid reps, and the index of each rep's email in the file."""
    if not isinstance(raw_reps, list) or not raw_reps:
        problems.add("reps", "expected a non-empty list of reps")
        raw_reps = []
    reps: list[RepSpec] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_reps):
        rep = _parse_rep(raw, f"reps[{index}]", seen, problems)
        if rep is not None:
            seen[rep.email] = index
            reps.append(rep)
    for rep in reps:
        if rep.manager is not None and rep.manager not in seen:
            problems.add(f"reps[{seen[rep.email]}].manager", f"{rep.manager} is not a rep of this file")
    return reps, seen


def _parse_rep(raw: Any, where: str, seen: dict[str, int], problems: _Problems) -> RepSpec | None:
    if not isinstance(raw, dict):
        problems.add(where, "expected a mapping with email, name, incoming, available, manager")
        return None
    problems.unknown_keys(raw, REP_KEYS, where)
    email = _address(raw.get("email"))
    if email is None:
        problems.add(f"{where}.email", f"expected an email address, got {raw.get('email')!r}")
        return None
    if email in seen:
        problems.add(f"{where}.email", f"{email} is already listed at reps[{seen[email]}]")
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.add(f"{where}.name", "expected the rep's name")
        name = email
    elif control_problem(name.strip()) is not None:  # the To: name of the rep's notifications
        problems.add(f"{where}.name", f"{control_problem(name.strip())}; one line of text expected")
        name = email
    flags = {}
    for key, default in (("incoming", False), ("available", True)):
        value = raw.get(key, default)
        if not isinstance(value, bool):
            problems.add(f"{where}.{key}", f"expected true or false, got {value!r}")
            value = default
        flags[key] = value
    manager = _parse_manager(raw.get("manager"), email, where, problems)
    return RepSpec(email, name.strip(), flags["incoming"], flags["available"], manager)


def _parse_manager(raw: Any, email: str, where: str, problems: _Problems) -> str | None:
    if raw is None:
        return None
    manager = _address(raw)
    if manager is None:
        problems.add(f"{where}.manager", f"expected the manager's email, got {raw!r}")
        return None
    if manager == email:
        problems.add(f"{where}.manager", "a rep cannot be their own manager")
        return None
    return manager


def _parse_territories(raw_territories: Any, reps: dict[str, int], problems: _Problems) -> list[TerritorySpec]:
    if not isinstance(raw_territories, list):
        problems.add("territories", "expected a list of territories")
        return []
    territories: list[TerritorySpec] = []
    names: dict[str, int] = {}
    for index, raw in enumerate(raw_territories):
        territory = _parse_territory(raw, f"territories[{index}]", reps, names, problems)
        if territory is not None:
            names[territory.name] = index
            territories.append(territory)
    return territories


def _parse_territory(raw: Any, where: str, reps: dict[str, int], names: dict[str, int],
                     problems: _Problems) -> TerritorySpec | None:
    if not isinstance(raw, dict):
        problems.add(where, "expected a mapping with name, region and/or industry, owner")
        return None
    problems.unknown_keys(raw, TERRITORY_KEYS, where)
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.add(f"{where}.name", "expected the territory's name")
        return None
    name = name.strip()
    if name in names:
        problems.add(f"{where}.name", f"{name!r} is already listed at territories[{names[name]}]")
        return None
    region = _parse_region(raw.get("region"), where, problems)
    industry = _parse_industry(raw.get("industry"), where, problems)
    if raw.get("region") is None and raw.get("industry") is None:
        problems.add(where, "a territory needs a region, an industry, or both")
    owner = _address(raw.get("owner"))
    if owner is None or owner not in reps:
        problems.add(f"{where}.owner", f"expected the email of a rep of this file, got {raw.get('owner')!r}")
        return None
    return TerritorySpec(name, owner, region, industry)


def _parse_region(region: Any, where: str, problems: _Problems) -> str | None:
    if region is None:
        return None
    if not isinstance(region, str) or not region.strip():
        problems.add(f"{where}.region", f"expected a region name, got {region!r}")
        return None
    return region.strip()


def _parse_industry(industry: Any, where: str, problems: _Problems) -> str | None:
    if isinstance(industry, int) and not isinstance(industry, bool):
        industry = str(industry)
    if industry is None:
        return None
    if not isinstance(industry, str) or not _INDUSTRY.match(industry.strip()):
        problems.add(f"{where}.industry",
                     f"expected a SIC/NAICS code prefix of 1 to 8 digits (quote it), got {industry!r}")
        return None
    return industry.strip()


def sync_sales_team(session: Session, path: Path, now: datetime) -> SyncReport:
    """Upsert the team file into the database; running it twice changes nothing the second time."""
    team = load_team(path)
    report = SyncReport()
    existing = {rep.email: rep for rep in session.scalars(select(SalesRep))}
    for spec in team.reps:
        rep = existing.get(spec.email)
        if rep is None:
            rep = SalesRep(email=spec.email, name=spec.name, incoming=spec.incoming, available=spec.available,
                           created_at=now)
            session.add(rep)
            existing[spec.email] = rep
            report.created.append(spec.email)
        elif (rep.name, rep.incoming, rep.available) != (spec.name, spec.incoming, spec.available):
            rep.name, rep.incoming, rep.available = spec.name, spec.incoming, spec.available
            report.updated.append(spec.email)
        else:
            report.unchanged.append(spec.email)
    session.flush()
    for spec in team.reps:
        rep = existing[spec.email]
        manager_id = existing[spec.manager].id if spec.manager else None
        if rep.manager_id != manager_id:
            rep.manager_id = manager_id
            if spec.email in report.unchanged:
                report.unchanged.remove(spec.email)
                report.updated.append(spec.email)
    listed = {spec.email for spec in team.reps}
    for email, rep in existing.items():
        if email not in listed and (rep.incoming or rep.available):
            rep.incoming = False
            rep.available = False
            report.retired.append(email)
    territories = {t.name: t for t in session.scalars(select(Territory))}
    for place in team.territories:
        owner_id = existing[place.owner].id
        territory = territories.get(place.name)
        if territory is None:
            session.add(Territory(name=place.name, region=place.region, industry=place.industry, owner_id=owner_id))
            report.territories_created.append(place.name)
        elif (territory.region, territory.industry, territory.owner_id) != (place.region, place.industry, owner_id):
            territory.region, territory.industry, territory.owner_id = place.region, place.industry, owner_id
            report.territories_updated.append(place.name)
    wanted = {spec.name for spec in team.territories}
    for name, territory in territories.items():
        if name not in wanted:
            session.delete(territory)
            report.territories_removed.append(name)
    session.flush()
    return report
