"""CIS master data from a CSV drop: accounts, service points, meters, installs, cycles, zones.

Each table is replaced atomically (all tables in one transaction). Effective-dated
history (accounts' move-in/out, meter installs' installed/removed) is kept as the
CIS sends it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from smartmdm_pipelines.store.store import Store

# table -> (file, timestamp columns, date columns, boolean columns)
MASTER_FILES: dict[str, tuple[str, list[str], list[str], list[str]]] = {
    "meters": ("meters.csv", [], [], []),
    "service_points": ("service_points.csv", [], [], ["has_solar"]),
    "accounts": ("accounts.csv", [], ["move_in", "move_out"], []),
    "meter_installs": ("meter_installs.csv", ["installed_at", "removed_at"], [], []),
    "billing_cycles": ("billing_cycles.csv", [], ["period_start", "period_end", "read_date"], []),
    "zones": ("zones.csv", [], [], []),
}


class MasterDataError(ValueError):
    pass


def read_master_file(
    path: Path, timestamps: list[str], dates: list[str], booleans: list[str]
) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = frame.replace({"": None})
    for col in timestamps:
        frame[col] = _parse(path, frame, col, lambda s: pd.to_datetime(s, utc=True, format="ISO8601"))
    for col in dates:
        frame[col] = _parse(path, frame, col, lambda s: pd.to_datetime(s, format="ISO8601").dt.floor("D"))
    for col in booleans:
        frame[col] = frame[col].str.lower().map({"true": True, "false": False, "1": True, "0": False})
    return frame


def _parse(path: Path, frame: pd.DataFrame, col: str, parser) -> pd.Series:
    if col not in frame:
        raise MasterDataError(f"{path}: missing column {col!r}")
    try:
        return parser(frame[col])
    except (ValueError, TypeError) as exc:
        raise MasterDataError(f"{path}: column {col!r}: {exc}") from exc


def sync_master_data(store: Store, folder: Path) -> dict[str, int]:
    """Load every master file present in ``folder``; returns rows per table."""
    frames = {}
    for table, (name, ts, dates, bools) in MASTER_FILES.items():
        path = Path(folder) / name
        if path.exists():
            frames[table] = read_master_file(path, ts, dates, bools)
    if not frames:
        raise MasterDataError(
            f"no CIS master files in {folder} (expected some of {[v[0] for v in MASTER_FILES.values()]})"
        )
    now = pd.Timestamp.now(tz="UTC")
    counts = {}
    with store.begin() as conn:
        for table, frame in frames.items():
            frame = frame.assign(synced_at=now)
            known = [c.name for c in store.table(table).columns]
            store.delete(table, store.table(table).c[known[0]].isnot(None), conn)
            counts[table] = store.bulk_insert(table, frame[[c for c in frame.columns if c in known]], conn)
    return counts
