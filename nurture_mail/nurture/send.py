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
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import JSON, select, update
from sqlalchemy.orm import Session

from ..engine.plan import SendWindow
from ..engine.schedule import next_in_window, zone
from ..extensions import Services
from ..leads.bulk import SQLITE_MAX_PARAMETERS, Bulk, memoized
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
    """Atomically move still-queued deliveries to ``sending``; returns the ids this caller owns.

    One ``UPDATE … RETURNING`` at the driver level (``leads/bulk.py``): no ORM update machinery.
    """
    rows = Bulk(session).update_where_in(
        _DELIVERY, "id", delivery_ids, {"status": DeliveryStatus.sending, "claimed_at": now},
        only_if=("status", [DeliveryStatus.queued]), increment=["attempts"], returning=["id"])
    return sorted(row[0] for row in rows)


_DELIVERY = Delivery.__table__
_ENROLLMENT = Enrollment.__table__
_LEAD = Lead.__table__
#: What ``load_items`` reads, in this order: (alias, column) of the delivery (d), enrollment (e) and lead (l).
_ITEM_COLUMNS = [("d", _DELIVERY.c[name]) for name in
                 ("id", "lead_id", "enrollment_id", "step_id", "scheduled_for", "attempts")] + \
                [("e", _ENROLLMENT.c.state)] + \
                [("l", _LEAD.c[name]) for name in ("id", "email", "first_name", "last_name", "title", "company",
                                                   "timezone", "custom_fields", "status", "consent", "soft_bounces")]


def load_items(session: Session, ids: list[int]) -> list[SendItem]:
    """Deliveries with their lead, enrollment state, step, links and campaign: four queries.

    The first at the driver level, its values converted with SQLAlchemy's own result processors
    (each distinct datetime, enum or flag once per batch; JSON once per row).
    """
    if not ids:
        return []
    bulk = Bulk(session)
    quote = bulk.quote
    head = (f"SELECT {', '.join(f'{alias}.{quote(c.name)}' for alias, c in _ITEM_COLUMNS)} FROM "
            f"{{source}} JOIN {quote(_ENROLLMENT.name)} AS e ON e.id = d.enrollment_id "
            f"JOIN {quote(_LEAD.name)} AS l ON l.id = d.lead_id {{where}}ORDER BY d.id")
    raw: list[tuple[Any, ...]] = []
    description: Any = None
    if bulk.postgresql:
        (array,), params = bulk.pg_arrays(_DELIVERY, ["id"], [list(ids)])
        raw, description = bulk.query(head.format(
            source=f"unnest({array}) AS wanted(k) JOIN {quote(_DELIVERY.name)} AS d ON d.id = wanted.k", where=""),
            params)
    else:
        for start in range(0, len(ids), SQLITE_MAX_PARAMETERS):
            part = list(ids[start:start + SQLITE_MAX_PARAMETERS])
            rows, description = bulk.query(head.format(
                source=f"{quote(_DELIVERY.name)} AS d", where=f"WHERE d.id IN ({', '.join('?' * len(part))}) "), part)
            raw.extend(rows)
        raw.sort(key=lambda r: r[0])
    if not raw:
        return []
    table_columns = [c for _, c in _ITEM_COLUMNS]
    columns = _converted([list(c) for c in zip(*raw)], table_columns, bulk.result_processors(table_columns, description))
    steps = _steps(session, set(columns[3]))
    return [
        SendItem(
            id=r[0], lead_id=r[1], enrollment_id=r[2], scheduled_for=r[4], attempts=r[5], enrollment_state=r[6],
            lead=LeadRow(id=r[7], email=r[8], first_name=r[9], last_name=r[10], title=r[11], company=r[12],
                         timezone=r[13], custom_fields=r[14] or {}, status=r[15], consent=r[16],
                         soft_bounces=r[17]),
            step=steps[r[3]],
        )
        for r in zip(*columns)
    ]


def _converted(columns: list[list[Any]], table_columns: list[Any], processors: list[Any]) -> list[list[Any]]:
    """Each column through its result processor: other values once each, JSON documents (mutable) once per row."""
    out: list[list[Any]] = []
    for values, column, processor in zip(columns, table_columns, processors, strict=True):
        if processor is None:
            out.append(values)
        elif isinstance(column.type, JSON):
            out.append([processor(v) for v in values])
        else:
            out.append(memoized(processor, values, {}))
    return out


