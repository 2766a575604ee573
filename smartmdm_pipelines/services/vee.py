"""VEE of one operating day against the store: load inputs, run the domain engine, write
new interval versions (append-only), the exception queue and the daily usage summary.

Both stages run in one pass and one transaction: the validation stage's versions (first-pass
status, created_by ``vee:validation``) and the estimation stage's (``vee:estimation``). A
version is written only where something changed, so re-running a day with unchanged data
writes nothing; a manual edit stays current until new data arrives; a billed estimate is
locked (only an actual read replaces it, which raises a restatement exception).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from smartmdm_pipelines.config import UtilityConfig
from smartmdm_pipelines.domain.calendar import holidays_for
from smartmdm_pipelines.domain.timeutil import local_day_bounds
from smartmdm_pipelines.domain.vee.day import EXCEPTION_COLUMNS, DayInputs, DayResult, exception_ids
from smartmdm_pipelines.domain.vee.estimate import estimate_day
from smartmdm_pipelines.domain.vee.history import daily_usage
from smartmdm_pipelines.domain.vee.incremental import rows_to_write
from smartmdm_pipelines.domain.vee.shards import Shard
from smartmdm_pipelines.domain.vee.validation import validate_day
from smartmdm_pipelines.services.derived_intervals import derived_day
from smartmdm_pipelines.services.outbox import emit_versions
from smartmdm_pipelines.store import usage_rollup
from smartmdm_pipelines.store.intervals import current_intervals_sql, version_rank
from smartmdm_pipelines.store.sql_filters import in_list
from smartmdm_pipelines.store.store import Store

VALIDATION_ACTOR = "vee:validation"
ESTIMATION_ACTOR = "vee:estimation"
KEY = ["meter_id", "channel", "interval_end"]
EPS = 1e-9
RULE_SEVERITY = "error"
# the holiday calendar of a pair of years, computed once per process (every chunk of a day asks)
_holidays = functools.lru_cache(maxsize=32)(holidays_for)


@dataclass
class VeeRun:
    day: dt.date
    validation: DayResult
    estimation: DayResult
    validation_versions: int
    estimation_versions: int
    exceptions_open: int


def _read_large(
    store: Store, sql: str, params: dict | None = None, conn: sa.Connection | None = None
) -> pd.DataFrame:
    """The big inputs (raw reads, history): through an Arrow fetch on DuckDB."""
    return store.read_frame(sql, params, conn, via_arrow=True)


def _only(
    store: Store, meters: list[str] | None, column: str = "meter_id", otherwise: str | None = None
) -> str:
    """`` AND column`` is one of ``:meters`` ("" when None): store/sql_filters.py's condition."""
    return "" if meters is None else f" AND {in_list(store.backend, column, otherwise=otherwise)}"


@contextlib.contextmanager
def meter_keys(store: Store, conn: sa.Connection, meters: list[str] | None) -> Iterator[str]:
    """The condition "``meter_id`` is one of ``meters``" on ``conn`` ("" when None: no restriction).

    DuckDB: the ids are registered once as an Arrow table on the connection and every query
    joins it (a 100,000-id list bound as a parameter cost ~0.1 s per query); PostgreSQL: the
    ``:meters`` array parameter as a filter (bind ``meters`` with the query), never a join: the
    tables VEE reads were often just written and their statistics stale (store/sql_filters.py)."""
    if meters is None:
        yield ""
        return
    if store.backend != "duckdb":
        yield in_list(store.backend)
        return
    raw = conn.connection.driver_connection
    name = f"_vee_meters_{uuid.uuid4().hex[:12]}"
    raw.register(name, pa.table({"meter_id": pa.array(list(meters), pa.string())}))
    try:
        yield f'meter_id IN (SELECT meter_id FROM "{name}")'
    finally:
        raw.unregister(name)


def load_inputs(
    store: Store,
    day: dt.date,
    cfg: UtilityConfig,
    with_history: pd.DataFrame | None = None,
    meters_only: list[str] | None = None,
) -> DayInputs:
    """The day's inputs; ``meters_only`` restricts them to those meters (the real-time path
    validates only the meter-days a delivery touched)."""
    with store.engine.connect() as conn, meter_keys(store, conn, meters_only) as keys:
        return _load_inputs(store, conn, keys, day, cfg, meters_only)


