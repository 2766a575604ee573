"""Like-day profiles anchored to the estimated day (docs/vee_rules.md E2, tuned on real household meters).

For every series to estimate, one profile per local time of day (slot) is built from its clean
reference days, then anchored to what the estimated day itself shows:

1. **Reference days**: clean days (every interval valid, no outage) of the reference weeks before
   the day, and the day after when VEE already holds it. Each gets a weight: 1 for the matching
   kind of day (day type or weekday, ``like_day_mode``) else ``like_day_other_type_weight``,
   times how relevant the day looks: where the estimated day has valid intervals near its gaps
   (``anchor_window_minutes``), exp(−s × d) with d the reference day's mean absolute difference
   from them relative to their mean (``like_day_similarity`` = s); elsewhere (whole-day gaps)
   recency, halving every ``like_day_half_life_days``, for series whose own reference weeks say
   it helps (``like_day_recency_check``: recency-weighted earlier days predicted each day's
   intervals better than equally weighted ones). The ``like_days`` heaviest days are kept; the
   profile is their weighted mean per slot, blended with their weighted median
   (``like_day_median_weight``; household load is skewed, and NMAE is an L1 metric).
2. **Level**: the profile is scaled by 1 + w × (observed / profile − 1) over those same intervals
   (``anchor_level_weight`` = w, bounded by ``anchor_level_max_factor``).
3. **Edges**: the difference between each valid end point of a gap and the profile there carries
   into the gap with the weights of an AR(1) bridge (the conditional mean of a residual that
   halves every ``anchor_edge_half_life_minutes``, or faster where the series' own deviations
   from its reference days carry less from one interval to the next): full at the edges, fading
   towards the middle.

Everything is computed per series with integer keys (series id × slot), no loop over intervals.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.vee.config import RuleSet
from smartmdm_pipelines.domain.vee.keys import lookup

SLOTS = 1440  # minutes in a day: (series, slot) keys are sid * SLOTS + slot


@dataclass
class Anchored:
    """Per row of the frame (NaN where the series has no like days): ``value`` the anchored
    profile (level and edges), ``base`` the profile with its level only; ``inputs`` describes the
    reference days and the level used."""

    value: np.ndarray
    base: np.ndarray
    inputs: np.ndarray  # object: None where no profile


def endpoints(frame: pd.DataFrame, rules: RuleSet) -> np.ndarray:
    """Rows that may anchor an estimate: valid, with a value, not under an outage (CA rule)."""
    value = frame["value"].to_numpy(dtype="float64")
    ok = frame["status"].eq("valid").to_numpy() & ~np.isnan(value)
    if not rules.outage_is_endpoint:
        ok &= ~frame["outage"].to_numpy(dtype=bool)
    return ok


def candidate_days(
    history: pd.DataFrame, day: dt.date, day_type: str, weekday: int, rules: RuleSet
) -> pd.DataFrame:
    """Clean days that may serve as reference days: sid, local_date, offset (days from ``day``),
    match (same kind of day), log_weight (kind) and log_recency (0 for series whose own history
    says recency does not help, see ``recency_helps``)."""
    cols = ["sid", "local_date", "offset", "match", "log_weight", "log_recency"]
    if history is None or history.empty:
        return pd.DataFrame(columns=cols)
    if "offset" not in history:
        history = history.assign(offset=day_offsets(history, day))
    days = _per_day(history)
    offset = days["offset"].to_numpy()
    before = (offset < 0) & (offset >= -7 * rules.reference_weeks)
    keep = before | ((offset == 1) & rules.like_day_next_day)
    if rules.like_day_mode == "same_weekday":
        match = days["weekday"].to_numpy() == weekday
    else:
        match = days["day_type"].to_numpy() == day_type
    weight = np.where(match, 1.0, rules.like_day_other_type_weight)
    keep &= weight > 0
    with np.errstate(divide="ignore"):
        log_weight = np.log(np.where(keep, weight, 1.0))
    log_recency = np.zeros(len(days))
    if rules.like_day_half_life_days > 0:
        use = np.ones(len(days), dtype=bool)
        if rules.like_day_recency_check:
            usable = history[history["usable"].to_numpy(dtype=bool)]
            helps = recency_helps(usable, days[before], rules.like_day_half_life_days)
            use = lookup(days["sid"].to_numpy(), helps.index.to_numpy(), helps.to_numpy(), fill=False)
        log_recency = np.where(use, -np.log(2.0) * (np.abs(offset) - 1) / rules.like_day_half_life_days, 0.0)
    out = days.assign(match=match, log_weight=log_weight, log_recency=log_recency)[keep]
    return out[cols].reset_index(drop=True)


def _per_day(history: pd.DataFrame) -> pd.DataFrame:
    """The clean days without an outage: sid, offset, local_date, day_type, weekday (one row per
    series-day, from sorted integer keys). ``history`` is not empty."""
    offset = history["offset"].to_numpy(dtype="int64")
    key = history["sid"].to_numpy(dtype="int64") * (1 << 20) + (offset - offset.min())
    order = np.argsort(key, kind="stable")
    starts = np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1]])
    clean = np.minimum.reduceat(history["clean"].to_numpy(dtype=bool)[order], starts)
    outage = np.maximum.reduceat(history["outage"].to_numpy(dtype=bool)[order], starts)
    first = order[starts[clean & ~outage]]
    columns = ("sid", "offset", "local_date", "day_type", "weekday")
    return pd.DataFrame({col: history[col].to_numpy()[first] for col in columns})


def day_offsets(history: pd.DataFrame, day: dt.date) -> np.ndarray:
    """Days from ``day`` to each row's local date (-1: the day before)."""
    dates = pd.to_datetime(history["local_date"]).to_numpy().astype("datetime64[D]")
    return (dates - np.datetime64(day, "D")).astype("int64")


