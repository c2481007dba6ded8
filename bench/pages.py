#!/usr/bin/env python
"""Page benchmark (not a test): the dashboard, the leads list and a lead page on a large database.

Builds a private schema in PostgreSQL (dropped afterwards), syncs the shipped campaigns and
generates server-side with ``INSERT … SELECT generate_series``: 100,000 leads with scores,
60,000 enrollments, their deliveries (sent over the last 60 days, some failed or queued),
1,000,000 events (opens and clicks, a tenth by suspected bots, bounces, complaints), knowledge,
handoffs. One lead has a long history (2,000 events), as a busy prospect would.

Then it signs in through the real form and times each page through the WSGI app in this process
(server time: routing, role check, queries, template), median of ``--repeat`` runs after one
warm-up. The budget is 300 ms per page.

    .venv/bin/python bench/pages.py [--pg URL] [--leads 100000] [--events 1000000] [--repeat 7]

Redis (sign-in throttle): ``REDIS_URL`` (default redis://127.0.0.1:6379/6).
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
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import create_engine, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nurture_mail import create_app  # noqa: E402
from nurture_mail.auth.accounts import create_user  # noqa: E402
from nurture_mail.campaigns import CampaignLoader, sync_all  # noqa: E402
from nurture_mail.clock import FrozenClock  # noqa: E402
from nurture_mail.config import Config  # noqa: E402
from nurture_mail.extensions import Database  # noqa: E402
from nurture_mail.migrate import upgrade  # noqa: E402
from nurture_mail.models import Campaign, Step  # noqa: E402

NOW = datetime(2026, 3, 16, 10, tzinfo=timezone.utc)
PG_URL = os.environ.get("NURTURE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BUDGET_MS = 300
STATUSES = ["new", "nurturing", "nurturing", "nurturing", "mql", "handed_off", "accepted", "won", "lost",
            "recycled", "disqualified", "unsubscribed", "bounced"]
SOURCES = ["webinar", "trade-show", "content", "referral", "paid-search", "partner"]


def populate(db: Database, config: Config, leads: int, events: int) -> None:
    specs, problems = CampaignLoader(config.templates_dir).load_dir(config.campaigns_dir)
    assert not problems, problems
    with db.session() as session:
        sync_all(session, specs, NOW)
        campaign_id = session.scalar(select(Campaign.id).where(Campaign.slug == "northwind-security"))
        steps = list(session.scalars(select(Step.id).where(Step.campaign_id == campaign_id).order_by(Step.position)))
    enrolled = leads * 6 // 10
    started = time.perf_counter()
    p = dict(now=NOW.replace(tzinfo=None), n=leads, e=enrolled, events=events, campaign=campaign_id, steps=steps,
             statuses=STATUSES, sources=SOURCES)
    with db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO lead (id, email, first_name, last_name, title, company, lead_source, timezone, consent,"
            " employees, region, qualification, custom_fields, status, soft_bounces, hygiene, created_at, updated_at)"
            " SELECT g, 'person' || g || '@company' || (g % 9000) || '.example', 'First' || g, 'Last' || (g % 977),"
            "  'Title ' || (g % 40), 'Company ' || (g % 9000), (CAST(:sources AS text[]))[1 + g % 6], 'UTC', true, 10 + g % 5000,"
            "  CASE WHEN g % 2 = 0 THEN 'EMEA' ELSE 'AMER' END, '{}', '{}', (CAST(:statuses AS text[]))[1 + g % 13], 0,"
            "  CAST(CASE WHEN g % 97 = 0 THEN '[\"role_account\"]' ELSE '[]' END AS json),"
            "  :now - make_interval(days => 120), :now - make_interval(secs => (g * 7919) % (90 * 86400))"
            " FROM generate_series(1, :n) AS g"), p)
        conn.execute(text("SELECT setval(pg_get_serial_sequence('lead', 'id'), :n)"), p)
        conn.execute(text(
            "INSERT INTO lead_score (lead_id, fit, engagement, fit_breakdown, engagement_breakdown, computed_at)"
            " SELECT g, (g * 13) % 100, (g * 7) % 80,"
            "  '[{\"points\": 15, \"reason\": \"industry software\", \"at\": null, \"event_id\": null,"
            "     \"text\": \"+15 industry software\"}]',"
            "  '[{\"points\": 5, \"reason\": \"clicked a link\", \"at\": null, \"event_id\": null,"
            "     \"text\": \"+5 clicked\"}]', :now FROM generate_series(1, :n) AS g"), p)
        conn.execute(text(
            "INSERT INTO enrollment (id, lead_id, campaign_id, state, next_send_at, touches_sent, enrolled_at)"
            " SELECT g, g, :campaign, CASE WHEN g % 20 = 0 THEN 'paused' WHEN g % 7 = 0 THEN 'completed'"
            "  ELSE 'active' END, CASE WHEN g % 20 = 0 OR g % 7 = 0 THEN NULL"
            "  ELSE :now + make_interval(secs => g % 86400) END, 1 + g % 5, :now - make_interval(days => 70)"
            " FROM generate_series(1, :e) AS g"), p)
        conn.execute(text("SELECT setval(pg_get_serial_sequence('enrollment', 'id'), :e)"), p)
        # Deliveries: 1 + g % 5 steps per enrollment, sent over the last 60 days.
        conn.execute(text(
            "INSERT INTO delivery (enrollment_id, step_id, lead_id, status, scheduled_for, next_attempt_at,"
            " sent_at, attempts, message_id, last_error)"
            " SELECT g, (CAST(:steps AS int[]))[k], g,"
            "  CASE WHEN (g + k) % 211 = 0 THEN 'failed' WHEN (g + k) % 97 = 0 THEN 'queued' ELSE 'sent' END,"
            "  :now - make_interval(secs => ((g * 31 + k * 86400 * 3) % (60 * 86400))),"
            "  :now - make_interval(secs => ((g * 31 + k * 86400 * 3) % (60 * 86400))),"
            "  CASE WHEN (g + k) % 211 = 0 OR (g + k) % 97 = 0 THEN NULL"
            "   ELSE :now - make_interval(secs => ((g * 31 + k * 86400 * 3) % (60 * 86400))) END,"
            "  1, '<' || g || '.' || k || '@bench.example>',"
            "  CASE WHEN (g + k) % 211 = 0 THEN '550 5.1.1 mailbox unavailable' END"
            " FROM generate_series(1, :e) AS g, generate_series(1, 5) AS k WHERE k <= 1 + g % 5"), p)
        # Events: a million, on enrolled leads; lead 1 gets 2,000 of them.
        conn.execute(text(
            "INSERT INTO event (lead_id, delivery_id, kind, topic, at, user_agent, ip, suspected_bot, bot_reason, detail)"
            " SELECT CASE WHEN g <= 2000 THEN 1 ELSE 1 + (g::bigint * 7919) % :e END, NULL,"
            "  CASE WHEN g % 5000 = 0 THEN 'complaint' WHEN g % 400 = 0 THEN 'bounce'"
            "   WHEN g % 3 = 0 THEN 'click' ELSE 'open' END,"
            "  CASE WHEN g % 3 = 0 THEN 'cloud-risk-landscape' END,"
            "  :now - make_interval(secs => (g::bigint * 104729) % (60 * 86400)), 'Mozilla/5.0 bench', '192.0.2.1',"
            "  g % 10 = 0, CASE WHEN g % 10 = 0 THEN 'clicked within 2 s of delivery' END, '{}'"
            " FROM generate_series(1, :events) AS g"), p)
        conn.execute(text(
            "INSERT INTO knowledge (lead_id, topic, level, updated_at)"
            " SELECT g, 'cloud-risk-landscape', CASE WHEN g % 3 = 0 THEN 'engaged' ELSE 'exposed' END, :now"
            " FROM generate_series(1, :e) AS g"), p)
        conn.execute(text(
            "INSERT INTO knowledge_evidence (lead_id, topic, level, source, at)"
            " SELECT g, 'cloud-risk-landscape', 'exposed', 'delivery', :now - make_interval(days => 30)"
            " FROM generate_series(1, :e) AS g"), p)
        conn.execute(text(
            "INSERT INTO handoff (lead_id, campaign_id, reason, reason_detail, state, dossier, created_at)"
            " SELECT g * 37, :campaign, CASE WHEN g % 4 = 0 THEN 'hand_raiser' ELSE 'score' END,"
            "  'engagement 42 >= 40 and fit 55 >= 50', CASE WHEN g % 3 = 0 THEN 'accepted' ELSE 'notified' END,"
            "  '{}', :now - make_interval(secs => (g * 4001) % (40 * 86400))"
            " FROM generate_series(1, 2000) AS g"), p)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    with db.engine.connect() as conn:
        counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                  for t in ("lead", "enrollment", "delivery", "event", "handoff")}
    print(f"generated {counts} in {time.perf_counter() - started:.1f} s", flush=True)


def timed(client, path: str, repeat: int) -> tuple[float, float, int]:
    response = client.get(path)  # warm-up: template compilation, connection pool
    assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True)[:500])
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, path
    return statistics.median(times), max(times), len(response.get_data())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=PG_URL, help="PostgreSQL URL (a private schema is created and dropped)")
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the schema (reuse it with --schema)")
    parser.add_argument("--schema", help="reuse a schema kept by --keep (no generation)")
    parser.add_argument("--profile", metavar="PATH", help="profile one request of this page (cProfile)")
    args = parser.parse_args()
    print(f"uptime: {os.popen('uptime').read().strip()}")
    schema = args.schema or f"bench_pages_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.pg)
    if not args.schema:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in args.pg else "?"
    url = f"{args.pg}{sep}options=-csearch_path%3D{schema}&application_name=bench_pages"
    try:
        db = Database(url)
        upgrade(db)
        config = Config.from_env(
            {"REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/6"), "QUEUE_NAME": f"bench-{schema}"},
            database_url=url, secret_key="bench", instance_path=Path(tempfile.mkdtemp()),
            smtp_url="smtp://127.0.0.1:9")
        if not args.schema:
            populate(db, config, args.leads, args.events)
        db.dispose()
        app = create_app(config, clock=FrozenClock(NOW))
        svc = app.extensions["nurture"]
        with svc.db.session() as session:
            if not args.schema:
                create_user(session, "bench-admin@example.com", "Bench", "admin", NOW, password="bench-password-1")
        client = app.test_client()
        page = client.get("/signin").get_data(as_text=True)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        response = client.post("/signin", data={"csrf_token": token, "email": "bench-admin@example.com",
                                                "password": "bench-password-1"})
        assert response.status_code == 303, response.status_code
        if args.profile:
            import cProfile
            import pstats

            client.get(args.profile)
            profiler = cProfile.Profile()
            profiler.enable()
            client.get(args.profile)
            profiler.disable()
            pstats.Stats(profiler).strip_dirs().sort_stats("cumulative").print_stats(45)
            return
        second = re.search(r'href="(/leads/\?cursor=[^"]+)"', client.get("/leads/").get_data(as_text=True))
        pages = [
            ("dashboard /", "/"),
            ("leads list, first page", "/leads/"),
            ("leads list, second page (keyset)", second.group(1).replace("&amp;", "&")),
            ("leads list, search 'company 42'", "/leads/?q=company+42"),
            ("leads list, status + score range", "/leads/?status=nurturing&engagement_min=20&engagement_max=60"),
            ("leads list, campaign + updated since", "/leads/?campaign=northwind-security&updated_since=2026-03-01"),
            ("lead page, 2,000 events", "/leads/1"),
            ("lead page, typical", f"/leads/{args.leads // 3}"),
            ("suppressions", "/suppressions/"),
        ]
        results = []
        for label, path in pages:
            median, worst, size = timed(client, path, args.repeat)
            results.append((label, median, worst, size))
            print(f"  {label:<40} {median:7.1f} ms median  {worst:7.1f} ms max  {size / 1024:6.0f} KiB", flush=True)
        print(f"\npages, PostgreSQL, {args.leads:,} leads, {args.events:,} events, median of {args.repeat}"
              f" (uptime: {os.popen('uptime').read().strip()})")
        for label, median, worst, _size in results:
            flag = "ok" if median <= BUDGET_MS else "OVER BUDGET"
            print(f"  {label:<40} {median:7.1f} ms  (max {worst:6.1f})  {flag}")
        svc.close()
    finally:
        if args.keep or args.schema:
            print(f"schema {schema} kept: rerun with --schema {schema}; drop it with DROP SCHEMA ... CASCADE")
        else:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
