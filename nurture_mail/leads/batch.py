"""The import engine: rows in, one outcome per row out, a chunk of rows per handful of queries.

Per chunk (``CHUNK_SIZE`` rows): every address is validated and checked in Python; one SELECT
finds the leads we already have, one finds the suppressions; new leads go in with one batched
INSERT … ON CONFLICT DO NOTHING RETURNING, changed ones with one batched UPDATE by primary key,
and (for a job) the row results with one batched INSERT. No ORM object per row, no flush per row,
and the writes go to the driver as plain tuples (``leads.bulk``: one statement per chunk on
PostgreSQL, ``executemany`` on SQLite), not through SQLAlchemy's per-row parameter handling:
that is what imports 100,000 rows in seconds (see ``bench/import_leads.py``).

The caller owns the transaction: the job commits after every chunk (with its progress), the
legacy ``import_rows`` runs every chunk in the caller's session.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from dataclasses import field as _field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..addresses import InvalidEmail
from ..engine.plan import SendWindow
from ..engine.schedule import next_in_window, zone
from ..models import ALL_EMAIL, Campaign, Enrollment, EnrollmentState, Lead, LeadStatus
from ..nurture.enroll import enrollment_blocker
from ..nurture.first_touch import schedule_first_touch
from ..nurture.plans import plan_of
from ..nurture.suppression import scopes_of_keys
from .bulk import Bulk
from .csvfile import ROW_ERROR
from .fields import LeadValues, convert
from .hygiene import Hygiene, describe
from .merge import changes_for, merged_flags, new_lead_row

CHUNK_SIZE = 2000

#: Outcomes, in the order the summary lists them.
OUTCOMES = ("created", "updated", "unchanged", "merged", "flagged", "rejected")

_LEAD_COLUMNS = [c for c in Lead.__table__.columns]


@dataclass
class RowResult:
    """The outcome of one row, as the report shows it."""

    row: int
    email: str | None
    #: created | updated | unchanged | merged | flagged | rejected
    outcome: str
    reason: str = ""
    field: str | None = None
    lead_id: int | None = None
    #: hygiene flags of the lead (flagged rows), and whether the row's lead is clean to enroll
    flags: list[str] = _field(default_factory=list)
    #: the row's lead was enrolled in the import's campaign by this row
    enrolled: bool = False


@dataclass
class ImportContext:
    """What every chunk of one import shares."""

    hygiene: Hygiene
    source: str | None
    now: datetime
    check_deliverability: bool = False
    campaign_id: int | None = None
    default_timezone: str = "UTC"
    #: email -> (first row number, lead id) for in-file duplicates across chunks
    first_seen: dict[str, tuple[int, int | None]] = _field(default_factory=dict)
    #: lead ids already enrolled by this import
    enrolled: set[int] = _field(default_factory=set)
    #: what the last ``import_chunk`` added to ``first_seen`` (addresses) and ``enrolled`` (lead ids):
    #: a chunk redone after a failed attempt undoes them first (``undo_chunk``)
    added_seen: list[str] = _field(default_factory=list)
    added_enrolled: list[int] = _field(default_factory=list)
    #: the campaign's slug and send window, read once per import (``_campaign``)
    campaign_slug: str | None = None
    window: SendWindow | None = None


@dataclass
class _Group:
    """All rows of one address within a chunk."""

    email: str
    first: int
    values: LeadValues
    rows: list[int]


def _join(parts: Iterable[str]) -> str:
    return "; ".join(p for p in parts if p)


def undo_chunk(ctx: ImportContext) -> None:
    """Forget what the last ``import_chunk`` added to the import's state (its transaction was rolled back)."""
    for email in ctx.added_seen:
        ctx.first_seen.pop(email, None)
    ctx.enrolled.difference_update(ctx.added_enrolled)
    ctx.added_seen, ctx.added_enrolled = [], []


def prepare_chunk(rows: list[tuple[int, dict[str, str]]], ctx: ImportContext) -> _Chunk:
    """The checks of a chunk that need no database (addresses, values, grouping by address).

    A job prepares chunk N+1 while the server still writes chunk N (``imports._run_claimed``).
    """
    return _group_rows(rows, ctx)


