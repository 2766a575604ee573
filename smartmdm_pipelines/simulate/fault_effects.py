"""Apply planned faults to the blocks of a chunk, and complete their ground truth.

One function per fault type, in two registries: ``PHYSICAL`` effects change what the meter
measured (``Block.metered``) and run before registers and zone sums; ``DATA`` effects change
only what the head-end delivers (values, rows, quality, instants) and run after. Effects loop
over faults, never over reads: each one writes a slice of a matrix.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import catalog as c
from . import theft
from .blocks import Block
from .fault_plan import Fault
from .rows import Rows
from .time_grid import iso_utc
from .writers.base import RECORD_INTERVALS, VARIANT_REDELIVERY, Delivery


@dataclass
class ChunkContext:
    """What effects can reach: the chunk's blocks, and sinks for events, re-deliveries, blocks."""

    path_for: Callable[[Delivery], str]
    blocks: list[Block]
    occupied: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # (meter, channel) -> row
    events: list[tuple[int, int, int]] = field(default_factory=list)  # (meter, epoch, event type code)
    redeliveries: list[tuple[Delivery, Rows]] = field(default_factory=list)
    new_blocks: list[Block] = field(default_factory=list)

    def blocks_of(self, meter: int) -> list[tuple[Block, int]]:
        """(block, row) for every channel of a meter."""
        out = []
        for block in self.blocks:
            i = int(np.searchsorted(block.meters, meter))
            if i < len(block.meters) and block.meters[i] == meter:
                out.append((block, i))
        return out

    def block_of(self, meter: int, channel: int) -> tuple[Block, int]:
        for block, row in self.blocks_of(meter):
            if block.channel == channel:
                return block, row
        raise KeyError((meter, channel))

    def event(self, meter: int, epoch: int, event_type: str) -> None:
        self.events.append((int(meter), int(epoch), c.EVENT_TYPES.index(event_type)))


def _r3(x: np.ndarray | float) -> np.ndarray | float:
    return np.round(x, 3)


def _typical(block: Block, row: int) -> float:
    """Mean positive level of a meter's channel: the reference for spike/negative magnitudes."""
    values = block.metered[row, max(0, block.first_col[row]) : block.last_col[row] + 1]
    return float(np.mean(values)) if len(values) else 0.0


# --- physical ----------------------------------------------------------------------------------
def zero_run_outage(f: Fault, ctx: ChunkContext) -> None:
    grid = None
    for block, row in ctx.blocks_of(f.meter):
        block.own_metered()[row, f.c0 : f.c1 + 1] = 0.0
        grid = block.grid
    outage_at = int(grid.ends[f.c0] - grid.step + f.params["offsets"][0])
    restore_at = int(grid.ends[f.c1] - f.params["offsets"][1])
    ctx.event(f.meter, outage_at, "outage")
    ctx.event(f.meter, restore_at, "restore")
    f.detail = {
        "intervals": f.c1 - f.c0 + 1,
        "outage_at": iso_utc(outage_at),
        "restore_at": iso_utc(restore_at),
    }


def tamper_drop(f: Fault, ctx: ChunkContext) -> None:
    grid = None
    for block, row in ctx.blocks_of(f.meter):
        m = block.own_metered()
        m[row, f.c0 :] = _r3(m[row, f.c0 :] * f.params["factor"])
        grid = block.grid
    at = int(grid.ends[f.c0] - grid.step + min(f.params["offset"], grid.step - 1))
    ctx.event(f.meter, at, "tamper")
    f.detail = {"factor": f.params["factor"], "drop_percent": round(100 * (1 - f.params["factor"]), 1)}


def reverse_flow(f: Fault, ctx: ChunkContext) -> None:
    block, row = ctx.block_of(f.meter, c.CH_DELIVERED)
    m = block.own_metered()
    received = np.zeros((1, block.grid.n))
    received[0, f.c0 : f.c1 + 1] = m[row, f.c0 : f.c1 + 1]
    m[row, f.c0 : f.c1 + 1] = 0.0
    ctx.new_blocks.append(
        Block(
            segment=block.segment,
            channel=c.CH_RECEIVED,
            grid=block.grid,
            meters=np.array([f.meter], dtype=np.int32),
            units=np.array([c.U_KWH], dtype=np.int8),
            clean=np.zeros((1, block.grid.n)),
            first_col=np.array([f.c0]),
            last_col=np.array([f.c1]),
            truth=False,
            metered=received,
        )
    )
    at = int(block.grid.ends[f.c0] - block.grid.step + min(f.params["offset"], block.grid.step - 1))
    ctx.event(f.meter, at, "reverse_flow")
    f.detail = {"intervals": f.c1 - f.c0 + 1, "kwh_received": float(_r3(received.sum()))}


def usage_after_move_out(f: Fault, ctx: ChunkContext) -> None:
    block, row = ctx.block_of(f.meter, f.channel)
    occupied = ctx.occupied[(f.meter, f.channel)]
    block.own_metered()[row, f.c0 :] = _r3(occupied[f.c0 :])
    f.detail["kwh_after_move_out"] = float(_r3(block.metered[row, f.c0 :].sum()))


def added_flow(f: Fault, ctx: ChunkContext) -> None:
    """water_leak / water_burst / unauthorized_use: a constant flow added to a meter's volume."""
    block, row = ctx.block_of(f.meter, c.CH_WATER)
    gallons = f.params["rate_gph"] * block.grid.step / 3600.0
    per_unit = c.GALLONS_PER_UNIT[int(block.units[row])]
    m = block.own_metered()
    m[row, f.c0 : f.c1 + 1] = _r3(m[row, f.c0 : f.c1 + 1] + gallons / per_unit)
    if f.fault_type == "water_leak" and f.params.get("metered"):
        leak_at = int(block.grid.ends[f.c0] - block.grid.step + 86400)  # continuous flow for 24 h
        if leak_at < block.grid.day_starts[-1]:
            ctx.event(f.meter, leak_at, "leak")
            f.detail["leak_event_at"] = iso_utc(leak_at)


