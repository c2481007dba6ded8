#!/usr/bin/env python
"""Report pages benchmark (not a test): every report page under 500 ms of server time on
PostgreSQL with 100,000 leads, 1,000,000 events and 50,000 deliveries a day.

Builds a private schema (dropped afterwards unless ``--keep``) with bulk SQL (``generate_series``):
the shipped campaigns and sales team, 100,000 leads each enrolled, 50,000 deliveries a day for 28
days (1.4 million: each lead gets each of the 14 steps once), 1,000,000 events on them (opens,
clicks, unsubscribes, bounces, complaints; a tenth flagged as bots), 400,000 knowledge rows,
skips, 6,000 handoffs with their outcomes. Then it refreshes the daily counters and counts the
topics and monthly summaries (what the cron job does, timed), adds five minutes of activity and
times the cron job's incremental refresh, and requests every report page and its CSV, and their
widest date-range variants, through the app (signed in, the real views), several times each,
timing the server side. ``--keep`` keeps the schema; ``--schema NAME`` reuses a kept one (no
generation). ``--live`` also times the pages before any counter or summary exists.

    flock /work/wt/bench.lock .venv/bin/python bench/reports.py [--pg URL] [--keep | --schema bench_reports_…]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nurture_mail import create_app  # noqa: E402
from nurture_mail.auth.accounts import create_user  # noqa: E402
from nurture_mail.campaigns import CampaignLoader, sync_all  # noqa: E402
from nurture_mail.clock import FrozenClock  # noqa: E402
from nurture_mail.config import Config  # noqa: E402
from nurture_mail.extensions import Database  # noqa: E402
from nurture_mail.migrate import upgrade  # noqa: E402
from nurture_mail.reports.counters import refresh_days  # noqa: E402
from nurture_mail.reports.summaries import refresh_engaged_months, refresh_summaries, refresh_topics  # noqa: E402
from nurture_mail.sales.team import sync_sales_team  # noqa: E402

NOW = datetime(2026, 3, 31, 15, 0, tzinfo=timezone.utc)
DAYS = 28  # 28 × 50,000 = 1.4 million: every lead × each of the 14 steps once
PAGES = [f"/reports/{name}" for name in ("campaigns", "steps", "topics", "closure", "reps", "forecast", "monthly")]
#: The date-range variants the pages offer, at their widest useful setting.
VARIANTS = ["/reports/topics?to=2026-03-15", "/reports/closure?from=2025-04-01", "/reports/reps?from=2025-04-01",
            "/reports/forecast?from=2021-04-01", "/reports/monthly?month=2026-02", "/reports/steps?from=2026-01-01"]

GENERATE = """
-- 100,000 leads with varied sources and profiles.
INSERT INTO lead (email, first_name, last_name, title, company, lead_source, timezone, consent, industry_sic,
                  industry_naics, revenue, employees, locations, region, qualification, custom_fields, status,
                  soft_bounces, hygiene, created_at, updated_at)
SELECT 'b' || i || '@bench.example', 'First' || i, 'Last' || i,
       (ARRAY['CISO', 'VP Engineering', 'Head of IT', 'IT Manager', 'Security Analyst', 'CTO'])[1 + i % 6],
       'Company ' || (i % 20000), (ARRAY['webinar', 'trade show', 'paid search', 'referral', 'content'])[1 + i % 5],
       'America/New_York', true, NULL, (ARRAY['511210', '522110', '622110', '484110', '541512'])[1 + i % 5],
       (i % 900 + 1) * 100000, (i % 97 + 1) * 50, 1 + i % 4, (ARRAY['AMER', 'EMEA', 'APAC'])[1 + i % 3],
       '{}', '{}', 'nurturing', 0, '[]',
       :now - ((i % 120) || ' days')::interval, :now - ((i % 120) || ' days')::interval
FROM generate_series(1, :leads) AS i;

-- One enrollment per lead, entered over the last 120 days.
INSERT INTO enrollment (lead_id, campaign_id, state, next_send_at, touches_sent, enrolled_at)
SELECT l.id, :campaign, (ARRAY['active', 'active', 'active', 'completed', 'exited'])[1 + l.id % 5], NULL, 3,
       l.created_at
