"""Send one batch of claimed deliveries over one SMTP connection and record every outcome.

Order of events for each email, and why:
1. claim (``queued → sending``, one UPDATE for the batch, committed): a second job or worker
   given the same ids finds nothing left to claim, so nothing is sent twice;
2. check the lead can still receive: its status, its enrollment, and the suppression list (one
   query per batch), so an unsubscribe or bounce just now cancels an already queued email;
3. per-domain rate limit (over it: deferred to the next window, no attempt counted), render,
   build, DKIM-sign when configured;
4. the previous email's journal note confirmed, a slot under the global rate limit, the SMTP
   transaction; on acceptance, a note written to the Redis journal (reply read before the
   next email is offered, see ``journal.py``);
5. outcomes written to the database in batches; journal notes dropped after the commit.

One thread renders and sends in turn: handing each email to a second thread cost more in GIL
hand-offs than the overlap gained; a machine's cores are used by one worker process per core.

When something a batch depends on goes away, it stops before the next message and keeps what it
knows: Redis lost (the journal or the rate limiter fails) → the emails sent so far are recorded
in the database from memory and the untried rest is given back (``queued``, attempt returned);
the database lost → sending stops and the record is retried with backoff (``resilience.py``)
while the journal in Redis still covers every sent email; the relay unreachable → the rest is
given back for a retry. Recording is idempotent (only rows still ``sending`` are settled), so a
commit whose answer was lost can be written again.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as dt_time
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import Integer, bindparam, case, func, literal, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from ..engine.plan import SendWindow
from ..engine.schedule import next_in_window, zone
from ..extensions import Services
from ..mail.compose import Composer
from ..mail.dkim import DkimSigner
from ..mail.outbox import signed_message
from ..mail.ratelimit import DomainWindow, SendRateLimiter, deliverability_settings
from ..mail.transport import (
    PermanentFailure,
    SMTPSettings,
    SMTPTransport,
    TemporaryFailure,
    keep_transport,
    kept_transport,
)
from ..models import (
    ALL_EMAIL,
    NO_SEND_STATUSES,
    Campaign,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Event,
    EventKind,
    Knowledge,
    KnowledgeEvidence,
    KnowledgeLevel,
    Lead,
    LeadStatus,
    Link,
    Step,
)
from ..resilience import is_db_outage, retry_db
from .inflight import taken
from .journal import JournalUnavailable, JournalWriter, SentJournal
from .sql import insert_ignoring_conflicts
from .suppression import suppression_scopes

log = logging.getLogger(__name__)

FLUSH_EVERY = 250
#: How the error of an email begins when the relay could not be reached at all.
UNREACHABLE = "connection: "


# -- what a batch works on: plain rows, loaded in a few queries --------------------------------


@dataclass(frozen=True)
class CampaignRow:
    id: int
    slug: str
    name: str
    cadence_seconds: int
    window: SendWindow


@dataclass(frozen=True)
class LinkRow:
    id: int
    name: str
    url: str
    topic: str | None
    hand_raiser: bool


@dataclass(frozen=True)
class StepRow:
    id: int
    key: str
    subject: str
    preheader: str | None
    html_template: str
    text_template: str
    teaches: tuple[str, ...]
    links: tuple[LinkRow, ...]
    campaign: CampaignRow


@dataclass(frozen=True)
class LeadRow:
    id: int
    email: str
    first_name: str | None
    last_name: str | None
    title: str | None
    company: str | None
    timezone: str | None
    custom_fields: dict[str, Any]
    status: LeadStatus
    consent: bool
    soft_bounces: int = 0

    @property
    def can_receive(self) -> bool:
        return self.consent and self.status not in NO_SEND_STATUSES


@dataclass(frozen=True)
class SendItem:
    """One claimed delivery with everything needed to render, send and record it."""

    id: int
    lead_id: int
    enrollment_id: int
    enrollment_state: EnrollmentState
    scheduled_for: datetime
    attempts: int
    lead: LeadRow
    step: StepRow


@dataclass
class SendOutcome:
    item: SendItem
    #: sent | temporary | permanent | cancelled | deferred | returned (claimed, never tried: given back)
    kind: str
    sent_at: datetime | None = None
    message_id: str | None = None
    error: str | None = None
    #: For ``deferred``: when the recipient's domain may take it (the next rate-limit window).
    not_before: datetime | None = None

    @property
    def accepted_at(self) -> datetime:
        """When the server took a ``sent`` email."""
        if self.sent_at is None:
            raise ValueError(f"delivery {self.item.id}: a {self.kind} outcome has no send time")
        return self.sent_at


@dataclass
class BatchReport:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0
    deferred: int = 0
    #: claimed but never offered to the server (Redis, the database or the relay went away)
    returned: int = 0


def claim(session: Session, delivery_ids: list[int], now: datetime) -> list[int]:
    """Atomically move still-queued deliveries to ``sending``; returns the ids this caller owns."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(delivery_ids), Delivery.status == DeliveryStatus.queued)
        .values(status=DeliveryStatus.sending, claimed_at=now, attempts=Delivery.attempts + 1)
        .returning(Delivery.id)
    )
    return sorted(row[0] for row in result)


