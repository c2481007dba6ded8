"""The worker's own start (nurture_mail/worker.py): what it finds without Alembic matches Alembic."""
from __future__ import annotations

from alembic.script import ScriptDirectory

from nurture_mail.extensions import Database
from nurture_mail.migrate import alembic_config, upgrade
from nurture_mail.worker import _schema_problem, _script_heads


def test_the_heads_read_from_the_scripts_are_alembics():
    heads = set(ScriptDirectory.from_config(alembic_config(Database("sqlite://"))).get_heads())
    assert _script_heads() == heads


def test_the_schema_check_says_ready_only_for_a_migrated_database(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        assert "not initialised" in (_schema_problem(database) or "")
        upgrade(database, "0001")
        assert "out of date" in (_schema_problem(database) or "")
        upgrade(database)
        assert _schema_problem(database) is None
    finally:
        database.dispose()


def test_a_worker_app_has_services_and_no_blueprints():
    from nurture_mail import create_worker_app
    from nurture_mail.config import Config

    app = create_worker_app(Config.from_env({}, secret_key="w", database_url="sqlite://"))
    assert "nurture" in app.extensions and not app.blueprints
