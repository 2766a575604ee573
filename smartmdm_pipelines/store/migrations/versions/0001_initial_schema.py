"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28

The whole data model of docs/architecture.md. Secondary indexes on the big append tables are
created on PostgreSQL only: DuckDB prunes by zone maps and an ART index would slow
its bulk loads.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.schema.CreateSequence(sa.Sequence("headend_file_id_seq")))
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("service_point_id", sa.String(), nullable=False),
        sa.Column("customer_name", sa.String(), nullable=True),
        sa.Column("move_in", sa.Date(), nullable=False),
        sa.Column("move_out", sa.Date(), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("account_id", "service_point_id", "move_in"),
    )
    op.create_table(
        "billing_cycles",
        sa.Column("cycle_id", sa.String(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("read_date", sa.Date(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("cycle_id", "period_start"),
    )
    op.create_table(
        "billing_determinants",
        sa.Column("account_id", sa.String(), nullable=False),
        sa.Column("service_point_id", sa.String(), nullable=False),
        sa.Column("cycle_id", sa.String(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "determinant", sa.String(), nullable=False, comment="e.g. kwh_delivered, kwh_tou_on_peak, kw_max"
        ),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("unit", sa.String(), nullable=True),
        sa.Column("estimated_share", sa.Double(), nullable=True),
        sa.Column("is_correction", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_billing_determinants_cycle", "billing_determinants", ["cycle_id", "period_start"], unique=False
    )
    op.create_table(
        "headend_files",
        sa.Column(
            "file_id",
            sa.BigInteger(),
            server_default=sa.text("nextval('headend_file_id_seq')"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("format", sa.String(), nullable=True),
        sa.Column("source", sa.String(), nullable=True, comment="head-end / source system"),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "status", sa.String(), nullable=False, comment="received | loaded | partially loaded | rejected"
        ),
        sa.Column("rows_in", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rows_loaded", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("interval_reads", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("register_reads", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("events", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rows_rejected", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("first_interval_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_interval_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "read_days", sa.String(), nullable=True, comment="';'-joined operating days the file touched"
        ),
        sa.Column("archive_path", sa.String(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("file_id"),
        sa.UniqueConstraint("sha256"),
    )
    op.create_table(
        "intervals",
        sa.Column("meter_id", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("interval_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "version", sa.Integer(), nullable=False, comment="1, 2, … per (meter, channel, interval_end)"
        ),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("unit", sa.String(), nullable=False),
        sa.Column(
            "status", sa.String(), nullable=False, comment="valid | estimated | edited | suspect | missing"
        ),
        sa.Column("espi_quality", sa.SmallInteger(), nullable=True, comment="NAESB ESPI QualityOfReading"),
        sa.Column("iec_quality", sa.String(), nullable=True, comment="IEC 61968-9 ReadingQualityType"),
        sa.Column("estimation_method", sa.String(), nullable=True),
        sa.Column("failed_rules", sa.String(), nullable=True, comment="';'-joined rule ids"),
        sa.Column("source_file_id", sa.BigInteger(), nullable=True),
        sa.Column("source_line", sa.BigInteger(), nullable=True),
        sa.Column("read_day", sa.Date(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("previous_value", sa.Double(), nullable=True),
        sa.Column("billed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        comment="Versioned validated store; every change is a new version. Identity: (meter_id, channel, interval_end, version).",
    )
    if _is_postgres():
        op.create_index("ix_intervals_day", "intervals", ["read_day"], unique=False)
    op.create_table(
        "loss_events",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("zone_id", sa.String(), nullable=True),
        sa.Column("meter_id", sa.String(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False, comment="leak | burst | unauthorized_use"),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rate", sa.Double(), nullable=True),
        sa.Column("unit", sa.String(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_table(
        "meter_events",
        sa.Column("file_id", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.BigInteger(), nullable=False),
        sa.Column("meter_id", sa.String(), nullable=False),
        sa.Column("event_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_type", sa.String(), nullable=False),
        sa.Column("source_code", sa.String(), nullable=True),
        sa.Column("read_day", sa.Date(), nullable=False),
    )
    if _is_postgres():
        op.create_index("ix_meter_events_day", "meter_events", ["read_day"], unique=False)
    op.create_table(
        "meter_installs",
        sa.Column("meter_id", sa.String(), nullable=False),
        sa.Column("service_point_id", sa.String(), nullable=False),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("multiplier", sa.Double(), server_default="1", nullable=False),
        sa.Column("start_register", sa.Double(), nullable=True),
        sa.Column("end_register", sa.Double(), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("meter_id", "service_point_id", "installed_at"),
    )
    op.create_table(
        "meters",
        sa.Column("meter_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False, comment="manual | amr | ami"),
        sa.Column("commodity", sa.String(), nullable=False, comment="electric | water | gas"),
        sa.Column(
            "role", sa.String(), server_default="customer", nullable=False, comment="customer | zone_bulk"
        ),
        sa.Column("channels", sa.String(), nullable=False, comment="';'-joined channel codes"),
        sa.Column("unit", sa.String(), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=True),
        sa.Column("multiplier", sa.Double(), server_default="1", nullable=False),
        sa.Column("dials", sa.Integer(), nullable=True),
        sa.Column("headend", sa.String(), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("meter_id"),
    )
    op.create_table(
        "outbound_messages",
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False, comment="cis_batch | cis_api | portal | alert"),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), nullable=False, comment="pending | sent | acknowledged | failed"),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("idempotency_key"),
    )
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
    op.create_table(
        "raw_reads",
        sa.Column("file_id", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.BigInteger(), nullable=False, comment="1-based line in the file"),
        sa.Column("meter_id", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("interval_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True, comment="normalised unit; NULL = no read"),
        sa.Column("unit", sa.String(), nullable=False),
        sa.Column("source_unit", sa.String(), nullable=False),
        sa.Column("source_quality", sa.String(), nullable=True),
        sa.Column("read_day", sa.Date(), nullable=False, comment="operating day (utility time zone)"),
        comment="Append-only, exactly as received after unit normalisation. Identity: (file_id, line, channel, interval_end).",
    )
    if _is_postgres():
        op.create_index("ix_raw_reads_day", "raw_reads", ["read_day"], unique=False)
    if _is_postgres():
        op.create_index("ix_raw_reads_file", "raw_reads", ["file_id"], unique=False)
    op.create_table(
        "register_reads",
        sa.Column("file_id", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.BigInteger(), nullable=False),
        sa.Column("meter_id", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "value",
            sa.Double(),
            nullable=True,
            comment="register as displayed (dial units, multiplier not applied)",
        ),
        sa.Column("unit", sa.String(), nullable=False),
        sa.Column("source_unit", sa.String(), nullable=False),
        sa.Column("source_quality", sa.String(), nullable=True),
        sa.Column("read_day", sa.Date(), nullable=False),
    )
    if _is_postgres():
        op.create_index("ix_register_reads_day", "register_reads", ["read_day"], unique=False)
    op.create_table(
        "rejected_rows",
        sa.Column("file_id", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.BigInteger(), nullable=False),
        sa.Column("raw_text", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    op.create_index("ix_rejected_rows_file", "rejected_rows", ["file_id"], unique=False)
    op.create_table(
        "service_points",
        sa.Column("service_point_id", sa.String(), nullable=False),
        sa.Column("commodity", sa.String(), nullable=False),
        sa.Column("timezone", sa.String(), nullable=False, comment="IANA time zone"),
        sa.Column("rate_code", sa.String(), nullable=True),
        sa.Column("billing_cycle", sa.String(), nullable=True),
        sa.Column("route", sa.String(), nullable=True),
        sa.Column("zone_id", sa.String(), nullable=True),
        sa.Column("customer_class", sa.String(), nullable=True),
        sa.Column("has_solar", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("status", sa.String(), server_default="active", nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("service_point_id"),
    )
    op.create_table(
        "usage_alerts",
        sa.Column("alert_id", sa.String(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=True),
        sa.Column("meter_id", sa.String(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("status", sa.String(), server_default="pending", nullable=False),
        sa.PrimaryKeyConstraint("alert_id"),
    )
    op.create_table(
        "daily_usage",
        sa.Column("meter_id", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("read_day", sa.Date(), nullable=False),
        sa.Column("total", sa.Double(), nullable=True),
        sa.Column("max_value", sa.Double(), nullable=True),
        sa.Column("intervals", sa.Integer(), nullable=False),
        sa.Column("valid_intervals", sa.Integer(), nullable=False),
        sa.Column("estimated_intervals", sa.Integer(), nullable=False),
        sa.Column("has_outage", sa.Boolean(), nullable=False),
        sa.Column("unit", sa.String(), nullable=True),
        comment="Per meter-channel-day summary of current intervals; history for later days' rules.",
    )
    if _is_postgres():
        op.create_index("ix_daily_usage_day", "daily_usage", ["read_day"], unique=False)
    op.create_table(
        "vee_exceptions",
        sa.Column(
            "exception_id", sa.String(), nullable=False, comment="stable hash of meter, channel, day, rule"
        ),
        sa.Column("meter_id", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("read_day", sa.Date(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("intervals", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column(
            "status", sa.String(), nullable=False, comment="open | accepted | edited | dismissed | resolved"
        ),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("resolved_by", sa.String(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("exception_id"),
    )
    op.create_index("ix_vee_exceptions_status", "vee_exceptions", ["status"], unique=False)
    op.create_index("ix_vee_exceptions_day", "vee_exceptions", ["read_day"], unique=False)
    op.create_table(
        "zone_balances",
        sa.Column("zone_id", sa.String(), nullable=False),
        sa.Column("interval_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        sa.Column("input_volume", sa.Double(), nullable=True),
        sa.Column("metered_volume", sa.Double(), nullable=True),
        sa.Column("loss_volume", sa.Double(), nullable=True),
        sa.Column("unit", sa.String(), nullable=True),
        sa.Column("read_day", sa.Date(), nullable=False),
    )
    if _is_postgres():
        op.create_index("ix_zone_balances_day", "zone_balances", ["read_day"], unique=False)
    op.create_table(
        "zones",
        sa.Column("zone_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("timezone", sa.String(), nullable=False),
        sa.Column("bulk_meter_ids", sa.String(), nullable=True, comment="';'-joined meter ids"),
        sa.Column("parent_zone_id", sa.String(), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("zone_id"),
    )
    op.execute(_current_intervals_view())


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS current_intervals")
    op.drop_table("daily_usage")
    op.drop_table("zones")
    if _is_postgres():
        op.drop_index("ix_zone_balances_day", table_name="zone_balances")
    op.drop_table("zone_balances")
    op.drop_index("ix_vee_exceptions_status", table_name="vee_exceptions")
    op.drop_table("vee_exceptions")
    op.drop_table("usage_alerts")
    op.drop_table("service_points")
    op.drop_index("ix_rejected_rows_file", table_name="rejected_rows")
    op.drop_table("rejected_rows")
    if _is_postgres():
        op.drop_index("ix_register_reads_day", table_name="register_reads")
    op.drop_table("register_reads")
    if _is_postgres():
        op.drop_index("ix_raw_reads_file", table_name="raw_reads")
    if _is_postgres():
        op.drop_index("ix_raw_reads_day", table_name="raw_reads")
    op.drop_table("raw_reads")
    op.drop_table("protection_flags")
    op.drop_table("outbound_messages")
    op.drop_table("meters")
    op.drop_table("meter_installs")
    if _is_postgres():
        op.drop_index("ix_meter_events_day", table_name="meter_events")
    op.drop_table("meter_events")
    op.drop_table("loss_events")
    if _is_postgres():
        op.drop_index("ix_intervals_day", table_name="intervals")
    op.drop_table("intervals")
    op.drop_table("headend_files")
    op.drop_index("ix_billing_determinants_cycle", table_name="billing_determinants")
    op.drop_table("billing_determinants")
    op.drop_table("billing_cycles")
    op.drop_table("accounts")
    op.execute(sa.schema.DropSequence(sa.Sequence("headend_file_id_seq")))


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _current_intervals_view() -> str:
    """The current version of every interval: what downstream stages read."""
    cols = (
        "meter_id, channel, interval_end, version, interval_seconds, value, unit, status, espi_quality, "
        "iec_quality, estimation_method, failed_rules, source_file_id, source_line, read_day, created_by, "
        "created_at, reason, previous_value, billed"
    )
    return (
        f"CREATE VIEW current_intervals AS SELECT {cols} FROM ("
        f" SELECT {cols}, row_number() OVER (PARTITION BY meter_id, channel, interval_end"
        " ORDER BY version DESC) AS rn FROM intervals) ranked WHERE rn = 1"
    )
