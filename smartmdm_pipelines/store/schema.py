"""The system of record as SQLAlchemy Core tables (one schema for DuckDB and PostgreSQL).

Times are UTC (``TIMESTAMP WITH TIME ZONE``); an interval is identified by its end
instant, its length is a column. Large append-mostly tables (``raw_reads``,
``intervals``) carry no primary key: their identity is documented per table and
enforced by the load paths, because a unique index makes bulk loads an order of
magnitude slower on DuckDB. ``read_day`` is the operating day in the utility's time
zone; it is the partition key the pipelines rewrite atomically.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

TS = sa.DateTime(timezone=True)


def _ts(name: str, nullable: bool = True, **kw) -> sa.Column:
    return sa.Column(name, TS, nullable=nullable, **kw)


# --- CIS master data (mastered in the CIS, synchronised inbound) -------------------------------

meters = sa.Table(
    "meters",
    metadata,
    sa.Column("meter_id", sa.String, primary_key=True),
    sa.Column("kind", sa.String, nullable=False, comment="manual | amr | ami"),
    sa.Column("commodity", sa.String, nullable=False, comment="electric | water | gas"),
    sa.Column("role", sa.String, nullable=False, server_default="customer", comment="customer | zone_bulk"),
    sa.Column("channels", sa.String, nullable=False, comment="';'-joined channel codes"),
    sa.Column("unit", sa.String, nullable=False),
    sa.Column("interval_seconds", sa.Integer),
    sa.Column("multiplier", sa.Double, nullable=False, server_default="1"),
    sa.Column("dials", sa.Integer),
    sa.Column("headend", sa.String),
    _ts("synced_at"),
)

service_points = sa.Table(
    "service_points",
    metadata,
    sa.Column("service_point_id", sa.String, primary_key=True),
    sa.Column("commodity", sa.String, nullable=False),
    sa.Column("timezone", sa.String, nullable=False, comment="IANA time zone"),
    sa.Column("rate_code", sa.String),
    sa.Column("billing_cycle", sa.String),
    sa.Column("route", sa.String),
    sa.Column("zone_id", sa.String),
    sa.Column("customer_class", sa.String),
    sa.Column("has_solar", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String, nullable=False, server_default="active"),
    _ts("synced_at"),
)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("service_point_id", sa.String, nullable=False),
    sa.Column("customer_name", sa.String),
    sa.Column("move_in", sa.Date, nullable=False),
    sa.Column("move_out", sa.Date),
    _ts("synced_at"),
    sa.PrimaryKeyConstraint("account_id", "service_point_id", "move_in"),
)

meter_installs = sa.Table(
    "meter_installs",
    metadata,
    sa.Column("meter_id", sa.String, nullable=False),
    sa.Column("service_point_id", sa.String, nullable=False),
    _ts("installed_at", nullable=False),
    _ts("removed_at"),
    sa.Column("multiplier", sa.Double, nullable=False, server_default="1"),
    sa.Column("start_register", sa.Double),
    sa.Column("end_register", sa.Double),
    _ts("synced_at"),
    sa.PrimaryKeyConstraint("meter_id", "service_point_id", "installed_at"),
)

billing_cycles = sa.Table(
    "billing_cycles",
    metadata,
    sa.Column("cycle_id", sa.String, nullable=False),
    sa.Column("period_start", sa.Date, nullable=False),
    sa.Column("period_end", sa.Date, nullable=False),
    sa.Column("read_date", sa.Date, nullable=False),
    _ts("synced_at"),
    sa.PrimaryKeyConstraint("cycle_id", "period_start"),
)

zones = sa.Table(
    "zones",
    metadata,
    sa.Column("zone_id", sa.String, primary_key=True),
    sa.Column("name", sa.String),
    sa.Column("timezone", sa.String, nullable=False),
    sa.Column("bulk_meter_ids", sa.String, comment="';'-joined meter ids"),
    sa.Column("parent_zone_id", sa.String),
    _ts("synced_at"),
    sa.Column("zone_class", sa.String, comment="detection parameter class (utility YAML), e.g. dma"),
    sa.Column(
        "tank_level_meter_id", sa.String, comment="meter reporting the level (m) of a tank feeding the zone"
    ),
    sa.Column("tank_area_m2", sa.Double, comment="tank plan area: inflow = feed - area x level change"),
)

service_point_history = sa.Table(
    "service_point_history",
    metadata,
    sa.Column("service_point_id", sa.String, nullable=False),
    sa.Column("valid_from", sa.Date, nullable=False, comment="first day this version applies (inclusive)"),
    sa.Column("valid_to", sa.Date, comment="first day it no longer applies (exclusive); NULL = current"),
    sa.Column("commodity", sa.String, nullable=False),
    sa.Column("timezone", sa.String, nullable=False),
    sa.Column("rate_code", sa.String),
    sa.Column("billing_cycle", sa.String),
    sa.Column("route", sa.String),
    sa.Column("zone_id", sa.String),
    sa.Column("customer_class", sa.String),
    sa.Column("has_solar", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String, nullable=False, server_default="active"),
    _ts("synced_at"),
    sa.PrimaryKeyConstraint("service_point_id", "valid_from"),
    comment="Effective-dated history of service points (rate, cycle, status changes); never overwritten.",
)

# --- Ingestion ------------------------------------------------------------------------------------

headend_file_id_seq = sa.Sequence("headend_file_id_seq", metadata=metadata)

headend_files = sa.Table(
    "headend_files",
    metadata,
    sa.Column(
        "file_id",
        sa.BigInteger,
        server_default=sa.text("nextval('headend_file_id_seq')"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("format", sa.String),
    sa.Column("source", sa.String, comment="head-end / source system"),
    _ts("received_at", nullable=False),
    _ts("loaded_at"),
    sa.Column("status", sa.String, nullable=False, comment="received | loaded | partially loaded | rejected"),
    sa.Column("rows_in", sa.BigInteger, nullable=False, server_default="0", comment="data records read"),
    sa.Column("rows_loaded", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("interval_reads", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("register_reads", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("events", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rows_rejected", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("first_interval_end", TS),
    sa.Column("last_interval_end", TS),
    sa.Column("read_days", sa.String, comment="';'-joined operating days the file touched"),
    sa.Column("archive_path", sa.String),
    sa.Column("error", sa.Text),
    sa.Column("channel", sa.String, comment="how it arrived: file | http | mqtt | pull (NULL: file)"),
    _ts("vee_at", comment="when the real-time path validated the meter-days it touched"),
)

raw_reads = sa.Table(
    "raw_reads",
    metadata,
    sa.Column("file_id", sa.BigInteger, nullable=False),
    sa.Column("line", sa.BigInteger, nullable=False, comment="1-based line in the file"),
    sa.Column("meter_id", sa.String, nullable=False),
    sa.Column("channel", sa.String, nullable=False),
    _ts("interval_end", nullable=False),
    sa.Column("interval_seconds", sa.Integer, nullable=False),
    sa.Column("value", sa.Double, comment="normalised unit; NULL = no read"),
    sa.Column("unit", sa.String, nullable=False),
    sa.Column("source_unit", sa.String, nullable=False),
    sa.Column("source_quality", sa.String),
    sa.Column("read_day", sa.Date, nullable=False, comment="operating day (utility time zone)"),
    comment="Append-only, exactly as received after unit normalisation. Identity: (file_id, line, channel, interval_end).",
)

register_reads = sa.Table(
    "register_reads",
    metadata,
    sa.Column("file_id", sa.BigInteger, nullable=False),
    sa.Column("line", sa.BigInteger, nullable=False),
    sa.Column("meter_id", sa.String, nullable=False),
    sa.Column("channel", sa.String, nullable=False),
    _ts("read_at", nullable=False),
    sa.Column("value", sa.Double, comment="register as displayed (dial units, multiplier not applied)"),
    sa.Column("unit", sa.String, nullable=False),
    sa.Column("source_unit", sa.String, nullable=False),
    sa.Column("source_quality", sa.String),
    sa.Column("read_day", sa.Date, nullable=False),
)

meter_events = sa.Table(
    "meter_events",
    metadata,
    sa.Column("file_id", sa.BigInteger, nullable=False),
    sa.Column("line", sa.BigInteger, nullable=False),
    sa.Column("meter_id", sa.String, nullable=False),
    _ts("event_at", nullable=False),
    sa.Column("event_type", sa.String, nullable=False),
    sa.Column("source_code", sa.String),
    sa.Column("read_day", sa.Date, nullable=False),
)

rejected_rows = sa.Table(
    "rejected_rows",
    metadata,
    sa.Column("file_id", sa.BigInteger, nullable=False),
    sa.Column("line", sa.BigInteger, nullable=False),
    sa.Column("raw_text", sa.Text),
    sa.Column("reason", sa.Text, nullable=False),
)

# --- VEE ------------------------------------------------------------------------------------------

intervals = sa.Table(
    "intervals",
    metadata,
    sa.Column("meter_id", sa.String, nullable=False),
    sa.Column("channel", sa.String, nullable=False),
    _ts("interval_end", nullable=False),
    sa.Column("version", sa.Integer, nullable=False, comment="1, 2, … per (meter, channel, interval_end)"),
    sa.Column("interval_seconds", sa.Integer, nullable=False),
    sa.Column("value", sa.Double),
    sa.Column("unit", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False, comment="valid | estimated | edited | suspect | missing"),
    sa.Column("espi_quality", sa.SmallInteger, comment="NAESB ESPI QualityOfReading"),
    sa.Column("iec_quality", sa.String, comment="IEC 61968-9 ReadingQualityType"),
    sa.Column("estimation_method", sa.String),
    sa.Column("failed_rules", sa.String, comment="';'-joined rule ids"),
    sa.Column("source_file_id", sa.BigInteger),
    sa.Column("source_line", sa.BigInteger),
    sa.Column("read_day", sa.Date, nullable=False),
    sa.Column("created_by", sa.String, nullable=False),
    _ts("created_at", nullable=False),
    sa.Column("reason", sa.Text, comment="why this version exists: estimation inputs, edit reason …"),
    sa.Column("previous_value", sa.Double, comment="value of the version this one supersedes"),
    sa.Column("billed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column(
        "register_value", sa.Double, comment="estimated register reading (dial units) of a register estimate"
    ),
    comment="Versioned validated store; every change is a new version. Identity: (meter_id, channel, interval_end, version).",
)

daily_usage = sa.Table(
    "daily_usage",
    metadata,
    sa.Column("meter_id", sa.String, nullable=False),
    sa.Column("channel", sa.String, nullable=False),
    sa.Column("read_day", sa.Date, nullable=False),
    sa.Column("total", sa.Double),
    sa.Column("max_value", sa.Double),
    sa.Column("intervals", sa.Integer, nullable=False),
    sa.Column("valid_intervals", sa.Integer, nullable=False),
    sa.Column("estimated_intervals", sa.Integer, nullable=False),
    sa.Column("has_outage", sa.Boolean, nullable=False),
    sa.Column("unit", sa.String),
    comment="Per meter-channel-day summary of current intervals; history for later days' rules.",
)

usage_hourly = sa.Table(
    "usage_hourly",
    metadata,
    sa.Column("meter_id", sa.String, nullable=False),
    sa.Column("channel", sa.String, nullable=False),
    _ts("hour_start", nullable=False, comment="UTC hour the intervals' starts fall in"),
    sa.Column("value_sum", sa.Double, comment="sum of the values present; NULL when none is"),
    sa.Column("value_count", sa.Integer, nullable=False, comment="intervals with a value"),
    sa.Column("interval_count", sa.Integer, nullable=False, comment="intervals, missing ones included"),
    sa.Column("estimated_count", sa.Integer, nullable=False),
    sa.Column(
        "status_rank",
        sa.SmallInteger,
        comment="worst portal status of the values present: 0 actual, 1 edited, 2 estimated; NULL: none",
    ),
    _ts("first_end", nullable=False, comment="earliest interval_end in the hour"),
    _ts("last_end", nullable=False, comment="latest interval_end in the hour"),
    sa.Column("interval_seconds", sa.Integer, nullable=False, comment="the longest interval in the hour"),
    sa.Column("unit", sa.String),
    comment="Hourly rollup of current intervals (services/usage_rollup.py, refreshed by every writer "
    "of interval versions); serves the portal's hour/day/month history and bill-to-date.",
)

vee_exceptions = sa.Table(
    "vee_exceptions",
    metadata,
    sa.Column(
        "exception_id", sa.String, primary_key=True, comment="stable hash of meter, channel, day, rule"
    ),
    sa.Column("meter_id", sa.String, nullable=False),
    sa.Column("channel", sa.String, nullable=False),
    sa.Column("read_day", sa.Date, nullable=False),
    _ts("period_start", nullable=False),
    _ts("period_end", nullable=False),
    sa.Column("rule", sa.String, nullable=False),
    sa.Column("severity", sa.String, nullable=False),
    sa.Column("intervals", sa.Integer),
    sa.Column("detail", sa.Text),
    sa.Column("status", sa.String, nullable=False, comment="open | accepted | edited | dismissed | resolved"),
    sa.Column("resolution", sa.Text),
    sa.Column("resolved_by", sa.String),
    _ts("resolved_at"),
    _ts("created_at", nullable=False),
)

vee_profile_parts = sa.Table(
    "vee_profile_parts",
    metadata,
    sa.Column("read_day", sa.Date, nullable=False),
    sa.Column(
        "shard_count", sa.Integer, nullable=False, comment="the day was split into this many meter shards"
    ),
    sa.Column("shard", sa.Integer, nullable=False, comment="0 … shard_count − 1"),
    sa.Column("level", sa.String, nullable=False, comment="fine (with customer class) | coarse"),
    sa.Column("commodity", sa.String, nullable=False),
    sa.Column("channel", sa.String, nullable=False),
    sa.Column("interval_seconds", sa.String, nullable=False),
    sa.Column("customer_class", sa.String, nullable=False, comment="'' at the coarse level"),
    sa.Column("slot", sa.Integer, nullable=False, comment="minute of the local day"),
    sa.Column("value_sum", sa.Double, nullable=False, comment="sum of the valid values"),
    sa.Column("value_count", sa.BigInteger, nullable=False, comment="number of valid values"),
    comment="Class-profile sums of one meter shard of a VEE day (services/vee_shards.py): every shard "
    "estimates with the whole day's class profile. A working table: each shard's first step "
    "replaces its rows.",
)


# Indexes that serve the partition-replace and read paths.
sa.Index("ix_raw_reads_day", raw_reads.c.read_day)
sa.Index("ix_raw_reads_file", raw_reads.c.file_id)
sa.Index("ix_register_reads_day", register_reads.c.read_day)
sa.Index("ix_meter_events_day", meter_events.c.read_day)
sa.Index("ix_rejected_rows_file", rejected_rows.c.file_id)
sa.Index("ix_intervals_day", intervals.c.read_day)
sa.Index("ix_vee_exceptions_status", vee_exceptions.c.status)
sa.Index("ix_vee_exceptions_day", vee_exceptions.c.read_day)
sa.Index("ix_daily_usage_day", daily_usage.c.read_day)
sa.Index("ix_vee_profile_parts_day", vee_profile_parts.c.read_day, vee_profile_parts.c.shard_count)
sa.Index("ix_intervals_meter_end", intervals.c.meter_id, intervals.c.channel, intervals.c.interval_end)
# unique: two writers refreshing the same hours at once cannot both insert (one fails and retries)
sa.Index(
    "ix_usage_hourly_key",
    usage_hourly.c.meter_id,
    usage_hourly.c.channel,
    usage_hourly.c.hour_start,
    unique=True,
)

CURRENT_INTERVALS_VIEW = "current_intervals"  # created by migration 0001

# the downstream tables (billing, integration, water, protection, alerts) live in their own module
# on the same ``metadata``; importing it here keeps ``metadata`` complete for every importer
from smartmdm_pipelines.store import schema_outputs  # noqa: E402, F401
