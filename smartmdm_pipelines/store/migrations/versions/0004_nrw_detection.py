"""NRW zone balances, night flow and loss-event detection

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Columns the balance and inflow-only loss detectors write: completeness and the estimated
share on ``zone_balances``; volume, confidence, evidence, source and status on
``loss_events``; the zone's detection class and a metered feed tank on ``zones``; and the
per-day minimum night flow per zone (``zone_night_flow``).
"""

import sqlalchemy as sa
from alembic import op

from smartmdm_pipelines.store import schema

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_NEW_COLUMNS = {
    "zones": (
        ("zone_class", sa.String()),
        ("tank_level_meter_id", sa.String()),
        ("tank_area_m2", sa.Double()),
    ),
    "zone_balances": (
        ("estimated_volume", sa.Double()),
        ("input_completeness", sa.Double()),
        ("metered_completeness", sa.Double()),
        ("complete", sa.Boolean()),
    ),
    "loss_events": (
        ("volume", sa.Double()),
        ("confidence", sa.Double()),
        ("source", sa.String()),
        ("evidence", sa.Text()),
        ("status", sa.String()),
        ("detected_at", sa.DateTime(timezone=True)),
        ("updated_at", sa.DateTime(timezone=True)),
    ),
}


def upgrade() -> None:
    schema.metadata.tables["zone_night_flow"].create(op.get_bind())
    for table, columns in _NEW_COLUMNS.items():
        for name, type_ in columns:
            op.add_column(table, sa.Column(name, type_, nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_zone_night_flow_zone_day", "zone_night_flow", ["zone_id", "read_day"])


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.drop_index("ix_zone_night_flow_zone_day", table_name="zone_night_flow")
    schema.metadata.tables["zone_night_flow"].drop(bind)
    for table, columns in _NEW_COLUMNS.items():
        for name, _ in reversed(columns):
            op.drop_column(table, name)
