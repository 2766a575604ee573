"""Estimation backtest, pure logic on frames: which known-good intervals to hide, the California
baseline, and the accuracy metrics. No database (the store side is ``services.vee_backtest``).

A backtest hides (masks) stretches of intervals that are known to be good, asks an estimator to
fill them, and compares the estimates with the hidden truth:

* **Eligible (series, day)**: every current interval of the operating day is ``valid`` (not
  estimated, edited, suspect or missing, no power-outage flag), the day is complete, and the
  series has at least ``like_days`` such clean days of the same day type (weekday vs
  weekend/holiday) in the ``reference_weeks`` before it — the like days the chain needs.
* **Gaps**: on each of up to ``max_series`` series, up to ``gaps_per_series`` gaps per gap length
  (1 h, 4 h, 24 h) on randomly chosen eligible days; a (series, day) pair holds at most one gap,
  so the gaps of a series never overlap and every gap of a day can be masked in one pass without
  touching another. 1 h and 4 h gaps sit at a random position inside the operating day; a 24 h
  gap is the whole operating day (23 or 25 hours on DST days). A gap needs intervals no longer
  than itself (a daily gas meter only gets 24 h gaps). Everything is drawn from one ``numpy``
  generator seeded with ``seed`` over the candidates in sorted order, so the same store and seed
  give the same gaps.
* **Baseline ("california")**: the CA DASMMD rule (docs/vee_rules.md §1.3) applied literally — a gap of
  ≤ 2 h is interpolated point to point between the nearest valid, non-outage intervals; a longer
  gap gets, interval by interval (local time of day), the plain average of the ``baseline_days``
  most recent days of the same day type, whatever their status (no exclusions).
* **Metrics** per gap length over all masked intervals: NMAE = Σ|est − true| / Σ|true|,
  bias = (Σ est − Σ true) / Σ|true|. An interval an estimator left empty counts as an estimate
  of 0 (its full value is the error) and is reported in ``unestimated``. The chain's NMAE over
  the baseline's comes with a 95 % interval from a bootstrap over series (gaps of one meter are
  not independent of each other; over gaps when fewer than 10 series hold them), so a
  difference can be told from noise.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.timeutil import local_day_bounds
from smartmdm_pipelines.domain.vee.history import day_type
from smartmdm_pipelines.domain.vee.keys import Catalog, epoch

SERIES = ["meter_id", "channel"]
KEY = [*SERIES, "interval_end"]
GAP_LENGTHS: dict[str, int] = {"1h": 3600, "4h": 4 * 3600, "24h": 86400}
WHOLE_DAY = 86400
BASELINE_DAYS = 5
"""Reference days of the baseline: CA gives no number ("selected reference days"); 5 is the middle
of the 3–10 commonly used (our choice)."""
CA_LINEAR_MAX_SECONDS = 2 * 3600
GAPS_PER_SERIES = 50
"""Gaps per gap length per series by default: one real meter-year then yields about 50 of each
(n = 1 per series says nothing); a short store yields what its eligible days allow."""
GAP_COLUMNS = [
    "gap_id",
    "gap",
    "gap_seconds",
    *SERIES,
    "read_day",
    "interval_seconds",
    "gap_start",
    "gap_end",
    "intervals",
]


@dataclass(frozen=True)
class BacktestOptions:
    seed: int = 0
    max_series: int | None = 200
    """Series that get gaps (None: every eligible series)."""
    gaps_per_series: int = GAPS_PER_SERIES
    gap_lengths: tuple[str, ...] = ("1h", "4h", "24h")
    baseline_days: int = BASELINE_DAYS
    min_like_days: int | None = None
    """Clean like days a gap's series needs before it (None: the rule set's ``like_days``). Fix it
    to compare rule sets with different ``like_days`` on the same gaps."""
    days_from: dt.date | None = None
    days_to: dt.date | None = None


# --- eligibility and selection ------------------------------------------------------------------


def day_bounds(days: pd.Series, tz: str) -> pd.DataFrame:
    """UTC start and end of each distinct operating day (naive midnight timestamps in ``days``)."""
    unique = pd.Series(pd.to_datetime(pd.Series(days).unique())).sort_values().astype("datetime64[us]")
    bounds = [local_day_bounds(d.date(), tz) for d in unique]  # one per day, not per interval
    return pd.DataFrame(
        {
            "read_day": unique.to_numpy(),
            "day_start": pd.to_datetime([b[0] for b in bounds], utc=True),
            "day_end": pd.to_datetime([b[1] for b in bounds], utc=True),
        }
    )


def eligible_days(
    daily: pd.DataFrame,
    tz: str,
    holidays: frozenset,
    like_days: int,
    reference_weeks: int,
    days_from: dt.date | None = None,
    days_to: dt.date | None = None,
) -> pd.DataFrame:
    """(series, day) pairs where a gap may be hidden: a clean day with enough clean like days before it.

    ``daily``: one row per meter_id, channel, read_day with interval_seconds (the smallest of the
    day), lengths (distinct interval lengths), intervals (current intervals) and clean_intervals
    (current ``valid`` intervals with a value and no outage flag). Returns the clean days with
    ``like_days_before`` (clean days of the same day type in the ``reference_weeks`` before).
    """
    cols = [*SERIES, "read_day", "interval_seconds", "day_type", "like_days_before"]
    if daily is None or daily.empty:
        return pd.DataFrame(columns=cols)
    d = daily.copy()
    d["read_day"] = pd.to_datetime(d["read_day"]).dt.normalize().astype("datetime64[us]")
    d["interval_seconds"] = d["interval_seconds"].astype("int64")
    d = d.merge(day_bounds(d["read_day"], tz), on="read_day", how="left")
    span = (d["day_end"] - d["day_start"]).dt.total_seconds().astype("int64")
    expected = np.where(d["interval_seconds"] >= WHOLE_DAY, 1, span // d["interval_seconds"])
    d["clean"] = (d["intervals"] == expected) & (d["clean_intervals"] == d["intervals"]) & (d["lengths"] == 1)
    d["day_type"] = day_type(pd.Series(d["read_day"].dt.date.to_numpy(), index=d.index), holidays).to_numpy()
    # clean days of the same type before each day: cumulative counts, looked up with merge_asof
    d["bucket"] = d["meter_id"].astype(str) + "\x1f" + d["channel"].astype(str) + "\x1f" + d["day_type"]
    clean = d[d["clean"]].sort_values(["bucket", "read_day"])[["bucket", "read_day"]]
    clean = clean.assign(cum=clean.groupby("bucket").cumcount() + 1)

    def before(at: pd.Series) -> np.ndarray:
        left = pd.DataFrame({"bucket": d["bucket"], "t": at.astype("datetime64[us]")})
        left = left.reset_index().sort_values("t")
        right = clean.rename(columns={"read_day": "t"}).sort_values("t")
        hit = pd.merge_asof(left, right, on="t", by="bucket", allow_exact_matches=False)
        return hit.set_index("index")["cum"].reindex(d.index).fillna(0).to_numpy()

    window_start = d["read_day"] - pd.Timedelta(weeks=reference_weeks)
    d["like_days_before"] = (before(d["read_day"]) - before(window_start)).astype("int64")
    keep = d["clean"] & (d["like_days_before"] >= like_days)
    if days_from is not None:
        keep &= d["read_day"] >= pd.Timestamp(days_from)
    if days_to is not None:
        keep &= d["read_day"] <= pd.Timestamp(days_to)
    return d.loc[keep, cols].sort_values([*SERIES, "read_day"]).reset_index(drop=True)


def choose_gaps(
    candidates: pd.DataFrame,
    tz: str,
    seed: int,
    max_series: int | None,
    lengths: tuple[str, ...] = ("1h", "4h", "24h"),
    gaps_per_series: int = GAPS_PER_SERIES,
) -> pd.DataFrame:
    """Up to ``gaps_per_series`` gaps per length on each of up to ``max_series`` series (None: all),
    deterministic for a seed and independent of the candidates' order.

    A series' eligible days are shuffled and dealt to the lengths its interval length fits in
    turn (1 h, 4 h, 24 h, 1 h, …), so a (series, day) holds at most one gap: the gaps of a series
    never overlap, and each is estimated with the rest of its day and its reference days intact.

    Returns one row per gap: gap_id, gap (length name), gap_seconds, meter_id, channel, read_day,
    interval_seconds, and the hidden span as UTC instants: intervals with gap_start < interval_end
    <= gap_end (``intervals`` of them).
    """
    if candidates.empty or not lengths:
        return pd.DataFrame(columns=GAP_COLUMNS)
    cand = candidates.sort_values([*SERIES, "read_day"]).reset_index(drop=True)
    rng = np.random.default_rng(seed)
    series = cand[SERIES].drop_duplicates().reset_index(drop=True)
    rank = np.empty(len(series), dtype="int64")
    rank[rng.permutation(len(series))] = np.arange(len(series))
    series["rank"] = rank
    cand = cand.merge(series, on=SERIES)
    if max_series is not None:
        cand = cand[cand["rank"] < max_series]
    # the lengths each interval length fits, in the order given
    seconds = np.array([GAP_LENGTHS[name] for name in lengths], dtype="int64")
    step = cand["interval_seconds"].to_numpy(dtype="int64")
    fits = (step[:, None] <= seconds[None, :]) & (seconds[None, :] % step[:, None] == 0)
    n_fit = fits.sum(axis=1)
    cand = cand.assign(draw=rng.random(len(cand)), n_fit=n_fit)[n_fit > 0]
    fits = fits[n_fit > 0]
    order = np.lexsort((cand["draw"].to_numpy(), cand["rank"].to_numpy()))
    cand, fits = cand.iloc[order].reset_index(drop=True), fits[order]
    turn = cand.groupby("rank", sort=False).cumcount().to_numpy()
    n_fit = cand["n_fit"].to_numpy()
    which = turn % n_fit  # the which-th fitting length
    column = np.argmax(np.cumsum(fits, axis=1) > which[:, None], axis=1)
    keep = turn // n_fit < gaps_per_series
    gaps = cand[keep].assign(
        gap=np.asarray(lengths, dtype=object)[column[keep]], gap_seconds=seconds[column[keep]]
    )
    if gaps.empty:
        return pd.DataFrame(columns=GAP_COLUMNS)
    order = {name: i for i, name in enumerate(lengths)}
    gaps = gaps.assign(length_order=gaps["gap"].map(order)).sort_values(
        ["length_order", "rank", "read_day"], kind="stable"
    )
    gaps = gaps.merge(day_bounds(gaps["read_day"], tz), on="read_day", how="left")
    step = gaps["interval_seconds"].to_numpy(dtype="int64")
    span = (gaps["day_end"] - gaps["day_start"]).dt.total_seconds().to_numpy().astype("int64")
    n_day = np.where(step >= WHOLE_DAY, 1, span // step)
    whole = gaps["gap_seconds"].to_numpy() >= WHOLE_DAY
    k = np.where(whole, n_day, gaps["gap_seconds"].to_numpy() // step)
    position = np.floor(rng.random(len(gaps)) * (n_day - k + 1)).astype("int64")
    position = np.where(whole, 0, position)
    gaps["gap_start"] = gaps["day_start"] + pd.to_timedelta(position * step, unit="s")
    gaps["gap_end"] = np.where(
        whole, gaps["day_end"], gaps["gap_start"] + pd.to_timedelta(k * step, unit="s")
    )
    gaps["gap_end"] = pd.to_datetime(gaps["gap_end"], utc=True)
    gaps["intervals"] = k
    gaps["gap_id"] = np.arange(len(gaps), dtype="int64")
    return gaps[GAP_COLUMNS]


# --- the validated frame and masking -------------------------------------------------------------

_CHANNEL_COMMODITY = {"water": "water", "gas": "gas"}


def validated_frame(
    current: pd.DataFrame,
    meters: pd.DataFrame | None = None,
    installs: pd.DataFrame | None = None,
    service_points: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """A day's current intervals as ``estimate.estimate_day`` takes them from ``validate_day``.

    ``current``: meter_id, channel, interval_end, interval_seconds, value, unit, status,
    failed_rules. Kept: the ``valid`` intervals with a value (a gap day is all valid). Attributes
    come from the master data when present; a meter without it is an AMI meter of its channel's
    commodity (electric unless water or gas) in the customer class ``unknown``, a class of its own.
    """
    f = current[current["status"].eq("valid") & current["value"].notna()].copy()
    f["interval_end"] = pd.to_datetime(f["interval_end"], utc=True)
    f["interval_seconds"] = f["interval_seconds"].astype("int64")
    f["value"] = f["value"].astype("float64")
    f["outage"] = f["failed_rules"].fillna("").astype(str).str.contains("power_outage").to_numpy()
    f["received"] = True
    meter_cols = ["meter_id", "kind", "commodity", "multiplier", "dials"]
    if meters is not None and len(meters):
        f = f.merge(meters[meter_cols].drop_duplicates("meter_id"), on="meter_id", how="left")
    else:
        f = f.assign(kind=None, commodity=None, multiplier=np.nan, dials=np.nan)
    implied = f["channel"].map(_CHANNEL_COMMODITY).fillna("electric")
    f["commodity"] = f["commodity"].where(f["commodity"].notna(), implied)
    f["kind"] = f["kind"].where(f["kind"].notna(), "ami")
    f["customer_class"] = None
    if installs is not None and len(installs) and service_points is not None and len(service_points):
        latest = installs.sort_values("installed_at").drop_duplicates("meter_id", keep="last")
        cls = latest[["meter_id", "service_point_id"]].merge(
            service_points[["service_point_id", "customer_class"]], on="service_point_id", how="left"
        )
        f["customer_class"] = f["meter_id"].map(cls.set_index("meter_id")["customer_class"])
    f["customer_class"] = f["customer_class"].where(f["customer_class"].notna(), "unknown")
    if "unit" not in f:
        f["unit"] = None
    return f.sort_values(KEY, kind="stable").reset_index(drop=True)


# --- masking ------------------------------------------------------------------------------------


def mask_day(frame: pd.DataFrame, gaps: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hide the gaps' intervals in a copy of one day's validated frame.

    ``gaps`` holds at most one gap per series. Returns (masked, truth): in ``masked`` the hidden
    intervals are ``missing`` with no value and nothing that was derived from their read
    (received, source quality, failed rules); ``truth`` has gap_id, gap and the hidden value.
    """
    if gaps[SERIES].duplicated().any():
        raise ValueError("mask_day takes at most one gap per series")
    g = gaps[[*SERIES, "gap_id", "gap", "gap_start", "gap_end"]]
    rows = frame[KEY].reset_index().merge(g, on=SERIES)
    rows = rows[(rows["interval_end"] > rows["gap_start"]) & (rows["interval_end"] <= rows["gap_end"])]
    idx = rows["index"].to_numpy()
    truth = frame.loc[idx, [*KEY, "interval_seconds", "value"]].reset_index(drop=True)
    truth["gap_id"] = rows["gap_id"].to_numpy()
    truth["gap"] = rows["gap"].to_numpy()
    masked = frame.copy()
    masked.loc[idx, "value"] = np.nan
    masked.loc[idx, "status"] = "missing"
    for col, blank in (
        ("received", False),
        ("source_quality", None),
        ("failed_rules", None),
        ("file_id", np.nan),
        ("line", np.nan),
    ):
        if col in masked:
            masked.loc[idx, col] = blank
    return masked, truth