def import_chunk(session: Session, rows: list[tuple[int, dict[str, str]]] | _Chunk,
                 ctx: ImportContext, before_writes: Callable[[], None] | None = None) -> list[RowResult]:
    """Import one chunk of ``(row number, {target: text})`` (or one ``prepare_chunk`` made); one result per row, in order.

    Steps: group the rows by normalized address; plan, per address, a new lead or the changes
    to the stored one; write them (merging into leads created meanwhile by someone else);
    enroll the clean leads; report every row.

    ``before_writes``: called once every read is done, before the first write (the job enters
    its pipeline there). With it, on PostgreSQL, the new leads and enrollments take ids drawn
    from their sequences beforehand (one round trip) and are inserted without ``RETURNING`` or
    ``ON CONFLICT``, so nothing waits for them: an address or an enrollment created meanwhile by
    someone else is then a unique violation that fails the chunk whole, and the caller redoes it
    without ``before_writes`` (``imports._run_claimed``), the way that merges into theirs.
    """
    chunk = rows if isinstance(rows, _Chunk) else _group_rows(rows, ctx)
    ctx.added_seen, ctx.added_enrolled = [], []
    emails = list(chunk.groups)
    bulk = Bulk(session)
    table = Lead.__table__
    # The few addresses we have (raw, one array parameter), then their whole rows through SQLAlchemy.
    known = [email for (email,) in bulk.select_in(table, ["email"], "email", emails)]
    existing = {row["email"]: dict(row) for row in session.execute(
        select(*_LEAD_COLUMNS).where(Lead.email.in_(known))).mappings()} if known else {}
    scopes = scopes_of_keys(bulk, emails)  # the chunk's addresses are normalised already
    plan = _plan_changes(session, chunk.groups, existing, scopes, ctx)
    ids = {email: row["id"] for email, row in existing.items()}
    # The campaign's enrollments of the stored leads it may enroll, read before any write.
    candidates = _candidates(chunk.groups, ids, plan, ctx)
    stored = {ids[e] for e in candidates if e in ids}
    enrollments = (stored, _current_enrollments(bulk, ctx, sorted(stored)))
    lead_ids: list[int] | None = None
    enrollment_ids: list[int] | None = None
    if before_writes is not None and bulk.postgresql:
        most = len(candidates) if ctx.campaign_id is not None else 0
        lead_ids, enrollment_ids = bulk.next_ids([(table, len(plan.inserts)), (Enrollment.__table__, most)])
    if before_writes is not None:
        before_writes()
    _insert_new_leads(session, bulk, chunk.groups, plan, ids, ctx, lead_ids)
    bulk.update_changed(table, "id", plan.updates)
    enroll_notes, enrolled = _enroll_clean(session, bulk, ctx, chunk.groups, ids, plan, scopes, enrollments,
                                           enrollment_ids)
    for email, group in chunk.groups.items():
        _report_rows(chunk, group, ids.get(email), plan, enroll_notes.get(email, ""), email in enrolled, ctx)
    return [chunk.results[n] for n in chunk.order]


@dataclass
class _Chunk:
    """The rows of a chunk: the results known before any query, and the rest grouped by address."""

    order: list[int] = _field(default_factory=list)
    results: dict[int, RowResult] = _field(default_factory=dict)
    #: row number -> the (field, message) problems of its values
    problems: dict[int, list[tuple[str, str]]] = _field(default_factory=dict)
    groups: dict[str, _Group] = _field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.order)


@dataclass
class _Plan:
    """What the chunk writes: new lead rows, changes to stored ones, and each address's flags and outcome."""

    inserts: list[dict[str, Any]] = _field(default_factory=list)
    updates: list[dict[str, Any]] = _field(default_factory=list)
    flags_of: dict[str, list[str]] = _field(default_factory=dict)
    #: email -> created | updated | unchanged
    status_of: dict[str, str] = _field(default_factory=dict)
    #: email -> the lead's row as this chunk leaves it (what enrolment decides on), and whether it existed
    state_of: dict[str, dict[str, Any]] = _field(default_factory=dict)
    existed: set[str] = _field(default_factory=set)
    #: new leads that will be enrolled: inserted as ``nurturing`` already (no UPDATE of fresh rows)
    born_nurturing: set[str] = _field(default_factory=set)


