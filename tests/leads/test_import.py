"""The CSV import end to end on SQLite and PostgreSQL: outcomes, merge policy, hygiene, report, job."""
from __future__ import annotations

import csv
import dataclasses
import io

import pytest
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from sqlalchemy import func, select

from nurture_mail.leads import imports as imports_module
from nurture_mail.leads.errors import ImportOptionsError, ImportStateError
from nurture_mail.leads.importer import import_rows, read_rows
from nurture_mail.leads.imports import (
    enqueue_import,
    import_file_path,
    import_progress,
    report_csv,
    resume_import,
    run_import,
)
from nurture_mail.models import Enrollment, ImportJob, ImportRowResult, Lead, LeadStatus
from nurture_mail.runtime import run_worker

from .conftest import FIXTURES

HYPERLINK = '=HYPERLINK("http://evil","x")'

#: (row, email, outcome, field) of every row of tests/fixtures/leads_messy.csv, in order.
EXPECTED = [
    (2, "maria.lopez@brightpath.example", "created", None),
    (4, "zoe.hartley@fernhill.example", "created", None),
    (5, "not-an-email", "rejected", "email"),
    (6, "info@acme.example", "flagged", "email"),
    (7, "jan.devries@students.uu.nl", "flagged", "email"),
    (8, "zoe.hartley@fernhill.example", "merged", "email"),
    (10, "eve@wiz.io", "flagged", "email"),
    (11, "pat.kim@deloitte.com", "flagged", "email"),
    (12, HYPERLINK, "rejected", "email"),
    (13, "li.wei@merlion.example", "created", "employees"),
    (14, "gone@former.example", "flagged", "email"),
    (15, "existing@known.example", "updated", None),
    (16, "same@known.example", "unchanged", None),
    (17, "a@b@c.example", "rejected", "email"),
    (18, "=1+2@calc.example", "created", None),
]
CLEAN = ["maria.lopez@brightpath.example", "zoe.hartley@fernhill.example", "li.wei@merlion.example",
         "existing@known.example", "same@known.example", "=1+2@calc.example"]
FLAGGED = {"info@acme.example": ["role_account"], "jan.devries@students.uu.nl": ["deny:student"],
           "eve@wiz.io": ["deny:competitor"], "pat.kim@deloitte.com": ["deny:consultant"],
           "gone@former.example": ["suppressed"]}


def _prepare(bed) -> None:
    bed.add_lead("existing@known.example", first_name="Known", company="OldCo", lead_source="webinar",
                 qualification={"budget": "pending"})
    bed.add_lead("same@known.example", first_name="Same")
    bed.suppress("gone@former.example")


def _enrolled(bed) -> set[str]:
    with bed.svc.db.session() as session:
        return set(session.scalars(select(Lead.email).join(Enrollment, Enrollment.lead_id == Lead.id)))


