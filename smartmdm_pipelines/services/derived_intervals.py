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

NEIGHBOURS = 3
"""Reads kept on each side of the day: the pairs that reach into it and enough neighbours to tell a
bad read from a reset the same way on both days around a boundary."""
# One table, arrays as parameters: no join whose plan depends on fresh statistics (right after a bulk
# load PostgreSQL estimates a handful of rows and loops over the table once per meter).
COLUMNS = "r.meter_id, r.channel, r.read_at, r.value, r.source_unit, r.file_id, r.line"


def _reads(lo: str, hi: str) -> str:
    """FROM and WHERE of the deriving sources' register reads (``:files``) with a value, read between
    the instants ``:lo`` and ``:hi`` (inclusive; their operating days bound the index range)."""
    return (
        "FROM register_reads r WHERE r.file_id = ANY(:files) AND r.value IS NOT NULL"
        f" AND r.read_day >= :{lo}_day AND r.read_day <= :{hi}_day AND r.read_at >= :{lo} AND r.read_at <= :{hi}"
    )


def _nearest(order: str, where: str) -> str:
    """The ``:k`` reads of each series nearest to the day on one side (``order`` of read time)."""
    return (
        "SELECT meter_id, channel, read_at, value, source_unit, file_id, line FROM (SELECT"
        f" {COLUMNS}, row_number() OVER (PARTITION BY r.meter_id, r.channel ORDER BY r.read_at {order}) AS n"
        f" {where}) w WHERE n <= :k"
    )


def _instants(**named: pd.Timestamp) -> dict:
    """Query parameters for ``_reads``: each instant and an operating day range that holds it."""
    out: dict = {}
    for name, at in named.items():
        out[name] = at
        out[f"{name}_day"] = at.date() + dt.timedelta(days=1 if name.endswith("hi") else -1)
    return out


def _source_files(store: Store, sources: dict[str, float]) -> pd.Series:
    """file_id -> source of the files of the deriving sources."""
    files = store.read_frame(
        "SELECT file_id, source FROM headend_files WHERE source = ANY(:sources)", {"sources": sorted(sources)}
    )
    return files.set_index("file_id")["source"]


def _grid_meters(meters: pd.DataFrame) -> pd.DataFrame:
    """The meters whose intervals VEE expects: AMI meters with an interval grid."""
    seconds = pd.to_numeric(meters["interval_seconds"], errors="coerce")
    return meters[meters["kind"].eq("ami").to_numpy() & (seconds > 0).to_numpy()]


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
    files = _source_files(store, sources) if sources else pd.Series(dtype="object")
    if files.empty:
        return DerivedDay()
    tz = cfg.utility.timezone
    start, end = local_day_bounds(day, tz)
    gap, tick = pd.Timedelta(hours=max(sources.values())), pd.Timedelta(microseconds=1)
    reads = store.read_frame(
        " UNION ALL ".join(
            [
                f"SELECT {COLUMNS} {_reads('day_lo', 'day_hi')}",
                _nearest("DESC", _reads("before_lo", "before_hi")),
                _nearest("ASC", _reads("after_lo", "after_hi")),
            ]
        ),
        {
            "files": [int(f) for f in files.index],
            "k": NEIGHBOURS,
            **_instants(day_lo=start, day_hi=end, before_lo=start - gap, before_hi=start - tick),
            **_instants(after_lo=end + tick, after_hi=end + gap),
        },
    )
    grid = _grid_meters(meters)
    reads = reads[reads["meter_id"].isin(grid["meter_id"])]
    if reads.empty:
        return DerivedDay()
    reads["read_at"] = pd.to_datetime(reads["read_at"], utc=True)
    reads["max_gap_hours"] = reads["file_id"].map(files).map(sources)
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
    known = _grid_meters(
        store.read_frame(
            "SELECT meter_id, kind, interval_seconds FROM meters WHERE meter_id = ANY(:m)", {"m": meters}
        )
    )
    regs = regs[regs["meter_id"].isin(known["meter_id"])]
    if regs.empty:
        return []
    tz = cfg.utility.timezone
    first, last = regs["read_at"].min(), regs["read_at"].max()
    gap = pd.Timedelta(hours=max(sources.values()))
    around = store.read_frame(
        "SELECT max(CASE WHEN r.read_at < :first THEN r.read_at END) AS prev_at,"
        " min(CASE WHEN r.read_at > :last THEN r.read_at END) AS next_at"
        f" {_reads('a_lo', 'b_hi')} AND r.file_id <> :file AND r.meter_id = ANY(:m)"
        " AND (r.read_at < :first OR r.read_at > :last)",
        {
            "first": first,
            "last": last,
            "file": file_id,
            "m": sorted(regs["meter_id"].unique().tolist()),
            "files": [int(f) for f in _source_files(store, sources).index],
            **_instants(a_lo=first - gap, b_hi=last + gap),
        },
    )
    bounds = pd.Series([first, last, *around.iloc[0].tolist()]).dropna()
    bounds = pd.to_datetime(bounds, utc=True)
    lo, hi = local_date(pd.Series([bounds.min(), bounds.max()]), tz).dt.date
    return [d.isoformat() for d in day_range(lo, hi)]
