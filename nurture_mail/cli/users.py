"""User and API token commands (admins): create-user, set-user, create-token, revoke-token, list-tokens."""
from __future__ import annotations

import click

from .. import services
from ..auth.accounts import create_user, find_user, issue_token, list_tokens, revoke_token, update_user
from ..models import Role
from .common import with_app

commands: list[click.Command] = []

#: Read by ``create-user`` when set, so scripts need not type a password at a prompt.
PASSWORD_ENV = "NURTURE_USER_PASSWORD"


#: The password given by $NURTURE_USER_PASSWORD (click reads the variable), for scripts.
_password_from_env = click.option("--password-from-env", "given_password", envvar=PASSWORD_ENV, default=None,
                                  hidden=True, show_envvar=False)


def _ask_password(prompt: str, given: str | None) -> str:
    """The password from $NURTURE_USER_PASSWORD (scripts), else asked twice at the terminal."""
    return given or click.prompt(prompt, hide_input=True, confirmation_prompt=True)


@click.command("create-user")
@click.argument("email")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True, help="What the user may do.")
@click.option("--name", default="", help="Display name (default: the email).")
@click.option("--password/--no-password", default=True, show_default=True,
              help=f"Ask for a password (or read ${PASSWORD_ENV}); --no-password makes an API-only user.")
@_password_from_env
@with_app
def create_user_command(email: str, role: str, name: str, password: bool, given_password: str | None) -> None:
    """Create a user who signs in to the web UI (and may get API tokens)."""
    secret = None
    if password:
        secret = _ask_password("Password", given_password)
    svc = services()
    with svc.db.session() as session:
        user = create_user(session, email, name, role, svc.clock.now(), password=secret)
        click.echo(f"created {user.role.value} {user.email}" + ("" if secret else " (API only, no password)"))


@click.command("set-user")
@click.argument("email")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=None, help="Change the role.")
@click.option("--active/--inactive", default=None,
              help="Reactivate, or deactivate: no sign-in, and none of the user's API tokens work.")
@click.option("--reset-password", is_flag=True, default=False,
              help=f"Set a new password (asked for, or read from ${PASSWORD_ENV}).")
@_password_from_env
@with_app
def set_user_command(email: str, role: str | None, active: bool | None, reset_password: bool,
                     given_password: str | None) -> None:
    """Change a user's role, deactivate or reactivate them, or reset their password."""
    if role is None and active is None and not reset_password:
        raise click.UsageError("nothing to change: give --role, --active/--inactive or --reset-password")
    secret = None
    if reset_password:
        secret = _ask_password("New password", given_password)
    svc = services()
    with svc.db.session() as session:
        user = update_user(session, email, role=role, active=active, password=secret)
        state = "active" if user.active else "inactive"
        click.echo(f"{user.email}: {user.role.value}, {state}" + (", password reset" if secret else ""))


@click.command("create-token")
@click.argument("email")
@click.option("--name", required=True, help="What the token is for (\"hubspot sync\").")
@with_app
def create_token_command(email: str, name: str) -> None:
    """Create an API token for a user; it is printed once and stored only as a hash."""
    svc = services()
    with svc.db.session() as session:
        user = find_user(session, email)
        issued = issue_token(session, user, name, svc.clock.now())
        click.echo(f"token {issued.token.id} ({issued.token.prefix}…) for {user.email} [{user.role.value}]:")
        click.echo(issued.secret)
        click.echo("Store it now: it cannot be shown again.", err=True)


@click.command("revoke-token")
@click.argument("token")
@with_app
def revoke_token_command(token: str) -> None:
    """Revoke a token by its id or prefix (see list-tokens); it stops working at once."""
    svc = services()
    with svc.db.session() as session:
        revoked = revoke_token(session, token, svc.clock.now())
        click.echo(f"revoked token {revoked.id} ({revoked.prefix}…) {revoked.name!r}")


@click.command("list-tokens")
@click.option("--email", default=None, help="Only this user's tokens.")
@with_app
def list_tokens_command(email: str | None) -> None:
    """Every API token: id, prefix, owner, name, created, last used, revoked."""
    svc = services()
    with svc.db.session() as session:
        tokens = list_tokens(session, email)
        if not tokens:
            click.echo("no API tokens")
            return
        for token in tokens:
            used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
            state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
            click.echo(f"{token.id:>4}  {token.prefix}…  {token.user.email:<32} {token.name:<24} "
                       f"created {token.created_at:%Y-%m-%d}  used {used}  {state}")


commands.extend([create_user_command, set_user_command, create_token_command, revoke_token_command, list_tokens_command])
