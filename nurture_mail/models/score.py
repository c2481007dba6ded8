"""A lead's fit and engagement scores, with the breakdown that explains every point."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class LeadScore(Base):
    __tablename__ = "lead_score"

    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id", ondelete="CASCADE"), primary_key=True)
    fit: Mapped[float] = mapped_column(default=0.0, index=True)
    engagement: Mapped[float] = mapped_column(default=0.0, index=True)
    #: [{"points": 15, "reason": "industry 7372 matches software", "at": iso|None}, …]
    fit_breakdown: Mapped[list[Any]] = mapped_column(default=list)
    #: [{"points": 15.0, "raw": 15, "reason": "clicked 'Security whitepaper' on 2026-03-02", "event_id": 7, "at": iso}, …]
    engagement_breakdown: Mapped[list[Any]] = mapped_column(default=list)
    #: The instant the decay was computed for.
    computed_at: Mapped[datetime]
