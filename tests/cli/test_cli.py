"""The documented CLI, run as a user runs it: ``python -m nurture_mail …`` in a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from nurture_mail.extensions import redis_url_of

ROOT = Path(__file__).resolve().parents[2]


def test_init_import_enroll_preview_tick_worker(cli, smtp_server, tmp_path):
    out = cli("init").stdout
    assert "database ready" in out and "1 created" in out
    assert "0 created" in cli("init").stdout  # idempotent: migrations and sync run again safely

    csv_file = tmp_path / "leads.csv"
    csv_file.write_text(
        "email,first_name,company,timezone,industry\n"
        "ZOE@Acme.example,Zoë,Acme,America/New_York,fintech\n"
        "not-an-email,Bad,Row,UTC,x\n"
        "raj@core.example,Raj,Core,Mars/Olympus,retail\n"
        "zoe@acme.example,,Acme Corp,,\n",
        encoding="utf-8",
    )
    result = cli("import-leads", str(csv_file), "--source", "trade-show", "--campaign", "northwind-security")
    assert "4 rows: 2 created, 1 merged, 1 rejected" in result.stdout
    assert "2 enrolled in northwind-security" in result.stdout
    assert "row 3: rejected: invalid address:" in result.stderr  # the bad row says where and why
    assert "row 4: created: timezone: unknown IANA zone 'Mars/Olympus', ignored" in result.stderr
    assert "row 5: merged: duplicate of row 2, merged into its lead" in result.stderr

    preview = cli("preview", "zoe@acme.example", "northwind-security").stdout
    assert "welcome" in preview and "upcoming:" in preview

    cli("enroll", "raj@core.example", "northwind-security", "--knows", "cloud-risk-landscape")
    bad = cli("enroll", "raj@core.example", "northwind-security", "--knows", "pricng", ok=False)
    assert bad.returncode != 0 and "Error: knows: unknown topic(s): pricng" in bad.stderr
    missing = cli("enroll", "nobody@x.example", "northwind-security", ok=False)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1

    # The CLI runs on real time: tick on the next weekday at 15:00 UTC, 10:00 or 11:00 in
    # New York; Raj has no valid zone, so UTC (15:00) applies.
    day = datetime.now(timezone.utc).date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    tick = cli("tick", "--now", f"{day.isoformat()}T15:00:00Z").stdout
    assert "2 queued" in tick
    cli("worker", "--burst")
    received = {m.rcpt_tos[0]: m for m in smtp_server.store.list()}
    assert set(received) == {"zoe@acme.example", "raj@core.example"}
    assert "Zoë" in received["zoe@acme.example"].subject
    # Raj declared he knows the welcome's topic: his first email is the next step.
    assert received["raj@core.example"].subject != received["zoe@acme.example"].subject.replace("Zoë", "Raj")


def test_errors_are_one_line_and_non_zero(cli, tmp_path):
    cli("init")
    result = cli("tick", "--now", "yesterday", ok=False)
    assert result.returncode != 0 and "not an ISO-8601 instant" in result.stderr
    result = cli("preview", "x@y.example", "nope", ok=False)
    assert result.returncode != 0 and "Error:" in result.stderr


def test_sync_campaigns_reports_every_error_with_its_location(tmp_path, cli):
    cli("init")
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / "broken.yaml").write_text(
        "slug: broken\nname: Broken\ntopics:\n  - {slug: pricing, name: Pricing, stage: decision}\n"
        "steps:\n  - key: one\n    subject: Hi\n    template: northwind-security/pricing\n    teaches: [pricng]\n",
        encoding="utf-8",
    )
    result = cli("sync-campaigns", ok=False, CAMPAIGNS_DIR=str(campaigns))
    assert result.returncode == 1
    assert "campaigns/broken.yaml: steps[0].teaches: unknown topic 'pricng' (did you mean 'pricing'?)" in result.stderr


def test_import_leads_messy_file_with_progress_report_and_mapping(cli, tmp_path):
    """The import command: progress bar, summary, a formula-safe report, --map; unusable files fail in one line."""
    import csv

    cli("init")
    fixture = ROOT / "tests" / "fixtures" / "leads_messy.csv"
    report = tmp_path / "report.csv"
    result = cli("import-leads", str(fixture), "--source", "expo-2026", "--campaign", "northwind-security",
                 "--report", str(report))
    assert "importing leads_messy.csv" in result.stderr  # the progress bar (its label when not a terminal)
    assert ("leads_messy.csv: 15 rows: 7 created, 1 merged, 4 flagged, 3 rejected; 7 enrolled in "
            "northwind-security (import 1)") in result.stdout
    assert "row 6: flagged: role account (shared mailbox); lead created, not enrolled" in result.stderr
    assert "row 13: created: employees: not a whole number ('lots'), ignored" in result.stderr
    rows = list(csv.reader(report.open(encoding="utf-8", newline="")))
    assert rows[0] == ["row", "email", "outcome", "field", "reason", "lead_id"] and len(rows) == 16
    assert ["12", "'=HYPERLINK(\"http://evil\",\"x\")", "rejected", "email"] == rows[9][:4]
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)

    mapped = tmp_path / "crm.csv"
    mapped.write_text("Contact;Firma\nann@acme.example;Acme GmbH\n", encoding="utf-8")
    result = cli("import-leads", str(mapped), "--source", "crm", "--map", "Contact=email", "--map", "Firma=company")
    assert "crm.csv: 1 rows: 1 created" in result.stdout

    for content, message in [("name,company\nAnn,Acme\n", "Error: file: no email column in the header"),
                             ("", "Error: file: the file is empty")]:
        bad = tmp_path / "bad.csv"
        bad.write_text(content, encoding="utf-8")
        result = cli("import-leads", str(bad), "--source", "x", ok=False)
        assert result.returncode == 1 and message in result.stderr and result.stderr.count("\n") == 1
    result = cli("import-leads", str(mapped), "--source", "x", "--map", "Contact=mail", ok=False)
    assert result.returncode == 1 and "Error: mapping: column 'Contact': unknown field 'mail'" in result.stderr
    result = cli("import-leads", str(mapped), "--source", "x", "--campaign", "nope", ok=False)
    assert result.returncode == 1 and "Error: campaign_slug: no campaign 'nope'" in result.stderr


def test_enroll_refused_is_one_line_and_exit_1(cli, tmp_path):
    """enroll refuses a hygiene-flagged lead and one sales holds: one line, exit 1, nothing enrolled."""
    import sqlite3

    cli("init")
    csv_file = tmp_path / "leads.csv"
    csv_file.write_text("email,first_name\ninfo@acme.example,Info\nann@held.example,Ann\n", encoding="utf-8")
    cli("import-leads", str(csv_file), "--source", "expo")
    database = sqlite3.connect(tmp_path / "instance" / "nurture_mail.db")
    with database:
        database.execute("UPDATE lead SET status = 'handed_off' WHERE email = 'ann@held.example'")

    flagged = cli("enroll", "info@acme.example", "northwind-security", ok=False)
    assert flagged.returncode == 1 and flagged.stderr.count("\n") == 1
    assert "cannot be enrolled: it failed hygiene (role_account)" in flagged.stderr
    held = cli("enroll", "ann@held.example", "northwind-security", ok=False)
    assert held.returncode == 1 and held.stderr.count("\n") == 1
    assert "cannot be enrolled: it is handed_off (with sales)" in held.stderr
    assert database.execute("SELECT count(*) FROM enrollment").fetchone() == (0,)
    database.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path, pg_schema_url):
    """A database nobody ran ``init`` on: a new SQLite file, or an empty PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    import uuid

    from ci import PG_URL, require
    from sqlalchemy import create_engine, text
    if pg_schema_url is None:
        require("PostgreSQL is not reachable", "start it, or point NURTURE_TEST_PG at one")
    schema = f"nurture_empty_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.mark.parametrize("command", [
    ["sync-campaigns"], ["import-leads", "samples/leads.csv", "--source", "x"], ["lead", "a@b.example"],
    ["handoffs"], ["worker", "--burst"],
])
def test_every_command_before_init_says_in_one_line_to_run_init(cli, empty_database, command):
    result = cli(*command, ok=False, DATABASE_URL=empty_database)
    assert result.returncode != 0
    assert result.stderr == "Error: the database is not initialised: run `python -m nurture_mail init` first\n"
    assert "Traceback" not in result.stdout + result.stderr


