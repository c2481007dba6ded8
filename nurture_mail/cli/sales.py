"""Sales team commands: sync the team file, list handoffs, act on one."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from sqlalchemy import select

from .. import services
from ..clock import real_seconds
from ..models import Handoff, HandoffAction, HandoffState, Lead, SalesRep, WebhookDelivery
from .common import with_app

commands: list[click.Command] = []


@click.command("sync-sales-team")
@click.option("--file", "path", type=click.Path(dir_okay=False, path_type=Path),
              help="The team file (default: SALES_TEAM_PATH, campaigns/sales_team.yaml).")
@with_app
def sync_sales_team_command(path: Path | None) -> None:
    """Create or update reps and territories from the sales team file (safe to run again)."""
    from ..sales.team import sync_sales_team

    svc = services()
    path = path or svc.config.sales_team_path
    with svc.db.session() as session:
        report = sync_sales_team(session, path, svc.clock.now())
    click.echo(f"{path}: {report.summary()}")
    for email in report.retired:
        click.echo(f"  retired (not in the file any more): {email}")


def _age(delta_seconds: float) -> str:
    seconds = max(delta_seconds, 0.0)
    if seconds < 60:
        return f"{int(seconds)}s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m"
    if minutes < 48 * 60:
        return f"{minutes // 60}h{minutes % 60:02d}"
    return f"{minutes // 1440}d"


def _real(start: datetime, end: datetime) -> float:
    """Real seconds from ``start`` to ``end`` on the app's clock (a demo clock runs faster), never negative."""
    return max(real_seconds(services().clock, end - start), 0.0)


def _sla(handoff: Handoff, now: datetime) -> str:
    if handoff.first_action_at is not None:
        met = handoff.sla_due_at is None or handoff.first_action_at <= handoff.sla_due_at
        took = _age(_real(handoff.created_at, handoff.first_action_at))
        return f"acted in {took}" + ("" if met else " (late)")
    if handoff.sla_due_at is None:
        return "-"
    if handoff.escalated_at is not None:
        return "escalated"
    if handoff.sla_due_at <= now:
        return "overdue"
    return f"due {handoff.sla_due_at:%m-%d %H:%M}"


@click.command("handoffs")
@click.option("--state", type=click.Choice([s.value for s in HandoffState]), help="Only handoffs in this state.")
@click.option("--limit", default=50, show_default=True, help="Most recent first.")
@with_app
def handoffs_command(state: str | None, limit: int) -> None:
    """List handoffs: state, rep, age, SLA, notification latency and webhook status."""
    svc = services()
    now = svc.clock.now()
    with svc.db.session() as session:
        query = (select(Handoff, Lead.email, SalesRep.email).join(Lead, Lead.id == Handoff.lead_id)
                 .outerjoin(SalesRep, SalesRep.id == Handoff.rep_id).order_by(Handoff.id.desc()).limit(limit))
        if state:
            query = query.where(Handoff.state == HandoffState(state))
        rows = session.execute(query).tuples().all()
        hooks: dict[int, WebhookDelivery] = {}
        #: the notification latency in real seconds, as the notifying process measured it
        measured: dict[int, float] = {}
        if rows:
            for handoff_id, detail in session.execute(select(HandoffAction.handoff_id, HandoffAction.detail).where(
                    HandoffAction.handoff_id.in_([h.id for h, _, _ in rows]), HandoffAction.action == "notified")):
                if (detail or {}).get("kind") == "new" and isinstance(detail.get("latency_seconds"), (int, float)):
                    measured[handoff_id] = max(float(detail["latency_seconds"]), 0.0)
            for delivery in session.scalars(select(WebhookDelivery).where(
                    WebhookDelivery.handoff_id.in_([h.id for h, _, _ in rows])).order_by(WebhookDelivery.id)):
                if delivery.handoff_id is not None:
                    hooks[delivery.handoff_id] = delivery
        if not rows:
            click.echo("no handoffs")
            return
        click.echo(f"{'id':>5}  {'lead':<32} {'state':<9} {'rep':<28} {'age':>5}  {'sla':<18} {'latency':>8}  webhook")
        for handoff, lead_email, rep_email in rows:
            latency = "-"
            if handoff.id in measured:
                latency = f"{measured[handoff.id]:.1f}s"
            elif handoff.notified_at and handoff.triggered_at:
                latency = f"{_real(handoff.triggered_at, handoff.notified_at):.1f}s"
            elif handoff.rep_id and not handoff.notified_at:
                latency = "pending"
            hook = hooks.get(handoff.id)
            webhook = "-"
            if hook is not None:
                webhook = f"{hook.status} ({hook.attempts} attempt{'s' if hook.attempts != 1 else ''})"
                if hook.status != "delivered" and hook.last_error:
                    webhook += f": {hook.last_error[:60]}"
            click.echo(f"{handoff.id:>5}  {lead_email[:32]:<32} {handoff.state.value:<9} "
                       f"{(rep_email or 'UNASSIGNED')[:28]:<28} {_age(_real(handoff.created_at, now)):>5}  "
                       f"{_sla(handoff, now):<18} {latency:>8}  {webhook}")
        ahead = sum(1 for handoff, _, _ in rows if handoff.created_at > now)
        if ahead:
            click.echo(f"note: {ahead} handoff(s) dated after this clock's now ({now:%Y-%m-%d %H:%M} UTC), "
                       "shown as age 0m: the data was made on a demo clock; run with its CLOCK_SPEED and "
                       "CLOCK_EPOCH to read it on that clock", err=True)


