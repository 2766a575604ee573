"""Validation (first pass) of one operating day, pure functions on frames.

``validate_day`` aligns received reads with the expected grid, applies the interval rules per
rule set (rules.py) and the day rules (day_rules.py) and returns every expected interval with
its first-pass status (valid | suspect | missing), the rules that failed, and the exceptions
grouped by root cause (one row per meter-channel-day-rule).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.arrays import ArrowStringArray

from smartmdm_pipelines.domain.timeutil import local_day_bounds
from smartmdm_pipelines.domain.vee import rules
from smartmdm_pipelines.domain.vee.day import (
    CHANNEL_UNITS,
    EXCEPTION_COLUMNS,
    STATUSES,
    DayInputs,
    DayResult,
    exception_ids,
    typed_installs,
)
from smartmdm_pipelines.domain.vee.day_rules import DayContext, day_exceptions
from smartmdm_pipelines.domain.vee.history import prepare_daily_history
from smartmdm_pipelines.domain.vee.keys import CHANNEL_ORDER, N_CHANNELS, Catalog, epoch, group_bounds, lookup
from smartmdm_pipelines.domain.vee.prepare import align, expected_grid, resolve_reads


def validate_day(inp: DayInputs) -> DayResult:
    start, end = local_day_bounds(inp.day, inp.tz)
    tolerance = inp.config.default.time_tolerance_seconds
    latest = _latest_installs(inp)
    meter_tz = _meter_zones(inp, latest)
    inp.catalog = catalog = Catalog(inp.meters["meter_id"], inp.reads["meter_id"])
    reads = _typed_reads(inp.reads)
    winners, conflicts = resolve_reads(reads, tolerance, inp.tz, meter_tz, catalog)
    until = latest_reads(winners) if inp.through_last_read else None
    grid = expected_grid(inp.meters, typed_installs(inp.installs), inp.day, inp.tz, meter_tz, catalog, until)
    frame, outside = align(grid, winners)
    if inp.through_last_read:
        frame = through_last_read(frame)
    frame = _attach_attributes(frame, inp, latest)
    frame["outage"] = _outage_flags(frame, inp.events, catalog)

    daily = prepare_daily_history(inp.daily_history, inp.day, inp.holidays)
    hist_max = None
    if len(daily):
        clean = daily[daily["clean"]]
        best = clean.groupby(["meter_id", "channel"], sort=False)["max_value"].max().reset_index()
        hist_max = (
            catalog.sid(best["meter_id"], best["channel"]),
            best["max_value"].to_numpy(dtype="float64"),
        )
    frame = _apply_rules(frame, inp, hist_max)

    frame["r_awaiting_data"] = _awaiting(frame, inp)
    frame["r_missing_interval"] = (
        frame["r_missing_interval"].to_numpy() & ~frame["r_awaiting_data"].to_numpy()
    )
    value = frame["value"].to_numpy(dtype="float64")
    suspect = np.zeros(len(frame), dtype=bool)
    for rule in rules.SUSPECT_RULES:
        suspect |= frame[f"r_{rule}"].to_numpy()
    status_code = np.where(np.isnan(value), 2, np.where(suspect, 1, 0))
    frame["status"] = pd.Categorical.from_codes(status_code, categories=STATUSES)
    frame["failed_rules"] = _failed_rules(frame)

    day_level = (
        []
        if inp.through_last_read
        else [
            day_exceptions(DayContext(frame, inp, conflicts, outside, daily, tolerance)),
            *([inp.exceptions] if len(inp.exceptions) else []),
        ]
    )
    exceptions = pd.concat([_interval_exceptions(frame, catalog), *day_level], ignore_index=True)
    exceptions = _finish_exceptions(exceptions, inp.day, start, end)
    n = len(frame)
    stats = {
        "expected_intervals": n,
        "received_intervals": int(frame["received"].sum()),
        "first_pass_valid_share": float((frame["status"] == "valid").mean()) if n else 1.0,
        "suspect_intervals": int((frame["status"] == "suspect").sum()),
        # awaited intervals (inside the re-collection window) are not missing yet
        "missing_intervals": int(((frame["status"] == "missing") & ~frame["r_awaiting_data"]).sum()),
        "awaiting_intervals": int(frame["r_awaiting_data"].sum()),
        "exceptions_by_rule": exceptions.groupby("rule").size().astype(int).to_dict()
        if len(exceptions)
        else {},
    }
    return DayResult(frame, exceptions, stats)


def latest_reads(winners: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(series ids, latest interval end) of the winning reads: no grid row after it can be
    received, so :func:`through_last_read` would cut it (the grid is built only up to it)."""
    if winners.empty:
        return np.zeros(0, "int64"), np.zeros(0, "int64")
    known = winners["sid"].to_numpy() >= 0  # reads of meters not in the master data have no grid
    last = pd.Series(winners["t"].to_numpy()[known]).groupby(winners["sid"].to_numpy()[known]).max()
    return last.index.to_numpy(dtype="int64"), last.to_numpy(dtype="int64")


