"""What runs in the worker after new events are stored: rescore, decide, hand off.

Never in a web request (DESIGN §5): the tracking drain calls ``after_events`` after
each committed batch, and the ``rescore_leads`` job after an API-recorded event. Scores are
committed first, in their own transaction; then each handoff runs in its own transaction, so
one failing handoff neither loses the scores nor blocks the other leads. A lead whose handoff
failed stays due and is decided again at its next rescore (the next event, or the daily
``rescore_all``).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..extensions import Services
from ..sales.decision import HandoffDecision
from .service import score_and_decide

log = logging.getLogger(__name__)


@dataclass
class AfterEventsReport:
    scored: int = 0
    decisions: int = 0
    #: ids of the Handoff rows started
    handoffs: list[int] = field(default_factory=list)
    #: decisions start_handoff declined (returned None)
    declined: int = 0
    #: decisions whose start_handoff raised (logged with the traceback)
    failed: int = 0
    #: seconds spent rescoring and deciding (without the handoffs)
    score_seconds: float = 0.0
    #: seconds from each tipping event to its handoff's commit, as seen by the injected clock
    latencies: list[float] = field(default_factory=list)


def _start_handoff() -> Callable[..., Any] | None:
    """The sales side's entry point, imported late: scoring does not depend on sales at import."""
    try:
        from ..sales.handoff import start_handoff
    except ModuleNotFoundError as exc:
        if exc.name != "nurture_mail.sales.handoff":
            raise
        return None
    return start_handoff


def after_events(svc: Services, lead_ids: Iterable[int], now: datetime) -> AfterEventsReport:
    """Rescore these leads, decide which are ready, and start a handoff for each."""
    report = AfterEventsReport()
    ids = sorted(set(lead_ids))
    if not ids:
        return report
    started = time.perf_counter()
    with svc.db.session() as session:
        batch = score_and_decide(session, svc.config, ids, now)
    report.score_seconds = time.perf_counter() - started
    report.scored = len(batch.scores)
    report.decisions = len(batch.decisions)
    if batch.decisions:
        start_handoff = _start_handoff()
        if start_handoff is None:
            log.error("scoring: %d leads are ready for sales but nurture_mail.sales.handoff is missing",
                      len(batch.decisions))
        else:
            for decision in batch.decisions:
                _hand_off(svc, start_handoff, decision, now, report)
    log.info("scoring: %d leads rescored in %.3f s, %d ready, %d handed off",
             report.scored, report.score_seconds, report.decisions, len(report.handoffs))
    return report


def _hand_off(svc: Services, start_handoff: Callable[..., Any], decision: HandoffDecision, now: datetime,
              report: AfterEventsReport) -> None:
    try:
        with svc.db.session() as session:
            handoff = start_handoff(svc, session, decision, now)
    except Exception:
        # Recorded, not swallowed: the lead stays due and is decided again at its next rescore.
        report.failed += 1
        log.exception("scoring: handoff of lead %s (%s: %s) failed", decision.lead_id, decision.reason,
                      decision.detail)
        return
    if handoff is None:
        report.declined += 1
        return
    report.handoffs.append(handoff.id)
    if decision.triggered_at is not None:
        report.latencies.append((svc.clock.now() - decision.triggered_at).total_seconds())
    log.info("scoring: lead %s handed off (%s: %s), handoff %s", decision.lead_id, decision.reason,
             decision.detail, handoff.id)
