"""Enrollment commands: pause, resume or exit one enrollment (the API's transitions)."""
from __future__ import annotations

import click

from .. import services
from ..nurture import enrollments
from .common import with_app


@click.command("enrollment")
@click.argument("action", type=click.Choice(["pause", "resume", "exit"]))
@click.argument("target")
@click.argument("campaign", required=False)
@click.option("--reason", help="Why (kept on the enrollment; pause and exit).")
@click.option("--by", default="cli", show_default=True, help="Who acts (recorded in the reason by default).")
@with_app
def enrollment_command(action: str, target: str, campaign: str | None, reason: str | None, by: str) -> None:
    """Pause, resume or exit an enrollment: TARGET is its id, or a lead's EMAIL followed by CAMPAIGN.

    Exit cancels the enrollment's queued deliveries; enrolling again re-activates it.
    """
    svc = services()
    now = svc.clock.now()
    with svc.db.session() as session:
        if target.isdigit() and campaign is None:
            enrollment = enrollments.find_enrollment(session, enrollment_id=int(target))
        elif campaign is None:
            raise click.UsageError("give an enrollment id, or a lead's EMAIL and a CAMPAIGN")
        else:
            enrollment = enrollments.find_enrollment(session, email=target, campaign=campaign)
        if action == "pause":
            enrollments.pause(session, enrollment, now, by=by, reason=reason)
        elif action == "resume":
            enrollments.resume(session, enrollment, now, by=by, default_timezone=svc.config.default_timezone,
                               source="cli")
        else:
            enrollments.exit_enrollment(session, enrollment, now, by=by, reason=reason)
        line = f"enrollment {enrollment.id}: {enrollment.state.value}"
        if enrollment.next_send_at is not None:
            line += f"; next touch due {enrollment.next_send_at:%Y-%m-%d %H:%M} UTC"
    click.echo(line)