def _group_rows(rows: list[tuple[int, dict[str, str]]], ctx: ImportContext) -> _Chunk:
    """Reject unreadable rows and invalid addresses; group the others by normalized address."""
    chunk = _Chunk()
    for number, cells in rows:
        chunk.order.append(number)
        raw = cells.get("email", "")
        if ROW_ERROR in cells:  # a row the CSV reader could not read (a stray quote): csvfile.records
            chunk.results[number] = RowResult(number, raw or None, "rejected", cells[ROW_ERROR], "row")
            continue
        try:
            email = ctx.hygiene.normalize_email(raw, ctx.check_deliverability)
        except InvalidEmail as exc:
            chunk.results[number] = RowResult(number, raw or None, "rejected", f"invalid address: {exc}", "email")
            continue
        values = convert(cells)
        if values.refused is not None:  # a control character in a one-line field: the row is refused
            field_name, message = values.refused
            chunk.results[number] = RowResult(number, email, "rejected", f"{field_name}: {message}", field_name)
            continue
        chunk.problems[number] = values.problems
        group = chunk.groups.get(email)
        if group is None:
            chunk.groups[email] = _Group(email, number, values, [number])
        else:
            group.values.merge_from(values)
            group.rows.append(number)
    return chunk


def _plan_changes(session: Session, groups: dict[str, _Group], existing: dict[str, dict[str, Any]],
                  scopes: dict[str, set[str]], ctx: ImportContext) -> _Plan:
    plan = _Plan()
    slug = _campaign(session, ctx)[0] if ctx.campaign_id is not None else None
    for email, group in groups.items():
        flags = ctx.hygiene.check(email, suppressed=ALL_EMAIL in scopes.get(email, ()))
        current = existing.get(email)
        if current is None:
            row = new_lead_row(email, group.values, flags, ctx.source, ctx.now)
            if slug is not None and _blocker(row, flags, scopes.get(email), slug) is None:
                # It will be enrolled (a lead nobody else can see yet has no enrollment): stored as
                # nurturing at once, as the status UPDATE after enrolling would leave it.
                row["status"] = LeadStatus.nurturing
                plan.born_nurturing.add(email)
            plan.inserts.append(row)
            plan.status_of[email] = "created"
            plan.flags_of[email] = flags
            plan.state_of[email] = row
            continue
        _plan_update(plan, email, current, group, flags, ctx)
    return plan


def _plan_update(plan: _Plan, email: str, current: dict[str, Any], group: _Group, flags: list[str],
                 ctx: ImportContext) -> None:
    changes = changes_for(current, group.values, flags)
    plan.flags_of[email] = merged_flags(current.get("hygiene"), flags)
    plan.existed.add(email)
    plan.state_of[email] = {**current, **changes}
    if changes:
        plan.updates.append({"id": current["id"], **changes, "updated_at": ctx.now})
        plan.status_of[email] = "updated"
    else:
        plan.status_of[email] = "unchanged"


def _insert_new_leads(session: Session, bulk: Bulk, groups: dict[str, _Group], plan: _Plan, ids: dict[str, int],
                      ctx: ImportContext, lead_ids: list[int] | None = None) -> None:
    """Insert the new leads (their ids into ``ids``); one inserted meanwhile by someone else (the API,
    another import) gets this chunk's values merged into it, as an update.

    With ``lead_ids`` (drawn beforehand, one per new lead) the rows go in with them and nothing
    is awaited; a lead inserted meanwhile is then a unique violation (the chunk is redone).
    """
    if not plan.inserts:
        return
    columns = list(plan.inserts[0])  # new_lead_row: every row has the same keys, in the same order
    if lead_ids is not None:
        for new_row, lead_id in zip(plan.inserts, lead_ids, strict=True):
            ids[new_row["email"]] = lead_id
        bulk.insert(Lead.__table__, ["id", *columns],
                    [(lead_id, *new.values()) for lead_id, new in zip(lead_ids, plan.inserts, strict=True)])
        return
    for lead_id, email in bulk.insert(Lead.__table__, columns, [tuple(row.values()) for row in plan.inserts],
                                      on_conflict_do_nothing=["email"], returning=["id", "email"]):
        ids[email] = lead_id
    raced = [row["email"] for row in plan.inserts if row["email"] not in ids]
    if not raced:
        return
    for row in session.execute(select(*_LEAD_COLUMNS).where(Lead.email.in_(raced))).mappings():
        email = row["email"]
        ids[email] = row["id"]
        plan.born_nurturing.discard(email)  # not ours: enrolment decides on the stored lead
        # Computed from the stored row, with the flags this chunk found (flags_of still holds them).
        _plan_update(plan, email, dict(row), groups[email], plan.flags_of[email], ctx)


