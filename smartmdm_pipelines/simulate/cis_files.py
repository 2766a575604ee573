"""Write the CIS master-data CSVs (``out_dir/cis/*.csv``) from the population.

Written after the reads, because meter exchanges and multiplier changes put register values
(known only once the reads exist) into ``meter_installs.csv``. Plain pandas: these files have
one row per meter, not per read, and customer names may need quoting.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from . import catalog as c
from .master_data import NO_END, Population


def _iso_instants(epochs: np.ndarray) -> np.ndarray:
    """Epoch seconds -> ISO ``Z`` strings; NO_END -> empty."""
    epochs = np.asarray(epochs, dtype=np.int64)
    text = np.char.add(
        np.datetime_as_string(np.minimum(epochs, 2**40).astype("datetime64[s]"), unit="s"), "Z"
    ).astype(object)
    text[epochs >= NO_END - 1] = ""
    return text


def _dates(values: np.ndarray) -> np.ndarray:
    text = np.datetime_as_string(values, unit="D").astype(object)
    text[np.isnat(values)] = ""
    return text


def _write(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path, index=False, lineterminator="\n")


def write_cis(out_dir: Path, pop: Population) -> dict[str, int]:
    """Write the six CIS files; return row counts by file stem."""
    cis = Path(out_dir) / "cis"
    cis.mkdir(parents=True, exist_ok=True)
    seg = pop.meter_segment
    segments = c.SEGMENTS
    installed = pop.installed_at < NO_END - 1

    current_multiplier = pop.multiplier.copy()
    for meter, change in pop.multiplier_changes.items():
        current_multiplier[meter] = change["new"]
    step = np.array([s.step if s.writes_intervals else 0 for s in segments])[seg]
    meters = pd.DataFrame(
        {
            "meter_id": pop.meter_id,
            "kind": np.array([s.kind for s in segments])[seg],
            "commodity": np.array([s.commodity for s in segments])[seg],
            "role": np.where(seg == c.SEG_WATER_BULK, "zone_bulk", "customer"),
            "channels": np.array([";".join(c.CHANNELS[ch] for ch in s.channels) for s in segments])[seg],
            "unit": np.array(c.UNITS)[pop.meter_unit],
            "interval_seconds": pd.array(np.where(step > 0, step, 0), dtype="Int64"),
            "multiplier": current_multiplier,
            "dials": pop.dials.astype(int),
            "headend": np.array([s.headend for s in segments])[seg],
        }
    )
    meters.loc[step == 0, "interval_seconds"] = pd.NA
    _write(meters, cis / "meters.csv")

    tz_names = np.array(pop.timezones)
    commodity_of = np.array([s.commodity for s in segments] + ["electric"])
    zone_ids = np.append(pop.zone_id, "").astype(object)
    service_points = pd.DataFrame(
        {
            "service_point_id": pop.sp_id,
            "commodity": commodity_of[pop.sp_segment],
            "timezone": tz_names[pop.sp_tz],
            "rate_code": pop.sp_rate,
            "billing_cycle": np.char.add("C", np.char.zfill((pop.sp_cycle + 1).astype(str), 2)),
            "route": pop.sp_route,
            "zone_id": zone_ids[pop.sp_zone],
            "customer_class": pop.sp_class,
            "has_solar": np.where(pop.sp_solar, "true", "false"),
            "status": pop.sp_status,
        }
    )
    _write(service_points, cis / "service_points.csv")

    accounts = pd.DataFrame(
        {
            "account_id": pop.acct_id,
            "service_point_id": pop.sp_id[pop.acct_sp],
            "customer_name": pop.acct_name,
            "move_in": _dates(pop.acct_move_in),
            "move_out": _dates(pop.acct_move_out),
        }
    )
    _write(accounts, cis / "accounts.csv")

    idx = np.nonzero(installed)[0]
    end_register = np.full(pop.n_meters, np.nan)
    for meter, value in pop.end_registers.items():
        end_register[meter] = np.nan if value is None else value
    installs = pd.DataFrame(
        {
            "meter_id": pop.meter_id[idx],
            "service_point_id": pop.sp_id[pop.meter_sp[idx]],
            "installed_at": _iso_instants(pop.installed_at[idx]),
            "removed_at": _iso_instants(pop.removed_at[idx]),
            "multiplier": pop.multiplier[idx],
            "start_register": pop.start_register[idx],
            "end_register": end_register[idx],
            "_at": pop.installed_at[idx],
        }
    )
    extra = []
    for meter, change in sorted(pop.multiplier_changes.items()):
        at = _iso_instants(np.array([change["at"]]))[0]
        register = change.get("register")
        row = installs.index[installs["meter_id"] == pop.meter_id[meter]][0]
        installs.loc[row, "removed_at"] = at
        installs.loc[row, "end_register"] = register
        extra.append(
            {
                "meter_id": pop.meter_id[meter],
                "service_point_id": pop.sp_id[pop.meter_sp[meter]],
                "installed_at": at,
                "removed_at": "",
                "multiplier": change["new"],
                "start_register": register,
                "end_register": np.nan,
                "_at": change["at"],
            }
        )
    if extra:
        installs = pd.concat([installs, pd.DataFrame(extra)], ignore_index=True)
    installs = installs.sort_values(["meter_id", "_at"], kind="stable").drop(columns="_at")
    _write(installs, cis / "meter_installs.csv")

    rows = []
    start, end = pop.spec.start, pop.spec.end
    for k, dates in enumerate(pop.cycle_read_dates):
        for prev, cur in zip(dates, dates[1:], strict=False):
            period_start = prev + dt.timedelta(days=1)
            if period_start < end and cur >= start:
                rows.append(
                    {
                        "cycle_id": f"C{k + 1:02d}",
                        "period_start": period_start.isoformat(),
                        "period_end": cur.isoformat(),
                        "read_date": cur.isoformat(),
                    }
                )
    cycles = pd.DataFrame(rows, columns=["cycle_id", "period_start", "period_end", "read_date"])
    cycles = cycles.sort_values(["cycle_id", "period_start"], kind="stable")
    _write(cycles, cis / "billing_cycles.csv")

    zones = pd.DataFrame(
        {
            "zone_id": pop.zone_id,
            "name": pop.zone_name,
            "timezone": pop.spec.timezone,
            "bulk_meter_ids": pop.meter_id[pop.zone_bulk_meter],
            "parent_zone_id": "",
        }
    )
    _write(zones, cis / "zones.csv")
    return {
        "meters": len(meters),
        "service_points": len(service_points),
        "accounts": len(accounts),
        "meter_installs": len(installs),
        "billing_cycles": len(cycles),
        "zones": len(zones),
    }