def test_messy_file_through_a_real_worker_gives_exactly_the_expected_outcomes(bed, messy, monkeypatch):
    _prepare(bed)
    monkeypatch.setattr(imports_module, "CHUNK_SIZE", 4)
    import_id = bed.create(messy, campaign_slug="northwind-security", created_by="marketer@northwind.example")
    with bed.svc.db.session() as session:
        queued = import_progress(session.get(ImportJob, import_id))
    assert queued["status"] == "queued" and queued["total_rows"] == 15 and queued["percent"] == 0.0
    assert import_file_path(bed.svc.config, import_id).read_bytes() == messy

    # What a poller sees after each chunk, read from the database in a session of its own.
    seen = []
    original = imports_module._rq_progress

    def spy(job_id, processed, total):
        with bed.svc.db.Session() as poller:
            seen.append(import_progress(poller.get(ImportJob, job_id)))
        original(job_id, processed, total)

    monkeypatch.setattr(imports_module, "_rq_progress", spy)
    with bed.svc.db.session() as session:
        enqueue_import(bed.svc, session, import_id)
    run_worker(bed.app, burst=True, logging_level="WARNING")

    assert [(s["status"], s["processed_rows"]) for s in seen[:4]] == [
        ("running", 4), ("running", 8), ("running", 12), ("running", 15)]
    assert [s["percent"] for s in seen[:4]] == [26.7, 53.3, 80.0, 100.0]
    assert seen[1]["counts"] == {"created": 2, "rejected": 1, "flagged": 4, "merged": 1, "enrolled": 2}
    assert bed.outcomes(import_id) == EXPECTED

    finished = [Job.fetch(job_id, connection=bed.svc.redis) for job_id in
                FinishedJobRegistry(bed.svc.config.queue_name, connection=bed.svc.redis).get_job_ids()]
    # The import job, and the first touch of the leads it enrolled (with their send jobs).
    imports = [job for job in finished if job.func_name.endswith("run_import_job")]
    assert len(imports) == 1
    job = imports[0]
    assert job.meta["progress"] == {"import_id": import_id, "processed_rows": 15, "total_rows": 15}
    result = job.return_value()
    assert result["status"] == "done" and result["percent"] == 100.0
    assert result["counts"] == {"created": 4, "rejected": 3, "flagged": 5, "merged": 1, "updated": 1,
                                "unchanged": 1, "enrolled": 6}
    assert result["started_at"] and result["finished_at"] and result["created_by"] == "marketer@northwind.example"

    reasons = bed.reasons(import_id)
    assert reasons[5].startswith("invalid address: ") and "@-sign" in reasons[5]
    assert reasons[6] == "role account (shared mailbox); lead created, not enrolled"
    assert reasons[7] == "student domain (deny list); lead created, not enrolled"
    assert reasons[8] == "duplicate of row 4, merged into its lead"
    assert reasons[10] == "competitor domain (deny list); lead created, not enrolled"
    assert reasons[11] == "consultant domain (deny list); lead created, not enrolled"
    assert reasons[13] == "employees: not a whole number ('lots'), ignored"
    assert reasons[14].startswith("suppressed address")
    assert reasons[2] is None and reasons[15] is None

    # Clean leads are enrolled; flagged ones are stored with their flags and never enrolled.
    assert _enrolled(bed) == set(CLEAN)
    for email, flags in FLAGGED.items():
        assert bed.lead(email).hygiene == flags
    assert all(bed.lead(email).hygiene == [] for email in CLEAN)
    with bed.svc.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 11  # 2 existing + 9 new


def test_merge_policy_within_the_file_and_against_existing_leads(bed, messy):
    _prepare(bed)
    import_id = bed.create(messy)
    run_import(bed.svc, import_id)
    zoe = bed.lead("zoe.hartley@fernhill.example")
    # Row 8 (same address, other case) fills the gaps of row 4 and its non-empty company wins.
    assert (zoe.first_name, zoe.last_name, zoe.title, zoe.company, zoe.region, zoe.employees) == (
        "Zoë", "Hartley", "CISO", "Fernhill Digital Ltd", "EMEA", 1200)  # Country/Region: kept, and its sales region
    assert zoe.custom_fields == {"booth_notes": "second scan", "country": "United Kingdom"}
    assert zoe.lead_source == "trade-show"
    existing = bed.lead("existing@known.example")
    # Known values are not erased by empty cells; the original source keeps the credit.
    assert (existing.first_name, existing.company, existing.lead_source) == ("Known", "NewCo", "webinar")
    assert existing.qualification == {"budget": "pending"}
    maria = bed.lead("maria.lopez@brightpath.example")
    assert (maria.first_name, maria.last_name, maria.employees) == ("María", "López", 850)
    assert maria.qualification == {"budget": "approved Q3"}
    li = bed.lead("li.wei@merlion.example")
    assert (li.first_name, li.last_name, li.employees) == ("李", "伟", None)
    assert li.custom_fields == {"booth_notes": HYPERLINK, "country": "Singapore"}  # data kept as given; the report is what is made safe
    assert _enrolled(bed) == set()  # no campaign given


def test_report_csv_is_formula_safe_and_lists_every_row(bed, messy):
    import_id = bed.create(messy)
    run_import(bed.svc, import_id)
    with bed.svc.db.session() as session:
        text = "".join(report_csv(session, import_id))
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["row", "email", "outcome", "field", "reason", "lead_id"]
    assert [int(r[0]) for r in rows[1:]] == [e[0] for e in EXPECTED]
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    by_row = {int(r[0]): r for r in rows[1:]}
    assert by_row[12][1] == "'" + HYPERLINK and by_row[12][2] == "rejected"
    assert by_row[18][1] == "'=1+2@calc.example" and by_row[18][2] == "created" and by_row[18][5].isdigit()
    assert by_row[8][5] == by_row[4][5]  # the merged row points at the first row's lead


