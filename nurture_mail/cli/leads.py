"""Lead commands: import a CSV, enroll a lead."""
from __future__ import annotations

from pathlib import Path

import click

from .. import services
from ..exceptions import NurtureError
from ..leads.importer import import_rows, read_rows
from ..models import Lead
from ..nurture.enroll import enroll, find_campaign, find_lead
from .common import with_app


@click.command("import-leads")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", required=True, help="Lead source to record (trade show, webinar, list …).")
@click.option("--campaign", "campaign_slug", help="Enroll every imported lead in this campaign.")
@with_app
def import_leads_command(file: Path, source: str, campaign_slug: str | None) -> None:
    """Import leads from FILE.csv (columns by header name; `email` required)."""
    svc = services()
    now = svc.clock.now()
    _, rows = read_rows(file)
    with svc.db.session() as session:
        campaign = find_campaign(session, campaign_slug) if campaign_slug else None
        with click.progressbar(length=len(rows), label="importing", file=click.get_text_stream("stderr")) as bar:
            report = import_rows(session, rows, source, now, progress=bar.update)
        enrolled, not_enrolled, done = 0, [], set()
        if campaign is not None:
            for row in report.rows:
                if row.lead_id is None or row.lead_id in done:
                    continue
                done.add(row.lead_id)
                lead = session.get(Lead, row.lead_id)
                try:
                    with session.begin_nested():
                        enroll(session, lead, campaign, now, source="import", declared_by=f"import:{source}",
                               default_timezone=svc.config.default_timezone)
                    enrolled += 1
                except NurtureError as exc:
                    not_enrolled.append(f"row {row.row}: {exc}")
    for row in report.rows:
        if row.outcome == "rejected" or row.reason:
            click.echo(f"{row.outcome:<9} {row.reason}", err=True)
    for line in not_enrolled:
        click.echo(f"not enrolled: {line}", err=True)
    click.echo(f"{file.name}: {report.summary()}" + (f"; {enrolled} enrolled in {campaign_slug}" if campaign else ""))


@click.command("enroll")
@click.argument("email")
@click.argument("campaign")
@click.option("--knows", default="", help="Comma-separated topics the prospect already knows (skipped).")
@click.option("--by", "declared_by", default="cli", help="Who declares the knowledge (a sales rep).")
@with_app
def enroll_command(email: str, campaign: str, knows: str, declared_by: str) -> None:
    """Enroll the lead EMAIL in CAMPAIGN, declaring what the prospect already knows."""
    svc = services()
    with svc.db.session() as session:
        lead = find_lead(session, email)
        target = find_campaign(session, campaign)
        enrollment = enroll(session, lead, target, svc.clock.now(), knows=knows.split(","),
                            declared_by=declared_by, source="sales", default_timezone=svc.config.default_timezone)
        click.echo(f"{lead.email} enrolled in {target.slug}; first touch due {enrollment.next_send_at:%Y-%m-%d %H:%M} UTC")


@click.command("lead")
@click.argument("email")
@with_app
def lead_command(email: str) -> None:
    """Show a lead: status, enrollments, what they know, and their timeline (bots flagged, with why)."""
    from ..nurture.timeline import lead_story

    svc = services()
    with svc.db.session() as session:
        story = lead_story(session, email)
    click.echo(f"{story.email}  {story.name}  {story.company}  status={story.status}  tz={story.timezone or '-'}")
    for line in story.enrollments:
        click.echo(f"  enrolled  {line}")
    for topic, level in sorted(story.knowledge.items()):
        click.echo(f"  knows     {topic:<28} {level}")
    for entry in story.entries:
        click.echo(f"  {entry.at:%Y-%m-%d %H:%M:%S}  {entry.kind:<10} {entry.text}")
