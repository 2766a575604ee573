"""Per series of one operating day: the interval sum, how much of it is valid, and the
register reads that bracket it (with the installation's multiplier and start/end registers).
The sum-check rules judge these totals and register scaling estimates to them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.vee.day import DayInputs, typed_installs
from smartmdm_pipelines.domain.vee.keys import N_CHANNELS, epoch, group_bounds, lookup

# a register read this close to a day boundary brackets it
REGISTER_TOLERANCE = pd.Timedelta(minutes=15)


def day_totals(frame: pd.DataFrame, inp: DayInputs) -> pd.DataFrame:
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
    inst = typed_installs(inp.installs)
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
