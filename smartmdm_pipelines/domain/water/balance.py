"""DMA zone balances per hour and per operating day, from current interval versions.

System input of a zone = its own inlet (bulk) meters minus the inlet meters of its child zones
(nested DMAs via ``parent_zone_id``); customer consumption = the current valid, edited and
estimated intervals of the customer meters installed at the zone's service points. Completeness
is measured on both sides against the intervals the meters should report: the input side counts
only measured intervals (valid | edited), so an estimated inlet value never looks like a read; the
customer side counts every interval holding a value and shows the estimated part separately.
Hours are identified by their end (UTC); an interval belongs to the hour that contains it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HOUR = pd.Timedelta(hours=1)
MEASURED = ("valid", "edited")
# VEE rules that only say "unusually high": billing rules. On a DMA inlet a burst is exactly that, so
# the balance keeps the inlet's read where VEE replaced it by an estimate for one of these alone.
INLET_READ_RULES = frozenset({"spike", "spike_history"})
BALANCE_COLUMNS = [
    "zone_id",
    "interval_end",
    "interval_seconds",
    "input_volume",
    "metered_volume",
    "loss_volume",
    "unit",
    "read_day",
    "estimated_volume",
    "input_completeness",
    "metered_completeness",
    "complete",
]


def hour_grid(first_day, last_day, tz: str) -> pd.DatetimeIndex:
    """UTC hour ends covering the local days ``first_day``..``last_day`` (23/25 on DST days)."""
    start = pd.Timestamp(first_day).tz_localize(tz).tz_convert("UTC")
    end = (pd.Timestamp(last_day) + pd.Timedelta(days=1)).tz_localize(tz).tz_convert("UTC")
    return pd.date_range(start + HOUR, end, freq="h")


def local_day(hour_end: pd.Series | pd.DatetimeIndex, tz: str) -> np.ndarray:
    """Operating day (local date) of each hour, by the hour's start."""
    starts = pd.DatetimeIndex(hour_end) - HOUR
    return np.asarray(starts.tz_convert(tz).date)


def inlet_signs(zones: pd.DataFrame) -> pd.DataFrame:
    """(zone_id, meter_id, sign): +1 for a zone's own inlet meters, -1 for its child zones' inlets."""
    own = (
        zones[["zone_id", "bulk_meter_ids"]]
        .assign(meter_id=lambda z: z["bulk_meter_ids"].fillna("").str.split(";"))
        .explode("meter_id")
    )
    own = own[own["meter_id"].str.strip().fillna("") != ""].assign(
        meter_id=lambda f: f["meter_id"].str.strip()
    )
    own = own[["zone_id", "meter_id"]].assign(sign=1.0)
    children = own.merge(zones[["zone_id", "parent_zone_id"]], on="zone_id")
    children = children[children["parent_zone_id"].notna()]
    out = (
        children[["parent_zone_id", "meter_id"]]
        .rename(columns={"parent_zone_id": "zone_id"})
        .assign(sign=-1.0)
    )
    return pd.concat([own, out], ignore_index=True)


def _per_hour(seconds: pd.Series) -> np.ndarray:
    """Intervals a meter owes per hour (1/24 for a daily meter; 1 when it has no interval length)."""
    s = pd.to_numeric(seconds, errors="coerce").to_numpy(dtype="float64")
    return np.where(np.isfinite(s) & (s > 0), 3600.0 / np.where(s > 0, s, 1.0), 1.0)


def _expected_customers(
    installs: pd.DataFrame, meters: pd.DataFrame, zone_ids: list[str], hours: pd.DatetimeIndex
) -> np.ndarray:
    """(zones x hours) intervals the zone's customer meters owe: a difference array over each
    install's covered hours, one cumulative sum."""
    out = np.zeros((len(zone_ids), len(hours) + 1))
    if installs.empty:
        return out[:, :-1]
    inst = installs.merge(meters[["meter_id", "interval_seconds"]], on="meter_id", how="left")
    zone_index = pd.Index(zone_ids).get_indexer(inst["zone_id"])
    keep = zone_index >= 0
    inst, zone_index = inst[keep], zone_index[keep]
    starts = pd.DatetimeIndex(hours - HOUR).as_unit("ns").asi8
    low, high = pd.Timestamp("1900-01-01", tz="UTC"), pd.Timestamp("2200-01-01", tz="UTC")
    installed = pd.to_datetime(inst["installed_at"], utc=True).fillna(low)
    removed = pd.to_datetime(inst["removed_at"], utc=True).fillna(high)
    installed_ns = pd.DatetimeIndex(installed).as_unit("ns").asi8
    removed_ns = pd.DatetimeIndex(removed).as_unit("ns").asi8
    i0 = np.searchsorted(starts, installed_ns, side="left")
    i1 = np.searchsorted(starts, removed_ns, side="left")
    weight = _per_hour(inst["interval_seconds"])
    np.add.at(out, (zone_index, i0), weight)
    np.add.at(out, (zone_index, i1), -weight)
    return np.cumsum(out, axis=1)[:, :-1]


