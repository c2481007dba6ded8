"""``/api/v1/events``: external events (form, webinar, reply, meeting) that teach topics and score.

The event is stored in the request's transaction; the rescoring (and any handoff it causes)
runs in the worker, enqueued after the commit so the job always sees the event.
"""
from __future__ import annotations

from typing import Any

from .. import services
from ..aftercommit import enqueue_after_commit
from .common import api_blueprint, lead_by_ref, not_found_doc
from .problems import ApiProblem
from .schemas import EventIn, EventOut
from .security import requires

bp = api_blueprint("api_events", __name__, "/api/v1/events", "External events that teach topics and score")


@bp.route("", methods=["POST"])
@requires(bp, "events:write")
@bp.arguments(EventIn)
@bp.response(201, EventOut)
@not_found_doc(bp)
def ingest(data: dict[str, Any]):
    """Record an event for a lead (by id or email); the same ``uid`` is stored once."""
    from ..nurture.external_events import record_external_event

    svc = services()
    with svc.db.session() as session:
        lead = lead_by_ref(session, data.get("lead_id"), data.get("email"))
        if lead.erased_at is not None:
            raise ApiProblem(409, "this lead was erased: no events are recorded for it",
                             field="lead_id" if "lead_id" in data else "email")
        now = svc.clock.now()
        # An ``at`` after now (beyond the allowed clock skew) is EventInFuture: a 422 on field "at".
        event = record_external_event(session, lead.id, data["kind"], data.get("at") or now,
                                      topics=data["topics"], detail=data.get("detail"), uid=data.get("uid"),
                                      source="api", now=now)
        out = {"id": event.id, "lead_id": event.lead_id, "kind": event.kind.value, "topic": event.topic,
               "at": event.at, "uid": data.get("uid"), "detail": dict(event.detail or {})}
        enqueue_after_commit(session, svc.queue, "nurture_mail.jobs.scoring.rescore_leads", [out["lead_id"]])
    return out
