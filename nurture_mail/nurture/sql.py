"""Dialect-aware statements used by the scheduler and the sender."""
from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Result, Select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignoring_conflicts(session: Session, model, conflict_columns: list[str]):
    """``INSERT … ON CONFLICT (cols) DO NOTHING`` for the session's backend."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(model).on_conflict_do_nothing(index_elements=conflict_columns)


def skip_locked(session: Session, statement: Select) -> Select:
    """On PostgreSQL, lock the selected rows and skip rows another tick holds.

    SQLite serializes writers, so two ticks there cannot interleave their writes anyway.
    """
    if session.get_bind().dialect.name == "postgresql":
        return statement.with_for_update(skip_locked=True)
    return statement


def rows_changed(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE changed (``Session.execute`` is typed as returning a plain Result)."""
    return cast(CursorResult[Any], result).rowcount
