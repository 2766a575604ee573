"""Green Button / NAESB ESPI Atom feeds (read back by ``adapters/green_button.py``).

One feed per delivery: ``headend/{headend}_{label}_{record}.xml`` (re-deliveries
``headend/{headend}_{label}_redelivery.xml``, resends ``..._{record}_resend.xml``). Each append
adds, for meters and channels not yet in the file, a UsagePoint entry (the root-form
``/espi/1_1/resource/UsagePoint/{meter}``: the head-end is the data custodian and its usage point
ids are the CIS meter ids, which the adapter reads back as they are; ServiceCategory from the
meter's commodity), a shared ReadingType per (channel, unit, length)
and a MeterReading per (meter, channel, unit, length); then one IntervalBlock entry per
MeterReading holding that append's readings, one ``IntervalReading`` per line. ``</feed>`` is
written at ``close()``, so a feed is valid XML only after it.

Encoding: a value v in its canonical unit is written as round(v × 1000) with the
``powerOfTenMultiplier`` that makes it exact to 0.001 of the canonical unit (kWh → uom 72 Wh ×10^0,
kVARh → 73 ×10^0, gal → 128 ×10^-3, ft3 → 119 ×10^-3, CCF → 119 ft³ ×10^-1, m3 → 42 ×10^-3,
therm → 169 ×10^-3). Interval reads: ``accumulationBehaviour`` 4, ``timePeriod`` start =
interval end − length. Register reads: ``accumulationBehaviour`` 9 (summation), duration 0,
start = read instant. A null value (no read) is an IntervalReading without ``value``.
Quality: empty → no ReadingQuality; ESPI codes (digits) verbatim; ``E…`` → 8 (estimated),
``A…``/``R…`` → 0 (valid); ``N…`` and other vendor codes → no ReadingQuality.

ESPI has no meter events: an event delivery is written as a valid feed without entries.
Channels ``kwh_net`` use flowDirection 4.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import quote
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .base import RECORD_EVENTS, RECORD_INTERVALS, Delivery, TextFileWriter

BASE = "/espi/1_1/resource"
ESPI = "http://naesb.org/espi"

# canonical unit (lower case) -> (uom, powerOfTenMultiplier); the written integer is round(v * 1000)
UNITS: dict[str, tuple[int, int]] = {
    "kwh": (72, 0),
    "wh": (72, -3),
    "kvarh": (73, 0),
    "varh": (73, -3),
    "gal": (128, -3),
    "ft3": (119, -3),
    "cf": (119, -3),
    "ccf": (119, -1),
    "hcf": (119, -1),
    "m3": (42, -3),
    "therm": (169, -3),
    "therms": (169, -3),
}
FLOW = {"kwh_delivered": 1, "kwh_received": 19, "kwh_net": 4, "kvarh": 1, "kvarh_received": 19}
COMMODITY = {"gas": 7, "water": 9}  # ReadingType commodity; electricity = 1
SERVICE_KIND = {"gas": 1, "water": 2}  # UsagePoint ServiceCategory kind; electricity = 0


def espi_quality(quality: pa.Array) -> pa.Array:
    """Canonical quality codes -> ESPI QualityOfReading text ('' = no ReadingQuality element)."""
    q = pc.utf8_trim_whitespace(pc.fill_null(quality.cast(pa.string()), ""))
    upper = pc.utf8_upper(q)
    first = pc.utf8_slice_codeunits(upper, 0, 1)
    digits = pc.match_substring_regex(q, r"^\d+$")
    mapped = pc.if_else(
        pc.equal(first, "E"), "8", pc.if_else(pc.or_(pc.equal(first, "A"), pc.equal(first, "R")), "0", "")
    )
    return pc.if_else(digits, q, mapped)


@dataclass
class _Feed:
    usage_points: set[str] = field(default_factory=set)
    reading_types: set[str] = field(default_factory=set)
    meter_readings: set[tuple[str, str]] = field(default_factory=set)
    blocks: int = 0


class GreenButtonWriter(TextFileWriter):
    """Writes ESPI Atom feeds (one feed per delivery; see ``FileWriter``)."""

    suffix = ".xml"
    max_open_files = 64  # the limit this writer always had (CSV writers keep 128)

    def __init__(self, out_dir: Path) -> None:
        super().__init__(out_dir)
        self._feeds: dict[Delivery, _Feed] = {}

    def _create(self, path: Path, delivery: Delivery) -> IO[str]:
        self._feeds[delivery] = _Feed()  # what the feed holds so far (entries written once)
        return super()._create(path, delivery)

    def header(self, delivery: Delivery) -> str:
        return _feed_header(delivery)

    def _trailer(self, delivery: Delivery) -> str:
        return "</feed>\n"

    def write(self, delivery: Delivery, table: pa.Table) -> None:
        handle = self._handle(delivery)
        if table.num_rows == 0 or delivery.record == RECORD_EVENTS:
            return
        handle.write(_entries(table, delivery, self._feeds[delivery]))


def _updated(label: str) -> str:
    if len(label) >= 6 and label[:6].isdigit():
        day = label[6:8] if len(label) >= 8 and label[6:8].isdigit() else "01"
        return f"{label[:4]}-{label[4:6]}-{day}T00:00:00Z"
    return "1970-01-01T00:00:00Z"


def _feed_header(delivery: Delivery) -> str:
    name = escape(f"{delivery.headend}_{delivery.label}_{delivery.record}{delivery.variant}")
    note = (
        "\n<!-- ESPI has no meter events: this delivery holds none -->"
        if delivery.record == RECORD_EVENTS
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom">\n'
        f"<id>urn:smartmdm:feed:{quote(name, safe='')}</id>\n"
        f"<title>Green Button feed {name}</title>\n"
        f"<updated>{_updated(delivery.label)}</updated>{note}\n"
    )


def _entry(atom_id: str, links: list[tuple[str, str]], title: str, resource: str, updated: str) -> str:
    link_xml = "".join(f'<link rel="{rel}" href="{href}"/>\n' for rel, href in links)
    return (
        f"<entry>\n<id>{atom_id}</id>\n{link_xml}<title>{escape(title)}</title>\n"
        f"<content>{resource}</content>\n<updated>{updated}</updated>\n</entry>\n"
    )


def _entries(table: pa.Table, delivery: Delivery, feed: _Feed) -> str:
    """The entries one append adds: new UsagePoints, ReadingTypes, MeterReadings, then blocks."""
    interval = delivery.record == RECORD_INTERVALS
    time_col = "interval_end" if interval else "read_at"
    meter = table["meter_id"].combine_chunks().cast(pa.string())
    channel = table["channel"].combine_chunks().cast(pa.string())
    unit = table["unit"].combine_chunks().cast(pa.string())
    end = table[time_col].combine_chunks().cast(pa.int64()).to_numpy()
    seconds = (
        table["interval_seconds"].combine_chunks().to_numpy(zero_copy_only=False).astype(np.int64)
        if interval
        else np.zeros(len(end), dtype=np.int64)
    )
    start = end - seconds
    value = table["value"].combine_chunks().to_numpy(zero_copy_only=False)
    quality = espi_quality(table["quality"].combine_chunks())

    # one MeterReading per (meter, channel, unit, seconds), in order of first appearance
    group_text = pc.binary_join_element_wise(
        meter, channel, unit, pa.array(seconds.astype(str)), "\x1f"
    ).to_numpy(zero_copy_only=False)
    codes, uniques = pd.factorize(group_text, sort=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))

    with np.errstate(invalid="ignore"):
        integer = np.round(value * 1000.0)
    has_value = np.isfinite(integer)
    value_xml = pc.if_else(
        pa.array(has_value),
        pc.binary_join_element_wise(
            "<value>", pa.array(np.where(has_value, integer, 0).astype(np.int64).astype(str)), "</value>", ""
        ),
        "",
    )
    quality_xml = pc.if_else(
        pc.equal(quality, ""),
        "",
        pc.binary_join_element_wise("<ReadingQuality><quality>", quality, "</quality></ReadingQuality>", ""),
    )
    readings = (
        pc.binary_join_element_wise(
            "<IntervalReading>",
            quality_xml,
            "<timePeriod><duration>",
            pa.array(seconds.astype(str)),
            "</duration><start>",
            pa.array(start.astype(str)),
            "</start></timePeriod>",
            value_xml,
            "</IntervalReading>",
            "",
        )
        .take(pa.array(order))
        .to_pylist()
    )

    updated = _updated(delivery.label)
    out: list[str] = []
    meters = meter.to_numpy(zero_copy_only=False)
    channels = channel.to_numpy(zero_copy_only=False)
    units = unit.to_numpy(zero_copy_only=False)
    for g in range(len(uniques)):
        a, b = int(bounds[g]), int(bounds[g + 1])
        row = order[a]
        mid, ch, un, secs = str(meters[row]), str(channels[row]), str(units[row]), int(seconds[row])
        key = un.strip().lower()
        if key not in UNITS:
            raise ValueError(f"Green Button cannot express unit {un!r} (known: {sorted(UNITS)})")
        uom, power = UNITS[key]
        up_href = f"{BASE}/UsagePoint/{quote(mid, safe='')}"  # root form: the head-end's own meter id
        if mid not in feed.usage_points:
            feed.usage_points.add(mid)
            kind = SERVICE_KIND.get(ch, 0)
            out.append(
                _entry(
                    f"urn:smartmdm:usagepoint:{quote(mid, safe='')}",
                    [
                        ("self", up_href),
                        ("up", f"{BASE}/UsagePoint"),
                        ("related", f"{up_href}/MeterReading"),
                    ],
                    mid,
                    f'<UsagePoint xmlns="{ESPI}"><ServiceCategory><kind>{kind}</kind></ServiceCategory></UsagePoint>',
                    updated,
                )
            )
        rt_id = quote(f"{ch}-{un}-{secs if interval else 'register'}", safe="")
        rt_href = f"{BASE}/ReadingType/{rt_id}"
        if rt_id not in feed.reading_types:
            feed.reading_types.add(rt_id)
            length = f"<intervalLength>{secs}</intervalLength>" if interval else ""
            measured = 12 if uom in (72, 73, 169) else 58  # energy / volume
            resource = (
                f'<ReadingType xmlns="{ESPI}"><accumulationBehaviour>{4 if interval else 9}</accumulationBehaviour>'
                f"<commodity>{COMMODITY.get(ch, 1)}</commodity><dataQualifier>12</dataQualifier>"
                f"<flowDirection>{FLOW.get(ch, 1)}</flowDirection>{length}<kind>{measured}</kind>"
                f"<powerOfTenMultiplier>{power}</powerOfTenMultiplier><uom>{uom}</uom></ReadingType>"
            )
            out.append(
                _entry(
                    f"urn:smartmdm:readingtype:{rt_id}",
                    [("self", rt_href), ("up", f"{BASE}/ReadingType")],
                    f"{ch} {un}",
                    resource,
                    updated,
                )
            )
        mr_href = f"{up_href}/MeterReading/{rt_id}"
        if (mid, rt_id) not in feed.meter_readings:
            feed.meter_readings.add((mid, rt_id))
            out.append(
                _entry(
                    f"urn:smartmdm:meterreading:{quote(mid, safe='')}:{rt_id}",
                    [
                        ("self", mr_href),
                        ("up", f"{up_href}/MeterReading"),
                        ("related", f"{mr_href}/IntervalBlock"),
                        ("related", rt_href),
                    ],
                    f"{mid} {ch}",
                    f'<MeterReading xmlns="{ESPI}"/>',
                    updated,
                )
            )
        feed.blocks += 1
        rows = order[a:b]
        first, last = int(start[rows].min()), int(end[rows].max())
        block = (
            f'<IntervalBlock xmlns="{ESPI}">\n<interval><duration>{last - first}</duration><start>{first}</start>'
            "</interval>\n" + "\n".join(readings[a:b]) + "\n</IntervalBlock>"
        )
        out.append(
            _entry(
                f"urn:smartmdm:intervalblock:{feed.blocks}",
                [("self", f"{mr_href}/IntervalBlock/{feed.blocks}"), ("up", f"{mr_href}/IntervalBlock")],
                "",
                block,
                updated,
            )
        )
    return "".join(out)
