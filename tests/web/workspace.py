"""A small, real workspace for the marketer's pages: campaigns synced from files, leads enrolled
through the domain services, first emails really sent to the SMTP capture server by a real
worker, a human click and a bot click on them, scores computed, a handoff."""
from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select
from support.tracking import BROWSER, visible_links
from werkzeug.serving import make_server

from nurture_mail.jobs.schedule import cron_table
from nurture_mail.models import Lead
from nurture_mail.nurture.suppression import suppress

from .conftest import add_users

ROOT = Path(__file__).resolve().parents[2]

NORA = "nora@quinnfreight.example"
LEADS = [
    dict(email=NORA, first_name="Nora", last_name="Quinn", title="Head of Cloud Security", company="Quinn Freight",
         region="EMEA", industry_naics="511210", employees=800, revenue=50_000_000, lead_source="webinar",
         timezone="Europe/London", qualification={"budget": "approved for Q3", "pain_validated": "audit findings"}),
    dict(email="liam@harborbank.example", first_name="Liam", last_name="Ortiz", title="CISO", company="Harbor Bank",
         region="AMER", employees=2400, lead_source="trade-show", timezone="America/New_York"),
    dict(email="priya@tallyhealth.example", first_name="Priya", last_name="Shah", title="DevOps Lead",
         company="Tally Health", region="AMER", employees=150, lead_source="webinar", timezone="America/Chicago"),
    dict(email="omar@brightlane.example", first_name="Omar", last_name="Haddad", title="IT Manager",
         company="Brightlane", region="EMEA", employees=60, lead_source="content", timezone="Europe/Berlin"),
    dict(email="info@rivetworks.example", first_name=None, last_name=None, title=None, company="Rivet Works",
         region="AMER", lead_source="trade-show", timezone="America/Denver", hygiene=["role_account"]),
]

TEAM = """\
reps:
  - {email: ava@sales.example, name: Ava Chen, incoming: true, manager: mo@sales.example}
  - {email: mo@sales.example, name: Mo Blake}
territories:
  - {name: Europe, region: EMEA, owner: mo@sales.example}
"""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def http_get(url: str, user_agent: str = BROWSER) -> int:
    """A GET over a real socket without following redirects (tracked links point outside)."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers={"User-Agent": user_agent}), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@contextmanager
def serve(app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="web-live", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def drain(platform) -> None:
    """What rq cron does every EVENT_DRAIN_INTERVAL seconds: ingest tracked events, then a worker pass."""
    [job] = [e["func"] for e in cron_table(platform.svc.config) if e["name"] == "nurture-tracking-drain"]
    platform.svc.queue.enqueue(job)
    platform.work()


def lead_id(platform, email: str) -> int:
    with platform.svc.db.session() as session:
        return session.scalar(select(Lead.id).where(Lead.email == email))


def seed(platform, tmp_path: Path) -> None:
    """Users, a sales team, five leads, three enrolled with first emails sent, a suppression."""
    from nurture_mail.sales.team import sync_sales_team

    add_users(platform.app)
    team = tmp_path / "team.yaml"
    team.write_text(TEAM, encoding="utf-8")
    now = platform.clock.now()
    with platform.svc.db.session() as session:
        sync_sales_team(session, team, now)
    from nurture_mail.leads.service import patch_lead

    for values in LEADS:
        values = dict(values)
        email = values.pop("email")
        qualification = values.pop("qualification", None)
        hygiene = values.pop("hygiene", None)
        ident = platform.add_lead(email, **values)
        with platform.svc.db.session() as session:
            lead = session.get(Lead, ident)
            if qualification:
                patch_lead(session, lead, {"qualification": qualification}, now)
            if hygiene:
                lead.hygiene = hygiene  # as the importer's hygiene check leaves it
    platform.enroll(NORA)
    platform.enroll("liam@harborbank.example", knows=("cloud-risk-landscape",))
    platform.enroll("priya@tallyhealth.example")
    with platform.svc.db.session() as session:
        suppress(session, "former.customer@oldco.example", now, reason="complaint", source="feedback-loop")
    platform.tick_and_work()


def human_click(platform, base_url: str, email: str) -> str:
    """Follow the first tracked content link of the lead's latest email, as a person would; returns its text."""
    latest = platform.received(to=email)[-1]
    for text, link in visible_links(latest.html).items():
        if "/c/" in link.path:
            status = http_get(base_url + link.path)
            assert status == 302, (text, status)
            return text
    raise AssertionError("no tracked link in the email")
