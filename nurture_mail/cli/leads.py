"""Lead commands: import a CSV (and resume one), enroll a lead, show, update or erase a lead."""
from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import select

from .. import services
from ..models import ImportRowResult
from ..nurture import enrollments
from .common import with_app

#: Rows with a reason printed under the summary; the report has all of them.
PROBLEM_LINES = 20


@click.command("import-leads")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", required=True, help="Lead source to record (trade show, webinar, list …).")
@click.option("--campaign", "campaign_slug", help="Enroll every clean imported lead in this campaign.")
@click.option("--map", "mappings", multiple=True, metavar="COLUMN=FIELD",
              help="Map a column to a field (repeatable), e.g. --map 'Contact=email'; FIELD may be "
                   "custom:<name> or ignore.")
@click.option("--check-deliverability", is_flag=True, default=None,
              help="Also check that each address's domain has MX/A records (needs network).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write the row-by-row report (CSV, safe to open in a spreadsheet) to this file.")
@with_app
def import_leads_command(file: Path, source: str, campaign_slug: str | None, mappings: tuple[str, ...],
                         check_deliverability: bool | None, report_path: Path | None) -> None:
    """Import leads from FILE.csv: the same code as an uploaded import job, run here with a progress bar.

    Columns are matched by header (email, E-mail, Email Address, First Name, Company Name, …; see
    docs/import.md). Exits non-zero, with one line saying why, only when the file itself is unusable.
    """
    from ..leads.imports import create_import, import_progress, report_csv, run_import, summary_line

    svc = services()
    _report_interrupted(svc)
    mapping = {}
    for item in mappings:
        column, sep, target = item.partition("=")
        if not sep or not column.strip():
            raise click.BadParameter(f"expected COLUMN=FIELD, got {item!r}", param_hint="--map")
        mapping[column.strip()] = target.strip()
    with svc.db.session() as session:
        job = create_import(svc, session, filename=file.name, data=file.read_bytes(), lead_source=source,
                            campaign_slug=campaign_slug, mapping=mapping, check_deliverability=check_deliverability,
                            created_by="cli", now=svc.clock.now())
        import_id, total = job.id, job.total_rows
    with click.progressbar(length=total or 0, label=f"importing {file.name}",
                           file=click.get_text_stream("stderr")) as bar:
        job = run_import(svc, import_id, progress=bar.update)
    info = import_progress(job)
    counts = info["counts"]
    with svc.db.session() as session:
        problems = session.execute(
            select(ImportRowResult.row, ImportRowResult.outcome, ImportRowResult.reason)
            .where(ImportRowResult.import_id == import_id, ImportRowResult.reason.is_not(None))
            .order_by(ImportRowResult.row).limit(PROBLEM_LINES + 1)).all()
        for row, outcome, reason in problems[:PROBLEM_LINES]:
            click.echo(f"row {row}: {outcome}: {reason}", err=True)
        if len(problems) > PROBLEM_LINES:
            click.echo(f"… more in the report{'' if report_path else ' (use --report FILE)'}", err=True)
        if report_path:
            with report_path.open("w", encoding="utf-8", newline="") as out:
                for line in report_csv(session, import_id):
                    out.write(line)
    line = f"{file.name}: {summary_line(counts, info['processed_rows'])}"
    if campaign_slug:
        line += f"; {counts.get('enrolled', 0)} enrolled in {campaign_slug}"
    click.echo(line + f" (import {import_id})")
    if report_path:
        click.echo(f"report: {report_path}")


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
        lead = enrollments.find_lead(session, email)
        target = enrollments.find_campaign(session, campaign)
        enrollment = enrollments.enroll(session, lead, target, svc.clock.now(), by=declared_by, knows=knows.split(","),
                                        source="sales", default_timezone=svc.config.default_timezone)
        click.echo(f"{lead.email} enrolled in {target.slug}; first touch due {enrollment.next_send_at:%Y-%m-%d %H:%M} UTC")


