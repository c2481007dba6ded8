"""The migrations build exactly the schema the models declare (no drift either way)."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from nurture_mail.models import Base


# SQLite cannot reflect expression indexes, and alembic says so for each; ours are made on
# PostgreSQL only (``ddl_if``), where this test compares them.
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index:UserWarning")
def test_migrations_match_models(make_app, database_url):
    app = make_app(database_url)
    database = app.extensions["nurture"].db
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations differ; generate a migration: {diff}"