def with_keys(frame: pd.DataFrame) -> tuple[pd.DataFrame, Catalog]:
    """The frame with the engine's integer keys (``sid`` per meter and channel, ``t`` epoch
    seconds), sorted by them, and the catalogue that issued the series ids (``DayInputs.catalog``:
    the history and register reads must be keyed by the same one). Channels the engine does not
    know are dropped."""
    catalog = Catalog(frame["meter_id"])
    keyed = frame.assign(sid=catalog.sid(frame["meter_id"], frame["channel"]), t=epoch(frame["interval_end"]))
    keyed = keyed[keyed["sid"] >= 0]
    order = np.lexsort((keyed["t"].to_numpy(), keyed["sid"].to_numpy()))
    return keyed.iloc[order].reset_index(drop=True), catalog


# --- the California baseline ---------------------------------------------------------------------


def _local_slots(frame: pd.DataFrame, tz: str) -> tuple[pd.Series, np.ndarray]:
    """Operating day (naive midnight) and local minute of the day each interval starts in.

    A daily interval belongs to the day that ends at its end instant (23 or 25 hours on DST
    days) and has slot 0."""
    seconds = frame["interval_seconds"].astype("int64")
    ends = pd.to_datetime(frame["interval_end"], utc=True)
    local_start = (ends - pd.to_timedelta(seconds.where(seconds < WHOLE_DAY, 1), unit="s")).dt.tz_convert(tz)
    slot = np.where(seconds >= WHOLE_DAY, 0, local_start.dt.hour * 60 + local_start.dt.minute)
    return local_start.dt.tz_localize(None).dt.floor("D"), slot.astype("int64")


