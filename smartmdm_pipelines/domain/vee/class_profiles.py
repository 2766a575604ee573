"""Class load profiles (E5) from partial sums, so a day split into meter shards estimates with
the profile of the whole day.

``estimation.class_profiles`` averages today's valid intervals per (class, slot) over every
meter of the frame. A shard sees only its meters; each shard therefore contributes its sums and
counts (``profile_parts``, keyed by the class's values, not by frame-local integer keys) and
every shard estimates with ``profiles_from_parts`` of all the parts: the mean over the whole day.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.vee.history import slots
from smartmdm_pipelines.domain.vee.like_day import SLOTS

LEVELS = {
    "fine": ["commodity", "channel", "interval_seconds", "customer_class"],
    "coarse": ["commodity", "channel", "interval_seconds"],
}
PART_COLUMNS = ["level", *LEVELS["fine"], "slot", "value_sum", "value_count"]


def _keys(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The class columns as text (as ``estimate._class_keys`` factorizes them)."""
    return pd.DataFrame({c: _text(frame[c]) for c in columns})


def _text(values: pd.Series) -> np.ndarray:
    """``values.astype(str)``, each distinct value converted once (a day has millions of rows
    and a handful of classes); missing values element by element (None and NaN print apart)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    text = pd.Series(uniques).astype(str).to_numpy(dtype=object)
    out = text.take(np.maximum(codes, 0)) if len(text) else np.empty(len(codes), dtype=object)
    missing = codes < 0
    if missing.any():
        out[missing] = values[missing].astype(str).to_numpy(dtype=object)
    return out


def profile_parts(validated: pd.DataFrame, tz: str) -> pd.DataFrame:
    """Sum and count of the valid, non-outage values per level, class and slot (PART_COLUMNS)."""
    valid = validated["status"].eq("valid").to_numpy() & ~np.isnan(
        validated["value"].to_numpy(dtype="float64")
    )
    if "outage" in validated:
        valid &= ~validated["outage"].to_numpy(dtype=bool)
    rows = validated.iloc[np.flatnonzero(valid)]
    if rows.empty:
        return pd.DataFrame(columns=PART_COLUMNS)
    _, slot = slots(rows["interval_end"], rows["interval_seconds"], tz)
    parts = []
    for level, columns in LEVELS.items():
        keys = _keys(rows, columns).assign(
            slot=np.asarray(slot), value=rows["value"].to_numpy(dtype="float64")
        )
        sums = (
            keys.groupby([*columns, "slot"], sort=True)["value"]
            .agg(value_sum="sum", value_count="size")
            .reset_index()
        )
        parts.append(sums.assign(level=level))
    out = pd.concat(parts, ignore_index=True)
    out["customer_class"] = out["customer_class"].fillna("")
    return out[PART_COLUMNS]


def profiles_from_parts(parts: pd.DataFrame, full: pd.DataFrame) -> dict[str, pd.Series]:
    """``estimation.class_profiles``'s result (mean per frame class key × SLOTS + slot, per level)
    from the parts of every shard; ``full`` carries the frame's keys (``class_fine``, ``class_coarse``)."""
    firsts = full.drop_duplicates("sid")
    out = {}
    for level, columns in LEVELS.items():
        combos = _keys(firsts, columns).assign(key=firsts[f"class_{level}"].to_numpy())
        combos = combos.drop_duplicates(columns)
        mine = parts[parts["level"].eq(level)]
        summed = (
            mine.groupby([*columns, "slot"], sort=False)[["value_sum", "value_count"]].sum().reset_index()
        )
        hit = summed.merge(combos, on=columns, how="inner")
        index = hit["key"].to_numpy(dtype="int64") * SLOTS + hit["slot"].to_numpy(dtype="int64")
        mean = hit["value_sum"].to_numpy(dtype="float64") / hit["value_count"].to_numpy(dtype="float64")
        out[level] = pd.Series(mean, index=index).sort_index()
    return out