@click.command("lead")
@click.argument("email")
@with_app
def lead_command(email: str) -> None:
    """Show a lead: status, scores with their breakdown, handoffs, enrollments, what they know, and
    their timeline (bots flagged, with why)."""
    from sqlalchemy import select

    from ..models import Handoff, LeadScore, SalesRep
    from ..nurture.enroll import find_lead
    from ..nurture.timeline import lead_story

    svc = services()
    with svc.db.session() as session:
        story = lead_story(session, email)
        lead = find_lead(session, email)
        score = session.get(LeadScore, lead.id)
        handoffs = session.execute(
            select(Handoff, SalesRep.email).outerjoin(SalesRep, SalesRep.id == Handoff.rep_id)
            .where(Handoff.lead_id == lead.id).order_by(Handoff.created_at)
        ).tuples().all()
        hygiene = list(lead.hygiene or [])
    click.echo(f"{story.email}  {story.name}  {story.company}  status={story.status}  tz={story.timezone or '-'}")
    if hygiene:
        click.echo(f"  hygiene   {', '.join(hygiene)} (never enrolled nor handed off)")
    if score is None:
        click.echo("  score     not scored yet")
    else:
        click.echo(f"  score     fit {score.fit:g}, engagement {score.engagement:g} "
                   f"(as of {score.computed_at:%Y-%m-%d %H:%M} UTC)")
        for kind, lines in (("fit", score.fit_breakdown), ("engagement", score.engagement_breakdown)):
            for line in lines:
                click.echo(f"    {kind:<10} {line.get('text') or line.get('reason')}")
    for handoff, rep in handoffs:
        click.echo(f"  handoff   #{handoff.id} {handoff.state.value} to {rep or 'unassigned'} "
                   f"on {handoff.created_at:%Y-%m-%d %H:%M} UTC: {handoff.reason_detail or handoff.reason}")
    for line in story.enrollments:
        click.echo(f"  enrolled  {line}")
    for topic, level in sorted(story.knowledge.items()):
        click.echo(f"  knows     {topic:<28} {level}")
    for entry in story.entries:
        click.echo(f"  {entry.at:%Y-%m-%d %H:%M:%S}  {entry.kind:<10} {entry.text}")


@click.command("import-resume")
@click.argument("import_id", type=int)
@click.option("--by", default="cli", show_default=True, help="Who asks (logged).")
@with_app
def import_resume_command(import_id: int, by: str) -> None:
    """Queue a failed import IMPORT_ID again for the worker: it resumes after its last committed chunk."""
    from ..leads.imports import resume_import

    svc = services()
    _report_interrupted(svc)
    with svc.db.session() as session:
        job = resume_import(svc, session, import_id, svc.clock.now(), by=by)
        done = job.processed_rows or 0
    click.echo(f"import {import_id} queued again; it resumes after row {done}")


def _report_interrupted(svc) -> None:
    """Imports left ``running`` by a runner that is gone (a killed CLI import) are marked failed, said here."""
    from ..leads.imports import recover_interrupted

    for job, why in recover_interrupted(svc, svc.clock.now()):
        click.echo(f"import {job.id} ({job.filename}) was interrupted after row {job.processed_rows or 0} of "
                   f"{job.total_rows or '?'} ({why}): marked failed; `python -m nurture_mail import-resume {job.id}` "
                   "resumes it on a worker, or import the file again (rows already imported come out unchanged)",
                   err=True)


def _changes(sets: tuple[str, ...], clears: tuple[str, ...]) -> dict[str, object]:
    """``--set employees=250 --set qualification.budget=approved --clear title`` as a patch."""
    changes: dict[str, object] = {}
    for item in sets:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise click.BadParameter(f"expected FIELD=VALUE, got {item!r}", param_hint="--set")
        _put(changes, name, value)
    for name in clears:
        _put(changes, name.strip(), None)
    if not changes:
        raise click.UsageError("nothing to change: give --set FIELD=VALUE or --clear FIELD")
    return changes


def _put(changes: dict[str, object], name: str, value: object) -> None:
    group, dot, key = name.partition(".")
    if dot and group in ("qualification", "custom_fields"):
        inner = changes.setdefault(group, {})
        assert isinstance(inner, dict)
        inner[key] = value
    else:
        changes[name] = value


@click.command("lead-update")
@click.argument("email")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE",
              help="Set a field (repeatable): first_name=Ada, employees=250, status=disqualified, "
                   "qualification.budget=approved, custom_fields.shoe=42.")
@click.option("--clear", "clears", multiple=True, metavar="FIELD", help="Clear a field (repeatable).")
@click.option("--by", default="cli", show_default=True, help="Who changes the lead.")
@with_app
def lead_update_command(email: str, sets: tuple[str, ...], clears: tuple[str, ...], by: str) -> None:
    """Change fields of the lead EMAIL, with the checks and status rules of the API's PATCH."""
    from ..leads import service

    changes = _changes(sets, clears)
    svc = services()
    with svc.db.session() as session:
        lead = enrollments.find_lead(session, email)
        service.patch_lead(session, lead, changes, svc.clock.now(), by=by)
        click.echo(f"{lead.email} updated ({', '.join(sorted(changes))}); status {lead.status.value}")


@click.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Confirm: the personal data cannot be recovered.")
@click.option("--by", default="cli", show_default=True, help="Who erases (recorded in the reason).")
@with_app
def erase_command(email: str, yes: bool, by: str) -> None:
    """GDPR erasure of the lead EMAIL: personal data goes, anonymous aggregates stay (as the API's erase)."""
    from ..leads import service

    if not yes:
        raise click.UsageError(f"erasing {email} cannot be undone: run again with --yes to confirm")
    svc = services()
    with svc.db.session() as session:
        lead = enrollments.find_lead(session, email)
        lead_id = lead.id
        erased = service.erase_lead(session, lead, svc.clock.now(), by=by, redis=svc.redis)
    click.echo(f"lead {lead_id} erased" if erased else f"lead {lead_id} was already erased")