def california_baseline(
    masked: pd.DataFrame,
    targets: pd.DataFrame,
    history: pd.DataFrame | None,
    day: dt.date,
    tz: str,
    holidays: frozenset,
    baseline_days: int = BASELINE_DAYS,
    linear_max_seconds: int = CA_LINEAR_MAX_SECONDS,
) -> pd.Series:
    """CA DASMMD estimates for ``targets`` (rows of ``masked``: meter_id, channel, interval_end,
    interval_seconds), aligned with them.

    ``history``: the series' current intervals of the days around, as the store holds them
    (meter_id, channel, interval_end, interval_seconds, value, status, failed_rules). Linear end
    points are the nearest ``valid`` (or edited/verified) non-outage intervals of the day or its
    neighbours; where the stretch between them is over ``linear_max_seconds``, or one side has
    none, the reference-day average is used.
    """
    targets = targets[[*KEY, "interval_seconds"]].reset_index(drop=True)
    out = np.full(len(targets), np.nan)
    if targets.empty:
        return pd.Series(out, index=targets.index)
    series = targets[SERIES].drop_duplicates()
    hist = None
    if history is not None and len(history):
        hist = history.merge(series, on=SERIES)
        hist = hist.assign(interval_end=pd.to_datetime(hist["interval_end"], utc=True))
        hist["outage"] = hist["failed_rules"].fillna("").astype(str).str.contains("power_outage").to_numpy()

    # 1. point-to-point linear interpolation for short stretches
    day_points = masked.merge(series, on=SERIES)
    day_points = day_points[
        day_points["status"].eq("valid") & day_points["value"].notna() & ~day_points["outage"].astype(bool)
    ][[*KEY, "value"]]
    parts = [day_points]
    if hist is not None:
        ok = hist["status"].isin(["valid", "edited", "verified"]) & hist["value"].notna() & ~hist["outage"]
        parts.append(hist.loc[ok, [*KEY, "value"]])
    points = pd.concat(parts, ignore_index=True)
    points["s"] = points["meter_id"].astype(str) + "\x1f" + points["channel"].astype(str)
    points = points.rename(columns={"interval_end": "t"}).sort_values("t")[["s", "t", "value"]]
    left = targets.reset_index()
    left["s"] = left["meter_id"].astype(str) + "\x1f" + left["channel"].astype(str)
    left = left.rename(columns={"interval_end": "t"}).sort_values("t")
    prev = pd.merge_asof(
        left, points.assign(pt=points["t"]), on="t", by="s", direction="backward", allow_exact_matches=False
    ).set_index("index")
    nxt = pd.merge_asof(
        left, points.assign(nt=points["t"]), on="t", by="s", direction="forward", allow_exact_matches=False
    ).set_index("index")
    prev, nxt = prev.reindex(targets.index), nxt.reindex(targets.index)
    epoch0 = pd.Timestamp(0, tz="UTC")
    pt = (prev["pt"] - epoch0).dt.total_seconds().to_numpy()
    nt = (nxt["nt"] - epoch0).dt.total_seconds().to_numpy()
    t = (targets["interval_end"] - epoch0).dt.total_seconds().to_numpy()
    step = targets["interval_seconds"].to_numpy(dtype="float64")
    short = ~np.isnan(pt) & ~np.isnan(nt) & ((nt - pt - step) <= linear_max_seconds)
    with np.errstate(invalid="ignore", divide="ignore"):
        pv, nv = prev["value"].to_numpy(dtype="float64"), nxt["value"].to_numpy(dtype="float64")
        interp = pv + (nv - pv) * (t - pt) / (nt - pt)
    out[short] = interp[short]

    # 2. the plain average of the most recent same-day-type reference days, interval by interval
    if hist is not None and (~short).any():
        hist["local_date"], hist["slot"] = _local_slots(hist, tz)
        dates = pd.Series(hist["local_date"].dt.date.to_numpy(), index=hist.index)
        hist["day_type"] = day_type(dates, holidays).to_numpy()
        target_type = day_type(pd.Series([day]), holidays).iloc[0]
        ref = hist[
            hist["value"].notna()
            & (hist["day_type"] == target_type)
            & (hist["local_date"] < pd.Timestamp(day))
        ]
        days = ref[[*SERIES, "local_date"]].drop_duplicates()
        days = days.sort_values([*SERIES, "local_date"], ascending=[True, True, False])
        days = days[days.groupby(SERIES, sort=False).cumcount() < baseline_days]
        ref = ref.merge(days, on=[*SERIES, "local_date"])
        means = ref.groupby([*SERIES, "slot"])["value"].mean()
        _, slot = _local_slots(targets, tz)
        key = pd.MultiIndex.from_arrays([targets["meter_id"], targets["channel"], slot])
        avg = key.map(means).to_numpy(dtype="float64")
        out[~short] = avg[~short]
    return pd.Series(out, index=targets.index)


