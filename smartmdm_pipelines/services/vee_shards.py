"""VEE of an operating day in meter shards (issue 14: independent work units for Celery workers).

A day of ``n`` shards runs in two steps per shard, the shards of each step side by side:
1. ``store_profile_parts``: validate the shard's meters and store its class-profile sums and
   counts in ``vee_profile_parts`` (a few rows per class and slot; no interval is written);
2. ``run_shard``: VEE of the shard's meters (services.vee.run_day restricted to them) with the
   parts of every shard, so class-profile estimates (E5) use the whole day's profile.
Every row VEE writes belongs to one meter (interval versions, exceptions, daily_usage, the
portal rollup, outbox messages), so shards write disjoint rows and the result is the unsharded
day's. Validation runs twice per shard: the steps share nothing but the store (workers on
different machines have no common disk).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from smartmdm_pipelines.config import UtilityConfig
from smartmdm_pipelines.domain.vee.class_profiles import PART_COLUMNS, profile_parts
from smartmdm_pipelines.domain.vee.shards import Shard, meters_in
from smartmdm_pipelines.domain.vee.validation import validate_day
from smartmdm_pipelines.services.exceptions import queue_summary
from smartmdm_pipelines.services.vee import VeeRun, load_inputs, run_day
from smartmdm_pipelines.store.intervals import current_intervals_sql
from smartmdm_pipelines.store.store import Store


def day_meters(store: Store, day: dt.date) -> list[str]:
    """Every meter VEE of ``day`` can write a row for: the master data's meters, the meters with
    raw reads that day (unregistered ones included), and those already holding the day's
    exceptions or daily totals (an exception that is no longer found is resolved by its shard)."""
    frame = store.read_frame(
        "SELECT meter_id FROM meters UNION SELECT meter_id FROM raw_reads WHERE read_day = :day "
        "UNION SELECT meter_id FROM vee_exceptions WHERE read_day = :day "
        "UNION SELECT meter_id FROM daily_usage WHERE read_day = :day",
        {"day": day},
    )
    return frame["meter_id"].dropna().astype(str).tolist()


def shard_meters(store: Store, day: dt.date, shard: Shard) -> list[str]:
    """The meters of ``day`` that fall in ``shard``."""
    return meters_in(day_meters(store, day), shard)


def store_profile_parts(store: Store, day: dt.date, cfg: UtilityConfig, shard: Shard) -> int:
    """Step 1: the class-profile sums and counts of the shard's valid intervals into
    ``vee_profile_parts`` (replacing the shard's earlier ones): rows written."""
    meters = shard_meters(store, day, shard)
    parts = pd.DataFrame(columns=PART_COLUMNS)
    if meters:
        validated = validate_day(load_inputs(store, day, cfg, meters_only=meters))
        parts = profile_parts(validated.intervals, cfg.utility.timezone)
    where = {"read_day": day, "shard_count": shard.count, "shard": shard.index}
    rows = parts.assign(read_day=day, shard_count=shard.count, shard=shard.index)
    return store.replace_partition("vee_profile_parts", where, rows)[1]


def stored_profile_parts(store: Store, day: dt.date, count: int) -> pd.DataFrame:
    """Every shard's parts of ``day`` split in ``count`` shards."""
    return store.read_frame(
        f"SELECT {', '.join(PART_COLUMNS)} FROM vee_profile_parts WHERE read_day = :day AND shard_count = :n",
        {"day": day, "n": count},
    )


def run_shard(store: Store, day: dt.date, cfg: UtilityConfig, shard: Shard) -> VeeRun | None:
    """Step 2 (after step 1 of every shard): VEE of the shard's meters with the day's stored
    parts; None when the shard has no meter that day."""
    meters = shard_meters(store, day, shard)
    if not meters:
        return None
    parts = stored_profile_parts(store, day, shard.count)
    return run_day(store, day, cfg, meters=meters, shard=shard, class_profile_parts=parts)


def run_day_sharded(store: Store, day: dt.date, cfg: UtilityConfig, count: int) -> list[VeeRun]:
    """Both steps of every shard of ``day`` one after the other (what the Dagster job spreads
    over workers): the reference the tests compare the distributed run with."""
    shards = [Shard(i, count) for i in range(count)]
    for shard in shards:
        store_profile_parts(store, day, cfg, shard)
    runs = [run_shard(store, day, cfg, s) for s in shards]
    return [r for r in runs if r is not None]


def day_figures(store: Store, day: dt.date) -> tuple[dict, dict]:
    """The day's figures once every shard has run, from the store (the shards' own figures stay in
    their workers): (validated_intervals, interval_estimates) metadata."""
    counts = store.read_frame(
        "SELECT status, estimation_method, count(*) AS n FROM ("
        + current_intervals_sql("read_day = :day", "status, estimation_method")
        + ") c GROUP BY status, estimation_method",
        {"day": day},
    )
    by_status = {str(s): int(n) for s, n in counts.groupby("status")["n"].sum().items()}
    estimated = counts[counts["status"].eq("estimated")]
    by_method = {str(m): int(n) for m, n in estimated.groupby("estimation_method")["n"].sum().items()}
    total = int(counts["n"].sum())
    queue = queue_summary(store, day, day)
    validated = {
        "dagster/row_count": total,
        "current_intervals_by_status": by_status,
        "open_exceptions": queue["open"],
        "open_exceptions_by_rule": queue["open_by_rule"],
    }
    estimates = {
        "dagster/row_count": by_status.get("estimated", 0),
        "estimated_share": round(by_status.get("estimated", 0) / max(total, 1), 5),
        "estimated_by_method": by_method,
    }
    return validated, estimates
