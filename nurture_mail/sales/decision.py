"""What the scoring side tells the sales side: this lead is ready, and why."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class HandoffDecision:
    lead_id: int
    #: The campaign whose handoff rule was met (None: a manual handoff).
    campaign_id: int | None
    #: score | hand_raiser | manual
    reason: str
    #: Human explanation, e.g. "engagement 42 ≥ 40 and fit 55 ≥ 50" or "clicked 'Book a demo'".
    detail: str
    #: The event that tipped the lead over, and when it happened (for the latency figure).
    trigger_event_id: int | None
    triggered_at: datetime | None
