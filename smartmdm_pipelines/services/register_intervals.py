"""Register-derived intervals against the store: where the derivation runs, and what it reruns.

The derivation (``domain/register_intervals.py``) runs inside VEE, per operating day, from the
register reads stored at that moment (docs/mapped_csv.md says why): ``load_inputs`` adds the
derived reads of the day to the raw interval reads, so they go through the rules, the expected
grid and estimation like any interval read, and every version keeps the file and line of the
register read that closed it. A register delivery asks VEE for the days between the stored reads
around it, so a late read between two reads already used re-derives the intervals it changes.

Only reads of sources whose ``csv:`` mapping says ``value_kind: register`` (and has not turned
``derive_intervals`` off) are apportioned, and only for AMI meters with an interval grid.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd

from smartmdm_pipelines.adapters.base import ParsedFile, SourceConfig
from smartmdm_pipelines.config import UtilityConfig
from smartmdm_pipelines.domain.register_intervals import (
    INTERVAL_COLUMNS,
    decrease_exceptions,
    derive_intervals,
)
from smartmdm_pipelines.domain.timeutil import day_range, local_date, local_day_bounds, operating_day
from smartmdm_pipelines.store.store import Store

NEIGHBOURS = 6
"""Reads kept on each side of the day: the pairs that reach into it and enough neighbours to tell a
bad read from a reset the same way on both days around a boundary."""
GRID_METERS = "SELECT meter_id FROM meters WHERE kind = 'ami' AND interval_seconds > 0"


def derive_sources(cfg: UtilityConfig) -> dict[str, float]:
    """Source name -> ``max_gap_hours`` of every source whose register reads are apportioned."""
    return {s.name: s.csv.max_gap_hours for s in cfg.sources if s.csv is not None and s.csv.derives}


@dataclass
class DerivedDay:
    """What the register reads add to one VEE day."""

    reads: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=INTERVAL_COLUMNS))
    exceptions: pd.DataFrame = field(default_factory=pd.DataFrame)
    last_seen: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["meter_id", "channel", "last_end"])
    )
    newest_read: pd.Timestamp | None = None
    series: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["meter_id", "channel"]))

    def added_to(
        self, reads: pd.DataFrame, registers: pd.DataFrame, last_seen: pd.DataFrame, frontier
    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.Timestamp | None]:
        """VEE's day inputs with the derived reads added: (raw reads, register reads, last interval
        end per series, the data clock).

        The registers of the derived series are left out: their intervals *are* the register
        advance, so the sum check and register scaling would compare the registers with themselves
        (and the sum check knows neither a mid-day exchange nor dials counted in litres)."""
        if len(self.reads):
            reads = pd.concat([reads, self.reads], ignore_index=True)
            last_seen = (
                pd.concat([last_seen, self.last_seen], ignore_index=True)
                .groupby(["meter_id", "channel"], as_index=False)
                .agg(last_end=("last_end", "max"))
            )
        if len(self.series) and len(registers):
            key = ["meter_id", "channel"]
            hit = registers[key].merge(self.series.assign(_derived=True), on=key, how="left")["_derived"]
            registers = registers[hit.isna().to_numpy()]
        if self.newest_read is not None:
            newest = pd.Timestamp(self.newest_read)
            frontier = newest if frontier is None else max(pd.Timestamp(frontier), newest)
        return reads, registers, last_seen, frontier


def derived_day(
    store: Store, day: dt.date, cfg: UtilityConfig, meters: pd.DataFrame, installs: pd.DataFrame
) -> DerivedDay:
    """The interval reads derived for ``day`` (raw-read columns), its ``register_decrease``
    exceptions, the last derived interval end per series from the day on (the re-collection
    window) and the newest register read seen (the data clock)."""
    sources = derive_sources(cfg)
    if not sources:
        return DerivedDay()
    tz = cfg.utility.timezone
    start, end = local_day_bounds(day, tz)
    gap = pd.Timedelta(hours=max(sources.values()))
    reads = store.read_frame(
        "SELECT meter_id, channel, read_at, value, source_unit, file_id, line, source FROM ("
        " SELECT r.meter_id, r.channel, r.read_at, r.value, r.source_unit, r.file_id, r.line, f.source,"
        " row_number() OVER (PARTITION BY r.meter_id, r.channel, r.read_at < :start ORDER BY r.read_at DESC) AS nb,"
        " row_number() OVER (PARTITION BY r.meter_id, r.channel, r.read_at > :end ORDER BY r.read_at) AS na"
        " FROM register_reads r JOIN headend_files f ON f.file_id = r.file_id"
        " WHERE r.read_day >= :d0 AND r.read_day <= :d1 AND r.read_at >= :a AND r.read_at <= :b"
        " AND r.value IS NOT NULL AND f.source IN (SELECT unnest(:sources))"
        f" AND r.meter_id IN ({GRID_METERS})) w"
        " WHERE (read_at >= :start AND read_at <= :end) OR (read_at < :start AND nb <= :k)"
        " OR (read_at > :end AND na <= :k)",
        {
            "start": start,
            "end": end,
            "a": start - gap,
            "b": end + gap,
            "d0": day - dt.timedelta(days=gap.days + 2),
            "d1": day + dt.timedelta(days=gap.days + 2),
            "sources": sorted(sources),
            "k": NEIGHBOURS,
        },
    )
    if reads.empty:
        return DerivedDay()
    reads["read_at"] = pd.to_datetime(reads["read_at"], utc=True)
    reads["max_gap_hours"] = reads["source"].map(sources)
    grid = meters[meters["kind"].eq("ami")]
    derivation = derive_intervals(reads, grid, installs, tz)
    iv = derivation.intervals
    in_day = (operating_day(iv["interval_end"], iv["interval_seconds"], tz) == pd.Timestamp(day)).to_numpy()
    later = iv[iv["interval_end"] > start]
    last_seen = later.groupby(["meter_id", "channel"], as_index=False).agg(last_end=("interval_end", "max"))
    return DerivedDay(
        reads=iv[in_day].reset_index(drop=True),
        exceptions=decrease_exceptions(derivation.decreases, day, tz),
        last_seen=last_seen,
        newest_read=reads["read_at"].max(),
        series=reads[["meter_id", "channel"]].drop_duplicates().reset_index(drop=True),
    )


def register_interval_days(
    store: Store, parsed: ParsedFile, source: SourceConfig, cfg: UtilityConfig, file_id: int
) -> list[str]:
    """The operating days VEE must (re)run after a register delivery of a deriving source: from the
    stored read before the file's first read to the stored read after its last (each within the
    longest ``max_gap_hours``), for the AMI meters with an interval grid. ISO dates."""
    regs = parsed.registers
    sources = derive_sources(cfg)
    if source.csv is None or source.name not in sources or regs.empty:
        return []
    meters = sorted(regs["meter_id"].unique().tolist())
    known = store.read_frame(f"{GRID_METERS} AND meter_id IN (SELECT unnest(:m))", {"m": meters})
    regs = regs[regs["meter_id"].isin(known["meter_id"])]
    if regs.empty:
        return []
    tz = cfg.utility.timezone
    first, last = regs["read_at"].min(), regs["read_at"].max()
    gap = pd.Timedelta(hours=max(sources.values()))
    around = store.read_frame(
        "SELECT max(CASE WHEN r.read_at < :first THEN r.read_at END) AS prev_at,"
        " min(CASE WHEN r.read_at > :last THEN r.read_at END) AS next_at"
        " FROM register_reads r JOIN headend_files f ON f.file_id = r.file_id"
        " WHERE r.file_id <> :file AND f.source IN (SELECT unnest(:sources))"
        " AND r.meter_id IN (SELECT unnest(:m)) AND r.read_day >= :d0 AND r.read_day <= :d1"
        " AND r.read_at >= :a AND r.read_at <= :b AND (r.read_at < :first OR r.read_at > :last)",
        {
            "first": first,
            "last": last,
            "file": file_id,
            "sources": sorted(sources),
            "m": sorted(regs["meter_id"].unique().tolist()),
            "d0": (first - gap).date() - dt.timedelta(days=1),
            "d1": (last + gap).date() + dt.timedelta(days=1),
            "a": first - gap,
            "b": last + gap,
        },
    )
    bounds = pd.Series([first, last, *around.iloc[0].tolist()]).dropna()
    bounds = pd.to_datetime(bounds, utc=True)
    lo, hi = local_date(pd.Series([bounds.min(), bounds.max()]), tz).dt.date
    return [d.isoformat() for d in day_range(lo, hi)]