MIN_PRIOR_DAYS = 2
CHECK_CHUNK = 2000  # series per block of the self-check (bounds its memory: series x days x slots)


def recency_helps(values: pd.DataFrame, days: pd.DataFrame, half_life: float) -> pd.Series:
    """Per series, a self-backtest on its own reference weeks: predict every interval of each clean
    day from the earlier clean days of the same day type (≥ ``MIN_PRIOR_DAYS``), once with the
    recency weights and once with equal weights; True where recency gave the smaller total
    absolute error. It does where the meter's level drifts (occupancy, weather spells); where its
    days vary independently it only discards information.

    ``values``: sid, offset, slot, value (the usable intervals); ``days``: sid, offset, day_type
    (the clean days to use)."""
    if days.empty:
        return pd.Series(dtype=bool)
    kinds = days.groupby("offset")["day_type"].first()
    first = int(kinds.index.min())
    width = int(kinds.index.max()) - first + 1
    kind = np.full(width, None, dtype=object)
    kind[kinds.index.to_numpy() - first] = kinds.to_numpy()
    sids = np.unique(days["sid"].to_numpy())
    day_key = days["sid"].to_numpy() * (width + 1) + (days["offset"].to_numpy() - first)
    v = values[
        np.isin(values["sid"].to_numpy() * (width + 1) + (values["offset"].to_numpy() - first), day_key)
    ]
    slots, slot = np.unique(v["slot"].to_numpy(), return_inverse=True)
    out = np.zeros(len(sids), dtype=bool)
    for lo in range(0, len(sids), CHECK_CHUNK):
        block = sids[lo : lo + CHECK_CHUNK]
        mine = np.isin(v["sid"].to_numpy(), block)
        cube = np.full((len(block), width, len(slots)), np.nan)
        cube[
            np.searchsorted(block, v["sid"].to_numpy()[mine]),
            v["offset"].to_numpy()[mine] - first,
            slot[mine],
        ] = v["value"].to_numpy(dtype="float64")[mine]
        error = np.zeros((2, len(block)))  # equal weights, recency
        for j in range(width):  # one step per day of the window, every series at once
            if kind[j] is None:
                continue
            prior = np.flatnonzero(kind[:j] == kind[j])
            if len(prior) < MIN_PRIOR_DAYS:
                continue
            past = cube[:, prior, :]
            seen = ~np.isnan(past)
            decay = (0.5 ** ((j - prior - 1) / half_life))[None, :, None]
            days_seen = seen.any(axis=2).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                plain = np.nansum(past, axis=1) / seen.sum(axis=1)
                recent = np.nansum(past * decay, axis=1) / (seen * decay).sum(axis=1)
            today = cube[:, j, :]
            ok = ~np.isnan(today) & ~np.isnan(plain) & (days_seen >= MIN_PRIOR_DAYS)[:, None]
            error[0] += np.where(ok, np.abs(today - plain), 0.0).sum(axis=1)
            error[1] += np.where(ok, np.abs(today - recent), 0.0).sum(axis=1)
        out[lo : lo + CHECK_CHUNK] = error[1] < error[0]
    return pd.Series(out, index=sids)


