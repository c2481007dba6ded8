"""RQ jobs: rescore leads after events recorded outside tracking, and rescore everyone daily.

``rescore_leads`` is also what to enqueue after a lead's fit facts change (import, API update):
a fit-only handoff rule (``engagement_at_least: null``) has no event to tip it.

Both are safe to run twice: scores are recomputed from the events, and a lead with an open
handoff is never decided again.
"""
from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import select, union

from .. import services
from ..models import Enrollment, LeadScore
from ..scoring.pipeline import AfterEventsReport, after_events
from ..scoring.service import CHUNK, NURTURING


def rescore_leads(lead_ids: list[int]) -> dict:
    """Rescore these leads now and hand off the ready ones (enqueued by the API after commit)."""
    svc = services()
    return asdict(after_events(svc, lead_ids, svc.clock.now()))


def _next_ids(session, after: int, batch_size: int) -> list[int]:
    """Scored leads, and nurtured ones never scored (no event yet: a fit-only rule may hold)."""
    ids = union(
        select(LeadScore.lead_id.label("lead_id")).where(LeadScore.lead_id > after),
        select(Enrollment.lead_id.label("lead_id")).where(Enrollment.lead_id > after,
                                                          Enrollment.state.in_(NURTURING)),
    ).subquery()
    return list(session.scalars(select(ids.c.lead_id).order_by(ids.c.lead_id).limit(batch_size)))


def rescore_all(batch_size: int = CHUNK) -> dict:
    """Every scored or nurtured lead, in batches: decay moves engagement every day even without
    new events, and a lead whose fit alone meets a campaign's rule is decided here at the latest."""
    svc = services()
    now = svc.clock.now()
    total = AfterEventsReport()
    after = 0
    while True:
        with svc.db.session() as session:
            ids = _next_ids(session, after, batch_size)
        if not ids:
            break
        after = ids[-1]
        report = after_events(svc, ids, now)
        total.scored += report.scored
        total.decisions += report.decisions
        total.handoffs += report.handoffs
        total.declined += report.declined
        total.failed += report.failed
        total.score_seconds += report.score_seconds
    return asdict(total)