FROM lead l;

-- 50,000 deliveries a day for DAYS days: enrollment × step is unique.
INSERT INTO delivery (enrollment_id, step_id, lead_id, status, scheduled_for, next_attempt_at, sent_at, attempts,
                      message_id)
SELECT e.id, s.id, e.lead_id, CASE WHEN g.i % 50 = 0 THEN 'bounced' ELSE 'sent' END,
       :now - ((g.i / :per_day) || ' days')::interval, :now - ((g.i / :per_day) || ' days')::interval,
       :now - ((g.i / :per_day) || ' days')::interval - ((g.i % 480) || ' minutes')::interval, 1,
       '<' || g.i || '@bench.example>'
FROM generate_series(0, :deliveries - 1) AS g(i)
JOIN (SELECT id, lead_id, row_number() OVER (ORDER BY id) - 1 AS n FROM enrollment) e ON e.n = g.i % :leads
JOIN (SELECT id, row_number() OVER (ORDER BY position, id) - 1 AS n FROM step WHERE campaign_id = :campaign) s
  ON s.n = (g.i / :leads) % :steps;

-- 1,000,000 events on those deliveries, a tenth flagged as bots.
INSERT INTO event (uid, lead_id, delivery_id, kind, at, user_agent, suspected_bot, detail)
SELECT md5(g.i::text), d.lead_id, d.id,
       CASE WHEN g.i % 100 < 60 THEN 'open' WHEN g.i % 100 < 92 THEN 'click' WHEN g.i % 100 < 95 THEN 'unsubscribe'
            WHEN g.i % 100 < 98 THEN 'bounce' ELSE 'complaint' END,
       LEAST(d.sent_at + ((g.i % 240) || ' minutes')::interval, :now - interval '1 minute'), 'Mozilla/5.0',
       g.i % 10 = 0, '{}'
FROM generate_series(0, :events - 1) AS g(i)
JOIN delivery d ON d.id = (SELECT min(id) FROM delivery) + ((g.i::bigint * 7919) % :deliveries)::int;

-- Skips, knowledge, handoffs with their outcomes.
INSERT INTO step_skip (enrollment_id, step_id, reason, at)
SELECT d.enrollment_id, d.step_id, 'knows every topic it teaches', d.sent_at
FROM delivery d WHERE d.id % 30 = 0
ON CONFLICT DO NOTHING;
INSERT INTO knowledge (lead_id, topic, level, updated_at)
SELECT l.id, t.slug, (ARRAY['exposed', 'exposed', 'engaged', 'known', 'exposed'])[1 + (l.id + t.n) % 5], :now
FROM lead l JOIN (SELECT slug, row_number() OVER (ORDER BY slug) AS n FROM topic) t ON (l.id + t.n) % 3 = 0;
INSERT INTO handoff (lead_id, campaign_id, reason, reason_detail, state, rep_id, dossier, created_at, triggered_at,
                     notified_at, first_action_at, sla_due_at, ownership_ends_at, reject_kind, reject_reason,
                     deal_value, closed_at)
SELECT l.id, :campaign, 'score', 'engagement and fit over the thresholds',
       (ARRAY['notified', 'accepted', 'accepted', 'won', 'lost', 'rejected'])[1 + l.id % 6],
       (SELECT id FROM sales_rep ORDER BY id LIMIT 1 OFFSET (l.id % 5)), '{}',
       :now - ((l.id % 90) || ' days')::interval, :now - ((l.id % 90) || ' days')::interval,
       :now - ((l.id % 90) || ' days')::interval,
       CASE WHEN l.id % 6 = 0 THEN NULL ELSE :now - ((l.id % 90) || ' days')::interval + interval '3 hours' END,
       :now - ((l.id % 90) || ' days')::interval + interval '4 hours',
       :now - ((l.id % 90) || ' days')::interval + interval '14 days',
       CASE WHEN l.id % 6 = 5 THEN 'not_ready' END, CASE WHEN l.id % 6 = 5 THEN 'no budget yet' END,
       CASE WHEN l.id % 6 = 3 THEN 10000 + (l.id % 50) * 1000 END,
       CASE WHEN l.id % 6 IN (3, 4, 5) THEN :now - ((l.id % 90) || ' days')::interval + interval '20 days' END
