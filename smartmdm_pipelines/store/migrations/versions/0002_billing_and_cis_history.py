"""billing tables and effective-dated CIS history

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Service-point history (rate, cycle and status changes kept with effective dates),
tariffs with their 12x24 schedules and holiday calendars in long form (for set-based
TOU bucketing in dbt), system-peak intervals for coincident-peak demand, the log of
billing-cycle closes, the estimated register reading on register estimates, and columns on ``billing_determinants`` (TOU period, source, rate segment).
"""

import sqlalchemy as sa
from alembic import op

from smartmdm_pipelines.store import schema

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_NEW_TABLES = (
    "service_point_history",
    "tariffs",
    "tariff_schedules",
    "tariff_holidays",
    "system_peaks",
    "billing_closes",
)


def upgrade() -> None:
    bind = op.get_bind()
    for name in _NEW_TABLES:
        schema.metadata.tables[name].create(bind)
    op.add_column("billing_determinants", sa.Column("tou_period", sa.SmallInteger(), nullable=True))
    op.add_column("billing_determinants", sa.Column("source", sa.String(), nullable=True))
    op.add_column("intervals", sa.Column("register_value", sa.Double(), nullable=True))
    op.add_column("billing_determinants", sa.Column("rate_code", sa.String(), nullable=True))
    op.add_column("billing_determinants", sa.Column("segment_start", sa.Date(), nullable=True))
    op.add_column("billing_determinants", sa.Column("segment_end", sa.Date(), nullable=True))


def downgrade() -> None:
    # DuckDB cannot drop a column that an index depends on
    op.drop_index("ix_billing_determinants_cycle", table_name="billing_determinants")
    for column in ("segment_end", "segment_start", "rate_code", "source"):
        op.drop_column("billing_determinants", column)
    op.drop_column("billing_determinants", "tou_period")
    op.create_index("ix_billing_determinants_cycle", "billing_determinants", ["cycle_id", "period_start"])
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_intervals_day", table_name="intervals")
    op.drop_column("intervals", "register_value")
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_intervals_day", "intervals", ["read_day"])
    bind = op.get_bind()
    for name in reversed(_NEW_TABLES):
        schema.metadata.tables[name].drop(bind)