def test_report_of_an_unknown_import_is_not_found(bed):
    from nurture_mail.exceptions import NotFound

    with bed.svc.db.session() as session, pytest.raises(NotFound):
        report_csv(session, 999)


def test_latin1_file(bed):
    import_id = bed.create((FIXTURES / "leads_latin1.csv").read_bytes())
    job = run_import(bed.svc, import_id)
    assert job.counts == {"created": 2} and job.options["encoding"] == "windows-1252"
    assert (bed.lead("francoise@beaumont.example").last_name, bed.lead("soren@nordhavn.example").first_name) == (
        "Lemaître", "Søren")


def _crash_on(monkeypatch, calls_that_crash):
    real_chunk = imports_module.import_chunk
    calls = []

    def crashing(session, rows, ctx, *rest):
        calls.append(len(rows))
        if len(calls) in calls_that_crash:
            raise RuntimeError("disk full")
        return real_chunk(session, rows, ctx, *rest)

    monkeypatch.setattr(imports_module, "CHUNK_SIZE", 4)
    monkeypatch.setattr(imports_module, "import_chunk", crashing)
    return real_chunk


def test_a_crash_mid_way_marks_the_job_failed_and_a_rerun_resumes(bed, messy, monkeypatch):
    _prepare(bed)
    real_chunk = _crash_on(monkeypatch, {3})
    import_id = bed.create(messy, campaign_slug="northwind-security")
    with pytest.raises(RuntimeError, match="disk full"):
        run_import(bed.svc, import_id, final_attempt=False)
    with bed.svc.db.session() as session:
        failed = import_progress(session.get(ImportJob, import_id))
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: disk full"
    assert failed["processed_rows"] == 8 and failed["finished_at"]
    assert [o[0] for o in bed.outcomes(import_id)] == [2, 4, 5, 6, 7, 8, 10, 11]
    assert import_file_path(bed.svc.config, import_id).exists()  # not the last attempt: kept to resume

    monkeypatch.setattr(imports_module, "import_chunk", real_chunk)
    done = run_import(bed.svc, import_id)
    assert done.status == "done" and done.error is None and done.processed_rows == 15
    assert bed.outcomes(import_id) == EXPECTED  # resumed after row 11: nothing twice, nothing lost
    assert _enrolled(bed) == set(CLEAN)
    assert not import_file_path(bed.svc.config, import_id).exists()  # done: the upload is deleted

    # A finished import run again does nothing.
    bed.clock.advance(hours=1)
    again = run_import(bed.svc, import_id)
    assert again.status == "done" and again.finished_at == done.finished_at
    with bed.svc.db.session() as session:
        assert session.scalar(select(func.count()).select_from(ImportRowResult)) == 15


def test_the_worker_retries_a_crashed_import_which_resumes(bed, messy, monkeypatch):
    _prepare(bed)
    _crash_on(monkeypatch, {3})
    import_id = bed.create(messy, campaign_slug="northwind-security")
    with bed.svc.db.session() as session:
        enqueue_import(bed.svc, session, import_id)
    run_worker(bed.app, burst=True, logging_level="CRITICAL")
    assert len(FailedJobRegistry(bed.svc.config.queue_name, connection=bed.svc.redis)) == 0
    assert bed.outcomes(import_id) == EXPECTED
    with bed.svc.db.session() as session:
        assert session.get(ImportJob, import_id).status == "done"
    assert not import_file_path(bed.svc.config, import_id).exists()


def test_an_import_failing_on_its_last_attempt_is_failed_and_its_file_deleted(bed, messy, monkeypatch):
    _crash_on(monkeypatch, {3, 4, 5, 6})  # the first attempt and both retries crash
    import_id = bed.create(messy)
    with bed.svc.db.session() as session:
        enqueue_import(bed.svc, session, import_id)
    run_worker(bed.app, burst=True, logging_level="CRITICAL")
    assert len(FailedJobRegistry(bed.svc.config.queue_name, connection=bed.svc.redis)) == 1
    with bed.svc.db.session() as session:
        job = session.get(ImportJob, import_id)
        assert (job.status, job.error, job.processed_rows) == ("failed", "RuntimeError: disk full", 8)
    assert not import_file_path(bed.svc.config, import_id).exists()
    assert len(bed.outcomes(import_id)) == 8  # the report of what was done stays


