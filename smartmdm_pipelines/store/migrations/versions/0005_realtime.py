"""Real-time path: delivery channel, the outbox of interval versions, pull cursors

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

``headend_files`` learns how a delivery arrived (``channel``: file | http | mqtt | pull) and
when the real-time path validated the meter-days it touched (``vee_at``). ``outbox`` holds the
interval versions to push to the CIS and the portal, written in the transaction that writes
the versions; ``headend_cursors`` the pull connector's ``since`` cursor per head-end.
"""

import sqlalchemy as sa
from alembic import op

from smartmdm_pipelines.store import schema

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("headend_files", sa.Column("channel", sa.String(), nullable=True))
    op.add_column("headend_files", sa.Column("vee_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(sa.schema.CreateSequence(sa.Sequence("outbox_seq")))
    schema.metadata.tables["outbox"].create(bind)
    schema.metadata.tables["headend_cursors"].create(bind)
    if bind.dialect.name == "postgresql":
        op.create_index("ix_outbox_state", "outbox", ["destination", "state"])


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.drop_index("ix_outbox_state", table_name="outbox")
    schema.metadata.tables["headend_cursors"].drop(bind)
    schema.metadata.tables["outbox"].drop(bind)
    op.execute(sa.schema.DropSequence(sa.Sequence("outbox_seq")))
    op.drop_column("headend_files", "vee_at")
    op.drop_column("headend_files", "channel")