def load_items(session: Session, ids: list[int]) -> list[SendItem]:
    """Deliveries with their lead, enrollment state, step, links and campaign: four queries."""
    rows = session.execute(
        select(Delivery.id, Delivery.lead_id, Delivery.enrollment_id, Delivery.step_id, Delivery.scheduled_for,
               Delivery.attempts, Enrollment.state, Lead.id, Lead.email, Lead.first_name, Lead.last_name,
               Lead.title, Lead.company, Lead.timezone, Lead.custom_fields, Lead.status, Lead.consent,
               Lead.soft_bounces)
        .join(Enrollment, Enrollment.id == Delivery.enrollment_id)
        .join(Lead, Lead.id == Delivery.lead_id)
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.id)
    ).all()
    steps = _steps(session, {r[3] for r in rows})
    return [
        SendItem(
            id=r[0], lead_id=r[1], enrollment_id=r[2], scheduled_for=r[4], attempts=r[5], enrollment_state=r[6],
            lead=LeadRow(id=r[7], email=r[8], first_name=r[9], last_name=r[10], title=r[11], company=r[12],
                         timezone=r[13], custom_fields=r[14] or {}, status=r[15], consent=r[16],
                         soft_bounces=r[17]),
            step=steps[r[3]],
        )
        for r in rows
    ]