def _load_inputs(
    store: Store,
    conn: sa.Connection,
    keys: str,
    day: dt.date,
    cfg: UtilityConfig,
    meters_only: list[str] | None,
) -> DayInputs:
    tz = cfg.utility.timezone
    start, end = local_day_bounds(day, tz)
    vee = cfg.vee_config()
    weeks = vee.default.reference_weeks

    def q(sql: str, params: dict) -> pd.DataFrame:
        return store.read_frame(sql, params, conn)

    only = f" AND {keys}" if keys else ""
    p = {"day": day, "start": start, "end": end, "meters": meters_only}
    reads = _read_large(
        store,
        "SELECT meter_id, channel, interval_end, interval_seconds, value, source_quality, file_id, line "
        f"FROM raw_reads WHERE read_day = :day{only}",
        p,
        conn,
    )
    meters = q(
        "SELECT meter_id, kind, commodity, role, channels, interval_seconds, unit, multiplier, dials "
        f"FROM meters WHERE TRUE{only}",
        p,
    )
    installs = q(
        "SELECT meter_id, service_point_id, installed_at, removed_at, multiplier, start_register, end_register "
        f"FROM meter_installs WHERE TRUE{only}",
        p,
    )  # all of them: a meter installed later than the day must not be expected on it
    # only the service points (and their accounts) the meters are installed at, when restricted
    sp_only = (
        ""
        if meters_only is None
        else f" WHERE service_point_id IN (SELECT service_point_id FROM meter_installs WHERE {keys})"
    )
    sps = q(
        f"SELECT service_point_id, status, timezone, customer_class, has_solar FROM service_points{sp_only}",
        p,
    )
    accounts = q(f"SELECT service_point_id, move_in, move_out FROM accounts{sp_only}", p)
    events = q(
        "SELECT meter_id, event_at, event_type FROM meter_events "
        f"WHERE event_at >= :from AND event_at < :end{only}",
        {**p, "from": start - pd.Timedelta(days=2)},
    )
    registers = q(
        "SELECT meter_id, channel, read_at, value FROM register_reads "
        f"WHERE read_at >= :a AND read_at <= :b{only}",
        {**p, "a": start - pd.Timedelta(hours=1), "b": end + pd.Timedelta(hours=1)},
    )
    daily = q(
        "SELECT meter_id, channel, read_day, total, max_value, intervals, valid_intervals, estimated_intervals, "
        f"has_outage FROM daily_usage WHERE read_day >= :a AND read_day < :day{only}",
        {**p, "a": day - dt.timedelta(weeks=weeks)},
    )
    frontier = store.scalar("SELECT max(last_interval_end) FROM headend_files")
    last_seen = _read_large(
        store,
        "SELECT meter_id, channel, max(interval_end) AS last_end FROM raw_reads "
        f"WHERE read_day >= :day AND read_day <= :until AND value IS NOT NULL{only} GROUP BY meter_id, channel",
        {**p, "until": day + dt.timedelta(days=7)},
        conn,
    )
    derived = derived_day(store, day, cfg, meters, installs)  # intervals from cumulative registers
    reads, registers, last_seen, frontier = derived.added_to(reads, registers, last_seen, frontier)
    years = (day.year - 1, day.year + 1)
    return DayInputs(
        day=day,
        tz=tz,
        reads=reads,
        meters=meters,
        installs=installs,
        service_points=sps,
        accounts=accounts,
        events=events,
        registers=registers,
        daily_history=daily,
        holidays=_holidays(cfg.utility.holidays, *years),
        frontier=pd.Timestamp(frontier) if frontier is not None else None,
        last_seen=last_seen,
        config=vee,
        exceptions=derived.exceptions,
    )


def load_history(store: Store, day: dt.date, series: pd.DataFrame, weeks: int) -> pd.DataFrame:
    """Current intervals of the reference weeks and the next day, only for the series to estimate."""
    if series.empty:
        return pd.DataFrame()
    meters = sorted(series["meter_id"].unique().tolist())
    with store.engine.connect() as conn, meter_keys(store, conn, meters) as keys:
        frame = _read_large(
            store,
            current_intervals_sql(
                f"read_day >= :a AND read_day <= :b AND read_day <> :day AND {keys}",
                "meter_id, channel, interval_end, interval_seconds, value, status, failed_rules, estimation_method",
            ),
            {
                "a": day - dt.timedelta(weeks=weeks),
                "b": day + dt.timedelta(days=1),
                "day": day,
                "meters": meters,
            },
            conn,
        )
    return frame.merge(series, on=["meter_id", "channel"])


