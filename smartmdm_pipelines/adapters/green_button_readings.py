"""ESPI entries to readings (green_button.py has the format): the channel of each MeterReading
from its UsagePoint and ReadingType, then every IntervalReading validated into interval or
register rows, or rejected with its line and a reason."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smartmdm_pipelines.adapters.base import FileRejected, SourceConfig
from smartmdm_pipelines.adapters.green_button_feed import Entry
from smartmdm_pipelines.adapters.validation import RowReasons
from smartmdm_pipelines.domain.readings import (
    INTERVAL_READ_COLUMNS,
    REGISTER_READ_COLUMNS,
    REJECTED_COLUMNS,
    UTC_TS,
    conform,
    normalise_units,
)

# ESPI UnitSymbolKind: code -> (unit name understood by normalise_units, family)
UOM: dict[int, tuple[str, str]] = {
    72: ("Wh", "energy"),
    73: ("VArh", "reactive"),
    169: ("therm", "gas"),
    119: ("ft3", "volume"),
    42: ("m3", "volume"),
    128: ("gal", "water"),
}
UOM_NAMES = {38: "W", 63: "VAr", 71: "VAh", 61: "VA", 132: "BTU", 5: "A", 29: "V", 33: "Hz", 0: "none"}
GAS_COMMODITIES = {7, 8}  # natural gas, propane
WATER_COMMODITIES = {9, 11, 14}  # potable, waste, non-potable water
ELECTRIC_FLOW = {
    None: "kwh_delivered",
    0: "kwh_delivered",
    1: "kwh_delivered",
    19: "kwh_received",
    4: "kwh_net",
}
REACTIVE_FLOW = {None: "kvarh", 0: "kvarh", 1: "kvarh", 19: "kvarh_received"}
INTERVAL_ACCUMULATION = {None, 4}
REGISTER_ACCUMULATION = {1, 3, 9}
ACCUMULATION_NAMES = {
    0: "none",
    2: "continuousCumulative",
    6: "indicating",
    12: "instantaneous",
    13: "latchingQuantity",
    14: "boundedQuantity",
}
FIRST_INSTANT, LAST_INSTANT = 0, 7_258_118_400  # 1970-01-01 .. 2200-01-01
INT32_MAX = 2**31 - 1


def _key(href: str | None) -> str:
    """Comparable form of an href: absolute ones by path, no trailing slash."""
    if not href:
        return ""
    href = href.strip()
    if "://" in href:
        href = urlsplit(href).path
    return href.rstrip("/")


def _int(text: str | None) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise ValueError(text) from None
        if not number.is_integer():
            raise ValueError(text) from None
        return int(number)


@dataclass
class Channel:
    """What every reading of one MeterReading shares (or why they are all rejected)."""

    meter_id: str = ""
    channel: str = ""
    source_unit: str = ""
    multiplier: int = 0
    register: bool = False
    default_seconds: float = np.nan
    default_quality: str = ""
    label: str = ""
    reason: str | None = None


def join_channels(
    entries: list[Entry], reading_entry: np.ndarray, source: SourceConfig
) -> tuple[list[Channel], np.ndarray]:
    """Link the resources; return one Channel per reading group and each reading's group."""
    ups = [e for e in entries if e.kind == "UsagePoint"]
    mrs = [e for e in entries if e.kind == "MeterReading"]
    rts = {_key(e.self_href): e for e in entries if e.kind == "ReadingType" and e.self_href}
    up_by_related: dict[str, Entry] = {}
    for up in ups:
        for href in up.related:
            up_by_related.setdefault(_key(href), up)
    mr_by_related: dict[str, int] = {}
    for i, mr in enumerate(mrs):
        for href in mr.related:
            mr_by_related.setdefault(_key(href), i)

    channels = [_meter_reading_channel(mr, ups, up_by_related, rts, source) for mr in mrs]
    # reading group per entry: the MeterReading index, or an extra group carrying a reason
    entry_group = np.full(len(entries) + 1, -1, dtype=np.int64)
    for entry in entries:
        if entry.kind != "IntervalBlock":
            continue
        mr_index = mr_by_related.get(_key(entry.up_href))
        if mr_index is None:
            mr_index = mr_by_related.get(_key(entry.self_href))
        if mr_index is None:
            own = _key(entry.self_href)
            mr_index = next(
                (i for i, mr in enumerate(mrs) if mr.self_href and own.startswith(_key(mr.self_href) + "/")),
                None,
            )
        if mr_index is None and len(mrs) == 1:
            mr_index = 0
        if mr_index is None:
            channels.append(
                Channel(
                    reason=f"its IntervalBlock (entry at line {entry.line}, self '{entry.self_href}') is not "
                    "linked to any MeterReading entry"
                )
            )
            mr_index = len(channels) - 1
        entry_group[entry.index] = mr_index
    channels.append(Channel(reason="it is not inside an IntervalBlock entry of the feed"))
    outside = len(channels) - 1
    group = entry_group[np.minimum(reading_entry, len(entries))]
    group = np.where(group < 0, outside, group)
    return channels, group