def _steps(session: Session, step_ids: set[int]) -> dict[int, StepRow]:
    if not step_ids:
        return {}
    links: dict[int, list[LinkRow]] = {i: [] for i in step_ids}
    for link in session.execute(
        select(Link.step_id, Link.id, Link.name, Link.url, Link.topic, Link.hand_raiser)
        .where(Link.step_id.in_(step_ids)).order_by(Link.step_id, Link.position)
    ):
        links[link[0]].append(LinkRow(link[1], link[2], link[3], link[4], link[5]))
    campaigns: dict[int, CampaignRow] = {}
    result: dict[int, StepRow] = {}
    # Columns, not entities: an ORM entity row costs a row processor built per statement.
    for r in session.execute(
        select(Step.id, Step.key, Step.subject, Step.preheader, Step.html_template, Step.text_template, Step.teaches,
               Campaign.id, Campaign.slug, Campaign.name, Campaign.cadence_seconds, Campaign.window_start_minute,
               Campaign.window_end_minute, Campaign.weekdays_only)
        .join(Campaign, Campaign.id == Step.campaign_id).where(Step.id.in_(step_ids))
    ):
        campaign = campaigns.get(r[7])
        if campaign is None:
            campaign = campaigns[r[7]] = CampaignRow(r[7], r[8], r[9], r[10], SendWindow(
                start=dt_time(r[11] // 60, r[11] % 60), end=dt_time(r[12] // 60, r[12] % 60), weekdays_only=r[13]))
        result[r[0]] = StepRow(r[0], r[1], r[2], r[3], r[4], r[5], tuple(r[6] or ()), tuple(links[r[0]]), campaign)
    return result


# -- sending ------------------------------------------------------------------------------------


class _Stop(Exception):
    """Sending must stop before the next message; ``reason`` goes on the emails given back."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def send_batch(svc: Services, delivery_ids: list[int], composer: Composer | None = None) -> BatchReport:
    report = BatchReport()
    settings = deliverability_settings(svc.config)
    # Before the claim: a DKIM key that cannot be read fails the job, and no email goes unsigned.
    signer = DkimSigner.from_settings(settings)

    def claim_committed() -> list[int]:
        with svc.db.session() as session:
            return claim(session, delivery_ids, svc.clock.now())

    claimed = retry_db(claim_committed, "claiming a send batch")
    taken(svc, delivery_ids)
    report.claimed = len(claimed)
    if not claimed:
        return report
    started = time.monotonic()
    composer = composer or default_composer(svc)
    journal = SentJournal(svc.redis)
    # The session of the previous batch, if still good: no connect, greeting and EHLO per batch.
    transport = kept_transport(SMTPSettings.from_url(svc.config.effective_smtp_url, timeout=svc.config.smtp_timeout))
    batch = _Batch(svc, journal)
    stopped: str | None = None
    finished = False
    writer = None
    try:
        items, checks = retry_db(lambda: _load(svc, claimed), "loading a send batch")
        batch.items = items
        limiter = SendRateLimiter.from_settings(svc.redis, settings)
        if limiter is not None:
            checks.defer_over_domain_limits(limiter, items, svc.clock.now())
        writer = journal.writer()
        stopped = _send_all(svc, composer, signer, checks, limiter, transport, writer, batch)
        finished = not stopped
    except _Stop as stop:
        stopped = stop.reason
    except RedisError as exc:  # the rate limiter's or the journal's Redis went away before sending
        stopped = f"Redis unavailable: {exc}"[:1000]
    finally:
        if finished:
            keep_transport(transport)
        else:
            transport.close()
        if writer is not None:
            try:
                writer.confirm()
            except JournalUnavailable:
                pass  # what was sent is in memory and recorded below
            writer.close()
        if stopped:
            log.warning("send batch stopped: %s; %d sent are recorded from memory, %d given back", stopped,
                        batch.sent_count, len(batch.untouched()))
        if stopped and stopped.startswith(UNREACHABLE):
            batch.give_back(stopped, "temporary")  # retried with backoff, as a refused email is
        else:
            batch.give_back(stopped or "batch ended before this email was tried")
        retry_db(lambda: batch.flush(report), "recording a send batch")
    log.info("send batch: %d claimed, %d sent, %d retrying, %d failed, %d cancelled, %d deferred, %d given back "
             "in %.2f s", report.claimed, report.sent, report.retrying, report.failed, report.cancelled,
             report.deferred, report.returned, time.monotonic() - started)
    return report


def _load(svc: Services, claimed: list[int]) -> tuple[list[SendItem], _SendChecks]:
    with svc.db.Session() as session:
        items = load_items(session, claimed)
        return items, _SendChecks(suppression_scopes(session, (i.lead.email for i in items)))


def _send_all(svc: Services, composer: Composer, signer: DkimSigner | None, checks: _SendChecks,
              limiter: SendRateLimiter | None, transport: SMTPTransport, writer: JournalWriter,
              batch: _Batch) -> str | None:
    """Render and send in turn, in this one thread; returns why sending stopped early, if it did.

    For each email: render it, read the previous email's journal reply (normally already
    there: the render took longer than the round trip), wait for a slot under the global rate
    limit, send it, write its journal note without waiting. The outcomes stay in memory and
    are written to the database every FLUSH_EVERY emails.
    """
    for item in batch.items:
        prepared = _prepare(svc, composer, item, checks, signer)
        if isinstance(prepared, SendOutcome):
            batch.add(prepared)
            continue
        item, envelope_from, message_id, data = prepared
        try:
            writer.confirm()  # the previous email's note is in Redis before this one is offered
            if limiter is not None:
                limiter.wait_for_slot()  # global SEND_RATE_PER_SECOND, shared by every worker
        except JournalUnavailable as exc:
            return str(exc)
        except RedisError as exc:
            return f"Redis unavailable: {exc}"[:1000]
        outcome = _transact(transport, item, envelope_from, message_id, data, svc)
        batch.add(outcome)
        if outcome.kind == "sent":
            try:
                writer.note(item.id, message_id, outcome.accepted_at)
            except JournalUnavailable as exc:
                return str(exc)
        elif outcome.kind == "temporary" and outcome.error and outcome.error.startswith(UNREACHABLE):
            return outcome.error  # the server is unreachable: the rest is given back, untried
        if batch.unflushed >= FLUSH_EVERY:
            try:
                batch.flush_now()
            except Exception as exc:
                if not is_db_outage(exc):
                    raise
                return f"database unavailable: {str(exc).splitlines()[0]}"[:1000]
    return None


def _transact(transport: SMTPTransport, item: SendItem, envelope_from: str, message_id: str, data: bytes,
              svc: Services) -> SendOutcome:
    try:
        transport.send(envelope_from, item.lead.email, data)
    except TemporaryFailure as exc:
        if exc.code is None:
            return SendOutcome(item, "temporary", error=f"{UNREACHABLE}{exc.reply}"[:1000])
        return SendOutcome(item, "temporary", error=f"{exc.code} {exc.reply}"[:1000])
    except PermanentFailure as exc:
        return SendOutcome(item, "permanent", error=f"{exc.code} {exc.reply}"[:1000])
    except Exception as exc:  # never lose an outcome: an unexpected error is recorded and retried
        log.exception("unexpected error sending delivery %s", item.id)
        return SendOutcome(item, "temporary", error=f"{type(exc).__name__}: {exc}"[:1000])
    return SendOutcome(item, "sent", sent_at=svc.clock.now(), message_id=message_id)


class _Batch:
    """What a batch knows in memory: the outcome of every email tried, until it is committed."""

    def __init__(self, svc: Services, journal: SentJournal) -> None:
        self.svc = svc
        self.journal = journal
        self.items: list[SendItem] = []
        self.outcomes: dict[int, SendOutcome] = {}
        self.committed: set[int] = set()
        self.sent_count = 0

    @property
    def unflushed(self) -> int:
        return len(self.outcomes) - len(self.committed)

    def add(self, outcome: SendOutcome) -> None:
        self.outcomes[outcome.item.id] = outcome
        if outcome.kind == "sent":
            self.sent_count += 1

    def untouched(self) -> list[SendItem]:
        return [item for item in self.items if item.id not in self.outcomes]

    def give_back(self, reason: str, kind: str = "returned") -> None:
        """Claimed emails never offered to the server go back to the queue, their attempt returned.

        If the items could not even be loaded, every claimed id is unknown here; they stay
        ``sending`` and the tick settles them once their lease is over.
        """
        for item in self.untouched():
            self.add(SendOutcome(item, kind, error=reason[:1000]))

    def flush_now(self, report: BatchReport | None = None) -> None:
        pending = [o for i, o in self.outcomes.items() if i not in self.committed]
        if not pending:
            return
        with self.svc.db.Session() as session:
            try:
                record_outcomes(session, self.svc, pending, self.svc.clock.now(), report)
                session.commit()
            except BaseException:
                session.rollback()
                raise
        self.committed.update(o.item.id for o in pending)
        self.journal.forget_quietly(o.item.id for o in pending if o.kind == "sent")

    def flush(self, report: BatchReport) -> None:
        """The final write; counts every outcome of the batch into ``report``."""
        report.sent = report.retrying = report.failed = report.cancelled = report.deferred = 0
        self.flush_now()
        _count(self.outcomes.values(), self.svc.config.smtp_max_attempts, report)


def _count(outcomes, max_attempts: int, report: BatchReport) -> None:
    for outcome in outcomes:
        if outcome.kind == "sent":
            report.sent += 1
        elif outcome.kind == "temporary":
            if outcome.item.attempts >= max_attempts:
                report.failed += 1
            else:
                report.retrying += 1
        elif outcome.kind == "permanent":
            report.failed += 1
        elif outcome.kind == "cancelled":
            report.cancelled += 1
        elif outcome.kind == "deferred":
            report.deferred += 1
        elif outcome.kind == "returned":
            report.returned += 1


class _SendChecks:
    """What a batch learns once, before its first email: who is suppressed, who must wait."""

    def __init__(self, suppressed: dict[str, set[str]]) -> None:
        #: email -> scopes (``*`` or campaign slugs), from one query for the whole batch.
        self.suppressed = suppressed
        #: delivery id -> the domain window that refused it.
        self.deferred: dict[int, DomainWindow] = {}

    def refusal(self, item: SendItem) -> str | None:
        """Why this email must not go out at all, if it must not."""
        if not item.lead.can_receive:
            return f"lead is {item.lead.status.value}"
        scopes = self.suppressed.get(item.lead.email)
        if scopes:
            if ALL_EMAIL in scopes:
                return "address is suppressed (all email)"
            if item.step.campaign.slug in scopes:
                return f"address is suppressed for campaign {item.step.campaign.slug}"
        if item.enrollment_state != EnrollmentState.active:
            return f"enrollment is {item.enrollment_state.value}"
        return None

    def defer_over_domain_limits(self, limiter: SendRateLimiter, items: list[SendItem], now: datetime) -> None:
        # Only emails that would be sent count against their domain's window.
        sendable = [item for item in items if self.refusal(item) is None]
        _, deferred = limiter.admit(sendable, lambda item: item.lead.email.rpartition("@")[2], now)
        self.deferred = {item.id: window for item, window in deferred}


def _prepare(svc: Services, composer: Composer, item: SendItem, checks: _SendChecks, signer: DkimSigner | None):
    """The bytes to send, or the outcome that says why this email is not sent (now)."""
    refusal = checks.refusal(item)
    if refusal is not None:
        return SendOutcome(item, "cancelled", error=refusal)
    window = checks.deferred.get(item.id)
    if window is not None:
        return SendOutcome(item, "deferred", not_before=window.next_window,
                           error=f"deferred: rate limit for {window.domain} reached for this minute")
    try:
        email = composer.compose(item, item.lead, item.step, item.step.campaign, svc.clock.now())
        data = signed_message(email, signer)
    except Exception as exc:  # a template error is permanent for this email; recorded, never dropped
        log.exception("cannot render delivery %s", item.id)
        return SendOutcome(item, "permanent", error=f"render: {type(exc).__name__}: {exc}"[:1000])
    return item, email.return_path or email.from_addr, email.message_id, data


# -- recording ----------------------------------------------------------------------------------


def record_outcomes(session: Session, svc: Services, outcomes: list[SendOutcome], now: datetime,
                    report: BatchReport | None = None) -> None:
    """Write what happened to each email: the ledger, the enrollment's next touch, knowledge.

    Statements are executed once per kind of change with many parameter sets, so a batch of
    250 costs a handful of round trips.
    """
    report = report or BatchReport()
    outcomes = _still_sending(session, outcomes)
    sent = [o for o in outcomes if o.kind == "sent"]
    if sent:
        _record_sent(session, svc, sent)
        report.sent += len(sent)
    for outcome in outcomes:
        if outcome.kind == "temporary":
            if outcome.item.attempts >= svc.config.smtp_max_attempts:
                _set_delivery(session, outcome.item.id, status=DeliveryStatus.failed, last_error=outcome.error)
                _end_enrollment(session, outcome.item.enrollment_id, EnrollmentState.paused,
                                f"delivery failed after {outcome.item.attempts} attempts: {outcome.error}", None)
                report.failed += 1
            else:
                _set_delivery(session, outcome.item.id, status=DeliveryStatus.queued, enqueued_at=None,
                              last_error=outcome.error,
                              next_attempt_at=now + backoff(svc.config.retry_backoff_seconds, outcome.item.attempts))
                report.retrying += 1
        elif outcome.kind == "permanent":
            _set_delivery(session, outcome.item.id, status=DeliveryStatus.failed, last_error=outcome.error)
            _end_enrollment(session, outcome.item.enrollment_id, EnrollmentState.exited,
                            f"permanent delivery failure: {outcome.error}", now)
            report.failed += 1
        elif outcome.kind == "cancelled":
            _set_delivery(session, outcome.item.id, status=DeliveryStatus.cancelled, last_error=outcome.error)
            _end_enrollment(session, outcome.item.enrollment_id, EnrollmentState.exited, outcome.error, now)
            report.cancelled += 1
        elif outcome.kind == "returned":
            _set_delivery(session, outcome.item.id, status=DeliveryStatus.queued, enqueued_at=None,
                          next_attempt_at=now, attempts=Delivery.attempts - 1, last_error=outcome.error)
            report.returned += 1
        elif outcome.kind == "deferred":
            # Never offered to the server: the claim's attempt is given back, so a busy domain
            # cannot use up SMTP_MAX_ATTEMPTS of an email that was never tried.
            _set_delivery(session, outcome.item.id, status=DeliveryStatus.queued, enqueued_at=None,
                          next_attempt_at=outcome.not_before, attempts=Delivery.attempts - 1,
                          last_error=outcome.error)
            report.deferred += 1


def _still_sending(session: Session, outcomes: list[SendOutcome]) -> list[SendOutcome]:
    """Only deliveries still ``sending`` are settled: writing the same outcomes twice (a retried
    commit, a tick's recovery racing the worker) changes nothing the second time. The rows are
    locked (PostgreSQL) so two settlers of one delivery take turns."""
    if not outcomes:
        return outcomes
    ids = [o.item.id for o in outcomes]
    sending: set[int] = set()
    for start in range(0, len(ids), 1000):
        sending.update(session.scalars(
            select(Delivery.id).where(Delivery.id.in_(ids[start:start + 1000]),
                                      Delivery.status == DeliveryStatus.sending)
            .order_by(Delivery.id).with_for_update()
        ))
    return [o for o in outcomes if o.item.id in sending]


_DELIVERY = Delivery.__table__
_ENROLLMENT = Enrollment.__table__
_LEAD = Lead.__table__
#: Built once per process, not per batch (SQLAlchemy caches their compiled form by structure).
_MARK_SENT = update(_DELIVERY).where(_DELIVERY.c.id == bindparam("d_id")).values(
    status=DeliveryStatus.sent.value, sent_at=bindparam("d_sent_at"), message_id=bindparam("d_message_id"),
    last_error=None)
# One statement for both: an enrollment paused or exited meanwhile still counts the touch, but
# keeps its next_send_at (no next touch).
_TOUCHED = update(_ENROLLMENT).where(_ENROLLMENT.c.id == bindparam("e_id")).values(
    touches_sent=_ENROLLMENT.c.touches_sent + 1, last_sent_at=bindparam("e_sent_at"),
    next_send_at=case((_ENROLLMENT.c.state == EnrollmentState.active.value,
                       bindparam("e_next", type_=_ENROLLMENT.c.next_send_at.type)),
                      else_=_ENROLLMENT.c.next_send_at))
_NURTURING = update(_LEAD).where(_LEAD.c.id.in_(bindparam("ids", expanding=True)),
                                 _LEAD.c.status.in_([LeadStatus.new, LeadStatus.recycled])).values(
    status=LeadStatus.nurturing)


def _unnested(columns: dict[str, tuple[Any, list[Any]]]):
    """``SELECT unnest(:a) AS a, unnest(:b) AS b, …``: a batch's rows as one array per column."""
    return select(*(func.unnest(literal(values, postgresql.ARRAY(type_))).label(name)
                    for name, (type_, values) in columns.items())).subquery("v")


def _record_sent(session: Session, svc: Services, sent: list[SendOutcome]) -> None:
    connection = session.connection()  # Core statements: no ORM bulk-update machinery per batch
    nexts = [_next_touch(svc, o) for o in sent]
    enrollment_ids = [o.item.enrollment_id for o in sent]
    if connection.dialect.name == "postgresql" and len(set(enrollment_ids)) == len(enrollment_ids):
        # One statement each for the batch, one array parameter per column: an executemany runs
        # (and converts) the UPDATE once per row. (Two deliveries of one enrollment in a batch
        # would count the touch once here: the executemany below counts each.)
        times = [o.sent_at for o in sent]
        v = _unnested({"id": (Integer(), [o.item.id for o in sent]), "sent_at": (_DELIVERY.c.sent_at.type, times),
                       "message_id": (_DELIVERY.c.message_id.type, [o.message_id for o in sent])})
        connection.execute(update(_DELIVERY).where(_DELIVERY.c.id == v.c.id).values(
            status=DeliveryStatus.sent.value, sent_at=v.c.sent_at, message_id=v.c.message_id, last_error=None))
        e = _unnested({"id": (Integer(), enrollment_ids), "sent_at": (_ENROLLMENT.c.last_sent_at.type, times),
                       "next": (_ENROLLMENT.c.next_send_at.type, nexts)})
        connection.execute(update(_ENROLLMENT).where(_ENROLLMENT.c.id == e.c.id).values(
            touches_sent=_ENROLLMENT.c.touches_sent + 1, last_sent_at=e.c.sent_at,
            next_send_at=case((_ENROLLMENT.c.state == EnrollmentState.active.value, e.c.next),
                              else_=_ENROLLMENT.c.next_send_at)))
    else:  # SQLite runs an executemany in C
        connection.execute(_MARK_SENT, [{"d_id": o.item.id, "d_sent_at": o.sent_at, "d_message_id": o.message_id}
                                        for o in sent])
        connection.execute(_TOUCHED, [{"e_id": o.item.enrollment_id, "e_sent_at": o.sent_at, "e_next": n}
                                      for o, n in zip(sent, nexts)])
    _reset_soft_bounces(session, sent)
    fresh = {o.item.lead_id for o in sent if o.item.lead.status in (LeadStatus.new, LeadStatus.recycled)}
    if fresh:
        connection.execute(_NURTURING, {"ids": sorted(fresh)})
    exposures: dict[tuple[int, str], tuple[int, datetime]] = {}
    for o in sent:
        for topic in o.item.step.teaches:
            exposures.setdefault((o.item.lead_id, topic), (o.item.id, o.accepted_at))
    if exposures:
        _expose(session, exposures)


def _reset_soft_bounces(session: Session, sent: list[SendOutcome]) -> None:
    """A lead's soft-bounce count restarts when it is sent an email that never bounced.

    A soft-bounced email sent again does not reset it: the bounce report arrives only after the
    server accepted the email, so resetting on every acceptance would keep a full mailbox at
    one soft bounce forever and "several in a row" could never be reached.
    """
    counting = [o for o in sent if o.item.lead.soft_bounces > 0]  # usually none: no query at all
    if not counting:
        return
    bounced_before = set(session.scalars(
        select(Event.delivery_id).where(Event.delivery_id.in_([o.item.id for o in counting]),
                                        Event.kind == EventKind.bounce)
    ))
    leads = {o.item.lead_id for o in counting if o.item.id not in bounced_before}
    if leads:
        session.execute(update(Lead).where(Lead.id.in_(leads), Lead.soft_bounces > 0).values(soft_bounces=0)
                        .execution_options(synchronize_session=False))


def _next_touch(svc: Services, outcome: SendOutcome) -> datetime:
    """Spaced from when the touch was due or went out, whichever is later, inside the window."""
    campaign = outcome.item.step.campaign
    base = max(outcome.item.scheduled_for, outcome.accepted_at)
    return next_in_window(base + timedelta(seconds=campaign.cadence_seconds),
                          zone(outcome.item.lead.timezone, svc.config.default_timezone), campaign.window)


_EXPOSE: dict[str, Any] = {}


def _expose(session: Session, exposures: dict[tuple[int, str], tuple[int, datetime]]) -> None:
    """Unknown topics of delivered steps become ``exposed``, with the delivery as evidence."""
    dialect = session.get_bind().dialect.name
    statement = _EXPOSE.get(dialect)
    if statement is None:
        knowledge = Knowledge.__table__
        statement = _EXPOSE[dialect] = insert_ignoring_conflicts(session, knowledge, ["lead_id", "topic"]).returning(
            knowledge.c.lead_id, knowledge.c.topic, knowledge.c.updated_at)
    rows = [dict(lead_id=lead_id, topic=topic, level=KnowledgeLevel.exposed, updated_at=at)
            for (lead_id, topic), (_, at) in exposures.items()]
    connection = session.connection()
    # executemany with RETURNING ("insertmanyvalues"): rows that already existed return nothing.
    inserted = connection.execute(statement, rows).all()
    if inserted:
        connection.execute(_EVIDENCE, [
            dict(lead_id=lead_id, topic=topic, level=KnowledgeLevel.exposed.value, source="delivery",
                 delivery_id=exposures[(lead_id, topic)][0], at=at)
            for lead_id, topic, at in inserted
        ])


_EVIDENCE = KnowledgeEvidence.__table__.insert()


def _set_delivery(session: Session, delivery_id: int, **values: Any) -> None:
    session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


def _end_enrollment(session: Session, enrollment_id: int, state: EnrollmentState, reason: str | None,
                    ended_at: datetime | None) -> None:
    session.execute(
        update(Enrollment).where(Enrollment.id == enrollment_id, Enrollment.state == EnrollmentState.active)
        .values(state=state, state_reason=(reason or "")[:500] or None, next_send_at=None, ended_at=ended_at)
    )


def backoff(base_seconds: int, attempts: int) -> timedelta:
    """1, 5, 25, … × base, capped at six hours: soft failures get room to clear."""
    return timedelta(seconds=min(base_seconds * 5 ** max(attempts - 1, 0), 6 * 3600))


def default_composer(svc: Services) -> Composer:
    from ..tracking.urls import TrackingUrls

    urls = TrackingUrls(svc.config)
    return Composer(svc.config, svc.renderer, link_url=urls.link, unsubscribe_url=urls.unsubscribe,
                    extra_headers=urls.list_unsubscribe_headers, context_extras=urls.context_extras)
