"""Audit log of manual actions (branch rel-audit; the integrator renumbers at merge)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

``audit_log`` records every manual action (exception resolutions, forced billing closes, alert
configuration changes, case dispositions): who, when, why, the object and a JSON of details,
hash-chained (domain/audit.py). On PostgreSQL a trigger refuses every UPDATE, DELETE and
TRUNCATE of it; DuckDB has no triggers, there ``smartmdm audit verify`` detects a changed row.
"""

from alembic import op

from smartmdm_pipelines.store import schema

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

REFUSE = """
CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$
"""


def upgrade() -> None:
    bind = op.get_bind()
    schema.metadata.tables["audit_log"].create(bind)  # with ix_audit_log_action_at (action, acted_at)
    if bind.dialect.name == "postgresql":
        op.execute(REFUSE)
        op.execute(
            "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only()"
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER audit_log_no_change ON audit_log")
        op.execute("DROP FUNCTION audit_log_is_append_only()")
    schema.metadata.tables["audit_log"].drop(bind)