@contextlib.contextmanager
def day_transaction(store: Store, day: dt.date, shard: Shard | None = None) -> Iterator[sa.Connection]:
    """The transaction that writes ``day``'s interval versions, serialised with every other
    writer of that day (the real-time path and Dagster's VEE runs) through the store's named lock
    (``Store.begin_locked``): each writer's version comparison (``INSERT … SELECT`` of version + 1)
    sees the other's committed versions, so no version is numbered twice and none is lost.

    A meter shard's run locks ``vee_day:<day>:shard:<i>/<n>`` within the day's lock: shards of
    one day (disjoint meters) write side by side; a whole-day writer waits for them."""
    name = f"vee_day:{day.isoformat()}"
    if shard is None:
        with store.begin_locked(name) as conn:
            yield conn
    else:
        with store.begin_locked(f"{name}:shard:{shard.label}", within=name) as conn:
            yield conn


def run_day(
    store: Store,
    day: dt.date,
    cfg: UtilityConfig,
    meters: list[str] | None = None,
    after_write: Callable[[sa.Connection, pd.Timestamp], None] | None = None,
    new_files: list[int] | None = None,
    shard: Shard | None = None,
    class_profile_parts: pd.DataFrame | None = None,
    now: pd.Timestamp | None = None,
) -> VeeRun:
    """VEE of ``day`` (of only ``meters`` when given: the same rules, estimation and versioning
    on the meter-days a delivery touched). ``after_write(conn, now)`` runs in the transaction
    that writes the versions (the real-time path marks its deliveries validated there).

    ``new_files`` (the real-time path, with ``meters``): the deliveries just received. Each
    series is validated up to its latest read (the day's future is not a gap), the day rules,
    exception queue and daily usage are left to the daily run, and only the intervals
    ``domain.vee.incremental.rows_to_write`` picks are compared and versioned.

    ``shard`` (with ``meters``: the meters of that shard, services/vee_shards.py): the shard's
    lock instead of the whole day's; ``class_profile_parts``: the class-profile sums of every
    shard of the day, so the shard estimates exactly as the whole day would. ``now``: the versions'
    creation instant (default: the clock; the chunks of a chunked day share one)."""
    incremental = new_files is not None
    if incremental and meters is None:
        raise ValueError("a real-time VEE pass (new_files) names its meters")
    if shard is not None and meters is None:
        raise ValueError("a meter shard's VEE run names the shard's meters")
    inputs = load_inputs(store, day, cfg, meters_only=meters)
    inputs.through_last_read = incremental
    inputs.class_profile_parts = class_profile_parts
    validated = validate_day(inputs)
    inputs.history = load_history(store, day, to_estimate(validated), inputs.config.default.reference_weeks)
    estimated = estimate_day(validated, inputs)
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    frame = estimated.intervals
    if not incremental:  # built before the day's lock is taken
        staged, usage = stage_tables(frame), daily_usage(frame, day)
    store.prepare_partitions("intervals", [day])  # the day's month exists before the day is locked
    with day_transaction(store, day, shard) as conn:
        if incremental:
            flagged = _stored_flagged(store, conn, day, cfg, meters)
            frame = frame[rows_to_write(frame, new_files, flagged, inputs.catalog)]
            staged = stage_tables(frame)
            n_val, n_est, open_count = write_staged(
                store, conn, day, staged, None, None, now, meters, incremental=True
            )
        else:
            n_val, n_est, open_count = write_staged(
                store, conn, day, staged, validated.exceptions, usage, now, meters
            )
        if after_write is not None:
            after_write(conn, now)
    return VeeRun(day, validated, estimated, n_val, n_est, open_count)


def to_estimate(validated: DayResult) -> pd.DataFrame:
    """The series (meter_id, channel) holding a suspect or missing interval: those whose history
    the estimation stage needs."""
    todo = validated.intervals.loc[
        validated.intervals["status"].isin(["suspect", "missing"]), ["meter_id", "channel"]
    ]
    return todo.drop_duplicates()


