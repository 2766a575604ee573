"""Estimation of one operating day (``estimate_day``: fill the suspect and missing intervals
of the validated day and re-validate the estimates) and of intervals that have not arrived
(``estimate_forward``: billing's projections). Both run the chain of estimation.py per rule set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.timeutil import local_day_bounds, operating_day
from smartmdm_pipelines.domain.vee import estimation, rules
from smartmdm_pipelines.domain.vee.class_profiles import profiles_from_parts
from smartmdm_pipelines.domain.vee.config import VeeConfig
from smartmdm_pipelines.domain.vee.day import STATUSES, DayInputs, DayResult
from smartmdm_pipelines.domain.vee.history import day_type, prepare_history, slots
from smartmdm_pipelines.domain.vee.keys import Catalog, epoch, group_bounds, lookup
from smartmdm_pipelines.domain.vee.quality import quality_codes
from smartmdm_pipelines.domain.vee.totals import day_totals

CONTEXT_HOURS = 3


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
    _, full["slot"] = slots(full["interval_end"], full["interval_seconds"], inp.tz)
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
        profiles = None
        if "class_profile" in methods:
            parts = inp.class_profile_parts
            profiles = estimation.class_profiles(full) if parts is None else profiles_from_parts(parts, full)
        target_type = day_type(pd.Series([inp.day]), inp.holidays).iloc[0]
        totals = day_totals(work, inp).dropna(subset=["reg_start", "reg_end"])
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


def _context_rows(
    history: pd.DataFrame, frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
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
    """Project intervals that have not arrived (docs/vee_rules.md E11) with the chain's like-day, class-profile
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
    _, frame["slot"] = slots(frame["interval_end"], frame["interval_seconds"], tz)
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