_SCOPED_USAGE_POINT = re.compile(
    r"(?:(?:^|/)(RetailCustomer|Subscription)/([^/]+))?(?:^|/)UsagePoint/([^/]+)"
)


def _scoped_id(path: str) -> str | None:
    """The usage point of an href path with its retail customer or subscription scope, if it has
    one (``RetailCustomer/5/UsagePoint/1``), else the usage point id alone; None without one."""
    found = _SCOPED_USAGE_POINT.findall(path)
    if not found:
        return None
    scope, scope_id, usage_point = found[-1]
    if scope:
        return f"{scope}/{unquote(scope_id)}/UsagePoint/{unquote(usage_point)}"
    return unquote(usage_point)


def _usage_point_id(up: Entry) -> str:
    if up.self_href:
        path = _key(up.self_href)
        scoped = _scoped_id(path)
        if scoped:
            return scoped
        last = path.rsplit("/", 1)[-1]
        if last:
            return unquote(last)
    return up.atom_id.removeprefix("urn:uuid:")


def _meter_reading_channel(
    mr: Entry,
    ups: list[Entry],
    up_by_related: dict[str, Entry],
    rts: dict[str, Entry],
    source: SourceConfig,
) -> Channel:
    label = mr.self_href or f"entry at line {mr.line}"
    out = Channel(label=label)
    up = up_by_related.get(_key(mr.up_href)) or up_by_related.get(_key(mr.self_href))
    if up is None and mr.self_href:
        own = _key(mr.self_href)
        up = next((u for u in ups if u.self_href and own.startswith(_key(u.self_href) + "/")), None)
    meter_id = _usage_point_id(up) if up is not None else ""
    if up is None:
        scoped = _scoped_id(_key(mr.self_href) or _key(mr.up_href))
        if scoped:
            meter_id = scoped
        elif len(ups) == 1:
            up = ups[0]
            meter_id = _usage_point_id(up)
    if not meter_id:
        out.reason = f"its MeterReading '{label}' is not linked to a UsagePoint (no meter id)"
        return out
    out.meter_id = meter_id
    rt = next((rts[_key(h)] for h in mr.related if _key(h) in rts), None)
    if rt is None:
        out.reason = (
            f"its MeterReading '{label}' has no ReadingType (no related link names a ReadingType entry)"
        )
        return out
    f = rt.fields
    try:
        uom = _int(f.get("uom"))
        multiplier = _int(f.get("powerOfTenMultiplier")) or 0
        flow = _int(f.get("flowDirection"))
        accumulation = _int(f.get("accumulationBehaviour"))
        commodity = _int(f.get("commodity"))
        length = _int(f.get("intervalLength"))
    except ValueError as exc:
        out.reason = f"its ReadingType '{rt.self_href}' has a non-integer field value '{exc}'"
        return out
    service_kind = None
    if up is not None:
        try:
            service_kind = _int(up.fields.get("kind"))
        except ValueError:
            service_kind = None
    rt_label = f"ReadingType '{rt.self_href}'"
    if not -12 <= multiplier <= 12:
        out.reason = f"its {rt_label} has powerOfTenMultiplier {multiplier} (expected -12 to 12)"
        return out
    out.multiplier = multiplier
    if accumulation in REGISTER_ACCUMULATION:
        out.register = True
    elif accumulation not in INTERVAL_ACCUMULATION:
        name = ACCUMULATION_NAMES.get(accumulation, "unknown")
        out.reason = (
            f"its {rt_label} has accumulationBehaviour {accumulation} ({name}); expected 4 deltaData "
            "(interval reads) or 1 bulkQuantity / 3 cumulative / 9 summation (register reads)"
        )
        return out
    if uom is None:
        if not source.default_unit:
            out.reason = f"its {rt_label} has no uom and the source has no default unit"
            return out
        unit, family = source.default_unit, "configured"
    elif uom in UOM:
        unit, family = UOM[uom]
    else:
        out.reason = (
            f"its {rt_label} has uom {uom} ({UOM_NAMES.get(uom, 'unknown')}), not an energy or volume unit "
            f"(expected one of {sorted(UOM)})"
        )
        return out
    gas = commodity in GAS_COMMODITIES or (commodity not in WATER_COMMODITIES and service_kind == 1)
    water = commodity in WATER_COMMODITIES or (commodity not in GAS_COMMODITIES and service_kind == 2)
    if family == "energy" or (family == "configured" and unit.lower() in {"wh", "kwh", "mwh"}):
        channel = ELECTRIC_FLOW.get(flow)
    elif family == "reactive" or (family == "configured" and unit.lower() in {"varh", "kvarh"}):
        channel = REACTIVE_FLOW.get(flow)
    elif family == "gas":
        channel = "gas"
    elif family == "water" or gas or water:
        channel = "gas" if gas else "water"
    else:
        out.reason = (
            f"its {rt_label} measures volume ({unit}) but neither its commodity nor the UsagePoint's "
            "ServiceCategory says whether it is gas or water"
        )
        return out
    if channel is None:
        out.reason = (
            f"its {rt_label} has flowDirection {flow}; expected 1 forward (delivered), 19 reverse (received) "
            "or 4 net"
        )
        return out
    out.channel, out.source_unit = channel, unit
    if length is not None and length > 0:
        out.default_seconds = float(length)
    out.default_quality = f.get("defaultQuality", "")
    return out


