"""Extra revenue-protection faults, injected only when ``SimulationSpec.theft_rate`` asks for them.

* ``meter_bypass`` (electric AMI, residential and commercial): from a point in the window on, part
  of the premise's load goes around the meter (a jumper, a tapped service). The meter, its
  intervals and its registers agree on the smaller quantity; there is no event. Ground truth: the
  share bypassed; the clean (billable) values are in ``truth_intervals.parquet``.
* ``meter_stopped`` (water AMI, residential): the register stops (a magnet, a jammed or reversed
  meter): the delivered intervals are zero from then on while the water still flows, so the
  zone's bulk meter, which sums what customers really use, keeps seeing it.

Planned after every other fault with a random stream of its own, on meters that carry no other
fault, so every other fault and file is the same as without the option (the fault ids that sort
after the new ones shift). ``theft_rate`` is the share of meters per kind (at least one each).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from . import catalog as c

if TYPE_CHECKING:
    from .fault_effects import ChunkContext
    from .fault_plan import Fault, _Planner

THEFT_TYPES = ("meter_bypass", "meter_stopped")
SEGMENTS = {"meter_bypass": (c.SEG_ELEC_RES, c.SEG_ELEC_COM), "meter_stopped": (c.SEG_WATER_RES,)}
STREAM = 16


def plan_theft(planner: _Planner) -> None:
    """Add the theft faults to ``planner`` (its ``used`` mask keeps one fault per meter)."""
    spec, pop = planner.spec, planner.pop
    rng = np.random.default_rng([spec.seed, STREAM])
    for fault_type in THEFT_TYPES:
        count = max(1, round(spec.theft_rate * spec.meters))
        mask = np.isin(pop.meter_segment, SEGMENTS[fault_type]) & ~planner.used
        candidates = np.nonzero(mask)[0]
        pick = np.sort(rng.choice(candidates, size=min(count, len(candidates)), replace=False))
        planner.used[pick] = True
        for meter in pick:
            grid = planner.grid(meter)
            # leave history on both sides: the theft starts between 25 % and 65 % of the window
            c0 = int(rng.integers(grid.n // 4, max(grid.n // 4 + 1, 13 * grid.n // 20)))
            if fault_type == "meter_bypass":
                share = float(np.round(rng.uniform(0.4, 0.8), 3))
                planner.add(fault_type, meter, c0, grid.n - 1, bypassed_share=share)
            else:
                planner.add(fault_type, meter, c0, grid.n - 1)


def meter_bypass(f: Fault, ctx: ChunkContext) -> None:
    kept = 1.0 - f.params["bypassed_share"]
    bypassed = 0.0
    for block, row in ctx.blocks_of(f.meter):
        if block.channel != c.CH_DELIVERED:
            continue
        m = block.own_metered()
        before = m[row, f.c0 :].copy()
        m[row, f.c0 :] = np.round(before * kept, 3)
        bypassed += float(before.sum() - m[row, f.c0 :].sum())
    f.detail = {"bypassed_share": f.params["bypassed_share"], "kwh_bypassed": round(bypassed, 3)}


def meter_stopped(f: Fault, ctx: ChunkContext) -> None:
    block, row = ctx.block_of(f.meter, c.CH_WATER)
    unmetered = float(block.metered[row, f.c0 :].sum())
    block.own_value()[row, f.c0 :] = 0.0
    f.detail = {"unmetered": round(unmetered, 3), "unit": c.UNITS[int(block.units[row])]}


PHYSICAL_EFFECTS: dict[str, Callable[[Fault, ChunkContext], None]] = {"meter_bypass": meter_bypass}
DATA_EFFECTS: dict[str, Callable[[Fault, ChunkContext], None]] = {"meter_stopped": meter_stopped}
