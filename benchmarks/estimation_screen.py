"""Screening of estimation ideas on the tuning half of the real households: a quick offline replica.

    .venv/bin/python benchmarks/estimation_screen.py --data-dir FOLDER [--seed 0] [--gaps-per-series 20]
        [--variants default,median-blend-0.1,...]

``benchmarks/estimation_real.py`` measures the production chain through the project's own ingestion
and VEE (minutes per variant on a shared 2-core machine). This script screens ideas first, in
seconds each: it reads the **tuning half only** (the same SHA-256 split and hourly conversion as
estimation_real.py), lays every household out as a (household × local day × hour) cube
(Europe/London; the two DST days are dropped; day type = weekday vs weekend, no holidays) and
replays the backtest's gaps (1 h, 4 h, 24 h; up to ``--gaps-per-series`` of each per household on
clean days with 7 clean days of their type in the 5 weeks before; one gap per household-day)
against the same California baseline (linear ≤ 2 h, else the mean of the 5 most recent days of the
same type). Its ``default`` variant replicates the default chain (kind and recency weights for
whole days, similarity weights around a partial gap, the 7 heaviest days, the AR(1) edge bridge,
the 50 % linear/profile blend at 1 h); it lands within ~1.5 % of estimation_real.py's tuning-half
figures, so a variant that does not win here is not worth a full run. Figures: chain NMAE over
baseline NMAE, chain bias, per gap length; ``oracle`` lines give what choosing the best variant
per household with hindsight would reach (an upper bound for any per-meter selection).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from estimation_real import household_files, read_household, split_households, to_intervals  # noqa: E402

HOURS = {"1h": 1, "4h": 4, "24h": 24}
WEEKS = 35  # reference days looked back (reference_weeks 5)
LIKE = 7
WINDOW = 4  # hours compared around a partial gap (anchor_window_minutes 240)
RHO_MAX = 0.5 ** (60 / 45)  # anchor_edge_half_life_minutes 45, per hour
MAXLAG = 12

# name -> options; see ``Screen.estimate``
VARIANTS: dict[str, dict] = {
    "default": {},
    "median-blend-0.1": {"agg": "median_blend", "a": 0.1},
    "median-blend-0.2": {"agg": "median_blend", "a": 0.2},
    "median-blend-0.3": {"agg": "median_blend", "a": 0.3},
    "median": {"agg": "median_blend", "a": 1.0},
    "common-quantile": {"agg": "common_quantile"},
    "common-quantile-14-days": {"agg": "common_quantile", "K": 14},
    "10-days": {"K": 10},
    "similarity-3": {"sim": 3.0},
    "similarity-1": {"sim": 1.0},
    "level-clipped-0.5": {"mlvl": 0.5, "clip": 1.25},
    "level-clipped-0.3": {"mlvl": 0.3, "clip": 1.5},
    "additive-level-0.25": {"lvl": 0.25},
    "residual-kriging": {"krig": True, "nug": 0.3},
    "peer-day-factor": {"peer": 1.0},
    "peer-day-factor-0.5": {"peer": 0.5},
    "peer-slot-factor-0.5": {"peer": 0.5, "peer_slot": True},
    "equal-7": {"alt": "equal", "n": 7},
    "equal-14": {"alt": "equal", "n": 14},
    "recent-3": {"alt": "recent", "n": 3},
    "last-week": {"alt": "lastweek"},
    "select-2": {"select": ["default", "equal-7"], "N": 10},
    "select-4": {"select": ["default", "equal-7", "recent-3", "common-quantile"], "N": 10},
}


def build_cube(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(household × day × 24) hourly kWh by local time (NaN: not read) and the weekend flag per day."""
    files = household_files(folder)
    tuning, _ = split_households(list(files))
    frames = [to_intervals(read_household(files[h]), 3600) for h in tuning]
    df = pd.concat(frames, ignore_index=True)
    local = (df["interval_end"] - pd.Timedelta(hours=1)).dt.tz_convert("Europe/London")
    dates = pd.date_range("2013-01-01", "2013-12-31")
    di = pd.Index(dates.date).get_indexer(local.dt.date)
    hi = pd.Index(tuning).get_indexer(df["meter_id"])
    cube = np.full((len(tuning), len(dates), 24), np.nan)
    ok = di >= 0
    cube[hi[ok], di[ok], local.dt.hour.to_numpy()[ok]] = df["value"].to_numpy()[ok]
    for dst in ("2013-03-31", "2013-10-27"):
        cube[:, dates.get_loc(pd.Timestamp(dst)), :] = np.nan
    return cube, dates.day_of_week.to_numpy() >= 5


