"""One scheduler pass: choose the next step for every due enrollment and enqueue batch sends.

Safe to run twice for the same instant (``rq cron`` gives no distributed lock): a second pass
finds no due enrollment it can claim, and the unique (enrollment, step) constraint on
deliveries stops a duplicate even if two passes race.
"""
from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Row,
    Select,
    String,
    bindparam,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from ..engine.gaps import Decision, choose_next_step
from ..engine.plan import CampaignPlan, Level
from ..engine.schedule import in_window, next_in_window, zone
from ..extensions import Services
from ..models import (
    NO_SEND_STATUSES,
    Campaign,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Knowledge,
    Lead,
    Step,
    StepSkip,
)
from .inflight import enqueue_send_job, requeue_lost
from .journal import SentJournal
from .plans import delivered_keys, knowledge_of, load_campaign, plan_of
from .sql import among, insert_columns_returning_ids, insert_rows_ignoring_conflicts, skip_locked

log = logging.getLogger(__name__)

#: Batches in flight at once on PostgreSQL (one transaction and connection each). SQLite has one
#: writer at a time: one stream there.
PARALLEL_STREAMS = 2
#: A stream's first batch when much is due; each next one doubles up to TICK_BATCH_SIZE: the
#: first send jobs go out early and a 100k tick is mostly full batches (fewer round trips and
#: commits). When no more than one full round of batches is due (the probe counts up to that),
#: the streams split it evenly instead (``_first_batch``).
FIRST_BATCH = 250


