"""The import's (and the sender's ledger) writes at the driver level: a chunk's rows in one statement,
no per-row SQLAlchemy work.

SQLAlchemy Core spent more CPU per row on an import than the import itself (parameter dicts
built, compiled and type-processed per row, and on PostgreSQL a multi-row ``VALUES`` of
thousands of placeholders that psycopg then parses again). Here rows are tuples, converted
column by column with SQLAlchemy's own bind processors (so what is stored is what Core would
store: JSON text, UTC datetimes, enum values; a test compares the two), and sent straight to
the driver in the session's transaction:

- PostgreSQL: one statement per chunk whatever its size, one array parameter per column
  (``INSERT … SELECT * FROM unnest(%s::VARCHAR(320)[], …)``, ``UPDATE … FROM unnest(…)``);
- SQLite: ``executemany`` (the loop runs in C), or a multi-row ``VALUES … RETURNING`` when the
  generated ids are needed.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Table
from sqlalchemy.orm import Session

__all__ = ["Bulk", "SQLITE_MAX_PARAMETERS", "memoized"]

#: SQLite's default limit of bound parameters per statement (SQLITE_MAX_VARIABLE_NUMBER since 3.32).
SQLITE_MAX_PARAMETERS = 32766
#: column type -> its kind (class and arguments): the values of alike types are converted alike.
_KINDS: dict[Any, tuple[type, str]] = {}
#: ``(dialect name, table, column)`` -> the column's SQL type on that dialect (compiling one costs ~20 µs).
_SQL_TYPES: dict[tuple[str, str, str], str] = {}


class Bulk:
    """Batched INSERT / UPDATE of plain tuples on the session's connection (and transaction).

    One instance serves one unit of work: it remembers the driver value of every hashable value
    it converted (per column type), so a datetime written to three columns is converted once.
    """

    def __init__(self, session: Session) -> None:
        connection = session.connection()
        self.dialect = connection.dialect
        self.postgresql = self.dialect.name == "postgresql"
        self._dbapi = connection.connection
        self.mark = "%s" if self.postgresql else "?"
        self.quote = self.dialect.identifier_preparer.quote
        self._memos: dict[Any, dict[Any, Any]] = {}

    # -- values ---------------------------------------------------------------------------------

    def column_values(self, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
        """The rows as columns of driver values, through each column type's bind processor.

        Hashable values (datetimes, enums, booleans, None) are processed once per distinct value
        and kind of column type (same class, same arguments: ``sent_at`` and ``last_sent_at``
        share one conversion); JSON documents once per row.
        """
        result: list[list[Any]] = []
        for name, values in zip(columns, zip(*rows), strict=True):
            column_type = table.c[name].type
            if isinstance(column_type, JSON):  # as text on every backend (``pg_arrays`` sends text)
                processor = column_type.bind_processor(self.dialect)
            else:
                # The dialect's implementation, as Core's statements use: on SQLite a datetime becomes
                # SQLAlchemy's text ("2026-03-02 14:00:00.000000"), never the driver's own adaptation
                # (which drops ".000000" from a whole second).
                processor = column_type.dialect_impl(self.dialect).bind_processor(self.dialect)
            if processor is None:
                result.append(list(values))
            elif isinstance(column_type, JSON):
                empty: dict[type, Any] = {dict: processor({}), list: processor([])}  # most are {} or []
                result.append([processor(v) if v or v is None else empty.get(type(v)) or processor(v)
                               for v in values])
            else:
                result.append(memoized(processor, values, self._memo(column_type)))
        return result

    def value(self, table: Table, column: str, value: Any) -> Any:
        """One value as the driver takes it for ``column`` (see ``column_values``)."""
        return self.column_values(table, [column], [(value,)])[0][0]

    def _memo(self, column_type: Any) -> dict[Any, Any]:
        key = _KINDS.get(column_type)
        if key is None:  # the repr names the class's arguments (an Enum's values); making it costs ~30 µs
            key = _KINDS[column_type] = (type(column_type), repr(column_type))
        memo = self._memos.get(key)
        if memo is None:
            memo = self._memos[key] = {}
        return memo

    def result_processors(self, columns: Sequence[Any], description: Sequence[Any]) -> list[Callable[[Any], Any] | None]:
        """For raw rows of ``columns`` (table columns, in select order): what SQLAlchemy's result applies to each
        (the processor of the type's implementation for this dialect, as a Core result uses)."""
        return [column.type.dialect_impl(self.dialect).result_processor(self.dialect, d[1])
                for column, d in zip(columns, description, strict=True)]

    def pg_arrays(self, table: Table, columns: Sequence[str], values: list[list[Any]]) -> tuple[list[str], list[Any]]:
        """One array parameter per column: the SQL of each and the parameters.

        A column of text, whole numbers and (naive) timestamps goes as one string the server
        splits (``string_to_array``): joining in C is ~10× cheaper than psycopg's array dumper,
        which handles every element in Python. Any other column, or one whose text holds the
        separator or the null mark, goes as a binary array.
        """
        sql: list[str] = []
        params: list[Any] = []
        for name, column in zip(columns, values, strict=True):
            sql_type = self._sql_type(table, name)
            text = _joined(column)
            if text is None:
                sql.append(f"%b::{sql_type}[]")
                params.append(column)
            else:
                sql.append(f"string_to_array(%s, {_SEPARATOR_SQL}, {_NULL_SQL})::{sql_type}[]")
                params.append(text)
        return sql, params

    def _sql_type(self, table: Table, name: str) -> str:
        key = (self.dialect.name, table.name, name)
        found = _SQL_TYPES.get(key)
        if found is None:
            found = _SQL_TYPES[key] = table.c[name].type.compile(dialect=self.dialect)
        return found

    # -- raw statements -------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[tuple[Any, ...]], Any]:
        """Run ``sql`` on the session's driver connection: its rows (raw driver values) and the cursor's description."""
        cursor = self._dbapi.cursor()
        try:
            cursor.execute(sql, params)
            return [tuple(r) for r in cursor.fetchall()], cursor.description
        finally:
            cursor.close()

    def execute(self, sql: str, params: Sequence[Any] = (), *, many: bool = False) -> list[tuple[Any, ...]]:
        """Run ``sql`` on the session's driver connection (``many``: once per parameter set); its rows, if any."""
        cursor = self._dbapi.cursor()
        try:
            if many:
                cursor.executemany(sql, params)
                return []
            cursor.execute(sql, params)
            return [tuple(r) for r in cursor.fetchall()] if cursor.description is not None else []
        finally:
            cursor.close()

    # -- statements -----------------------------------------------------------------------------

    def insert(self, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
               on_conflict_do_nothing: Sequence[str] = (), returning: Sequence[str] = ()) -> list[tuple[Any, ...]]:
        """Insert ``rows`` (tuples in the order of ``columns``); the ``returning`` columns of each row inserted.

        With ``on_conflict_do_nothing`` (the conflict columns), a row that conflicts is skipped
        and returns nothing.
        """
        if not rows:
            return []
        values = self.column_values(table, columns, rows)
        into = f"INSERT INTO {self.quote(table.name)} ({', '.join(self.quote(c) for c in columns)}) "
        tail = ""
        if on_conflict_do_nothing:
            tail += f" ON CONFLICT ({', '.join(self.quote(c) for c in on_conflict_do_nothing)}) DO NOTHING"
        if returning:
            tail += f" RETURNING {', '.join(self.quote(c) for c in returning)}"
        cursor = self._dbapi.cursor()
        try:
            if self.postgresql:
                arrays, params = self.pg_arrays(table, columns, values)
                cursor.execute(f"{into}SELECT * FROM unnest({', '.join(arrays)}){tail}", params)
                return [tuple(r) for r in cursor.fetchall()] if returning else []
            tuples = list(zip(*values))
            if not returning:
                cursor.executemany(into + "VALUES (" + ", ".join("?" * len(columns)) + ")" + tail, tuples)
                return []
            found: list[tuple[Any, ...]] = []
            size = max(1, SQLITE_MAX_PARAMETERS // len(columns))
            one = "(" + ", ".join("?" * len(columns)) + ")"
            for start in range(0, len(tuples), size):
                batch = tuples[start:start + size]
                cursor.execute(into + "VALUES " + ", ".join([one] * len(batch)) + tail,
                               [v for row in batch for v in row])
                found.extend(tuple(r) for r in cursor.fetchall())
            return found
        finally:
            cursor.close()

    def next_ids(self, wanted: Sequence[tuple[Table, int]]) -> list[list[int]]:
        """PostgreSQL: ``n`` fresh ids from the ``id`` sequence of each ``(table, n)``, in one round trip.

        The rows can then be inserted with their ids without waiting for ``RETURNING`` (in a
        pipeline); an id drawn and not used is a gap, as after any rollback.
        """
        wanted = [(table, n) for table, n in wanted]
        if not any(n for _table, n in wanted):
            return [[] for _ in wanted]
        sql = ", ".join("array(SELECT nextval((SELECT pg_get_serial_sequence(%s, 'id'))::regclass) "
                        "FROM generate_series(1, %s))" for _ in wanted)
        params: list[Any] = []
        for table, n in wanted:
            params.extend((self.quote(table.name), n))
        cursor = self._dbapi.cursor()
        try:
            cursor.execute(f"SELECT {sql}", params)
            row = cursor.fetchone()
        finally:
            cursor.close()
        assert row is not None
        return [list(ids) for ids in row]

    def select_in(self, table: Table, columns: Sequence[str], key: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        """``SELECT columns FROM table WHERE key IN values``, raw driver values (for text and integer columns).

        On PostgreSQL a join on the values as one array parameter (``pg_arrays``), not thousands of parameters.
        """
        if not values:
            return []
        cursor = self._dbapi.cursor()
        try:
            if self.postgresql:
                # A join on the unnested array, not ``= ANY(array)``: with statistics that still say
                # "small table" (mid-import) the planner scans the table and compares every row
                # with every element; a join probes the index once per value.
                target = self.quote(table.name)
                (array,), params = self.pg_arrays(table, [key], [list(values)])
                cursor.execute(f"SELECT {', '.join(f'{target}.{self.quote(c)}' for c in columns)} FROM "
                               f"unnest({array}) AS wanted(k) "
                               f"JOIN {target} ON {target}.{self.quote(key)} = wanted.k", params)
                return [tuple(r) for r in cursor.fetchall()]
            head = f"SELECT {', '.join(self.quote(c) for c in columns)} FROM {self.quote(table.name)} " \
                   f"WHERE {self.quote(key)}"
            found: list[tuple[Any, ...]] = []
            for start in range(0, len(values), SQLITE_MAX_PARAMETERS):
                part = list(values[start:start + SQLITE_MAX_PARAMETERS])
                cursor.execute(f"{head} IN ({', '.join('?' * len(part))})", part)
                found.extend(tuple(r) for r in cursor.fetchall())
            return found
        finally:
            cursor.close()

    def update_changed(self, table: Table, key: str, rows: Sequence[dict[str, Any]]) -> None:
        """Each row ``{key: …, column: new value, …}`` changes only its own columns, in one statement.

        Rows may change different columns: each column is sent with a flag per row saying whether
        that row sets it (``SET c = CASE WHEN <flag> THEN <value> ELSE c END``), so a column a row
        does not change is never written from a stale read.
        """
        if not rows:
            return
        columns = sorted({c for row in rows for c in row if c != key})
        width = len(columns)
        flat = [(row[key], *(c in row for c in columns), *(row.get(c) for c in columns)) for row in rows]
        names = [key, *columns]
        keys_and_values = [tuple(r[0:1] + r[1 + width:]) for r in flat]
        values = self.column_values(table, names, keys_and_values)
        flags = [list(column) for column in zip(*(r[1:1 + width] for r in flat), strict=True)]
        target = self.quote(table.name)
        cursor = self._dbapi.cursor()
        try:
            if self.postgresql:
                arrays = [f"%b::{self._sql_type(table, key)}[]",
                          *(f"%b::{self._sql_type(table, c)}[]" for c in columns), *("%b::boolean[]" for _ in columns)]
                aliases = ["k", *(f"v{i}" for i in range(width)), *(f"f{i}" for i in range(width))]
                sets = ", ".join(f"{self.quote(c)} = CASE WHEN u.f{i} THEN u.v{i} ELSE {target}.{self.quote(c)} END"
                                 for i, c in enumerate(columns))
                cursor.execute(f"UPDATE {target} SET {sets} FROM unnest({', '.join(arrays)}) AS u({', '.join(aliases)}) "
                               f"WHERE {target}.{self.quote(key)} = u.k", [*values, *flags])
                return
            sets = ", ".join(f"{self.quote(c)} = CASE WHEN ? THEN ? ELSE {self.quote(c)} END" for c in columns)
            params = []
            for index, row_key in enumerate(values[0]):
                one: list[Any] = []
                for i in range(width):
                    one.append(flags[i][index])
                    one.append(values[1 + i][index])
                one.append(row_key)
                params.append(one)
            cursor.executemany(f"UPDATE {target} SET {sets} WHERE {self.quote(key)} = ?", params)
        finally:
            cursor.close()

    def update(self, table: Table, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """``UPDATE table SET columns… WHERE key = ?`` for each row ``(key, *values)``, in one go."""
        if not rows:
            return
        names = [key, *columns]
        values = self.column_values(table, names, rows)
        target = self.quote(table.name)
        cursor = self._dbapi.cursor()
        try:
            if self.postgresql:
                aliases = [f"v{i}" for i in range(len(names))]
                arrays = ", ".join(f"%b::{self._sql_type(table, c)}[]" for c in names)
                sets = ", ".join(f"{self.quote(c)} = u.{a}" for c, a in zip(columns, aliases[1:], strict=True))
                cursor.execute(f"UPDATE {target} SET {sets} FROM unnest({arrays}) AS u({', '.join(aliases)}) "
                               f"WHERE {target}.{self.quote(key)} = u.v0", values)
                return
            sets = ", ".join(f"{self.quote(c)} = ?" for c in columns)
            ordered = list(zip(*values[1:], values[0]))
            cursor.executemany(f"UPDATE {target} SET {sets} WHERE {self.quote(key)} = ?", ordered)
        finally:
            cursor.close()

    def update_where_in(self, table: Table, key: str, ids: Iterable[int], values: dict[str, Any],
                        only_if: tuple[str, Sequence[Any]] | None = None, *, increment: Sequence[str] = (),
                        returning: Sequence[str] = ()) -> list[tuple[Any, ...]]:
        """``UPDATE table SET values[, c = c + 1 for c in increment] WHERE key IN ids [AND column IN allowed]
        [RETURNING …]``: one statement; the ``returning`` columns of each row changed (raw driver values).
        """
        ids = list(ids)
        if not ids:
            return []
        names = list(values)
        converted = [column[0] for column in self.column_values(table, names, [tuple(values.values())])]
        target = self.quote(table.name)
        sets = ", ".join([*(f"{self.quote(c)} = {self.mark}" for c in names),
                          *(f"{self.quote(c)} = {self.quote(c)} + 1" for c in increment)])
        params: list[Any] = list(converted)
        condition = ""
        if only_if is not None:
            column, allowed = only_if
            allowed_values = self.column_values(table, [column], [(a,) for a in allowed])[0]
            if self.postgresql:
                condition = f" AND {self.quote(column)} = ANY(%b)"
                params.append(allowed_values)
            else:
                condition = f" AND {self.quote(column)} IN ({', '.join('?' * len(allowed_values))})"
                params.extend(allowed_values)
        tail = f" RETURNING {', '.join(self.quote(c) for c in returning)}" if returning else ""
        if self.postgresql:
            (array,), (ids_param,) = self.pg_arrays(table, [key], [ids])
            return self.execute(f"UPDATE {target} SET {sets} WHERE {self.quote(key)} = ANY({array}){condition}{tail}",
                                [*params[:len(names)], ids_param, *params[len(names):]])
        found: list[tuple[Any, ...]] = []
        size = SQLITE_MAX_PARAMETERS - len(params)
        for start in range(0, len(ids), size):
            part = ids[start:start + size]
            found.extend(self.execute(f"UPDATE {target} SET {sets} WHERE {self.quote(key)} IN "
                                      f"({', '.join('?' * len(part))}){condition}{tail}",
                                      [*params[:len(names)], *part, *params[len(names):]]))
        return found


#: Control characters no stored text holds (``onelinetext``: one-line fields refuse them, free text
#: drops them, JSON escapes them); ``_joined`` checks anyway and falls back to a binary array.
_SEPARATOR, _NULL = "\x1f", "\x1e"
_SEPARATOR_SQL, _NULL_SQL = "chr(31)", "chr(30)"
_JOINABLE = frozenset({str, int, datetime, type(None)})


def _joined(values: list[Any]) -> str | None:
    """``values`` as one separated string (None as the null mark), or None when that would not round-trip."""
    types = set(map(type, values))
    if not values or not types <= _JOINABLE or _NULL in values:
        return None
    if types == {str}:
        text = _SEPARATOR.join(values)
    elif types == {int}:
        text = _SEPARATOR.join(map(str, values))
    elif types <= {str, type(None)}:
        text = _SEPARATOR.join([_NULL if v is None else v for v in values])
    else:
        # Each distinct value written once (a chunk's timestamps are mostly one instant).
        written = {v: _NULL if v is None else v if type(v) is str else str(v) for v in set(values)}
        if any(type(v) is datetime and v.tzinfo is not None for v in written):
            return None
        text = _SEPARATOR.join(map(written.__getitem__, values))
    if not text or text.count(_SEPARATOR) != len(values) - 1:
        return None  # an empty string alone (string_to_array gives no element), or a separator inside
    return text


def memoized(processor: Callable[[Any], Any], values: Iterable[Any], memo: dict[Any, Any]) -> list[Any]:
    """``[processor(v) for v in values]``, each distinct (hashable) value processed once, remembered in ``memo``."""
    out = []
    get = memo.get
    for value in values:
        found = get(value, _MISSING)
        if found is _MISSING:  # (not a KeyError caught: most send times are distinct)
            found = memo[value] = processor(value)
        out.append(found)
    return out


_MISSING = object()
