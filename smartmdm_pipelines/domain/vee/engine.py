"""VEE of one operating day: validation (first pass) and estimation, pure functions on frames.

``validate_day`` aligns received reads with the expected grid, applies the rules per rule
set and returns every expected interval with its first-pass status (valid | suspect |
missing), the rules that failed, and the exceptions grouped by root cause (one row per
meter-channel-day-rule). ``estimate_day`` runs the estimation chain on the suspect and
missing intervals of that result and re-validates the estimates.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.readings import SPREAD_QUALITY
from smartmdm_pipelines.domain.timeutil import local_day_bounds, operating_day
from smartmdm_pipelines.domain.vee import estimation, rules
from smartmdm_pipelines.domain.vee.config import VeeConfig
from smartmdm_pipelines.domain.vee.keys import CHANNEL_ORDER, N_CHANNELS, Catalog, epoch, group_bounds, lookup
from smartmdm_pipelines.domain.vee.prepare import align, expected_grid, resolve_reads
from smartmdm_pipelines.domain.vee.quality import quality_codes

CHANNEL_UNITS = {
    "kwh_delivered": "kWh",
    "kwh_received": "kWh",
    "kwh_net": "kWh",
    "kvarh": "kVARh",
    "kvarh_received": "kVARh",
    "water": "gal",
}
EXCEPTION_COLUMNS = [
    "exception_id",
    "meter_id",
    "channel",
    "read_day",
    "period_start",
    "period_end",
    "rule",
    "severity",
    "intervals",
    "detail",
]
CONTEXT_HOURS = 3
STATUSES = ["valid", "suspect", "missing", "estimated"]
# consumption a vacant premise may show per day before it is reported (standby loads; our choice)
VACANT_DAILY_THRESHOLD = {"kwh_delivered": 5.0, "water": 50.0, "gas": 1.0}
REGISTER_TOLERANCE = pd.Timedelta(minutes=15)  # a register read this close to a day boundary brackets it


@dataclass
class DayInputs:
    """Everything VEE needs for one operating day (frames as read from the store)."""

    day: dt.date
    tz: str
    # raw reads touching the day: meter_id, channel, interval_end, interval_seconds, value,
    # source_quality, file_id, line
    reads: pd.DataFrame
    # meter_id, kind, commodity, channels, interval_seconds, unit, multiplier, dials
    meters: pd.DataFrame
    # meter_id, service_point_id, installed_at, removed_at, multiplier, start_register, end_register
    installs: pd.DataFrame = field(default_factory=pd.DataFrame)
    # service_point_id, status, customer_class, has_solar
    service_points: pd.DataFrame = field(default_factory=pd.DataFrame)
    # service_point_id, move_in, move_out
    accounts: pd.DataFrame = field(default_factory=pd.DataFrame)
    # meter_id, event_at, event_type
    events: pd.DataFrame = field(default_factory=pd.DataFrame)
    # meter_id, channel, read_at, value (dial units)
    registers: pd.DataFrame = field(default_factory=pd.DataFrame)
    # current intervals of the reference weeks and the neighbouring days, for the series to estimate
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    # daily_usage rows of the reference weeks (all series): spikes against history, high/low usage
    daily_history: pd.DataFrame = field(default_factory=pd.DataFrame)
    # newest interval end received from any meter (the data clock), and per series the last interval
    # end received on or after the day; without them nothing is awaited
    frontier: pd.Timestamp | None = None
    last_seen: pd.DataFrame = field(default_factory=pd.DataFrame)  # meter_id, channel, last_end
    holidays: frozenset = frozenset()
    config: VeeConfig = field(default_factory=VeeConfig)
    catalog: Catalog | None = None  # set by validate_day: the integer keys of this day
    # meter-day exceptions found before validation (register decreases met deriving intervals):
    # meter_id, channel, rule, severity, detail, intervals, period_start, period_end
    exceptions: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass
class DayResult:
    intervals: pd.DataFrame
    exceptions: pd.DataFrame
    stats: dict


# --- validation ---------------------------------------------------------------------------------


def validate_day(inp: DayInputs) -> DayResult:
    start, end = local_day_bounds(inp.day, inp.tz)
    tolerance = inp.config.default.time_tolerance_seconds
    meter_tz = _meter_zones(inp)
    inp.catalog = catalog = Catalog(inp.meters["meter_id"], inp.reads["meter_id"])
    reads = _typed_reads(inp.reads)
    winners, conflicts = resolve_reads(reads, tolerance, inp.tz, meter_tz, catalog)
    grid = expected_grid(inp.meters, _installs(inp.installs), inp.day, inp.tz, meter_tz, catalog)
    frame, outside = align(grid, winners)
    frame = _attach_attributes(frame, inp)
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

    exceptions = pd.concat(
        [
            _interval_exceptions(frame),
            _day_exceptions(frame, inp, winners, conflicts, outside, daily, tolerance),
            *([inp.exceptions] if len(inp.exceptions) else []),
        ],
        ignore_index=True,
    )
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


def _apply_rules(frame: pd.DataFrame, inp: DayInputs, hist_max) -> pd.DataFrame:
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
    reads["source_quality"] = reads["source_quality"].fillna("")
    return reads


def _installs(installs: pd.DataFrame) -> pd.DataFrame:
    if installs is None or installs.empty:
        return pd.DataFrame(columns=["meter_id", "installed_at", "removed_at"])
    out = installs.copy()
    for col in ("installed_at", "removed_at"):
        out[col] = pd.to_datetime(out[col], utc=True)
    return out


def _attach_attributes(frame: pd.DataFrame, inp: DayInputs) -> pd.DataFrame:
    """Meter and service-point attributes per interval, looked up by meter code (categoricals:
    cheap to carry through millions of rows)."""
    catalog = inp.catalog
    per_meter = inp.meters.copy()
    if "role" not in per_meter:
        per_meter["role"] = "customer"
    per_meter = per_meter.merge(_meter_service_points(inp), on="meter_id", how="left")
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
        cats = pd.Index(pd.unique(values[pd.notna(values)]))
        idx = lookup(m, codes, cats.get_indexer(values).astype("float64"), fill=-1).astype("int64")
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


def _meter_zones(inp: DayInputs) -> pd.Series:
    """meter_id -> IANA time zone of the service point it is (last) installed at."""
    sps = inp.service_points
    if inp.installs is None or inp.installs.empty or sps is None or "timezone" not in sps:
        return pd.Series(dtype="object")
    inst = inp.installs.sort_values("installed_at").drop_duplicates("meter_id", keep="last")
    zones = inst.merge(sps[["service_point_id", "timezone"]], on="service_point_id", how="left")
    return zones.set_index("meter_id")["timezone"].dropna()


def _meter_service_points(inp: DayInputs) -> pd.DataFrame:
    cols = ["meter_id", "service_point_id", "customer_class", "has_solar"]
    if inp.installs is None or inp.installs.empty:
        return pd.DataFrame(columns=cols)
    inst = inp.installs.sort_values("installed_at").drop_duplicates("meter_id", keep="last")
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


def _failed_rules(frame: pd.DataFrame) -> np.ndarray:
    """';'-joined failed rules per interval (None where none failed), built only for the hits."""
    out = np.full(len(frame), None, dtype=object)
    hits = {rule: frame[f"r_{rule}"].to_numpy(dtype=bool) for rule in rules.RULES}
    any_hit = np.zeros(len(frame), dtype=bool)
    for hit in hits.values():
        any_hit |= hit
    rows = np.flatnonzero(any_hit)
    if len(rows):
        text = np.full(len(rows), "", dtype=object)
        for rule, hit in hits.items():
            sub = hit[rows]
            text[sub] = text[sub] + ";" + rule
        out[rows] = [t[1:] for t in text]
    return out


def _interval_exceptions(frame: pd.DataFrame) -> pd.DataFrame:
    parts = []
    for rule, (severity, _, meaning) in rules.RULES.items():
        if rule in ("time_tolerance", "awaiting_data"):
            continue
        hit = frame[frame[f"r_{rule}"]]
        if hit.empty:
            continue
        g = hit.groupby(["meter_id", "channel"], sort=False).agg(
            period_start=("interval_end", "min"),
            period_end=("interval_end", "max"),
            intervals=("interval_end", "size"),
            low=("value", "min"),
            high=("value", "max"),
        )
        g = g.reset_index()
        g["rule"], g["severity"] = rule, severity
        values = np.where(
            g["high"].notna(),
            " (values " + g["low"].round(3).astype(str) + " to " + g["high"].round(3).astype(str) + ")",
            "",
        )
        g["detail"] = g["intervals"].astype(str) + " interval(s): " + meaning + values
        parts.append(g)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=EXCEPTION_COLUMNS)


def _series_spans(rows: pd.DataFrame, **extra) -> pd.DataFrame:
    """Per meter and channel: first and last interval end and how many rows (plus ``extra`` aggregates)."""
    return (
        rows.groupby(["meter_id", "channel"], observed=True)
        .agg(
            period_start=("interval_end", "min"),
            period_end=("interval_end", "max"),
            n=("interval_end", "size"),
            **extra,
        )
        .reset_index()
    )


def _day_exceptions(frame, inp, winners, conflicts, outside, daily, tolerance) -> pd.DataFrame:
    rows: list[pd.DataFrame] = []

    def add(df: pd.DataFrame, rule: str, detail: pd.Series | str, intervals=None) -> None:
        if df.empty:
            return
        severity = rules.DAY_RULES[rule][0]
        out = df[["meter_id", "channel"]].copy()
        out["rule"], out["severity"], out["detail"] = rule, severity, detail
        out["intervals"] = intervals if intervals is not None else 0
        out["period_start"] = df.get("period_start", pd.NaT)
        out["period_end"] = df.get("period_end", pd.NaT)
        rows.append(out)

    # reads outside the grid: a meter the master data does not know yet (they wait for the CIS
    # sync; a re-run of the day validates them), clock drift beyond tolerance, or nothing expected there
    if len(outside):
        unknown = ~np.isin(
            outside["meter_id"].astype(str).to_numpy(), inp.meters["meter_id"].astype(str).to_numpy()
        )
        drift = (outside["drift_s"].abs() > tolerance).to_numpy() & ~unknown
        for rule, subset in (
            ("unregistered_meter", outside[unknown]),
            ("clock_drift", outside[drift]),
            ("usage_on_inactive", outside[~drift & ~unknown]),
        ):
            if subset.empty:
                continue
            g = _series_spans(subset, drift=("drift_s", lambda s: int(s.abs().max())))
            text = {
                "unregistered_meter": g["n"].astype(str)
                + " read(s) of a meter the master data does not know yet: they wait for the CIS sync",
                "clock_drift": g["n"].astype(str)
                + " read(s) up to "
                + g["drift"].astype(str)
                + " s off the interval grid",
                "usage_on_inactive": g["n"].astype(str)
                + " read(s) for a meter/channel not installed at that time",
            }[rule]
            add(g, rule, text, g["n"].to_numpy())

    if len(conflicts):
        same_file = conflicts["files"] == 1
        for rule, subset in (
            ("conflicting_duplicates", conflicts[same_file]),
            ("replaced_value", conflicts[~same_file]),
        ):
            if subset.empty:
                continue
            g = _series_spans(subset)
            add(
                g,
                rule,
                g["n"].astype(str) + " interval(s) received with different values; the latest delivery wins",
                g["n"].to_numpy(),
            )

    totals = _day_totals(frame, inp)
    for ruleset_key, group in totals.groupby(["commodity", "kind"], sort=False) if len(totals) else ():
        ruleset = inp.config.for_class(ruleset_key[0], ruleset_key[1], None)
        failed = pd.concat([rules.sum_check(group, ruleset), _partial_sum_check(group, ruleset)])
        for rule in ("sum_check", "multiplier_mismatch"):
            add(failed[failed["rule"] == rule], rule, failed.loc[failed["rule"] == rule, "detail"])
        _usage_vs_history(group, daily, ruleset, add, day_type(pd.Series([inp.day]), inp.holidays).iloc[0])

    # customer meters only: a zone's bulk meter carries the network's night flow by design
    spread = frame["source_quality"].eq(SPREAD_QUALITY)  # apportioned across a gap: flat, not a flow
    water = frame[frame["channel"].eq("water") & frame["role"].eq("customer") & ~spread]
    if len(water):
        g = (
            water.groupby(["meter_id", "channel"])
            .agg(
                low=("value", "min"),
                n=("value", "count"),
                secs=("interval_seconds", "first"),
                period_start=("interval_end", "min"),
                period_end=("interval_end", "max"),
            )
            .reset_index()
        )
        hours = g["n"] * g["secs"] / 3600
        leak = g[(g["low"] > 0) & (hours >= inp.config.default.water_min_flow_hours * 0.95)]
        add(
            leak,
            "continuous_flow",
            "flow never dropped below " + leak["low"].round(2).astype(str) + " gal per interval",
        )

    received = frame[frame["channel"].eq("kwh_received") & ~frame["has_solar"]]
    if len(received):
        g = (
            received.groupby(["meter_id", "channel"])
            .agg(
                total=("value", "sum"),
                period_start=("interval_end", "min"),
                period_end=("interval_end", "max"),
            )
            .reset_index()
        )
        g = g[g["total"] > 0]
        add(
            g,
            "reverse_flow",
            g["total"].round(3).astype(str) + " kWh received on a service point without generation",
        )

    events = inp.events
    if events is not None and len(events):
        ev = events[events["event_type"].isin(["tamper", "reverse_flow"])].copy()
        if len(ev):
            ev["event_at"] = pd.to_datetime(ev["event_at"], utc=True)
            g = (
                ev.groupby(["meter_id", "event_type"])
                .agg(period_start=("event_at", "min"), period_end=("event_at", "max"), n=("event_at", "size"))
                .reset_index()
            )
            g["channel"] = np.where(g["event_type"] == "tamper", "kwh_delivered", "kwh_received")
            for rule in ("tamper", "reverse_flow"):
                sub = g[g["event_type"] == rule]
                add(sub, rule, sub["n"].astype(str) + f" {rule.replace('_', ' ')} event(s) from the meter")

    # missing sibling channels: some channel of a meter sent data, another configured one nothing
    got = pd.Series(frame["received"].to_numpy(dtype=bool)).groupby(frame["sid"].to_numpy()).any()
    sids, received = got.index.to_numpy(), got.to_numpy()
    meter_any = pd.Series(received).groupby(sids // N_CHANNELS).transform("any").to_numpy()
    quiet = sids[~received & meter_any]
    silent = pd.DataFrame({"meter_id": inp.catalog.meter_of(quiet), "channel": Catalog.channel_of(quiet)})
    add(
        silent,
        "missing_channel",
        "channel " + silent["channel"].astype(str) + " sent no data while the meter's other channels did",
    )

    add_inactive = _vacant_usage(frame, inp)
    add(
        add_inactive,
        "usage_on_inactive",
        "consumption "
        + add_inactive.get("total", pd.Series(dtype=float)).round(3).astype(str)
        + " on a service point with no active account",
    )

    add(_prolonged(frame, daily, inp), "prolonged_estimation", "estimated on each of the previous days too")
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=EXCEPTION_COLUMNS)


def _day_totals(frame: pd.DataFrame, inp: DayInputs) -> pd.DataFrame:
    """Per meter activation and channel: interval sum, completeness, bracketing registers."""
    rows = np.flatnonzero(~frame["context"].to_numpy(dtype=bool)) if "context" in frame else None
    sid, t = frame["sid"].to_numpy(), frame["t"].to_numpy()
    if rows is not None:
        sid, t = sid[rows], t[rows]
    if len(sid) > 1 and ((sid[1:] < sid[:-1]) | ((sid[1:] == sid[:-1]) & (t[1:] < t[:-1]))).any():
        order = np.lexsort((t, sid))
        rows = order if rows is None else rows[order]
        sid, t = sid[order], t[order]

    def col(values: np.ndarray) -> np.ndarray:
        return values if rows is None else values[rows]

    uniq, starts = group_bounds(sid)
    if len(uniq) == 0:
        return pd.DataFrame(
            columns=["meter_id", "channel", "sid", "interval_sum", "complete", "reg_start", "reg_end"]
        )
    last = np.r_[starts[1:], len(sid)] - 1
    value = col(frame["value"].to_numpy(dtype="float64"))
    valid = col(frame["status"].eq("valid").to_numpy(dtype=bool))
    firsts = frame.iloc[starts if rows is None else rows[starts]]
    g = pd.DataFrame(
        {
            "meter_id": firsts["meter_id"].to_numpy(),
            "channel": firsts["channel"].to_numpy(),
            "sid": uniq,
            "interval_sum": np.add.reduceat(np.nan_to_num(value), starts),
            "complete": np.minimum.reduceat(valid.astype("int8"), starts) == 1,
            "intervals": np.diff(np.r_[starts, len(sid)]),
            "valid_intervals": np.add.reduceat(valid.astype("int64"), starts),
            "valid_sum": np.add.reduceat(np.where(valid, np.nan_to_num(value), 0.0), starts),
            "valid_max": np.maximum.reduceat(np.where(valid, np.nan_to_num(value), 0.0), starts),
            "span_start": t[starts] - firsts["interval_seconds"].to_numpy(dtype="int64"),
            "span_end": t[last],
            "commodity": firsts["commodity"].to_numpy(),
            "kind": firsts["kind"].to_numpy(),
            "dials": firsts["dials"].to_numpy(dtype="float64"),
            "multiplier": firsts["multiplier"].to_numpy(dtype="float64"),
        }
    )
    g["reg_start"], g["reg_end"] = np.nan, np.nan
    regs = inp.registers
    if regs is not None and len(regs):
        rsid = inp.catalog.sid(regs["meter_id"], regs["channel"])
        rt = epoch(pd.to_datetime(regs["read_at"], utc=True))
        rv = regs["value"].to_numpy(dtype="float64")
        g["reg_start"] = _register_at(g["sid"].to_numpy(), g["span_start"].to_numpy(), rsid, rt, rv)
        g["reg_end"] = _register_at(g["sid"].to_numpy(), g["span_end"].to_numpy(), rsid, rt, rv)
    inst = _installs(inp.installs)
    if len(inst):
        # the installation active during this day (a multiplier change splits installations)
        day_start, day_end = int(g["span_start"].min()), int(g["span_end"].max())
        removed = epoch(inst["removed_at"].fillna(pd.Timestamp.max.tz_localize("UTC").floor("s")))
        active = (epoch(inst["installed_at"]) < day_end) & (removed > day_start)
        spans = inst[active].sort_values("installed_at").drop_duplicates("meter_id", keep="last")
        m = inp.catalog.meter_codes(spans["meter_id"])
        known = ~np.isnan(m)
        spans, m = spans[known], m[known].astype("int64")
        g_m = g["sid"].to_numpy() // N_CHANNELS
        installed = lookup(g_m, m, epoch(spans["installed_at"]).astype("float64"))
        removed = lookup(
            g_m, m, epoch(spans["removed_at"].fillna(pd.Timestamp(0, tz="UTC"))).astype("float64")
        )
        removed = np.where(
            lookup(g_m, m, spans["removed_at"].isna().to_numpy().astype("float64")) == 1, np.nan, removed
        )
        start_reg = lookup(g_m, m, spans["start_register"].to_numpy(dtype="float64"))
        end_reg = lookup(g_m, m, spans["end_register"].to_numpy(dtype="float64"))
        g["reg_start"] = np.where(
            (installed == g["span_start"]) & ~np.isnan(start_reg), start_reg, g["reg_start"]
        )
        g["reg_end"] = np.where((removed == g["span_end"]) & ~np.isnan(end_reg), end_reg, g["reg_end"])
        mult = lookup(g_m, m, spans["multiplier"].to_numpy(dtype="float64"))
        g["multiplier"] = np.where(np.isnan(mult), g["multiplier"], mult)
    return g


def _partial_sum_check(totals: pd.DataFrame, ruleset) -> pd.DataFrame:
    """The sum check of a day with unmeasured (missing or suspect) intervals, which the full sum
    check cannot judge. Their true values are unknown but bounded: they cannot be negative, so a
    register advance × multiplier below the measured intervals (beyond the tolerance) is wrong;
    and when most of the day was measured, an advance that would need each unmeasured interval to
    hold more than ``register_gap_factor`` × the day's highest valid interval is implausible. A
    failing advance whose extrapolated day total matches it with another common multiplier is a
    ``multiplier_mismatch``, any other a ``sum_check``. Estimates are then not scaled to it."""
    cols = ["meter_id", "channel", "rule", "detail", "expected", "interval_sum"]
    t = totals.dropna(subset=["reg_start", "reg_end"])
    if "valid_intervals" not in t:
        return pd.DataFrame(columns=cols)
    t = t[~t["complete"] & (t["valid_intervals"] > 0) & ~t["channel"].isin(rules.CAN_RUN_BACKWARDS)]
    if t.empty:
        return pd.DataFrame(columns=cols)
    dials = t["dials"].fillna(0).astype("int64").to_numpy()
    advance = (t["reg_end"] - t["reg_start"]).to_numpy(dtype="float64")
    advance = np.where((advance < 0) & (dials > 0), advance + np.power(10.0, dials), advance)
    expected = advance * t["multiplier"].fillna(1.0).to_numpy(dtype="float64")
    measured = t["valid_sum"].to_numpy(dtype="float64")
    n, n_valid = t["intervals"].to_numpy(dtype="float64"), t["valid_intervals"].to_numpy(dtype="float64")
    tol = ruleset.sum_check_tolerance_pct / 100.0
    too_low = measured > expected * (1 + tol) + 1e-9
    cap = ruleset.register_gap_factor * t["valid_max"].to_numpy(dtype="float64") * (n - n_valid)
    too_high = (n_valid >= ruleset.register_gap_min_coverage * n) & (expected - measured > cap * (1 + tol))
    bad = too_low | too_high
    if not bad.any():
        return pd.DataFrame(columns=cols)
    f = t[bad]
    extrapolated = measured[bad] * n[bad] / n_valid[bad]
    classify = rules.sum_check(
        f.assign(interval_sum=extrapolated, complete=True), ruleset.override({"sum_check_tolerance_pct": 0.0})
    )
    mismatch = classify[classify["rule"] == "multiplier_mismatch"][["meter_id", "channel", "detail"]]
    gaps = (n[bad] - n_valid[bad]).astype("int64").astype(str)
    detail = (
        "register advance × multiplier = "
        + pd.Series(expected[bad]).round(3).astype(str).to_numpy()
        + " is implausible for the "
        + gaps
        + " unmeasured interval(s): the measured intervals sum to "
        + pd.Series(measured[bad]).round(3).astype(str).to_numpy()
    )
    out = pd.DataFrame(
        {
            "meter_id": f["meter_id"].to_numpy(),
            "channel": f["channel"].to_numpy(),
            "rule": "sum_check",
            "detail": detail,
            "expected": expected[bad],
            "interval_sum": measured[bad],
        }
    )
    if len(mismatch):
        m = out.merge(mismatch, on=["meter_id", "channel"], how="left", suffixes=("", "_m"))
        hit = m["detail_m"].notna().to_numpy()
        out.loc[hit, "rule"] = "multiplier_mismatch"
        out.loc[hit, "detail"] = (
            "extrapolated over unmeasured intervals, " + m.loc[hit, "detail_m"].to_numpy()
        )
    return out[cols]


def _register_at(
    sid: np.ndarray, at: np.ndarray, reg_sid: np.ndarray, reg_t: np.ndarray, reg_value: np.ndarray
) -> np.ndarray:
    """The register read of each series nearest to ``at`` within the tolerance (NaN if none)."""
    tolerance = int(REGISTER_TOLERANCE.total_seconds())
    left = pd.DataFrame({"sid": sid, "t": at, "i": np.arange(len(sid))}).sort_values("t")
    right = pd.DataFrame({"sid": reg_sid, "t": reg_t, "value": reg_value}).sort_values("t")
    merged = pd.merge_asof(left, right, on="t", by="sid", direction="nearest", tolerance=tolerance)
    out = np.full(len(sid), np.nan)
    out[merged["i"].to_numpy()] = merged["value"].to_numpy(dtype="float64")
    return out


def _usage_vs_history(group, daily, ruleset, add, today_type: str) -> None:
    """Oracle High/Low (V6): the day total against the like-day average of clean reference days."""
    if daily is None or daily.empty:
        return
    ref = daily[daily["clean"] & (daily["day_type"] == today_type)]
    ref = (
        ref.groupby(["meter_id", "channel"]).agg(avg=("total", "mean"), days=("total", "size")).reset_index()
    )
    g = group[group["complete"]].merge(ref[ref["days"] >= 3], on=["meter_id", "channel"])
    high = g[(g["avg"] > 0) & (g["interval_sum"] > ruleset.high_usage_factor * g["avg"])]
    low = g[(g["avg"] > 0) & (g["interval_sum"] < ruleset.low_usage_factor * g["avg"])]
    for rule, rows in (("high_usage", high), ("low_usage", low)):
        detail = (
            "day total "
            + rows["interval_sum"].round(2).astype(str)
            + " vs like-day average "
            + rows["avg"].round(2).astype(str)
        )
        add(rows, rule, detail)


def _vacant_usage(frame: pd.DataFrame, inp: DayInputs) -> pd.DataFrame:
    empty = pd.DataFrame(columns=["meter_id", "channel", "total"])
    if inp.accounts is None or inp.accounts.empty or "service_point_id" not in frame:
        return empty
    acc = inp.accounts.copy()
    day = pd.Timestamp(inp.day)
    move_in = pd.to_datetime(acc["move_in"])
    move_out = pd.to_datetime(acc["move_out"])
    # move-out is the last day of service
    occupied = set(acc.loc[(move_in <= day) & (move_out.isna() | (move_out >= day)), "service_point_id"])
    known = set(acc["service_point_id"])
    day_rows = frame[
        frame["service_point_id"].isin(known - occupied)
        & frame["channel"].isin(["kwh_delivered", "water", "gas"])
    ]
    if day_rows.empty:
        return empty
    g = (
        day_rows.groupby(["meter_id", "channel"])
        .agg(total=("value", "sum"), period_start=("interval_end", "min"), period_end=("interval_end", "max"))
        .reset_index()
    )
    threshold = g["channel"].map(VACANT_DAILY_THRESHOLD).fillna(0.0)
    return g[g["total"] > threshold]


def _prolonged(frame: pd.DataFrame, daily: pd.DataFrame, inp: DayInputs) -> pd.DataFrame:
    """Oracle V21: the channel needed estimates on each of the previous n−1 days and needs them again."""
    empty = pd.DataFrame(columns=["meter_id", "channel"])
    n = inp.config.default.prolonged_estimation_days
    if daily is None or daily.empty or n < 2:
        return empty
    today = frame[frame["status"].isin(["suspect", "missing"])][["meter_id", "channel"]].drop_duplicates()
    if today.empty:
        return empty
    recent = daily[
        (daily["estimated_intervals"] > 0) & (daily["read_day"] >= inp.day - dt.timedelta(days=n - 1))
    ]
    days = recent.groupby(["meter_id", "channel"])["read_day"].nunique().reset_index(name="days")
    return today.merge(days[days["days"] >= n - 1], on=["meter_id", "channel"])


def _finish_exceptions(exc: pd.DataFrame, day: dt.date, start, end) -> pd.DataFrame:
    if exc.empty:
        return pd.DataFrame(columns=EXCEPTION_COLUMNS)
    exc = exc.copy()
    exc["read_day"] = pd.Timestamp(day)
    exc["period_start"] = pd.to_datetime(exc["period_start"], utc=True).fillna(start)
    exc["period_end"] = pd.to_datetime(exc["period_end"], utc=True).fillna(end)
    exc["intervals"] = pd.to_numeric(exc["intervals"], errors="coerce").fillna(0).astype("int64")
    exc["exception_id"] = exception_ids(exc["meter_id"], exc["channel"], day.isoformat(), exc["rule"])
    return exc.drop_duplicates("exception_id")[EXCEPTION_COLUMNS].reset_index(drop=True)


# --- history and estimation -------------------------------------------------------------------------


def day_type(dates: pd.Series, holidays: frozenset) -> pd.Series:
    """'weekend_holiday' or 'weekday' per date, judged once per distinct date."""
    days = np.asarray(pd.to_datetime(dates).to_numpy(), dtype="datetime64[D]")
    distinct, inverse = np.unique(days, return_inverse=True)
    off = pd.DatetimeIndex(distinct).weekday.to_numpy() >= 5
    if holidays:
        off |= np.isin(distinct, np.array(sorted(holidays), dtype="datetime64[D]"))
    kind = np.where(off, "weekend_holiday", "weekday")
    return pd.Series(kind[inverse.reshape(-1)] if len(days) else kind[:0], index=dates.index)


def prepare_daily_history(daily: pd.DataFrame, day: dt.date, holidays: frozenset) -> pd.DataFrame:
    """daily_usage rows before ``day`` with their day type and whether the day was clean
    (complete, all valid, no outage)."""
    cols = [
        "meter_id",
        "channel",
        "read_day",
        "total",
        "max_value",
        "intervals",
        "valid_intervals",
        "estimated_intervals",
        "has_outage",
        "day_type",
        "clean",
    ]
    if daily is None or daily.empty:
        return pd.DataFrame(columns=cols)
    d = daily.copy()
    d["read_day"] = pd.to_datetime(d["read_day"]).dt.date
    d = d[d["read_day"] < day]
    d["day_type"] = day_type(pd.Series(d["read_day"].to_numpy(), index=d.index), holidays)
    d["clean"] = (d["valid_intervals"] == d["intervals"]) & ~d["has_outage"].astype(bool)
    return d


def exception_ids(meter_id: pd.Series, channel: pd.Series, day, rule) -> list[str]:
    """The stable id of an exception: one per meter-channel-day-rule (``day`` and ``rule`` may be
    scalars or series of ISO dates and rule names), so re-runs find the same row."""
    key = meter_id.astype(str) + "|" + channel.astype(str) + "|" + day + "|" + rule
    return [hashlib.sha1(k.encode()).hexdigest()[:20] for k in key]


def daily_usage(frame: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """One row per meter-channel of the day's final intervals: what later days' rules compare with."""
    f = frame.assign(
        _valid=frame["final_status"].eq("valid"),
        _est=frame["final_status"].eq("estimated"),
        _outage=frame["outage"].astype(bool),
    )
    g = (
        f.groupby(["meter_id", "channel"], sort=False)
        .agg(
            total=("final_value", "sum"),
            max_value=("final_value", "max"),
            intervals=("final_value", "size"),
            valid_intervals=("_valid", "sum"),
            estimated_intervals=("_est", "sum"),
            has_outage=("_outage", "any"),
            unit=("unit", "first"),
        )
        .reset_index()
    )
    g["read_day"] = pd.Timestamp(day)
    return g


def _slots(instants: pd.Series, seconds: pd.Series | np.ndarray, tz: str) -> tuple[pd.Series, np.ndarray]:
    """Local start of each interval and its minute of the local day. A daily interval (nominally
    86,400 s, 23 or 25 h on DST days) is dated to the local day that ends at its end, slot 0."""
    seconds = np.asarray(seconds, dtype="int64")
    daily = seconds >= 86400
    start = (instants - pd.to_timedelta(np.where(daily, 1, seconds), unit="s")).dt.tz_convert(tz)
    slot = np.where(daily, 0, (start.dt.hour * 60 + start.dt.minute).to_numpy(dtype="int64"))
    return start, slot


def prepare_history(
    history: pd.DataFrame, tz: str, holidays: frozenset, catalog: Catalog | None = None, before=None
) -> pd.DataFrame:
    """Current intervals of the reference weeks with series id, local date, slot, day type, usability."""
    cols = [
        "meter_id",
        "channel",
        "interval_end",
        "interval_seconds",
        "value",
        "status",
        "failed_rules",
        "estimation_method",
        "sid",
        "t",
        "local_date",
        "slot",
        "day_type",
        "weekday",
        "outage",
        "clean",
        "usable",
    ]
    if history is None or history.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols}).astype(
            {"sid": "int64", "t": "int64", "slot": "int64", "value": "float64"}
        )
    h = history.copy()
    h["interval_end"] = pd.to_datetime(h["interval_end"], utc=True)
    if before is not None:
        h = h[h["interval_end"] <= before]
    catalog = catalog or Catalog(h["meter_id"])
    h["sid"] = catalog.sid(h["meter_id"], h["channel"])
    h = h[h["sid"] >= 0]
    h["t"] = epoch(h["interval_end"])
    start_local, h["slot"] = _slots(h["interval_end"], h["interval_seconds"], tz)
    h["local_date"] = start_local.dt.tz_localize(None).dt.date
    h["weekday"] = start_local.dt.weekday
    h["day_type"] = day_type(pd.Series(h["local_date"].to_numpy(), index=h.index), holidays)
    h["outage"] = h["failed_rules"].fillna("").astype(str).str.contains("power_outage")
    h["clean"] = h["status"].eq("valid") & h["value"].notna()
    h["usable"] = h["status"].isin(["valid", "edited", "verified"]) & h["value"].notna() & ~h["outage"]
    return h


def _class_keys(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Integer class keys per row, computed once per series: fine (commodity, channel, interval
    length, customer class) and coarse (without the customer class)."""
    sid = frame["sid"].to_numpy()
    if len(sid) > 1 and (sid[1:] >= sid[:-1]).all():  # grouped by series: the first rows are known
        firsts = frame.iloc[group_bounds(sid)[1]]
    else:
        firsts = frame.drop_duplicates("sid")
    fine = pd.MultiIndex.from_frame(
        firsts[["commodity", "channel", "interval_seconds", "customer_class"]].astype(str)
    ).factorize()[0]
    coarse = pd.MultiIndex.from_frame(
        firsts[["commodity", "channel", "interval_seconds"]].astype(str)
    ).factorize()[0]
    keys = firsts["sid"].to_numpy()
    return lookup(sid, keys, fine, fill=-1).astype("int64"), lookup(sid, keys, coarse, fill=-1).astype(
        "int64"
    )