def assign_customers(reads: pd.DataFrame, installs: pd.DataFrame) -> pd.DataFrame:
    """Customer reads with the zone of the install that covers each interval's start."""
    joined = reads.merge(installs[["meter_id", "zone_id", "installed_at", "removed_at"]], on="meter_id")
    start = joined["interval_end"] - pd.to_timedelta(joined["interval_seconds"], unit="s")
    installed = pd.to_datetime(joined["installed_at"], utc=True)
    removed = pd.to_datetime(joined["removed_at"], utc=True)
    cover = (installed.isna() | (installed <= start)) & (removed.isna() | (removed > start))
    return joined[cover]


def _inlet_reads_kept(reads: pd.DataFrame) -> pd.DataFrame:
    """Inlet intervals whose read VEE set aside only as a spike get their read back (``previous_value``
    of the estimate), measured; everything else as it is."""
    if "previous_value" not in reads or "failed_rules" not in reads:
        return reads
    rules = reads["failed_rules"].fillna("").astype(str).str.split(";")
    spike_only = rules.map(lambda r: bool(r) and r != [""] and set(r) <= INLET_READ_RULES)
    back = (reads["status"] == "estimated") & reads["previous_value"].notna() & spike_only
    if not back.any():
        return reads
    out = reads.copy()
    out.loc[back, "value"] = out.loc[back, "previous_value"]
    out.loc[back, "volume"] = out.loc[back, "previous_value"].astype("float64")
    out.loc[back, ["present", "measured"]] = 1.0
    out.loc[back, "estimated"] = 0.0
    out.loc[back, "status"] = "valid"
    return out


def _flags(reads: pd.DataFrame) -> pd.DataFrame:
    present = reads["value"].notna() & (reads["status"] != "missing")
    return reads.assign(
        hour_end=reads["interval_end"].dt.ceil("h"),
        present=present.astype("float64"),
        measured=(present & reads["status"].isin(MEASURED)).astype("float64"),
        volume=reads["value"].where(present, 0.0).astype("float64"),
        estimated=reads["value"].where(present & (reads["status"] == "estimated"), 0.0).astype("float64"),
        hourly=reads["interval_seconds"] <= 3600,
    )