def _anchor_rows(frame: pd.DataFrame, todo: np.ndarray, valid: np.ndarray, rules: RuleSet) -> np.ndarray:
    """Valid intervals of the estimated day (not context rows) within the anchor window of a gap."""
    t = frame["t"].to_numpy().astype("float64")
    todo_t = pd.Series(np.where(todo, t, np.nan))
    sid = frame["sid"].to_numpy()
    prev = todo_t.groupby(sid, sort=False).ffill().to_numpy()
    nxt = todo_t.groupby(sid, sort=False).bfill().to_numpy()
    with np.errstate(invalid="ignore"):
        dist = np.fmin(t - prev, nxt - t)
    near = dist <= rules.anchor_window_minutes * 60.0
    return valid & near & ~frame["context"].to_numpy(dtype=bool)


def _similarity(
    anchors: pd.DataFrame, ref: pd.DataFrame, candidates: pd.DataFrame, strength: float
) -> np.ndarray:
    """Log-weight penalty per candidate day: −strength × mean |reference − observed| / mean |observed|
    over the anchoring intervals (a candidate missing those slots gets its series' worst penalty)."""
    penalty = np.zeros(len(candidates))
    if strength <= 0 or anchors.empty or ref.empty:
        return penalty
    pairs = anchors.merge(ref[["key", "day_key", "value"]], on="key", suffixes=("_obs", "_ref"))
    if pairs.empty:
        return penalty
    diff = pd.Series(np.abs(pairs["value_ref"].to_numpy() - pairs["value_obs"].to_numpy()))
    mean_diff = diff.groupby(pairs["day_key"].to_numpy()).mean()
    scale = anchors.groupby("sid")["value"].apply(lambda v: np.abs(v).mean())
    sid = candidates["sid"].to_numpy()
    day_key = candidates["day_key"].to_numpy()
    d = lookup(day_key, mean_diff.index.to_numpy(), mean_diff.to_numpy())
    s = lookup(sid, scale.index.to_numpy(), scale.to_numpy())
    with np.errstate(invalid="ignore", divide="ignore"):
        penalty = -strength * d / np.where(s > 0, s, np.nan)
    has = ~np.isnan(s) & (s > 0)
    worst = pd.Series(penalty).groupby(sid).transform("min").to_numpy()
    penalty = np.where(np.isnan(penalty), worst, penalty)
    return np.where(has & ~np.isnan(penalty), penalty, 0.0)


