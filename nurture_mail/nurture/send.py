"""Send one batch of claimed deliveries over one SMTP connection and record every outcome.

Order of events for each email, and why:
1. claim (``queued → sending``, one UPDATE for the batch, committed): a second job or worker
   given the same ids finds nothing left to claim, so nothing is sent twice;
2. check the lead can still receive: its status, its enrollment, and the suppression list (one
   query per batch), so an unsubscribe or bounce just now cancels an already queued email;
3. per-domain rate limit (over it: deferred to the next window, no attempt counted), render,
   build, DKIM-sign when configured;
4. SMTP transaction, after waiting for a slot under the global rate limit; on acceptance, a
   note in the Redis journal before the next email;
5. outcomes written to the database in batches; journal notes dropped after the commit.

Rendering and SMTP overlap: this thread renders and builds the next emails while a sender
thread waits for the server's replies (a socket wait releases the GIL), so a batch costs about
the larger of the two, not their sum. The database is only touched from this thread.
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from ..engine.plan import SendWindow
from ..engine.schedule import next_in_window, zone
from ..extensions import Services
from ..mail.compose import Composer
from ..mail.dkim import DkimSigner
from ..mail.outbox import signed_message
from ..mail.ratelimit import DomainWindow, SendRateLimiter, deliverability_settings
from ..mail.transport import PermanentFailure, SMTPSettings, SMTPTransport, TemporaryFailure
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
from .journal import SentJournal
from .plans import window_of
from .sql import insert_ignoring_conflicts
from .suppression import suppression_scopes

log = logging.getLogger(__name__)

FLUSH_EVERY = 250
#: Emails rendered ahead of the SMTP conversation; bounded so a dead server wastes little work.
SEND_AHEAD = 32


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
    #: sent | temporary | permanent | cancelled | deferred
    kind: str
    sent_at: datetime | None = None
    message_id: str | None = None
    error: str | None = None
    #: For ``deferred``: when the recipient's domain may take it (the next rate-limit window).
    not_before: datetime | None = None


@dataclass
class BatchReport:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0
    deferred: int = 0


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
    for step, campaign in session.execute(
        select(Step, Campaign).join(Campaign, Campaign.id == Step.campaign_id).where(Step.id.in_(step_ids))
    ).tuples():
        if campaign.id not in campaigns:
            campaigns[campaign.id] = CampaignRow(
                campaign.id, campaign.slug, campaign.name, campaign.cadence_seconds, window_of(campaign),
            )
        result[step.id] = StepRow(step.id, step.key, step.subject, step.preheader, step.html_template, step.text_template,
                                  tuple(step.teaches), tuple(links[step.id]), campaigns[campaign.id])
    return result


# -- sending ------------------------------------------------------------------------------------


class _Sender(threading.Thread):
    """Talks SMTP for the batch; notes each accepted email in the journal before the next."""

    def __init__(self, svc: Services, transport: SMTPTransport, journal: SentJournal,
                 limiter: SendRateLimiter | None = None) -> None:
        super().__init__(name="smtp-sender", daemon=True)
        self.svc = svc
        self.transport = transport
        self.journal = journal
        self.limiter = limiter
        self.inbox: queue.Queue = queue.Queue(maxsize=SEND_AHEAD)
        self.outcomes: list[SendOutcome] = []
        self.lock = threading.Lock()
        #: Set once the server is unreachable: the rest of the batch is given back, untried.
        self.unreachable: str | None = None

    def run(self) -> None:
        while True:
            work = self.inbox.get()
            if work is None:
                return
            item, envelope_from, message_id, data = work
            outcome = self._send(item, envelope_from, message_id, data)
            with self.lock:
                self.outcomes.append(outcome)

    def _send(self, item: SendItem, envelope_from: str, message_id: str, data: bytes) -> SendOutcome:
        if self.unreachable:
            return SendOutcome(item, "temporary", error=self.unreachable)
        if self.limiter is not None:
            self.limiter.wait_for_slot()  # global SEND_RATE_PER_SECOND, shared by every worker
        try:
            self.transport.send(envelope_from, item.lead.email, data)
        except TemporaryFailure as exc:
            if exc.code is None:
                self.unreachable = f"connection: {exc.reply}"[:1000]
                return SendOutcome(item, "temporary", error=self.unreachable)
            return SendOutcome(item, "temporary", error=f"{exc.code} {exc.reply}"[:1000])
        except PermanentFailure as exc:
            return SendOutcome(item, "permanent", error=f"{exc.code} {exc.reply}"[:1000])
        except Exception as exc:  # never lose an outcome: an unexpected error is recorded and retried
            log.exception("unexpected error sending delivery %s", item.id)
            return SendOutcome(item, "temporary", error=f"{type(exc).__name__}: {exc}"[:1000])
        sent_at = self.svc.clock.now()
        self.journal.mark(item.id, message_id, sent_at)
        return SendOutcome(item, "sent", sent_at=sent_at, message_id=message_id)

    def take(self) -> list[SendOutcome]:
        with self.lock:
            taken, self.outcomes = self.outcomes, []
        return taken


def send_batch(svc: Services, delivery_ids: list[int], composer: Composer | None = None) -> BatchReport:
    report = BatchReport()
    settings = deliverability_settings(svc.config)
    # Before the claim: a DKIM key that cannot be read fails the job, and no email goes unsigned.
    signer = DkimSigner.from_settings(settings)
    with svc.db.session() as session:
        claimed = claim(session, delivery_ids, svc.clock.now())
    report.claimed = len(claimed)
    if not claimed:
        return report
    composer = composer or default_composer(svc)
    journal = SentJournal(svc.redis)
    limiter = SendRateLimiter.from_settings(svc.redis, settings)
    transport = SMTPTransport(SMTPSettings.from_url(svc.config.effective_smtp_url, timeout=svc.config.smtp_timeout))
    sender = _Sender(svc, transport, journal, limiter)
    sender.start()
    with svc.db.Session() as session:
        items = load_items(session, claimed)
        checks = _SendChecks(suppression_scopes(session, (i.lead.email for i in items)))
        if limiter is not None:
            checks.defer_over_domain_limits(limiter, items, svc.clock.now())
        local: list[SendOutcome] = []
        try:
            for index, item in enumerate(items):
                if sender.unreachable:
                    local.extend(SendOutcome(i, "temporary", error=sender.unreachable) for i in items[index:])
                    break
                prepared = _prepare(svc, composer, item, checks, signer)
                if isinstance(prepared, SendOutcome):
                    local.append(prepared)
                else:
                    sender.inbox.put(prepared)
                if index % FLUSH_EVERY == FLUSH_EVERY - 1:
                    _flush(session, svc, journal, local + sender.take(), report)
                    local = []
        finally:
            sender.inbox.put(None)
            sender.join()
            transport.close()
            _flush(session, svc, journal, local + sender.take(), report)
    return report


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


def _flush(session: Session, svc: Services, journal: SentJournal, outcomes: list[SendOutcome],
           report: BatchReport) -> None:
    if not outcomes:
        return
    record_outcomes(session, svc, outcomes, svc.clock.now(), report)
    session.commit()
    journal.forget(o.item.id for o in outcomes if o.kind == "sent")


# -- recording ----------------------------------------------------------------------------------


def record_outcomes(session: Session, svc: Services, outcomes: list[SendOutcome], now: datetime,
                    report: BatchReport | None = None) -> None:
    """Write what happened to each email: the ledger, the enrollment's next touch, knowledge.

    Statements are executed once per kind of change with many parameter sets, so a batch of
    250 costs a handful of round trips.
    """
    report = report or BatchReport()
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
        elif outcome.kind == "deferred":
            # Never offered to the server: the claim's attempt is given back, so a busy domain
            # cannot use up SMTP_MAX_ATTEMPTS of an email that was never tried.
            _set_delivery(session, outcome.item.id, status=DeliveryStatus.queued, enqueued_at=None,
                          next_attempt_at=outcome.not_before, attempts=Delivery.attempts - 1,
                          last_error=outcome.error)
            report.deferred += 1


def _record_sent(session: Session, svc: Services, sent: list[SendOutcome]) -> None:
    session.execute(
        update(Delivery.__table__).where(Delivery.__table__.c.id == bindparam("d_id")).values(
            status=DeliveryStatus.sent.value, sent_at=bindparam("d_sent_at"), message_id=bindparam("d_message_id"),
            last_error=None),
        [{"d_id": o.item.id, "d_sent_at": o.sent_at, "d_message_id": o.message_id} for o in sent],
    )
    enrollment = Enrollment.__table__
    session.execute(
        update(enrollment).where(enrollment.c.id == bindparam("e_id"), enrollment.c.state == "active").values(
            touches_sent=enrollment.c.touches_sent + 1, last_sent_at=bindparam("e_sent_at"),
            next_send_at=bindparam("e_next")),
        [{"e_id": o.item.enrollment_id, "e_sent_at": o.sent_at, "e_next": _next_touch(svc, o)} for o in sent],
    )
    # An enrollment paused or exited meanwhile still counts the touch, but gets no next one.
    session.execute(
        update(enrollment).where(enrollment.c.id == bindparam("e_id"), enrollment.c.state != "active").values(
            touches_sent=enrollment.c.touches_sent + 1, last_sent_at=bindparam("e_sent_at")),
        [{"e_id": o.item.enrollment_id, "e_sent_at": o.sent_at} for o in sent],
    )
    _reset_soft_bounces(session, sent)
    fresh = {o.item.lead_id for o in sent if o.item.lead.status in (LeadStatus.new, LeadStatus.recycled)}
    if fresh:
        session.execute(update(Lead).where(Lead.id.in_(fresh), Lead.status.in_([LeadStatus.new, LeadStatus.recycled]))
                        .values(status=LeadStatus.nurturing))
    exposures: dict[tuple[int, str], tuple[int, datetime]] = {}
    for o in sent:
        for topic in o.item.step.teaches:
            exposures.setdefault((o.item.lead_id, topic), (o.item.id, o.sent_at))
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
    base = max(outcome.item.scheduled_for, outcome.sent_at)
    return next_in_window(base + timedelta(seconds=campaign.cadence_seconds),
                          zone(outcome.item.lead.timezone, svc.config.default_timezone), campaign.window)


def _expose(session: Session, exposures: dict[tuple[int, str], tuple[int, datetime]]) -> None:
    """Unknown topics of delivered steps become ``exposed``, with the delivery as evidence."""
    rows = [dict(lead_id=lead_id, topic=topic, level=KnowledgeLevel.exposed, updated_at=at)
            for (lead_id, topic), (_, at) in exposures.items()]
    statement = insert_ignoring_conflicts(session, Knowledge, ["lead_id", "topic"]).returning(
        Knowledge.lead_id, Knowledge.topic, Knowledge.updated_at
    )
    # executemany with RETURNING ("insertmanyvalues"): rows that already existed return nothing.
    inserted = session.execute(statement, rows).all()
    if inserted:
        session.execute(KnowledgeEvidence.__table__.insert(), [
            dict(lead_id=lead_id, topic=topic, level=KnowledgeLevel.exposed.value, source="delivery",
                 delivery_id=exposures[(lead_id, topic)][0], at=at)
            for lead_id, topic, at in inserted
        ])


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