def write_staged(
    store: Store,
    conn: sa.Connection,
    day: dt.date,
    staged: tuple[pa.Table, pa.Table],
    exceptions: pd.DataFrame | None,
    usage: pd.DataFrame | None,
    now: pd.Timestamp,
    meters: list[str] | None,
    incremental: bool = False,
) -> tuple[int, int, int]:
    """The writes of one VEE pass in its transaction ``conn``: the changed versions (``staged``:
    :func:`stage_tables`), the portal rollup, the exception queue and daily usage (not in real
    time: ``incremental``), the outbox. (validation versions, estimation versions, open exceptions)."""
    n_val, n_est, restated = _write_versions(store, conn, day, staged, now, meters, keys_only=incremental)
    if n_val or n_est:  # the portal's hourly rollup follows the versions (none written: unchanged;
        # in real time: the hours of those written now)
        usage_rollup.refresh(conn, day, meters, written_at=now.to_pydatetime() if incremental else None)
    if incremental:
        open_count = _add_exceptions(store, day, restated, now, conn)
    else:
        open_count = _write_exceptions(
            store, day, pd.concat([exceptions, restated], ignore_index=True), now, conn, meters
        )
        where = {"read_day": day} if meters is None else {"read_day": day, "meter_id": meters}
        store.replace_partition("daily_usage", where, usage, conn)
    if n_val or n_est:
        emit_versions(store, conn, day, now, meters)  # the outbox, with the versions
    return n_val, n_est, open_count


def _stored_flagged(
    store: Store, conn: sa.Connection, day: dt.date, cfg: UtilityConfig, meters: list[str]
) -> pd.DataFrame:
    """The intervals of ``meters`` on ``day`` the validation stage once found suspect (any of its
    versions: a superset, which only widens the comparison). A stored gap (missing, awaited) is not
    needed: a read filling it comes with the new deliveries."""
    start, end = local_day_bounds(day, cfg.utility.timezone)
    with meter_keys(store, conn, meters) as keys:
        return store.read_frame(
            "SELECT DISTINCT meter_id, channel, interval_end FROM intervals "
            f"WHERE read_day = :day AND {keys} "
            "AND interval_end > :a AND interval_end <= :b AND created_by = :val AND status = 'suspect'",
            {
                "day": day,
                "meters": meters,
                "a": start - pd.Timedelta(days=1),
                "b": end + pd.Timedelta(days=1),
                "val": VALIDATION_ACTOR,
            },
            conn,
        )


def _add_exceptions(store: Store, day: dt.date, exceptions: pd.DataFrame, now, conn) -> int:
    """Open (or refresh) these exceptions without touching the day's others (the real-time path:
    restatements of billed estimates; the daily run refreshes the whole queue)."""
    if exceptions.empty:
        return 0
    fresh = exceptions.copy()
    ids = fresh["exception_id"].tolist()
    kept = store.read_frame(
        "SELECT exception_id, status, created_at FROM vee_exceptions WHERE exception_id IN (SELECT unnest(:ids))",
        {"ids": ids},
        conn,
    )
    decided = set(kept.loc[kept["status"] != "open", "exception_id"])
    fresh = fresh[~fresh["exception_id"].isin(decided)]
    created = dict(zip(kept["exception_id"], kept["created_at"], strict=False))
    fresh["status"] = "open"
    fresh["created_at"] = fresh["exception_id"].map(created).fillna(now) if created else now
    fresh["read_day"] = pd.Timestamp(day)
    store.execute(
        "DELETE FROM vee_exceptions WHERE status = 'open' AND exception_id IN (SELECT unnest(:ids))",
        {"ids": ids},
        conn,
    )
    store.bulk_insert("vee_exceptions", fresh, conn)
    return len(fresh)


# --- versions: compared and written in SQL -----------------------------------------------------------
#
# The day's candidate rows are bulk-loaded into temporary tables; one INSERT … SELECT per stage
# writes only the rows that differ from the versions already stored. The validation stage compares
# with the latest version it wrote itself (an edit or an estimate on top stays current while the
# received data is unchanged); the estimation stage with the current version once the validation
# stage's versions are in.

