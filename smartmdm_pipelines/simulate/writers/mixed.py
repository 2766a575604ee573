"""Each head-end in its own format, and nothing lost: ``MixedWriter`` (``SimulationSpec.formats``).

Every delivery goes to the writer of its head-end's format. What that format cannot carry is
delivered in generic CSV (docs/generic_csv.md) files of the *same* head-end, so the union of a
head-end's files is exactly what it delivered:

- a record type the format has no place for (events in CMEP, BEACON, Green Button and NEM12;
  registers in NEM12) makes the whole delivery a generic CSV file under its usual generic name
  (``headend/ami-east_20240308_events.csv``);
- rows of a record type it carries but that it cannot express exactly go, in file order, to the
  delivery's *complement* ``{stem}_generic.csv`` next to the format's file
  (``ami-east_20240310_intervals.txt`` + ``ami-east_20240310_intervals_generic.csv``).

What each format carries (from the writers' and adapters' documented limits; anything else goes to
the complement, decided per meter so that files do not depend on the chunk size):

- ``cmep``: channels kwh_delivered, kvarh, water, gas with interval lengths of 1-60 minutes or a
  day; instants on whole minutes (clock drift of a few seconds is not); register reads outside the
  repeated fall-back hour; interval lines that have at least one unambiguous local time.
- ``beacon_csv``: water only. Hourly intervals ending on a local full hour (the reader derives the
  length from a meter's smallest step, which must come out as one hour); registers on whole
  minutes, not at hh:59 nor in the repeated hour, not negative, exact to 0.01. No duplicated rows.
- ``green_button``: any channel in ESPI units, values exact to 0.001 of the unit, registers with a
  value. No duplicated rows (a MeterReading whose readings all carry one start makes the reader
  distrust the whole file).
- ``nem12``: kwh_delivered/kwh_received (kWh) and kvarh (kVARh) of 1-60 minutes, by whole
  meter-days of NEM time (AEMO: UTC+10 without DST; the generator cuts a NEM12 head-end's
  interval files on NEM days, so a US DST day is an ordinary NEM day): a (meter, channel, NEM
  day) is NEM12 only if it has each of its intervals exactly once, on the grid, exact to 0.001.
  Gaps, duplicates, clock drift, meter exchange days, partial re-deliveries and the partial NEM
  days at both ends of the window go to the complement.
- ``generic_csv``: everything.

CMEP and BEACON write local times in ``timezone`` (the utility's zone; the MDM's source config must
name the same zone for these head-ends); NEM12 writes NEM time, as the MDM reads it by default. An empty CMEP or Green Button file is not
recognisable as such, so those files are created with their first row; a delivery that ends up
with no file at all is written as a header-only generic CSV file.

Fault ground truth names files through ``path_for`` (the format's file) before any row exists;
``watch`` the faults' (meter, channel) pairs and ``locate`` a fault's file afterwards to name the
file its rows actually went to.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ..spec import DELIVERY_ZONES
from . import beacon_csv, cmep, green_button, nem12
from .base import RECORD_EVENTS, RECORD_INTERVALS, RECORD_REGISTERS, Delivery, HeadEndWriter
from .beacon_csv import BeaconCsvWriter
from .cmep import CmepWriter
from .generic_csv import GenericCsvWriter
from .green_button import GreenButtonWriter
from .nem12 import Nem12Writer

GENERIC = "generic_csv"
CARRIES: dict[str, frozenset[str]] = {
    GENERIC: frozenset({RECORD_INTERVALS, RECORD_REGISTERS, RECORD_EVENTS}),
    "cmep": frozenset({RECORD_INTERVALS, RECORD_REGISTERS}),
    "beacon_csv": frozenset({RECORD_INTERVALS, RECORD_REGISTERS}),
    "green_button": frozenset({RECORD_INTERVALS, RECORD_REGISTERS}),
    "nem12": frozenset({RECORD_INTERVALS}),
}
LAZY = frozenset({"cmep", "green_button"})  # an empty file of these formats is not recognisable
COMPLEMENT_SUFFIX = "_generic"
MAIN, GENERIC_PART, COMPLEMENT = "main", "generic", "complement"
DAY = 86400
CMEP_STEPS = (60, 300, 600, 900, 1800, 3600, DAY)
BEACON_LENGTHS_MIN = (1, 5, 10, 15, 30, 60, 1440)  # lengths the BEACON reader may derive
NEM12_UNITS = {"kwh_delivered": "kwh", "kwh_received": "kwh", "kvarh": "kvarh", "kvarh_received": "kvarh"}
ESPI_CHANNELS = ("kwh_delivered", "kwh_received", "kwh_net", "kvarh", "kvarh_received", "water", "gas")


class ComplementCsvWriter(GenericCsvWriter):
    """Generic CSV files named ``{the generic name without .csv}_generic.csv``."""

    def path_for(self, delivery: Delivery) -> str:
        return super().path_for(delivery).removesuffix(".csv") + COMPLEMENT_SUFFIX + ".csv"


def format_zone(name: str, timezone: str) -> str:
    """The zone a format writes its local times and days in: NEM time for NEM12, else ``timezone``."""
    return DELIVERY_ZONES.get(name, timezone)


def _format_writer(name: str, out_dir: Path, timezone: str) -> HeadEndWriter:
    factories: dict[str, Callable[[], HeadEndWriter]] = {
        "cmep": lambda: CmepWriter(out_dir, timezone=timezone),
        "beacon_csv": lambda: BeaconCsvWriter(out_dir, timezone=timezone),
        "nem12": lambda: Nem12Writer(out_dir, timezone=format_zone("nem12", timezone)),
        "green_button": lambda: GreenButtonWriter(out_dir),
    }
    return factories[name]()


# --- what a format carries -----------------------------------------------------------------------
class _View:
    """The columns of a canonical interval or register table as numpy arrays."""

    def __init__(self, table: pa.Table, record: str) -> None:
        self.n = table.num_rows
        self.meter, self.meter_names = _categories(table, "meter_id")
        self.channel, self.channel_names = _categories(table, "channel")
        self.unit, self.unit_names = _categories(table, "unit")
        time_column = "interval_end" if record == RECORD_INTERVALS else "read_at"
        self.t = table.column(time_column).combine_chunks().cast(pa.int64()).to_numpy(zero_copy_only=False)
        self.step = (
            table.column("interval_seconds").to_numpy().astype(np.int64)
            if record == RECORD_INTERVALS
            else np.zeros(self.n, dtype=np.int64)
        )
        self.value = table.column("value").to_numpy().astype(np.float64)  # null -> NaN

    def channel_in(self, allowed: Iterable[str]) -> np.ndarray:
        return _in(self.channel, self.channel_names, lambda s: s in set(allowed))

    def unit_in(self, allowed: Iterable[str]) -> np.ndarray:
        keys = {a.lower() for a in allowed}
        return _in(self.unit, self.unit_names, lambda s: s.strip().lower() in keys)

    def channel_text(self) -> np.ndarray:
        return np.asarray(self.channel_names, dtype=object)[self.channel]

    def meter_text(self) -> np.ndarray:
        return np.asarray(self.meter_names, dtype=object)[self.meter]


def _categories(table: pa.Table, name: str) -> tuple[np.ndarray, list[str]]:
    column = table.column(name).combine_chunks()
    if pa.types.is_dictionary(column.type):
        return column.indices.to_numpy(zero_copy_only=False).astype(np.int64), column.dictionary.to_pylist()
    codes, uniques = pd.factorize(column.to_numpy(zero_copy_only=False))
    return codes.astype(np.int64), [str(u) for u in uniques]


def _in(codes: np.ndarray, names: list[str], accept: Callable[[str], bool]) -> np.ndarray:
    allowed = np.array([accept(str(n)) for n in names] + [False], dtype=bool)
    return allowed[codes]


def _local(epochs: np.ndarray, timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """(naive local epoch seconds, whether the local time occurs twice) of UTC epoch seconds."""
    codes, uniques = pd.factorize(epochs)
    local = (
        pd.DatetimeIndex(np.asarray(uniques).astype("datetime64[s]")).tz_localize("UTC").tz_convert(timezone)
    )
    naive = local.tz_localize(None)
    repeated = np.asarray(naive.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").isna())
    return naive.to_numpy(dtype="datetime64[s]").astype(np.int64)[codes], repeated[codes]


def _exact(value: np.ndarray, decimals: int) -> np.ndarray:
    """NaN, or a value that has no more than ``decimals`` decimals (up to float noise)."""
    scaled = value * 10.0**decimals
    with np.errstate(invalid="ignore"):
        return np.isnan(value) | (np.abs(scaled - np.round(scaled)) <= 1e-6 * np.maximum(1.0, np.abs(scaled)))


def _duplicated(v: _View) -> np.ndarray:
    """Rows whose (meter, channel, instant) occurs more than once in the table (every copy)."""
    frame = pd.DataFrame({"m": v.meter, "c": v.channel, "t": v.t})
    return frame.duplicated(keep=False).to_numpy()


def _runs(ok: np.ndarray, v: _View, break_on_time: bool) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``ok`` in runs of one meter/channel/unit/step (and increasing instants): (rows, run id)."""
    rows = np.flatnonzero(ok)
    start = np.ones(len(rows), dtype=bool)
    if len(rows) > 1:
        m, ch, u, s, t = (a[rows] for a in (v.meter, v.channel, v.unit, v.step, v.t))
        start[1:] = (m[1:] != m[:-1]) | (ch[1:] != ch[:-1]) | (u[1:] != u[:-1]) | (s[1:] != s[:-1])
        if break_on_time:
            start[1:] |= t[1:] <= t[:-1]
    return rows, np.cumsum(start) - 1


