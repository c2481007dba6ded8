"""The drain: buffered tracking hits become ``event`` rows, and human clicks teach topics.

Runs continuously beside every long-running worker (``drain_forever``, a thread started by
``start_drain_thread``): it blocks on the event list and drains a batch a short window
(``EVENT_DRAIN_WINDOW_MS``) after the first hit arrives, so a click is stored, scored and
handed to sales within a second. It also runs as an RQ job on the cron table (every
EVENT_DRAIN_INTERVAL seconds: the fallback when no worker runs the loop) and at the start of
every scheduler tick, so a click counts at the very next choice of the content-gap engine.
One drainer at a time holds the buffer's lock; the others find it busy and do nothing.

Per batch, in one transaction: parse the hits, load their deliveries and links (two queries),
classify machines (``tracking/bots.py``), insert the events with ``ON CONFLICT (uid) DO
NOTHING``, and raise the clicked link's topic to ``engaged`` for each human click that was
newly stored, with the event as evidence. A batch stored twice (a drainer died between the
commit and the acknowledgement) therefore adds nothing the second time.

After each committed batch, and before it is acknowledged, the leads it names are rescored and
handed to sales when ready (``scoring.pipeline.after_events``), in their own transactions. A
batch re-read after a crash rescores its leads again: harmless (a lead with an open handoff is
never decided twice), and it is what keeps a crash between the commit and the scoring from
leaving a hand-raiser unnoticed.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..extensions import Services
from ..models import LEVEL_RANK, Delivery, Event, EventKind, Knowledge, KnowledgeLevel, Link
from ..nurture.journal import SentJournal
from ..nurture.knowledge import raise_knowledge
from ..nurture.sql import insert_ignoring_conflicts
from .bots import BotRules, bot_reason
from .events import EventBuffer, TrackedHit

log = logging.getLogger(__name__)

#: Batches per drain run: a bound on one run's time, even under a steady stream of hits.
MAX_BATCHES = 100


@dataclass
class DrainReport:
    batches: int = 0
    #: hits taken from the buffer
    read: int = 0
    #: events newly stored (a hit stored before, by a drainer that died, is a duplicate)
    stored: int = 0
    duplicates: int = 0
    #: malformed hits, or hits for a delivery that no longer exists
    dropped: int = 0
    #: stored events flagged as suspected bots
    bots: int = 0
    #: (lead, topic) pairs raised to engaged
    taught: int = 0
    #: another drainer held the lock: nothing was done
    busy: bool = False
    #: leads rescored after their batches, and handoffs started for them
    rescored: int = 0
    handoffs: int = 0


def bot_rules(svc: Services) -> BotRules:
    return BotRules(click_seconds=svc.config.bot_click_seconds, agents=svc.config.bot_user_agents)


def drain_events(svc: Services, *, wait: float = 0.0, max_batches: int = MAX_BATCHES) -> DrainReport:
    """Move buffered hits into the database, batch by batch, until the buffer is empty.

    ``wait``: seconds to wait for another drainer to finish (the tick waits, so that hits
    already taken by a running drain are in the database before it chooses).
    """
    report = DrainReport()
    buffer = EventBuffer(svc.redis)
    token = buffer.lock(wait=wait)
    if token is None:
        report.busy = True
        return report
    rules = bot_rules(svc)
    journal = SentJournal(svc.redis)
    try:
        while report.batches < max_batches:
            raw = buffer.claim(token, svc.config.event_drain_batch_size)
            if raw is None:
                log.warning("tracking drain: lock lease expired; stopping (the next drain resumes)")
                break
            if not raw:
                break
            with svc.db.session() as session:
                leads = store_hits(session, raw, rules, journal, report)
            report.batches += 1
            if leads:
                _after_events(svc, leads, report)
            if not buffer.ack(token):
                log.warning("tracking drain: lock lease expired after a commit; the batch will be re-read")
                break
    finally:
        buffer.unlock(token)
    if report.read:
        log.info("tracking drain: %d hits, %d stored (%d bots), %d duplicates, %d dropped, %d topics taught",
                 report.read, report.stored, report.bots, report.duplicates, report.dropped, report.taught)
    return report


def drain_forever(svc: Services, stop: threading.Event, *, window: float | None = None,
                  block: float = 1.0) -> None:
    """Drain hits as they arrive until ``stop`` is set: the entry point of a long-running drainer.

    Waits on the event list (a blocking pop that takes nothing, at most ``block`` seconds, so
    ``stop`` is honoured within that), then lets ``window`` seconds of further hits gather (one
    transaction for a burst instead of one per click), then drains everything waiting. Holds
    the drain lock only while draining, so the scheduler tick's own drain never waits behind an
    idle loop. A failure (Redis restarting, the database away) is logged and retried after a
    pause; stored hits are never lost (the buffer keeps them until a drain commits them).
    """
    pause = window if window is not None else svc.config.event_drain_window_ms / 1000
    buffer = EventBuffer(svc.redis)
    failures = 0
    while not stop.is_set():
        try:
            if not buffer.wait(block):
                failures = 0
                continue
            if pause > 0:
                stop.wait(pause)
            report = drain_events(svc)
            failures = 0
            if report.busy:
                # Another drainer (the tick, the cron job, another worker's loop) is at it.
                stop.wait(max(pause, 0.05))
        except Exception:
            failures += 1
            log.exception("tracking drain loop: drain failed (attempt %d); retrying", failures)
            stop.wait(min(0.5 * 2 ** min(failures, 4), 5.0))


def start_drain_thread(app: Flask) -> tuple[threading.Thread, threading.Event]:
    """``drain_forever`` on a daemon thread of this process, inside ``app``'s context (the
    handoffs it starts render and send); set the returned event to stop it.

    A long-running worker starts one beside its job loop: the thread sleeps in Redis while
    nothing is clicked, so it takes no time from send jobs, and no job is held by a blocking wait.
    """
    stop = threading.Event()

    def run() -> None:
        with app.app_context():
            drain_forever(app.extensions["nurture"], stop)

    thread = threading.Thread(target=run, name="tracking-drain", daemon=True)
    thread.start()
    return thread, stop


def _after_events(svc: Services, leads: set[int], report: DrainReport) -> None:
    """Rescore and maybe hand off; a scoring failure must not stop the drain (events are safe)."""
    from ..scoring.pipeline import after_events

    try:
        outcome = after_events(svc, leads, svc.clock.now())
    except Exception:
        log.exception("tracking drain: rescoring %d leads failed; their events are stored", len(leads))
        return
    report.rescored += outcome.scored
    report.handoffs += len(outcome.handoffs)


def store_hits(session: Session, raw: list[bytes], rules: BotRules, journal: SentJournal,
               report: DrainReport) -> set[int]:
    """Store one batch of buffered hits in the caller's transaction; returns the leads it names."""
    report.read += len(raw)
    hits: dict[str, TrackedHit] = {}
    for line in raw:
        try:
            hit = TrackedHit.from_json(line)
        except ValueError as exc:
            report.dropped += 1
            log.warning("tracking drain: dropped %s: %r", exc, line[:300])
            continue
        hits.setdefault(hit.uid, hit)
    if not hits:
        return set()
    deliveries = {
        row.id: row for row in session.execute(
            select(Delivery.id, Delivery.lead_id, Delivery.sent_at)
            .where(Delivery.id.in_({h.delivery_id for h in hits.values()}))
        )
    }
    # A gateway can fetch an email before its batch is committed as sent: the journal knows.
    noted = journal.lookup(d.id for d in deliveries.values() if d.sent_at is None)
    link_ids = {h.link_id for h in hits.values() if h.link_id is not None}
    links = {
        row.id: row for row in session.execute(
            select(Link.id, Link.topic, Link.hand_raiser).where(Link.id.in_(link_ids))
        )
    } if link_ids else {}

    rows: list[dict[str, Any]] = []
    for hit in hits.values():
        delivery = deliveries.get(hit.delivery_id)
        if delivery is None:
            report.dropped += 1
            log.warning("tracking drain: dropped a %s for unknown delivery %s", hit.kind, hit.delivery_id)
            continue
        rows.append(_event_row(hit, delivery, links, noted, rules))
    if not rows:
        return set()
    statement = insert_ignoring_conflicts(session, Event, ["uid"]).returning(Event.id, Event.uid)
    inserted = {uid: event_id for event_id, uid in session.execute(statement, rows)}
    report.stored += len(inserted)
    report.duplicates += len(rows) - len(inserted)
    report.bots += sum(1 for row in rows if row["uid"] in inserted and row["suspected_bot"])
    report.taught += _teach(session, [row | {"id": inserted[row["uid"]]} for row in rows if row["uid"] in inserted])
    # Duplicates included: a batch re-read after a crash may never have been scored.
    return {row["lead_id"] for row in rows}