_LINK_COLUMNS = [Link.__table__.c[name] for name in ("step_id", "id", "name", "url", "topic", "hand_raiser")]
_STEP_COLUMNS = [("s", Step.__table__.c[name]) for name in
                 ("id", "key", "subject", "preheader", "html_template", "text_template", "teaches")] + \
                [("c", Campaign.__table__.c[name]) for name in ("id", "slug", "name", "cadence_seconds",
                                                                "window_start_minute", "window_end_minute",
                                                                "weekdays_only")]


def _steps(session: Session, step_ids: set[int]) -> dict[int, StepRow]:
    """The batch's few steps with their links and campaigns: two queries at the driver level."""
    if not step_ids:
        return {}
    bulk = Bulk(session)
    quote = bulk.quote
    wanted = sorted(step_ids)
    marks = ", ".join([bulk.mark] * len(wanted))
    links: dict[int, list[LinkRow]] = {i: [] for i in step_ids}
    for link in _selected(bulk, f"SELECT {', '.join(quote(c.name) for c in _LINK_COLUMNS)} FROM "
                                f"{quote(Link.__table__.name)} WHERE step_id IN ({marks}) ORDER BY step_id, position",
                          wanted, _LINK_COLUMNS):
        links[link[0]].append(LinkRow(link[1], link[2], link[3], link[4], link[5]))
    campaigns: dict[int, CampaignRow] = {}
    result: dict[int, StepRow] = {}
    for r in _selected(bulk, f"SELECT {', '.join(f'{alias}.{quote(c.name)}' for alias, c in _STEP_COLUMNS)} FROM "
                             f"{quote(Step.__table__.name)} AS s JOIN {quote(Campaign.__table__.name)} AS c "
                             f"ON c.id = s.campaign_id WHERE s.id IN ({marks})",
                       wanted, [c for _, c in _STEP_COLUMNS]):
        campaign = campaigns.get(r[7])
        if campaign is None:
            campaign = campaigns[r[7]] = CampaignRow(r[7], r[8], r[9], r[10],
                                                     SendWindow.from_minutes(r[11], r[12], r[13]))
        result[r[0]] = StepRow(r[0], r[1], r[2], r[3], r[4], r[5], tuple(r[6] or ()), tuple(links[r[0]]), campaign)
    return result


