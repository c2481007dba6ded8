"""A small, fully known world built through the real send path, for checking report numbers.

Five leads enter the security track on Monday 2 March 2026; the scheduler sends, the capture
SMTP server receives. People open and click through the links of the emails they received;
a scanner pre-clicks a honeypot link and a visible one (both flagged as bots). On Thursday the
second touch goes out. Then three leads are handed to sales.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select
from support.sales import hand_off
from support.tracking import BROWSER, honeypot_link, pixel_url, visible_links

from nurture_mail.models import Delivery, Step
from nurture_mail.tracking.ingest import drain_events

SCANNER = "curl/8.5.0"
LEADS = {
    "nora@quinn.example": dict(first_name="Nora", last_name="Quinn", title="Head of Cloud Security",
                               company="Quinn Freight", region="EMEA", industry_naics="484110", employees=800,
                               revenue=50_000_000, lead_source="webinar"),
    "omar@ridge.example": dict(first_name="Omar", last_name="Ridge", title="VP Engineering", company="Ridge Bank",
                               region="AMER", industry_naics="522110", employees=4200, revenue=900_000_000,
                               lead_source="webinar"),
    "pia@lund.example": dict(first_name="Pia", last_name="Lund", title="IT Manager", company="Lund Health",
                             region="EMEA", industry_naics="622110", employees=150, lead_source="trade show"),
    "raj@kite.example": dict(first_name="Raj", last_name="Kite", title="CISO", company="Kite Retail",
                             region="AMER", industry_sic="5311", employees=12_000, lead_source="paid search"),
    "sue@moss.example": dict(first_name="Sue", last_name="Moss", title="Security Analyst", company="Moss Media",
                             region="APAC", industry_naics="511210", employees=60, lead_source="webinar"),
}


@dataclass
class World:
    handoffs: dict[str, int] = field(default_factory=dict)
    human_opens: Counter = field(default_factory=Counter)   # step key → deliveries opened by a person
    human_clicks: Counter = field(default_factory=Counter)  # step key → deliveries clicked by a person
    bot_hits: int = 0


def received_per_step(platform) -> Counter:
    """Emails the SMTP server received, per step key (Message-ID → delivery → step)."""
    ids = {m.message_id.strip() for m in platform.received() if m.message_id}
    with platform.svc.db.session() as session:
        rows = session.execute(select(Delivery.message_id, Step.key).join(Step, Step.id == Delivery.step_id)).all()
    return Counter(key for mid, key in rows if mid and mid.strip() in ids)


def _step_of(platform, message) -> str:
    with platform.svc.db.session() as session:
        return session.scalar(select(Step.key).join(Delivery, Delivery.step_id == Step.id)
                              .where(Delivery.message_id == message.message_id.strip()))


def build(platform) -> World:
    world = World()
    client = platform.app.test_client()
    for email, fields in LEADS.items():
        platform.add_lead(email, **fields)
        platform.enroll(email)
    platform.tick_and_work()  # Monday 14:00 UTC = 09:00 New York: the welcome email to all five
    platform.clock.advance(minutes=30)  # people read it later; scanners are caught by what they do
    inbox = {email: platform.received(to=email)[-1] for email in LEADS}
    for email in ("nora@quinn.example", "omar@ridge.example"):  # two people open and click
        message = inbox[email]
        step = _step_of(platform, message)
        client.get(urlsplit(pixel_url(message.html)).path, headers={"User-Agent": BROWSER})
        link = next(link for link in visible_links(message.html).values() if "/c/" in link.path)
        client.get(link.path, headers={"User-Agent": BROWSER})
        client.get(link.path, headers={"User-Agent": BROWSER})  # a second click: still one clicked delivery
        world.human_opens[step] += 1
        world.human_clicks[step] += 1
    message = inbox["pia@lund.example"]  # a security scanner walks Pia's email
    client.get(honeypot_link(message.html).path, headers={"User-Agent": BROWSER})
    link = next(link for link in visible_links(message.html).values() if "/c/" in link.path)
    client.get(link.path, headers={"User-Agent": SCANNER})
    client.get(urlsplit(pixel_url(message.html)).path, headers={"User-Agent": SCANNER})
    world.bot_hits = 3
    drain_events(platform.svc)
    platform.tick_and_work(datetime(2026, 3, 5, 15, 0, tzinfo=UTC))  # Thursday: the second touch
    platform.clock.set(datetime(2026, 3, 5, 16, 0, tzinfo=UTC))
    for email in ("nora@quinn.example", "omar@ridge.example", "pia@lund.example"):
        world.handoffs[email] = hand_off(platform, email)
    platform.clock.advance(timedelta(minutes=5))
    return world