def anchored_profile(
    frame: pd.DataFrame,
    todo: np.ndarray,
    history: pd.DataFrame | None,
    rules: RuleSet,
    day: dt.date,
    day_type: str,
    weekday: int,
) -> Anchored | None:
    """The anchored like-day profile for every row of ``frame`` whose series has at least
    ``like_days`` clean days of the matching kind (None when no series has)."""
    if history is None or history.empty or not todo.any():
        return None
    columns = [
        *("sid", "local_date", "slot", "interval_seconds", "value"),
        *("clean", "outage", "usable", "day_type", "weekday"),
    ]
    history = history.loc[
        np.isin(history["sid"].to_numpy(), np.unique(frame["sid"].to_numpy()[todo])), columns
    ]
    history = history.assign(offset=day_offsets(history, day))
    candidates = candidate_days(history, day, day_type, weekday, rules)
    if candidates.empty:
        return None
    enough = candidates.groupby("sid")["match"].transform("sum").to_numpy() >= rules.like_days
    candidates = candidates[enough]
    if candidates.empty:
        return None
    # integer keys: a day per series (sid, offset) and a slot per series (sid, slot)
    span = 7 * rules.reference_weeks + 2
    candidates = candidates.assign(
        day_key=candidates["sid"].to_numpy() * span + candidates["offset"] + span // 2
    )
    hist = history[history["usable"].to_numpy(dtype=bool)]
    h_offset = hist["offset"].to_numpy()
    ref = pd.DataFrame(
        {
            "sid": hist["sid"].to_numpy(),
            "key": hist["sid"].to_numpy() * SLOTS + hist["slot"].to_numpy(),
            "day_key": hist["sid"].to_numpy() * span + h_offset + span // 2,
            "value": hist["value"].to_numpy(dtype="float64"),
            "step": hist["interval_seconds"].to_numpy(dtype="int64") // 60,
        }
    )
    ref = ref[np.isin(ref["day_key"].to_numpy(), candidates["day_key"].to_numpy())]

    value = frame["value"].to_numpy(dtype="float64")
    valid = endpoints(frame, rules)
    anchor_mask = _anchor_rows(frame, todo, valid, rules)
    sid = frame["sid"].to_numpy()
    key = sid * SLOTS + frame["slot"].to_numpy()
    anchors = pd.DataFrame({"sid": sid[anchor_mask], "key": key[anchor_mask], "value": value[anchor_mask]})

    # weights: kind × (similarity where the day has intervals to compare, else recency); the
    # like_days heaviest days per series
    similarity = _similarity(anchors, ref, candidates, rules.like_day_similarity)
    compared = np.isin(candidates["sid"].to_numpy(), anchors["sid"].to_numpy()) & (
        rules.like_day_similarity > 0
    )
    log_weight = candidates["log_weight"].to_numpy() + np.where(
        compared, similarity, candidates["log_recency"].to_numpy()
    )
    chosen = candidates.assign(log_weight=log_weight, age=np.abs(candidates["offset"].to_numpy()))
    chosen = chosen.sort_values(["sid", "log_weight", "age", "offset"], ascending=[True, False, True, False])
    chosen = chosen[chosen.groupby("sid", sort=False).cumcount() < rules.like_days]
    top = chosen.groupby("sid", sort=False)["log_weight"].transform("max").to_numpy()
    chosen = chosen.assign(weight=np.exp(chosen["log_weight"].to_numpy() - top))
    chosen = chosen.assign(
        share=chosen["weight"] / chosen.groupby("sid", sort=False)["weight"].transform("sum")
    )

    # the weighted profile per (series, slot)
    used = ref.merge(chosen[["day_key", "weight"]], on="day_key")
    wv = (
        pd.DataFrame(
            {"wv": used["weight"].to_numpy() * used["value"].to_numpy(), "w": used["weight"].to_numpy()}
        )
        .groupby(used["key"].to_numpy())
        .sum()
    )
    per_slot = (wv["wv"] / wv["w"]).to_numpy()
    if rules.like_day_median_weight > 0:
        median = weighted_median(used["key"].to_numpy(), used["value"].to_numpy(), used["weight"].to_numpy())
        w = min(rules.like_day_median_weight, 1.0)
        per_slot = (1.0 - w) * per_slot + w * median.reindex(wv.index).to_numpy()
    profile = lookup(key, wv.index.to_numpy(), per_slot)

    # level: observed against the profile over the anchoring intervals
    level = (
        pd.DataFrame(
            {
                "obs": np.where(anchor_mask & ~np.isnan(profile), value, 0.0),
                "prof": np.where(anchor_mask & ~np.isnan(profile), profile, 0.0),
            }
        )
        .groupby(sid, sort=False)
        .sum()
    )
    ratio = np.ones(len(level))
    ok = (level["prof"].to_numpy() > 0) & (level["obs"].to_numpy() >= 0)
    ratio[ok] = level["obs"].to_numpy()[ok] / level["prof"].to_numpy()[ok]
    factor = 1.0 + rules.anchor_level_weight * (ratio - 1.0)
    bound = max(rules.anchor_level_max_factor, 1.0)
    factor = np.clip(factor, 1.0 / bound, bound)
    row_factor = lookup(sid, level.index.to_numpy(), factor, fill=1.0)
    base = profile * row_factor

    carry = residual_correlation(ref)
    row_carry = lookup(sid, carry.index.to_numpy(), carry.to_numpy(), fill=0.0)
    estimate = base + _edge_adjustment(frame, todo, valid, value - base, rules, row_carry)
    estimate = np.where(estimate < np.fmin(base, 0.0), np.fmin(base, 0.0), estimate)

    text = _inputs_text(chosen, level.index.to_numpy(), factor, rules.like_day_median_weight)
    inputs = lookup(sid, text.index.to_numpy(), text.to_numpy(dtype=object), fill=None)
    inputs = np.where(np.isnan(base), None, inputs)
    return Anchored(np.where(todo, estimate, np.nan), np.where(todo, base, np.nan), inputs)