def through_last_read(frame: pd.DataFrame) -> pd.DataFrame:
    """The aligned grid cut after each series' latest received interval (series with nothing
    received drop out). Every interval rule gives the kept rows the same result as on the whole
    day: the cut rows hold no value, so they extend no zero or flat run and count in no spike."""
    if frame.empty:
        return frame
    sid, t = frame["sid"].to_numpy(), frame["t"].to_numpy()
    received = frame["received"].to_numpy(dtype=bool)
    if not received.any():
        return frame.iloc[:0]
    last = pd.Series(t[received]).groupby(sid[received]).max()
    limit = lookup(sid, last.index.to_numpy(), last.to_numpy(dtype="float64"))
    keep = ~np.isnan(limit) & (t <= limit)
    return frame[keep].reset_index(drop=True)


# the columns the interval rules read (rules.apply_interval_rules)
_RULE_INPUTS = [
    "sid",
    "channel",
    "value",
    "received",
    "rank",
    "drift_s",
    "source_quality",
    "unit",
    "interval_seconds",
    "outage",
    "has_solar",
]


def _apply_rules(
    frame: pd.DataFrame, inp: DayInputs, hist_max: tuple[np.ndarray, np.ndarray] | None
) -> pd.DataFrame:
    """The interval rules per rule set (commodity, kind, interval length) on the frame sorted by
    (sid, t); each rule set sees only its rows and the columns the rules read, and its flags are
    written back by position (rows of no rule set are dropped)."""
    if frame.empty:  # nothing expected (e.g. no meter of the day is registered yet): no rule fires
        none = np.zeros(0, dtype=bool)
        return frame.assign(outage=none, **{f"r_{rule}": none for rule in rules.RULES})
    groups = frame.groupby(["commodity", "kind", "interval_seconds"], sort=True, observed=True).indices
    flags: dict[str, np.ndarray] = {}
    kept = []
    for (commodity, kind, seconds), rows in groups.items():
        ruleset = inp.config.for_class(commodity, kind, int(seconds))
        part = frame[_RULE_INPUTS]  # copy-on-write: the rules' columns do not reach ``frame``
        if len(groups) > 1:
            part = part.iloc[rows].reset_index(drop=True)
        part = rules.apply_interval_rules(part, ruleset, hist_max)
        for col in ["outage", *(c for c in part.columns if c.startswith("r_"))]:
            if col not in flags:
                flags[col] = np.zeros(len(frame), dtype=bool)
            flags[col][rows] = part[col].to_numpy(dtype=bool)
        kept.append(rows)
    frame = frame.assign(**flags)
    rows = np.sort(np.concatenate(kept)) if kept else np.zeros(0, dtype=np.int64)
    if len(rows) < len(frame):
        frame = frame.iloc[rows]
    t, sid = frame["t"].to_numpy(), frame["sid"].to_numpy()
    if len(frame) > 1 and ((sid[1:] < sid[:-1]) | ((sid[1:] == sid[:-1]) & (t[1:] < t[:-1]))).any():
        frame = frame.iloc[np.lexsort((t, sid))]
    return frame.reset_index(drop=True)


