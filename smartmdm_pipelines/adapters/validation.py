"""Vectorised row checks shared by adapters: each check marks rows with a reason (first wins)."""

from __future__ import annotations

import numpy as np
import pandas as pd

OFFSET_SUFFIX = r"(?:Z|[+-]\d{2}:?\d{2})$"


class RowReasons:
    """Collects the first failing reason per row, without a Python loop over rows."""

    def __init__(self, n: int) -> None:
        self.reasons = np.full(n, None, dtype=object)

    def check(self, failed: pd.Series | np.ndarray, reason: str | pd.Series) -> None:
        failed = np.asarray(failed, dtype=bool) & (self.reasons == None)  # noqa: E711
        if not failed.any():
            return
        if isinstance(reason, pd.Series):
            self.reasons[failed] = reason.to_numpy(dtype=object)[failed]
        else:
            self.reasons[failed] = reason

    @property
    def bad(self) -> np.ndarray:
        return self.reasons != None  # noqa: E711


def parse_utc_instants(text: pd.Series, column: str, reasons: RowReasons) -> pd.Series:
    """ISO-8601 instants that must carry an offset; naive or unparseable ones are rejected."""
    stripped = text.str.strip()
    has_offset = stripped.str.contains(OFFSET_SUFFIX, regex=True)
    parsed = pd.to_datetime(stripped.where(has_offset), format="ISO8601", utc=True, errors="coerce")
    reasons.check(stripped.eq(""), f"{column} is empty (expected an ISO-8601 instant with offset)")
    reasons.check(
        ~has_offset,
        column + " " + _quoted(stripped) + " has no UTC offset (expected e.g. 2024-03-10T06:15:00Z)",
    )
    reasons.check(parsed.isna(), column + " " + _quoted(stripped) + " is not a valid ISO-8601 instant")
    return parsed.astype("datetime64[us, UTC]")


def parse_numbers(text: pd.Series, column: str, reasons: RowReasons, allow_empty: bool) -> pd.Series:
    stripped = text.str.strip()
    numbers = pd.to_numeric(stripped.where(stripped.ne("")), errors="coerce")
    if not allow_empty:
        reasons.check(stripped.eq(""), f"{column} is empty (expected a number)")
    reasons.check(stripped.ne("") & numbers.isna(), column + " " + _quoted(stripped) + " is not a number")
    finite = np.isfinite(numbers.to_numpy(dtype="float64", na_value=np.nan)) | numbers.isna().to_numpy()
    reasons.check(~finite, column + " " + _quoted(stripped) + " is not a finite number")
    return numbers.astype("float64")


def _quoted(values: pd.Series) -> pd.Series:
    return "'" + values.str.slice(0, 40) + "'"
