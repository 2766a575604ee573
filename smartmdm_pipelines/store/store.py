"""The store: one object over DuckDB or PostgreSQL with bulk paths and atomic partition replace.

Every write is set-based: DuckDB inserts from a registered Arrow table, PostgreSQL
receives ``COPY … FROM STDIN`` in CSV. A partition replace deletes and inserts in
one transaction, so a crash leaves the old rows or the new ones, never a mix.
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa

from smartmdm_pipelines.store import migrate, partitions
from smartmdm_pipelines.store.engine import backend_of, create_store_engine, database_url, normalise_url
from smartmdm_pipelines.store.schema import metadata

Frame = pd.DataFrame | pa.Table
Where = Mapping[str, Any] | sa.ColumnElement[bool]

_BATCH_ROWS = 1_000_000
_NAMED_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class Store:
    """The system of record. ``Store()`` opens ``SMARTMDM_DATABASE_URL`` (or the DuckDB default)
    and brings its schema to the latest migration."""

    def __init__(self, url: str | None = None, *, migrate_schema: bool = True) -> None:
        self.url = normalise_url(url or database_url())
        self.backend = backend_of(self.url)
        self.engine = create_store_engine(self.url)
        # months of raw_reads / intervals seen partitioned (PostgreSQL): store/partitions.py
        self._partition_months: dict[str, set] = {t: set() for t in partitions.PARTITIONED}
        if migrate_schema:
            migrate.upgrade(self.engine)

    # --- connections -----------------------------------------------------------------------------

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """One transaction: committed on success, rolled back on any exception."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def begin_locked(self, key: str, *, within: str | None = None) -> Iterator[sa.Connection]:
        """One transaction that holds the lock named ``key`` to its end, so that two writers of the
        same thing (two closes of one billing period, …) take turns instead of interleaving their
        read-then-write. PostgreSQL: a transaction-scoped advisory lock, across processes. DuckDB
        has one writing process; its threads take a process lock of that name.

        ``within``: ``key`` names a part of the thing ``within`` names (a meter shard of a VEE day).
        The transaction also holds ``within`` in shared mode (PostgreSQL), so writers of different
        parts run side by side while a writer of the whole (which takes ``within`` itself) waits
        for them and they for it. DuckDB (one writing process) takes ``within`` exclusively."""
        if self.backend == "postgresql":
            with self.engine.begin() as conn:
                lock = "SELECT pg_advisory_xact_lock{}(hashtextextended(:k, 0))"
                if within is not None:
                    conn.execute(sa.text(lock.format("_shared")), {"k": within})
                conn.execute(sa.text(lock.format("")), {"k": key})
                yield conn
        else:
            with contextlib.ExitStack() as locks:
                if within is not None:
                    locks.enter_context(_process_lock(self.url, within))
                locks.enter_context(_process_lock(self.url, key))
                conn = locks.enter_context(self.engine.begin())
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()

    def table(self, name: str) -> sa.Table:
        try:
            return metadata.tables[name]
        except KeyError:
            raise KeyError(f"unknown table {name!r}; known: {sorted(metadata.tables)}") from None

    # --- writes ------------------------------------------------------------------------------------

    def bulk_insert(
        self, table: str | sa.Table, frames: Frame | Iterable[Frame], conn: sa.Connection | None = None
    ) -> int:
        """Append rows in bulk. ``frames`` is one frame or an iterable of batches (streamed).

        ``table`` is a store table's name, or a ``sa.Table`` such as a temporary staging table.
        Columns are matched by name; table columns missing from a frame get NULL/default.
        Returns the number of rows written.
        """
        if conn is None:
            with self.begin() as own:
                return self.bulk_insert(table, frames, own)
        target = table if isinstance(table, sa.Table) else self.table(table)
        written = 0
        for batch in _batches(frames):
            if batch.num_rows == 0:
                continue
            batch = _conform(batch, target)
            if self.backend == "postgresql" and metadata.tables.get(target.name) is target:
                self._ensure_batch_partitions(conn, target.name, batch)
            if self.backend == "duckdb":
                _duckdb_insert(conn, target, batch)
            else:
                _postgres_copy(conn, target, batch)
            written += batch.num_rows
        return written

    def ensure_partitions(self, conn: sa.Connection, table: str, days: Iterable[Any]) -> None:
        """PostgreSQL: the monthly partitions of ``days`` exist (store/partitions.py) before rows of
        those days are written to ``table`` in ``conn`` (``bulk_insert`` calls it; a writer that
        inserts with INSERT … SELECT calls it itself). Months already seen cost no query."""
        known = self._partition_months.get(table)
        if self.backend == "postgresql" and known is not None:
            partitions.ensure_partitions(conn, table, days, known)

    def prepare_partitions(self, table: str, days: Iterable[Any]) -> None:
        """:meth:`ensure_partitions` in a short transaction of its own, committed before the caller
        opens its writing one: the partition's creation then locks nothing for the length of the
        write (call it before ``begin``, never inside an open transaction of this thread)."""
        days = list(days)
        known = self._partition_months.get(table)
        if self.backend != "postgresql" or known is None or not days:
            return
        if {partitions.month_start(d) for d in days} <= known:
            return
        with self.begin() as conn:
            partitions.ensure_partitions(conn, table, days, known)

    def _ensure_batch_partitions(self, conn: sa.Connection, table: str, batch: pa.Table) -> None:
        if table not in self._partition_months or "read_day" not in batch.column_names:
            return
        days = pc.unique(batch.column("read_day").cast(pa.date32())).to_pylist()
        self.ensure_partitions(conn, table, [d for d in days if d is not None])

    def replace_partition(
        self, table: str, where: Where, frames: Frame | Iterable[Frame], conn: sa.Connection | None = None
    ) -> tuple[int, int]:
        """Atomically replace the rows matching ``where`` by ``frames``: (deleted, inserted).

        ``where`` maps column names to a value or a list of values (``IN``), or is a
        SQLAlchemy boolean expression. Deletion and insertion share one transaction.
        """
        if conn is None:
            with self.begin() as own:
                return self.replace_partition(table, where, frames, own)
        deleted = self.delete(table, where, conn)
        inserted = self.bulk_insert(table, frames, conn)
        return deleted, inserted

    def delete(self, table: str, where: Where, conn: sa.Connection | None = None) -> int:
        if conn is None:
            with self.begin() as own:
                return self.delete(table, where, own)
        target = self.table(table)
        result = conn.execute(target.delete().where(_predicate(target, where)))
        return max(result.rowcount or 0, 0)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None, conn: sa.Connection | None = None):
        if conn is None:
            with self.begin() as own:
                return self.execute(sql, params, own)
        return conn.execute(sa.text(sql), dict(params or {}))

    # --- reads -------------------------------------------------------------------------------------

    def read_frame(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        conn: sa.Connection | None = None,
        *,
        via_arrow: bool = False,
    ) -> pd.DataFrame:
        """Run a query (``:name`` parameters) and return a DataFrame; timestamps are UTC-aware.

        ``via_arrow``: fetch through Arrow, several times faster for millions of rows with
        string columns (DuckDB: its Arrow export; PostgreSQL: ``COPY … TO STDOUT`` as CSV read by
        Arrow with the result's column types); DATE columns then come back as ``datetime.date``
        objects.
        """
        if conn is None:
            with self.engine.connect() as own:
                return self.read_frame(sql, params, own, via_arrow=via_arrow)
        if self.backend == "duckdb":
            raw = conn.connection.driver_connection
            used = set(_NAMED_PARAM.findall(sql))  # DuckDB refuses parameters the query does not use
            bound = {k: v for k, v in (params or {}).items() if k in used}
            if via_arrow:
                return raw.sql(_NAMED_PARAM.sub(r"$\1", sql), params=bound).to_arrow_table().to_pandas()
            return raw.execute(_NAMED_PARAM.sub(r"$\1", sql), bound).df()
        if via_arrow:
            return _pg_copy_frame(conn.connection.driver_connection, sql, params or {})
        return pd.read_sql_query(sa.text(sql), conn, params=dict(params or {}))

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), dict(params or {})).scalar()

    def count(self, table: str, where: Where | None = None) -> int:
        target = self.table(table)
        query = sa.select(sa.func.count()).select_from(target)
        if where is not None:
            query = query.where(_predicate(target, where))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


