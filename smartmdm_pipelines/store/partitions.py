"""Monthly partitions of ``raw_reads`` and ``intervals`` on PostgreSQL (migration 0010).

Both tables are ``PARTITION BY RANGE (read_day)``: one partition per calendar month
(``intervals_2024_03`` holds read days 2024-03-01 … 2024-03-31) and a DEFAULT partition
(``intervals_default``) that catches a month nobody created. The store creates the months a
bulk write is about to fill (:func:`ensure_partitions`, called from ``Store.bulk_insert``), so
in normal operation DEFAULT stays empty; :func:`split_default` moves rows an older client left
there into their months. :func:`apply_retention` removes whole months older than a horizon
(DETACH + DROP on PostgreSQL, ``DELETE … WHERE read_day < horizon`` on DuckDB: the same rows go).

DuckDB has no declarative partitioning; there the tables stay plain (it prunes by zone maps) and
everything here except :func:`apply_retention` is a no-op.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa

PARTITIONED = ("raw_reads", "intervals")
_BOUND = re.compile(r"FROM \('(\d{4}-\d{2}-\d{2})'\) TO \('(\d{4}-\d{2}-\d{2})'\)")


def month_start(day: dt.date) -> dt.date:
    return dt.date(day.year, day.month, 1)


def next_month(month: dt.date) -> dt.date:
    return dt.date(month.year + (month.month == 12), month.month % 12 + 1, 1)


def partition_name(table: str, month: dt.date) -> str:
    return f"{table}_{month.year:04d}_{month.month:02d}"


def default_name(table: str) -> str:
    return f"{table}_default"


def _check(table: str) -> None:
    if table not in PARTITIONED:
        raise ValueError(f"{table!r} is not partitioned; partitioned tables: {', '.join(PARTITIONED)}")


def is_partitioned(conn: sa.Connection, table: str) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(
        sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
    ).scalar()
    return kind == "p"


def months(conn: sa.Connection, table: str) -> dict[dt.date, tuple[str, bool]]:
    """The monthly partitions of ``table``: month → (partition name, created by this transaction)."""
    rows = conn.execute(
        sa.text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), c.xmin = pg_current_xact_id()::xid "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": table},
    ).all()
    out = {}
    for name, bound, mine in rows:
        found = _BOUND.search(bound or "")
        if found:
            out[dt.date.fromisoformat(found.group(1))] = (name, bool(mine))
    return out


def create_month(conn: sa.Connection, table: str, month: dt.date) -> str:
    """Create and attach the partition of ``month``. ATTACH takes only a SHARE UPDATE EXCLUSIVE
    lock on the parent (writers and pruned readers of other months go on; the DEFAULT partition
    is locked to the end of the transaction). The CHECK constraint spares ATTACH a scan."""
    name, upper = partition_name(table, month), next_month(month)
    conn.execute(
        sa.text(
            f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
            f"INCLUDING STORAGE, CONSTRAINT \"{name}_bound\" CHECK (read_day >= DATE '{month}' "
            f"AND read_day < DATE '{upper}'))"
        )
    )
    conn.execute(
        sa.text(
            f"ALTER TABLE \"{table}\" ATTACH PARTITION \"{name}\" FOR VALUES FROM ('{month}') TO ('{upper}')"
        )
    )
    conn.execute(sa.text(f'ALTER TABLE "{name}" DROP CONSTRAINT "{name}_bound"'))
    return name


def ensure_partitions(
    conn: sa.Connection, table: str, days: Iterable[dt.date], known: set[dt.date] | None = None
) -> list[str]:
    """Make sure the monthly partitions of ``days`` exist before rows of those days are written
    in ``conn``'s transaction; returns the partitions created. ``known``: the caller's cache of
    months seen committed (updated here), so a write to known months costs no query at all.

    Creation is serialised by a transaction-scoped advisory lock per table (two writers of a new
    month: the second waits and then finds it). A month whose rows already sit in DEFAULT (written
    before the month existed) is left there: attaching it would fail; :func:`split_default`
    moves them. No-op on DuckDB and on a PostgreSQL store not (yet) partitioned."""
    _check(table)
    wanted = {month_start(d) for d in days}
    if known is not None:
        wanted -= known
    if not wanted or conn.dialect.name != "postgresql":
        return []
    existing = months(conn, table)
    if known is not None:
        known.update(m for m, (_, mine) in existing.items() if not mine)
    missing = sorted(wanted - set(existing))
    if not missing or not is_partitioned(conn, table):
        return []
    conn.execute(
        sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
        {"k": f"smartmdm.partitions.{table}"},
    )
    existing = months(conn, table)  # another writer may have created them while we waited
    created = []
    for month in missing:
        if month in existing or _default_holds(conn, table, month):
            continue
        created.append(create_month(conn, table, month))
    return created


def _default_holds(conn: sa.Connection, table: str, month: dt.date) -> bool:
    return (
        conn.execute(
            sa.text(
                f'SELECT 1 FROM "{default_name(table)}" WHERE read_day >= :lo AND read_day < :hi LIMIT 1'
            ),
            {"lo": month, "hi": next_month(month)},
        ).first()
        is not None
    )


def split_default(conn: sa.Connection, table: str) -> dict[str, int]:
    """Move the rows of the DEFAULT partition into monthly partitions (created as needed), in
    ``conn``'s transaction: {partition: rows moved}. Rows are copied out, deleted from DEFAULT,
    the months attached, and the rows inserted back through the parent."""
    _check(table)
    if not is_partitioned(conn, table):
        return {}
    default = default_name(table)
    conn.execute(
        sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
        {"k": f"smartmdm.partitions.{table}"},
    )
    counts = conn.execute(
        sa.text(
            f"SELECT date_trunc('month', read_day)::date AS m, count(*) FROM \"{default}\" GROUP BY 1 ORDER BY 1"
        )
    ).all()
    if not counts:
        return {}
    conn.execute(sa.text('DROP TABLE IF EXISTS "_smartmdm_default_rows"'))
    conn.execute(
        sa.text(
            f'CREATE TEMPORARY TABLE "_smartmdm_default_rows" ON COMMIT DROP AS SELECT * FROM "{default}"'
        )
    )
    conn.execute(sa.text(f'DELETE FROM "{default}"'))
    existing = months(conn, table)
    for month, _ in counts:
        if month not in existing:
            create_month(conn, table, month)
    conn.execute(sa.text(f'INSERT INTO "{table}" SELECT * FROM "_smartmdm_default_rows"'))
    conn.execute(sa.text('DROP TABLE "_smartmdm_default_rows"'))
    return {partition_name(table, month): int(n) for month, n in counts}


@dataclass
class Retention:
    """What :func:`apply_retention` removed (or, dry run, would remove)."""

    table: str
    before: dt.date
    backend: str
    partitions: list[str] = field(default_factory=list)  # monthly partitions dropped (PostgreSQL)
    rows: int = 0  # rows removed, DEFAULT's and DuckDB's included
    billed: int = 0  # billed interval versions among them
    dry_run: bool = False

    def details(self) -> dict:
        return {
            "table": self.table,
            "before": self.before.isoformat(),
            "backend": self.backend,
            "partitions": self.partitions,
            "rows": self.rows,
            "billed": self.billed,
        }


class RetentionRefused(Exception):
    """The horizon would remove billed interval versions (and ``force`` was not given)."""


def apply_retention(
    conn: sa.Connection, table: str, before: dt.date, *, force: bool = False, dry_run: bool = False
) -> Retention:
    """Remove every row of ``table`` with ``read_day < before`` (the first day of a month), in
    ``conn``'s transaction. PostgreSQL: each monthly partition wholly before the horizon is
    detached and dropped (no row-by-row delete, no bloat), and DEFAULT's rows before it are
    deleted; DuckDB: one DELETE. The same rows go on both. ``intervals``: refused
    (:class:`RetentionRefused`) when billed versions are among them, unless ``force``."""
    _check(table)
    if before.day != 1:
        raise ValueError(f"the retention horizon must be the first day of a month, got {before}")
    out = Retention(table=table, before=before, backend=conn.dialect.name, dry_run=dry_run)
    params = {"before": before}
    if table == "intervals":
        out.billed = int(
            conn.execute(
                sa.text("SELECT count(*) FROM intervals WHERE read_day < :before AND billed"), params
            ).scalar_one()
        )
        if out.billed and not force and not dry_run:  # a dry run reports them
            raise RetentionRefused(
                f"intervals before {before} hold {out.billed} billed versions; pass force to drop them anyway"
            )
    partitioned = is_partitioned(conn, table)
    if partitioned:
        old = sorted((m, name) for m, (name, _) in months(conn, table).items() if next_month(m) <= before)
        out.partitions = [name for _, name in old]
        for name in out.partitions:
            out.rows += int(conn.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar_one())
        source = default_name(table)
    else:
        source = table
    out.rows += int(
        conn.execute(
            sa.text(f'SELECT count(*) FROM "{source}" WHERE read_day < :before'), params
        ).scalar_one()
    )
    if dry_run:
        return out
    for name in out.partitions:
        conn.execute(sa.text(f'ALTER TABLE "{table}" DETACH PARTITION "{name}"'))
        conn.execute(sa.text(f'DROP TABLE "{name}"'))
    conn.execute(sa.text(f'DELETE FROM "{source}" WHERE read_day < :before'), params)
    return out
