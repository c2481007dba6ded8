"""What each lead knows, per topic, and the evidence behind every change."""
from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base

if TYPE_CHECKING:
    from .lead import Lead


class KnowledgeLevel(str, enum.Enum):
    unknown = "unknown"
    exposed = "exposed"
    engaged = "engaged"
    known = "known"


LEVEL_RANK = {
    KnowledgeLevel.unknown: 0,
    KnowledgeLevel.exposed: 1,
    KnowledgeLevel.engaged: 2,
    KnowledgeLevel.known: 3,
}

_level = Enum(KnowledgeLevel, native_enum=False, length=10)


class Knowledge(Base):
    __tablename__ = "knowledge"
    __table_args__ = (UniqueConstraint("lead_id", "topic"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id", ondelete="CASCADE"), index=True)
    topic: Mapped[str] = mapped_column(String(80))
    level: Mapped[KnowledgeLevel] = mapped_column(_level)
    updated_at: Mapped[datetime]

    lead: Mapped["Lead"] = relationship(back_populates="knowledge")


class KnowledgeEvidence(Base):
    """One change of level: which email, click or person made it, and when."""

    __tablename__ = "knowledge_evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id", ondelete="CASCADE"), index=True)
    topic: Mapped[str] = mapped_column(String(80))
    level: Mapped[KnowledgeLevel] = mapped_column(_level)
    #: delivery | click | sales | form | import | api | cli
    source: Mapped[str] = mapped_column(String(20))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("delivery.id", ondelete="SET NULL"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("event.id", ondelete="SET NULL"))
    declared_by: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime]
