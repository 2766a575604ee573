"""``generate``: write a synthetic utility (CIS, head-end files, ground truth) into a folder.

Flow: master data and the fault plan for the whole utility first (small); then the meters in
chunks of consecutive meter indices, each chunk producing its clean values, physical faults,
registers, zone sums and data faults, and appending its rows to every (head-end, day) file;
then the zone bulk meters (whose volume is the sum of their zones, complete only after all
chunks); finally re-deliveries, events, the duplicate delivery, CIS, ground truth, manifest.

Formats: each head-end writes in ``spec.format_of(head-end)``. Unless every head-end is generic
CSV, a ``writers.mixed.MixedWriter`` routes the deliveries and splits off what a format cannot
carry into generic CSV files of the same delivery; the faults' ``file`` is then re-pointed at the
file that holds their rows (``locate_faults``).

Every random draw is either made before the chunks (seeded ``numpy`` generators over the whole
population) or a hash of (seed, premise, instant), and rows are written in (meter, channel,
instant) order, so the files do not depend on the chunk size.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from . import catalog as c
from . import load_shapes, noise, registers
from .blocks import Block
from .cis_files import write_cis
from .fault_effects import DATA, PHYSICAL, ChunkContext, replacement_install
from .fault_plan import Fault, plan_faults, replacements_needed, vacancy_needed
from .inflow_zones import InflowZoneSpec, simulate_inflow_zones, write_inflow_zones
from .master_data import NO_END, Population, build_population
from .rows import Rows, concat_sorted, event_table, interval_table, register_table, truth_table
from .spec import GenerationSummary, SimulationSpec
from .time_grid import TimeGrid, build_grid, iso_utc, zone_day_cuts
from .writers import get_writer
from .writers.base import RECORD_EVENTS, RECORD_INTERVALS, RECORD_REGISTERS, Delivery, HeadEndWriter
from .writers.mixed import MixedWriter

CELL_BUDGET = 24_000_000  # (meters x 15-min intervals) per chunk: bounds memory on long windows
TRUTH_SLICE = 1_000_000
READ_TIME_STREAM = 8
MICRO = 1_000_000  # zone sums are kept in integer micro-gallons: exact, order independent


class _Run:
    def __init__(self, out_dir: Path, spec: SimulationSpec) -> None:
        self.out_dir = out_dir
        self.spec = spec
        self.headends = (c.HEADEND_ELECTRIC, c.HEADEND_SOUTH) if spec.south else (c.HEADEND_ELECTRIC,)
        self.interval_headends = self.headends + c.INTERVAL_HEADENDS[1:]
        formats = {h: spec.format_of(h) for h in (*self.interval_headends, c.HEADEND_HANDHELD)}
        self.writer: HeadEndWriter = (
            get_writer(spec.output_format, out_dir)
            if set(formats.values()) == {"generic_csv"}
            else MixedWriter(out_dir, formats, spec.output_format, spec.timezone)
        )
        self.pop: Population = build_population(spec, replacements_needed(spec), vacancy_needed(spec))
        self.faults: list[Fault] = plan_faults(spec, self.pop, self.writer.path_for)
        if isinstance(self.writer, MixedWriter):
            self.writer.watch(
                (str(self.pop.meter_id[f.meter]), c.CHANNELS[f.channel])
                for f in self.faults
                if f.meter >= 0 and f.channel >= 0
            )
        self.by_meter: dict[int, list[Fault]] = defaultdict(list)
        for fault in self.faults:
            if fault.meter >= 0:
                self.by_meter[fault.meter].append(fault)
        self.fault_meters = np.array(sorted(self.by_meter), dtype=np.int64)
        self.water_grid = self.grid(spec.timezone, 3600)
        self.zone_clean = np.zeros((self.pop.n_bulk, self.water_grid.n), dtype=np.int64)
        self.zone_metered = np.zeros_like(self.zone_clean)
        self.events: list[tuple[int, int, int]] = []
        self.redeliveries: list[tuple[Delivery, Rows]] = []
        self.rows_written: dict[Delivery, int] = defaultdict(int)
        self.truth_rows = 0
        self.truth_pending: list[Rows] = []
        self.truth: pq.ParquetWriter | None = None
        if spec.truth_values:
            (out_dir / "ground_truth").mkdir(parents=True, exist_ok=True)
            self.truth_path = out_dir / "ground_truth" / "truth_intervals.parquet"

    # --- helpers -----------------------------------------------------------------------------------
    def grid(self, tz: str, step: int) -> TimeGrid:
        return build_grid(tz, step, self.spec.start, self.spec.days, self.spec.holiday_country)

    def write(self, delivery: Delivery, rows: Rows | None) -> None:
        if rows is None:
            self.writer.open(delivery)
            return
        to_table = register_table if delivery.record == RECORD_REGISTERS else interval_table
        self.writer.write(delivery, to_table(rows, self.pop.meter_id))
        self.rows_written[delivery] += len(rows)

    def write_truth(self, rows: Rows | None, final: bool = False) -> None:
        """Buffer truth rows and write them in row groups of exactly ``TRUTH_SLICE`` rows, so
        that the Parquet file, too, does not depend on the chunk size."""
        if not self.spec.truth_values:
            return
        if rows is not None and len(rows):
            self.truth_pending.append(rows)
            self.truth_rows += len(rows)
        pending = sum(len(r) for r in self.truth_pending)
        if pending < TRUTH_SLICE and not (final and pending):
            return
        merged = concat_sorted(self.truth_pending)  # already in order: only concatenates
        full = len(merged) if final else len(merged) // TRUTH_SLICE * TRUTH_SLICE
        for lo in range(0, full, TRUTH_SLICE):
            table = truth_table(merged.take(np.arange(lo, min(lo + TRUTH_SLICE, full))), self.pop.meter_id)
            if self.truth is None:
                self.truth = pq.ParquetWriter(self.truth_path, table.schema, compression="zstd")
            self.truth.write_table(table)
        self.truth_pending = [merged.take(np.arange(full, len(merged)))] if full < len(merged) else []

    def chunk_faults(self, lo: int, hi: int) -> list[Fault]:
        meters = self.fault_meters[(self.fault_meters >= lo) & (self.fault_meters < hi)]
        return sorted((f for m in meters for f in self.by_meter[int(m)]), key=lambda f: f.fault_id)

    def open_deliveries(self) -> None:
        """Create every regular delivery up front: a day without rows is still a (header-only) file."""
        labels = [self.water_grid.day_label(d) for d in range(self.spec.days)]
        for headend in self.interval_headends:
            zone = self.spec.delivery_zone(headend)
            for label in zone_day_cuts(self.water_grid, zone)[0] if zone else labels:
                self.writer.open(Delivery(headend, RECORD_INTERVALS, label))
            for label in labels:
                self.writer.open(Delivery(headend, RECORD_EVENTS, label))
                if headend in self.headends:  # electric AMI: daily register reads
                    self.writer.open(Delivery(headend, RECORD_REGISTERS, label))
        for month in sorted({label[:6] for label in labels}):
            self.writer.open(Delivery(c.HEADEND_HANDHELD, RECORD_REGISTERS, month))

    # --- clean values ----------------------------------------------------------------------------
    def group_blocks(
        self, segment: c.Segment, grid: TimeGrid, meters: np.ndarray, ctx: ChunkContext
    ) -> list[Block]:
        """Blocks (one per channel) of meters sharing segment and grid, with clean values."""
        pop = self.pop
        sp = pop.meter_sp[meters]
        premises = load_shapes.Premises(
            key=sp.astype(np.int64),
            scale=pop.p_scale[sp],
            shift=pop.p_shift[sp],
            heat=pop.p_heat[sp],
            cool=pop.p_cool[sp],
            extra=pop.p_extra[sp],
            unit=pop.meter_unit[meters],
        )
        channels = load_shapes.occupied_load(segment.profile, grid, premises, self.spec.seed)
        for meter in self.fault_meters[np.isin(self.fault_meters, meters)]:
            for f in self.by_meter[int(meter)]:
                if f.fault_type == "usage_after_move_out":  # keep the occupied load to restore
                    row = int(np.searchsorted(meters, meter))
                    ctx.occupied[(f.meter, f.channel)] = channels[f.channel][row].copy()
        vacant_at = pop.vacant_at[sp]
        vacant = np.nonzero(vacant_at < grid.day_starts[-1])[0]
        if len(vacant):
            empty = (grid.ends - grid.step)[None, :] >= vacant_at[vacant, None]
            factor = load_shapes.VACANT_FACTOR[segment.commodity]
            for ch, values in channels.items():
                if ch != c.CH_RECEIVED:
                    values[vacant] = np.where(empty, values[vacant] * factor, values[vacant])
        first_col = np.searchsorted(grid.ends, pop.installed_at[meters], side="right")
        last_col = np.searchsorted(grid.ends, pop.removed_at[meters], side="right") - 1
        units = np.where(
            np.isin(np.array(segment.channels), [c.CH_DELIVERED, c.CH_RECEIVED]), c.U_KWH, c.U_KVARH
        )
        blocks = []
        for i, ch in enumerate(segment.channels):
            values = np.round(channels[ch], 3, out=channels[ch])
            unit = pop.meter_unit[meters] if ch in (c.CH_WATER, c.CH_GAS) else np.full(len(meters), units[i])
            blocks.append(
                Block(
                    segment,
                    ch,
                    grid,
                    meters.astype(np.int32),
                    unit.astype(np.int8),
                    values,
                    first_col,
                    last_col,
                )
            )
        return blocks

    # --- one chunk -------------------------------------------------------------------------------
    def process_chunk(self, lo: int, hi: int) -> None:
        pop = self.pop
        meters = np.arange(lo, hi)
        faults = self.chunk_faults(lo, hi)
        ctx = ChunkContext(self.writer.path_for, blocks=[])
        handheld_blocks: list[Block] = []
        seg = pop.meter_segment[meters]
        tz = pop.meter_tz(meters)
        south = pop.south(meters)
        for s, z, h in sorted(set(zip(seg.tolist(), tz.tolist(), south.tolist(), strict=True))):
            segment = c.SEGMENTS[s]
            if h:  # blocks of one head-end each: ami-south meters in blocks of their own
                segment = dataclasses.replace(segment, headend=c.HEADEND_SOUTH)
            group = meters[(seg == s) & (tz == z) & (south == h)]
            grid = self.grid(pop.timezones[z], segment.step)
            blocks = self.group_blocks(segment, grid, group, ctx)
            (ctx.blocks if segment.writes_intervals else handheld_blocks).extend(blocks)

        for f in faults:
            if f.fault_type in PHYSICAL:
                PHYSICAL[f.fault_type](f, ctx)
        for meter in meters[(meters >= pop.n_customer) & (pop.installed_at[meters] < NO_END - 1)]:
            replacement_install(int(meter), int(pop.installed_at[meter]), ctx)
        ctx.blocks.extend(ctx.new_blocks)

        self.add_to_zones(ctx.blocks)
        register_parts: dict[tuple[str, int], list[Rows]] = defaultdict(list)
        for block in ctx.blocks:
            if block.segment.code in c.ELECTRIC_AMI and block.channel == c.CH_DELIVERED and block.truth:
                reads = registers.ami_daily(block, pop, faults)
                days = block.grid.day_of_instant(reads.t)
                for d in np.unique(days):
                    register_parts[(block.segment.headend, int(d))].append(
                        reads.take(np.nonzero(days == d)[0])
                    )

        for f in faults:
            if f.fault_type in DATA:
                DATA[f.fault_type](f, ctx)

        self.emit(ctx.blocks, register_parts)
        self.emit_handheld(handheld_blocks)
        self.events.extend(ctx.events)
        self.redeliveries.extend(ctx.redeliveries)

    def add_to_zones(self, blocks: list[Block]) -> None:
        for block in blocks:
            if block.segment.code not in c.WATER_CUSTOMER:
                continue
            if block.grid is not self.water_grid:
                raise AssertionError("water customers must be on the utility's hourly grid")
            gallons = c.GALLONS_LUT[block.units][:, None]
            zones = self.pop.sp_zone[self.pop.meter_sp[block.meters]]
            active = None if block.all_active else block.active_mask()
            for layer, total in ((block.metered, self.zone_metered), (block.clean, self.zone_clean)):
                micro = np.rint(layer * gallons * MICRO).astype(np.int64)
                if active is not None:
                    micro[~active] = 0
                for z in np.unique(zones):
                    total[z] += micro[zones == z].sum(axis=0)

    def emit(self, blocks: list[Block], register_parts: dict[tuple[str, int], list[Rows]]) -> None:
        """Append the chunk's rows to every (head-end, day) file, and its truth rows."""
        for headend in self.interval_headends:
            mine = [b for b in blocks if b.segment.headend == headend]
            if not mine:
                continue
            zone = self.spec.delivery_zone(headend)
            if zone is not None:  # files cut on another zone's days (NEM12: NEM days)
                self.emit_zone_days(headend, mine, zone)
                continue
            for day in range(self.spec.days):
                label = self.water_grid.day_label(day)
                rows = concat_sorted([r for b in mine if (r := b.day_rows(day)) is not None])
                self.write(Delivery(headend, RECORD_INTERVALS, label), rows)
        for (headend, day), parts in sorted(register_parts.items()):
            if 0 <= day < self.spec.days:
                delivery = Delivery(headend, RECORD_REGISTERS, self.water_grid.day_label(day))
                self.write(delivery, concat_sorted(parts, by_time=True))
        self.write_truth(concat_sorted([r for b in blocks if (r := b.truth_rows()) is not None]))

    def emit_zone_days(self, headend: str, blocks: list[Block], zone: str) -> None:
        """Interval files of a head-end that delivers the days of ``zone``: one per such day."""
        by_label: dict[str, list[Rows]] = defaultdict(list)
        for block in blocks:
            labels, cuts = zone_day_cuts(block.grid, zone)
            for label, c0, c1 in zip(labels, cuts[:-1], cuts[1:], strict=True):
                if (rows := block.rows_between(int(c0), int(c1))) is not None:
                    by_label[label].append(rows)
        for label in sorted(by_label):
            self.write(Delivery(headend, RECORD_INTERVALS, label), concat_sorted(by_label[label]))

    def emit_handheld(self, blocks: list[Block]) -> None:
        parts: dict[str, list[Rows]] = defaultdict(list)
        for block in blocks:
            read_u = noise.uniform(
                self.spec.seed, READ_TIME_STREAM, block.meters.astype(np.int64), np.zeros(1)
            )
            for month, rows in registers.handheld(block, self.pop, read_u):
                parts[month].append(rows)
        for month, rows in sorted(parts.items()):
            self.write(
                Delivery(c.HEADEND_HANDHELD, RECORD_REGISTERS, month), concat_sorted(rows, by_time=True)
            )

    # --- zone bulk meters ------------------------------------------------------------------------
    def process_bulk(self) -> None:
        pop = self.pop
        meters = pop.bulk_meters().astype(np.int32)
        if len(meters) == 0:
            return
        grid = self.water_grid
        sp = pop.meter_sp[meters]
        customers = np.bincount(pop.sp_zone[np.isin(pop.sp_segment, c.WATER_CUSTOMER)], minlength=pop.n_bulk)
        rate = pop.p_scale[sp] * np.maximum(customers[pop.sp_zone[sp]], 1)
        losses = load_shapes.background_losses(grid, rate, sp.astype(np.int64), self.spec.seed)
        clean = np.round(self.zone_clean / MICRO + losses, 3)
        metered = np.round(self.zone_metered / MICRO + losses, 3)
        n = len(meters)
        block = Block(
            c.SEGMENTS[c.SEG_WATER_BULK],
            c.CH_WATER,
            grid,
            meters,
            pop.meter_unit[meters].astype(np.int8),
            clean,
            np.zeros(n, dtype=np.int64),
            np.full(n, grid.n - 1, dtype=np.int64),
            metered=metered,
        )
        ctx = ChunkContext(self.writer.path_for, blocks=[block])
        for f in self.chunk_faults(int(meters[0]), int(meters[-1]) + 1):
            if f.fault_type in PHYSICAL:
                PHYSICAL[f.fault_type](f, ctx)
        self.emit([block], {})
        self.events.extend(ctx.events)

    def write_inflow_zones(self) -> list[str]:
        """DMAs metered only at their inlet (``spec.inflow_zones``), beside the utility; their inlet files."""
        if not self.spec.inflow_zones:
            return []
        spec = self.spec
        sim = simulate_inflow_zones(
            InflowZoneSpec(spec.inflow_zones, spec.start, spec.days, spec.seed, spec.timezone)
        )
        write_inflow_zones(self.out_dir, sim)
        return sorted(
            str(p.relative_to(self.out_dir)) for p in (self.out_dir / "headend" / "inflow").glob("*.csv")
        )

    # --- finish ----------------------------------------------------------------------------------
    def write_redeliveries(self) -> None:
        grouped: dict[Delivery, list[Rows]] = defaultdict(list)
        for delivery, rows in self.redeliveries:
            grouped[delivery].append(rows)
        for delivery in sorted(grouped):
            self.write(delivery, concat_sorted(grouped[delivery], by_time=True))

    def write_events(self) -> int:
        pop = self.pop
        grouped: dict[Delivery, list[tuple[int, int, int]]] = defaultdict(list)
        for meter, at, event_type in self.events:
            segment = c.SEGMENTS[pop.meter_segment[meter]]
            grid = self.grid(pop.timezones[pop.meter_tz(np.array([meter]))[0]], segment.step)
            day = int(np.clip(grid.day_of_instant(at), 0, self.spec.days - 1))
            grouped[Delivery(pop.headend_of(meter), RECORD_EVENTS, grid.day_label(day))].append(
                (meter, at, event_type)
            )
        for delivery in sorted(grouped):
            e = np.array(grouped[delivery], dtype=np.int64)
            self.writer.write(delivery, event_table(e[:, 0], e[:, 1], e[:, 2], pop.meter_id))
        return len(self.events)

    def locate_faults(self, writer: MixedWriter) -> None:
        """Name the files the faults' rows actually went to (a delivery may be split into its
        format's file and a generic CSV complement, see ``writers.mixed``)."""
        for f in self.faults:
            if f.fault_type == "duplicate_file":
                source, target = f.params["source"], f.params["target"]
                f.file = writer.files_of(target).get("main", f.file)
                f.detail["original_file"] = writer.files_of(source).get("main", f.detail["original_file"])
                if len(writer.files_of(source)) > 1:  # the resend repeats every file of the delivery
                    f.detail["files"] = sorted(writer.files_of(target).values())
                    f.detail["original_files"] = sorted(writer.files_of(source).values())
                continue
            if f.meter < 0 or f.channel < 0 or f.start is None or f.end is None:
                continue
            meter, channel = str(self.pop.meter_id[f.meter]), c.CHANNELS[f.channel]
            margin = int(c.SEGMENTS[self.pop.meter_segment[f.meter]].step)
            if f.file:
                f.file = writer.locate(f.file, meter, channel, f.start, f.end, margin)
            if "original_file" in f.detail:
                f.detail["original_file"] = writer.locate(
                    f.detail["original_file"], meter, channel, f.start, f.end, margin
                )

    def write_faults(self) -> None:
        for fault in self.faults:
            registers.register_detail(fault, self.pop)
        rows = [
            {
                "fault_id": f.fault_id,
                "fault_type": f.fault_type,
                "meter_id": str(self.pop.meter_id[f.meter]) if f.meter >= 0 else "",
                "channel": c.CHANNELS[f.channel] if f.channel >= 0 else "",
                "start": iso_utc(f.start) if f.start is not None else "",
                "end": iso_utc(f.end) if f.end is not None else "",
                "file": f.file,
                "detail": json.dumps(f.detail, sort_keys=True, separators=(",", ":"), default=_json_default),
            }
            for f in self.faults
        ]
        columns = ["fault_id", "fault_type", "meter_id", "channel", "start", "end", "file", "detail"]
        (self.out_dir / "ground_truth").mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows, columns=columns).to_csv(
            self.out_dir / "ground_truth" / "faults.csv", index=False, lineterminator="\n"
        )

    def run(self) -> GenerationSummary:
        spec, pop = self.spec, self.pop
        self.open_deliveries()
        per_meter_cells = 96 * spec.days
        chunk = max(1, min(spec.chunk_meters, CELL_BUDGET // per_meter_cells))
        for lo in range(0, pop.n_regular, chunk):
            self.process_chunk(lo, min(pop.n_regular, lo + chunk))
        self.process_bulk()
        self.write_redeliveries()
        n_events = self.write_events()
        for fault in self.faults:
            if fault.fault_type == "duplicate_file":
                source, target = fault.params["source"], fault.params["target"]
                self.writer.duplicate(source, target)
                self.rows_written[target] = self.rows_written[source]
        files = self.writer.close()
        if isinstance(self.writer, MixedWriter):
            self.locate_faults(self.writer)
            file_formats = dict(sorted(self.writer.file_formats.items()))
        else:
            file_formats = dict.fromkeys(files, self.spec.output_format)
        self.write_truth(None, final=True)
        if self.truth is not None:
            self.truth.close()
        self.write_faults()
        cis_counts = write_cis(self.out_dir, pop)
        inflow_files = self.write_inflow_zones()

        kinds = [f"{s.commodity}/{s.kind}" for s in c.SEGMENTS]
        by_kind: dict[str, int] = {}
        for code, count in zip(*np.unique(pop.meter_segment, return_counts=True), strict=True):
            by_kind[kinds[code]] = by_kind.get(kinds[code], 0) + int(count)
        by_type: dict[str, int] = {}
        for f in self.faults:
            by_type[f.fault_type] = by_type.get(f.fault_type, 0) + 1
        summary = GenerationSummary(
            meters=pop.n_meters,
            meters_by_kind=dict(sorted(by_kind.items())),
            service_points=pop.n_sp,
            accounts=cis_counts["accounts"],
            zones=pop.n_bulk + spec.inflow_zones,
            interval_reads=sum(n for d, n in self.rows_written.items() if d.record == RECORD_INTERVALS),
            register_reads=sum(n for d, n in self.rows_written.items() if d.record == RECORD_REGISTERS),
            events=n_events,
            files=files + inflow_files,
            file_formats={**file_formats, **dict.fromkeys(inflow_files, "generic_csv")},
            faults=len(self.faults),
            faults_by_type=by_type,
            truth_reads=self.truth_rows,
        )
        manifest = {
            "generator": "smartmdm_pipelines.simulate",
            "spec": spec.to_dict(),
            "summary": summary.to_dict(),
        }
        (self.out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        return summary


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"not JSON serialisable: {value!r}")


def generate(out_dir: Path, spec: SimulationSpec) -> GenerationSummary:
    """Generate the synthetic utility described by ``spec`` into ``out_dir`` (created if needed).

    Writes ``cis/``, ``headend/``, ``ground_truth/`` and ``manifest.json`` (spec + summary).
    Deterministic: the same spec gives byte-identical files, whatever ``chunk_meters`` is
    (only ``manifest.json`` differs, as it records the spec).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return _Run(out_dir, spec).run()