# --- helpers ------------------------------------------------------------------------------------------

# PostgreSQL type oids -> Arrow types for a COPY result (others are read as text)
_PG_ARROW = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int64(),
    23: pa.int64(),
    700: pa.float64(),
    701: pa.float64(),
    1700: pa.float64(),
    1082: pa.date32(),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", "UTC"),
}


def _pg_copy_frame(raw, sql: str, params: Mapping[str, Any]) -> pd.DataFrame:
    """A query's result through ``COPY (…) TO STDOUT`` (CSV) and Arrow's CSV reader: NULL is
    the unquoted empty field, an empty string the quoted one."""
    with raw.cursor() as cur:
        query = cur.mogrify(_NAMED_PARAM.sub(r"%(\1)s", sql), dict(params)).decode()
        cur.execute(f"SELECT * FROM ({query}) q LIMIT 0")
        columns = [(c.name, _PG_ARROW.get(c.type_code, pa.string())) for c in cur.description]
        buffer = io.BytesIO()
        cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER)", buffer)
    buffer.seek(0)
    table = pacsv.read_csv(
        buffer,
        convert_options=pacsv.ConvertOptions(
            column_types=dict(columns), strings_can_be_null=True, quoted_strings_can_be_null=False
        ),
    )
    return table.to_pandas()


