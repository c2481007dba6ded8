"""A CSV lead import run as a job: its progress and the outcome of every row."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class ImportJob(Base):
    __tablename__ = "import_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(300))
    #: queued | running | done | failed
    status: Mapped[str] = mapped_column(String(12), default="queued", index=True)
    lead_source: Mapped[str | None] = mapped_column(String(120))
    campaign_slug: Mapped[str | None] = mapped_column(String(80))
    #: Column mapping, options (check_deliverability, …) as given.
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    total_rows: Mapped[int | None]
    processed_rows: Mapped[int] = mapped_column(default=0)
    #: outcome -> count (created, updated, merged, flagged, rejected, …)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class ImportRowResult(Base):
    """The outcome of one CSV row, with the reason: the row-by-row report."""

    __tablename__ = "import_row_result"
    __table_args__ = (UniqueConstraint("import_id", "row"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("import_job.id", ondelete="CASCADE"), index=True)
    #: Line number in the file (the header is row 1).
    row: Mapped[int]
    email: Mapped[str | None] = mapped_column(String(320))
    #: created | updated | merged | flagged | rejected | skipped
    outcome: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(String(1000))
    #: Which field the reason is about, when it is one field (email, revenue, …).
    field: Mapped[str | None] = mapped_column(String(80))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("lead.id", ondelete="SET NULL"))