def _event_row(hit: TrackedHit, delivery: Any, links: dict[int, Any], noted: dict[int, tuple[datetime, str]],
               rules: BotRules) -> dict[str, Any]:
    at = datetime.fromtimestamp(hit.at, UTC)
    sent_at = delivery.sent_at or noted.get(delivery.id, (None, ""))[0]
    reason = bot_reason(
        rules, method=hit.method, user_agent=hit.user_agent, honeypot=hit.honeypot,
        seconds_after_send=(at - sent_at).total_seconds() if sent_at is not None else None,
    )
    link = links.get(hit.link_id) if hit.link_id is not None else None
    detail: dict[str, Any] = {"method": hit.method}
    if hit.url is not None:
        detail["url"] = hit.url
    if hit.honeypot:
        detail["honeypot"] = True
    if link is not None and link.hand_raiser:
        detail["hand_raiser"] = True
    if hit.link_id is not None and link is None:
        detail["deleted_link_id"] = hit.link_id
    return dict(
        uid=hit.uid, lead_id=delivery.lead_id, delivery_id=delivery.id, kind=EventKind(hit.kind),
        link_id=link.id if link is not None else None, topic=link.topic if link is not None else None, at=at,
        user_agent=hit.user_agent[:500] or None, ip=hit.ip[:64] if hit.ip else None,
        suspected_bot=reason is not None, bot_reason=reason[:200] if reason else None, detail=detail,
    )


