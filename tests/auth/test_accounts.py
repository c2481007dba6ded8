"""Users, passwords, hashed API tokens, the permission table, and the user CLI commands."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from nurture_mail.auth.accounts import (
    authenticate_password,
    create_user,
    hash_token,
    issue_token,
    revoke_token,
    user_for_token,
)
from nurture_mail.auth.roles import PERMISSIONS, ROLE_PERMISSIONS, allowed, roles_with
from nurture_mail.exceptions import InvalidInput, NotFound
from nurture_mail.models import ApiToken, Role, User


@pytest.fixture
def db(make_app, database_url):
    return make_app(database_url).extensions["nurture"].db


def test_the_permission_table(db) -> None:
    assert ROLE_PERMISSIONS[Role.admin] == frozenset(PERMISSIONS)
    assert all(not allowed(Role.viewer, p) for p in PERMISSIONS if not p.endswith(":read"))
    assert allowed("marketer", "leads:write") and not allowed("marketer", "leads:erase")
    assert allowed("sales", "handoffs:act") and not allowed("sales", "leads:write")
    assert not allowed(None, "leads:read")
    assert roles_with("leads:erase") == ["admin"]
    with pytest.raises(KeyError):
        allowed("admin", "leads:delete")


def test_passwords_are_hashed_and_checked(db, clock) -> None:
    with db.session() as session:
        user = create_user(session, "Ana@Example.com", "Ana", "marketer", clock.now(), password="correct horse 1")
        assert user.email == "ana@example.com"
        assert user.password_hash and "correct horse" not in user.password_hash
    with db.session() as session:
        assert authenticate_password(session, "ana@example.com", "correct horse 1").id == user.id
        assert authenticate_password(session, "ana@example.com", "wrong") is None
        assert authenticate_password(session, "nobody@example.com", "correct horse 1") is None
        with pytest.raises(InvalidInput) as error:
            create_user(session, "ana@example.com", "Again", "viewer", clock.now())
        assert error.value.field == "email"
        with pytest.raises(InvalidInput) as error:
            create_user(session, "b@example.com", "B", "boss", clock.now())
        assert error.value.field == "role"
        with pytest.raises(InvalidInput) as error:
            create_user(session, "c@example.com", "C", "viewer", clock.now(), password="short")
        assert error.value.field == "password"
        api_only = create_user(session, "bot@example.com", "Bot", "viewer", clock.now())
        assert authenticate_password(session, "bot@example.com", "") is None and api_only.password_hash is None


def test_tokens_are_stored_hashed_and_revocable(db, clock) -> None:
    with db.session() as session:
        user = create_user(session, "sync@example.com", "Sync", "marketer", clock.now())
        issued = issue_token(session, user, "hubspot", clock.now())
    assert issued.secret.startswith("nm_") and len(issued.secret) > 40
    with db.session() as session:
        row = session.scalar(select(ApiToken))
        assert row.token_hash == hash_token(issued.secret) and issued.secret not in row.token_hash
        assert user_for_token(session, issued.secret, clock.now()).email == "sync@example.com"
        assert user_for_token(session, issued.secret + "x", clock.now()) is None
    with db.session() as session:
        assert session.scalar(select(ApiToken)).last_used_at == clock.now()
        revoke_token(session, issued.token.prefix, clock.now())
    with db.session() as session:
        assert user_for_token(session, issued.secret, clock.now()) is None
        with pytest.raises(NotFound):
            revoke_token(session, "nm_nothing", clock.now())
    with db.session() as session:
        session.get(User, user.id).active = False
        again = issue_token(session, session.get(User, user.id), "second", clock.now())
    with db.session() as session:
        assert user_for_token(session, again.secret, clock.now()) is None  # inactive user


def test_user_cli_commands(make_app, sqlite_url, monkeypatch, tmp_path) -> None:
    from nurture_mail.cli import main
    from nurture_mail.migrate import upgrade

    app = make_app(sqlite_url)
    upgrade(app.extensions["nurture"].db)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("SECRET_KEY", "cli-secret")
    runner = CliRunner()
    result = runner.invoke(main, ["create-user", "Rep@Example.com", "--role", "sales", "--name", "Rep"],
                           input="a-long-password\na-long-password\n")
    assert result.exit_code == 0, result.output
    assert "created sales rep@example.com" in result.output
    monkeypatch.setenv("NURTURE_USER_PASSWORD", "another-long-one")
    assert runner.invoke(main, ["create-user", "admin@example.com", "--role", "admin"]).exit_code == 0
    duplicate = runner.invoke(main, ["create-user", "rep@example.com", "--role", "viewer"])
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output

    created = runner.invoke(main, ["create-token", "rep@example.com", "--name", "crm"])
    assert created.exit_code == 0, created.output
    secret = [line for line in created.output.splitlines() if line.startswith("nm_")][0]
    listed = runner.invoke(main, ["list-tokens"])
    assert "rep@example.com" in listed.output and "active" in listed.output and secret not in listed.output
    token_id = created.output.split()[1]
    revoked = runner.invoke(main, ["revoke-token", token_id])
    assert revoked.exit_code == 0 and "revoked token" in revoked.output
    assert "revoked" in runner.invoke(main, ["list-tokens", "--email", "rep@example.com"]).output
    assert runner.invoke(main, ["create-token", "nobody@example.com", "--name", "x"]).exit_code == 1
    with app.extensions["nurture"].db.session() as session:
        assert user_for_token(session, secret, app.extensions["nurture"].clock.now()) is None


def test_set_user_changes_role_deactivates_and_resets_the_password(make_app, sqlite_url, tmp_path, monkeypatch) -> None:
    from nurture_mail.cli import main
    from nurture_mail.migrate import upgrade

    app = make_app(sqlite_url)
    svc = app.extensions["nurture"]
    upgrade(svc.db)
    with svc.db.session() as session:
        create_user(session, "boss@example.com", "Boss", "admin", svc.clock.now(), password="boss-password-1")
        user = create_user(session, "rep@example.com", "Rep", "sales", svc.clock.now(), password="old-password-1")
        secret = issue_token(session, user, "crm", svc.clock.now()).secret
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("SECRET_KEY", "cli-secret")
    runner = CliRunner()
    assert runner.invoke(main, ["set-user", "rep@example.com"]).exit_code == 2  # nothing to change

    result = runner.invoke(main, ["set-user", "rep@example.com", "--role", "marketer", "--inactive"])
    assert result.exit_code == 0, result.output
    assert "rep@example.com: marketer, inactive" in result.output
    with svc.db.session() as session:
        assert user_for_token(session, secret, svc.clock.now()) is None
        assert authenticate_password(session, "rep@example.com", "old-password-1") is None

    monkeypatch.setenv("NURTURE_USER_PASSWORD", "new-password-22")
    result = runner.invoke(main, ["set-user", "rep@example.com", "--active", "--reset-password"])
    assert result.exit_code == 0 and "password reset" in result.output, result.output
    with svc.db.session() as session:
        assert user_for_token(session, secret, svc.clock.now()).role == Role.marketer
        assert authenticate_password(session, "rep@example.com", "old-password-1") is None
        assert authenticate_password(session, "rep@example.com", "new-password-22") is not None

    last_admin = runner.invoke(main, ["set-user", "boss@example.com", "--inactive"])
    assert last_admin.exit_code == 1 and "last active admin" in last_admin.output
    assert runner.invoke(main, ["set-user", "nobody@example.com", "--inactive"]).exit_code == 1
    assert runner.invoke(main, ["set-user", "rep@example.com", "--role", "emperor"]).exit_code == 2
