"""Hourly usage rollup for the portal (branch portal-perf; the integrator renumbers at merge)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

``usage_hourly`` holds the current intervals summed per meter, channel and UTC hour
(store/usage_rollup.py); every writer of interval versions refreshes the hours it touched. The
upgrade fills it from the intervals already stored (one INSERT … SELECT), so existing stores are
backfilled when they are opened; ``smartmdm rollup`` rebuilds it on demand.
"""

from alembic import op

from smartmdm_pipelines.store import schema, usage_rollup

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    table = schema.metadata.tables["usage_hourly"]
    table.create(bind)  # with the unique ix_usage_hourly_key (meter_id, channel, hour_start)
    usage_rollup.rebuild(bind)


def downgrade() -> None:
    schema.metadata.tables["usage_hourly"].drop(op.get_bind())
