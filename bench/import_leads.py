#!/usr/bin/env python
"""Lead-import benchmark: 100,000 messy CSV rows through the real import, on embedded defaults.

Generates a realistic trade-show / purchased-list file (``;``-separated, BOM, Excel-style
headers such as ``Email Address`` and ``Company Name``) where about a quarter of the addresses
are bad, a few percent of rows are duplicates, and about a fifth are role accounts, students,
consultants, competitors or suppressed addresses; 5 % of the addresses already exist as leads.
Then it runs ``create_import`` + ``run_import`` (what the RQ job and ``import-leads`` run) WITH a
campaign (``--campaign``, default the shipped ``northwind-security``: every clean lead is
enrolled, as a real trade-show import does; ``--campaign ''`` for none) and prints rows/s and
seconds, and compares with a naive row-by-row ORM import (one SELECT and one flush per row,
and ``enroll()`` per clean lead, as the first importer did) on a 5,000-row subset.

Runs on SQLite in a temp folder, or with ``--pg [URL]`` on PostgreSQL in a private schema per
run (created, then dropped). Each run prints wall clock and CPU seconds: the bench process's
(SQLite runs in it) and, on PostgreSQL, the server backends' (read from ``/proc`` when the server
is on this machine), so a loaded machine can be told from a slow import.

    flock /work/wt/bench.lock .venv/bin/python bench/import_leads.py --repeat 3 --naive-rows 0
    flock /work/wt/bench.lock .venv/bin/python bench/import_leads.py --repeat 3 --naive-rows 0 --pg
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import unicodedata
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402

from nurture_mail.clock import FrozenClock  # noqa: E402
from nurture_mail.config import Config  # noqa: E402
from nurture_mail.extensions import Services  # noqa: E402
from nurture_mail.leads.hygiene import Hygiene  # noqa: E402
from nurture_mail.leads.imports import create_import, run_import  # noqa: E402
from nurture_mail.migrate import upgrade  # noqa: E402
from nurture_mail.models import ImportRowResult, Lead, LeadStatus, Suppression  # noqa: E402

START = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)
FIRST = ["Maria", "José", "Dan", "Akira", "Rachel", "Zoë", "Søren", "Françoise", "Wei", "Priya", "Liam", "Ana"]
LAST = ["Lopez", "Ramírez", "Whitfield", "Tanaka", "Okafor", "Müller", "Madsen", "Lemaire", "Lim", "Raghavan"]
TITLES = ["Director of IT", "CISO", "Security Engineer", "VP, Infrastructure", "IT Manager", "Cloud Architect"]
COUNTRIES = ["United States", "Germany", "France", "United Kingdom", "Singapore", "Australia"]
BAD = ["{f}.{l}@", "{f}.{l}", "{f} {l}@acme.example", "{f}..{l}@acme.example", "{f}@acme", "@acme.example",
       "{f}.{l}@acme..example", "{f}.{l}@-acme.example"]
FLAGGED = ["info@{c}.example", "sales@{c}.example", "noreply@{c}.example", "{f}.{l}{i}@cs.stanford.edu",
           "{f}{i}@student.uva.nl", "{f}.{l}{i}@ox.ac.uk", "{f}.{l}{i}@accenture.com", "{f}.{l}{i}@deloitte.com",
           "{f}.{l}{i}@wiz.io", "{f}.{l}{i}@crowdstrike.com"]


def ascii_name(name: str) -> str:
    """How a name shows up in an address: ``José`` -> ``jose``, ``Søren`` -> ``sren``."""
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()


def generate(n: int, seed: int = 5) -> tuple[bytes, list[str], list[str]]:
    """The CSV bytes, 1,000 addresses to suppress and 5 % addresses that already exist as leads."""
    rng = random.Random(seed)
    lines = ["Email Address;First Name;Last Name;Company Name;Job Title;Country/Region;Employees;Budget;Booth Notes"]
    good: list[str] = []
    for i in range(n):
        f, last = rng.choice(FIRST), rng.choice(LAST)
        # Addresses are ASCII-fied names, except 1 % that keep their accents (internationalized).
        af, al = (f.lower(), last.lower()) if rng.random() < 0.01 else (ascii_name(f), ascii_name(last))
        c = f"company{rng.randrange(20000)}"
        kind = rng.random()
        if kind < 0.25:
            email = rng.choice(BAD).format(f=af, l=al)
        elif kind < 0.43:
            email = rng.choice(FLAGGED).format(f=af, l=al, c=c, i=i)
        elif kind < 0.47 and good:
            email = rng.choice(good).upper()  # a duplicate, as scanned twice at the booth
        else:
            email = f"{af}.{al}{i}@{c}.example"
            good.append(email)
        employees = "lots" if rng.random() < 0.01 else str(rng.randrange(5, 50000))
        lines.append(";".join([email, f, last, f"Company {c[7:]} GmbH", rng.choice(TITLES), rng.choice(COUNTRIES),
                               employees, rng.choice(["", "", "approved Q3", "unknown"]),
                               rng.choice(["", "met at booth 12", "=HYPERLINK(\"http://evil\",\"x\")"])]))
    rng.shuffle(good)
    data = ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8")
    return data, good[:1000], good[1000:1000 + n // 20]


PG_URL = os.environ.get("NURTURE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


class PrivateSchemas:
    """One private PostgreSQL schema per database the bench makes, all dropped at the end."""

    def __init__(self, url: str) -> None:
        self.url, self.admin, self.names = url, create_engine(url), []

    def new(self) -> str:
        name = f"bench_import_{uuid.uuid4().hex[:8]}"
        with self.admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
        self.names.append(name)
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}options=-csearch_path%3D{name}&application_name={name}"

    def drop(self) -> None:
        with self.admin.begin() as conn:
            for name in self.names:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        self.admin.dispose()


def backend_cpu(svc) -> float | None:
    """CPU seconds of this bench's PostgreSQL backends (its application_name), or None (SQLite, remote server)."""
    if svc.db.is_sqlite:
        return None
    with svc.db.engine.connect() as conn:
        name = conn.exec_driver_sql("SELECT current_setting('application_name')").scalar()
        pids = conn.exec_driver_sql("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                                    (name,)).scalars().all()
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def make(tmp: Path, url: str | None = None):
    from nurture_mail.campaigns import CampaignLoader, sync_all

    env = dict(os.environ, DATABASE_URL=url) if url else os.environ
    config = Config.from_env(env, instance_path=tmp / "instance", secret_key="bench")
    svc = Services(config, clock=FrozenClock(START))  # what create_app builds; no Flask app needed
    upgrade(svc.db)
    specs, _problems = CampaignLoader(config.templates_dir).load_dir(config.campaigns_dir)
    with svc.db.session() as session:
        sync_all(session, specs, START)
    return svc


def seed(svc, suppressed: list[str], existing: list[str]) -> None:
    with svc.db.session() as session:
        if suppressed:
            session.execute(insert(Suppression), [dict(email=e, scope="*", reason="unsubscribe", source="link",
                                                       created_at=START) for e in suppressed])
        if existing:
            session.execute(insert(Lead), [dict(email=e, first_name="Known", status=LeadStatus.new, created_at=START,
                                                updated_at=START, qualification={}, custom_fields={}, hygiene=[],
                                                consent=True, soft_bounces=0) for e in existing])


def fast_import(svc, data: bytes, campaign: str | None) -> tuple[float, dict]:
    now = svc.clock.now()
    server = backend_cpu(svc)
    started, cpu = time.perf_counter(), time.process_time()
    with svc.db.session() as session:
        job = create_import(svc, session, filename="tradeshow.csv", data=data, lead_source="bench", now=now,
                            campaign_slug=campaign)
        import_id = job.id
    job = run_import(svc, import_id)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    assert job.status == "done", job.error
    after = backend_cpu(svc)
    server_cpu = round(after - server, 2) if server is not None and after is not None else None
    return elapsed, dict(job.counts, cpu_seconds=round(cpu, 2), server_cpu_seconds=server_cpu)


def naive_import(svc, data: bytes, campaign: str | None) -> float:
    """The row-by-row ORM way: a SELECT, an object and a flush per row, hygiene checked per row, enroll() per lead."""
    from nurture_mail.exceptions import NurtureError
    from nurture_mail.leads.csvfile import parse
    from nurture_mail.nurture.enroll import enroll, find_campaign

    hygiene = Hygiene.from_config(svc.config)
    parsed = parse(data)
    now = svc.clock.now()
    started = time.perf_counter()
    with svc.db.session() as session:
        from nurture_mail.models import ImportJob

        job = ImportJob(filename="naive.csv", status="running", created_at=now, options={}, counts={})
        session.add(job)
        session.flush()
        target = find_campaign(session, campaign) if campaign else None
        for number, cells in parsed.rows():
            raw = cells.get("email", "")
            try:
                email = hygiene.normalize_email(raw)
            except ValueError as exc:
                session.add(ImportRowResult(import_id=job.id, row=number, email=raw, outcome="rejected",
                                            reason=str(exc), field="email"))
                session.flush()
                continue
            flags = hygiene.check(email)
            if session.scalar(select(Suppression.id).where(Suppression.email == email, Suppression.scope == "*")):
                flags.append("suppressed")
            lead = session.scalar(select(Lead).where(Lead.email == email))
            outcome = "updated"
            if lead is None:
                lead = Lead(email=email, status=LeadStatus.new, created_at=now, updated_at=now, qualification={},
                            custom_fields={}, hygiene=[], lead_source="naive")
                session.add(lead)
                outcome = "created"
            for key in ("first_name", "last_name", "company", "title", "region"):
                if cells.get(key):
                    setattr(lead, key, cells[key])
            lead.hygiene = sorted(set(lead.hygiene or []) | set(flags))
            session.flush()
            session.add(ImportRowResult(import_id=job.id, row=number, email=email,
                                        outcome="flagged" if flags else outcome, lead_id=lead.id))
            session.flush()
            if target is not None and not flags:
                try:
                    enroll(session, lead, target, now, source="import", declared_by="import:naive")
                except NurtureError:
                    pass
    return time.perf_counter() - started


def profile(args, url) -> None:
    import cProfile
    import pstats

    data, suppressed, existing = generate(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        svc = make(Path(tmp) / "profiled", url())
        seed(svc, suppressed, existing)
        profiler = cProfile.Profile()
        profiler.enable()
        seconds, counts = fast_import(svc, data, args.campaign or None)
        profiler.disable()
        svc.close()
    print(f"import of {args.rows:,} rows under cProfile: {seconds:.2f} s (server CPU {counts['server_cpu_seconds']})")
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--naive-rows", type=int, default=5_000,
                        help="rows of the naive row-by-row comparison (0: skip it)")
    parser.add_argument("--campaign", default="northwind-security",
                        help="enroll the clean leads in this campaign (default %(default)s; '' for none)")
    parser.add_argument("--pg", nargs="?", const=PG_URL, default=None,
                        help=f"run on PostgreSQL, a private schema per run (default URL {PG_URL})")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--profile", action="store_true",
                        help="profile the fast import (cProfile) and print where its time goes; no naive run")
    parser.add_argument("--repeat", type=int, default=1, help="fast imports of the whole file (median reported)")
    args = parser.parse_args()
    print(f"uptime: {os.popen('uptime').read().strip()}", flush=True)
    schemas = PrivateSchemas(args.pg) if args.pg else None
    try:
        run(args, (lambda: schemas.new()) if schemas else (lambda: None))
    finally:
        if schemas:
            schemas.drop()