def test_a_second_runner_leaves_a_claimed_import_alone(bed, messy, monkeypatch):
    """Two runners at once (job queued twice, a CLI rerun): the second returns, nothing fails or doubles."""
    import threading

    monkeypatch.setattr(imports_module, "CHUNK_SIZE", 4)
    real_chunk = imports_module.import_chunk
    inside, go_on = threading.Event(), threading.Event()

    def slow(session, rows, ctx, *rest):
        if not inside.is_set():
            inside.set()
            assert go_on.wait(30)
        return real_chunk(session, rows, ctx, *rest)

    monkeypatch.setattr(imports_module, "import_chunk", slow)
    _prepare(bed)
    import_id = bed.create(messy)
    outcome = {}
    first = threading.Thread(target=lambda: outcome.setdefault("first", run_import(bed.svc, import_id)))
    first.start()
    assert inside.wait(30)
    second = run_import(bed.svc, import_id)  # while the first holds it
    assert second.status == "running" and second.error is None
    go_on.set()
    first.join(30)
    assert outcome["first"].status == "done"
    assert bed.outcomes(import_id) == EXPECTED  # all rows, once
    with bed.svc.db.session() as session:
        assert session.get(ImportJob, import_id).status == "done"


def test_a_running_import_whose_runner_died_is_claimed_again_and_resumes(bed, messy, monkeypatch):
    import_id = bed.create(messy)
    with bed.svc.db.session() as session:
        session.get(ImportJob, import_id).status = "running"  # a runner killed without a trace; no lease
    job = run_import(bed.svc, import_id)
    assert job.status == "done" and job.processed_rows == 15


def test_a_second_import_of_the_same_file_changes_nothing(bed, messy):
    first = bed.create(messy)
    run_import(bed.svc, first)
    second = bed.create(messy)
    job = run_import(bed.svc, second)
    assert job.counts == {"unchanged": 7, "rejected": 3, "flagged": 4, "merged": 1}  # gone@ is not suppressed here
    assert bed.reasons(second)[6] == "role account (shared mailbox); existing lead, not enrolled"
    assert [o[2] for o in bed.outcomes(second) if o[2] not in ("rejected", "flagged", "merged")] == ["unchanged"] * 7


@pytest.mark.parametrize("options, field, message", [
    (dict(campaign_slug="nope"), "campaign_slug", "no campaign 'nope' (campaigns: northwind-security)"),
    (dict(mapping={"E-mail": "mail"}), "mapping", "column 'E-mail': unknown field 'mail'"),
    (dict(mapping={"Phone": "title"}), "mapping", "column 'Phone' is not in the file"),
    (dict(lead_source="x" * 121), "lead_source", "longer than 120 characters"),
])
def test_create_import_refuses_unusable_options(bed, messy, options, field, message):
    with pytest.raises(ImportOptionsError) as error:
        bed.create(messy, **options)
    assert error.value.field == field and message in error.value.message
    with bed.svc.db.session() as session:
        assert session.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_create_import_refuses_a_file_without_email_column(bed):
    with pytest.raises(ImportOptionsError) as error:
        bed.create(b"name;company\nAnn;Acme\n")
    assert error.value.field == "file" and str(error.value).startswith("file: no email column")


def test_explicit_mapping(bed):
    data = b"Contact,Org,Notes\nann@acme.example,Acme,met at booth\n"
    import_id = bed.create(data, mapping={"Contact": "email", "Org": "company", "Notes": "pain_validated"})
    run_import(bed.svc, import_id)
    ann = bed.lead("ann@acme.example")
    assert ann.company == "Acme" and ann.qualification == {"pain_validated": "met at booth"}


def test_read_rows_and_import_rows_in_one_session(bed, messy, tmp_path):
    _prepare(bed)
    path = tmp_path / "messy.csv"
    path.write_bytes(messy)
    header, rows = read_rows(path)
    assert header[0] == "E-mail" and len(rows) == 15
    with bed.svc.db.session() as session:
        report = import_rows(session, rows, "demo", bed.clock.now())
        assert report.summary() == "15 rows: 4 created, 1 updated, 1 unchanged, 1 merged, 5 flagged, 3 rejected"
        emails = dict(session.execute(select(Lead.id, Lead.email)).all())
    assert [emails[i] for i in report.lead_ids] == CLEAN  # only the clean leads: the ones to enroll
    assert len(report.all_lead_ids) == len(CLEAN) + len(FLAGGED)


