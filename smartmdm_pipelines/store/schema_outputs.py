"""The store's downstream tables: billing, integration (outbox, CIS batches, head-end cursors),
water (zone balances, night flow, loss events), revenue protection and usage alerts.

They share ``schema.metadata`` with the master-data, ingestion and VEE tables of
``store/schema.py`` (which imports this module, so ``metadata`` is always complete); the same
conventions hold: UTC timestamps, intervals identified by their end, ``read_day`` the operating day.
"""

from __future__ import annotations

import sqlalchemy as sa

from smartmdm_pipelines.store.schema import _ts, metadata

# --- Billing, integration, analytics ---------------------------------------------------------------

billing_determinants = sa.Table(
    "billing_determinants",
    metadata,
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("service_point_id", sa.String, nullable=False),
    sa.Column("cycle_id", sa.String, nullable=False),
    sa.Column("period_start", sa.Date, nullable=False),
    sa.Column("period_end", sa.Date, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column(
        "determinant", sa.String, nullable=False, comment="e.g. kwh_delivered, kwh_tou_on_peak, kw_max"
    ),
    sa.Column("value", sa.Double),
    sa.Column("unit", sa.String),
    sa.Column("estimated_share", sa.Double),
    sa.Column("is_correction", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("content_hash", sa.String),
    _ts("created_at", nullable=False),
    sa.Column("tou_period", sa.SmallInteger, comment="0-based tariff period for TOU determinants"),
    sa.Column("source", sa.String, comment="interval | register"),
    sa.Column("rate_code", sa.String, comment="tariff of this segment of the period"),
    sa.Column("segment_start", sa.Date, comment="first local day of the segment (rate change, move-in/out)"),
    sa.Column("segment_end", sa.Date, comment="last local day of the segment (inclusive)"),
)

tariffs = sa.Table(
    "tariffs",
    metadata,
    sa.Column("rate_code", sa.String, nullable=False),
    sa.Column("effective_from", sa.Date, nullable=False),
    sa.Column("effective_to", sa.Date, comment="exclusive; NULL = still in force"),
    sa.Column("label", sa.String, comment="URDB label"),
    sa.Column("name", sa.String),
    sa.Column("utility", sa.String),
    sa.Column(
        "holidays", sa.String, nullable=False, comment="holiday calendar mapped to the weekend schedule"
    ),
    sa.Column("netting", sa.String, nullable=False, comment="per_period | per_interval | buy_all_sell_all"),
    sa.Column("demand_window_minutes", sa.Integer, nullable=False),
    sa.Column("demand_method", sa.String, nullable=False, comment="block | rolling"),
    sa.Column(
        "billing_unit", sa.String, nullable=False, comment="unit the tariff bills in: kWh, CCF, kgal, therm …"
    ),
    sa.Column("urdb_json", sa.Text, nullable=False, comment="the tariff as imported"),
    sa.Column("content_hash", sa.String, nullable=False),
    _ts("loaded_at"),
    sa.PrimaryKeyConstraint("rate_code", "effective_from"),
)

tariff_schedules = sa.Table(
    "tariff_schedules",
    metadata,
    sa.Column("rate_code", sa.String, nullable=False),
    sa.Column("effective_from", sa.Date, nullable=False),
    sa.Column("kind", sa.String, nullable=False, comment="energy | demand"),
    sa.Column("month", sa.SmallInteger, nullable=False, comment="1..12"),
    sa.Column("daytype", sa.String, nullable=False, comment="weekday | weekend (holidays use weekend)"),
    sa.Column("hour", sa.SmallInteger, nullable=False, comment="local clock hour the interval starts in"),
    sa.Column("period", sa.SmallInteger, nullable=False, comment="0-based URDB period index"),
    sa.PrimaryKeyConstraint("rate_code", "effective_from", "kind", "month", "daytype", "hour"),
    comment="URDB 12x24 schedules in long form, for set-based TOU bucketing in dbt.",
)

tariff_holidays = sa.Table(
    "tariff_holidays",
    metadata,
    sa.Column("rate_code", sa.String, nullable=False),
    sa.Column("effective_from", sa.Date, nullable=False),
    sa.Column("holiday", sa.Date, nullable=False),
    sa.Column("name", sa.String),
    sa.PrimaryKeyConstraint("rate_code", "effective_from", "holiday"),
)

system_peaks = sa.Table(
    "system_peaks",
    metadata,
    sa.Column("program", sa.String, nullable=False, comment="e.g. ERCOT-4CP"),
    _ts("interval_end", nullable=False),
    sa.Column("interval_seconds", sa.Integer, nullable=False),
    sa.PrimaryKeyConstraint("program", "interval_end"),
    comment="System-peak intervals for coincident-peak demand (an external input).",
)

billing_closes = sa.Table(
    "billing_closes",
    metadata,
    sa.Column("cycle_id", sa.String, nullable=False),
    sa.Column("period_start", sa.Date, nullable=False),
    sa.Column("period_end", sa.Date, nullable=False),
    _ts("closed_at", nullable=False),
    sa.Column("outcome", sa.String, nullable=False, comment="closed | corrected | unchanged | refused"),
    sa.Column("closed_by", sa.String, nullable=False),
    sa.Column("forced", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("completeness", sa.Double),
    sa.Column("accounts", sa.Integer),
    sa.Column("new_versions", sa.Integer),
    sa.Column("export_path", sa.String),
    sa.Column("reason", sa.Text),
    sa.PrimaryKeyConstraint("cycle_id", "period_start", "closed_at"),
    comment="Every close or re-close of a billing cycle period, including refusals.",
)

outbound_messages = sa.Table(
    "outbound_messages",
    metadata,
    sa.Column("idempotency_key", sa.String, primary_key=True),
    sa.Column("channel", sa.String, nullable=False, comment="cis_batch | cis_api | portal | alert"),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String, nullable=False, comment="pending | sent | acknowledged | failed"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("response", sa.Text),
    _ts("created_at", nullable=False),
    _ts("sent_at"),
    _ts("acknowledged_at"),
)

outbox_seq = sa.Sequence("outbox_seq", metadata=metadata)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger,
        server_default=sa.text("nextval('outbox_seq')"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("destination", sa.String, nullable=False, comment="cis | portal"),
    sa.Column("message_id", sa.String(32), nullable=False, comment="stable: same content, same id"),
    sa.Column("meter_id", sa.String, nullable=False),
    sa.Column("service_point_id", sa.String),
    sa.Column("account_id", sa.String),
    sa.Column("channel", sa.String, nullable=False),
    _ts("interval_end", nullable=False),
    sa.Column("interval_seconds", sa.Integer),
    sa.Column("value", sa.Double),
    sa.Column("unit", sa.String),
    sa.Column("status", sa.String),
    sa.Column("quality", sa.String, comment="IEC 61968-9 ReadingQualityType"),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("read_day", sa.Date, nullable=False),
    sa.Column("state", sa.String, nullable=False, comment="pending | delivered | dead"),
    sa.Column("batch_key", sa.String, comment="the Idempotency-Key of the batch it was sent in"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    _ts("created_at", nullable=False),
    _ts("delivered_at"),
    comment="Interval versions to push to the CIS and the portal (written with the versions).",
)

headend_cursors = sa.Table(
    "headend_cursors",
    metadata,
    sa.Column("source", sa.String, primary_key=True),
    sa.Column("cursor", sa.String),
    _ts("updated_at"),
    comment="The pull connector's `since` cursor per head-end.",
)

zone_balances = sa.Table(
    "zone_balances",
    metadata,
    sa.Column("zone_id", sa.String, nullable=False),
    _ts("interval_end", nullable=False),
    sa.Column("interval_seconds", sa.Integer, nullable=False),
    sa.Column("input_volume", sa.Double),
    sa.Column("metered_volume", sa.Double),
    sa.Column("loss_volume", sa.Double),
    sa.Column("unit", sa.String),
    sa.Column("read_day", sa.Date, nullable=False),
    sa.Column("estimated_volume", sa.Double, comment="part of metered_volume that is estimated"),
    sa.Column("input_completeness", sa.Double, comment="share of expected inlet intervals present (0..1)"),
    sa.Column(
        "metered_completeness", sa.Double, comment="share of expected customer intervals present (0..1)"
    ),
    sa.Column("complete", sa.Boolean, comment="both sides complete enough to raise loss events"),
)

zone_night_flow = sa.Table(
    "zone_night_flow",
    metadata,
    sa.Column("zone_id", sa.String, nullable=False),
    sa.Column("read_day", sa.Date, nullable=False, comment="local day whose night window is measured"),
    sa.Column("min_night_flow", sa.Double, comment="minimum hourly inflow rate in the night window (unit/h)"),
    sa.Column("legitimate_night_use", sa.Double, comment="allowance for customer night use (unit/h)"),
    sa.Column("excess_night_flow", sa.Double, comment="min_night_flow - legitimate_night_use (unit/h)"),
    sa.Column("baseline", sa.Double, comment="robust baseline of min_night_flow (unit/h)"),
    sa.Column("unit", sa.String),
    sa.Column("completeness", sa.Double, comment="share of the window's inlet intervals present"),
)

loss_events = sa.Table(
    "loss_events",
    metadata,
    sa.Column("event_id", sa.String, primary_key=True),
    sa.Column("zone_id", sa.String),
    sa.Column("meter_id", sa.String),
    sa.Column(
        "kind",
        sa.String,
        nullable=False,
        comment="abrupt | gradual | balance (legacy: leak | burst | unauthorized_use)",
    ),
    _ts("start_at", nullable=False),
    _ts("end_at"),
    sa.Column("rate", sa.Double),
    sa.Column("unit", sa.String),
    sa.Column("detail", sa.Text),
    sa.Column("volume", sa.Double, comment="volume lost from start to end (or to the last evaluated hour)"),
    sa.Column("confidence", sa.Double, comment="0..1"),
    sa.Column("source", sa.String, comment="balance | inflow (which detector raised it)"),
    sa.Column("evidence", sa.Text, comment="JSON: series excerpt, statistics, merged event ids"),
    sa.Column("status", sa.String, comment="open | ended"),
    _ts("detected_at"),
    _ts("updated_at"),
)

protection_flags = sa.Table(
    "protection_flags",
    metadata,
    sa.Column("flag_id", sa.String, primary_key=True),
    sa.Column("meter_id", sa.String, nullable=False),
    sa.Column("service_point_id", sa.String),
    sa.Column("indicator", sa.String, nullable=False),
    _ts("start_at", nullable=False),
    _ts("end_at"),
    sa.Column("score", sa.Double),
    sa.Column("detail", sa.Text),
    sa.Column("status", sa.String, nullable=False, server_default="open"),
    sa.Column("case_id", sa.String, comment="the revenue-protection case the signal supports"),
    sa.Column("volume", sa.Double, comment="unbilled volume the signal implies (unit below)"),
    sa.Column("unit", sa.String),
    sa.Column("read_day", sa.Date, comment="operating day of the evaluation that found the signal"),
    comment="Revenue-protection signals per service point and evaluation day (replaced per day).",
)

protection_cases = sa.Table(
    "protection_cases",
    metadata,
    sa.Column("case_id", sa.String, primary_key=True, comment="stable: one case per service point"),
    sa.Column("service_point_id", sa.String, nullable=False),
    sa.Column("account_id", sa.String),
    sa.Column("meter_ids", sa.String, comment="';'-joined meters of the signals"),
    sa.Column("commodity", sa.String),
    sa.Column("customer_class", sa.String),
    sa.Column("rate_code", sa.String),
    sa.Column("zone_id", sa.String),
    sa.Column("status", sa.String, nullable=False, comment="open | confirmed | false_positive | closed"),
    sa.Column("score", sa.Double, nullable=False, comment="0..1, combined strength of the signals"),
    sa.Column("revenue_at_stake", sa.Double, comment="shadow-billed unbilled volume, currency units"),
    sa.Column("unbilled_volume", sa.Double),
    sa.Column("unit", sa.String),
    sa.Column("indicators", sa.String, comment="';'-joined indicators of the latest evaluation"),
    _ts("first_signal_at"),
    _ts("last_signal_at", comment="latest start of a supporting signal"),
    sa.Column("evidence", sa.Text, comment="JSON: the signals and their series excerpts"),
    sa.Column("as_of", sa.Date, comment="operating day of the latest evaluation"),
    sa.Column("opened_as_of", sa.Date, comment="operating day of the evaluation that opened or reopened it"),
    _ts("opened_at", nullable=False),
    _ts("updated_at", nullable=False),
    _ts("disposition_at"),
    sa.Column("disposition_by", sa.String),
    sa.Column("disposition_reason", sa.Text),
    sa.Column("disposition_score", sa.Double, comment="score when the analyst decided (new-evidence test)"),
    sa.Column("disposition_indicators", sa.String, comment="indicators when the analyst decided"),
    sa.Column("reopened", sa.Integer, nullable=False, server_default="0"),
    comment="Revenue-protection cases ranked by revenue at stake; closed ones reopen only on new evidence.",
)

protection_case_history = sa.Table(
    "protection_case_history",
    metadata,
    sa.Column("case_id", sa.String, nullable=False),
    _ts("changed_at", nullable=False),
    sa.Column("status_from", sa.String, comment="NULL when the case was opened"),
    sa.Column("status_to", sa.String, nullable=False),
    sa.Column("changed_by", sa.String, nullable=False, comment="analyst name, or system:protection"),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("score", sa.Double),
    sa.Column("revenue_at_stake", sa.Double),
    sa.PrimaryKeyConstraint("case_id", "changed_at", "status_to"),
    comment="Append-only audit of every case status change (who, when, why); never updated.",
)

usage_alerts = sa.Table(
    "usage_alerts",
    metadata,
    sa.Column("alert_id", sa.String, primary_key=True),
    sa.Column("account_id", sa.String),
    sa.Column("meter_id", sa.String),
    sa.Column("kind", sa.String, nullable=False),
    _ts("detected_at", nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("status", sa.String, nullable=False, server_default="pending"),
    sa.Column("rule_id", sa.String, comment="the alert_rules row that raised it"),
    sa.Column("service_point_id", sa.String),
    sa.Column(
        "episode_key", sa.String, comment="identifies the episode within the rule (a day, a run start …)"
    ),
    sa.Column("value", sa.Double, comment="what was measured"),
    sa.Column("threshold", sa.Double),
    _ts("ended_at", comment="when the condition stopped holding (NULL: still open)"),
    _ts("notified_at", comment="when the notification was queued (NULL: not yet: quiet hours, cool-down)"),
    comment="Customer usage alerts, one row per episode (alert_id = hash of rule and episode key).",
)

alert_rules = sa.Table(
    "alert_rules",
    metadata,
    sa.Column("rule_id", sa.String, primary_key=True, comment="{service_point_id}:{kind}"),
    sa.Column("service_point_id", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False, comment="domain/portal/alerts.py KINDS"),
    sa.Column("threshold", sa.Double),
    sa.Column("hours", sa.Integer, comment="continuous_flow: hours of uninterrupted flow"),
    sa.Column("percent", sa.Double, comment="usage_vs_last_year: % above last year"),
    sa.Column("quiet_start", sa.SmallInteger, comment="local hour quiet hours start"),
    sa.Column("quiet_end", sa.SmallInteger, comment="local hour quiet hours end (exclusive)"),
    sa.Column("cooldown_hours", sa.Double, nullable=False, server_default="24"),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("source", sa.String, nullable=False, comment="api | cis"),
    sa.Column("updated_by", sa.String),
    _ts("updated_at", nullable=False),
    comment="Customer-set alert thresholds per service point (portal API PUT or CIS sync).",
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column(
        "id", sa.BigInteger, primary_key=True, autoincrement=False, comment="1, 2, 3 … (the chain order)"
    ),
    _ts("acted_at", nullable=False, comment="when (UTC)"),
    sa.Column("actor", sa.String, nullable=False, comment="who: a person, a token subject, cis-sync"),
    sa.Column("action", sa.String, nullable=False, comment="e.g. exception.accept, billing.force_close"),
    sa.Column("object_type", sa.String, nullable=False),
    sa.Column("object_id", sa.String, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, comment="why"),
    sa.Column("details", sa.Text, nullable=False, comment="canonical JSON (before/after where it applies)"),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False, comment="sha256 of the canonical row (domain/audit.py)"),
    comment="Append-only audit of every manual action, hash-chained; PostgreSQL refuses UPDATE/DELETE.",
)

sa.Index(
    "ix_billing_determinants_cycle", billing_determinants.c.cycle_id, billing_determinants.c.period_start
)
sa.Index("ix_zone_balances_day", zone_balances.c.read_day)
sa.Index("ix_protection_flags_day", protection_flags.c.read_day)
sa.Index("ix_audit_log_action_at", audit_log.c.action, audit_log.c.acted_at)
