"""RQ job: move buffered click and open hits into the database; ``rq cron`` runs it every
EVENT_DRAIN_INTERVAL seconds."""
from __future__ import annotations

from dataclasses import asdict

from .. import services
from ..tracking.ingest import drain_events


def drain_tracking_events() -> dict:
    """Store buffered tracking hits; a run finding another drain in progress does nothing."""
    return asdict(drain_events(services()))
