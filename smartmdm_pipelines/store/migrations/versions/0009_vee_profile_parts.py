"""Class-profile sums per meter shard of a VEE day

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

``vee_profile_parts`` carries each shard's class-profile sums and counts from a sharded VEE
day's first step to every shard's second (services/vee_shards.py), through the store that all
workers share, so no step passes data through a disk of its own.
"""

from alembic import op

from smartmdm_pipelines.store import schema

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema.metadata.tables["vee_profile_parts"].create(op.get_bind())  # with ix_vee_profile_parts_day


def downgrade() -> None:
    schema.metadata.tables["vee_profile_parts"].drop(op.get_bind())