def _statements(bed):
    """Count the SQL statements the app's engine runs (a list one appends to)."""
    from sqlalchemy import event

    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(bed.svc.db.engine, "before_cursor_execute", count)
    return seen, lambda: event.remove(bed.svc.db.engine, "before_cursor_execute", count)


def test_enrolling_a_chunk_takes_the_same_statements_for_10_or_200_leads(bed):
    """Enroll() per lead made several queries per row; the chunk's enrollments are batched."""
    counts = []
    for size, offset in ((10, 0), (200, 1000)):
        data = "email,first_name\n" + "".join(f"p{offset + i}@batch.example,P{i}\n" for i in range(size))
        import_id = bed.create(data.encode(), campaign_slug="northwind-security")
        seen, stop = _statements(bed)
        try:
            job = run_import(bed.svc, import_id)
        finally:
            stop()
        assert job.counts == {"created": size, "enrolled": size}
        counts.append(len(seen))
    assert counts[0] == counts[1]
    with bed.svc.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Enrollment)) == 210
        assert set(session.scalars(select(Lead.status).distinct())) == {LeadStatus.nurturing}


def test_leads_sales_holds_are_imported_but_not_enrolled(bed):
    """An import with a campaign restarted nurture for leads sales holds (and for no-consent ones)."""
    from nurture_mail.models import Campaign, EnrollmentState

    held = bed.add_lead("held@acme.example", status=LeadStatus.handed_off)
    bed.add_lead("won@acme.example", status=LeadStatus.won)
    bed.add_lead("quiet@acme.example", consent=False)
    back = bed.add_lead("back@acme.example", status=LeadStatus.recycled)
    with bed.svc.db.session() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == "northwind-security"))
        session.add_all([
            Enrollment(lead_id=held, campaign_id=campaign.id, state=EnrollmentState.exited, touches_sent=2,
                       enrolled_at=bed.clock.now(), state_reason="handed off"),
            Enrollment(lead_id=back, campaign_id=campaign.id, state=EnrollmentState.exited, touches_sent=2,
                       enrolled_at=bed.clock.now(), state_reason="recycled"),
        ])
    data = (b"email,company\nheld@acme.example,Acme\nwon@acme.example,\nquiet@acme.example,\n"
            b"back@acme.example,\nnew@acme.example,New\n")
    import_id = bed.create(data, campaign_slug="northwind-security")
    job = run_import(bed.svc, import_id)
    assert job.counts == {"created": 1, "updated": 1, "unchanged": 3, "enrolled": 2, "not_enrolled": 3}
    reasons = bed.reasons(import_id)
    assert bed.outcomes(import_id)[0][2] == "updated"  # the data is merged all the same
    assert reasons[2] == "not enrolled: it is handed_off (with sales); sales sends it back to nurture"
    assert reasons[3].startswith("not enrolled: it is won")
    assert reasons[4] == "not enrolled: it has not consented to email"
    assert reasons[5] is None and reasons[6] is None
    with bed.svc.db.session() as session:
        states = dict(session.execute(select(Lead.email, Enrollment.state).join(Enrollment.lead)).all())
        statuses = dict(session.execute(select(Lead.email, Lead.status)).all())
    assert states == {"held@acme.example": EnrollmentState.exited, "back@acme.example": EnrollmentState.active,
                      "new@acme.example": EnrollmentState.active}
    assert statuses["held@acme.example"] == LeadStatus.handed_off and statuses["won@acme.example"] == LeadStatus.won
    assert statuses["back@acme.example"] == LeadStatus.nurturing


def test_a_stray_quote_in_an_uploaded_file_rejects_one_row(bed):
    """End to end: the row is rejected with why, the rest imported; a 128 KiB tail is no crash."""
    data = (b"email,company,notes\n" + b'a@x.example,"Big\n' + b"b@x.example,Acme,hi\n"
            + b"".join(b"filler %d\n" % i for i in range(15000)) + b"c@x.example,Co,ok\n")
    import_id = bed.create(data)
    job = run_import(bed.svc, import_id)
    assert job.status == "done" and job.counts["created"] == 2 and job.total_rows == 15003
    outcomes = bed.outcomes(import_id)
    assert outcomes[0] == (2, "a@x.example", "rejected", "row") and outcomes[1][2] == "created"
    assert "unbalanced quote" in bed.reasons(import_id)[2]
    assert bed.lead("c@x.example").company == "Co"


