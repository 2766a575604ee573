"""Green Button / NAESB ESPI (REQ.21) Atom XML: UsagePoint → MeterReading → ReadingType + IntervalBlocks.

Streaming: lxml ``iterparse`` visits only ``entry`` and ``IntervalReading`` elements and clears
each one once read, so memory holds the readings' text fields (moved into Arrow every 65,536
readings), not the tree. Taking the text out of each element is the only per-reading Python
work; the resource graph is joined after the whole feed is read (entries come in any order,
e.g. IntervalBlocks before their ReadingType) and every check and conversion after that is
columnar (Arrow/numpy), error messages being built only for the readings that fail.

A *record* is one ``IntervalReading``; its ``line`` is the line of its start tag (libxml2 stops
counting at 65,535, so longer files have their reading lines recounted from the bytes).
Sniffing: the Atom and ESPI namespace URIs in the first 64 KiB.

Design decisions
- **Links.** Relations are string equality on hrefs (absolute hrefs compared by path, trailing
  ``/`` ignored). A MeterReading belongs to the UsagePoint whose ``related`` links hold the
  MeterReading's ``up`` (or ``self``) href, or whose ``self`` href prefixes the MeterReading's;
  failing that, the UsagePoint id in the MeterReading's own href, or the only UsagePoint of the
  feed. An IntervalBlock belongs to the MeterReading whose ``related`` links hold its ``up`` (or
  ``self``) href, or whose ``self`` prefixes it, or to the only MeterReading of the feed. The
  ReadingType is the ``related`` link of the MeterReading that is a ReadingType entry's ``self``.
  Orphan ReadingTypes and all other resources (LocalTimeParameters, summaries, customer data)
  are ignored; readings that cannot be linked are rejected with the reason.
- **Meter id** = the UsagePoint as its ``self`` href scopes it (URL-decoded), so that two customers'
  files never share a meter: ESPI numbers usage points per retail customer or subscription
  (``RetailCustomer/5/UsagePoint/1`` and ``RetailCustomer/1/UsagePoint/1`` are two meters), so the
  id keeps that scope: ``.../RetailCustomer/9B6C/UsagePoint/5446AF3F`` → ``RetailCustomer/9B6C/
  UsagePoint/5446AF3F``, ``.../Subscription/12/UsagePoint/3`` → ``Subscription/12/UsagePoint/3``.
  A root-form href (``.../resource/UsagePoint/G000123``, the data custodian's own id) gives the
  usage point id alone (``G000123``); without a ``UsagePoint/`` segment the last segment of the href,
  else the entry's Atom ``id`` without ``urn:uuid:``. The host is not part of the id. Several
  data custodians, or the same usage point seen through a download and a subscription, are told
  apart or joined by the source's meter map (``meter_map`` in the utility YAML), which maps these
  ids to CIS meter ids.
- **Channel** from the ReadingType: ``uom`` 72 Wh / 73 VArh are electric and use
  ``flowDirection`` (1 forward or absent → ``kwh_delivered``/``kvarh``, 19 reverse →
  ``kwh_received``/``kvarh_received``, 4 net → ``kwh_net``; others are rejected); 169 therm → gas;
  128 US gal → water; 119 ft³ and 42 m³ → gas or water from the ReadingType ``commodity``
  (7/8 gas, 9/11/14 water) or else the UsagePoint ``ServiceCategory/kind`` (1 gas, 2 water).
  ``accumulationBehaviour`` 4 deltaData (or absent) → interval reads; 1 bulkQuantity,
  3 cumulative and 9 summation → register reads (``read_at`` = start + duration); others
  (demand, instantaneous …) are rejected. No ``uom`` → ``SourceConfig.default_unit`` if set.
- **Values** = ``value`` × 10^``powerOfTenMultiplier`` in the ``uom`` (``source_unit`` is the uom's
  name, e.g. ``Wh``), then normalised (``normalise_units``). An interval reading without ``value``
  (or with an empty one) is a no-read: value NaN, never a zero; a register reading without one is
  rejected (as in the generic register CSV).
- **Quality**: ``source_quality`` = the reading's ``ReadingQuality/quality`` codes verbatim (several
  joined with ``;``), else the ReadingType's ``defaultQuality``, else empty.
- **Time**: ``TimeType`` is epoch seconds UTC, so ``LocalTimeParameters`` (``tzOffset`` of either
  sign, DST rules) never shifts a reading; ``SourceConfig.timezone`` is not used. Interval end =
  ``start + duration``, ``interval_seconds`` = the reading's duration (else the ReadingType's
  ``intervalLength``), so a daily value on a DST day keeps its 82,800 / 90,000 s and billing-period
  readings keep their length. Coverage comes from the readings only: IntervalBlock ``interval``
  headers are never read. Readings are kept in file order (reverse order is fine).
- **Untrustworthy timestamps** reject the file (``fatal``): every reading of a MeterReading
  carrying the same start (an export timestamp, not the period), or a reading with a zero or
  negative duration on an interval channel (negative on a register channel).
- Not well-formed XML (including a truncated file or bytes that are not in the declared
  encoding) is fatal with libxml2's line. External entities and the network are never loaded.
"""

