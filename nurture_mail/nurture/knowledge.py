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


def declare_known(session: Session, lead_id: int, topics: Iterable[str], at: datetime, *, by: str,
                  source: str, note: str | None = None) -> list[str]:
    """A person declares that the lead knows these topics (their steps are skipped from the next
    choice on); an unknown topic is an ``InvalidInput`` on ``knows`` naming it. Returns topics changed."""
    from ..exceptions import InvalidInput
    from ..models import Topic

    wanted = sorted({t.strip() for t in topics if t and t.strip()})
    if not wanted:
        raise InvalidInput("choose at least one topic", field="knows")
    existing = set(session.scalars(select(Topic.slug).where(Topic.slug.in_(wanted))))
    unknown = [t for t in wanted if t not in existing]
    if unknown:
        raise InvalidInput(f"unknown topic(s): {', '.join(unknown)}", field="knows")
    return raise_knowledge(session, lead_id, wanted, KnowledgeLevel.known, source, at, declared_by=by, note=note)