FROM lead l WHERE l.id % 17 = 0 LIMIT :handoffs;
UPDATE enrollment SET ended_at = LEAST(enrolled_at + interval '20 days', :now - interval '1 hour')
WHERE state IN ('completed', 'exited');
INSERT INTO handoff_action (handoff_id, action, actor, via, detail, at)
SELECT h.id, 'accept', 'bench@sales.example', 'web', '{}', h.first_action_at
FROM handoff h WHERE h.first_action_at IS NOT NULL AND h.state <> 'rejected';
"""


#: Five minutes of activity at 50,000 deliveries a day: ~175 deliveries teaching two topics each,
#: and as many clicks (a few times the real click rate).
CHANGES = """
INSERT INTO knowledge_evidence (lead_id, topic, level, source, at)
SELECT k.lead_id, k.topic, k.level, 'delivery', :now FROM knowledge k WHERE k.id % 1143 = 0 LIMIT 350;
INSERT INTO event (uid, lead_id, delivery_id, kind, at, user_agent, suspected_bot, detail)
SELECT md5(random()::text || g.i), 1 + (g.i * 7919) % :leads, NULL, 'click', :now, 'Mozilla/5.0', false, '{}'
FROM generate_series(1, 350) AS g(i)
"""


def generate(db: Database, config: Config, args: argparse.Namespace) -> None:
    """Fill the schema with the shipped campaigns, the sales team and the bulk data; VACUUM ANALYZE."""
    with db.session() as session:
        specs, problems = CampaignLoader(config.templates_dir).load_dir(config.campaigns_dir)
        assert not problems, problems
        sync_all(session, specs, NOW)
        sync_sales_team(session, config.sales_team_path, NOW)
        create_user(session, "bench@northwind.example", "Bench", "admin", NOW, password="bench-password-1")
        campaign = session.execute(text("SELECT id FROM campaign WHERE slug = 'northwind-security'")).scalar()
        steps = session.execute(text("SELECT count(*) FROM step WHERE campaign_id = :c"), {"c": campaign}).scalar()
    started = time.perf_counter()
    with db.engine.begin() as conn:
        for statement in [s for s in GENERATE.split(";\n") if s.strip()]:
            conn.execute(text(statement), dict(now=NOW.replace(tzinfo=None), leads=args.leads, campaign=campaign,
                                               per_day=args.per_day, deliveries=args.per_day * DAYS, steps=steps,
                                               events=args.events, handoffs=6000))
        counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in
                  ("lead", "enrollment", "delivery", "event", "knowledge", "step_skip", "handoff")}
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # What autovacuum does on a live database; only this schema's tables (search_path).
        conn.execute(text("VACUUM ANALYZE lead, enrollment, delivery, event, knowledge, step_skip, handoff, "
                          "handoff_action, step, topic"))
    print(f"generated in {time.perf_counter() - started:.1f} s: " + ", ".join(f"{n:,} {t}" for t, n in counts.items()))


def timed_get(client, path: str) -> tuple[float, int]:
    started = time.perf_counter()
    response = client.get(path)
    return (time.perf_counter() - started) * 1000, response.status_code


def sign_in(client, email: str, password: str) -> None:
    page = client.get("/signin").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    response = client.post("/signin", data={"csrf_token": token, "email": email, "password": password})
    assert response.status_code == 303, response.status_code


def measure(client, repeat: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    for page in PAGES + VARIANTS:
        base, _, query = page.partition("?")
        for path in (page, base + ".csv" + ("?" + query if query else "")):
            timings = []
            for _ in range(repeat):
                ms, status = timed_get(client, path)
                assert status == 200, (path, status)
                timings.append(ms)
            results[path] = timings
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get("NURTURE_TEST_PG",
                                                       "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--per-day", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--live", action="store_true", help="also time the pages without the daily counters")
    parser.add_argument("--keep", action="store_true", help="keep the schema (prints its name) for profiling")
    parser.add_argument("--schema", help="reuse this kept schema (built by an earlier --keep run): no generation")
    parser.add_argument("--redis-db", type=int, default=int(os.environ.get("NURTURE_TEST_REDIS_DB", "8")))
    args = parser.parse_args()
    reuse = bool(args.schema)
    schema = args.schema or f"bench_reports_{uuid.uuid4().hex[:8]}"
    if reuse and args.live:
        parser.error("--live times the pages before any counter exists: a fresh schema only (no --schema)")
    if not re.fullmatch(r"bench_reports_\w+", schema):
        parser.error("--schema: a schema made by this bench (bench_reports_…)")
    admin = create_engine(args.pg)
    if not reuse:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{args.pg}{'&' if '?' in args.pg else '?'}options=-csearch_path%3D{schema}"
    try:
        db = Database(url)
        upgrade(db)
        config = Config.from_env({}, database_url=url, secret_key="bench", instance_path=Path(tempfile.mkdtemp()),
                                 redis_url=f"redis://127.0.0.1:6379/{args.redis_db}")
        if not reuse:
            generate(db, config, args)
        app = create_app(config, clock=FrozenClock(NOW))
        client = app.test_client()
        sign_in(client, "bench@northwind.example", "bench-password-1")
        if args.live:
            live = measure(client, max(args.repeat // 2, 2))
        if not reuse:
            started = time.perf_counter()
            with db.session() as session:
                written = refresh_days(session, [NOW.date() - timedelta(days=d) for d in range(1, DAYS + 2)], NOW)
            print(f"daily counters: {written:,} rows for {DAYS + 1} days in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        with db.session() as session:
            refresh_days(session, [NOW.date(), NOW.date() - timedelta(days=1)], NOW)
        print(f"the cron job's refresh of the daily counters (today and yesterday): "
              f"{(time.perf_counter() - started) * 1000:.0f} ms")
        started = time.perf_counter()
        with db.session() as session:
            stats = refresh_topics(session, NOW, full=True)
        print(f"topics summary, counted in full: {stats['rows']:,} rows, {stats['groups']:,} groups in "
              f"{(time.perf_counter() - started) * 1000:.0f} ms")
        started = time.perf_counter()
        with db.session() as session:
            months = refresh_engaged_months(session, NOW, full=True)
        print(f"monthly summary (engaged leads per month), counted in full: {months} months in "
              f"{(time.perf_counter() - started) * 1000:.0f} ms")
        with db.engine.begin() as conn:
            for statement in CHANGES.split(";\n"):
                conn.execute(text(statement), {"now": NOW.replace(tzinfo=None), "leads": args.leads})
        started = time.perf_counter()
        with db.session() as session:
            stats = refresh_summaries(session, NOW + timedelta(minutes=5))
        print(f"the cron job's refresh of both summaries after 350 knowledge changes and 350 clicks: "
              f"{stats['topic_groups']:,} topic groups recounted, in {(time.perf_counter() - started) * 1000:.0f} ms")
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE report_step_day"))
            conn.execute(text("ANALYZE report_topic_day"))
            conn.execute(text("ANALYZE report_engaged_month"))
        timings = measure(client, args.repeat)
        print(f"\n{'page':<40} {'median ms':>10} {'max ms':>8}" + (f" {'live median':>12}" if args.live else ""))
        worst = 0.0
        for path, values in timings.items():
            worst = max(worst, statistics.median(values))
            extra = f" {statistics.median(live[path]):>12.0f}" if args.live else ""
            print(f"{path:<40} {statistics.median(values):>10.0f} {max(values):>8.0f}{extra}")
        print(f"\nslowest median: {worst:.0f} ms ({'under' if worst < 500 else 'OVER'} the 500 ms budget)")
        print(f"uptime: {os.popen('uptime').read().strip()}")
        app.extensions["nurture"].close()
        db.dispose()
    finally:
        if args.keep:
            print(f"kept: schema {schema} (reuse it with --schema {schema})")
        else:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
