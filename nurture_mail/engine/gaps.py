"""The content-gap engine: which email does this lead get next? (DESIGN §4)

1. candidates = primary steps not yet delivered to this lead;
2. drop steps all of whose ``teaches`` topics the lead has as engaged or known;
3. drop steps with a ``requires`` topic still unknown (teach prerequisites first);
4. take the first remaining in campaign order (stage, then position);
5. nothing left: re-approach gaps that were only exposed with a step's alternate,
   until max touches; otherwise the enrollment is complete.
"""
from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from .plan import CampaignPlan, KnowledgeMap, Level, StepPlan


@dataclass(frozen=True)
class Skip:
    step: StepPlan
    #: "known" (the lead already knows everything it teaches) or "prerequisite".
    kind: str
    reason: str


@dataclass(frozen=True)
class Decision:
    """Either a step to send or, when ``step`` is None, the enrollment is complete."""

    step: StepPlan | None
    reason: str
    skipped: tuple[Skip, ...] = field(default=())

    @property
    def complete(self) -> bool:
        return self.step is None


def level_of(knowledge: KnowledgeMap, topic: str) -> Level:
    return knowledge.get(topic, Level.unknown)


def _knows_all(step: StepPlan, knowledge: KnowledgeMap) -> bool:
    # A step that teaches nothing (a welcome, a check-in) is never skipped as known.
    return bool(step.teaches) and all(level_of(knowledge, t) >= Level.engaged for t in step.teaches)


def _missing_prerequisites(step: StepPlan, knowledge: KnowledgeMap) -> list[str]:
    return sorted(t for t in step.requires if level_of(knowledge, t) == Level.unknown)


def choose_next_step(
    plan: CampaignPlan,
    knowledge: KnowledgeMap,
    delivered: AbstractSet[str],
    touches_sent: int,
) -> Decision:
    """The next step for one lead, or completion, with every skip explained."""
    if touches_sent >= plan.max_touches:
        return Decision(None, f"reached max touches ({plan.max_touches})")

    skipped: list[Skip] = []
    for step in plan.primary_steps():
        if step.key in delivered:
            continue
        if _knows_all(step, knowledge):
            known = ", ".join(sorted(step.teaches))
            skipped.append(Skip(step, "known", f"already knows {known}"))
            continue
        missing = _missing_prerequisites(step, knowledge)
        if missing:
            skipped.append(Skip(step, "prerequisite", f"needs {', '.join(missing)} first"))
            continue
        gaps = sorted(t for t in step.teaches if level_of(knowledge, t) < Level.engaged)
        why = f"teaches {', '.join(gaps)}" if gaps else "next in campaign order"
        return Decision(step, why, tuple(skipped))

    alternate = _alternate_for_exposed_gap(plan, knowledge, delivered)
    if alternate is not None:
        step, topics = alternate
        return Decision(step, f"re-approaches {', '.join(topics)} (only exposed so far)", tuple(skipped))

    if any(s.kind == "prerequisite" for s in skipped):
        reason = "no step left whose prerequisites are met"
    else:
        reason = "every gap is filled or has been taught"
    return Decision(None, reason, tuple(skipped))


def _alternate_for_exposed_gap(
    plan: CampaignPlan, knowledge: KnowledgeMap, delivered: AbstractSet[str]
) -> tuple[StepPlan, list[str]] | None:
    for step in plan.primary_steps():
        if step.key not in delivered or not step.alternate or step.alternate in delivered:
            continue
        exposed = sorted(t for t in step.teaches if level_of(knowledge, t) == Level.exposed)
        if not exposed:
            continue
        alternate = plan.step(step.alternate)
        if _missing_prerequisites(alternate, knowledge):
            continue
        return alternate, exposed
    return None


def after_delivery(knowledge: KnowledgeMap, step: StepPlan) -> dict[str, Level]:
    """Knowledge once ``step`` is delivered: its unknown topics become exposed."""
    updated = dict(knowledge)
    for topic in step.teaches:
        if level_of(updated, topic) < Level.exposed:
            updated[topic] = Level.exposed
    return updated