def _report_rows(chunk: _Chunk, group: _Group, lead_id: int | None, plan: _Plan, enroll_note: str,
                 enrolled: bool, ctx: ImportContext) -> None:
    """The results of one address's rows: the first one's outcome, the others merged into it."""
    email = group.email
    flags = plan.flags_of[email]
    earlier = ctx.first_seen.get(email)
    for number in group.rows:
        own = chunk.problems.get(number, [])
        warn = _join(f"{f}: {m}" for f, m in own)
        field_name = own[0][0] if own else None
        if number != group.first or earlier is not None:
            first_row = earlier[0] if earlier is not None else group.first
            reason = _join([f"duplicate of row {first_row}, merged into its lead", warn])
            chunk.results[number] = RowResult(number, email, "merged", reason, field_name or "email", lead_id, flags)
            continue
        status = plan.status_of[email]
        if flags:
            what = {"created": "lead created", "updated": "existing lead updated"}.get(status, "existing lead")
            reason = _join([", ".join(describe(f) for f in flags), f"{what}, not enrolled", warn])
            chunk.results[number] = RowResult(number, email, "flagged", reason, "email", lead_id, flags)
        else:
            reason = _join([enroll_note, warn])
            chunk.results[number] = RowResult(number, email, status, reason, field_name, lead_id, enrolled=enrolled)
    if earlier is None:
        ctx.first_seen[email] = (group.first, lead_id)
        ctx.added_seen.append(email)


def _campaign(session: Session, ctx: ImportContext) -> tuple[str, SendWindow]:
    if ctx.window is None or ctx.campaign_slug is None:
        campaign = session.get_one(Campaign, ctx.campaign_id)
        ctx.campaign_slug, ctx.window = campaign.slug, plan_of(campaign).window
    return ctx.campaign_slug, ctx.window


@dataclass
class _LeadState:
    """What ``enrollment_blocker`` reads, from the row this chunk wrote or updated (no SELECT)."""

    erased_at: datetime | None
    hygiene: list[str]
    status: LeadStatus
    consent: bool


def _blocker(row: dict[str, Any], flags: list[str], scopes: set[str] | None, slug: str) -> str | None:
    """Why the lead of ``row`` (flags and suppression scopes given) must not be enrolled in ``slug``."""
    blocker = enrollment_blocker(_LeadState(row["erased_at"], flags, row["status"], row["consent"]))
    if blocker is None and scopes:
        suppressed = scopes & {ALL_EMAIL, slug}
        if suppressed:
            what = "all email" if ALL_EMAIL in suppressed else f"campaign {slug}"
            blocker = f"suppressed for {what}"
    return blocker


def _candidates(groups: dict[str, _Group], ids: dict[str, int], plan: _Plan, ctx: ImportContext) -> list[str]:
    """The chunk's addresses the campaign may enroll: clean, and not enrolled by this import already."""
    flags_of = plan.flags_of
    return [email for email in groups if not flags_of[email] and (email not in ids or ids[email] not in ctx.enrolled)]


def _current_enrollments(bulk: Bulk, ctx: ImportContext, lead_ids: list[int]) -> dict[int, tuple[int, str]]:
    """lead id -> (enrollment id, state) of the import campaign's enrollments of ``lead_ids``."""
    if ctx.campaign_id is None or not lead_ids:
        return {}
    return {lead_id: (enrollment_id, state) for enrollment_id, lead_id, campaign_id, state in bulk.select_in(
        Enrollment.__table__, ["id", "lead_id", "campaign_id", "state"], "lead_id", lead_ids)
        if campaign_id == ctx.campaign_id}


