"""Import leads from a CSV in one session: the in-process entry point (demo seed, scripts).

The job path (``leads.imports``: upload, RQ worker, progress, stored report) and this one share
the reader (``csvfile``) and the engine (``batch.import_chunk``); the merge policy is in
``leads.merge``. Here nothing is committed: the caller's session owns the transaction.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from ..config import Config
from .batch import CHUNK_SIZE, OUTCOMES, ImportContext, RowResult, import_chunk
from .csvfile import parse
from .hygiene import Hygiene

__all__ = ["ImportReport", "RowOutcome", "import_rows", "read_rows"]

#: Kept for callers of the first importer: one row's outcome.
RowOutcome = RowResult


@dataclass
class ImportReport:
    rows: list[RowResult] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.rows if r.outcome == outcome)

    @property
    def lead_ids(self) -> list[int]:
        """The clean leads of the file (no hygiene flag), once each, in file order: the ones to enroll."""
        ids = dict.fromkeys(r.lead_id for r in self.rows if r.lead_id is not None and not r.flags)
        return list(ids)

    @property
    def all_lead_ids(self) -> list[int]:
        """Every lead the file touched, flagged ones included."""
        return list(dict.fromkeys(r.lead_id for r in self.rows if r.lead_id is not None))

    def summary(self) -> str:
        parts = [f"{self.count(o)} {o}" for o in OUTCOMES if self.count(o)]
        return f"{len(self.rows)} rows" + (": " + ", ".join(parts) if parts else "")


def configured_hygiene() -> Hygiene:
    """The hygiene rules of the running app's config (``HYGIENE_PATH``), else of ``Config.from_env``."""
    from flask import current_app, has_app_context

    if has_app_context() and "nurture" in current_app.extensions:
        return Hygiene.from_config(current_app.extensions["nurture"].config)
    return Hygiene.from_config(Config.from_env())


def read_rows(path: Path, mapping: dict[str, str] | None = None) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and the data rows ``(row number, {field: text})`` of a CSV file (the header is row 1).

    Raises ``ImportOptionsError`` (a ValueError) when the file has no header or no email column.
    """
    parsed = parse(Path(path).read_bytes(), mapping)
    return parsed.header, list(parsed.rows())


def import_rows(
    session: Session,
    rows: list[tuple[int, dict[str, str]]],
    source: str,
    now: datetime,
    progress: Callable[[int], None] | None = None,
    *,
    hygiene: Hygiene | None = None,
    check_deliverability: bool = False,
) -> ImportReport:
    """Import ``rows`` (from ``read_rows``) in the caller's session; flagged leads are stored, not enrolled.

    Without ``hygiene``, the rules of the configured ``HYGIENE_PATH`` apply (``configured_hygiene``).
    """
    ctx = ImportContext(hygiene=hygiene or configured_hygiene(), source=source, now=now,
                        check_deliverability=check_deliverability)
    report = ImportReport()
    for start in range(0, len(rows), CHUNK_SIZE):
        chunk = rows[start:start + CHUNK_SIZE]
        report.rows.extend(import_chunk(session, chunk, ctx))
        if progress:
            progress(len(chunk))
    session.flush()
    return report
