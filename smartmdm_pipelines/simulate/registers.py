"""Register (cumulative, dial) reads, consistent with the interval energy.

A register shows energy / multiplier ("dial units"), wraps at 10**dials and is read
- by AMI electric meters every local midnight (in the day's ``_registers`` file), and
- by hand or drive-by (manual and AMR meters) on the billing cycle's read date, in the month's
  ``handheld`` file, as whole units.

The register at the window start is placed so that no register wraps inside the window,
except for meters with a planned ``register_rollover``, placed to wrap on the planned day.
Registers follow the *metered* layer: a tamper or outage shows in them, a spike or gap does not.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from . import catalog as c
from .blocks import Block
from .fault_plan import Fault
from .master_data import Population
from .rows import Rows
from .time_grid import iso_utc


def _dial_increments(block: Block, pop: Population) -> np.ndarray:
    """Metered energy / multiplier per interval (0 outside the install period)."""
    dial = block.metered_active() / pop.multiplier[block.meters][:, None]
    for meter, change in pop.multiplier_changes.items():
        i = int(np.searchsorted(block.meters, meter))
        if i < len(block.meters) and block.meters[i] == meter:
            after = block.grid.ends > change["at"]
            dial[i, after] = block.metered[i, after] / change["new"]
    return dial


def _start_register(pop: Population, meters: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Register at the window start: above the install reading, far enough below the wrap."""
    top = 10.0 ** pop.dials[meters].astype(np.float64)
    start = pop.start_register[meters]
    room = np.maximum(top - 1.0 - start - 1.05 * total, 0.0)
    return start + np.floor(pop.register_u[meters] * room)


def _wrap(x: np.ndarray, top: np.ndarray, decimals: int) -> np.ndarray:
    v = np.round(np.mod(x, top), decimals) if decimals else np.floor(np.mod(x, top))
    return np.where(v >= top, v - top, v)


def ami_daily(block: Block, pop: Population, faults: list[Fault]) -> Rows:
    """Midnight register reads of a ``kwh_delivered`` block, for all window days, in file order."""
    grid = block.grid
    meters = block.meters
    dial = _dial_increments(block, pop)
    day_sum = np.add.reduceat(dial, grid.day_cols[:-1], axis=1)
    cum = np.zeros((len(meters), grid.days + 1))
    np.cumsum(day_sum, axis=1, out=cum[:, 1:])
    reg0 = _start_register(pop, meters, cum[:, -1])
    replacement = (meters >= pop.n_customer) & (meters < pop.n_regular)
    reg0[replacement] = pop.start_register[meters[replacement]]
    top = 10.0 ** pop.dials[meters].astype(np.float64)

    for f in faults:
        if f.fault_type != "register_rollover":
            continue
        i = int(np.searchsorted(meters, f.meter))
        if i >= len(meters) or meters[i] != f.meter:
            continue
        k = f.params["read"]
        reg0[i] = top[i] - cum[i, k - 1] - f.params["fraction"] * (cum[i, k] - cum[i, k - 1])
        running = reg0[i] + np.cumsum(dial[i])
        col = int(np.argmax(running >= top[i]))
        f.c0 = f.c1 = col
        f.start = int(grid.ends[col])
        before = float(_wrap(reg0[i] + cum[i, k - 1 : k], top[i : i + 1], 3)[0])
        after = float(_wrap(reg0[i] + cum[i, k : k + 1], top[i : i + 1], 3)[0])
        f.detail = {"dials": int(pop.dials[f.meter]), "register_before": before, "register_after": after}

    for meter, change in pop.multiplier_changes.items():
        i = int(np.searchsorted(meters, meter))
        if i < len(meters) and meters[i] == meter:
            col = int(np.searchsorted(grid.ends, change["at"], side="right"))
            change["register"] = float(_wrap(reg0[i] + dial[i, :col].sum(), top[i : i + 1], 3)[0])

    ends_of_install = pop.removed_at[meters]
    for i in np.nonzero(ends_of_install < grid.day_starts[-1])[0]:
        pop.end_registers[int(meters[i])] = float(_wrap(reg0[i] + cum[i, -1], top[i : i + 1], 3)[0])

    read_at = grid.day_starts[:-1]
    values = _wrap(reg0[:, None] + cum[:, :-1], top[:, None], 3)
    valid = (pop.installed_at[meters][:, None] < read_at[None, :]) & (
        read_at[None, :] <= ends_of_install[:, None]
    )
    r, d = np.nonzero(valid)
    n = len(r)
    return Rows(
        meter=meters[r].astype(np.int32),
        channel=np.full(n, c.CH_DELIVERED, dtype=np.int8),
        t=read_at[d].astype(np.int64),
        step=np.zeros(n, dtype=np.int32),
        value=values[r, d],
        unit=np.full(n, c.U_KWH, dtype=np.int8),
        quality=np.zeros(n, dtype=np.int8),
    )


def register_detail(f: Fault, pop: Population) -> None:
    """Complete multiplier_change / meter_exchange ground truth once the registers are known."""
    if f.fault_type == "multiplier_change":
        f.detail["register_at_change"] = pop.multiplier_changes[f.meter].get("register")
        f.detail["changed_at"] = iso_utc(f.start)
    elif f.fault_type == "meter_exchange":
        f.detail["old_end_register"] = pop.end_registers.get(f.meter)
        f.detail["exchanged_at"] = iso_utc(f.start)


def handheld(block: Block, pop: Population, read_u: np.ndarray) -> list[tuple[str, Rows]]:
    """Cycle read-date reads of manual/AMR meters: (YYYYMM of the read, rows), whole units.

    ``block`` holds the meters' hourly metered energy (not written as intervals); ``read_u``
    (per meter, U[0,1)) places the read between 08:00 and 16:00 local.
    """
    grid = block.grid
    meters = block.meters
    dial = _dial_increments(block, pop)
    running = np.cumsum(dial, axis=1)
    reg0 = _start_register(pop, meters, running[:, -1] if grid.n else np.zeros(len(meters)))
    top = 10.0 ** pop.dials[meters].astype(np.float64)
    cycles = pop.sp_cycle[pop.meter_sp[meters]]
    out: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    window = [grid.start + dt.timedelta(days=d) for d in range(grid.days)]
    for cycle in np.unique(cycles):
        rows = np.nonzero(cycles == cycle)[0]
        for date in pop.cycle_read_dates[int(cycle)]:
            if date not in window:
                continue
            day = window.index(date)
            at = grid.day_starts[day] + (8 * 3600 + np.floor(read_u[rows] * 8 * 3600)).astype(np.int64)
            col = np.searchsorted(grid.ends, at, side="right") - 1
            energy = np.where(col >= 0, running[rows, np.maximum(col, 0)], 0.0)
            value = _wrap(reg0[rows] + energy, top[rows], 0)
            out.setdefault(date.strftime("%Y%m"), []).append((meters[rows], at, value))
    result = []
    for month in sorted(out):
        meter = np.concatenate([p[0] for p in out[month]])
        at = np.concatenate([p[1] for p in out[month]])
        value = np.concatenate([p[2] for p in out[month]])
        n = len(meter)
        result.append(
            (
                month,
                Rows(
                    meter=meter.astype(np.int32),
                    channel=np.full(n, c.CH_DELIVERED, dtype=np.int8),
                    t=at.astype(np.int64),
                    step=np.zeros(n, dtype=np.int32),
                    value=value,
                    unit=np.full(n, c.U_KWH, dtype=np.int8),
                    quality=np.zeros(n, dtype=np.int8),
                ),
            )
        )
    return result