_PROCESS_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


def _process_lock(url: str, key: str) -> threading.Lock:
    with _PROCESS_LOCKS_GUARD:
        return _PROCESS_LOCKS.setdefault((url, key), threading.Lock())


def _batches(frames: Frame | Iterable[Frame]) -> Iterator[pa.Table]:
    if isinstance(frames, pd.DataFrame | pa.Table):
        frames = [frames]
    for frame in frames:
        table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
        for offset in range(0, max(table.num_rows, 1), _BATCH_ROWS):
            yield table.slice(offset, _BATCH_ROWS)


def _conform(batch: pa.Table, target: sa.Table) -> pa.Table:
    unknown = set(batch.column_names) - set(target.columns.keys())
    if unknown:
        raise ValueError(f"columns {sorted(unknown)} are not in table {target.name}")
    batch = batch.select([c.name for c in target.columns if c.name in batch.column_names])
    for i, name in enumerate(batch.column_names):
        if isinstance(target.c[name].type, sa.Date) and pa.types.is_timestamp(batch.schema.field(i).type):
            batch = batch.set_column(i, name, batch.column(i).cast(pa.date32()))
    return batch


_MAX_CHUNKS = 64  # DuckDB scans an Arrow chunk at a fixed cost (~40 µs a column)


def _duckdb_insert(conn: sa.Connection, target: sa.Table, batch: pa.Table) -> None:
    if any(column.num_chunks > _MAX_CHUNKS for column in batch.columns):
        # a file with rejected rows scattered through it comes out of the adapter as thousands of
        # zero-copy slices; one copy into whole columns made its insert 20× faster (1.0 → 0.05 s
        # for 89,000 reads in 4,228 pieces: benchmarks/bench_garbage_day.py)
        batch = batch.combine_chunks()
    raw = conn.connection.driver_connection
    view = f"_bulk_{target.name}"
    cols = ", ".join(f'"{c}"' for c in batch.column_names)
    raw.register(view, batch)
    try:
        raw.execute(f'INSERT INTO "{target.name}" ({cols}) SELECT {cols} FROM "{view}"')
    except Exception:
        with contextlib.suppress(Exception):  # the aborted transaction refuses it; keep the real error
            raw.unregister(view)
        raise
    raw.unregister(view)


def _postgres_copy(conn: sa.Connection, target: sa.Table, batch: pa.Table) -> None:
    buffer = io.BytesIO()
    # Strings are quoted, NULLs are bare empty fields: PostgreSQL's CSV COPY tells them apart.
    pacsv.write_csv(
        _utc_text(batch), buffer, pacsv.WriteOptions(include_header=False, quoting_style="all_valid")
    )
    buffer.seek(0)
    cols = ", ".join(f'"{c}"' for c in batch.column_names)
    with conn.connection.driver_connection.cursor() as cur:
        cur.copy_expert(f'COPY "{target.name}" ({cols}) FROM STDIN WITH (FORMAT csv)', buffer)


def _utc_text(batch: pa.Table) -> pa.Table:
    """Zoned timestamps as UTC text ('2024-03-12 06:15:00.000000Z'): pyarrow's CSV writer formats
    zoned timestamps some twenty times slower than this (it was most of a large COPY's time)."""
    for i, column in enumerate(batch.schema):
        if pa.types.is_timestamp(column.type) and column.type.tz is not None:
            wall = pc.cast(batch.column(i).cast(pa.timestamp(column.type.unit)), pa.string())
            text = pc.binary_join_element_wise(wall, pa.scalar("Z"), pa.scalar(""))
            batch = batch.set_column(i, column.name, text)
    return batch


def _predicate(target: sa.Table, where: Where) -> sa.ColumnElement[bool]:
    if isinstance(where, sa.ColumnElement):
        return where
    if not where:
        raise ValueError("refusing an empty partition predicate (it would match the whole table)")
    clauses = []
    for column, value in where.items():
        col = target.c[column]
        if isinstance(value, list | tuple | set | frozenset):
            clauses.append(col.in_(list(value)))
        else:
            clauses.append(col == value)
    return sa.and_(*clauses)