def weighted_median(key: np.ndarray, value: np.ndarray, weight: np.ndarray) -> pd.Series:
    """Per key, the weighted median of ``value``: the smallest value whose cumulative weight (values
    in ascending order) reaches half the key's total weight. One sort, no loop over keys."""
    value = np.asarray(value, dtype="float64")
    weight = np.asarray(weight, dtype="float64")
    order = np.lexsort((value, key))
    k, v, w = key[order], value[order], weight[order]
    new_group = np.r_[True, k[1:] != k[:-1]]
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    total = np.add.reduceat(w, starts)
    cum = np.cumsum(w)
    within = cum - (cum[starts] - w[starts])[group]  # cumulative weight inside the key
    reached = np.flatnonzero(within >= 0.5 * total[group] * (1 - 1e-9))  # monotone within a key
    first = reached[np.r_[True, group[reached][1:] != group[reached][:-1]]]
    return pd.Series(v[first], index=k[first])


MIN_RESIDUAL_PAIRS = 24


def residual_correlation(ref: pd.DataFrame) -> pd.Series:
    """Per series, how much an interval's deviation from the reference days' mean at its time of
    day carries into the next interval: the lag-1 correlation of those deviations over the
    reference days (consecutive intervals of one day; ≥ ``MIN_RESIDUAL_PAIRS`` pairs, else 0).
    Household load keeps a deviation for an hour or two (occupancy); independent noise does not.
    ``ref``: sid, key (sid × SLOTS + slot), day_key, value, step (minutes)."""
    if ref.empty:
        return pd.Series(dtype="float64")
    order = np.lexsort((ref["key"].to_numpy(), ref["day_key"].to_numpy()))
    key, day_key = ref["key"].to_numpy()[order], ref["day_key"].to_numpy()[order]
    step, value = ref["step"].to_numpy()[order], ref["value"].to_numpy(dtype="float64")[order]
    _, slot = np.unique(key, return_inverse=True)
    mean = np.bincount(slot, weights=value) / np.bincount(slot)
    dev = value - mean[slot]
    pair = (day_key[1:] == day_key[:-1]) & (key[1:] - key[:-1] == step[:-1])
    a, b, s = dev[:-1][pair], dev[1:][pair], ref["sid"].to_numpy()[order][1:][pair]
    sums = pd.DataFrame({"a": a, "b": b, "ab": a * b, "aa": a * a, "bb": b * b, "n": 1.0}).groupby(s).sum()
    n = sums["n"]
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sums["ab"] - sums["a"] * sums["b"] / n
        corr = cov / np.sqrt((sums["aa"] - sums["a"] ** 2 / n) * (sums["bb"] - sums["b"] ** 2 / n))
    return corr.where((n >= MIN_RESIDUAL_PAIRS) & np.isfinite(corr), 0.0).clip(lower=0.0)