def estimate_day(
    validated: DayResult, inp: DayInputs, methods: tuple[str, ...] = estimation.CHAIN
) -> DayResult:
    """Fill suspect and missing intervals through the estimation chain; re-validate estimates.

    Only the series that need an estimate are worked on (with their context rows); class
    profiles come from every valid interval of the day.
    """
    start, end = local_day_bounds(inp.day, inp.tz)
    catalog = inp.catalog or Catalog(validated.intervals["meter_id"])
    full = validated.intervals
    full["context"] = False
    _, full["slot"] = _slots(full["interval_end"], full["interval_seconds"], inp.tz)
    full["class_fine"], full["class_coarse"] = _class_keys(full)
    todo = estimation.needs_estimate(full)
    est_value = np.full(len(full), np.nan)
    est_method = np.full(len(full), None, dtype=object)
    est_inputs = np.full(len(full), None, dtype=object)
    if todo.any():
        todo_sids = np.unique(full["sid"].to_numpy()[todo])
        work = full[np.isin(full["sid"].to_numpy(), todo_sids)].assign(row=lambda f: f.index.to_numpy())
        history_all = prepare_history(inp.history, inp.tz, inp.holidays, catalog)
        history_all = history_all[np.isin(history_all["sid"].to_numpy(), todo_sids)]
        # like days may include the day after (VEE may already hold it), never the day itself
        references = history_all[(history_all["interval_end"] <= start) | (history_all["interval_end"] > end)]
        context = _context_rows(history_all, work, start, end)
        work = pd.concat([work, context], ignore_index=True)
        work = work.iloc[np.lexsort((work["t"].to_numpy(), work["sid"].to_numpy()))].reset_index(drop=True)
        profiles = estimation.class_profiles(full) if "class_profile" in methods else None
        target_type = day_type(pd.Series([inp.day]), inp.holidays).iloc[0]
        totals = _day_totals(work, inp).dropna(subset=["reg_start", "reg_end"])
        dials = totals["dials"].fillna(0).astype("int64").to_numpy()
        adv = (totals["reg_end"] - totals["reg_start"]).to_numpy()
        adv = np.where((adv < 0) & (dials > 0), adv + np.power(10.0, dials), adv)
        expected_totals = (totals["sid"].to_numpy(), adv * totals["multiplier"].fillna(1.0).to_numpy())
        suspect_registers = _suspect_registers(validated.exceptions, catalog)
        parts = []
        for (commodity, kind, seconds), group in work.groupby(
            ["commodity", "kind", "interval_seconds"], sort=True
        ):
            ruleset = inp.config.for_class(commodity, kind, int(seconds))
            group = group.reset_index(drop=True)
            parts.append(
                estimation.run_chain(
                    group,
                    references,
                    ruleset,
                    target_type,
                    inp.day.weekday(),
                    expected_totals,
                    methods,
                    profiles,
                    suspect_registers,
                    day=inp.day,
                )
            )
        done = pd.concat(parts, ignore_index=True)
        done = done[~done["context"].to_numpy(dtype=bool)]
        rows = done["row"].to_numpy(dtype="int64")
        est_value[rows] = done["est_value"].to_numpy(dtype="float64")
        est_method[rows] = done["est_method"].to_numpy(dtype=object)
        est_inputs[rows] = done["est_inputs"].to_numpy(dtype=object)
    frame = full
    est = np.zeros(len(full), dtype=bool)
    if todo.any():  # only the chain's rows can hold a method
        est[rows] = [isinstance(m, str) for m in est_method[rows]]
    bad_estimate = est & (est_value < 0) & ~frame["channel"].isin(rules.CAN_RUN_BACKWARDS).to_numpy()
    est = est & ~bad_estimate
    frame["est_method"] = np.where(est, est_method, None)
    frame["final_value"] = np.where(est, est_value, frame["value"].to_numpy(dtype="float64"))
    status = pd.Categorical(frame["status"], categories=STATUSES)
    frame["final_status"] = pd.Categorical.from_codes(
        np.where(est, STATUSES.index("estimated"), status.codes), categories=STATUSES
    )
    frame["estimation_method"] = frame["est_method"]
    frame["estimation_inputs"] = np.where(est, est_inputs, None)
    espi, iec = quality_codes(frame["final_status"], frame["estimation_method"], est)
    frame["espi_quality"], frame["iec_quality"] = espi, iec
    n = len(frame)
    filled = np.isin(
        frame["final_status"].cat.codes.to_numpy(), [0, STATUSES.index("estimated")]
    ) & ~np.isnan(frame["final_value"].to_numpy(dtype="float64"))
    due = (
        ~frame["r_awaiting_data"].to_numpy(dtype=bool)
        if "r_awaiting_data" in frame
        else np.ones(n, dtype=bool)
    )
    methods_used = pd.Series([m.split("+")[0] for m in est_method[est]], dtype="object")
    stats = dict(validated.stats)
    stats.update(
        {
            "estimated_intervals": int(est.sum()),
            "estimated_share": float(est.mean()) if n else 0.0,
            "completeness": float(filled[due].mean()) if due.any() else 1.0,
            "due_intervals": int(due.sum()),
            "estimated_by_method": methods_used.value_counts().astype(int).to_dict(),
            "unestimated_intervals": int((~filled & due).sum()),
        }
    )
    return DayResult(frame, validated.exceptions, stats)