def _teach(session: Session, stored: list[dict[str, Any]]) -> int:
    """A person's click on a link with a topic: that topic becomes ``engaged`` for the lead.

    Opens teach nothing (privacy proxies fetch every image), and neither do machines.
    """
    first: dict[tuple[int, str], dict[str, Any]] = {}
    for row in sorted(stored, key=lambda r: r["at"]):
        if row["kind"] == EventKind.click and not row["suspected_bot"] and row["topic"]:
            first.setdefault((row["lead_id"], row["topic"]), row)
    if not first:
        return 0
    current = {
        (lead_id, topic): level for lead_id, topic, level in session.execute(
            select(Knowledge.lead_id, Knowledge.topic, Knowledge.level).where(
                Knowledge.lead_id.in_({lead for lead, _ in first}), Knowledge.topic.in_({t for _, t in first}))
        )
    }
    engaged = LEVEL_RANK[KnowledgeLevel.engaged]
    taught = 0
    for (lead_id, topic), row in first.items():
        level = current.get((lead_id, topic))
        if level is not None and LEVEL_RANK[KnowledgeLevel(level)] >= engaged:
            continue
        taught += len(raise_knowledge(session, lead_id, [topic], KnowledgeLevel.engaged, "click", row["at"],
                                      delivery_id=row["delivery_id"], event_id=row["id"]))
    return taught
