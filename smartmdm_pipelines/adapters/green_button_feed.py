"""Reading an ESPI Atom feed (green_button.py has the format): its entries and the columns of
every IntervalReading, streamed with lxml ``iterparse`` (no external entities), with true line
numbers."""

from __future__ import annotations

import mmap
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from lxml import etree

ATOM_NS = b"http://www.w3.org/2005/Atom"
ESPI_NS = b"http://naesb.org/espi"

FLUSH = 1 << 16  # readings buffered as Python strings before moving to Arrow

_READING_TAG = re.compile(rb"<(?:[A-Za-z_][\w.\-]*:)?IntervalReading(?=[\s/>])")
_SKIPPED_SPANS = re.compile(rb"<!--.*?-->|<!\[CDATA\[.*?\]\]>", re.DOTALL)


def _local(tag: object) -> str:
    if tag.__class__ is not str:
        return ""
    return tag[tag.rfind("}") + 1 :]  # type: ignore[index]


@dataclass
class Entry:
    index: int
    line: int
    kind: str = ""
    atom_id: str = ""
    self_href: str = ""
    up_href: str = ""
    related: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)


def read_feed(path: Path) -> tuple[list[Entry], dict[str, object], str]:
    """Stream the feed: entry metadata, and the raw text fields of every IntervalReading (moved
    from Python lists into compact Arrow chunks every ``FLUSH`` readings)."""
    entries: list[Entry] = []
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
        huge_tree=False,
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


def _read_entry(el: etree._Element, index: int) -> Entry:
    entry = Entry(index=index, line=el.sourceline or 0)
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


def true_lines(path: Path, lines: np.ndarray) -> np.ndarray:
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