def test_create_import_refuses_when_the_hygiene_file_is_broken(bed, messy, tmp_path, monkeypatch):
    """A broken hygiene.yaml failed the queued job later; now the upload is refused, naming the file."""
    broken = tmp_path / "hygiene.yaml"
    broken.write_text("deny:\n  student: '*.edu'\n")
    monkeypatch.setattr(bed.svc, "config", dataclasses.replace(bed.svc.config, hygiene_path=broken))
    with pytest.raises(ImportOptionsError) as error:
        bed.create(messy)
    assert error.value.field == "hygiene" and "deny.student: expected a list" in error.value.message
    assert str(broken) in error.value.message
    with bed.svc.db.session() as session:
        assert session.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_erase_import_traces_blanks_the_address_in_every_report(bed, messy):
    """The report rows kept the address forever; the API's GDPR erase calls this."""
    from nurture_mail.leads.imports import erase_import_traces

    first, second = bed.create(messy), bed.create(messy)
    run_import(bed.svc, first)
    run_import(bed.svc, second)
    zoe = bed.lead("zoe.hartley@fernhill.example")
    with bed.svc.db.session() as session:
        assert erase_import_traces(session, zoe.id, zoe.email) == 4  # rows 4 and 8 of both imports
        assert erase_import_traces(session, None, "NOT-AN-EMAIL") == 2  # a rejected row has no lead
    for import_id in (first, second):
        rows = {row: email for row, email, _outcome, _field in bed.outcomes(import_id)}
        assert rows[4] is None and rows[8] is None and rows[5] is None
        assert rows[2] == "maria.lopez@brightpath.example"
    assert bed.reasons(first)[8] == "duplicate of row 4, merged into its lead"  # outcomes and reasons stay
    for import_id in (first, second):
        assert not import_file_path(bed.svc.config, import_id).exists()


def test_import_rows_uses_the_configured_hygiene_file(bed, tmp_path, monkeypatch):
    """Seed_demo's import_rows used the class default path, not HYGIENE_PATH."""
    rules = tmp_path / "hygiene.yaml"
    rules.write_text("role_accounts: [booth]\ndeny: {}\n")
    monkeypatch.setattr(bed.svc, "config", dataclasses.replace(bed.svc.config, hygiene_path=rules))
    with bed.app.app_context(), bed.svc.db.session() as session:
        report = import_rows(session, [(2, {"email": "booth@acme.example"}), (3, {"email": "info@acme.example"})],
                             "demo", bed.clock.now())
    assert [(r.outcome, r.flags) for r in report.rows] == [("flagged", ["role_account"]), ("created", [])]


def test_resume_queues_a_failed_import_after_commit_and_refuses_a_done_one(bed, messy, monkeypatch):
    _prepare(bed)
    real_chunk = _crash_on(monkeypatch, {3})
    import_id = bed.create(messy)
    with pytest.raises(RuntimeError, match="disk full"):
        run_import(bed.svc, import_id, final_attempt=False)
    queue = bed.svc.queue
    with bed.svc.db.session() as session:
        job = resume_import(bed.svc, session, import_id, bed.clock.now(), by="tests")
        assert job.status == "failed" and len(queue) == 0  # nothing before the commit
    [queued] = queue.get_jobs()
    assert queued.func_name == imports_module.RUN_JOB and queued.args == (import_id,)

    monkeypatch.setattr(imports_module, "import_chunk", real_chunk)
    run_worker(bed.app, burst=True, logging_level="WARNING")
    assert bed.outcomes(import_id) == EXPECTED
    with bed.svc.db.session() as session, pytest.raises(ImportStateError) as done:
        resume_import(bed.svc, session, import_id, bed.clock.now(), by="tests")
    assert done.value.field == "status"