def carry_cmep(v: _View, record: str, timezone: str) -> np.ndarray:
    ok = v.channel_in(cmep.COMMODITY) & v.unit_in(cmep.UNITS) & (v.t % 60 == 0)
    _, repeated = _local(v.t, timezone)
    if record == RECORD_REGISTERS:
        return ok & ~repeated
    ok &= np.isin(v.step, CMEP_STEPS)
    # a line made only of readings of the repeated fall-back hour cannot be placed by a reader
    rows, run = _runs(ok, v, break_on_time=True)
    if len(rows):
        all_repeated = np.ones(run[-1] + 1, dtype=bool)
        np.logical_and.at(all_repeated, run, repeated[rows])
        ok[rows[all_repeated[run]]] = False
    return ok


def carry_beacon(v: _View, record: str, timezone: str) -> np.ndarray:
    ok = v.channel_in(["water"]) & v.unit_in(beacon_csv.UNITS) & ~_duplicated(v)
    if record == RECORD_REGISTERS:
        local, repeated = _local(v.t, timezone)
        with np.errstate(invalid="ignore"):
            positive = np.isnan(v.value) | (v.value >= 0)
        return ok & (v.t % 60 == 0) & ~repeated & (local % 3600 // 60 != 59) & positive & _exact(v.value, 2)
    local, _ = _local(v.t, timezone)
    ok &= (v.step == 3600) & (local % 3600 == 0)
    # the reader takes a meter's interval length from the smallest step between its rows
    rows, run = _runs(ok, v, break_on_time=False)
    if len(rows) > 1:
        flow_minutes = (local[rows] - 60) // 60
        diff = np.diff(flow_minutes)
        same = run[1:] == run[:-1]
        steps = pd.Series(np.where(same & (diff > 0), diff, np.iinfo(np.int64).max)).groupby(run[1:]).min()
        derived = np.full(run[-1] + 1, np.iinfo(np.int64).max)
        derived[steps.index.to_numpy()] = steps.to_numpy()
        wrong = np.isin(derived, BEACON_LENGTHS_MIN) & (derived != 60)
        ok[rows[wrong[run]]] = False
    return ok


def carry_green_button(v: _View, record: str, timezone: str) -> np.ndarray:
    ok = v.channel_in(ESPI_CHANNELS) & v.unit_in(green_button.UNITS) & _exact(v.value, 3) & ~_duplicated(v)
    if record == RECORD_REGISTERS:
        return ok & ~np.isnan(v.value)
    return ok & (v.step > 0)


def carry_nem12(v: _View, record: str, timezone: str) -> np.ndarray:
    channel = v.channel_text()
    unit = np.asarray([u.strip().lower() for u in v.unit_names] + [""], dtype=object)[v.unit]
    fits = np.array([NEM12_UNITS.get(c) == u for c, u in zip(channel, unit, strict=True)], dtype=bool)
    ok = fits & np.isin(v.step, [m * 60 for m in nem12.MINUTES]) & _exact(v.value, 3)
    rows = np.flatnonzero(ok)
    if not len(rows):
        return ok
    step = v.step[rows]
    local, _ = _local(v.t[rows] - step, timezone)  # interval starts, local wall time
    day = local // DAY
    frame = pd.DataFrame(
        {"m": v.meter[rows], "c": v.channel[rows], "u": v.unit[rows], "s": step, "d": day, "slot": local}
    )
    groups = frame.groupby(["m", "c", "u", "s", "d"], sort=False)
    count = groups["slot"].transform("size").to_numpy()
    distinct = groups["slot"].transform("nunique").to_numpy()
    aligned = (
        pd.Series(local % step == 0).groupby([frame[k] for k in ("m", "c", "u", "s", "d")]).transform("all")
    )
    days = np.unique(day)
    midnights = pd.DatetimeIndex(days.astype("datetime64[D]")).tz_localize(
        timezone, ambiguous=True, nonexistent="shift_forward"
    )
    next_midnights = pd.DatetimeIndex((days + 1).astype("datetime64[D]")).tz_localize(
        timezone, ambiguous=True, nonexistent="shift_forward"
    )
    length = dict(zip(days, (next_midnights - midnights).total_seconds().astype(np.int64), strict=True))
    full_day = np.array([length[d] == DAY for d in day], dtype=bool)
    whole = full_day & (count == DAY // step) & (distinct == count) & aligned.to_numpy(dtype=bool)
    ok[rows] = whole
    return ok


CARRY: dict[str, Callable[[_View, str, str], np.ndarray]] = {
    "cmep": carry_cmep,
    "beacon_csv": carry_beacon,
    "green_button": carry_green_button,
    "nem12": carry_nem12,
}


# --- the writer ----------------------------------------------------------------------------------
class MixedWriter(HeadEndWriter):
    """Routes each delivery to its head-end's format; generic CSV for what the format cannot carry."""

    def __init__(
        self,
        out_dir: Path,
        formats: Mapping[str, str] | None = None,
        default: str = GENERIC,
        timezone: str = "America/Chicago",
    ) -> None:
        super().__init__(out_dir)
        for name in [default, *(formats or {}).values()]:
            if name not in CARRIES:
                raise ValueError(f"unknown head-end format {name!r}; known: {sorted(CARRIES)}")
        self.formats = dict(formats or {})
        self.default = default
        self.timezone = timezone
        self.generic = GenericCsvWriter(out_dir)
        self.complement = ComplementCsvWriter(out_dir)
        self._writers: dict[str, HeadEndWriter] = {}
        self._parts: dict[Delivery, set[str]] = defaultdict(set)
        self._opened: set[Delivery] = set()
        self._duplicates: list[tuple[Delivery, Delivery]] = []
        self._by_path: dict[str, Delivery] = {}
        self._watch: set[tuple[str, str]] = set()
        self._watched_meters: set[str] = set()
        self._seen: dict[tuple[Delivery, str, str], dict[str, list[int]]] = {}
        self.file_formats: dict[str, str] = {}  # after close: relative path -> format

    # --- routing -------------------------------------------------------------------------------
    def format_of(self, delivery: Delivery) -> str:
        """The format of the delivery's main file (generic when its format cannot carry the record)."""
        name = self.formats.get(delivery.headend, self.default)
        return name if delivery.record in CARRIES[name] else GENERIC

    def _writer(self, delivery: Delivery, part: str) -> HeadEndWriter:
        if part == COMPLEMENT:
            return self.complement
        name = GENERIC if part == GENERIC_PART else self.format_of(delivery)
        if name == GENERIC:
            return self.generic
        if name not in self._writers:
            self._writers[name] = _format_writer(name, self.out_dir, self.timezone)
        return self._writers[name]

    def _part_format(self, delivery: Delivery, part: str) -> str:
        return self.format_of(delivery) if part == MAIN else GENERIC

    def path_for(self, delivery: Delivery) -> str:
        path = self._writer(delivery, MAIN).path_for(delivery)
        self._by_path[path] = delivery
        return path

    def open(self, delivery: Delivery) -> None:
        self._opened.add(delivery)
        if self.format_of(delivery) not in LAZY:
            self._writer(delivery, MAIN).open(delivery)
            self._parts[delivery].add(MAIN)

    def write(self, delivery: Delivery, table: pa.Table) -> None:
        self._opened.add(delivery)
        name = self.format_of(delivery)
        if name == GENERIC or table.num_rows == 0:
            if name not in LAZY or table.num_rows:
                self._writer(delivery, MAIN).write(delivery, table)
                self._parts[delivery].add(MAIN)
            if self._watch and table.num_rows and delivery.record != RECORD_EVENTS:
                self._track(delivery, _View(table, delivery.record), np.ones(table.num_rows, bool), MAIN)
            return
        view = _View(table, delivery.record)
        keep = CARRY[name](view, delivery.record, format_zone(name, self.timezone))
        for part, mask in ((MAIN, keep), (COMPLEMENT, ~keep)):
            if mask.any():
                self._writer(delivery, part).write(delivery, table.filter(pa.array(mask)))
                self._parts[delivery].add(part)
                self._track(delivery, view, mask, part)

    def duplicate(self, source: Delivery, target: Delivery) -> None:
        self._duplicates.append((source, target))

    def close(self) -> list[str]:
        for delivery in sorted(self._opened):
            if not self._parts[delivery]:  # e.g. a CMEP delivery without rows: a header-only CSV
                self.generic.open(delivery)
                self._parts[delivery].add(GENERIC_PART)
        for source, target in self._duplicates:
            for part in sorted(self._parts[source]):
                self._writer(source, part).duplicate(source, target)
                self._parts[target].add(part)
        paths: set[str] = set()
        for writer in [self.generic, self.complement, *self._writers.values()]:
            paths.update(writer.close())
        for delivery, parts in self._parts.items():
            for part in parts:
                self.file_formats[self._writer(delivery, part).path_for(delivery)] = self._part_format(
                    delivery, part
                )
        return sorted(paths)

    # --- where a fault's rows went -------------------------------------------------------------------
    def watch(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Record where rows of these (meter id, channel) pairs go, for ``locate``."""
        self._watch.update(pairs)
        self._watched_meters = {m for m, _ in self._watch}

    def _track(self, delivery: Delivery, view: _View, mask: np.ndarray, part: str) -> None:
        """Count the rows ``mask`` of watched pairs that went to ``part``, and their time span."""
        if not self._watch:
            return
        rows = np.flatnonzero(mask & _in(view.meter, view.meter_names, self._watched_meters.__contains__))
        if not len(rows):
            return
        frame = pd.DataFrame(
            {"m": view.meter_text()[rows], "c": view.channel_text()[rows], "t": view.t[rows]}
        )
        for (meter, channel), t in frame.groupby(["m", "c"], sort=False)["t"]:
            if (meter, channel) not in self._watch:
                continue
            seen = self._seen.setdefault((delivery, meter, channel), {})
            n, lo, hi = seen.get(part, [0, np.iinfo(np.int64).max, np.iinfo(np.int64).min])
            seen[part] = [n + len(t), min(lo, int(t.min())), max(hi, int(t.max()))]

    def files_of(self, delivery: Delivery) -> dict[str, str]:
        """Part (main, generic, complement) -> relative path of the delivery's files."""
        return {
            part: self._writer(delivery, part).path_for(delivery) for part in sorted(self._parts[delivery])
        }

    def locate(self, path: str, meter_id: str, channel: str, start: int, end: int, margin: int = 0) -> str:
        """The file of the delivery named ``path`` (by ``path_for``) that holds the rows of a
        watched (meter, channel) around ``start``..``end`` (UTC epochs, widened by ``margin``):
        the only file with rows of the pair, else the one with rows in that window."""
        delivery = self._by_path.get(path)
        if delivery is None or not self._parts.get(delivery):
            return path
        files = self.files_of(delivery)
        seen = self._seen.get((delivery, meter_id, channel), {})
        if not seen:  # no rows of the pair (a gap over the whole delivery): its main file
            return files.get(MAIN) or next(iter(files.values()))
        if len(seen) == 1:
            return files[next(iter(seen))]
        for part in (COMPLEMENT, MAIN, GENERIC_PART):
            if part in seen and seen[part][1] <= end + margin and seen[part][2] >= start - margin:
                return files[part]
        return files[next(iter(sorted(seen)))]