def run(args, url) -> None:
    if args.profile:
        profile(args, url)
        return
    data, suppressed, existing = generate(args.rows)
    results = {}
    campaign = args.campaign or None
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for attempt in range(args.repeat):
            svc = make(Path(tmp) / f"fast{attempt}", url())
            seed(svc, suppressed, existing)
            runs.append(fast_import(svc, data, campaign))
            with svc.db.session() as session:
                leads = session.scalar(select(func.count()).select_from(Lead))
            svc.close()
            seconds, counts = runs[-1]
            server = "" if counts["server_cpu_seconds"] is None else \
                f", PostgreSQL backends {counts['server_cpu_seconds']:.2f} s"
            print(f"  run {attempt + 1}: {seconds:.2f} s ({args.rows / seconds:,.0f} rows/s), "
                  f"CPU of this process {counts['cpu_seconds']:.2f} s{server}; "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
        seconds, counts = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
        cpus = [r[1]["cpu_seconds"] for r in runs]
        servers = [r[1]["server_cpu_seconds"] for r in runs if r[1]["server_cpu_seconds"] is not None]
        counts = {k: v for k, v in counts.items() if not k.endswith("cpu_seconds")}
        results["fast"] = dict(rows=args.rows, seconds=round(seconds, 2), rows_per_s=round(args.rows / seconds),
                               runs=[round(r[0], 2) for r in runs], cpu_seconds=statistics.median(cpus),
                               server_cpu_seconds=statistics.median(servers) if servers else None,
                               counts=counts, leads_in_db=leads, bytes=len(data))
        if args.naive_rows:
            header, *body = data.decode("utf-8-sig").split("\r\n")
            subset = ("\ufeff" + "\r\n".join([header, *body[:args.naive_rows]]) + "\r\n").encode("utf-8")
            svc = make(Path(tmp) / "fast-subset", url())
            seed(svc, suppressed, existing)
            sub_seconds, _counts = fast_import(svc, subset, campaign)
            svc.close()

            svc = make(Path(tmp) / "naive", url())
            seed(svc, suppressed, existing)
            naive_seconds = naive_import(svc, subset, campaign)
            svc.close()
            results["subset"] = dict(rows=args.naive_rows, fast_seconds=round(sub_seconds, 3),
                                     fast_rows_per_s=round(args.naive_rows / sub_seconds),
                                     naive_seconds=round(naive_seconds, 3),
                                     naive_rows_per_s=round(args.naive_rows / naive_seconds),
                                     speedup=round(naive_seconds / sub_seconds, 1))
    backend = "PostgreSQL" if args.pg else "SQLite"
    print(f"uptime after: {os.popen('uptime').read().strip()}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {backend}; "
          f"campaign: {args.campaign or 'none'}")
    fast = results["fast"]
    server = "" if fast["server_cpu_seconds"] is None else \
        f", PostgreSQL backends {fast['server_cpu_seconds']:.2f} s"
    print(f"import of {fast['rows']:,} rows ({fast['bytes'] / 1e6:.1f} MB), median of {len(runs)}: "
          f"{fast['seconds']:.2f} s wall, {fast['rows_per_s']:,} rows/s (runs {fast['runs']}); median CPU: "
          f"this process {fast['cpu_seconds']:.2f} s{server}")
    print("  outcomes: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))
    if "subset" in results:
        sub = results["subset"]
        print(f"{sub['rows']:,}-row subset: fast {sub['fast_seconds']:.2f} s ({sub['fast_rows_per_s']:,} rows/s), "
              f"naive row-by-row ORM {sub['naive_seconds']:.2f} s ({sub['naive_rows_per_s']:,} rows/s): "
              f"{sub['speedup']}x")
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