class _Text:
    """A column of stripped element text ('' for missing or whitespace-only), kept in Arrow; Python
    strings are made only for the rows an error message quotes."""

    def __init__(self, values: pa.Array) -> None:
        self.arr = pc.utf8_trim_whitespace(pc.fill_null(values, ""))
        self.empty = np.asarray(pc.equal(self.arr, "").to_numpy(zero_copy_only=False), dtype=bool)

    def __getitem__(self, i: int) -> str:
        return self.arr[int(i)].as_py()

    def numbers(self) -> np.ndarray:
        """float64 of the text; NaN where empty or not a number (fast path: one Arrow cast)."""
        nulled = pc.if_else(pa.array(self.empty), pa.scalar(None, pa.string()), self.arr)
        try:
            return pc.cast(nulled, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            text = pd.Series(nulled.to_numpy(zero_copy_only=False), dtype=object)
            return pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)


class _Reasons(RowReasons):
    """RowReasons whose messages are built only for the rows that fail (most rows pass)."""

    def __init__(self, line: np.ndarray) -> None:
        super().__init__(len(line))
        self.line = line

    def fail(self, failed: np.ndarray, message: Callable[[int], str]) -> None:
        rows = np.flatnonzero(np.asarray(failed, dtype=bool) & ~self.bad)
        for i in rows:
            self.reasons[i] = f"line {self.line[i]}: {message(i)}"


