"""Campaign commands: sync definitions from files, preview a lead's journey."""
from __future__ import annotations

import click

from .. import services
from ..campaigns import CampaignLoader, sync_all
from ..campaigns.sync import SyncResult
from ..exceptions import Problem
from ..nurture.preview import journey_for
from .common import with_app


def sync_from_files() -> tuple[SyncResult, list[Problem]]:
    svc = services()
    loader = CampaignLoader(svc.config.templates_dir, root=svc.config.campaigns_dir.parent)
    specs, problems = loader.load_dir(svc.config.campaigns_dir)
    with svc.db.session() as session:
        result = sync_all(session, specs, svc.clock.now())
    return result, problems


@click.command("sync-campaigns")
@with_app
def sync_campaigns_command() -> None:
    """Validate campaigns/*.yaml and sync valid ones into the database."""
    result, problems = sync_from_files()
    for slug in result.created:
        click.echo(f"created   {slug}")
    for slug in result.updated:
        click.echo(f"updated   {slug}")
    for slug in result.unchanged:
        click.echo(f"unchanged {slug}")
    if problems:
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        raise click.ClickException(f"{len(problems)} error(s) in campaign files; those files were not synced")


@click.command("preview")
@click.argument("email")
@click.argument("campaign")
@with_app
def preview_command(email: str, campaign: str) -> None:
    """Show what EMAIL would receive next in CAMPAIGN, when, and why steps are skipped."""
    svc = services()
    with svc.db.session() as session:
        preview = journey_for(session, svc, email, campaign)
    click.echo(f"{preview.lead_email} in {preview.campaign_slug} ({preview.state}), "
               f"timezone {preview.timezone}, {preview.touches_sent} touch(es) sent")
    for topic, level in sorted(preview.knowledge.items()):
        click.echo(f"  knows  {topic:<28} {level}")
    if preview.touches:
        click.echo("upcoming:")
    for touch in preview.touches:
        click.echo(f"  {touch.send_at:%Y-%m-%d %H:%M} UTC  ({touch.local_time})  {touch.step_key:<28} {touch.reason}")
    for skip in preview.skipped:
        click.echo(f"  skip   {skip.step_key:<28} {skip.reason}")
    click.echo(f"then: {preview.outcome}")
