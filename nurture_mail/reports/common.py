"""What every report shares: the date range, the table it shows (and exports), the chart."""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from ..exceptions import InvalidInput

__all__ = ["Chart", "Column", "DateRange", "ReportResult", "Series", "Table", "parse_range", "rate"]

#: The longest range a report accepts (ten years): beyond it a typo, not a question.
MAX_DAYS = 3660


@dataclass(frozen=True)
class DateRange:
    """Whole UTC days, both ends included."""

    start: date
    end: date

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time(0), tzinfo=UTC)

    @property
    def end_at(self) -> datetime:
        """Exclusive: midnight after the last day."""
        return datetime.combine(self.end + timedelta(days=1), time(0), tzinfo=UTC)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def label(self) -> str:
        return f"{self.start:%d %b %Y} – {self.end:%d %b %Y}"


def _parse_day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"expected a date such as 2026-03-01, got {value!r}", field=name) from None


def parse_range(args: Mapping[str, str], today: date, default_days: int = 30) -> DateRange:
    """``from`` and ``to`` (YYYY-MM-DD, both optional): the last ``default_days`` days by default."""
    raw_to = (args.get("to") or "").strip()
    raw_from = (args.get("from") or "").strip()
    end = _parse_day(raw_to, "to") if raw_to else today
    start = _parse_day(raw_from, "from") if raw_from else end - timedelta(days=default_days - 1)
    if start > end:
        raise InvalidInput(f"the range starts ({start}) after it ends ({end})", field="from")
    if (end - start).days + 1 > MAX_DAYS:
        raise InvalidInput(f"a range of at most {MAX_DAYS} days, got {(end - start).days + 1}", field="from")
    return DateRange(start, end)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    #: text | int | pct (a 0..1 ratio) | money | hours | days
    kind: str = "int"


@dataclass
class Table:
    key: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    #: What the empty table says, with what to do next.
    empty: str = "Nothing in this range."
    #: Optional link (url template with {value}) per column key, so numbers lead to the rows behind.
    links: dict[str, str] = field(default_factory=dict)

    def csv(self) -> str:
        """The table exactly as shown: the same columns, the same rows, the same rounding."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([c.label for c in self.columns])
        for row in self.rows:
            writer.writerow([csv_safe(format_cell(row.get(c.key), c.kind)) for c in self.columns])
        return out.getvalue()


def format_cell(value: Any, kind: str) -> str:
    """One cell as the page prints it (the CSV uses the same text, without thousands separators)."""
    if value is None:
        return ""
    if kind == "pct":
        return f"{float(value) * 100:.1f}%"
    if kind == "money":
        return f"{Decimal(value):.2f}"
    if kind in ("hours", "days"):
        return f"{float(value):.1f}"
    if kind == "int":
        return str(int(value))
    return str(value)


def csv_safe(text: str) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas: quote those that are not numbers."""
    if text and text[0] in "=+-@\t\r":
        try:
            float(text.rstrip("%"))
            return text
        except ValueError:
            return "'" + text
    return text


@dataclass(frozen=True)
class Series:
    label: str
    values: list[float]
    #: a CSS class of sales.css (fill colour), e.g. "s1".."s4"
    css: str = "s1"


@dataclass(frozen=True)
class Chart:
    """Data for a server-rendered SVG (``reports/charts.py``)."""

    #: bars (grouped vertical bars per category) | hbars (horizontal, one series) | funnel
    kind: str
    title: str
    categories: list[str]
    series: list[Series]
    #: int | pct | money: how values are labelled
    unit: str = "int"


@dataclass
class ReportResult:
    name: str
    title: str
    range: DateRange | None
    tables: list[Table]
    chart: Chart | None = None
    #: Sentences above the table (the monthly summary's sentence, the forecast's totals).
    summary: list[str] = field(default_factory=list)
    #: Notes under the title: how human counts are made, how the forecast is computed.
    notes: list[str] = field(default_factory=list)
    #: The choices the page offers (e.g. the campaigns of ``?campaign=``).
    options: dict[str, Any] = field(default_factory=dict)

    def table(self, key: str | None = None) -> Table:
        if key is None:
            return self.tables[0]
        for table in self.tables:
            if table.key == key:
                return table
        raise InvalidInput(f"no table {key!r} in report {self.name} (tables: "
                           f"{', '.join(t.key for t in self.tables)})", field="table")


def rate(part: float | int | None, whole: float | int | None) -> float | None:
    if not whole:
        return None
    return float(part or 0) / float(whole)