def test_a_schema_behind_the_code_says_to_run_init(cli, tmp_path):
    from nurture_mail.extensions import Database
    from nurture_mail.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    database = Database(url)
    upgrade(database, "0001")
    database.dispose()
    result = cli("sync-campaigns", ok=False, DATABASE_URL=url)
    assert result.returncode != 0 and "run `python -m nurture_mail init` to migrate it" in result.stderr
    assert cli("init", DATABASE_URL=url).returncode == 0
    assert cli("sync-campaigns", DATABASE_URL=url).returncode == 0


def test_an_import_killed_with_sigkill_is_marked_failed_by_the_next_run_and_resumes(cli, tmp_path, redis,
                                                                                    smtp_server, database_url):
    """A CLI import SIGKILLed mid-file stays ``running``; the next import-leads marks it failed, says so,
    and ``import-resume`` carries on after its last committed chunk: every row imported once."""
    import signal
    import time

    from sqlalchemy import create_engine, func, select

    from nurture_mail.models import ImportJob, Lead

    rows = 12_000  # six chunks: killed after the first commits, resumed for the other five
    big = tmp_path / "big.csv"
    with big.open("w", encoding="utf-8") as out:
        out.write("email,first_name,company\n")
        for i in range(rows):
            out.write(f"person{i}@company{i % 97}.example,P{i},Company {i % 97}\n")
    env = dict(os.environ, INSTANCE_PATH=str(tmp_path / "instance"), REDIS_URL=redis_url_of(redis),
               SMTP_URL=f"smtp://127.0.0.1:{smtp_server.port}", SECRET_KEY="cli-secret", DATABASE_URL=database_url)
    engine = create_engine(database_url)
    try:
        process = subprocess.Popen([sys.executable, "-m", "nurture_mail", "import-leads", str(big), "--source", "x"],
                                   env=env, cwd=str(ROOT), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 90
        processed = 0
        while time.monotonic() < deadline and not processed:
            time.sleep(0.05)
            with engine.connect() as conn:
                processed = conn.scalar(select(ImportJob.processed_rows)) or 0
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        # On PostgreSQL a chunk's tail (row results, progress, COMMIT) goes out pipelined: what the
        # server had received before the kill still commits. Read once the job stops moving.
        seen = None
        for _ in range(50):
            with engine.connect() as conn:
                status, processed = conn.execute(select(ImportJob.status, ImportJob.processed_rows)).one()
            if (status, processed) == seen:
                break
            seen = (status, processed)
            time.sleep(0.2)
        assert status == "running" and 0 < processed < rows

        small = tmp_path / "small.csv"
        small.write_text("email\nnew@lead.example\n", encoding="utf-8")
        result = cli("import-leads", str(small), "--source", "y", DATABASE_URL=database_url)
        assert (f"import 1 (big.csv) was interrupted after row {processed} of {rows} (its runner, pid {process.pid}, "
                "is gone): marked failed; `python -m nurture_mail import-resume 1` resumes it") in result.stderr
        with engine.connect() as conn:
            status, error = conn.execute(select(ImportJob.status, ImportJob.error).where(ImportJob.id == 1)).one()
        assert status == "failed" and f"interrupted after row {processed}" in error

        assert f"resumes after row {processed}" in cli("import-resume", "1", DATABASE_URL=database_url).stdout
        cli("worker", "--burst", DATABASE_URL=database_url)
        with engine.connect() as conn:
            status, done = conn.execute(select(ImportJob.status, ImportJob.processed_rows)
                                        .where(ImportJob.id == 1)).one()
            assert (status, done) == ("done", rows)
            assert conn.scalar(select(func.count()).select_from(Lead)) == rows + 1
    finally:
        engine.dispose()