def meter_exchange(f: Fault, ctx: ChunkContext) -> None:
    ctx.event(f.meter, f.start, "meter_exchange")


def replacement_install(meter: int, at: int, ctx: ChunkContext) -> None:
    """The new meter of an exchange reports its installation (generated with its own chunk)."""
    ctx.event(meter, at, "meter_exchange")


PHYSICAL: dict[str, Callable[[Fault, ChunkContext], None]] = {
    "zero_run_outage": zero_run_outage,
    "tamper_drop": tamper_drop,
    "reverse_flow": reverse_flow,
    "usage_after_move_out": usage_after_move_out,
    "water_leak": added_flow,
    "water_burst": added_flow,
    "unauthorized_use": added_flow,
    "meter_exchange": meter_exchange,
}


# --- data path ---------------------------------------------------------------------------------
def gap(f: Fault, ctx: ChunkContext) -> None:
    block, row = ctx.block_of(f.meter, f.channel)
    block.own_count()[row, f.c0 : f.c1 + 1] = 0
    f.detail = {"intervals": f.c1 - f.c0 + 1}


def no_read(f: Fault, ctx: ChunkContext) -> None:
    block, row = ctx.block_of(f.meter, f.channel)
    block.own_value()[row, f.c0 : f.c1 + 1] = np.nan
    block.own_quality()[row, f.c0 : f.c1 + 1] = c.Q_NO_READ
    f.detail = {"intervals": f.c1 - f.c0 + 1}


def spike(f: Fault, ctx: ChunkContext) -> None:
    block, row = ctx.block_of(f.meter, f.channel)
    clean = float(block.metered[row, f.c0])
    value = float(_r3(max(clean, _typical(block, row), 0.01) * f.params["factor"]))
    block.own_value()[row, f.c0] = value
    f.detail = {"value": value, "clean": clean, "factor": f.params["factor"]}


def negative(f: Fault, ctx: ChunkContext) -> None:
    block, row = ctx.block_of(f.meter, f.channel)
    clean = float(block.metered[row, f.c0])
    value = -max(float(_r3(max(clean, _typical(block, row)) * f.params["factor"])), 0.001)
    block.own_value()[row, f.c0] = value
    f.detail = {"value": value, "clean": clean}


def zero_run_no_outage(f: Fault, ctx: ChunkContext) -> None:
    block, row = ctx.block_of(f.meter, f.channel)
    block.own_value()[row, f.c0 : f.c1 + 1] = 0.0
    f.detail = {"intervals": f.c1 - f.c0 + 1}


def duplicate_row(f: Fault, ctx: ChunkContext) -> None:
    block, row = ctx.block_of(f.meter, f.channel)
    block.own_count()[row, f.c0] = 2
    f.detail = {"value": float(block.delivered()[row, f.c0])}


def late_redelivery(f: Fault, ctx: ChunkContext) -> None:
    block, row = ctx.block_of(f.meter, f.channel)
    actual = block.metered[row, f.c0 : f.c1 + 1].copy()
    estimate = float(_r3(actual.mean()))
    block.own_value()[row, f.c0 : f.c1 + 1] = estimate
    block.own_quality()[row, f.c0 : f.c1 + 1] = c.Q_ESTIMATED
    n = len(actual)
    rows = Rows(
        meter=np.full(n, f.meter, dtype=np.int32),
        channel=np.full(n, f.channel, dtype=np.int8),
        t=block.grid.ends[f.c0 : f.c1 + 1].astype(np.int64),
        step=np.full(n, block.grid.step, dtype=np.int32),
        value=actual,
        unit=np.full(n, block.units[row], dtype=np.int8),
        quality=np.zeros(n, dtype=np.int8),
    )
    day = int(block.grid.day_of_col[f.c1]) + f.params["delay_days"]
    label = (block.grid.start + dt.timedelta(days=day)).strftime("%Y%m%d")
    delivery = Delivery(block.segment.headend, RECORD_INTERVALS, label, VARIANT_REDELIVERY)
    ctx.redeliveries.append((delivery, rows))
    f.detail = {
        "intervals": n,
        "original_file": f.file,
        "original_quality": c.QUALITIES[c.Q_ESTIMATED],
        "original_value": estimate,
    }
    f.file = ctx.path_for(delivery)


def clock_drift(f: Fault, ctx: ChunkContext) -> None:
    block, row = ctx.block_of(f.meter, f.channel)
    shift = f.params["shift_seconds"]
    block.shifts.append((row, f.c0, f.c1, shift))
    ends = block.grid.ends
    at = int(ends[f.c1] + 30) if f.c1 < block.grid.n - 1 else int(ends[f.c1] - 30)
    ctx.event(f.meter, at, "clock_set")
    f.detail = {"intervals": f.c1 - f.c0 + 1, "shift_seconds": shift, "clock_set_at": iso_utc(at)}


DATA: dict[str, Callable[[Fault, ChunkContext], None]] = {
    "gap_short": gap,
    "gap_long": gap,
    "no_read": no_read,
    "spike": spike,
    "negative": negative,
    "zero_run_no_outage": zero_run_no_outage,
    "duplicate_row": duplicate_row,
    "late_redelivery": late_redelivery,
    "clock_drift": clock_drift,
}

# revenue-protection faults injected on request (SimulationSpec.theft_rate)
PHYSICAL.update(theft.PHYSICAL_EFFECTS)
DATA.update(theft.DATA_EFFECTS)