@dataclass
class TickReport:
    due: int = 0
    queued: int = 0
    completed: int = 0
    exited: int = 0
    rescheduled: int = 0
    recovered_sent: int = 0
    recovered_requeued: int = 0
    jobs: list[str] = field(default_factory=list)
    enqueued_deliveries: int = 0
    #: queued deliveries whose send job Redis had lost (see inflight.py)
    requeued_lost: int = 0

    def add(self, other: "TickReport") -> None:
        """Fold in the counts of another stream of the same pass."""
        for name in ("due", "queued", "completed", "exited", "rescheduled", "enqueued_deliveries"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.jobs.extend(other.jobs)

    def summary(self) -> str:
        return (
            f"{self.due} due: {self.queued} queued, {self.rescheduled} moved to the send window, "
            f"{self.completed} completed, {self.exited} exited; {self.enqueued_deliveries} deliveries "
            f"in {len(self.jobs)} send job(s); recovered {self.recovered_sent} sent, "
            f"{self.recovered_requeued} requeued"
            + (f"; {self.requeued_lost} re-enqueued (their send job was lost in Redis)" if self.requeued_lost else "")
        )


def run_tick(svc: Services, now: datetime, enqueue: bool = True) -> TickReport:
    report = TickReport()
    _drain_tracking_events(svc)
    probe = _probe(svc, now)
    if probe.stale:
        recover_stale_sends(svc, now, report)
    if enqueue and probe.leased:
        # Before this pass leases anything: what it enqueues itself is not worth checking.
        report.requeued_lost += requeue_lost(svc, now)
    campaigns = CampaignCache(probe.fingerprints)
    cursor = _Cursor()
    streams = PARALLEL_STREAMS if svc.db.is_postgresql else 1
    first = _first_batch(probe.due, streams, svc.config.send_batch_size, svc.config.tick_batch_size)
    if streams == 1:
        _queue_due(svc, now, enqueue, campaigns, cursor, report, first)
    else:
        # Two transactions in flight: while one stream's batch is written by its PostgreSQL
        # backend, the other reads and decides the next (each reads on from the shared cursor),
        # so the client's work and the server's overlap and both cores serve one tick.
        parts = [TickReport() for _ in range(streams)]
        with ThreadPoolExecutor(streams, thread_name_prefix="tick") as pool:
            for done in [pool.submit(_queue_due, svc, now, enqueue, campaigns, cursor, part, first)
                         for part in parts]:
                done.result()
        for part in parts:
            report.add(part)
    if enqueue and (probe.enqueueable or report.recovered_requeued or report.requeued_lost):
        # What the batches did not hand out themselves: retries now due, leases expired, lost jobs
        # (the batches' own deliveries are written leased: they never make this pass needed).
        enqueue_queued_deliveries(svc, now, report)
    return report


@dataclass
class _Probe:
    """What a tick's side passes will find, read in one round trip before any of them runs."""

    #: a delivery claimed by a worker longer than the lease ago (recover_stale_sends)
    stale: bool = True
    #: a queued delivery inside its lease, whose send job Redis may have lost (requeue_lost)
    leased: bool = True
    #: a queued delivery due and not leased: a retry, an expired lease (enqueue_queued_deliveries)
    enqueueable: bool = True
    #: on PostgreSQL, each campaign's fingerprint (see CampaignCache); None: no cache across ticks
    fingerprints: dict[int, str] | None = None
    #: active enrollments due, counted up to ``_due_cap`` (the count stops there)
    due: int = 0


def _due_cap(config) -> int:
    """Up to how many due enrollments the probe counts: one full round of batches."""
    return PARALLEL_STREAMS * config.tick_batch_size


def _first_batch(due: int, streams: int, per_job: int, largest: int) -> int:
    """The first batch of each stream: what is due split evenly between the streams when that
    fits one round of full batches (a 1k tick: two batches of 500 side by side, where the
    ramp made 250 + 250 + 500 and the last alone: 0.07 s instead of 0.11), else FIRST_BATCH;
    a whole number of send jobs either way."""
    share = -(-due // streams) if 0 < due < streams * largest else FIRST_BATCH
    return min(max(-(-share // per_job), 1) * per_job, largest)


#: An md5 of the campaign's row and of every one of its step rows: any write to either (sync,
#: editor, pause, a step (de)activated) changes it, whoever wrote it; a few dozen rows to hash.
_FINGERPRINTS = literal_column(
    "(SELECT json_object_agg(c.id, md5(c::text || coalesce((SELECT string_agg(s::text, ',' ORDER BY s.id)"
    " FROM step AS s WHERE s.campaign_id = c.id), '')))::text FROM campaign AS c)", String)


def _probe(svc: Services, now: datetime) -> _Probe:
    """One statement decides which side passes have anything to do (each was a round trip and a
    commit of its own at every tick, most often for nothing) and, on PostgreSQL, whether the
    plans cached by an earlier tick still hold."""
    lease_expired = now - timedelta(seconds=svc.config.send_lease_seconds)
    queued = Delivery.status == DeliveryStatus.queued
    columns: list = [
        exists().where(Delivery.status == DeliveryStatus.sending, Delivery.claimed_at <= lease_expired),
        exists().where(queued, Delivery.enqueued_at.is_not(None), Delivery.enqueued_at > lease_expired),
        exists().where(queued, Delivery.next_attempt_at <= now,
                       or_(Delivery.enqueued_at.is_(None), Delivery.enqueued_at <= lease_expired)),
    ]
    # Through ix_enrollment_due's entries, and no further than one round of batches.
    columns.append(select(func.count()).select_from(
        select(Enrollment.id).where(Enrollment.state == EnrollmentState.active, Enrollment.next_send_at <= now)
        .limit(_due_cap(svc.config)).subquery()).scalar_subquery())
    if svc.db.is_postgresql:
        columns.append(_FINGERPRINTS)
    with svc.db.Session() as session:
        row = session.execute(select(*columns)).one()
    fingerprints = ({int(k): v for k, v in json.loads(row[4] or "{}").items()} if svc.db.is_postgresql else None)
    return _Probe(stale=bool(row[0]), leased=bool(row[1]), enqueueable=bool(row[2]), fingerprints=fingerprints,
                  due=int(row[3] or 0))


class _Cursor:
    """Where a pass has read up to, in (next_send_at, id) order, shared by its streams.

    Each batch reads on from the last row handed out (a keyset), never from the start of the
    due range again: the index entries of the rows already queued in this pass still point at
    their old versions until vacuum, and while any other transaction's snapshot holds those
    versions back (a second stream, another session in the database) every restart would walk
    over all of them again: due² work (a 100k tick took 125 s that way). A row skipped because
    another pass holds it is that pass's to send.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.after: tuple[datetime, int] | None = None
        #: a read came back with fewer rows than it asked for: nothing due lies past ``after``
        self.exhausted = False


def _queue_due(svc: Services, now: datetime, enqueue: bool, campaigns: "CampaignCache", cursor: _Cursor,
               report: TickReport, first: int) -> None:
    """Batch after batch, each in its own transaction, until no due enrollment is left to claim."""
    # A whole number of send jobs per batch (each batch enqueues its own): the first batch is
    # one (``_first_batch``), and doubling keeps it one.
    size = first
    while True:
        with svc.db.session() as session:
            if svc.db.is_postgresql:
                # The commit need not wait for its WAL flush: a batch lost in a database crash
                # leaves its enrollments due (the next tick queues them again), and no email of it
                # can have gone out, since a worker's claim commits synchronously after it, which
                # flushes the WAL up to and past this commit.
                session.execute(text("SET LOCAL synchronous_commit = off"))
            with cursor.lock:
                if cursor.exhausted:
                    break
                batch = _due_enrollments(session, now, size, cursor.after)
                if batch:
                    cursor.after = (batch[-1].next_send_at, batch[-1].id)
                # A short batch read the due range to its end: no stream reads again (an empty
                # read was a round trip and a transaction of each stream, at every tick).
                cursor.exhausted = len(batch) < size
            if not batch:
                break
            size = min(size * 2, svc.config.tick_batch_size)
            _process(session, svc, batch, now, report, campaigns, enqueue=enqueue)


def _drain_tracking_events(svc: Services) -> None:
    """Clicks buffered since the last drain count now: knowledge changes take effect at this choice."""
    from ..tracking.ingest import drain_events

    try:
        drain_events(svc, wait=5.0)
    except Exception:  # a failing drain must not stop sending; its hits stay buffered for the next
        log.exception("tracking drain failed at the start of the tick")


def candidates(session: Session, now: datetime) -> Select:
    """Due, active enrollments of running campaigns, with what the engine needs of each, in one read.

    Each row: the enrollment (id, lead_id, campaign_id, touches_sent), its lead (consent,
    status, timezone) and, on PostgreSQL, ``known_topics`` (the lead's knowledge, topic → level) and
    ``delivered_steps``: the steps it already has a
    delivery for (an array read through the (enrollment_id, step_id) index per row, so its cost
    follows the rows read, whatever the planner believes of the delivery table's size: a
    ``delivery.enrollment_id = ANY(:ids)`` lookup went to a sequential scan over a table that the
    tick itself was filling, 16 s of a 100k tick). Lock with ``skip_locked(…, of=ENROLLMENT)``.
    """
    columns: list = [Enrollment.id, Enrollment.lead_id, Enrollment.campaign_id, Enrollment.touches_sent,
                     Enrollment.next_send_at, Lead.consent, Lead.status, Lead.timezone]
    if session.get_bind().dialect.name == "postgresql":
        columns.append(select(func.array_agg(Delivery.step_id)).where(Delivery.enrollment_id == Enrollment.id)
                       .scalar_subquery().label("delivered_steps"))
        # The lead's knowledge in the same read (topic → level, through the (lead_id, topic)
        # unique index): one round trip less per batch.
        columns.append(select(func.json_object_agg(Knowledge.topic, Knowledge.level))
                       .where(Knowledge.lead_id == Enrollment.lead_id).scalar_subquery().label("known_topics"))
    return (
        select(*columns).join(Lead, Lead.id == Enrollment.lead_id)
        .where(Enrollment.state == EnrollmentState.active, Enrollment.next_send_at <= now,
               # A paused campaign (campaigns/control.py) queues nothing; its enrollments wait.
               Enrollment.campaign_id.not_in(select(Campaign.id).where(Campaign.active.is_(False))))
    )


def due_statement(session: Session, now: datetime, limit: int, after: tuple[datetime, int] | None = None) -> Select:
    """The next ``limit`` candidates in (next_send_at, id) order, after ``after`` (a keyset):
    ``ix_enrollment_due`` serves it without a sort (``tests/integration/test_tick_scale.py``
    checks the plan)."""
    statement = candidates(session, now)
    if after is not None:
        at, enrollment_id = after
        statement = statement.where(tuple_(Enrollment.next_send_at, Enrollment.id) > tuple_(
            bindparam("after_at", at, type_=_ENROLLMENT.c.next_send_at.type),
            bindparam("after_id", enrollment_id, type_=_ENROLLMENT.c.id.type)))
    statement = statement.order_by(Enrollment.next_send_at, Enrollment.id).limit(limit)
    return skip_locked(session, statement, of=ENROLLMENT)


def _due_enrollments(session: Session, now: datetime, limit: int,
                     after: tuple[datetime, int] | None = None) -> list[Row]:
    return list(session.execute(due_statement(session, now, limit, after)))


ENROLLMENT = _ENROLLMENT = Enrollment.__table__
_END = (
    update(_ENROLLMENT).where(_ENROLLMENT.c.id == bindparam("enrollment_id"))
    .values(state=bindparam("state"), state_reason=bindparam("reason"), next_send_at=None,
            ended_at=bindparam("ended_at"))
)
_RESCHEDULE = (
    update(_ENROLLMENT).where(_ENROLLMENT.c.id == bindparam("enrollment_id"))
    .values(next_send_at=bindparam("due_at"))
)


#: Plans kept across ticks (the scheduler's worker is a SimpleWorker: one process runs tick after
#: tick), by campaign fingerprint: the same rows make the same plan, so an entry is never stale,
#: only unused, whatever database or schema it came from.
_PLANS: dict[str, tuple[CampaignPlan, dict[int, str]]] = {}
_PLANS_LOCK = threading.Lock()
_PLANS_KEPT = 256


class CampaignCache:
    """The engine's plans of the campaigns a pass meets, and the key of every step (inactive
    ones too: a delivery of a step since deactivated still counts as delivered).

    With ``fingerprints`` (campaign id → fingerprint, read by the tick's probe), a plan built by
    an earlier tick from the same rows is reused: a tick reads no campaign that has not changed.
    """

    def __init__(self, fingerprints: dict[int, str] | None = None) -> None:
        self.plans: dict[int, CampaignPlan] = {}
        self.step_keys: dict[int, str] = {}
        self.fingerprints = fingerprints or {}
        self.lock = threading.Lock()

    def plan(self, session: Session, campaign_id: int) -> CampaignPlan:
        plan = self.plans.get(campaign_id)
        if plan is not None:
            return plan
        with self.lock:
            fingerprint = self.fingerprints.get(campaign_id)
            kept = _PLANS.get(fingerprint) if fingerprint else None
            if kept is None:
                campaign = load_campaign(session, campaign_id)
                kept = plan_of(campaign), {step.id: step.key for step in campaign.steps}
                if fingerprint:  # None: a campaign made since the probe, read again next tick
                    with _PLANS_LOCK:
                        if len(_PLANS) >= _PLANS_KEPT:
                            _PLANS.clear()
                        _PLANS[fingerprint] = kept
            self.step_keys.update(kept[1])
            self.plans[campaign_id] = kept[0]
            return kept[0]

    def keys(self, session: Session, step_ids: list[int] | None) -> set[str]:
        if not step_ids:
            return set()
        missing = [i for i in step_ids if i not in self.step_keys]
        if missing:  # a step of another campaign (moved enrollment): read once
            self.step_keys.update(session.execute(select(Step.id, Step.key).where(Step.id.in_(missing))).tuples())
        return {self.step_keys[i] for i in step_ids}


def _process(session: Session, svc: Services, enrollments: list[Row], now: datetime, report: TickReport,
             campaigns: CampaignCache, enqueue: bool = True) -> None:
    """Choose each enrollment's next step; write the choices as a few set-based statements.

    ``enrollments`` are rows of :func:`candidates`. With ``enqueue``, the deliveries are written
    already leased (``enqueued_at``) and their send jobs are enqueued when ``session`` commits:
    no second pass over them, and workers start on the first batch while the tick goes on.
    """
    report.due += len(enrollments)
    with_steps = bool(enrollments) and "delivered_steps" in enrollments[0]._fields
    knowledge = ({e.lead_id: {topic: Level[level] for topic, level in e.known_topics.items()}
                  for e in enrollments if e.known_topics} if with_steps
                 else knowledge_of(session, {e.lead_id for e in enrollments}))
    delivered = {} if with_steps else delivered_keys(session, [e.id for e in enrollments])
    new_deliveries: dict[str, list] = {"enrollment_id": [], "step_id": [], "lead_id": []}
    skips: list[dict] = []
    ended: list[dict] = []
    rescheduled: list[dict] = []
    zones: dict[str | None, ZoneInfo] = {}
    windows: dict[tuple[int, str | None], bool] = {}
    decisions: dict[tuple, Decision] = {}
    for enrollment in enrollments:
        if not enrollment.consent or enrollment.status in NO_SEND_STATUSES:
            ended.append(dict(enrollment_id=enrollment.id, state=EnrollmentState.exited,
                              reason=f"lead is {enrollment.status.value}", ended_at=now))
            report.exited += 1
            continue
        plan = campaigns.plan(session, enrollment.campaign_id)
        if enrollment.timezone not in zones:
            zones[enrollment.timezone] = zone(enrollment.timezone, svc.config.default_timezone)
        tz = zones[enrollment.timezone]
        window_key = (enrollment.campaign_id, enrollment.timezone)
        open_now = windows.get(window_key)
        if open_now is None:
            open_now = windows[window_key] = in_window(now, tz, plan.window)
        if not open_now:
            rescheduled.append(dict(enrollment_id=enrollment.id, due_at=next_in_window(now, tz, plan.window)))
            report.rescheduled += 1
            continue
        known = knowledge.get(enrollment.lead_id, {})
        done = (campaigns.keys(session, enrollment.delivered_steps) if with_steps
                else delivered.get(enrollment.id, set()))
        # Leads enrolled together mostly share their inputs: the engine is a pure function of them.
        key = (enrollment.campaign_id, frozenset(known.items()), frozenset(done), enrollment.touches_sent)
        decision = decisions.get(key)
        if decision is None:
            decision = decisions[key] = choose_next_step(plan, known, done, enrollment.touches_sent)
        for skip in decision.skipped:
            if skip.kind == "known":
                skips.append(dict(enrollment_id=enrollment.id, step_id=skip.step.id, reason=skip.reason, at=now))
        if decision.step is None:
            ended.append(dict(enrollment_id=enrollment.id, state=EnrollmentState.completed,
                              reason=decision.reason, ended_at=now))
            report.completed += 1
            continue
        new_deliveries["enrollment_id"].append(enrollment.id)
        new_deliveries["step_id"].append(decision.step.id)
        new_deliveries["lead_id"].append(enrollment.lead_id)
    queued = new_deliveries["enrollment_id"]
    report.queued += len(queued)
    if queued:
        # None while the delivery is outstanding; the sender sets the next due time.
        session.execute(update(_ENROLLMENT).where(among(session, _ENROLLMENT.c.id, queued)).values(next_send_at=None))
    if ended:
        session.execute(_END, ended)
    if rescheduled:
        session.execute(_RESCHEDULE, rescheduled)
    if queued:
        ids = insert_columns_returning_ids(
            session, Delivery.__table__, new_deliveries,
            dict(status=DeliveryStatus.queued, scheduled_for=now, next_attempt_at=now, attempts=0,
                 enqueued_at=now if enqueue else None),
            ["enrollment_id", "step_id"])
        if enqueue:
            _enqueue_send_jobs(session, svc, sorted(ids), report)
    if skips:
        insert_rows_ignoring_conflicts(session, StepSkip.__table__, skips, ["enrollment_id", "step_id"])


def _enqueue_send_jobs(session: Session, svc: Services, ids: list[int], report: TickReport) -> None:
    """Send jobs of ``send_batch_size`` deliveries each, enqueued once ``session`` commits."""
    size = svc.config.send_batch_size
    for start in range(0, len(ids), size):
        chunk = ids[start:start + size]
        report.jobs.append(enqueue_send_job(session, svc, chunk))
        report.enqueued_deliveries += len(chunk)


def enqueue_queued_deliveries(svc: Services, now: datetime, report: TickReport) -> None:
    """Hand queued deliveries to workers in batches, once per lease (``run_tick`` first makes the
    deliveries whose job Redis lost enqueueable again)."""

    lease_expired = now - timedelta(seconds=svc.config.send_lease_seconds)
    size = svc.config.send_batch_size
    after = 0  # keyset: each pass reads on from the last id, never the rows already handed out
    while True:
        with svc.db.session() as session:
            statement = (
                select(Delivery.id)
                .where(
                    Delivery.id > after,
                    Delivery.status == DeliveryStatus.queued,
                    Delivery.next_attempt_at <= now,
                    or_(Delivery.enqueued_at.is_(None), Delivery.enqueued_at <= lease_expired),
                )
                .order_by(Delivery.id)
                .limit(size * 20)
            )
            ids = list(session.scalars(skip_locked(session, statement)))
            if not ids:
                return
            after = ids[-1]
            session.execute(update(Delivery).where(among(session, Delivery.id, ids)).values(enqueued_at=now)
                            .execution_options(synchronize_session=False))
            # Enqueued only after the commit: a worker must find the rows it is sent.
            _enqueue_send_jobs(session, svc, ids, report)
        if len(ids) < size * 20:
            return


def recover_stale_sends(svc: Services, now: datetime, report: TickReport) -> None:
    """Deliveries claimed by a worker that died: sent if the journal says so, else queued again."""
    from .send import SendOutcome, load_items, record_outcomes

    stale_before = now - timedelta(seconds=svc.config.send_lease_seconds)
    journal = SentJournal(svc.redis)
    with svc.db.session() as session:
        stale = list(session.scalars(skip_locked(session, select(Delivery.id).where(
            Delivery.status == DeliveryStatus.sending, Delivery.claimed_at <= stale_before,
        ))))
        if not stale:
            return
        noted = journal.lookup(stale)
        outcomes = []
        for item in load_items(session, stale):
            if item.id in noted:
                sent_at, message_id = noted[item.id]
                outcomes.append(SendOutcome(item, "sent", sent_at=sent_at, message_id=message_id))
                report.recovered_sent += 1
            else:
                session.execute(update(Delivery).where(Delivery.id == item.id).values(
                    status=DeliveryStatus.queued, enqueued_at=None, next_attempt_at=now,
                    last_error="worker stopped before this email was sent; requeued"))
                report.recovered_requeued += 1
        record_outcomes(session, svc, outcomes, now)
    journal.forget(noted)
    log.warning("recovered %d sent and %d unsent deliveries from dead workers",
                report.recovered_sent, report.recovered_requeued)
