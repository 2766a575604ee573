"""raw_reads and intervals partitioned by month of read_day (PostgreSQL)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

PostgreSQL: ``raw_reads`` and ``intervals`` become ``PARTITION BY RANGE (read_day)`` with one
partition per calendar month (``intervals_2024_03``) and a DEFAULT partition
(``intervals_default``). Existing rows are moved: the partitioned table is created beside the
old one (same columns, defaults and comments), the months present get their partitions, the rows
are copied with one INSERT … SELECT, the old table is dropped and the new one takes its name. The
views that read the table (``current_intervals``, and any view a deployment added, found through
``pg_depend``) are dropped first and recreated from their saved definitions. Neither table has a
primary key or a unique constraint, so no key has to gain ``read_day``.

Indexes (created on the parent, so every partition, present and future, has them):
``ix_raw_reads_day``, ``ix_raw_reads_file`` and ``ix_intervals_day``, ``ix_intervals_meter_end``
as before, plus ``ix_intervals_day_created (read_day, created_at)``: the outbox's
``emit_versions`` and the rollup's ``refresh(written_at=…)`` read "the versions of this day
written at this instant" on every real-time delivery (store/partitions.py, docs/partitioning.md).

DuckDB: no-op (no declarative partitioning; it prunes by zone maps). The downgrade moves the rows
back into plain tables with the indexes and views of 0009.
"""

import sqlalchemy as sa
from alembic import op

from smartmdm_pipelines.store import partitions

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

INDEXES_0009 = {
    "raw_reads": {"ix_raw_reads_day": "read_day", "ix_raw_reads_file": "file_id"},
    "intervals": {
        "ix_intervals_day": "read_day",
        "ix_intervals_meter_end": "meter_id, channel, interval_end",
    },
}
NEW_INDEXES = {"intervals": {"ix_intervals_day_created": "read_day, created_at"}}

# the views reading a table, transitively, deepest last: (oid, kind, qualified name, definition)
_DEPENDENT_VIEWS = """
WITH RECURSIVE deps(oid, depth) AS (
    SELECT DISTINCT r.ev_class, 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
    WHERE d.refobjid = CAST(:t AS regclass) AND r.ev_class <> d.refobjid
    UNION
    SELECT DISTINCT r.ev_class, deps.depth + 1 FROM deps
    JOIN pg_depend d ON d.refobjid = deps.oid JOIN pg_rewrite r ON r.oid = d.objid
    WHERE r.ev_class <> d.refobjid
)
SELECT c.oid, c.relkind, format('%I.%I', n.nspname, c.relname), pg_get_viewdef(c.oid),
       obj_description(c.oid, 'pg_class')
FROM (SELECT oid, max(depth) AS depth FROM deps GROUP BY oid) v
JOIN pg_class c ON c.oid = v.oid JOIN pg_namespace n ON n.oid = c.relnamespace
ORDER BY v.depth, c.oid
"""


def upgrade() -> None:
    if not _is_postgres():
        return
    for table in ("raw_reads", "intervals"):
        _rebuild(table, partitioned=True, indexes={**INDEXES_0009[table], **NEW_INDEXES.get(table, {})})


def downgrade() -> None:
    if not _is_postgres():
        return
    for table in ("intervals", "raw_reads"):
        _rebuild(table, partitioned=False, indexes=INDEXES_0009[table])


def _rebuild(table: str, *, partitioned: bool, indexes: dict[str, str]) -> None:
    conn = op.get_bind()
    views = conn.execute(sa.text(_DEPENDENT_VIEWS), {"t": table}).all()
    for _, kind, name, _, _ in reversed(views):
        conn.execute(sa.text(f"DROP {'MATERIALIZED VIEW' if kind == 'm' else 'VIEW'} {name}"))
    comment = conn.execute(sa.text("SELECT obj_description(CAST(:t AS regclass), 'pg_class')"), {"t": table})
    comment = comment.scalar()
    new = f"{table}_new"
    like = f'LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMMENTS INCLUDING STORAGE'
    if partitioned:
        conn.execute(sa.text(f'CREATE TABLE "{new}" ({like}) PARTITION BY RANGE (read_day)'))
        present = conn.execute(
            sa.text(f"SELECT DISTINCT date_trunc('month', read_day)::date FROM \"{table}\" ORDER BY 1")
        ).scalars()
        for month in present:
            upper = partitions.next_month(month)
            conn.execute(
                sa.text(
                    f'CREATE TABLE "{partitions.partition_name(table, month)}" PARTITION OF "{new}" '
                    f"FOR VALUES FROM ('{month}') TO ('{upper}')"
                )
            )
        conn.execute(sa.text(f'CREATE TABLE "{partitions.default_name(table)}" PARTITION OF "{new}" DEFAULT'))
    else:
        conn.execute(sa.text(f'CREATE TABLE "{new}" ({like})'))
    conn.execute(sa.text(f'INSERT INTO "{new}" SELECT * FROM "{table}"'))
    conn.execute(sa.text(f'DROP TABLE "{table}"'))  # its partitions and indexes with it
    conn.execute(sa.text(f'ALTER TABLE "{new}" RENAME TO "{table}"'))
    if comment is not None:
        _raw(conn, f'COMMENT ON TABLE "{table}" IS {_literal(comment)}')
    for index, columns in indexes.items():
        conn.execute(sa.text(f'CREATE INDEX "{index}" ON "{table}" ({columns})'))
    for _, kind, name, definition, view_comment in views:
        what = "MATERIALIZED VIEW" if kind == "m" else "VIEW"
        _raw(conn, f"CREATE {what} {name} AS {definition.rstrip().rstrip(';')}")
        if view_comment is not None:
            _raw(conn, f"COMMENT ON {what} {name} IS {_literal(view_comment)}")
    conn.execute(sa.text(f'ANALYZE "{table}"'))


def _raw(conn, sql: str) -> None:
    """A statement run as written (a view's text may hold ':name' or '%')."""
    with conn.connection.driver_connection.cursor() as cur:
        cur.execute(sql)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"