from __future__ import annotations

import mmap
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from lxml import etree

from smartmdm_pipelines.adapters.base import Adapter, FileRejected, ParsedFile, SourceConfig
from smartmdm_pipelines.adapters.validation import RowReasons
from smartmdm_pipelines.domain.readings import (
    INTERVAL_READ_COLUMNS,
    REGISTER_READ_COLUMNS,
    REJECTED_COLUMNS,
    UTC_TS,
    conform,
    normalise_units,
)

ATOM_NS = b"http://www.w3.org/2005/Atom"
ESPI_NS = b"http://naesb.org/espi"

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
FLUSH = 1 << 16  # readings buffered as Python strings before moving to Arrow

_READING_TAG = re.compile(rb"<(?:[A-Za-z_][\w.\-]*:)?IntervalReading(?=[\s/>])")
_SKIPPED_SPANS = re.compile(rb"<!--.*?-->|<!\[CDATA\[.*?\]\]>", re.DOTALL)


def _local(tag: object) -> str:
    if tag.__class__ is not str:
        return ""
    return tag[tag.rfind("}") + 1 :]  # type: ignore[index]


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
class _Entry:
    index: int
    line: int
    kind: str = ""
    atom_id: str = ""
    self_href: str = ""
    up_href: str = ""
    related: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class _Channel:
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


class GreenButtonAdapter(Adapter):
    name = "green_button"

    def sniff(self, head: bytes, path: Path) -> bool:
        return ATOM_NS in head and ESPI_NS in head and b"feed" in head

    def read(self, path: Path, source: SourceConfig, result: ParsedFile) -> None:
        try:
            entries, cols, root_name = _read_feed(path)
        except etree.XMLSyntaxError as exc:
            detail = " ".join(str(exc.msg).split())  # lxml's message may span lines; ours is one
            raise FileRejected(
                f"the file is not well-formed XML (truncated or damaged?): {detail}", max(exc.lineno or 1, 1)
            ) from None
        if root_name != "feed":
            raise FileRejected(
                f"the document root is <{root_name}>, expected an Atom <feed> of ESPI entries", 1
            )
        n = len(cols["line"])
        if n == 0:
            return
        cols["line"] = _true_lines(path, np.asarray(cols["line"], dtype=np.int64))
        channels, group = _join(entries, np.asarray(cols["entry"], dtype=np.int64), source)
        result.intervals, result.registers, result.rejected = _readings(cols, channels, group)
        result.records = n  # counted only when the file can be trusted


ADAPTER = GreenButtonAdapter()


def _read_feed(path: Path) -> tuple[list[_Entry], dict[str, object], str]:
    """Stream the feed: entry metadata, and the raw text fields of every IntervalReading (moved
    from Python lists into compact Arrow chunks every ``FLUSH`` readings)."""
    entries: list[_Entry] = []
    start_l: list[str | None] = []
    dur_l: list[str | None] = []
    value_l: list[str | None] = []
    qual_l: list[str | None] = []
    line_l: list[int] = []
    chunks: tuple[list, ...] = ([], [], [], [], [])
    flushed = 0
    ends: list[int] = []  # readings read when each entry ended
    context = etree.iterparse(
        str(path),
        events=("end",),
        tag=("{*}entry", "{*}IntervalReading", "entry", "IntervalReading"),
        remove_comments=True,
        remove_pis=True,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=True,
    )
    for _, el in context:
        tag = el.tag
        if tag[tag.rfind("}") + 1 :] == "IntervalReading":
            start = dur = value = None
            quals: list[str] | None = None
            for child in el:
                ct = child.tag
                name = ct[ct.rfind("}") + 1 :]
                if name == "timePeriod":
                    for part in child:
                        pt = part.tag
                        pname = pt[pt.rfind("}") + 1 :]
                        if pname == "start":
                            start = part.text
                        elif pname == "duration":
                            dur = part.text
                elif name == "value":
                    value = child.text
                elif name == "ReadingQuality":
                    for part in child:
                        if _local(part.tag) == "quality" and part.text and part.text.strip():
                            quals = quals or []
                            quals.append(part.text.strip())
            start_l.append(start)
            dur_l.append(dur)
            value_l.append(value)
            qual_l.append(";".join(quals) if quals else None)
            line_l.append(el.sourceline or 0)
            el.clear()  # the emptied element goes when its entry is cleared (cheaper than one by one)
            if len(line_l) >= FLUSH:
                flushed += len(line_l)
                for chunk, values in zip(chunks, (start_l, dur_l, value_l, qual_l), strict=False):
                    chunk.append(pa.array(values, pa.string()))
                chunks[4].append(np.asarray(line_l, dtype=np.int64))
                start_l, dur_l, value_l, qual_l, line_l = [], [], [], [], []
        else:
            entries.append(_read_entry(el, len(entries)))
            ends.append(flushed + len(line_l))
            el.clear()
            parent = el.getparent()
            if parent is not None:
                while el.getprevious() is not None:
                    del parent[0]
    root = context.root
    root_name = _local(root.tag) if root is not None else ""
    for chunk, values in zip(chunks, (start_l, dur_l, value_l, qual_l), strict=False):
        chunk.append(pa.array(values, pa.string()))
    chunks[4].append(np.asarray(line_l, dtype=np.int64))
    names = ("start", "duration", "value", "quality")
    cols: dict[str, object] = {
        name: pa.chunked_array(chunk, pa.string()).combine_chunks()
        for name, chunk in zip(names, chunks, strict=False)
    }
    cols["line"] = np.concatenate(chunks[4])
    # a reading belongs to the first entry that ended after it (len(entries): outside any entry)
    n = len(cols["line"])
    cols["entry"] = np.searchsorted(np.asarray(ends, dtype=np.int64), np.arange(n), side="right")
    return entries, cols, root_name


