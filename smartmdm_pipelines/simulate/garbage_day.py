"""A day of head-end files in which a share of the meters send garbage, with the ledger of every
bad row written (issue 15, "bad data at scale").

``write_day(folder, meters, day, garbage_share=0.3)`` writes generic interval CSV files of
``meters_per_file`` meters each. The valid meters' rows are the same bytes as on a clean day
(``garbage_share=0``); each garbage meter has a share of its rows spoiled, each in one way of a
mix — too few fields, a value that is not a number, an impossible timestamp, an unknown unit, an
impossible (negative) value — and in half of the files that hold garbage, the last line is cut
off mid-row (a truncated transfer; garbage meters' rows come last in a file, so a cut only ever
hits one of theirs). The ledger names the file, line, meter and kind of every bad row and
whether the pipeline must reject it (with its line and reason) or load it for VEE to flag.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from smartmdm_pipelines.domain.timeutil import interval_ends

HEADER = "meter_id,channel,interval_end,interval_seconds,value,unit,quality\n"
REJECTED_KINDS = ("too_few_fields", "not_a_number", "bad_timestamp", "unknown_unit")
FLAGGED_KINDS = ("negative_value",)
KINDS = REJECTED_KINDS + FLAGGED_KINDS
SPOILED_SHARE = 0.3  # of a garbage meter's rows


@dataclass
class Day:
    files: list[Path]
    valid_meters: list[str]
    garbage_meters: list[str]
    bad: pd.DataFrame  # file, line, meter_id, kind, expect ("rejected" | "flagged")
    data_lines: dict[str, int] = field(default_factory=dict)  # per file name: lines after the header

    @property
    def meters(self) -> list[str]:
        return sorted(self.valid_meters + self.garbage_meters)


def meter_ids(meters: int) -> list[str]:
    return [f"G{i:06d}" for i in range(meters)]


def _value(meter_no: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """A daily shape per meter (never flat, never negative), in kWh per quarter-hour."""
    return np.round(0.2 + 0.05 * (meter_no % 7) + 0.1 * np.sin(slot * 2 * np.pi / 96) ** 2 + slot / 2000, 3)


def write_day(
    folder: Path,
    meters: int,
    day: dt.date,
    *,
    garbage_share: float = 0.3,
    seed: int = 20261202,
    meters_per_file: int = 1000,
    tz: str = "America/Chicago",
    source: str = "ami-east",
) -> Day:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = meter_ids(meters)
    garbage = set(rng.choice(meters, size=round(meters * garbage_share), replace=False).tolist())
    ends = [e.strftime("%Y-%m-%dT%H:%M:%SZ") for e in interval_ends(day, tz, 900)]
    slots = np.arange(len(ends))
    files, bad, data_lines = [], [], {}
    for first in range(0, meters, meters_per_file):
        chunk = list(range(first, min(first + meters_per_file, meters)))
        ordered = [m for m in chunk if m not in garbage] + [m for m in chunk if m in garbage]
        name = f"{source}_{day:%Y%m%d}_{first // meters_per_file:04d}.csv"
        lines: list[str] = []
        for m in ordered:
            values = _value(np.full(len(slots), m), slots)
            rows = [f"{ids[m]},kwh_delivered,{ends[s]},900,{values[s]:.3f},kWh," for s in slots]
            if m in garbage:
                spoiled = rng.choice(
                    len(slots), size=max(1, round(len(slots) * SPOILED_SHARE)), replace=False
                )
                for s in sorted(spoiled.tolist()):
                    kind = KINDS[int(rng.integers(len(KINDS)))]
                    rows[s] = _spoil(ids[m], ends[s], values[s], kind)
                    bad.append((name, len(lines) + s + 2, ids[m], kind))  # line 1 is the header
            lines.extend(rows)
        text = HEADER + "\n".join(lines) + "\n"
        if ordered and ordered[-1] in garbage and rng.random() < 0.5:  # a truncated transfer
            last = lines[-1]
            text = HEADER + "\n".join(lines[:-1]) + "\n" + last[: max(8, len(last) // 3)]
            line_no = len(lines) + 1
            bad = [b for b in bad if not (b[0] == name and b[1] == line_no)]
            bad.append((name, line_no, ids[ordered[-1]], "truncated"))
        path = folder / name
        path.write_text(text)
        files.append(path)
        data_lines[name] = len(lines)
    ledger = pd.DataFrame(bad, columns=["file", "line", "meter_id", "kind"])
    ledger["expect"] = np.where(ledger["kind"].isin(FLAGGED_KINDS), "flagged", "rejected")
    return Day(
        files=files,
        valid_meters=[ids[m] for m in range(meters) if m not in garbage],
        garbage_meters=[ids[m] for m in sorted(garbage)],
        bad=ledger,
        data_lines=data_lines,
    )


def _spoil(meter: str, end: str, value: float, kind: str) -> str:
    if kind == "too_few_fields":
        return f"{meter},kwh_delivered,{end},900"
    if kind == "not_a_number":
        return f"{meter},kwh_delivered,{end},900,{value:.3f}kWh,kWh,"
    if kind == "bad_timestamp":
        return f"{meter},kwh_delivered,2024-13-45T25:61:00Z,900,{value:.3f},kWh,"
    if kind == "unknown_unit":
        return f"{meter},kwh_delivered,{end},900,{value:.3f},furlongs,"
    if kind == "negative_value":
        return f"{meter},kwh_delivered,{end},900,-{5000 + value:.3f},kWh,"
    raise ValueError(f"unknown kind {kind!r}")


def master_data(meter_ids: list[str], tz: str = "America/Chicago") -> dict[str, pd.DataFrame]:
    """CIS master data (text values, as ``services.cis_sync.sync_master_data`` takes them) for
    ``meter_ids``: electric AMI meters with a quarter-hour kWh channel, one service point each."""
    sps = [f"SP-{m}" for m in meter_ids]
    return {
        "meters": pd.DataFrame(
            {
                "meter_id": meter_ids,
                "kind": "ami",
                "commodity": "electric",
                "role": "customer",
                "channels": "kwh_delivered",
                "unit": "kWh",
                "interval_seconds": "900",
                "multiplier": "1",
                "dials": "6",
            }
        ),
        "service_points": pd.DataFrame(
            {
                "service_point_id": sps,
                "commodity": "electric",
                "timezone": tz,
                "status": "active",
                "customer_class": "residential",
                "has_solar": "false",
            }
        ),
        "meter_installs": pd.DataFrame(
            {
                "meter_id": meter_ids,
                "service_point_id": sps,
                "installed_at": "2020-01-01T00:00:00Z",
                "multiplier": "1",
            }
        ),
        "accounts": pd.DataFrame(
            {"account_id": [f"A-{m}" for m in meter_ids], "service_point_id": sps, "move_in": "2020-01-01"}
        ),
    }