_STAGE_VAL = "_vee_stage_validation"
_STAGE_EST = "_vee_stage_estimation"
_VERSION_COLUMNS = [
    "meter_id",
    "channel",
    "interval_end",
    "version",
    "interval_seconds",
    "value",
    "unit",
    "status",
    "espi_quality",
    "iec_quality",
    "estimation_method",
    "failed_rules",
    "source_file_id",
    "source_line",
    "read_day",
    "created_by",
    "created_at",
    "reason",
    "previous_value",
]
_ON = "x.meter_id = s.meter_id AND x.channel = s.channel AND x.interval_end = s.interval_end"


def _same_sql(a: str, b: str) -> str:
    """Numbers equal within EPS, or both NULL (pandas' NaN)."""
    return f"COALESCE(abs({a} - {b}) <= {EPS!r}, {a} IS NULL AND {b} IS NULL)"


def _text_same_sql(a: str, b: str) -> str:
    return f"COALESCE({a}, '') = COALESCE({b}, '')"


def _stage_table(name: str, *columns: sa.Column) -> sa.Table:
    return sa.Table(name, sa.MetaData(), *columns, prefixes=["TEMPORARY"])


def _stage_columns() -> list[sa.Column]:
    return [
        sa.Column("meter_id", sa.String),
        sa.Column("channel", sa.String),
        sa.Column("interval_end", sa.DateTime(timezone=True)),
        sa.Column("interval_seconds", sa.Integer),
        sa.Column("value", sa.Double),
        sa.Column("unit", sa.String),
        sa.Column("status", sa.String),
        sa.Column("failed_rules", sa.String),
        sa.Column("source_file_id", sa.BigInteger),
        sa.Column("source_line", sa.BigInteger),
    ]