def _awaiting(frame: pd.DataFrame, inp: DayInputs) -> np.ndarray:
    """Not received, after the series' last received read, and still inside the re-collection window."""
    if inp.frontier is None or frame.empty:
        return np.zeros(len(frame), dtype=bool)
    wait = inp.config.default.max_wait_hours * 3600
    t = frame["t"].to_numpy()
    last = np.full(len(frame), np.iinfo("int64").min, dtype="int64")
    if inp.last_seen is not None and len(inp.last_seen):
        seen = inp.last_seen
        sids = inp.catalog.sid(seen["meter_id"], seen["channel"])
        last = lookup(
            frame["sid"].to_numpy(), sids, epoch(pd.to_datetime(seen["last_end"], utc=True)), fill=last[0]
        )
    frontier = epoch(pd.Series([pd.Timestamp(inp.frontier)]))[0]
    return np.isnan(frame["value"].to_numpy(dtype="float64")) & (t > last) & ((frontier - t) < wait)


def _typed_reads(reads: pd.DataFrame) -> pd.DataFrame:
    reads = reads.copy(deep=False)  # columns are replaced, never written into
    if not isinstance(reads["interval_end"].dtype, pd.DatetimeTZDtype):
        reads["interval_end"] = pd.to_datetime(reads["interval_end"], utc=True)
    # a handful of distinct codes for millions of reads: categorical, every test runs per code
    reads["source_quality"] = reads["source_quality"].fillna("").astype("category")
    return reads


def _attach_attributes(frame: pd.DataFrame, inp: DayInputs, latest: pd.DataFrame | None) -> pd.DataFrame:
    """Meter and service-point attributes per interval, looked up by meter code (categoricals:
    cheap to carry through millions of rows)."""
    catalog = inp.catalog
    per_meter = inp.meters.copy()
    if "role" not in per_meter:
        per_meter["role"] = "customer"
    per_meter = per_meter.merge(_meter_service_points(inp, latest), on="meter_id", how="left")
    per_meter["customer_class"] = per_meter["customer_class"].fillna("none")
    per_meter["role"] = per_meter["role"].fillna("customer")
    per_meter["has_solar"] = per_meter["has_solar"].fillna(False).astype(bool)
    per_meter["gas_unit"] = np.where(
        per_meter["unit"].astype(str).str.lower().str.startswith("therm"), "therm", "CCF"
    )
    codes = catalog.meter_codes(per_meter["meter_id"])
    keep = ~np.isnan(codes)
    per_meter, codes = per_meter[keep], codes[keep].astype("int64")
    m = frame["sid"].to_numpy() // N_CHANNELS
    for col in ("kind", "commodity", "role", "customer_class", "gas_unit", "service_point_id"):
        values = per_meter[col].astype("object").where(per_meter[col].notna(), None).to_numpy(dtype=object)
        position, uniques = pd.factorize(values)  # one hash pass; -1 where missing
        cats = pd.Index(uniques)
        idx = lookup(m, codes, position.astype("float64"), fill=-1).astype("int64")
        frame[col] = pd.Categorical.from_codes(idx, categories=cats)
    for col in ("multiplier", "dials"):
        frame[col] = lookup(m, codes, per_meter[col].to_numpy(dtype="float64"))
    frame["has_solar"] = lookup(m, codes, per_meter["has_solar"].to_numpy(dtype="float64"), fill=0.0) == 1
    frame["customer_class"] = (
        frame["customer_class"].cat.add_categories(["none"]).fillna("none")
        if "none" not in frame["customer_class"].cat.categories
        else frame["customer_class"].fillna("none")
    )
    frame["role"] = (
        frame["role"].cat.add_categories(["customer"]).fillna("customer")
        if "customer" not in frame["role"].cat.categories
        else frame["role"].fillna("customer")
    )
    # unit per row as category codes: the channel's unit, else (gas) the meter's gas unit
    units = np.array(sorted({*CHANNEL_UNITS.values(), "therm", "CCF"}), dtype=object)
    position = {u: i for i, u in enumerate(units)}
    channel_code = np.array([position.get(CHANNEL_UNITS.get(c), -1) for c in CHANNEL_ORDER])
    code = channel_code[frame["sid"].to_numpy() % N_CHANNELS]
    gas = code < 0
    gas_unit = frame["gas_unit"].array
    gas_code = np.array([position[u] for u in gas_unit.categories] + [-1])  # code -1: no unit
    code[gas] = gas_code[gas_unit.codes[gas]]
    present = np.flatnonzero(np.bincount(code[code >= 0], minlength=len(units)))
    remap = np.full(len(units) + 1, -1)
    remap[present] = np.arange(len(present))
    frame["unit"] = pd.Categorical.from_codes(remap[code], categories=units[present])
    return frame.drop(columns=["gas_unit"])


