"""Plain data the engine works on: no Flask, no SQLAlchemy, no I/O."""
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time


class Level(enum.IntEnum):
    """How much a lead knows about a topic; higher is more."""

    unknown = 0
    exposed = 1
    engaged = 2
    known = 3

    @classmethod
    def of(cls, name: str) -> "Level":
        return cls[name]


STAGES = ("awareness", "consideration", "decision")


@dataclass(frozen=True)
class StepPlan:
    """One content email as the engine sees it."""

    key: str
    stage: str
    position: int
    teaches: frozenset[str] = frozenset()
    requires: frozenset[str] = frozenset()
    #: Key of the alternate version that re-approaches this step's topics, if any.
    alternate: str | None = None
    #: Key of the step this one is the alternate of (alternates are not primary candidates).
    alternate_of: str | None = None
    id: int | None = None

    @property
    def order(self) -> tuple[int, int]:
        return (STAGES.index(self.stage), self.position)


@dataclass(frozen=True)
class SendWindow:
    """Local business hours in the lead's timezone, optionally on weekdays only."""

    start: time = time(9, 0)
    end: time = time(17, 0)
    weekdays_only: bool = True

    @classmethod
    def from_minutes(cls, start_minute: int, end_minute: int, weekdays_only: bool) -> "SendWindow":
        """The window as a campaign row stores it: minutes after local midnight."""
        return cls(start=time(start_minute // 60, start_minute % 60), end=time(end_minute // 60, end_minute % 60),
                   weekdays_only=weekdays_only)


@dataclass(frozen=True)
class CampaignPlan:
    slug: str
    steps: tuple[StepPlan, ...]
    cadence_seconds: int = 3 * 86400
    max_touches: int = 12
    window: SendWindow = field(default_factory=SendWindow)

    def primary_steps(self) -> list[StepPlan]:
        """Steps in campaign order (stage, then position), alternates left out."""
        return sorted((s for s in self.steps if s.alternate_of is None), key=lambda s: s.order)

    def step(self, key: str) -> StepPlan:
        for s in self.steps:
            if s.key == key:
                return s
        raise KeyError(key)


KnowledgeMap = Mapping[str, Level]
