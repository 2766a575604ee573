"""revenue-protection cases

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Revenue-protection cases (one per service point, ranked by revenue at stake), their
append-only disposition history, and the columns that tie a signal in ``protection_flags``
to its case, its unbilled volume and the evaluation day.
"""

import sqlalchemy as sa
from alembic import op

from smartmdm_pipelines.store import schema

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_NEW_TABLES = ("protection_cases", "protection_case_history")
_FLAG_COLUMNS = (
    ("case_id", sa.String()),
    ("volume", sa.Double()),
    ("unit", sa.String()),
    ("read_day", sa.Date()),
)


def upgrade() -> None:
    bind = op.get_bind()
    for name in _NEW_TABLES:
        schema.metadata.tables[name].create(bind)
    for name, type_ in _FLAG_COLUMNS:
        op.add_column("protection_flags", sa.Column(name, type_, nullable=True))
    if _is_postgres():  # DuckDB prunes by zone maps; an index would also pin the columns
        op.create_index("ix_protection_flags_day", "protection_flags", ["read_day"])


def downgrade() -> None:
    if _is_postgres():
        op.drop_index("ix_protection_flags_day", table_name="protection_flags")
        for name, _ in reversed(_FLAG_COLUMNS):
            op.drop_column("protection_flags", name)
    else:  # DuckDB cannot drop a column of a table with a primary key: rebuild it without them
        kept = "flag_id, meter_id, service_point_id, indicator, start_at, end_at, score, detail, status"
        op.execute(f"CREATE TEMPORARY TABLE _flags AS SELECT {kept} FROM protection_flags")
        op.drop_table("protection_flags")
        op.create_table(
            "protection_flags",
            sa.Column("flag_id", sa.String(), nullable=False),
            sa.Column("meter_id", sa.String(), nullable=False),
            sa.Column("service_point_id", sa.String(), nullable=True),
            sa.Column("indicator", sa.String(), nullable=False),
            sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("score", sa.Double(), nullable=True),
            sa.Column("detail", sa.Text(), nullable=True),
            sa.Column("status", sa.String(), server_default="open", nullable=False),
            sa.PrimaryKeyConstraint("flag_id"),
        )
        op.execute(f"INSERT INTO protection_flags ({kept}) SELECT {kept} FROM _flags")
        op.execute("DROP TABLE _flags")
    bind = op.get_bind()
    for name in reversed(_NEW_TABLES):
        schema.metadata.tables[name].drop(bind)


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"