def _enroll_clean(session: Session, bulk: Bulk, ctx: ImportContext, groups: dict[str, _Group],
                  ids: dict[str, int], plan: _Plan, scopes: dict[str, set[str]],
                  enrollments: tuple[set[int], dict[int, tuple[int, str]]] | None = None,
                  enrollment_ids: list[int] | None = None) -> tuple[dict[str, str], set[str]]:
    """Enroll the clean leads of the chunk in the import's campaign: (email -> why not, emails enrolled).

    The same rules as ``nurture.enroll.enroll`` (its ``enrollment_blocker``: erased, hygiene
    flags, held by sales, no-send status, no consent; a suppression for all email or for the
    campaign), in a fixed handful of statements per chunk whatever its size: one SELECT of the
    enrollments in the campaign of the leads that existed before, one INSERT of the new
    enrollments, one UPDATE of the ones re-activated, one UPDATE of the leads' status. The
    leads' state is the one this chunk just wrote (``plan.state_of``), and ``scopes`` are the
    chunk's suppressions, already read. A lead that is imported but not enrolled keeps its
    row outcome; the reason says ``not enrolled: …``.
    """
    if ctx.campaign_id is None:
        return {}, set()
    flags_of = plan.flags_of
    wanted = {email: ids[email] for email in groups if email in ids and not flags_of[email]
              and ids[email] not in ctx.enrolled}
    if not wanted:
        return {}, set()
    slug, window = _campaign(session, ctx)
    known = [lead_id for email, lead_id in wanted.items() if email in plan.existed]
    # (id, state) of the campaign's enrollments of the leads that existed before (a new lead has none):
    # read before the chunk's writes (``enrollments``), but for a lead found created meanwhile.
    read, current = enrollments if enrollments is not None else (set(), {})
    unread = [lead_id for lead_id in known if lead_id not in read]
    if unread:
        current = {**current, **_current_enrollments(bulk, ctx, unread)}
    notes: dict[str, str] = {}
    new: list[tuple[Any, ...]] = []
    again: list[tuple[Any, ...]] = []
    first_sends: dict[str | None, datetime] = {}
    due: set[int] = set()
    enrolled_by = f"import:{ctx.source or ''}"[:200]
    ctx.added_enrolled.extend(wanted.values())
    for email, lead_id in wanted.items():
        ctx.enrolled.add(lead_id)
        row = plan.state_of[email]
        enrollment = current.get(lead_id)
        if enrollment is not None and enrollment[1] == EnrollmentState.active.value:
            notes[email] = f"already enrolled in {slug}"
            continue
        blocker = None if email in plan.born_nurturing else _blocker(row, flags_of[email], scopes.get(email), slug)
        if blocker is not None:
            notes[email] = f"not enrolled: {blocker}"
            continue
        # The same instant for every lead of one time zone: computed once per zone and chunk.
        timezone = row["timezone"]
        first_send = first_sends.get(timezone)
        if first_send is None:
            first_send = first_sends[timezone] = next_in_window(ctx.now, zone(timezone, ctx.default_timezone), window)
        if first_send <= ctx.now:
            due.add(lead_id)
        if enrollment is None:
            new.append((lead_id, first_send))
        else:
            again.append((enrollment[0], first_send, lead_id))
    done: set[int] = set()
    due_enrollments: list[int] = []
    if new and enrollment_ids is not None:  # ids drawn beforehand: nothing awaited (a conflict fails the chunk)
        drawn = iter(enrollment_ids)
        rows = [(next(drawn), lead_id, ctx.campaign_id, EnrollmentState.active, first_send, ctx.now, 0, enrolled_by)
                for lead_id, first_send in new]
        bulk.insert(Enrollment.__table__, ["id", "lead_id", "campaign_id", "state", "next_send_at", "enrolled_at",
                                           "touches_sent", "enrolled_by"], rows)
        for enrollment_id, lead_id, *_rest in rows:
            done.add(lead_id)
            if lead_id in due:
                due_enrollments.append(enrollment_id)
    elif new:
        inserted = bulk.insert(
            Enrollment.__table__,
            ["lead_id", "campaign_id", "state", "next_send_at", "enrolled_at", "touches_sent", "enrolled_by"],
            [(lead_id, ctx.campaign_id, EnrollmentState.active, first_send, ctx.now, 0, enrolled_by)
             for lead_id, first_send in new],
            on_conflict_do_nothing=["lead_id", "campaign_id"], returning=["id", "lead_id"])
        for enrollment_id, lead_id in inserted:
            done.add(lead_id)
            if lead_id in due:
                due_enrollments.append(enrollment_id)
        email_of = {lead_id: email for email, lead_id in wanted.items()}
        for lead_id, _first_send in new:  # enrolled meanwhile by someone else (the API, sales): theirs stands
            if lead_id not in done:
                notes[email_of[lead_id]] = f"already enrolled in {slug}"
    if again:
        bulk.update(Enrollment.__table__, "id", ["state", "state_reason", "ended_at", "next_send_at"],
                    [(enrollment_id, EnrollmentState.active, None, None, first_send)
                     for enrollment_id, first_send, _lead_id in again])
        done.update(lead_id for _id, _first_send, lead_id in again)
        due_enrollments.extend(enrollment_id for enrollment_id, _first_send, lead_id in again if lead_id in due)
    if done:
        born = {ids[email] for email in plan.born_nurturing if email in ids}
        bulk.update_where_in(Lead.__table__, "id", sorted(done - born),
                             {"status": LeadStatus.nurturing, "updated_at": ctx.now},
                             only_if=("status", [LeadStatus.new, LeadStatus.recycled]))
        if due_enrollments:  # their send window is open: the first email goes once this chunk commits
            schedule_first_touch(session, sorted(due_enrollments))
    return notes, {email for email, lead_id in wanted.items() if lead_id in done}