REGISTER_RULES = ("multiplier_mismatch", "sum_check")


def _suspect_registers(exceptions: pd.DataFrame, catalog: Catalog) -> tuple[np.ndarray, np.ndarray] | None:
    """(series ids, failed rule) of the series whose register advance failed today."""
    if exceptions is None or exceptions.empty or "rule" not in exceptions:
        return None
    failed = exceptions[exceptions["rule"].isin(REGISTER_RULES)]
    if failed.empty:
        return None
    failed = failed.sort_values("rule").drop_duplicates(["meter_id", "channel"])
    sid = catalog.sid(failed["meter_id"], failed["channel"])
    keep = sid >= 0
    return sid[keep], failed["rule"].to_numpy(dtype=object)[keep]


def _context_rows(history: pd.DataFrame, frame: pd.DataFrame, start, end) -> pd.DataFrame:
    """Neighbouring days' current intervals (a few hours each side) as interpolation end points."""
    if history is None or history.empty or frame.empty:
        return frame.head(0)
    window = pd.Timedelta(hours=CONTEXT_HOURS)
    near = history[
        ((history["interval_end"] > start - window) & (history["interval_end"] <= start))
        | ((history["interval_end"] > end) & (history["interval_end"] <= end + window))
    ]
    if near.empty:
        return frame.head(0)
    attrs = frame.drop_duplicates("sid")[
        ["sid", "commodity", "kind", "customer_class", "unit", "class_fine", "class_coarse"]
    ]
    ctx = near[
        [
            "sid",
            "meter_id",
            "channel",
            "interval_end",
            "t",
            "interval_seconds",
            "value",
            "status",
            "slot",
            "outage",
        ]
    ].merge(attrs, on="sid")
    ctx["status"] = np.where(ctx["status"].isin(["valid", "edited", "verified"]), "valid", "context_other")
    ctx["outage"] = ctx["outage"].fillna(False).astype(bool)
    ctx["context"] = True
    ctx["received"] = True
    ctx["row"] = -1
    return ctx