def readings(
    cols: dict[str, object], channels: list[Channel], group: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Check and convert every reading at once. ``cols``' lists are consumed (memory)."""
    line = np.asarray(cols.pop("line"), dtype=np.int64)
    start_txt, dur_txt = _Text(cols.pop("start")), _Text(cols.pop("duration"))
    value_txt, quality_txt = _Text(cols.pop("value")), _Text(cols.pop("quality"))
    group_arr = pa.array(group)

    def per_reading(attr: str, dtype: object) -> np.ndarray:
        return np.array([getattr(c, attr) for c in channels], dtype=dtype)[group]

    def per_reading_text(attr: str) -> pa.Array:
        return pc.take(pa.array([getattr(c, attr) for c in channels], pa.string()), group_arr)

    multiplier = per_reading("multiplier", np.int64)
    register = per_reading("register", bool)
    default_seconds = per_reading("default_seconds", np.float64)
    source_unit = per_reading_text("source_unit")
    group_reason = np.array([c.reason for c in channels], dtype=object)
    has_reason = (group_reason != None)[group]  # noqa: E711

    reasons = _Reasons(line)
    reasons.fail(has_reason, lambda i: f"IntervalReading rejected because {group_reason[group[i]]}")

    start = start_txt.numbers()
    reasons.fail(
        start_txt.empty, lambda i: "IntervalReading has no timePeriod start (expected epoch seconds)"
    )
    reasons.fail(
        np.isnan(start),
        lambda i: f"timePeriod start '{start_txt[i][:40]}' is not a number (expected epoch seconds)",
    )
    _check_identical_starts(start, start_txt, line, group, ~reasons.bad, channels)
    finite = np.isfinite(start)
    reasons.fail(
        finite & (start != np.floor(np.where(finite, start, 0))),
        lambda i: f"timePeriod start '{start_txt[i]}' is not whole epoch seconds",
    )
    reasons.fail(
        ~((start >= FIRST_INSTANT) & (start < LAST_INSTANT)),
        lambda i: (
            f"timePeriod start '{start_txt[i][:40]}' is not a plausible instant "
            "(expected epoch seconds, 1970-2200)"
        ),
    )

    given = dur_txt.numbers()
    reasons.fail(
        ~dur_txt.empty & np.isnan(given), lambda i: f"timePeriod duration '{dur_txt[i][:40]}' is not a number"
    )
    seconds = np.where(dur_txt.empty, default_seconds, given)
    _check_durations(seconds, line, register, ~reasons.bad)
    reasons.fail(
        ~register & np.isnan(seconds),
        lambda i: "IntervalReading has no timePeriod duration and its ReadingType has no intervalLength",
    )
    with np.errstate(invalid="ignore"):
        odd_length = np.isfinite(seconds) & ((seconds != np.floor(seconds)) | (seconds > INT32_MAX))
    reasons.fail(
        odd_length,
        lambda i: f"timePeriod duration '{dur_txt[i][:40]}' is not a whole number of seconds below 2^31",
    )

    raw = value_txt.numbers()
    has_text = ~value_txt.empty
    reasons.fail(has_text & np.isnan(raw), lambda i: f"value '{value_txt[i][:40]}' is not a number")
    reasons.fail(has_text & np.isinf(raw), lambda i: f"value '{value_txt[i][:40]}' is not a finite number")
    reasons.fail(register & ~has_text, lambda i: "register reading has no value (expected a number)")
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.where(
            multiplier < 0,
            raw / np.power(10.0, -np.minimum(multiplier, 0)),
            raw * np.power(10.0, np.maximum(multiplier, 0)),
        )
    channel_s = per_reading_text("channel").to_pandas()
    source_unit_s = source_unit.to_pandas()
    values, unit, unknown = normalise_units(pd.Series(scaled), source_unit_s, channel_s)
    reasons.fail(
        unknown.to_numpy() & ~has_reason,
        lambda i: f"unit '{source_unit[int(i)].as_py()}' is not a known unit",
    )
    quality = pc.if_else(pa.array(quality_txt.empty), per_reading_text("default_quality"), quality_txt.arr)

    bad = reasons.bad
    seconds_ok = np.nan_to_num(seconds, nan=0.0, posinf=0.0, neginf=0.0)
    start_ok = np.nan_to_num(start, nan=0.0, posinf=0.0, neginf=0.0)
    end_epoch = np.where(bad, 0, start_ok + np.where(register, np.maximum(seconds_ok, 0), seconds_ok)).astype(
        np.int64
    )
    instant = pd.Series(pd.DatetimeIndex(end_epoch.astype("datetime64[s]"), tz="UTC").astype(UTC_TS))
    frame = pd.DataFrame(
        {
            "line": line,
            "meter_id": per_reading_text("meter_id").to_pandas(),
            "channel": channel_s,
            "value": values,
            "unit": unit,
            "source_unit": source_unit_s,
            "source_quality": quality.to_pandas(),
        }
    )
    keep_iv = ~bad & ~register
    keep_rg = ~bad & register
    if keep_rg.any():
        intervals = frame.loc[keep_iv].assign(
            interval_end=instant[keep_iv], interval_seconds=seconds_ok[keep_iv].astype(np.int32)
        )
        registers = frame.loc[keep_rg].assign(read_at=instant[keep_rg])
    else:  # the common case: no copy of the selection
        intervals = frame.assign(interval_end=instant, interval_seconds=seconds_ok.astype(np.int32))
        intervals = intervals.loc[keep_iv] if bad.any() else intervals
        registers = frame.iloc[:0].assign(read_at=instant.iloc[:0])
    rows = np.flatnonzero(bad)
    raw_text = [
        f"IntervalReading start={start_txt[i]} duration={dur_txt[i]} value={value_txt[i]} quality={quality_txt[i]}"
        for i in rows
    ]
    rejected = pd.DataFrame({"line": line[rows], "raw_text": raw_text, "reason": reasons.reasons[rows]})
    return (
        conform(intervals, INTERVAL_READ_COLUMNS),
        conform(registers, REGISTER_READ_COLUMNS),
        conform(rejected, REJECTED_COLUMNS),
    )


def _check_identical_starts(
    start: np.ndarray,
    start_txt: _Text,
    line: np.ndarray,
    group: np.ndarray,
    usable: np.ndarray,
    channels: list[Channel],
) -> None:
    """Every reading of a MeterReading with the same start: an export stamp, not the period."""
    usable = usable & np.isfinite(start)
    if usable.sum() < 2:
        return
    frame = pd.DataFrame({"group": group[usable], "start": start[usable], "line": line[usable]})
    stats = frame.groupby("group", sort=False).agg(
        count=("start", "size"), distinct=("start", "nunique"), line=("line", "min")
    )
    suspicious = stats[(stats["count"] >= 2) & (stats["distinct"] == 1)]
    if suspicious.empty:
        return
    g = int(suspicious.index[0])
    first_line = int(suspicious.loc[g, "line"])
    text = start_txt[np.flatnonzero(usable)[frame["group"].to_numpy() == g][0]]
    raise FileRejected(
        f"line {first_line}: all {int(suspicious.loc[g, 'count'])} IntervalReadings of MeterReading "
        f"'{channels[g].label}' carry the same timePeriod start {text} (an export timestamp, not the "
        "interval); the file's timestamps cannot be trusted",
        first_line,
    )


def _check_durations(seconds: np.ndarray, line: np.ndarray, register: np.ndarray, usable: np.ndarray) -> None:
    """An interval cannot last zero or negative seconds (a register read cannot be negative)."""
    wrong = usable & np.isfinite(seconds) & np.where(register, seconds < 0, seconds <= 0)
    if not wrong.any():
        return
    i = int(np.flatnonzero(wrong)[0])
    raise FileRejected(
        f"line {line[i]}: IntervalReading timePeriod duration is {seconds[i]:g} s; an interval cannot last "
        "zero or negative seconds, so the file's timestamps cannot be trusted",
        int(line[i]),
    )
