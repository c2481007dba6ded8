"""Import leads from CSV by header name; a bad row is reported and never drops a good one.

Merge policy for an address we already have: a non-empty cell replaces the stored value, an
empty cell never erases one; custom fields merge the same way.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Lead, LeadStatus

TEXT_COLUMNS = ("first_name", "last_name", "title", "company", "region", "industry_sic", "industry_naics")
INT_COLUMNS = ("revenue", "employees", "locations")
KNOWN_COLUMNS = {"email", "timezone", "lead_source", *TEXT_COLUMNS, *INT_COLUMNS}


@dataclass
class RowOutcome:
    row: int
    email: str
    #: created | updated | rejected
    outcome: str
    reason: str = ""
    lead_id: int | None = None


@dataclass
class ImportReport:
    rows: list[RowOutcome] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.rows if r.outcome == outcome)

    @property
    def lead_ids(self) -> list[int]:
        return [r.lead_id for r in self.rows if r.lead_id is not None]

    def summary(self) -> str:
        return (f"{len(self.rows)} rows: {self.count('created')} created, {self.count('updated')} updated, "
                f"{self.count('rejected')} rejected")


def normalize_email(raw: str) -> str:
    """Validated and normalized (lower-cased) address; raises ValueError saying why not."""
    raw = (raw or "").strip()
    if not raw:
        raise ValueError("empty")
    try:
        result = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    return result.normalized.lower()


def read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and data rows with their line numbers (row 1 is the header)."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    sample = text[:4096]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = [h.strip().lower().replace(" ", "_") for h in next(reader)]
    except StopIteration:
        raise ValueError("the file is empty") from None
    if "email" not in header:
        raise ValueError(f"no 'email' column in the header (columns: {', '.join(header)})")
    rows = []
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        rows.append((number, {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header) if h}))
    return header, rows


def import_rows(
    session: Session,
    rows: list[tuple[int, dict[str, str]]],
    source: str,
    now: datetime,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    report = ImportReport()
    seen: dict[str, int] = {}
    for number, cells in rows:
        outcome = _import_row(session, number, cells, source, now, seen)
        report.rows.append(outcome)
        if progress:
            progress(1)
    session.flush()
    for r in report.rows:
        if r.lead_id is None and r.outcome != "rejected":
            r.lead_id = seen.get(r.email)
    return report


def _import_row(session: Session, number: int, cells: dict[str, str], source: str, now: datetime,
                seen: dict[str, int]) -> RowOutcome:
    raw_email = cells.get("email", "")
    try:
        email = normalize_email(raw_email)
    except ValueError as exc:
        return RowOutcome(number, raw_email, "rejected", f"row {number}, email: {exc}")
    warnings: list[str] = []
    values: dict[str, object] = {}
    for column in TEXT_COLUMNS:
        if cells.get(column):
            values[column] = cells[column][:200]
    for column in INT_COLUMNS:
        if cells.get(column):
            try:
                values[column] = int(cells[column].replace(",", "").replace("_", ""))
            except ValueError:
                warnings.append(f"{column}: not a whole number ({cells[column]!r}), ignored")
    tz = cells.get("timezone")
    if tz:
        try:
            ZoneInfo(tz)
            values["timezone"] = tz
        except (ZoneInfoNotFoundError, ValueError):
            warnings.append(f"timezone: unknown IANA zone {tz!r}, ignored")
    custom = {k: v for k, v in cells.items() if k not in KNOWN_COLUMNS and v}
    if email in seen:
        warnings.insert(0, "duplicate of an earlier row in this file, merged")
    with session.no_autoflush:
        lead = session.scalar(select(Lead).where(Lead.email == email))
    created = lead is None
    if created:
        lead = Lead(email=email, lead_source=cells.get("lead_source") or source, status=LeadStatus.new,
                    created_at=now, updated_at=now, qualification={}, custom_fields={})
        session.add(lead)
    for column, value in values.items():
        setattr(lead, column, value)
    if custom:
        lead.custom_fields = {**(lead.custom_fields or {}), **custom}
    lead.updated_at = now
    session.flush()
    seen[email] = lead.id
    outcome = "created" if created else "updated"
    reason = "; ".join(f"row {number}, {w}" for w in warnings)
    return RowOutcome(number, email, outcome, reason, lead.id)