def _latest_installs(inp: DayInputs) -> pd.DataFrame | None:
    """Each meter's last installation (None without installations): computed once per day."""
    if inp.installs is None or inp.installs.empty:
        return None
    return inp.installs.sort_values("installed_at").drop_duplicates("meter_id", keep="last")


def _meter_zones(inp: DayInputs, inst: pd.DataFrame | None) -> pd.Series:
    """meter_id -> IANA time zone of the service point it is (last) installed at."""
    sps = inp.service_points
    if inst is None or sps is None or "timezone" not in sps:
        return pd.Series(dtype="object")
    zones = inst.merge(sps[["service_point_id", "timezone"]], on="service_point_id", how="left")
    return zones.set_index("meter_id")["timezone"].dropna()


def _meter_service_points(inp: DayInputs, inst: pd.DataFrame | None) -> pd.DataFrame:
    cols = ["meter_id", "service_point_id", "customer_class", "has_solar"]
    if inst is None:
        return pd.DataFrame(columns=cols)
    sp = inp.service_points
    if sp is None or sp.empty:
        return inst.assign(customer_class=None, has_solar=False)[cols]
    return inst.merge(
        sp[["service_point_id", "customer_class", "has_solar"]], on="service_point_id", how="left"
    )[cols]


def _outage_flags(frame: pd.DataFrame, events: pd.DataFrame, catalog: Catalog) -> np.ndarray:
    """Intervals overlapping an outage (outage event until the next restore of the same meter)."""
    flags = np.zeros(len(frame), dtype=bool)
    if events is None or events.empty or frame.empty:
        return flags
    ev = events[events["event_type"].isin(["outage", "restore"])].copy()
    if ev.empty:
        return flags
    ev["event_at"] = pd.to_datetime(ev["event_at"], utc=True)
    ev = ev.sort_values(["meter_id", "event_at"])
    ev["next_type"] = ev.groupby("meter_id")["event_type"].shift(-1)
    ev["next_at"] = ev.groupby("meter_id")["event_at"].shift(-1)
    spans = ev[ev["event_type"] == "outage"].copy()
    open_end = pd.Timestamp.max.tz_localize("UTC")
    spans["until"] = spans["next_at"].where(spans["next_type"] == "restore", open_end)
    spans["m"] = catalog.meter_codes(spans["meter_id"])
    spans = spans[~np.isnan(spans["m"])]
    m = frame["sid"].to_numpy() // N_CHANNELS
    rows = np.flatnonzero(np.isin(m, spans["m"].to_numpy().astype("int64")))  # only meters with outages
    if not len(rows):
        return flags
    idx = pd.DataFrame(
        {
            "row": rows,
            "m": m[rows],
            "t": frame["t"].to_numpy()[rows],
            "secs": frame["interval_seconds"].to_numpy()[rows],
        }
    )
    spans = spans.assign(
        m=spans["m"].astype("int64"),
        a=epoch(spans["event_at"]),
        b=np.where(
            spans["until"] == open_end,
            np.iinfo("int64").max,
            epoch(spans["until"].where(spans["until"] != open_end, spans["event_at"])),
        ),
    )
    joined = idx.merge(spans[["m", "a", "b"]], on="m")
    start = joined["t"] - joined["secs"]
    hit = joined[(start < joined["b"]) & (joined["t"] > joined["a"])]
    flags[hit["row"].to_numpy()] = True
    return flags


