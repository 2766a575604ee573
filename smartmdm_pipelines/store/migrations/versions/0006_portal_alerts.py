"""Customer portal: alert rules, alert episodes, the history index

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

``alert_rules`` holds the thresholds customers set per service point (portal API, CIS sync);
``usage_alerts`` learns the episode it records (rule, episode key, value, threshold, end) and
when its notification was queued. On PostgreSQL ``ix_intervals_meter_end`` serves the portal's
reads of one meter's intervals over a date range (usage history, bill-to-date, Green Button).
"""

import sqlalchemy as sa
from alembic import op

from smartmdm_pipelines.store import schema

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

NEW_COLUMNS = [
    sa.Column("rule_id", sa.String(), nullable=True),
    sa.Column("service_point_id", sa.String(), nullable=True),
    sa.Column("episode_key", sa.String(), nullable=True),
    sa.Column("value", sa.Double(), nullable=True),
    sa.Column("threshold", sa.Double(), nullable=True),
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
]


def upgrade() -> None:
    bind = op.get_bind()
    for column in NEW_COLUMNS:
        op.add_column("usage_alerts", column.copy())
    schema.metadata.tables["alert_rules"].create(bind)
    if bind.dialect.name == "postgresql":
        op.create_index("ix_intervals_meter_end", "intervals", ["meter_id", "channel", "interval_end"])


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.drop_index("ix_intervals_meter_end", table_name="intervals")
    schema.metadata.tables["alert_rules"].drop(bind)
    for column in reversed(NEW_COLUMNS):
        op.drop_column("usage_alerts", column.name)
