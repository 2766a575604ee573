"""Billing reference data into the store: tariffs per rate code (from the utility config's
URDB files) with their schedules and holiday calendars in long form, and system-peak
intervals for coincident-peak demand (``system_peaks.csv`` in the CIS drop, optional).

Every table is replaced in one transaction: the config is the master of this data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from smartmdm_pipelines.config import UtilityConfig
from smartmdm_pipelines.domain.billing.tariff import holiday_frame, schedule_frame
from smartmdm_pipelines.domain.billing.urdb import load_tariff
from smartmdm_pipelines.store.store import Store

HOLIDAY_YEARS = (2000, 2040)


class ReferenceDataError(ValueError):
    pass


def tariff_frames(cfg: UtilityConfig, now: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Parse every configured tariff (a bad file raises with its path and the bad field)."""
    tariffs, schedules, holidays = [], [], []
    settings = sorted(cfg.billing.tariffs, key=lambda t: (t.rate_code, t.effective_from))
    for i, t in enumerate(settings):
        path = cfg.tariff_path(t)
        tariff = load_tariff(path)
        nxt = settings[i + 1] if i + 1 < len(settings) else None
        effective_to = nxt.effective_from if nxt is not None and nxt.rate_code == t.rate_code else None
        text = Path(path).read_text()
        tariffs.append(
            {
                "rate_code": t.rate_code,
                "effective_from": t.effective_from,
                "effective_to": effective_to,
                "label": tariff.label,
                "name": tariff.name,
                "utility": tariff.utility,
                "holidays": t.holidays,
                "netting": t.netting or tariff.netting,
                "demand_window_minutes": int(tariff.demand_window or 15),
                "demand_method": t.demand_method,
                "billing_unit": t.unit or tariff.energy_unit,
                "urdb_json": json.dumps(tariff.raw) if tariff.raw else text,
                "content_hash": hashlib.sha256(text.encode()).hexdigest(),
                "loaded_at": now,
            }
        )
        schedules.append(schedule_frame(tariff, t.rate_code, t.effective_from))
        holidays.append(holiday_frame(t.rate_code, t.effective_from, t.holidays, *HOLIDAY_YEARS))
    return {
        "tariffs": pd.DataFrame(tariffs),
        "tariff_schedules": pd.concat(schedules, ignore_index=True) if schedules else pd.DataFrame(),
        "tariff_holidays": pd.concat(holidays, ignore_index=True) if holidays else pd.DataFrame(),
    }


def system_peaks_frame(path: Path) -> pd.DataFrame:
    """``program,interval_end,interval_seconds`` (interval_end ISO-8601 with offset)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"program", "interval_end", "interval_seconds"} - set(frame.columns)
    if missing:
        raise ReferenceDataError(f"{path}: line 1: missing column(s) {sorted(missing)}")
    ends = pd.to_datetime(frame["interval_end"], utc=True, errors="coerce", format="ISO8601")
    seconds = pd.to_numeric(frame["interval_seconds"], errors="coerce")
    bad = ends.isna() | seconds.isna()
    if bad.any():
        line = int(bad.to_numpy().nonzero()[0][0]) + 2
        raise ReferenceDataError(
            f"{path}: line {line}: expected interval_end as ISO-8601 with offset and interval_seconds as an "
            f"integer, got {frame.iloc[line - 2].to_dict()}"
        )
    return pd.DataFrame(
        {"program": frame["program"], "interval_end": ends, "interval_seconds": seconds.astype("int64")}
    )


def load_billing_reference(
    store: Store, cfg: UtilityConfig, now: pd.Timestamp | None = None
) -> dict[str, int]:
    now = now or pd.Timestamp.now(tz="UTC")
    frames = tariff_frames(cfg, now)
    peaks_path = cfg.cis_drop_dir / "system_peaks.csv"
    if peaks_path.exists():
        frames["system_peaks"] = system_peaks_frame(peaks_path)
    counts = {}
    with store.begin() as conn:
        for table, frame in frames.items():
            store.execute(f"DELETE FROM {table}", conn=conn)
            counts[table] = store.bulk_insert(table, frame, conn) if len(frame) else 0
    return counts