def _failed_rules(frame: pd.DataFrame) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """';'-joined failed rules per interval (None where none failed): the text is built once per
    distinct combination of failed rules and taken per row (Arrow strings when the frame's
    default string dtype is Arrow-backed, so millions of Python objects are never made)."""
    names = list(rules.RULES)
    mask = np.zeros(len(frame), dtype=np.int64)
    for bit, rule in enumerate(names):
        mask |= frame[f"r_{rule}"].to_numpy(dtype=bool).astype(np.int64) << bit
    combos, codes = np.unique(mask, return_inverse=True)
    texts = [";".join(r for bit, r in enumerate(names) if (int(c) >> bit) & 1) for c in combos]
    codes = codes.reshape(-1)
    none = np.flatnonzero(combos == 0)
    if len(none):
        codes = np.where(codes == none[0], -1, codes)
    dtype = pd.Series(["x"]).dtype
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        text = pc.take(pa.array(texts, pa.large_string()), pa.array(codes, mask=codes < 0))
        return ArrowStringArray(text, dtype=dtype)
    table = np.asarray(texts + [None], dtype=object)
    return table[np.where(codes < 0, len(texts), codes)]


def _interval_exceptions(frame: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    """One exception row per rule and series with failed intervals (first and last interval end,
    how many, lowest and highest value), in rule order then series order: one pass over the hits
    of every rule together, on integer keys."""
    reported = [r for r in rules.RULES if r not in ("time_tolerance", "awaiting_data")]
    hits = [np.flatnonzero(frame[f"r_{rule}"].to_numpy(dtype=bool)) for rule in reported]
    counts = np.array([len(h) for h in hits])
    if not counts.sum():
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    rows = np.concatenate(hits)
    which = np.repeat(np.arange(len(reported)), counts)  # each hit's rule
    sid = frame["sid"].to_numpy()[rows]
    key = which * np.int64(catalog.size + 1) + sid
    if len(key) > 1 and (key[1:] < key[:-1]).any():
        order = np.argsort(key, kind="stable")
        rows, which, sid, key = rows[order], which[order], sid[order], key[order]
    _, starts = group_bounds(key)
    t = frame["t"].to_numpy()[rows]
    value = frame["value"].to_numpy(dtype="float64")[rows]
    with np.errstate(invalid="ignore"):
        low, high = np.fmin.reduceat(value, starts), np.fmax.reduceat(value, starts)
    first_rule, first_sid = which[starts], sid[starts]
    g = pd.DataFrame(
        {
            "meter_id": catalog.meter_of(first_sid),
            "channel": Catalog.channel_of(first_sid),
            "period_start": pd.to_datetime(np.minimum.reduceat(t, starts), unit="s", utc=True).as_unit("us"),
            "period_end": pd.to_datetime(np.maximum.reduceat(t, starts), unit="s", utc=True).as_unit("us"),
            "intervals": np.diff(np.r_[starts, len(rows)]),
            "low": low,
            "high": high,
        }
    )
    names = np.asarray(reported, dtype=object)
    g["rule"] = names[first_rule]
    g["severity"] = np.asarray([rules.RULES[r][0] for r in reported], dtype=object)[first_rule]
    meaning = pd.Series(np.asarray([rules.RULES[r][2] for r in reported], dtype=object)[first_rule])
    values = np.where(
        g["high"].notna(),
        " (values " + g["low"].round(3).astype(str) + " to " + g["high"].round(3).astype(str) + ")",
        "",
    )
    g["detail"] = g["intervals"].astype(str) + " interval(s): " + meaning + values
    return g


def _finish_exceptions(
    exc: pd.DataFrame, day: dt.date, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    if exc.empty:
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    exc = exc.copy()
    exc["read_day"] = pd.Timestamp(day)
    exc["period_start"] = pd.to_datetime(exc["period_start"], utc=True).fillna(start)
    exc["period_end"] = pd.to_datetime(exc["period_end"], utc=True).fillna(end)
    exc["intervals"] = pd.to_numeric(exc["intervals"], errors="coerce").fillna(0).astype("int64")
    exc["exception_id"] = exception_ids(exc["meter_id"], exc["channel"], day.isoformat(), exc["rule"])
    return exc.drop_duplicates("exception_id")[EXCEPTION_COLUMNS].reset_index(drop=True)
