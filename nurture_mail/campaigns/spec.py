"""A validated campaign definition, as plain data, before it touches the database."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import time


@dataclass(frozen=True)
class TopicSpec:
    slug: str
    name: str
    stage: str
    description: str | None = None


@dataclass(frozen=True)
class LinkSpec:
    name: str
    url: str
    label: str | None = None
    topic: str | None = None
    hand_raiser: bool = False


@dataclass(frozen=True)
class StepSpec:
    key: str
    subject: str
    template: str
    stage: str
    teaches: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    preheader: str | None = None
    links: tuple[LinkSpec, ...] = ()
    alternate_of: str | None = None
    alternate: str | None = None

    @property
    def html_template(self) -> str:
        return f"{self.template}.html"

    @property
    def text_template(self) -> str:
        return f"{self.template}.txt"


@dataclass(frozen=True)
class CampaignSpec:
    slug: str
    name: str
    source: str
    cadence_seconds: int
    window_start: time
    window_end: time
    weekdays_only: bool
    max_touches: int
    topics: tuple[TopicSpec, ...]
    #: Primary steps and alternates, alternates right after the step they re-approach.
    steps: tuple[StepSpec, ...]
    description: str | None = None
    exit_rules: dict = field(default_factory=dict)
    handoff_rule: dict = field(default_factory=dict)

    def definition_hash(self) -> str:
        data = asdict(self)
        data.pop("source")
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
