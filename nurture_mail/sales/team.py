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

from ..exceptions import NurtureError, Problem
from ..models import SalesRep, Territory
from ..onelinetext import control_problem
from ..yamlfile import YamlFileError, read_yaml

__all__ = ["RepSpec", "SalesTeamError", "SyncReport", "TeamSpec", "TerritorySpec", "load_team", "sync_sales_team"]

_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+\Z")
_INDUSTRY = re.compile(r"\d{1,8}\Z")
REP_KEYS = frozenset({"email", "name", "incoming", "available", "manager"})
TERRITORY_KEYS = frozenset({"name", "region", "industry", "owner"})


class SalesTeamError(NurtureError):
    """The team file has errors; ``problems`` lists every one, each naming file and path."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


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


def parse_team(data: Any, source: str) -> TeamSpec:
    problems: list[Problem] = []

    def add(path: str, message: str) -> None:
        problems.append(Problem(source, path, message))

    if not isinstance(data, dict):
        raise SalesTeamError([Problem(source, "", "expected a mapping with 'reps' and 'territories'")])
    for key in sorted(set(data) - {"reps", "territories"}, key=str):
        add(str(key), "unknown key (expected 'reps' and 'territories')")
    raw_reps = data.get("reps")
    if not isinstance(raw_reps, list) or not raw_reps:
        add("reps", "expected a non-empty list of reps")
        raw_reps = []
    reps: list[RepSpec] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_reps):
        where = f"reps[{index}]"
        if not isinstance(raw, dict):
            add(where, "expected a mapping with email, name, incoming, available, manager")
            continue
        for key in sorted(set(raw) - REP_KEYS, key=str):
            add(f"{where}.{key}", f"unknown key (expected one of {', '.join(sorted(REP_KEYS))})")
        email = raw.get("email")
        if not isinstance(email, str) or not _EMAIL.match(email.strip()):
            add(f"{where}.email", f"expected an email address, got {email!r}")
            continue
        email = email.strip().lower()
        if email in seen:
            add(f"{where}.email", f"{email} is already listed at reps[{seen[email]}]")
            continue
        seen[email] = index
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            add(f"{where}.name", "expected the rep's name")
            name = email
        elif control_problem(name.strip()) is not None:  # the To: name of the rep's notifications
            add(f"{where}.name", f"{control_problem(name.strip())}; one line of text expected")
            name = email
        flags = {}
        for key, default in (("incoming", False), ("available", True)):
            value = raw.get(key, default)
            if not isinstance(value, bool):
                add(f"{where}.{key}", f"expected true or false, got {value!r}")
                value = default
            flags[key] = value
        manager = raw.get("manager")
        if manager is not None:
            if not isinstance(manager, str) or not _EMAIL.match(manager.strip()):
                add(f"{where}.manager", f"expected the manager's email, got {manager!r}")
                manager = None
            else:
                manager = manager.strip().lower()
                if manager == email:
                    add(f"{where}.manager", "a rep cannot be their own manager")
                    manager = None
        reps.append(RepSpec(email, name.strip(), flags["incoming"], flags["available"], manager))
    for rep in reps:
        if rep.manager is not None and rep.manager not in seen:
            add(f"reps[{seen[rep.email]}].manager", f"{rep.manager} is not a rep of this file")
    raw_territories = data.get("territories") or []
    if not isinstance(raw_territories, list):
        add("territories", "expected a list of territories")
        raw_territories = []
    territories: list[TerritorySpec] = []
    names: dict[str, int] = {}
    for index, raw in enumerate(raw_territories):
        where = f"territories[{index}]"
        if not isinstance(raw, dict):
            add(where, "expected a mapping with name, region and/or industry, owner")
            continue
        for key in sorted(set(raw) - TERRITORY_KEYS, key=str):
            add(f"{where}.{key}", f"unknown key (expected one of {', '.join(sorted(TERRITORY_KEYS))})")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            add(f"{where}.name", "expected the territory's name")
            continue
        name = name.strip()
        if name in names:
            add(f"{where}.name", f"{name!r} is already listed at territories[{names[name]}]")
            continue
        names[name] = index
        region = raw.get("region")
        if region is not None and (not isinstance(region, str) or not region.strip()):
            add(f"{where}.region", f"expected a region name, got {region!r}")
            region = None
        industry = raw.get("industry")
        if isinstance(industry, int) and not isinstance(industry, bool):
            industry = str(industry)
        if industry is not None and (not isinstance(industry, str) or not _INDUSTRY.match(industry.strip())):
            add(f"{where}.industry", f"expected a SIC/NAICS code prefix of 1 to 8 digits (quote it), got {industry!r}")
            industry = None
        if raw.get("region") is None and raw.get("industry") is None:
            add(where, "a territory needs a region, an industry, or both")
        owner = raw.get("owner")
        if not isinstance(owner, str) or owner.strip().lower() not in seen:
            add(f"{where}.owner", f"expected the email of a rep of this file, got {owner!r}")
            continue
        territories.append(TerritorySpec(name, owner.strip().lower(), region.strip() if region else None,
                                         industry.strip() if industry else None))
    if problems:
        raise SalesTeamError(problems)
    return TeamSpec(tuple(reps), tuple(territories))


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
    for spec in team.territories:
        owner_id = existing[spec.owner].id
        territory = territories.get(spec.name)
        if territory is None:
            session.add(Territory(name=spec.name, region=spec.region, industry=spec.industry, owner_id=owner_id))
            report.territories_created.append(spec.name)
        elif (territory.region, territory.industry, territory.owner_id) != (spec.region, spec.industry, owner_id):
            territory.region, territory.industry, territory.owner_id = spec.region, spec.industry, owner_id
            report.territories_updated.append(spec.name)
    wanted = {spec.name for spec in team.territories}
    for name, territory in territories.items():
        if name not in wanted:
            session.delete(territory)
            report.territories_removed.append(name)
    session.flush()
    return report
