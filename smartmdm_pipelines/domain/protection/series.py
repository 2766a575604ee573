"""The service-point × day usage matrix, its peer (seasonal) adjustment and change points.

Rows are service points, columns operating days; a cell is the day's total on the commodity's
billed channel summed over the service point's meters (a meter exchange stays one series).
Days under a power outage are NaN: a zero during an outage is no evidence of anything.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.protection.params import MAIN_CHANNEL


@dataclass
class UsageMatrix:
    """Daily usage per service point: ``values[i, j]`` is service point ``sp_ids[i]`` on ``days[j]``."""

    sp_ids: pd.Index
    days: list[dt.date]
    values: np.ndarray
    unit: pd.Series  # per service point
    meters: pd.Series  # per service point: ';'-joined meter ids

    def row(self, sp_id: str) -> np.ndarray:
        return self.values[self.sp_ids.get_loc(sp_id)]


def day_range(as_of: dt.date, window_days: int) -> list[dt.date]:
    return [as_of - dt.timedelta(days=k) for k in range(window_days - 1, -1, -1)]


def day_starts_utc(days: list[dt.date], tz: str) -> pd.DatetimeIndex:
    """Local midnight of each operating day, in UTC."""
    return pd.DatetimeIndex(pd.to_datetime(days)).tz_localize(tz).tz_convert("UTC")


def usage_matrix(daily: pd.DataFrame, service_points: pd.DataFrame, days: list[dt.date]) -> UsageMatrix:
    """The matrix of the billed channel of each service point's commodity over ``days``.

    ``daily``: service_point_id, meter_id, channel, read_day, total, has_outage, unit.
    """
    sps = service_points.set_index("service_point_id")
    main = daily["service_point_id"].map(sps["commodity"]).map(MAIN_CHANNEL)
    rows = daily[daily["channel"].eq(main)].copy()
    rows["read_day"] = pd.to_datetime(rows["read_day"]).dt.date
    rows = rows[rows["read_day"].isin(set(days))]
    ids = pd.Index(sorted(rows["service_point_id"].unique()), name="service_point_id")
    if rows.empty:
        empty = pd.Series(dtype="str")
        return UsageMatrix(ids, days, np.zeros((0, len(days))), empty, empty)
    per_day = rows.groupby(["service_point_id", "read_day"]).agg(
        total=("total", "sum"), outage=("has_outage", "max")
    )
    per_day.loc[per_day["outage"].astype(bool), "total"] = np.nan
    wide = per_day["total"].unstack("read_day").reindex(index=ids, columns=days)
    unit = rows.groupby("service_point_id")["unit"].first().reindex(ids)
    meters = rows.groupby("service_point_id")["meter_id"].agg(lambda m: ";".join(sorted(set(m)))).reindex(ids)
    return UsageMatrix(ids, days, wide.to_numpy(dtype="float64"), unit, meters)


def peer_adjusted(
    matrix: UsageMatrix, service_points: pd.DataFrame, min_peers: int
) -> tuple[np.ndarray, np.ndarray]:
    """(adjusted, peer median per cell): usage relative to the peers' median of the same day: the weather, the season and the weekday
    cancel out. Peers share commodity, customer class and rate code; a group smaller than
    ``min_peers`` falls back to commodity and class, and with fewer still the series stays raw."""
    sps = service_points.set_index("service_point_id").reindex(matrix.sp_ids)
    fine = (
        sps["commodity"].astype(str)
        + "|"
        + sps["customer_class"].astype(str)
        + "|"
        + sps["rate_code"].astype(str)
    )
    coarse = sps["commodity"].astype(str) + "|" + sps["customer_class"].astype(str)
    group = fine.where(fine.map(fine.value_counts()) >= min_peers, coarse)
    group = group.where(group.map(group.value_counts()) >= min_peers, "")
    codes, names = pd.factorize(group.to_numpy())
    median = np.ones((len(names), matrix.values.shape[1]))
    for g, name in enumerate(names):  # a loop over peer groups (a handful), each one vectorised
        if name:
            with warnings.catch_warnings():  # an all-NaN day (an outage everywhere) stays NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                median[g] = np.nanmedian(matrix.values[codes == g], axis=0)
    median = np.where(np.isfinite(median) & (median > 0), median, np.nan)[codes]
    return matrix.values / median, median


@dataclass
class ChangePoints:
    """The largest downward step of each row: ``k`` is the first column after the step."""

    k: np.ndarray
    before: np.ndarray  # mean before
    after: np.ndarray  # mean after
    n_before: np.ndarray
    n_after: np.ndarray
    t: np.ndarray  # the step in standard errors of the residual noise

    @property
    def ratio(self) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.where(self.before > 0, self.after / self.before, np.nan)


def downward_steps(values: np.ndarray, min_segment: int) -> ChangePoints:
    """One L2 change point per row (the split that removes most squared error, PELT's cost with
    one break), restricted to steps down; NaN cells are skipped. Vectorised over rows and splits."""
    n_rows, n = values.shape
    valid = ~np.isnan(values)
    z = np.where(valid, values, 0.0)
    cs, cc, cs2 = np.cumsum(z, axis=1), np.cumsum(valid, axis=1), np.cumsum(z * z, axis=1)
    if n < 2 or n_rows == 0:
        nan = np.full(n_rows, np.nan)
        return ChangePoints(np.zeros(n_rows, dtype=int), nan, nan, nan, nan, nan)
    s1, c1 = cs[:, :-1], cc[:, :-1].astype("float64")
    s2, c2 = cs[:, -1:] - s1, cc[:, -1:] - c1
    with np.errstate(all="ignore"):
        m1, m2 = s1 / c1, s2 / c2
        gain = c1 * c2 / (c1 + c2) * (m1 - m2) ** 2
    ok = (c1 >= min_segment) & (c2 >= min_segment) & (m2 < m1)
    gain = np.where(ok, gain, -np.inf)
    best = np.argmax(gain, axis=1)
    rows = np.arange(n_rows)
    found = np.isfinite(gain[rows, best])
    b1, b2 = c1[rows, best], c2[rows, best]
    mean1, mean2 = m1[rows, best], m2[rows, best]
    with np.errstate(all="ignore"):
        sse = cs2[:, -1] - b1 * mean1**2 - b2 * mean2**2
        sigma = np.sqrt(np.maximum(sse, 0.0) / np.maximum(b1 + b2 - 2, 1))
        # a floor on the noise: a perfectly flat baseline must not make any wiggle "significant"
        sigma = np.maximum(sigma, 0.02 * np.abs(mean1))
        t = (mean1 - mean2) / (sigma * np.sqrt(1 / b1 + 1 / b2))
    nan = np.nan
    return ChangePoints(
        k=np.where(found, best + 1, 0),
        before=np.where(found, mean1, nan),
        after=np.where(found, mean2, nan),
        n_before=np.where(found, b1, nan),
        n_after=np.where(found, b2, nan),
        t=np.where(found, t, nan),
    )


def excerpt(values: np.ndarray, days: list[dt.date], last: int) -> list[list]:
    """The last ``last`` days of a series as [[day, value], …] for a case's evidence (from its first
    day with data)."""
    tail = values[-last:]
    first = int(np.argmax(~np.isnan(tail))) if (~np.isnan(tail)).any() else len(tail)
    return [
        [d.isoformat(), None if np.isnan(v) else round(float(v), 3)]
        for d, v in zip(days[-last:][first:], tail[first:], strict=True)
    ]