@click.command("handoff")
@click.argument("target")
@click.argument("action", type=click.Choice(["accept", "reject", "won", "lost"]))
@click.option("--kind", type=click.Choice(["not_ready", "bad_fit"]), help="For reject.")
@click.option("--reason", default="", help="For reject and lost.")
@click.option("--value", help="Deal value, for won.")
@click.option("--actor", default="cli", show_default=True, help="Who acts (recorded).")
@with_app
def handoff_command(target: str, action: str, kind: str | None, reason: str, value: str | None, actor: str) -> None:
    """Act on a handoff named by TARGET: its id, or the lead's email (its latest handoff)."""
    from ..sales import actions
    from ..sales.actions import HandoffActionError

    svc = services()
    now = svc.clock.now()
    with svc.db.session() as session:
        if target.isdigit():
            handoff = session.get(Handoff, int(target))
        else:
            handoff = session.scalar(select(Handoff).join(Lead, Lead.id == Handoff.lead_id)
                                     .where(Lead.email == target.strip().lower()).order_by(Handoff.id.desc()).limit(1))
        if handoff is None:
            raise click.ClickException(f"no handoff {target!r} (give a handoff id or a lead email)")
        if action == "accept":
            actions.accept(session, handoff, actor, "cli", now)
        elif action == "reject":
            if kind is None:
                raise HandoffActionError("--kind not_ready or bad_fit is required", field="kind")
            actions.reject(session, svc, handoff, actor, "cli", kind, reason, now)
        elif action == "won":
            actions.mark_won(session, handoff, actor, "cli", value, now)
        else:
            actions.mark_lost(session, handoff, actor, "cli", reason, now)
        click.echo(f"handoff #{handoff.id}: {handoff.state.value}")


@click.command("webhook-secret")
@with_app
def webhook_secret_command() -> None:
    """Print the key that signs the sales webhook, to configure the receiver with.

    SALES_WEBHOOK_SECRET when set; otherwise a key derived from SECRET_KEY
    (HMAC-SHA256(SECRET_KEY, "nurture.sales.webhook"), hex), never SECRET_KEY itself.
    """
    from ..sales.destinations.webhook import webhook_secret_text

    config = services().config
    source = "SALES_WEBHOOK_SECRET" if config.sales_webhook_secret else "derived from SECRET_KEY"
    click.echo(webhook_secret_text(config))
    click.echo(f"({source}; verify X-Nurture-Signature = sha256=HMAC-SHA256(key, \"<timestamp>.<body>\"))",
               err=True)


@click.command("hand-to-nurture")
@click.argument("email")
@click.argument("campaign")
@click.option("--knows", default="", help="Comma-separated topics the prospect already knows (skipped).")
@click.option("--actor", default="cli", show_default=True, help="Who hands the lead over (recorded).")
@with_app
def hand_to_nurture_command(email: str, campaign: str, knows: str, actor: str) -> None:
    """A rep sends the lead EMAIL (back) to nurture in CAMPAIGN (the API's hand-to-nurture)."""
    from ..nurture.enrollments import find_lead
    from ..sales import actions

    svc = services()
    with svc.db.session() as session:
        lead = find_lead(session, email)
        enrollment = actions.hand_to_nurture(session, svc, lead, campaign, knows.split(","), actor, svc.clock.now())
        click.echo(f"{lead.email} handed to nurture in {campaign}; enrollment {enrollment.id}, "
                   f"first touch due {enrollment.next_send_at:%Y-%m-%d %H:%M} UTC")


commands.extend([sync_sales_team_command, handoffs_command, handoff_command, hand_to_nurture_command])
commands.append(webhook_secret_command)
