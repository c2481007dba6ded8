"""Raise what a lead knows about topics, keeping the evidence for every change."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import LEVEL_RANK, Knowledge, KnowledgeEvidence, KnowledgeLevel


def raise_knowledge(
    session: Session,
    lead_id: int,
    topics: Iterable[str],
    level: KnowledgeLevel,
    source: str,
    at: datetime,
    *,
    delivery_id: int | None = None,
    event_id: int | None = None,
    declared_by: str | None = None,
    note: str | None = None,
) -> list[str]:
    """Set each topic to at least ``level``; knowledge never goes down. Returns topics changed."""
    topics = sorted(set(topics))
    if not topics:
        return []
    current = {
        k.topic: k
        for k in session.scalars(select(Knowledge).where(Knowledge.lead_id == lead_id, Knowledge.topic.in_(topics)))
    }
    changed: list[str] = []
    for topic in topics:
        row = current.get(topic)
        if row is not None and LEVEL_RANK[row.level] >= LEVEL_RANK[level]:
            continue
        if row is None:
            session.add(Knowledge(lead_id=lead_id, topic=topic, level=level, updated_at=at))
        else:
            row.level = level
            row.updated_at = at
        session.add(KnowledgeEvidence(
            lead_id=lead_id, topic=topic, level=level, source=source, delivery_id=delivery_id,
            event_id=event_id, declared_by=declared_by, note=note, at=at,
        ))
        changed.append(topic)
    return changed