def _read_entry(el: etree._Element, index: int) -> _Entry:
    entry = _Entry(index=index, line=el.sourceline or 0)
    for child in el:
        name = _local(child.tag)
        if name == "link":
            rel = (child.get("rel") or "alternate").strip()
            href = (child.get("href") or "").strip()
            if rel == "self":
                entry.self_href = entry.self_href or href
            elif rel == "up":
                entry.up_href = entry.up_href or href
            elif rel == "related" and href:
                entry.related.append(href)
        elif name == "id":
            entry.atom_id = (child.text or "").strip()
        elif name == "content":
            resource = next((c for c in child if _local(c.tag)), None)
            if resource is None:
                continue
            entry.kind = _local(resource.tag)
            if entry.kind == "ReadingType":
                entry.fields = {_local(c.tag): (c.text or "").strip() for c in resource if _local(c.tag)}
            elif entry.kind == "UsagePoint":
                for part in resource:
                    if _local(part.tag) == "ServiceCategory":
                        for kind in part:
                            if _local(kind.tag) == "kind":
                                entry.fields["kind"] = (kind.text or "").strip()
    return entry


def _true_lines(path: Path, lines: np.ndarray) -> np.ndarray:
    """libxml2 reports line numbers above 65,535 as 65,535 (lxml cannot ask for big lines):
    recount them from the positions of the ``<IntervalReading`` start tags in the bytes."""
    if len(lines) == 0 or lines.max() < 65535:
        return lines
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        offsets = np.fromiter((m.start() for m in _READING_TAG.finditer(data)), dtype=np.int64)
        skipped = [(m.start(), m.end()) for m in _SKIPPED_SPANS.finditer(data)]
        if skipped:
            spans = np.asarray(skipped, dtype=np.int64)
            pos = np.searchsorted(spans[:, 0], offsets, side="right") - 1
            inside = (pos >= 0) & (offsets < spans[np.maximum(pos, 0), 1])
            offsets = offsets[~inside]
        chunk = 1 << 24
        newlines = np.concatenate(
            [
                np.flatnonzero(
                    np.frombuffer(data, dtype=np.uint8, count=min(chunk, len(data) - at), offset=at) == 10
                )
                + at
                for at in range(0, len(data), chunk)
            ]
            or [np.zeros(0, dtype=np.int64)]
        )
    counted = np.searchsorted(newlines, offsets, side="left") + 1
    exact = lines < 65535
    if len(counted) != len(lines) or not np.array_equal(counted[exact], lines[exact]):
        return lines  # cannot map reliably: keep libxml2's (capped) numbers
    return counted


def _join(
    entries: list[_Entry], reading_entry: np.ndarray, source: SourceConfig
) -> tuple[list[_Channel], np.ndarray]:
    """Link the resources; return one _Channel per reading group and each reading's group."""
    ups = [e for e in entries if e.kind == "UsagePoint"]
    mrs = [e for e in entries if e.kind == "MeterReading"]
    rts = {_key(e.self_href): e for e in entries if e.kind == "ReadingType" and e.self_href}
    up_by_related: dict[str, _Entry] = {}
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
                _Channel(
                    reason=f"its IntervalBlock (entry at line {entry.line}, self '{entry.self_href}') is not "
                    "linked to any MeterReading entry"
                )
            )
            mr_index = len(channels) - 1
        entry_group[entry.index] = mr_index
    channels.append(_Channel(reason="it is not inside an IntervalBlock entry of the feed"))
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


def _usage_point_id(up: _Entry) -> str:
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
    mr: _Entry,
    ups: list[_Entry],
    up_by_related: dict[str, _Entry],
    rts: dict[str, _Entry],
    source: SourceConfig,
) -> _Channel:
    label = mr.self_href or f"entry at line {mr.line}"
    out = _Channel(label=label)
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


def _readings(
    cols: dict[str, object], channels: list[_Channel], group: np.ndarray
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
    channels: list[_Channel],
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