# --- forward estimation (billing needs data that has not arrived) -------------------------------------

FORWARD_CHAIN = ("like_day", "class_profile", "average_daily_load")
FORWARD_METHOD = "forward"
FORWARD_CODES = (12, "2.12.0")  # ESPI 12 projected (forecast); IEC 61968-9 MDM projected, generic


def estimate_forward(
    targets: pd.DataFrame,
    history: pd.DataFrame,
    series: pd.DataFrame,
    tz: str,
    holidays: frozenset = frozenset(),
    config: VeeConfig | None = None,
) -> pd.DataFrame:
    """Project intervals that have not arrived (vee.md E11) with the chain's like-day, class-profile
    and average-daily-load steps (E2/E3/E5/E8).

    ``targets``: meter_id, channel, interval_end, interval_seconds — the intervals to project.
    ``history``: current intervals of the reference weeks before them (meter_id, channel,
    interval_end, interval_seconds, value, status, failed_rules, estimation_method).
    ``series``: meter_id, channel, commodity, kind, customer_class.
    Returns ``targets`` with value (NaN where nothing could estimate), base_method and inputs.
    One frame per operating day (like days depend on the day), every series at once.
    """
    config = config or VeeConfig()
    out = targets.reset_index(drop=True).copy()
    out["value"], out["base_method"], out["inputs"] = np.nan, None, None
    if out.empty:
        return out
    catalog = Catalog(out["meter_id"])
    attrs = series.drop_duplicates(["meter_id", "channel"])
    frame = out[["meter_id", "channel", "interval_end", "interval_seconds"]].merge(
        attrs, on=["meter_id", "channel"], how="left"
    )
    frame["interval_end"] = pd.to_datetime(frame["interval_end"], utc=True)
    frame["row"] = np.arange(len(frame))
    frame["sid"] = catalog.sid(frame["meter_id"], frame["channel"])
    frame["t"] = epoch(frame["interval_end"])
    _, frame["slot"] = _slots(frame["interval_end"], frame["interval_seconds"], tz)
    for col, fill in (("commodity", "electric"), ("kind", "ami"), ("customer_class", "none")):
        frame[col] = frame[col].fillna(fill).astype(str) if col in frame else fill
    frame["local_date"] = operating_day(frame["interval_end"], frame["interval_seconds"], tz).dt.date
    frame["value"], frame["status"] = np.nan, "missing"
    frame["outage"], frame["context"] = False, False
    frame["class_fine"], frame["class_coarse"] = _class_keys(frame)
    hist = prepare_history(history, tz, holidays, catalog)
    hist = hist[np.isin(hist["sid"].to_numpy(), frame["sid"].to_numpy())]
    profiles = _history_profiles(hist, frame) if len(hist) else None
    parts = []
    for day, day_frame in frame.groupby("local_date", sort=True):
        target_type = day_type(pd.Series([day]), holidays).iloc[0]
        like = None
        if profiles is not None:
            like = {
                level: prof.get(target_type, pd.Series(dtype="float64")) for level, prof in profiles.items()
            }
        for (commodity, kind, seconds), group in day_frame.groupby(
            ["commodity", "kind", "interval_seconds"], sort=True
        ):
            ruleset = config.for_class(commodity, kind, int(seconds))
            group = group.iloc[np.lexsort((group["t"].to_numpy(), group["sid"].to_numpy()))]
            parts.append(
                estimation.run_chain(
                    group.reset_index(drop=True),
                    hist,
                    ruleset,
                    target_type,
                    day.weekday(),
                    None,
                    FORWARD_CHAIN,
                    like,
                    day=day,
                )
            )
    done = pd.concat(parts, ignore_index=True)
    rows = done["row"].to_numpy(dtype="int64")
    out.loc[rows, "value"] = done["est_value"].to_numpy(dtype="float64")
    out.loc[rows, "base_method"] = done["est_method"].to_numpy(dtype=object)
    out.loc[rows, "inputs"] = done["est_inputs"].to_numpy(dtype=object)
    negative = (out["value"] < 0) & ~out["channel"].isin(rules.CAN_RUN_BACKWARDS)
    out.loc[negative, ["value", "base_method", "inputs"]] = [np.nan, None, None]
    return out


def _history_profiles(hist: pd.DataFrame, frame: pd.DataFrame) -> dict[str, dict[str, pd.Series]]:
    """Class average shape per day type from the reference weeks' usable intervals of the series
    being projected (the class-profile step's input when today holds no valid interval)."""
    keys = frame.drop_duplicates("sid")[["sid", "class_fine", "class_coarse"]]
    h = hist[hist["usable"]].merge(keys, on="sid")
    out: dict[str, dict[str, pd.Series]] = {"fine": {}, "coarse": {}}
    for kind, rows in h.groupby("day_type"):
        for level in ("fine", "coarse"):
            key = rows[f"class_{level}"].to_numpy() * estimation.SLOTS + rows["slot"].to_numpy()
            out[level][kind] = pd.Series(rows["value"].to_numpy(dtype="float64")).groupby(key).mean()
    return out
