"""Which faults to inject, where and when: decided up front for the whole utility from the seed.

The plan picks distinct meters per fault (a meter carries at most one fault, so ground truth is
unambiguous), positions as column ranges on the meter's own interval grid, and magnitudes.
Counts scale with the number of meters (about 1.7 % of meters affected), with at least one
fault of every type that the window makes possible. Values that only exist once the reads are
generated (a spike's value, a register before a rollover) are filled into ``detail`` by
``fault_effects`` while the meter's chunk is generated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import catalog as c
from .master_data import NO_END, Population
from .spec import SimulationSpec
from .theft import THEFT_TYPES, plan_theft
from .time_grid import DAY, TimeGrid, build_grid, dst_days, zone_day_label
from .writers.base import RECORD_INTERVALS, RECORD_REGISTERS, VARIANT_RESEND, Delivery

FAULT_TYPES = (
    "gap_short",
    "gap_long",
    "no_read",
    "spike",
    "zero_run_outage",
    "zero_run_no_outage",
    "negative",
    "duplicate_row",
    "late_redelivery",
    "duplicate_file",
    "clock_drift",
    "dst_day",
    "meter_exchange",
    "register_rollover",
    "multiplier_change",
    "tamper_drop",
    "reverse_flow",
    "usage_after_move_out",
    "water_leak",
    "water_burst",
    "unauthorized_use",
)

# Faults per meter of the utility (each at least 1 when possible).
RATES = {
    "gap_short": 0.003,
    "gap_long": 0.0008,
    "no_read": 0.0015,
    "spike": 0.002,
    "zero_run_outage": 0.0015,
    "zero_run_no_outage": 0.0008,
    "negative": 0.0008,
    "duplicate_row": 0.001,
    "late_redelivery": 0.001,
    "clock_drift": 0.0008,
    "meter_exchange": 0.0005,
    "register_rollover": 0.0005,
    "multiplier_change": 0.0003,
    "tamper_drop": 0.0005,
    "reverse_flow": 0.0005,
    "usage_after_move_out": 0.0005,
    "water_leak": 0.001,
}
ZONE_FAULTS_PER_ZONE_WEEK = {"water_burst": 0.5, "unauthorized_use": 0.5}

# Faults that change what the meter measures (applied before registers and zone sums) versus
# faults of the data path only (the meter measured correctly, the delivered data is wrong).
PHYSICAL = frozenset(
    {
        "zero_run_outage",
        "tamper_drop",
        "reverse_flow",
        "usage_after_move_out",
        "water_leak",
        "water_burst",
        "unauthorized_use",
        "meter_bypass",
    }
)
# Data-path faults and the segments they may hit.
DATA_FAULT_SEGMENTS = {
    "gap_short": c.ELECTRIC_AMI + c.WATER_CUSTOMER,  # 1-8 daily intervals would not be "short"
    "gap_long": c.INTERVAL_CUSTOMER,
    "no_read": c.INTERVAL_CUSTOMER,
    "spike": c.INTERVAL_CUSTOMER,
    "zero_run_no_outage": c.ELECTRIC_AMI,
    "negative": c.INTERVAL_CUSTOMER,
    "duplicate_row": c.INTERVAL_CUSTOMER,
    "late_redelivery": c.INTERVAL_CUSTOMER,
    "clock_drift": c.INTERVAL_CUSTOMER,
}


@dataclass
class Fault:
    """One injected fault: plan (meter, channel, column range, params) and ground truth."""

    fault_type: str
    meter: int = -1
    channel: int = -1
    c0: int = -1  # first affected column of the meter's grid
    c1: int = -1  # last affected column (inclusive)
    params: dict[str, Any] = field(default_factory=dict)
    start: int | None = None  # epoch seconds
    end: int | None = None
    file: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    fault_id: str = ""


def meter_count(fault_type: str, meters: int) -> int:
    return max(1, round(RATES[fault_type] * meters))


def vacancy_needed(spec: SimulationSpec) -> int:
    """Residential electric premises to vacate in the window (for usage_after_move_out + 1)."""
    return (meter_count("usage_after_move_out", spec.meters) if spec.faults else 0) + 1


def replacements_needed(spec: SimulationSpec) -> int:
    return meter_count("meter_exchange", spec.meters) if spec.faults else 0


class _Planner:
    def __init__(self, spec: SimulationSpec, pop: Population, path_for: Callable[[Delivery], str]) -> None:
        self.spec = spec
        self.pop = pop
        self.path_for = path_for
        self.rng = np.random.default_rng([spec.seed, 2])
        self.faults: list[Fault] = []
        used = np.zeros(pop.n_meters, dtype=bool)
        used[pop.n_customer :] = True  # replacement and bulk meters
        moved = np.zeros(pop.n_sp, dtype=bool)
        moved[pop.acct_sp[~np.isnat(pop.acct_move_out)]] = True
        used[: pop.n_customer] |= moved[pop.meter_sp[: pop.n_customer]]
        self.used = used

    # --- helpers ---------------------------------------------------------------------------
    def grid(self, meter: int) -> TimeGrid:
        seg = c.SEGMENTS[self.pop.meter_segment[meter]]
        tz = self.pop.timezones[self.pop.sp_tz[self.pop.meter_sp[meter]]]
        return build_grid(tz, seg.step, self.spec.start, self.spec.days, self.spec.holiday_country)

    def take(self, segments: tuple[int, ...], n: int, extra: np.ndarray | None = None) -> np.ndarray:
        """Up to n unused meters of the segments (sorted), marked used."""
        mask = np.isin(self.pop.meter_segment, segments) & ~self.used
        if extra is not None:
            mask &= extra
        candidates = np.nonzero(mask)[0]
        pick = np.sort(self.rng.choice(candidates, size=min(n, len(candidates)), replace=False))
        self.used[pick] = True
        return pick

    def run(self, grid: TimeGrid, lo: int, hi: int, keep_one: bool = True) -> tuple[int, int]:
        """A run of lo..hi intervals at a random position: (c0, c1). Clipped to the grid, and
        with ``keep_one`` to leave at least one interval of the meter outside the run."""
        limit = max(1, grid.n - 1) if keep_one else grid.n
        length = int(min(limit, self.rng.integers(lo, hi + 1)))
        c0 = int(self.rng.integers(0, grid.n - length + 1))
        return c0, c0 + length - 1

    def midday_col(self, grid: TimeGrid) -> int:
        day = int(self.rng.integers(0, self.spec.days))
        a, b = grid.day_cols[day], grid.day_cols[day + 1]
        return int(a + (b - a) * self.rng.uniform(0.38, 0.62))

    def file_of(self, meter: int, col: int, record: str = RECORD_INTERVALS) -> str:
        grid = self.grid(meter)
        headend = self.pop.headend_of(meter)
        zone = self.spec.delivery_zone(headend) if record == RECORD_INTERVALS else None
        label = zone_day_label(grid, col, zone) if zone else grid.day_label(int(grid.day_of_col[col]))
        return self.path_for(Delivery(headend, record, label))

    def add(
        self, fault_type: str, meter: int, c0: int, c1: int, channel: int | None = None, **params: Any
    ) -> Fault:
        grid = self.grid(meter)
        seg = c.SEGMENTS[self.pop.meter_segment[meter]]
        fault = Fault(
            fault_type,
            meter=int(meter),
            channel=seg.channels[0] if channel is None else channel,
            c0=c0,
            c1=c1,
            params=params,
            start=int(grid.ends[c0]),
            end=int(grid.ends[c1]),
            file=self.file_of(meter, c0),
        )
        self.faults.append(fault)
        return fault

    # --- fault types ------------------------------------------------------------------------
    def data_faults(self) -> None:
        run_lengths = {
            "gap_short": (1, 8),
            "no_read": (1, 12),
            "spike": (1, 1),
            "zero_run_no_outage": (8, 32),
            "negative": (1, 1),
            "duplicate_row": (1, 1),
            "late_redelivery": (4, 24),
            "clock_drift": (4, 48),
        }
        for fault_type, segments in DATA_FAULT_SEGMENTS.items():
            for meter in self.take(segments, meter_count(fault_type, self.spec.meters)):
                grid = self.grid(meter)
                if fault_type == "gap_long":
                    c0, c1 = self.run(grid, grid.per_day, 2 * grid.per_day, keep_one=False)
                else:
                    c0, c1 = self.run(grid, *run_lengths[fault_type])
                params: dict[str, Any] = {}
                if fault_type == "spike":
                    params["factor"] = float(np.round(self.rng.uniform(15.0, 60.0), 2))
                elif fault_type == "negative":
                    params["factor"] = float(np.round(self.rng.uniform(0.5, 3.0), 2))
                elif fault_type == "clock_drift":
                    limit = min(grid.step // 2 - 1, 420)
                    params["shift_seconds"] = int(self.rng.integers(7, limit + 1)) * int(
                        self.rng.choice([-1, 1])
                    )
                elif fault_type == "late_redelivery":
                    params["delay_days"] = int(self.rng.integers(1, 4))
                self.add(fault_type, meter, c0, c1, **params)

    def outages(self) -> None:
        for meter in self.take(c.ELECTRIC_AMI, meter_count("zero_run_outage", self.spec.meters)):
            c0, c1 = self.run(self.grid(meter), 2, 16)
            self.add("zero_run_outage", meter, c0, c1, offsets=[int(x) for x in self.rng.integers(1, 60, 2)])

    def tampers(self) -> None:
        for meter in self.take(
            (c.SEG_ELEC_RES, c.SEG_ELEC_COM), meter_count("tamper_drop", self.spec.meters)
        ):
            grid = self.grid(meter)
            c0 = int(self.rng.integers(grid.n // 10, max(grid.n // 10 + 1, 7 * grid.n // 10)))
            factor = float(np.round(self.rng.uniform(0.1, 0.4), 3))
            self.add(
                "tamper_drop", meter, c0, grid.n - 1, factor=factor, offset=int(self.rng.integers(1, 600))
            )

    def reverse_flows(self) -> None:
        for meter in self.take(
            (c.SEG_ELEC_RES, c.SEG_ELEC_COM), meter_count("reverse_flow", self.spec.meters)
        ):
            c0, c1 = self.run(self.grid(meter), 4, 24)
            self.add(
                "reverse_flow", meter, c0, c1, channel=c.CH_RECEIVED, offset=int(self.rng.integers(1, 600))
            )

    def meter_exchanges(self) -> None:
        pop = self.pop
        replacements = np.arange(pop.n_customer, pop.n_customer + pop.n_replacement)
        olds = self.take((c.SEG_ELEC_RES,), len(replacements))
        for old, new in zip(olds, replacements, strict=False):
            grid = self.grid(old)
            col = self.midday_col(grid)
            at = int(grid.ends[col])
            pop.meter_sp[new] = pop.meter_sp[old]
            pop.removed_at[old] = at
            pop.installed_at[new] = at
            pop.multiplier[new] = pop.multiplier[old]
            f = self.add("meter_exchange", old, col, col, new_meter=int(new))
            f.detail = {
                "old_meter_id": str(pop.meter_id[old]),
                "new_meter_id": str(pop.meter_id[new]),
                "service_point_id": str(pop.sp_id[pop.meter_sp[old]]),
                "new_start_register": float(pop.start_register[new]),
            }
        # replacement meters that found no meter to replace stay uninstalled (never, in practice)
        for new in replacements[len(olds) :]:
            pop.meter_sp[new] = pop.meter_sp[olds[0]] if len(olds) else 0
            pop.installed_at[new] = NO_END - 1

    def multiplier_changes(self) -> None:
        ct = self.pop.multiplier > 1.0
        for meter in self.take(
            (c.SEG_ELEC_COM,), meter_count("multiplier_change", self.spec.meters), extra=ct
        ):
            grid = self.grid(meter)
            col = self.midday_col(grid)
            old = float(self.pop.multiplier[meter])
            new = 80.0 if old == 40.0 else 40.0
            f = self.add("multiplier_change", meter, col, col, old_multiplier=old, new_multiplier=new)
            day = int(grid.day_of_col[col]) + 1
            f.file = (
                self.path_for(Delivery(self.pop.headend_of(meter), RECORD_REGISTERS, grid.day_label(day)))
                if day < self.spec.days
                else ""
            )
            f.detail = {"old_multiplier": old, "new_multiplier": new}
            self.pop.multiplier_changes[int(meter)] = {"at": int(grid.ends[col]), "old": old, "new": new}

    def rollovers(self) -> None:
        if self.spec.days < 2:
            return
        for meter in self.take(c.ELECTRIC_AMI, meter_count("register_rollover", self.spec.meters)):
            grid = self.grid(meter)
            read = int(self.rng.integers(1, self.spec.days))  # the first read showing the wrapped register
            f = self.add(
                "register_rollover",
                meter,
                int(grid.day_cols[read - 1]),
                int(grid.day_cols[read]) - 1,
                read=read,
                fraction=float(self.rng.uniform(0.2, 0.8)),
            )
            f.end = int(grid.day_starts[read])
            f.file = self.path_for(
                Delivery(self.pop.headend_of(meter), RECORD_REGISTERS, grid.day_label(read))
            )

    def moves(self) -> None:
        if self.spec.days < 2:
            return
        pop = self.pop
        vacant_meter = np.zeros(pop.n_meters, dtype=bool)
        vacant_meter[: pop.n_customer] = pop.vacant_at[pop.meter_sp[: pop.n_customer]] < NO_END
        self.used[vacant_meter] = False
        count = meter_count("usage_after_move_out", self.spec.meters)
        for meter in self.take((c.SEG_ELEC_RES,), count, extra=vacant_meter):
            grid = self.grid(meter)
            sp = pop.meter_sp[meter]
            c0 = int(np.searchsorted(grid.ends - grid.step, pop.vacant_at[sp], side="left"))
            f = self.add("usage_after_move_out", meter, c0, grid.n - 1)
            accounts = np.nonzero(pop.acct_sp == sp)[0]
            last = accounts[-1]
            f.detail = {
                "account_id": str(pop.acct_id[last]),
                "service_point_id": str(pop.sp_id[sp]),
                "move_out": str(pop.acct_move_out[last]),
            }
        self.used[vacant_meter] = True

    def water(self) -> None:
        pop = self.pop
        count = meter_count("water_leak", self.spec.meters)
        unmetered = self.rng.random(count) < 0.35
        unmetered[0] = False
        customers = self.take((c.SEG_WATER_RES,), int((~unmetered).sum()))
        for meter in customers:
            grid = self.grid(meter)
            c0 = int(self.rng.integers(0, max(1, int(grid.n * 0.8))))
            rate = float(np.round(self.rng.uniform(5.0, 60.0), 1))
            zone = int(pop.sp_zone[pop.meter_sp[meter]])
            f = self.add("water_leak", meter, c0, grid.n - 1, rate_gph=rate, metered=True)
            f.detail = {"rate_gph": rate, "zone_id": str(pop.zone_id[zone]), "metered": True}
        for _ in range(int(unmetered.sum())):
            zone = int(self.rng.integers(0, pop.n_bulk))
            bulk = int(pop.zone_bulk_meter[zone])
            grid = self.grid(bulk)
            c0 = int(self.rng.integers(0, max(1, int(grid.n * 0.8))))
            rate = float(np.round(self.rng.uniform(30.0, 300.0), 1))
            f = self.add("water_leak", bulk, c0, grid.n - 1, rate_gph=rate, metered=False)
            f.detail = {"rate_gph": rate, "zone_id": str(pop.zone_id[zone]), "metered": False}
        weeks = self.spec.days / 7.0
        for fault_type, per_zone_week in ZONE_FAULTS_PER_ZONE_WEEK.items():
            count = max(1, round(per_zone_week * pop.n_bulk * weeks))
            for _ in range(count):
                zone = int(self.rng.integers(0, pop.n_bulk))
                bulk = int(pop.zone_bulk_meter[zone])
                grid = self.grid(bulk)
                if fault_type == "water_burst":
                    c0, c1 = self.run(grid, 2, 12)
                    rate = float(np.round(self.rng.uniform(1500.0, 12000.0), 1))
                else:  # unauthorized_use: a few daytime hours (hydrant, bypass)
                    day = int(self.rng.integers(0, self.spec.days))
                    c0 = int(grid.day_cols[day] + self.rng.integers(8, 17) * 3600 // grid.step)
                    c0 = min(c0, grid.n - 1)
                    c1 = int(min(grid.n - 1, c0 + self.rng.integers(0, 4)))
                    rate = float(np.round(self.rng.uniform(200.0, 1200.0), 1))
                f = self.add(fault_type, bulk, c0, c1, rate_gph=rate)
                f.detail = {"rate_gph": rate, "zone_id": str(pop.zone_id[zone])}

    def duplicate_file(self) -> None:
        day = int(self.rng.integers(0, self.spec.days))
        grid = build_grid(
            self.spec.timezone, 3600, self.spec.start, self.spec.days, self.spec.holiday_country
        )
        label = grid.day_label(day)
        source = Delivery(c.HEADEND_WATER, RECORD_INTERVALS, label)
        target = Delivery(c.HEADEND_WATER, RECORD_INTERVALS, label, VARIANT_RESEND)
        f = Fault(
            "duplicate_file",
            start=int(grid.ends[grid.day_cols[day]]),
            end=int(grid.ends[grid.day_cols[day + 1] - 1]),
            file=self.path_for(target),
            params={"source": source, "target": target},
            detail={"original_file": self.path_for(source)},
        )
        self.faults.append(f)

    def dst(self) -> None:
        used_tz = sorted(set(self.pop.sp_tz[self.pop.sp_segment >= 0].tolist()))
        for tz_index in used_tz:
            tz = self.pop.timezones[tz_index]
            grid = build_grid(tz, 900, self.spec.start, self.spec.days, self.spec.holiday_country)
            for day, length in dst_days(tz, self.spec.start, self.spec.days):
                self.faults.append(
                    Fault(
                        "dst_day",
                        start=int(grid.day_starts[day]),
                        end=int(grid.day_starts[day + 1]),
                        detail={
                            "timezone": tz,
                            "local_date": (self.spec.start + dt.timedelta(days=day)).isoformat(),
                            "transition": "spring_forward" if length < DAY else "fall_back",
                            "day_seconds": length,
                            "intervals_15min": length // 900,
                        },
                    )
                )


def plan_faults(spec: SimulationSpec, pop: Population, path_for: Callable[[Delivery], str]) -> list[Fault]:
    """The full fault plan (and its master-data changes: exchanges, multiplier changes).

    ``dst_day`` rows are listed even when ``spec.faults`` is false: they are facts of the
    calendar, not injected.
    """
    planner = _Planner(spec, pop, path_for)
    if spec.faults:
        planner.meter_exchanges()
        planner.moves()
        planner.multiplier_changes()
        planner.rollovers()
        planner.outages()
        planner.tampers()
        planner.reverse_flows()
        planner.water()
        planner.data_faults()
        planner.duplicate_file()
        if spec.theft_rate:
            plan_theft(planner)
    planner.dst()
    order = {t: i for i, t in enumerate(FAULT_TYPES + THEFT_TYPES)}  # theft: only with theft_rate
    faults = sorted(planner.faults, key=lambda f: (order[f.fault_type], f.meter, f.c0, f.start or 0))
    for i, fault in enumerate(faults, start=1):
        fault.fault_id = f"F{i:06d}"
    return faults