def weighted_quantile(vals: np.ndarray, w: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(days × slots) values, day weights, quantile levels -> (levels × slots), midpoint rule."""
    order = np.argsort(vals, axis=0)
    sv = np.take_along_axis(vals, order, axis=0)
    sw = w[order]
    cw = (np.cumsum(sw, axis=0) - 0.5 * sw) / sw.sum(axis=0)
    return np.stack([np.interp(q, cw[:, s], sv[:, s]) for s in range(vals.shape[1])], axis=1)


QS = np.linspace(0.2, 0.9, 71)


class Screen:
    def __init__(self, cube: np.ndarray, weekend: np.ndarray, seed: int, gaps_per_series: int):
        self.cube, self.weekend = cube, weekend
        self.H, self.D, self.S = cube.shape
        self.flat = cube.reshape(self.H, -1)
        self.clean = ~np.isnan(cube).any(axis=2)
        self.rho = np.minimum(RHO_MAX, [self._carry(h) for h in range(self.H)])
        self.acf = np.array([self._acf(h) for h in range(self.H)])
        rng = np.random.default_rng(seed)
        self.gaps = []
        for h in range(self.H):
            days = [j for j in range(WEEKS + 1, self.D - 1) if self.clean[h, j] and self._like(h, j) >= LIKE]
            for i, j in enumerate(rng.permutation(days)[: 3 * gaps_per_series]):
                length = ("1h", "4h", "24h")[i % 3]
                self.gaps.append((h, int(j), length, int(rng.integers(0, 25 - HOURS[length]))))

    def _like(self, h: int, j: int) -> int:
        return sum(1 for k in range(j - WEEKS, j) if self.clean[h, k] and self.weekend[k] == self.weekend[j])

    def _deviations(self, h: int) -> np.ndarray:
        x = self.cube[h]
        return (x - np.nanmean(x, axis=0)).reshape(-1)

    def _carry(self, h: int) -> float:
        dev = self._deviations(h)
        a, b = dev[:-1], dev[1:]
        ok = ~np.isnan(a) & ~np.isnan(b)
        return max(float(np.corrcoef(a[ok], b[ok])[0, 1]), 0.0) if ok.sum() >= 24 else 0.0

    def _acf(self, h: int) -> np.ndarray:
        dev = self._deviations(h)
        var = np.nanmean(dev * dev)
        out = np.zeros(MAXLAG + 1)
        for k in range(MAXLAG + 1):
            a, b = dev[: len(dev) - k], dev[k:]
            ok = ~np.isnan(a) & ~np.isnan(b)
            out[k] = np.mean(a[ok] * b[ok]) / var
        return np.clip(out, 0, None)

    def baseline(self, h: int, j: int, length: str, s: int) -> np.ndarray:
        n, t0 = HOURS[length], j * self.S + s
        if length == "1h":
            a, b = self.flat[h, t0 - 1], self.flat[h, t0 + n]
            return a + (b - a) * np.arange(1, n + 1) / (n + 1)
        days = [
            k
            for k in range(j - 1, j - WEEKS - 1, -1)
            if self.weekend[k] == self.weekend[j] and not np.isnan(self.cube[h, k]).all()
        ][:5]
        return np.nanmean(self.cube[h, days], axis=0)[s : s + n]

    def estimate(self, h: int, j: int, length: str, s: int, v: dict) -> np.ndarray:
        if "select" in v:
            return self._select(h, j, length, s, v)
        cube, S, n = self.cube, self.S, HOURS[length]
        gap = np.arange(s, s + n)
        offs = [k for k in range(j - WEEKS, j) if self.clean[h, k]]
        if j + 1 < self.D and self.clean[h, j + 1]:
            offs.append(j + 1)  # the day after
        offs = np.array(offs)
        kind = np.where(self.weekend[offs] == self.weekend[j], 1.0, 0.5)
        day = cube[h, j].copy()
        day[gap] = np.nan
        win = [
            k for k in range(S) if (k < s and s - k <= WINDOW) or (k >= s + n and k - (s + n - 1) <= WINDOW)
        ]
        if length == "24h":  # recency
            log_w = np.log(kind) - np.log(2.0) * (np.abs(offs - j) - 1) / 7.0
        else:  # similarity around the gap
            obs = day[win]
            d = np.abs(cube[h, offs][:, win] - obs).mean(1) / max(np.abs(obs).mean(), 1e-9)
            log_w = np.log(kind) - v.get("sim", 2.0) * d
        top = np.argsort(-log_w, kind="stable")[: v.get("K", LIKE)]
        w = np.exp(log_w[top] - log_w[top].max())
        vals = cube[h, offs[top]]
        if v.get("alt") == "equal":
            vals = cube[
                h,
                [
                    k
                    for k in range(j - 1, j - WEEKS - 1, -1)
                    if self.clean[h, k] and self.weekend[k] == self.weekend[j]
                ][: v["n"]],
            ]
        elif v.get("alt") == "recent":
            vals = cube[h, [k for k in range(j - 1, j - WEEKS - 1, -1) if self.clean[h, k]][: v["n"]]]
        elif v.get("alt") == "lastweek":
            last = [k for k in (j - 7, j - 14) if self.clean[h, k]]
            vals = cube[h, last or [k for k in range(j - 1, j - WEEKS - 1, -1) if self.clean[h, k]][:1]]
        if "alt" in v:
            w = np.ones(len(vals))
        mean = (vals * w[:, None]).sum(0) / w.sum()
        factor = 1.0
        if v.get("peer"):  # the other households' day j against their same reference days
            peers = [
                p for p in range(self.H) if p != h and self.clean[p, j] and self.clean[p, offs[top]].all()
            ]
            if len(peers) >= 5:
                pprof = (cube[peers][:, offs[top]] * w[None, :, None]).sum(1) / w.sum()
                today = cube[peers, j]
                if v.get("peer_slot"):
                    den = pprof.sum(0)
                    ratio = np.where(den > 0, today.sum(0) / np.where(den > 0, den, 1), 1.0)
                else:
                    ratio = today.sum() / pprof.sum()
                factor = 1 + v["peer"] * (ratio - 1)
        if v.get("mlvl") and length != "24h":  # multiplicative level, clipped
            o, p = day[win].sum(), mean[win].sum()
            ratio = np.clip(o / p, 1 / v["clip"], v["clip"]) if p > 0 else 1.0
            factor = 1 + v["mlvl"] * (ratio - 1)
        vals, mean = vals * factor, mean * factor
        agg = v.get("agg", "mean")
        if agg == "mean":
            prof = mean
        elif agg == "median_blend":
            order = np.argsort(vals, axis=0, kind="stable")
            cw = np.cumsum(w[order], axis=0)
            median = np.take_along_axis(vals, order, axis=0)[
                (cw >= 0.5 * w.sum()).argmax(axis=0), np.arange(S)
            ]
            prof = (1 - v["a"]) * mean + v["a"] * median
        elif agg == "common_quantile":  # one quantile level for every slot, the day's total kept
            qv = weighted_quantile(vals, w, QS)
            prof = qv[min(int(np.searchsorted(qv.sum(1), mean.sum())), len(QS) - 1)]
        t0 = j * S + s
        est = prof[gap].copy()
        flat = self.flat[h]
        if v.get("krig"):  # residuals at every observed hour of the window, per-household ACF
            obs_t = np.array(
                [
                    t
                    for t in range(t0 - WINDOW, t0 + n + WINDOW)
                    if (t < t0 or t >= t0 + n) and 0 <= t < len(flat) and not np.isnan(flat[t])
                ]
            )
            lag = lambda a, b: np.abs(a[:, None] - b[None, :])  # noqa: E731
            cov = lambda a, b: np.where(lag(a, b) <= MAXLAG, self.acf[h][np.minimum(lag(a, b), MAXLAG)], 0.0)  # noqa: E731
            r = flat[obs_t] - prof[obs_t % S]
            g = np.arange(t0, t0 + n)
            est = np.maximum(
                est + cov(g, obs_t) @ np.linalg.solve(cov(obs_t, obs_t) + v["nug"] * np.eye(len(obs_t)), r), 0
            )
        else:
            if v.get("lvl") and length != "24h":  # additive level from the window residuals
                r = day[win] - prof[win]
                est = np.maximum(est + v["lvl"] * np.nanmean(r), 0)
            rho = self.rho[h]
            ra = flat[t0 - 1] - prof[(t0 - 1) % S]
            rb = flat[t0 + n] - prof[(t0 + n) % S] if t0 + n < len(flat) else np.nan
            tt, m = np.arange(1, n + 1), n + 1
            if rho > 0:
                den = 1 - rho ** (2 * m)
                wa = (rho**tt - rho ** (2 * m - tt)) / den
                wb = (rho ** (m - tt) - rho ** (m + tt)) / den
                adj = np.where(np.isnan(ra), 0, wa * np.nan_to_num(ra)) + np.where(
                    np.isnan(rb), 0, wb * np.nan_to_num(rb)
                )
                if np.isnan(ra) != np.isnan(rb):
                    adj = rho**tt * np.nan_to_num(ra) if np.isnan(rb) else rho ** (m - tt) * np.nan_to_num(rb)
                est = np.maximum(est + adj, np.minimum(prof[gap], 0))
        if length == "1h":  # the linear/profile blend
            a, b = flat[t0 - 1], flat[t0 + n]
            lin = a + (b - a) * np.arange(1, n + 1) / (n + 1)
            est = 0.5 * lin + 0.5 * prof[gap]
        return est

    def _select(self, h: int, j: int, length: str, s: int, v: dict) -> np.ndarray:
        """24 h: the candidate with the least error on the household's last N clean days (whole-day
        artificial gaps, each predicted from its own past)."""
        if length != "24h":
            return self.estimate(h, j, length, s, VARIANTS["default"])
        past = [k for k in range(j - 1, j - WEEKS - 1, -1) if self.clean[h, k] and self._like(h, k) >= LIKE][
            : v["N"]
        ]
        if len(past) < 3:
            return self.estimate(h, j, length, s, VARIANTS[v["select"][0]])
        errors = [
            sum(np.abs(self.estimate(h, k, length, 0, VARIANTS[c]) - self.cube[h, k]).sum() for k in past)
            for c in v["select"]
        ]
        return self.estimate(h, j, length, s, VARIANTS[v["select"][int(np.argmin(errors))]])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gaps-per-series", type=int, default=20)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = set(names) - set(VARIANTS)
    if unknown:
        parser.error(f"--variants: unknown {sorted(unknown)}; known: {list(VARIANTS)}")
    cube, weekend = build_cube(args.data_dir)
    sc = Screen(cube, weekend, args.seed, args.gaps_per_series)
    truth = {g: [] for g in HOURS}
    base = {g: [] for g in HOURS}
    for h, j, length, s in sc.gaps:
        truth[length].append(cube[h, j, s : s + HOURS[length]])
        base[length].append(sc.baseline(h, j, length, s))
    truth = {g: np.concatenate(x) for g, x in truth.items()}
    base_err = {g: np.abs(np.concatenate(base[g]) - truth[g]).sum() for g in HOURS}
    counts = {g: sum(1 for x in sc.gaps if x[2] == g) for g in HOURS}
    print(f"tuning half: {sc.H} households, seed {args.seed}, gaps {counts}")
    print(f"{'variant':<26}" + "".join(f"{g:>17}" for g in HOURS))
    per_household = {}
    for name in names:
        est = {g: [] for g in HOURS}
        err = np.zeros((sc.H, len(HOURS)))
        for h, j, length, s in sc.gaps:
            e = sc.estimate(h, j, length, s, VARIANTS[name])
            est[length].append(e)
            err[h, list(HOURS).index(length)] += np.abs(e - cube[h, j, s : s + HOURS[length]]).sum()
        per_household[name] = err
        cells = []
        for g in HOURS:
            e = np.concatenate(est[g])
            ratio = np.abs(e - truth[g]).sum() / base_err[g]
            bias = (e - truth[g]).sum() / np.abs(truth[g]).sum()
            cells.append(f"{ratio:>9.3f} {100 * bias:+5.1f}%")
        print(f"{name:<26}" + "".join(cells), flush=True)
    if len(names) > 1:
        best = np.min(np.stack(list(per_household.values())), axis=0).sum(axis=0)
        first = per_household[names[0]].sum(axis=0)
        print(
            "oracle (best variant per household, hindsight) / "
            + names[0]
            + ": "
            + ", ".join(f"{g} {b / f:.3f}" for g, b, f in zip(HOURS, best, first, strict=True))
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