# --- metrics ------------------------------------------------------------------------------------


def error_metrics(estimate: pd.Series | np.ndarray, truth: pd.Series | np.ndarray) -> dict:
    """NMAE and bias over all intervals (6 decimals); an empty estimate counts as 0 (and as
    ``unestimated``)."""
    est = np.asarray(estimate, dtype="float64")
    true = np.asarray(truth, dtype="float64")
    empty = np.isnan(est)
    est = np.where(empty, 0.0, est)
    scale = np.abs(true).sum()
    if scale == 0:
        return {"nmae": None, "bias": None, "unestimated": int(empty.sum())}
    return {
        "nmae": round(float(np.abs(est - true).sum() / scale), 6),
        "bias": round(float((est.sum() - true.sum()) / scale), 6),
        "unestimated": int(empty.sum()),
    }


BOOTSTRAP_DRAWS = 1000
MIN_SERIES_TO_RESAMPLE = 10
"""Below this many series the bootstrap resamples gaps instead (one meter's backtest still gets an
interval, narrower than it should be as its gaps share the meter)."""


def nmae_ratio(rows: pd.DataFrame, method: str = "chain", base: str = "baseline") -> dict | None:
    """``method``'s NMAE over ``base``'s on the same masked intervals, and each one's bias, with
    95 % intervals from a bootstrap over series (each draw resamples whole series, whose gaps are
    not independent of each other; over gaps below ``MIN_SERIES_TO_RESAMPLE`` series; seeded, so
    reports repeat)."""
    if method not in rows or base not in rows or rows.empty:
        return None
    truth = rows["truth"].to_numpy(dtype="float64")
    est_m = np.nan_to_num(rows[method].to_numpy(dtype="float64"))
    est_b = np.nan_to_num(rows[base].to_numpy(dtype="float64"))
    sums = pd.DataFrame(
        {
            "err_m": np.abs(est_m - truth),
            "err_b": np.abs(est_b - truth),
            "diff_m": est_m - truth,
            "diff_b": est_b - truth,
            "scale": np.abs(truth),
        }
    )
    codes = _series_codes(rows)
    unit = "series"
    if codes.max() + 1 < MIN_SERIES_TO_RESAMPLE:  # a few meters: their gaps are the draws
        codes, unit = pd.factorize(rows["gap_id"])[0], "gaps"
    per_series = sums.groupby(codes).sum()
    if per_series["err_b"].sum() == 0 or per_series["scale"].sum() == 0:
        return None
    rng = np.random.default_rng(0)
    n = len(per_series)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=BOOTSTRAP_DRAWS)
    drawn = {col: counts @ per_series[col].to_numpy() for col in per_series.columns}

    def interval(values: np.ndarray) -> list[float]:
        low, high = np.nanpercentile(values, [2.5, 97.5])
        return [round(float(low), 4), round(float(high), 4)]

    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "nmae_ratio": round(float(per_series["err_m"].sum() / per_series["err_b"].sum()), 4),
            "ci95": interval(drawn["err_m"] / drawn["err_b"]),
            "resampled": unit,
            "bias_ci95": {
                method: interval(drawn["diff_m"] / drawn["scale"]),
                base: interval(drawn["diff_b"] / drawn["scale"]),
            },
        }


