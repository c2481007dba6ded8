#!/usr/bin/env python
"""Rescore benchmark (not a test): one drain batch of 1,000 events over 500 leads.

Builds a migrated database (a temporary SQLite file, and PostgreSQL when ``--pg URL`` is given:
a private schema, dropped afterwards), syncs the shipped campaigns, creates 500 enrolled leads
with firmographics and 20 earlier events each (history), then times
``score_and_decide`` (load, score, upsert, decide) over the 500 leads after 1,000 new events.

    .venv/bin/python bench/rescore.py [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import create_engine, insert, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nurture_mail.campaigns import CampaignLoader, sync_all  # noqa: E402
from nurture_mail.config import Config  # noqa: E402
from nurture_mail.extensions import Database  # noqa: E402
from nurture_mail.migrate import upgrade  # noqa: E402
from nurture_mail.models import Campaign, Enrollment, Event, EventKind, Lead, Link, Step  # noqa: E402
from nurture_mail.scoring.service import score_and_decide  # noqa: E402

NOW = datetime(2026, 3, 16, 12, tzinfo=timezone.utc)


def populate(db: Database, config: Config, leads: int, history: int, batch: int) -> list[int]:
    specs, problems = CampaignLoader(config.templates_dir).load_dir(config.campaigns_dir)
    assert not problems, problems
    rng = random.Random(7)
    with db.session() as session:
        sync_all(session, specs, NOW)
        campaign_id = session.scalar(select(Campaign.id).where(Campaign.slug == "northwind-security"))
        link_ids = list(session.scalars(select(Link.id).join(Step).where(Step.campaign_id == campaign_id)))
        session.execute(insert(Lead), [dict(
            email=f"b{i}@bench.example", created_at=NOW, updated_at=NOW, status="nurturing", qualification={
                "budget": "yes"} if i % 3 == 0 else {}, custom_fields={}, hygiene=[], industry_sic="7372",
            employees=rng.randint(10, 5000), region=rng.choice(["emea", "apac", "north-america"]),
        ) for i in range(leads)])
        ids = list(session.scalars(select(Lead.id).order_by(Lead.id)))
        session.execute(insert(Enrollment), [dict(lead_id=i, campaign_id=campaign_id, state="active",
                                                  enrolled_at=NOW - timedelta(days=60), touches_sent=3)
                                             for i in ids])

        def events(n: int, newest: bool) -> list[dict]:
            rows = []
            for k in range(n):
                lead = ids[k % len(ids)]
                kind = rng.choice([EventKind.open, EventKind.click, EventKind.click])
                age = timedelta(seconds=rng.randint(1, 60)) if newest else timedelta(hours=rng.randint(1, 24 * 60))
                rows.append(dict(uid=uuid.uuid4().hex, lead_id=lead, kind=kind, at=NOW - age,
                                 link_id=rng.choice(link_ids) if kind == EventKind.click else None,
                                 suspected_bot=rng.random() < 0.1, detail={}))
            return rows

        for rows in (events(leads * history, newest=False), events(batch, newest=True)):
            if rows:
                session.execute(insert(Event), rows)
    return ids


def run(url: str, label: str, args) -> None:
    db = Database(url)
    upgrade(db)
    config = Config.from_env({}, database_url=url, secret_key="bench", instance_path=Path(tempfile.mkdtemp()))
    ids = populate(db, config, args.leads, args.history, args.events)
    timings = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        with db.session() as session:
            result = score_and_decide(session, config, ids, NOW)
        timings.append(time.perf_counter() - started)
    print(f"{label}: {len(result.scores)} leads ({args.events} new events, {args.history} earlier each), "
          f"{len(result.decisions)} decisions; median {statistics.median(timings) * 1000:.0f} ms, "
          f"best {min(timings) * 1000:.0f} ms over {args.repeat} runs")
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=500)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--history", type=int, default=20, help="earlier events per lead")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pg", help="PostgreSQL URL (a private schema is created and dropped)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/bench.db", "sqlite", args)
    if args.pg:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.pg)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            sep = "&" if "?" in args.pg else "?"
            run(f"{args.pg}{sep}options=-csearch_path%3D{schema}", "postgresql", args)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


if __name__ == "__main__":
    main()