def _edge_adjustment(
    frame: pd.DataFrame,
    todo: np.ndarray,
    valid: np.ndarray,
    residual: np.ndarray,
    rules: RuleSet,
    carry: np.ndarray,
) -> np.ndarray:
    """Per gap interval: the AR(1) bridge of the residuals (value − profile) at the nearest valid
    end point on each side (context rows of the neighbouring days included). ρ per step is the
    smaller of 0.5^(step / half life) and the series' own ``carry`` (``residual_correlation``)."""
    out = np.zeros(len(frame))
    half_life = rules.anchor_edge_half_life_minutes
    if half_life <= 0 or not todo.any():
        return out
    sid = frame["sid"].to_numpy()
    t = frame["t"].to_numpy().astype("float64")
    point = valid & ~np.isnan(residual)
    ends = pd.DataFrame({"pt": np.where(point, t, np.nan), "pr": np.where(point, residual, np.nan)})
    prev = ends.groupby(sid, sort=False).ffill()
    nxt = ends.groupby(sid, sort=False).bfill()
    step = frame["interval_seconds"].to_numpy(dtype="float64")
    rho = np.minimum(0.5 ** (step / 60.0 / half_life), carry)
    a = (t - prev["pt"].to_numpy()) / step  # steps from the previous end point
    b = (nxt["pt"].to_numpy() - t) / step  # steps to the next end point
    ra, rb = prev["pr"].to_numpy(), nxt["pr"].to_numpy()
    has_a, has_b = ~np.isnan(a), ~np.isnan(b)
    with np.errstate(invalid="ignore", over="ignore"):
        n = a + b
        den = 1.0 - rho ** (2 * n)
        wa_two = (rho**a - rho ** (2 * n - a)) / den
        wb_two = (rho**b - rho ** (n + a)) / den
        both = has_a & has_b
        adj = np.where(both, wa_two * ra + wb_two * rb, 0.0)
        adj = np.where(has_a & ~has_b, rho**a * ra, adj)
        adj = np.where(has_b & ~has_a, rho**b * rb, adj)
    out[todo] = np.nan_to_num(adj[todo])
    return out


def _inputs_text(
    chosen: pd.DataFrame, sids: np.ndarray, factor: np.ndarray, median_weight: float = 0.0
) -> pd.Series:
    """Per series: its reference days with their weight share, the median's share of the profile
    (when used) and the level factor."""
    base = pd.Timestamp("1970-01-01")
    ordered = chosen.sort_values(["sid", "offset"])
    parts = [
        f"{d:%Y-%m-%d} {s:.0%}"
        for d, s in zip(
            pd.to_datetime(ordered["local_date"]).fillna(base), ordered["share"].to_numpy(), strict=True
        )
    ]
    days = pd.Series(parts, dtype=object).groupby(ordered["sid"].to_numpy(), sort=False).agg(", ".join)
    level = lookup(days.index.to_numpy(), sids, factor, fill=1.0)
    median = f"; median {min(median_weight, 1.0):.0%}" if median_weight > 0 else ""
    return pd.Series(
        [f"reference days {d}{median}; level x{f:.3g}" for d, f in zip(days.to_numpy(), level, strict=True)],
        index=days.index,
        dtype=object,
    )