def zone_balances(
    zones: pd.DataFrame,
    meters: pd.DataFrame,
    installs: pd.DataFrame,
    reads: pd.DataFrame,
    first_day,
    last_day,
    tz: str,
    min_completeness: pd.Series | float = 0.98,
    connections: pd.Series | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hourly and daily balance rows (``BALANCE_COLUMNS``) of every zone for the local days.

    ``zones``: zone_id, parent_zone_id, bulk_meter_ids. ``meters``: meter_id, interval_seconds.
    ``installs``: customer meter_id, zone_id, installed_at, removed_at. ``reads``: current
    intervals (meter_id, interval_end UTC, interval_seconds, value, status, read_day, unit) of the
    inlet and customer meters. ``min_completeness``: one value, or one per zone_id.
    ``connections``: service points per zone; a zone with service points but no customer meter
    owing intervals (monthly register reads only) has no customer side: never complete; nor has a
    leaf zone without customer meters.
    """
    zone_ids = sorted(zones["zone_id"].astype(str))
    hours = hour_grid(first_day, last_day, tz)
    days = local_day(hours, tz)
    reads = _flags(reads.assign(interval_end=pd.to_datetime(reads["interval_end"], utc=True)))
    unit = str(reads["unit"].mode().iloc[0]) if not reads.empty and reads["unit"].notna().any() else "gal"
    signs = inlet_signs(zones)
    idx = pd.MultiIndex.from_product([zone_ids, hours], names=["zone_id", "hour_end"])

    # inlet side: signed volumes; completeness over every inlet meter (a child's missing inlet
    # makes the parent's input incomplete too)
    inlet = _inlet_reads_kept(reads[reads["meter_id"].isin(signs["meter_id"])]).merge(signs, on="meter_id")
    inlet = inlet.assign(volume=inlet["volume"] * inlet["sign"])
    per_hour = signs.merge(meters[["meter_id", "interval_seconds"]], on="meter_id", how="left")
    per_hour = per_hour.assign(w=_per_hour(per_hour["interval_seconds"])).groupby("zone_id")["w"].sum()
    expected_in = np.repeat(per_hour.reindex(zone_ids).fillna(0.0).to_numpy()[:, None], len(hours), axis=1)
    expected_cu = _expected_customers(installs, meters, zone_ids, hours)
    # no customer side: a zone with service points but no interval customer meter (monthly reads),
    # or a leaf zone with neither (fed only by its inlet): its inflow is not a balance, and never
    # complete (completeness 0, not 'nothing expected'); inflow-only detection covers such zones
    parents = set(zones["parent_zone_id"].dropna().astype(str))
    served = np.array([z not in parents for z in zone_ids], dtype=bool)
    if connections is not None:
        served |= connections.reindex(zone_ids).fillna(0).to_numpy() > 0
    unmetered = served[:, None] & (expected_cu <= 0)
    expected_cu = np.where(unmetered, np.inf, expected_cu)
    customers = (
        assign_customers(reads, installs) if not installs.empty else reads.iloc[0:0].assign(zone_id="")
    )

    def hourly_sum(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
        sub = frame[frame["hourly"]]
        return sub.groupby(["zone_id", "hour_end"])[columns].sum().reindex(idx, fill_value=0.0)

    h_in = hourly_sum(inlet, ["volume", "measured", "present"])
    h_cu = hourly_sum(customers, ["volume", "estimated", "present"])
    hourly = _assemble(
        idx, h_in, h_cu, expected_in.ravel(), expected_cu.ravel(), unit, min_completeness, zones_of=zone_ids
    )
    hourly = hourly.assign(interval_end=idx.get_level_values("hour_end"), interval_seconds=3600)
    hourly["read_day"] = np.tile(days, len(zone_ids))

    day_index = pd.MultiIndex.from_product([zone_ids, sorted(set(days))], names=["zone_id", "read_day"])
    exp = (
        pd.DataFrame(
            {
                "zone_id": np.repeat(zone_ids, len(hours)),
                "read_day": np.tile(days, len(zone_ids)),
                "ein": expected_in.ravel(),
                "ecu": expected_cu.ravel(),
            }
        )
        .groupby(["zone_id", "read_day"])[["ein", "ecu"]]
        .sum()
        .reindex(day_index, fill_value=0.0)
    )

    def daily_sum(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
        f = frame.assign(read_day=pd.to_datetime(frame["read_day"]).dt.date)
        return f.groupby(["zone_id", "read_day"])[columns].sum().reindex(day_index, fill_value=0.0)

    daily = _assemble(
        day_index,
        daily_sum(inlet, ["volume", "measured", "present"]),
        daily_sum(customers, ["volume", "estimated", "present"]),
        exp["ein"].to_numpy(),
        exp["ecu"].to_numpy(),
        unit,
        min_completeness,
        zones_of=zone_ids,
    )
    ends = {
        d: (pd.Timestamp(d) + pd.Timedelta(days=1)).tz_localize(tz).tz_convert("UTC")
        for d in day_index.levels[1]
    }
    daily["read_day"] = day_index.get_level_values("read_day")
    daily = daily.assign(interval_end=daily["read_day"].map(ends), interval_seconds=86400)
    return hourly[BALANCE_COLUMNS].reset_index(drop=True), daily[BALANCE_COLUMNS].reset_index(drop=True)


def _assemble(
    index: pd.MultiIndex,
    inlet: pd.DataFrame,
    customers: pd.DataFrame,
    expected_in: np.ndarray,
    expected_cu: np.ndarray,
    unit: str,
    min_completeness: pd.Series | float,
    zones_of: list[str],
) -> pd.DataFrame:
    zone = index.get_level_values("zone_id")
    with np.errstate(divide="ignore", invalid="ignore"):
        in_c = np.where(expected_in > 0, inlet["measured"].to_numpy() / expected_in, 0.0)
        cu_c = np.where(expected_cu > 0, customers["present"].to_numpy() / expected_cu, 1.0)
    in_c, cu_c = np.clip(in_c, 0.0, 1.0), np.clip(cu_c, 0.0, 1.0)
    has_input = inlet["present"].to_numpy() > 0
    input_volume = np.where(has_input, inlet["volume"].to_numpy(), np.nan)
    metered = customers["volume"].to_numpy()
    if isinstance(min_completeness, pd.Series):
        threshold = min_completeness.reindex(zone).fillna(0.98).to_numpy()
    else:
        threshold = np.full(len(zone), float(min_completeness))
    eps = 1e-9
    return pd.DataFrame(
        {
            "zone_id": zone.astype(str),
            "input_volume": input_volume,
            "metered_volume": metered,
            "loss_volume": input_volume - metered,
            "unit": unit,
            "estimated_volume": customers["estimated"].to_numpy(),
            "input_completeness": in_c,
            "metered_completeness": cu_c,
            "complete": (in_c >= threshold - eps) & (cu_c >= threshold - eps) & has_input,
        }
    )
