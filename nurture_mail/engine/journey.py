"""Journey preview: what a lead would receive next, when, and why other steps are skipped."""
from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .gaps import Skip, after_delivery, choose_next_step
from .plan import CampaignPlan, KnowledgeMap
from .schedule import next_in_window


@dataclass(frozen=True)
class PlannedTouch:
    step_key: str
    send_at: datetime
    reason: str


@dataclass(frozen=True)
class Journey:
    touches: tuple[PlannedTouch, ...]
    skipped: tuple[Skip, ...]
    outcome: str


def preview_journey(
    plan: CampaignPlan,
    knowledge: KnowledgeMap,
    delivered: AbstractSet[str],
    touches_sent: int,
    next_send_at: datetime,
    tz: ZoneInfo,
) -> Journey:
    """Simulate the engine forward assuming every email is delivered and nothing is clicked.

    Sends nothing and writes nothing: the same ``choose_next_step`` that the scheduler uses
    decides every touch, so the preview cannot disagree with what will happen.
    """
    knowledge = dict(knowledge)
    delivered = set(delivered)
    touches: list[PlannedTouch] = []
    skips: dict[str, Skip] = {}
    at = next_in_window(next_send_at, tz, plan.window)
    touches_now = touches_sent
    while True:
        decision = choose_next_step(plan, knowledge, delivered, touches_now)
        for skip in decision.skipped:
            # Keep the latest reason a step was skipped for; prerequisite skips resolve later.
            skips[skip.step.key] = skip
        if decision.step is None:
            outcome = decision.reason
            break
        touches.append(PlannedTouch(decision.step.key, at, decision.reason))
        skips.pop(decision.step.key, None)
        delivered.add(decision.step.key)
        knowledge = after_delivery(knowledge, decision.step)
        touches_now += 1
        at = next_in_window(at + timedelta(seconds=plan.cadence_seconds), tz, plan.window)
    still_skipped = tuple(s for k, s in skips.items() if k not in delivered)
    return Journey(tuple(touches), still_skipped, outcome)