def _series_codes(rows: pd.DataFrame) -> np.ndarray:
    return pd.MultiIndex.from_frame(rows[SERIES].astype(str)).factorize()[0]


def _entry(rows: pd.DataFrame, methods: tuple[str, ...]) -> dict:
    entry: dict = {m: error_metrics(rows[m], rows["truth"]) for m in methods if m in rows}
    entry["n"] = len(rows)
    entry["chain_vs_baseline"] = nmae_ratio(rows)
    return entry


def summarise(
    results: pd.DataFrame,
    methods: tuple[str, ...] = ("chain", "baseline"),
    lengths: tuple[str, ...] = tuple(GAP_LENGTHS),
) -> dict:
    """Per gap length: one metrics dict per method column of ``results`` (gap, gap_id, meter_id,
    channel, truth, and a column per method), n (masked intervals), gaps, series, and the same
    metrics ``by_channel`` (NMAE over all channels adds kWh to gallons: the large-unit channels
    weigh most). A length without gaps has n = 0 and null metrics. ``chain_method`` (when
    present) is counted into ``chain_methods``."""
    out: dict[str, dict] = {}
    for name in lengths:
        rows = results[results["gap"] == name]
        entry = _entry(rows, methods)
        entry["n_counts"] = "masked intervals"
        entry["gaps"] = int(rows["gap_id"].nunique())
        entry["series"] = int(len(rows[SERIES].drop_duplicates()))
        if "chain_method" in rows:
            counts = rows["chain_method"].fillna("none").value_counts()
            entry["chain_methods"] = {str(k): int(v) for k, v in counts.items()}
        entry["by_channel"] = {
            str(channel): _entry(part, methods) for channel, part in rows.groupby("channel", sort=True)
        }
        out[name] = entry
    return {"gaps": out}


