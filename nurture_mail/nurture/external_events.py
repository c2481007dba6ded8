"""Events that happen outside our emails: a reply, a form, a webinar attended, a meeting held.

The API (or an integration) records them here, in its own transaction, then enqueues the
``rescore_leads`` job after the commit: the scoring and any handoff happen in the worker.

What each kind teaches about the topics it names (docs/scoring.md):

- ``form``: ``known``: the prospect told us (DESIGN §3: a form declares knowledge);
- ``meeting``: ``known``: a person confirmed it in conversation;
- ``webinar``: ``engaged``: they attended content on it, like a click, but declared nothing;
- ``reply``: ``engaged``: they wrote back about it.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..exceptions import InvalidInput, NotFound
from ..models import Event, EventKind, KnowledgeLevel, Lead, Topic
from .knowledge import raise_knowledge
from .sql import insert_ignoring_conflicts

#: Kinds that can be recorded from outside, and the knowledge level each raises its topics to.
EXTERNAL_KINDS: dict[str, KnowledgeLevel] = {
    "reply": KnowledgeLevel.engaged,
    "form": KnowledgeLevel.known,
    "webinar": KnowledgeLevel.engaged,
    "meeting": KnowledgeLevel.known,
}
MAX_UID = 64
#: How far ahead of our clock an event's ``at`` may be (the sender's clock skew).
MAX_CLOCK_SKEW = timedelta(minutes=5)


class EventInFuture(InvalidInput, ValueError):
    """``at`` is later than now plus :data:`MAX_CLOCK_SKEW`; ``field`` is ``"at"`` (API: 422).

    A future event would count in full (no decay) until its time came and could tip a handoff
    with evidence that has not happened yet.
    """

    def __init__(self, at: datetime, now: datetime) -> None:
        super().__init__(f"{at.isoformat()} is in the future (now {now.isoformat()}; at most "
                         f"{int(MAX_CLOCK_SKEW.total_seconds() // 60)} minutes of clock skew allowed)", field="at")


def record_external_event(
    session: Session,
    lead_id: int,
    kind: str,
    at: datetime,
    *,
    topics: Iterable[str] = (),
    detail: Mapping[str, Any] | None = None,
    uid: str | None = None,
    source: str = "api",
    now: datetime,
) -> Event:
    """Store the event (once per ``uid``) and raise what it teaches; returns the stored Event.

    Recording the same ``uid`` again returns the first event unchanged (a retried API call).
    ``detail["title"]`` names the event in score breakdowns ("attended webinar 'CSPM 101'").
    ``now`` is the caller's clock (``svc.clock.now()``): an ``at``
    more than :data:`MAX_CLOCK_SKEW` after it raises :class:`EventInFuture`.
    """
    if kind not in EXTERNAL_KINDS:
        raise InvalidInput(f"expected one of {', '.join(EXTERNAL_KINDS)}, got {kind!r}", field="kind")
    if at.tzinfo is None:
        raise InvalidInput("expected a date-time with a timezone", field="at")
    if at > now + MAX_CLOCK_SKEW:
        raise EventInFuture(at, now)
    if uid is not None and not 0 < len(uid) <= MAX_UID:
        raise InvalidInput(f"expected 1 to {MAX_UID} characters", field="uid")
    if detail is not None and not isinstance(detail, Mapping):
        raise InvalidInput("expected an object", field="detail")
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise NotFound(f"lead {lead_id} not found")
    listed = [topics] if isinstance(topics, str) else list(topics)
    if any(not isinstance(t, str) for t in listed):
        raise InvalidInput("expected a list of topic slugs", field="topics")
    slugs = sorted(set(listed))
    if slugs:
        existing = set(session.scalars(select(Topic.slug).where(Topic.slug.in_(slugs))))
        missing = [t for t in slugs if t not in existing]
        if missing:
            raise InvalidInput(f"unknown topic {', '.join(repr(t) for t in missing)}", field="topics")

    data = dict(detail or {})
    data["source"] = source
    if slugs:
        data["topics"] = slugs
    key = _uid(source, uid) if uid is not None else None
    if key is not None:
        found = session.scalar(select(Event).where(Event.uid == key))
        if found is not None:
            return _same_lead(found, lead_id)
    row = dict(uid=key, lead_id=lead_id, kind=EventKind(kind), at=at, topic=slugs[0] if slugs else None,
               suspected_bot=False, detail=data)
    if key is None:
        event = Event(**row)
        session.add(event)
        session.flush()
    else:
        # Two concurrent calls with one uid: the database keeps one, both return it.
        session.execute(insert_ignoring_conflicts(session, Event, ["uid"]), [row])
        event = session.scalars(select(Event).where(Event.uid == key)).one()
        _same_lead(event, lead_id)
    if slugs:
        raise_knowledge(session, lead_id, slugs, EXTERNAL_KINDS[kind], kind, at, event_id=event.id,
                        note=str(data.get("title"))[:500] if data.get("title") else None)
    return event


def _uid(source: str, uid: str) -> str:
    """Namespaced by source so two integrations' ids never collide; hashed to fit the column."""
    return "ext-" + hashlib.sha256(f"{source}\x00{uid}".encode()).hexdigest()[:56]


def _same_lead(event: Event, lead_id: int) -> Event:
    if event.lead_id != lead_id:
        raise InvalidInput(f"already used for another lead (event {event.id})", field="uid")
    return event
