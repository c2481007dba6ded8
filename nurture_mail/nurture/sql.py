"""Dialect-aware statements used by the scheduler and the sender."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Integer,
    Result,
    Select,
    String,
    Table,
    any_,
    func,
    literal,
    select,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignoring_conflicts(session: Session, model, conflict_columns: list[str]):
    """``INSERT … ON CONFLICT (cols) DO NOTHING`` for the session's backend."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(model).on_conflict_do_nothing(index_elements=conflict_columns)


def skip_locked(session: Session, statement: Select, of: Any = None) -> Select:
    """On PostgreSQL, lock the selected rows (of the table ``of``, when the statement joins) and
    skip rows another tick holds.

    SQLite serializes writers, so two ticks there cannot interleave their writes anyway.
    """
    if session.get_bind().dialect.name == "postgresql":
        return statement.with_for_update(skip_locked=True, of=of)
    return statement


def int_array(values: Iterable[int]) -> ColumnElement[Any]:
    """A PostgreSQL ``integer[]`` parameter, sent as its text form (``'{1,2,3}'``).

    The driver's list adapter converts element by element (a few microseconds each, 2 s of a
    100k tick); one ``str.join`` costs a tenth of a microsecond per id.
    """
    text_form = "{" + ",".join(str(int(value)) for value in values) + "}"
    return sql_cast(literal(text_form, String()), postgresql.ARRAY(Integer))


def among(session: Session, column, ids: Iterable[int]) -> ColumnElement[bool]:
    """``column IN (ids)``; on PostgreSQL ``column = ANY(:array)``, one parameter for the whole list.

    A 500-value IN list is 500 bound parameters to render, convert and send per statement (and a
    new statement text for every list length); the array is one.
    """
    values = list(ids)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(int_array(values))
    return column.in_(values)


def insert_rows_ignoring_conflicts(session: Session, table: Table, rows: list[dict[str, Any]],
                                   conflict_columns: list[str]) -> None:
    """Insert ``rows`` (same keys each) with ``ON CONFLICT (cols) DO NOTHING``, in one statement.

    On PostgreSQL: ``INSERT … SELECT unnest(:col1), unnest(:col2), …``, one array parameter per
    column, so 500 rows cost one statement to convert and one to run, not 500 (an executemany
    runs the statement once per row, a multi-row VALUES binds rows × columns parameters).
    Elsewhere: an executemany (SQLite runs it in C).
    """
    if not rows:
        return
    statement = insert_ignoring_conflicts(session, table, conflict_columns)
    if session.get_bind().dialect.name != "postgresql":
        session.execute(statement, rows)
        return
    columns = list(rows[0])
    arrays = [func.unnest(literal([row[name] for row in rows], postgresql.ARRAY(table.c[name].type)))
              for name in columns]
    insert = postgresql.insert(table).from_select(columns, select(*arrays))
    session.execute(insert.on_conflict_do_nothing(index_elements=conflict_columns))


def insert_columns_returning_ids(session: Session, table: Table, columns: dict[str, list[int]],
                                 constants: dict[str, Any], conflict_columns: list[str]) -> list[int]:
    """Insert one row per position of the integer ``columns`` (each row also gets ``constants``)
    with ``ON CONFLICT (cols) DO NOTHING``; returns the ids of the rows inserted.

    On PostgreSQL one statement, whatever the count: ``INSERT … SELECT unnest(:ints1::int[]), …,
    :constant1, … RETURNING id``, each integer column one parameter in its text form and each
    constant one scalar (not an array of a repeated value to convert). Elsewhere multi-row VALUES
    at the driver level (``leads/bulk.py``).
    """
    count = len(next(iter(columns.values()))) if columns else 0
    if not count:
        return []
    if session.get_bind().dialect.name != "postgresql":
        # At the driver: each constant converted once (a tick's three timestamps were converted
        # per row by SQLAlchemy's executemany), rows as VALUES lists (``leads/bulk.py``).
        from ..leads.bulk import Bulk

        rows = [(*values, *constants.values()) for values in zip(*columns.values())]
        return [row[0] for row in Bulk(session).insert(table, [*columns, *constants], rows,
                                                        on_conflict_do_nothing=conflict_columns, returning=["id"])]
    selected: list[Any] = [func.unnest(int_array(values)) for values in columns.values()]
    selected += [literal(value, table.c[name].type) for name, value in constants.items()]
    insert = postgresql.insert(table).from_select([*columns, *constants], select(*selected))
    return list(session.scalars(insert.on_conflict_do_nothing(index_elements=conflict_columns).returning(table.c.id)))


#: Rows written by one bulk operation above which the planner's statistics are refreshed.
ANALYZE_AFTER_ROWS = 1000


def analyze_after_bulk(database, tables: list[str], rows: int) -> bool:
    """``ANALYZE`` the tables on PostgreSQL after a bulk load of ``rows`` rows; True if it ran.

    Autovacuum's ANALYZE comes late after a bulk load, and until then the planner believes the
    tables as they were (say, empty): a tick over 100k fresh enrollments then joins deliveries
    with a nested loop over "one row". SQLite plans without statistics of this kind: nothing to do.
    """
    if rows < ANALYZE_AFTER_ROWS or database.engine.dialect.name != "postgresql":
        return False
    with database.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        for table in tables:
            connection.exec_driver_sql(f'ANALYZE "{table}"')
    return True


def rows_changed(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE changed (``Session.execute`` is typed as returning a plain Result)."""
    return cast(CursorResult[Any], result).rowcount
