"""RQ job: move buffered click and open hits into the database; ``rq cron`` runs it every
EVENT_DRAIN_INTERVAL seconds. After each batch the leads it names are rescored and, when ready,
handed to sales (``scoring.pipeline.after_events``): in the worker, within one drain pass."""
from __future__ import annotations

from dataclasses import asdict

from .. import services
from ..tracking.ingest import drain_events


def drain_tracking_events() -> dict:
    """Store buffered tracking hits, rescore their leads, start due handoffs; a run finding
    another drain in progress does nothing."""
    return asdict(drain_events(services()))