def test_a_write_the_server_refuses_in_the_pipelined_tail_fails_the_chunk_whole_and_a_rerun_resumes(bed, messy,
                                                                                                   monkeypatch):
    """Chunk 3's row results name a lead that does not exist: on PostgreSQL the foreign-key error comes
    back only when the pipeline (row results, progress, COMMIT) is synced; the chunk is rolled back
    whole (its leads too), the job is failed after row 11, and a rerun resumes."""
    _prepare(bed)
    monkeypatch.setattr(imports_module, "CHUNK_SIZE", 4)
    real_store = imports_module._store_results
    calls = []

    def refused(session, import_id, results):
        calls.append(import_id)
        if len(calls) == 3:
            results = [dataclasses.replace(r, lead_id=10**9) for r in results]
        real_store(session, import_id, results)

    monkeypatch.setattr(imports_module, "_store_results", refused)
    import_id = bed.create(messy, campaign_slug="northwind-security")
    with pytest.raises(Exception, match="(?i)foreign key"):
        run_import(bed.svc, import_id, final_attempt=False)
    with bed.svc.db.session() as session:
        failed = import_progress(session.get(ImportJob, import_id))
        newest_lead = session.scalar(select(func.max(Lead.id)))
        newest_reported = session.scalar(select(func.max(ImportRowResult.lead_id)))
    assert failed["status"] == "failed" and "foreign key" in failed["error"].lower()
    assert failed["processed_rows"] == 8
    assert [o[0] for o in bed.outcomes(import_id)] == [2, 4, 5, 6, 7, 8, 10, 11]
    assert newest_lead == newest_reported  # no lead of chunk 3 was kept

    monkeypatch.setattr(imports_module, "_store_results", real_store)
    done = run_import(bed.svc, import_id)
    assert done.status == "done" and done.processed_rows == 15
    assert bed.outcomes(import_id) == EXPECTED
    assert _enrolled(bed) == set(CLEAN)


@pytest.mark.parametrize("meanwhile", ["lead", "enrollment"])
def test_a_row_created_meanwhile_by_another_session_redoes_the_chunk_the_merging_way(bed, messy, monkeypatch,
                                                                                     meanwhile):
    """On PostgreSQL a chunk's new leads and enrollments take ids drawn beforehand and go in without
    waiting; another session creating one of its addresses (or enrolling one of its stored leads) in
    between makes the chunk fail on a unique violation: it is redone the merging way, with what the
    failed attempt added to the import's state (first rows seen, leads enrolled, counts) undone."""
    if bed.svc.db.is_sqlite:
        pytest.skip("SQLite inserts with RETURNING; no ids are drawn ahead")
    from nurture_mail.leads.bulk import Bulk
    from nurture_mail.models import Campaign, EnrollmentState

    _prepare(bed)
    monkeypatch.setattr(imports_module, "CHUNK_SIZE", 4)
    real_next_ids = Bulk.next_ids
    draws = []

    def other_session_meanwhile(self, wanted):
        drawn = real_next_ids(self, wanted)
        draws.append(drawn)
        if len(draws) == 3:  # rows 12-15: li.wei@merlion.example is new, existing@known.example is stored
            if meanwhile == "lead":
                bed.add_lead("li.wei@merlion.example", first_name="Li")
            else:
                with bed.svc.db.session() as other:
                    campaign_id = other.scalar(select(Campaign.id).where(Campaign.slug == "northwind-security"))
                    lead_id = other.scalar(select(Lead.id).where(Lead.email == "existing@known.example"))
                    now = bed.clock.now()
                    other.add(Enrollment(lead_id=lead_id, campaign_id=campaign_id, state=EnrollmentState.active,
                                         next_send_at=now, enrolled_at=now, enrolled_by="api"))
        return drawn

    monkeypatch.setattr(Bulk, "next_ids", other_session_meanwhile)
    import_id = bed.create(messy, campaign_slug="northwind-security")
    job = run_import(bed.svc, import_id)
    assert len(draws) == 4  # one draw per chunk; the redone chunk draws none
    assert all(len(drawn[0]) <= 4 for drawn in draws) and any(drawn[0] for drawn in draws)
    expected = list(EXPECTED)
    if meanwhile == "lead":
        expected[expected.index((13, "li.wei@merlion.example", "created", "employees"))] = (
            13, "li.wei@merlion.example", "updated", "employees")
    assert job.status == "done" and job.processed_rows == 15
    assert bed.outcomes(import_id) == expected  # one result per row: nothing doubled, row 13 not "merged"
    assert _enrolled(bed) == set(CLEAN)  # existing@known.example too: the failed attempt's "enrolled" undone
    with bed.svc.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Lead)
                              .where(Lead.email == "li.wei@merlion.example")) == 1
        assert session.scalar(select(func.count()).select_from(Enrollment)) == len(CLEAN)
        counts = session.get(ImportJob, import_id).counts
    assert counts["created"] == (3 if meanwhile == "lead" else 4) and counts["enrolled"] == (
        6 if meanwhile == "lead" else 5)
    if meanwhile == "enrollment":
        assert "already enrolled in northwind-security" in bed.reasons(import_id)[15]
