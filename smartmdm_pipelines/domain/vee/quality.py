"""Quality codes of interval versions: our status and method -> ESPI QualityOfReading and IEC 61968-9.

ESPI (docs/vee_rules.md §5.1): 0 valid, 7 manually edited, 8 estimated using reference day, 9 estimated
using linear interpolation, 10 questionable, 14 raw, 17 validated, 18 verified.
IEC 61968-9 ReadingQualityType ``system.category.index`` (docs/vee_rules.md §5.2): system 2 = MDM;
category 0 valid, 7 edited, 8 estimated, 5 questionable; index as listed below.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# estimation method -> (ESPI code, IEC code)
METHOD_CODES: dict[str, tuple[int, str]] = {
    "linear": (9, "2.8.1"),
    "flat_hold": (9, "2.8.1"),
    "like_day": (8, "2.8.2"),
    "multi_week": (8, "2.8.2"),
    "class_profile": (8, "2.8.4"),
    "register_spread": (11, "2.8.3"),
    "average_daily_load": (8, "2.8.5"),
    "zero_fill": (11, "2.8.6"),
    "manual": (7, "2.7.0"),
}
STATUS_CODES: dict[str, tuple[int | None, str | None]] = {
    "valid": (0, "2.0.0"),
    "verified": (18, "2.0.1"),
    "suspect": (10, "2.5.256"),
    "missing": (None, "2.5.259"),
    "edited": (7, "2.7.0"),
}


def quality_codes(
    status: pd.Series, method: pd.Series, estimated: np.ndarray | None = None
) -> tuple[pd.Series, pd.Series]:
    """ESPI and IEC codes per interval, vectorised (estimated rows take their method's codes)."""
    cat = (
        status.array
        if isinstance(getattr(status, "dtype", None), pd.CategoricalDtype)
        else pd.Categorical(np.asarray(status, dtype=object))
    )
    espi_table = np.array([STATUS_CODES.get(c, (None, None))[0] for c in cat.categories], dtype="float64")
    iec_table = np.array([STATUS_CODES.get(c, (None, None))[1] for c in cat.categories], dtype=object)
    espi = espi_table[cat.codes] if len(espi_table) else np.full(len(cat), np.nan)
    iec = iec_table[cat.codes] if len(iec_table) else np.full(len(cat), None, dtype=object)
    if estimated is None:
        est = np.asarray(cat.codes == cat.categories.get_indexer(["estimated"])[0]) & (cat.codes >= 0)
    else:
        est = np.asarray(estimated, dtype=bool)
    rows = np.flatnonzero(est)
    if len(rows):
        base = [str(m).split("+")[0] for m in np.asarray(method, dtype=object)[rows]]
        espi[rows] = [METHOD_CODES.get(b, (np.nan, None))[0] for b in base]
        iec[rows] = [METHOD_CODES.get(b, (None, None))[1] for b in base]
    return pd.Series(espi).astype("Int16"), pd.Series(iec, dtype=object)


def source_quality_rank(source_quality: pd.Series, value: pd.Series) -> np.ndarray:
    """Replacement ranking of received reads: 0 actual, 1 estimated by the head-end, 2 no read.

    Recognised estimated codes: 'E…' (generic CSV, CMEP protocol text, Beacon flag), ESPI 8/9/11/12,
    NEM12 'E'/'S'/'F' methods. Anything else with a value counts as actual.
    """
    q = source_quality.fillna("").astype("str").str.strip().str.upper()
    estimated = q.str.startswith("E") | q.isin(["8", "9", "11", "12", "S", "F"])
    rank = np.where(estimated.to_numpy(), 1, 0)
    return np.where(value.isna().to_numpy() | q.str.startswith("N").to_numpy(), 2, rank)


def is_power_fail_code(source_quality: pd.Series) -> pd.Series:
    """Head-end codes meaning the interval saw a power failure (IEC x.2.32, 'PF', 'PO')."""
    q = source_quality.fillna("").astype("str").str.upper()
    return q.str.contains(r"(?:^|\.)2\.32$|^PF|^PO|POWER", regex=True)


def per_category(codes: pd.Series, test) -> np.ndarray:
    """``test`` (a function of a Series of codes returning one value per code) per row of
    ``codes``, evaluated once per distinct code when ``codes`` is a categorical (a day holds a
    handful of source-quality codes for millions of reads); a missing code is tested as None."""
    if not isinstance(codes.dtype, pd.CategoricalDtype):
        return np.asarray(test(codes))
    cats = pd.Series(np.asarray(codes.cat.categories, dtype=object).tolist() + [None], dtype=object)
    table = np.asarray(test(cats))
    index = codes.cat.codes.to_numpy()
    return table[np.where(index < 0, len(cats) - 1, index)]
