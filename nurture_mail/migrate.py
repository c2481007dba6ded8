"""Schema migrations with Alembic: the schema is created by migrations, never ``create_all``."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig

from .extensions import Database

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database: Database) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database.url.replace("%", "%%"))
    return cfg


def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the database to ``revision`` (idempotent)."""
    cfg = alembic_config(database)
    with database.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def schema_problem(database: Database) -> str | None:
    """Why the database cannot be used yet (not initialised, or migrations pending); None when ready."""
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect, text

    # Read directly (not through alembic's MigrationContext, which logs at INFO on every command).
    with database.engine.connect() as connection:
        current = set()
        if inspect(connection).has_table("alembic_version"):
            current = {row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))}
    if not current:
        return "the database is not initialised: run `python -m nurture_mail init` first"
    heads = set(ScriptDirectory.from_config(alembic_config(database)).get_heads())
    if current != heads:
        return "the database schema is out of date: run `python -m nurture_mail init` to migrate it"
    return None
