"""RQ jobs: rescore leads after events recorded outside tracking, and rescore everyone daily.

Both are safe to run twice: scores are recomputed from the events, and a lead with an open
handoff is never decided again.
"""
from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import select

from .. import services
from ..models import LeadScore
from ..scoring.pipeline import AfterEventsReport, after_events
from ..scoring.service import CHUNK


def rescore_leads(lead_ids: list[int]) -> dict:
    """Rescore these leads now and hand off the ready ones (enqueued by the API after commit)."""
    svc = services()
    return asdict(after_events(svc, lead_ids, svc.clock.now()))


def rescore_all(batch_size: int = CHUNK) -> dict:
    """Every scored lead, in batches: decay moves engagement every day even without new events."""
    svc = services()
    now = svc.clock.now()
    total = AfterEventsReport()
    after = 0
    while True:
        with svc.db.session() as session:
            ids = list(session.scalars(
                select(LeadScore.lead_id).where(LeadScore.lead_id > after).order_by(LeadScore.lead_id).limit(batch_size)
            ))
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