def _arrow(values, type_: pa.DataType) -> pa.Array:
    """A column as an Arrow array of ``type_`` without going through Python objects where possible
    (categoricals are decoded by Arrow; NaN becomes NULL)."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        cats = pa.array(np.asarray(values.cat.categories, dtype=object), pa.string())
        codes = values.cat.codes.to_numpy()
        idx = pa.array(codes, mask=codes < 0)
        return pc.take(cats, idx).cast(type_)
    if isinstance(values, pd.Series):
        values = values.array if not isinstance(values.dtype, np.dtype) else values.to_numpy()
    if isinstance(values, np.ndarray) and values.dtype.kind == "f" and not pa.types.is_floating(type_):
        return pa.array(values, mask=np.isnan(values)).cast(type_)
    return pa.array(values, from_pandas=True).cast(type_)


def _stage_frame(frame: pd.DataFrame, value: str, extra: dict[str, tuple]) -> pa.Table:
    cols = {
        "meter_id": _arrow(frame["meter_id"], pa.string()),
        "channel": _arrow(frame["channel"], pa.string()),
        "interval_end": pa.array(frame["interval_end"]).cast(pa.timestamp("us", "UTC")),
        "interval_seconds": _arrow(frame["interval_seconds"].to_numpy(dtype="int64"), pa.int32()),
        "value": _arrow(frame[value].to_numpy(dtype="float64"), pa.float64()),
        "unit": _arrow(frame["unit"], pa.string()),
        "status": _arrow(frame["status"], pa.string()),
        "failed_rules": _arrow(frame["failed_rules"], pa.string()),
        "source_file_id": _arrow(frame["file_id"].to_numpy(dtype="float64"), pa.int64()),
        "source_line": _arrow(frame["line"].to_numpy(dtype="float64"), pa.int64()),
    }
    for name, (values, type_) in extra.items():
        cols[name] = _arrow(values, type_)
    return pa.table(cols)


def stage_tables(frame: pd.DataFrame) -> tuple[pa.Table, pa.Table]:
    """The rows the two stages compare with the stored versions, as Arrow tables (built where the
    day was computed: a chunk's worker process ships them to the writer)."""
    est_rows = frame[frame["final_status"].eq("estimated").to_numpy()]
    validation = _stage_frame(frame, "value", {})
    estimation = _stage_frame(
        est_rows,
        "final_value",
        {
            "estimation_method": (est_rows["estimation_method"], pa.string()),
            "espi_quality": (est_rows["espi_quality"].to_numpy(dtype="float64"), pa.int16()),
            "iec_quality": (est_rows["iec_quality"], pa.string()),
            "reason": (est_rows["estimation_inputs"], pa.string()),
        },
    )
    return validation, estimation


def _write_versions(
    store: Store,
    conn: sa.Connection,
    day: dt.date,
    staged: tuple[pa.Table, pa.Table],
    now: pd.Timestamp,
    meters: list[str] | None = None,
    keys_only: bool = False,
) -> tuple[int, int, pd.DataFrame]:
    """Write the validation and estimation versions that changed: (validation rows, estimation
    rows, restatement exceptions). ``keys_only``: ``frame`` holds only some intervals of the
    day (the real-time path); they are compared with the stored versions of those intervals."""
    stage_val = _stage_table(_STAGE_VAL, *_stage_columns())
    stage_est = _stage_table(
        _STAGE_EST,
        *_stage_columns(),
        sa.Column("estimation_method", sa.String),
        sa.Column("espi_quality", sa.SmallInteger),
        sa.Column("iec_quality", sa.String),
        sa.Column("reason", sa.Text),
    )
    store.ensure_partitions(conn, "intervals", [day])  # the INSERT … SELECTs below write the day
    for stage in (stage_val, stage_est):
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{stage.name}"'))
        stage.create(conn)
    store.bulk_insert(stage_val, staged[0], conn)
    store.bulk_insert(stage_est, staged[1], conn)
    if store.backend == "postgresql":  # statistics for the planner: a fresh temporary table has none
        for stage in (stage_val, stage_est):
            conn.execute(sa.text(f'ANALYZE "{stage.name}"'))
    params = {
        "day": day,
        "now": now.to_pydatetime(),
        "val": VALIDATION_ACTOR,
        "est": ESTIMATION_ACTOR,
        "meters": meters,
    }
    # the chunk's or shard's meters as a list filter, never a join: just after a chunk's INSERT the
    # day's statistics are stale and a join turns quadratic (store/sql_filters.py)
    staged = f'IN (SELECT DISTINCT meter_id FROM "{_STAGE_VAL}")'
    only = _only(store, meters, otherwise=f"meter_id {staged}")
    # per interval of the day: the current version (c) and the latest the validation wrote (v)
    source = "intervals i"
    if keys_only:  # only the versions of the staged intervals (index on meter, channel, end)
        source += f' JOIN "{_STAGE_VAL}" k ON i.meter_id = k.meter_id AND i.channel = k.channel AND i.interval_end = k.interval_end'
        only_i = ""
    else:
        only_i = _only(store, meters, "i.meter_id", otherwise=f"i.meter_id {staged}")
    ranked = (
        "SELECT i.meter_id, i.channel, i.interval_end, i.version, i.value, i.status, i.created_by, "
        "i.failed_rules, i.source_file_id, i.billed, "
        f"{version_rank('i')} AS rn, {version_rank('i', within='i.created_by = :val')} AS rv "
        f"FROM {source} WHERE i.read_day = :day{only_i}"
    )
    # one row per interval: the current version's columns (rn = 1) and those of the validation
    # stage's latest (rv = 1 among its own): one ranking pass, no self-join (a planner misled by
    # stale statistics turns a self-join of the two rankings into a quadratic nested loop)
    cur, val = "r.rn = 1", "r.created_by = :val AND r.rv = 1"
    latest = (
        "SELECT r.meter_id, r.channel, r.interval_end, "
        f"max(CASE WHEN {cur} THEN r.version END) AS version, max(CASE WHEN {cur} THEN r.value END) AS value, "
        f"max(CASE WHEN {cur} THEN r.status END) AS status, bool_or(CASE WHEN {cur} THEN r.billed END) AS billed, "
        f"max(CASE WHEN {val} THEN r.value END) AS value_val, max(CASE WHEN {val} THEN r.status END) AS status_val, "
        f"max(CASE WHEN {val} THEN r.failed_rules END) AS failed_rules_val, "
        f"max(CASE WHEN {val} THEN r.source_file_id END) AS source_file_id_val "
        f"FROM ({ranked}) r GROUP BY r.meter_id, r.channel, r.interval_end"
    )
    unchanged = (
        f"((x.version IS NOT NULL AND {_same_sql('s.value', 'x.value_val')} "
        f"AND {_text_same_sql('s.status', 'x.status_val')} "
        f"AND {_text_same_sql('s.failed_rules', 'x.failed_rules_val')} "
        f"AND s.source_file_id IS NOT DISTINCT FROM x.source_file_id_val) "
        # an estimate written before VEE ever saw the interval (a forward estimate for billing)
        # stays current while nothing has been received; the estimation stage may replace it
        f"OR (s.value IS NULL AND x.status_val IS NULL AND x.status = 'estimated'))"
    )
    # the day's first run has nothing to compare with (the real-time path compares its few keys anyway)
    stored = (
        keys_only
        or conn.execute(
            sa.text(
                f"SELECT count(*) FROM (SELECT 1 FROM intervals WHERE read_day = :day{only} LIMIT 1) one"
            ),
            params,
        ).scalar_one()
    )
    if not stored:
        latest = f"SELECT * FROM ({latest}) nothing WHERE 1 = 0"
    changed = f'FROM "{_STAGE_VAL}" s LEFT JOIN ({latest}) x ON {_ON} WHERE NOT COALESCE({unchanged}, FALSE)'
    restated = pd.DataFrame(columns=EXCEPTION_COLUMNS)
    billed = conn.execute(
        sa.text(f"SELECT count(*) FROM {source} WHERE i.read_day = :day AND i.billed{only_i}"), params
    ).scalar_one()
    if billed:
        hit = store.read_frame(
            "SELECT s.meter_id, s.channel, s.interval_end "
            + changed
            + " AND s.status = 'valid' AND x.status = 'estimated' AND COALESCE(x.billed, FALSE)",
            params,
            conn,
        )
        restated = _restated(hit, day)
    cols = ", ".join(_VERSION_COLUMNS)
    n_val = conn.execute(
        sa.text(
            f"INSERT INTO intervals ({cols}) SELECT s.meter_id, s.channel, s.interval_end, "
            "COALESCE(x.version, 0) + 1, s.interval_seconds, s.value, s.unit, s.status, "
            "CASE s.status WHEN 'valid' THEN 0 WHEN 'suspect' THEN 10 END, "
            "CASE s.status WHEN 'valid' THEN '2.0.0' WHEN 'suspect' THEN '2.5.256' "
            "WHEN 'missing' THEN '2.5.259' END, "
            "NULL, s.failed_rules, s.source_file_id, s.source_line, :day, :val, :now, "
            f"'first-pass validation', x.value {changed}"
        ),
        params,
    ).rowcount
    # the estimation stage against the current versions once the validation stage's are in
    current = (
        "SELECT i.meter_id, i.channel, i.interval_end, i.version, i.value, i.status, "
        f"i.estimation_method, i.billed, {version_rank('i')} AS rn "
        f'FROM intervals i JOIN "{_STAGE_EST}" k ON i.meter_id = k.meter_id AND i.channel = k.channel '
        "AND i.interval_end = k.interval_end WHERE i.read_day = :day"
    )
    status = "COALESCE(x.status, '')"
    n_est = conn.execute(
        sa.text(
            f"INSERT INTO intervals ({cols}) SELECT s.meter_id, s.channel, s.interval_end, "
            "COALESCE(x.version, 0) + 1, s.interval_seconds, s.value, s.unit, 'estimated', "
            "s.espi_quality, s.iec_quality, s.estimation_method, s.failed_rules, s.source_file_id, "
            "s.source_line, :day, :est, :now, s.reason, x.value "
            f'FROM "{_STAGE_EST}" s LEFT JOIN ({current}) x ON {_ON} AND x.rn = 1 '
            f"WHERE {status} NOT IN ('edited', 'verified') "
            f"AND NOT ({status} = 'estimated' AND COALESCE(x.billed, FALSE)) "
            f"AND NOT ({status} = 'estimated' AND {_same_sql('s.value', 'x.value')} "
            f"AND {_text_same_sql('s.estimation_method', 'x.estimation_method')})"
        ),
        params,
    ).rowcount
    for stage in (stage_val, stage_est):
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{stage.name}"'))
    return int(n_val), int(n_est), restated


def _write_exceptions(
    store: Store, day: dt.date, exceptions: pd.DataFrame, now, conn, meters: list[str] | None = None
) -> int:
    """Refresh the day's open exceptions (of ``meters`` only, when given); keep operators'
    decisions; resolve what is no longer found."""
    existing = store.read_frame(
        f"SELECT * FROM vee_exceptions WHERE read_day = :day{_only(store, meters)}",
        {"day": day, "meters": meters},
        conn,
    )
    decided = set(existing.loc[existing["status"] != "open", "exception_id"])
    still_open = existing[existing["status"] == "open"]
    created = dict(zip(still_open["exception_id"], still_open["created_at"], strict=False))
    fresh = exceptions[~exceptions["exception_id"].isin(decided)].copy()
    fresh["status"] = "open"
    fresh["created_at"] = fresh["exception_id"].map(created) if created else pd.NaT
    fresh["created_at"] = fresh["created_at"].fillna(now) if len(fresh) else fresh["created_at"]
    fresh["read_day"] = pd.Timestamp(day)
    gone = still_open[~still_open["exception_id"].isin(fresh["exception_id"])].assign(
        status="resolved", resolved_by="vee", resolved_at=now
    )
    gone["resolution"] = np.where(
        gone["rule"].eq("unregistered_meter"),
        "the meter is in the master data now: its reads were validated",
        "no longer detected by VEE",
    )
    where = {"read_day": day, "status": "open"} | ({} if meters is None else {"meter_id": meters})
    store.delete("vee_exceptions", where, conn)
    store.bulk_insert("vee_exceptions", [fresh, gone], conn)
    return len(fresh)


def restatements(latest: pd.DataFrame, validation_rows: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """Billed estimates that an actual read now supersedes: the bill period must be restated (T13)."""
    if latest.empty or validation_rows.empty:
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    billed = latest[latest["status"].eq("estimated") & latest["billed"].fillna(False).astype(bool)]
    return _restated(validation_rows[validation_rows["status"].eq("valid")].merge(billed[KEY], on=KEY), day)


def _restated(hit: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """One restatement exception per series from the intervals (KEY) whose billed estimate was replaced."""
    if hit.empty:
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    g = (
        hit.groupby(["meter_id", "channel"])
        .agg(
            period_start=("interval_end", "min"),
            period_end=("interval_end", "max"),
            intervals=("interval_end", "size"),
        )
        .reset_index()
    )
    g["rule"], g["severity"] = "billed_estimate_replaced", RULE_SEVERITY
    g["detail"] = (
        g["intervals"].astype(str) + " billed estimate(s) replaced by actual reads: restate the bill period"
    )
    g["read_day"] = pd.Timestamp(day)
    g["exception_id"] = exception_ids(
        g["meter_id"], g["channel"], day.isoformat(), "billed_estimate_replaced"
    )
    return g[EXCEPTION_COLUMNS]


def estimate_with_method(
    store: Store, cfg: UtilityConfig, exc: dict, ends: pd.Series, method: str
) -> pd.DataFrame:
    """An operator's request: estimate the exception's intervals with one named method."""
    day = pd.Timestamp(exc["read_day"]).date()
    inputs = load_inputs(store, day, cfg)
    validated = validate_day(inputs)
    frame = validated.intervals
    target = (
        frame["meter_id"].eq(exc["meter_id"])
        & frame["channel"].eq(exc["channel"])
        & frame["interval_end"].isin(pd.to_datetime(ends, utc=True))
    )
    frame.loc[target, "status"] = "suspect"
    if method == "zero_fill":
        frame.loc[target, "outage"] = True
        frame.loc[target, "value"] = np.nan
    series = frame.loc[target, ["meter_id", "channel"]].drop_duplicates()
    inputs.history = load_history(store, day, series, inputs.config.default.reference_weeks)
    estimated = estimate_day(validated, inputs, methods=(method,))
    f = estimated.intervals
    out = f[
        f["meter_id"].eq(exc["meter_id"])
        & f["channel"].eq(exc["channel"])
        & f["interval_end"].isin(pd.to_datetime(ends, utc=True))
        & f["estimation_method"].notna()
    ]
    return out[["interval_end", "final_value"]].rename(columns={"final_value": "value"})
