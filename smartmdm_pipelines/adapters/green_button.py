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

from pathlib import Path

import numpy as np
from lxml import etree

from smartmdm_pipelines.adapters.base import Adapter, FileRejected, ParsedFile, SourceConfig
from smartmdm_pipelines.adapters.green_button_feed import ATOM_NS, ESPI_NS, read_feed, true_lines
from smartmdm_pipelines.adapters.green_button_readings import join_channels, readings


class GreenButtonAdapter(Adapter):
    """Green Button / NAESB ESPI Atom feeds (see the module docstring)."""

    name = "green_button"
    line_based = False  # XML: a whole feed may be one line

    def sniff(self, head: bytes, path: Path) -> bool:
        return ATOM_NS in head and ESPI_NS in head and b"feed" in head

    def read(self, path: Path, source: SourceConfig, result: ParsedFile) -> None:
        try:
            entries, cols, root_name = read_feed(path)
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
        cols["line"] = true_lines(path, np.asarray(cols["line"], dtype=np.int64))
        channels, group = join_channels(entries, np.asarray(cols["entry"], dtype=np.int64), source)
        result.intervals, result.registers, result.rejected = readings(cols, channels, group)
        result.records = n  # counted only when the file can be trusted


ADAPTER = GreenButtonAdapter()