def _selected(bulk: Bulk, sql: str, params: list[Any], columns: list[Any]) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` (selecting ``columns``), as SQLAlchemy's result would give them."""
    raw, description = bulk.query(sql, params)
    if not raw:
        return []
    return list(zip(*_converted([list(c) for c in zip(*raw)], columns, bulk.result_processors(columns, description))))


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

    The ``sent`` emails, nearly all of a batch, are written at the driver level (``leads/bulk.py``:
    values converted with SQLAlchemy's own type processors, each distinct one once): a handful
    of statements per batch whatever its size. The rare other outcomes are one or two ORM UPDATEs each.
    """
    report = report or BatchReport()
    bulk = Bulk(session)
    sent = [o for o in outcomes if o.kind == "sent"]
    if len(sent) < len(outcomes) or not bulk.postgresql:
        # On PostgreSQL a batch of only ``sent`` outcomes is settled by the statement that marks them.
        outcomes = _still_sending(bulk, outcomes)
        sent = [o for o in outcomes if o.kind == "sent"]
    if sent:
        sent = _record_sent(session, bulk, svc, sent)
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


def _still_sending(bulk: Bulk, outcomes: list[SendOutcome]) -> list[SendOutcome]:
    """Only deliveries still ``sending`` are settled: writing the same outcomes twice (a retried
    commit, a tick's recovery racing the worker) changes nothing the second time. The rows are
    locked (PostgreSQL), in id order, so two settlers of one delivery take turns."""
    if not outcomes:
        return outcomes
    ids = sorted({o.item.id for o in outcomes})
    sending = bulk.value(_DELIVERY, "status", DeliveryStatus.sending)
    head = f"SELECT id FROM {bulk.quote(_DELIVERY.name)} WHERE status = {bulk.mark} AND id "
    if bulk.postgresql:
        (array,), params = bulk.pg_arrays(_DELIVERY, ["id"], [ids])
        rows = bulk.execute(f"{head}= ANY({array}) ORDER BY id FOR UPDATE", [sending, *params])
    else:
        rows = []
        for start in range(0, len(ids), SQLITE_MAX_PARAMETERS - 1):
            part = ids[start:start + SQLITE_MAX_PARAMETERS - 1]
            rows.extend(bulk.execute(f"{head}IN ({', '.join('?' * len(part))})", [sending, *part]))
    still = {row[0] for row in rows}
    return [o for o in outcomes if o.item.id in still]


#: The sent batch's rows: one array (PostgreSQL) or executemany column each.
_SENT_COLUMNS = ("id", "enrollment_id", "sent_at", "message_id")


def _record_sent(session: Session, bulk: Bulk, svc: Services, sent: list[SendOutcome]) -> list[SendOutcome]:
    """Mark the deliveries sent, count the touch on their enrollments (the next one scheduled if
    still active), move new leads to nurturing, expose the topics taught; returns the outcomes
    settled (on PostgreSQL only those still ``sending``; elsewhere ``_still_sending`` chose them)."""
    nexts = [_next_touch(svc, o) for o in sent]
    delivery = bulk.column_values(_DELIVERY, _SENT_COLUMNS, [(o.item.id, o.item.enrollment_id, o.sent_at, o.message_id)
                                                             for o in sent])
    (next_values,) = bulk.column_values(_ENROLLMENT, ["next_send_at"], [(n,) for n in nexts])
    sent_status = bulk.value(_DELIVERY, "status", DeliveryStatus.sent)
    active = bulk.value(_ENROLLMENT, "state", EnrollmentState.active)
    ids, enrollment_ids, times, message_ids = delivery
    # An enrollment paused or exited meanwhile still counts the touch, but keeps its next_send_at.
    e = bulk.quote(_ENROLLMENT.name)
    touch = (f"UPDATE {e} SET touches_sent = touches_sent + 1, last_sent_at = {bulk.mark}, next_send_at = "
             f"CASE WHEN state = {bulk.mark} THEN {bulk.mark} ELSE next_send_at END WHERE id = {bulk.mark}")
    if bulk.postgresql:
        # Two deliveries of one enrollment in a batch: the touch counted by an executemany, once per row
        # (an UPDATE … FROM changes a row once whatever the number of rows it joins).
        once = len(set(enrollment_ids)) == len(enrollment_ids)
        arrays, params = bulk.pg_arrays(_DELIVERY, _SENT_COLUMNS, delivery)
        (next_array,), next_params = bulk.pg_arrays(_ENROLLMENT, ["next_send_at"], [next_values])
        sending = bulk.value(_DELIVERY, "status", DeliveryStatus.sending)
        statement = _pg_mark_sent(bulk, ", ".join([*arrays, next_array]), touch=once)
        settled = {row[0] for row in bulk.execute(statement, [*params, *next_params, sending,
                                                              *([active] if once else []), sent_status])}
        if not once:
            bulk.execute(touch, [(t, active, n, i) for d, i, t, n in zip(ids, enrollment_ids, times, next_values)
                                 if d in settled], many=True)
        if len(settled) < len(sent):
            sent = [o for o in sent if o.item.id in settled]
    else:  # SQLite runs an executemany in C
        d = bulk.quote(_DELIVERY.name)
        bulk.execute(f"UPDATE {d} SET status = ?, sent_at = ?, message_id = ?, last_error = NULL WHERE id = ?",
                     [(sent_status, t, m, i) for i, t, m in zip(ids, times, message_ids)], many=True)
        bulk.execute(touch, [(t, active, n, i) for i, t, n in zip(enrollment_ids, times, next_values)], many=True)
    _reset_soft_bounces(session, sent)
    fresh = {o.item.lead_id for o in sent if o.item.lead.status in (LeadStatus.new, LeadStatus.recycled)}
    if fresh:
        bulk.update_where_in(_LEAD, "id", sorted(fresh), {"status": LeadStatus.nurturing},
                             only_if=("status", [LeadStatus.new, LeadStatus.recycled]))
    exposures: dict[tuple[int, str], tuple[int, datetime]] = {}
    for o in sent:
        for topic in o.item.step.teaches:
            exposures.setdefault((o.item.lead_id, topic), (o.item.id, o.accepted_at))
    if exposures:
        _expose(bulk, exposures)
    return sent


def _pg_mark_sent(bulk: Bulk, arrays: str, touch: bool) -> str:
    """PostgreSQL, one statement: lock the batch's deliveries still ``sending`` in id order (as
    ``_still_sending``), mark those sent and (``touch``) count the touch on their enrollments;
    returns their ids. Parameters: the arrays, ``sending``, [``active``,] ``sent``."""
    d, e = bulk.quote(_DELIVERY.name), bulk.quote(_ENROLLMENT.name)
    touched = (f"touched AS (UPDATE {e} SET touches_sent = {e}.touches_sent + 1, last_sent_at = v.sent_at, "
               f"next_send_at = CASE WHEN {e}.state = %s THEN v.next_send_at ELSE {e}.next_send_at END "
               f"FROM settled JOIN v ON v.id = settled.id WHERE {e}.id = v.enrollment_id), ") if touch else ""
    return (f"WITH v AS MATERIALIZED (SELECT * FROM unnest({arrays}) AS v({', '.join(_SENT_COLUMNS)}, next_send_at)), "
            f"settled AS MATERIALIZED (SELECT {d}.id FROM {d} JOIN v ON {d}.id = v.id WHERE {d}.status = %s "
            f"ORDER BY {d}.id FOR UPDATE OF {d}), {touched}"
            f"marked AS (UPDATE {d} SET status = %s, sent_at = v.sent_at, message_id = v.message_id, last_error = NULL "
            f"FROM settled JOIN v ON v.id = settled.id WHERE {d}.id = settled.id RETURNING {d}.id) "
            f"SELECT id FROM marked")


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


def _expose(bulk: Bulk, exposures: dict[tuple[int, str], tuple[int, datetime]]) -> None:
    """Unknown topics of delivered steps become ``exposed``, with the delivery as evidence.

    ``ON CONFLICT DO NOTHING RETURNING``: rows that already existed return nothing and get no evidence.
    """
    level = KnowledgeLevel.exposed
    if bulk.postgresql:
        _pg_expose(bulk, exposures)
        return
    inserted = set(bulk.insert(_KNOWLEDGE, ["lead_id", "topic", "level", "updated_at"],
                               [(lead_id, topic, level, at) for (lead_id, topic), (_, at) in exposures.items()],
                               on_conflict_do_nothing=["lead_id", "topic"], returning=["lead_id", "topic"]))
    if inserted:
        bulk.insert(_EVIDENCE, ["lead_id", "topic", "level", "source", "delivery_id", "at"],
                    [(lead_id, topic, level, "delivery", delivery_id, at)
                     for (lead_id, topic), (delivery_id, at) in exposures.items() if (lead_id, topic) in inserted])


def _pg_expose(bulk: Bulk, exposures: dict[tuple[int, str], tuple[int, datetime]]) -> None:
    """PostgreSQL, one statement: the knowledge rows inserted in the order of ``exposures`` (those
    that existed skipped), then an evidence row for each one inserted, in the same order."""
    names = ["lead_id", "topic", "delivery_id", "at"]
    values = bulk.column_values(_EVIDENCE, names, [(lead_id, topic, delivery_id, at)
                                                   for (lead_id, topic), (delivery_id, at) in exposures.items()])
    arrays, params = bulk.pg_arrays(_EVIDENCE, names, values)
    level = bulk.value(_KNOWLEDGE, "level", KnowledgeLevel.exposed)
    k, evidence = bulk.quote(_KNOWLEDGE.name), bulk.quote(_EVIDENCE.name)
    bulk.execute(
        f"WITH v AS MATERIALIZED (SELECT * FROM unnest({', '.join(arrays)}) WITH ORDINALITY AS v({', '.join(names)}, n)), "
        f"inserted AS (INSERT INTO {k} (lead_id, topic, level, updated_at) SELECT lead_id, topic, %s, at FROM v "
        f"ORDER BY n ON CONFLICT (lead_id, topic) DO NOTHING RETURNING lead_id, topic) "
        f"INSERT INTO {evidence} (lead_id, topic, level, source, delivery_id, at) "
        f"SELECT v.lead_id, v.topic, %s, %s, v.delivery_id, v.at FROM v "
        f"JOIN inserted ON inserted.lead_id = v.lead_id AND inserted.topic = v.topic ORDER BY v.n",
        [*params, level, bulk.value(_EVIDENCE, "level", KnowledgeLevel.exposed), "delivery"])


_KNOWLEDGE = Knowledge.__table__
_EVIDENCE = KnowledgeEvidence.__table__


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