def format_table(report: dict, methods: tuple[str, ...] = ("chain", "baseline")) -> str:
    """A readable table of ``summarise`` output: each gap length (n = gaps), then its channels;
    the last column is the chain's NMAE over the baseline's with its 95 % interval."""
    width = {m: max(len(m) + 5, 10) for m in methods}
    head = f"{'gap':>4}  {'channel':<15} {'n gaps':>7} {'series':>6} {'intervals':>9}"
    for m in methods:
        head += f"  {m + ' NMAE':>{width[m]}}  {m + ' bias':>{width[m]}}"
    head += f"  {'chain/baseline (95 % CI)':>26}"
    lines = [head, "-" * len(head)]

    def pct(v) -> str:
        return "n/a" if v is None else f"{100 * v:.1f} %"

    def line(gap: str, channel: str, gaps: str, series: str, entry: dict) -> str:
        text = f"{gap:>4}  {channel:<15} {gaps:>7} {series:>6} {entry['n']:>9}"
        for m in methods:
            metric = entry.get(m) or {"nmae": None, "bias": None}
            text += f"  {pct(metric['nmae']):>{width[m]}}  {pct(metric['bias']):>{width[m]}}"
        ratio = entry.get("chain_vs_baseline")
        shown = (
            "n/a"
            if not ratio
            else f"{ratio['nmae_ratio']:.3f} ({ratio['ci95'][0]:.3f}-{ratio['ci95'][1]:.3f})"
        )
        return text + f"  {shown:>26}"

    for name, entry in report["gaps"].items():
        lines.append(line(name, "all", str(entry["gaps"]), str(entry["series"]), entry))
        for channel, part in entry.get("by_channel", {}).items():
            lines.append(line("", channel, "", "", part))
    return "\n".join(lines)
