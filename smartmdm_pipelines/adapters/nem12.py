"""AEMO Meter Data File Format (MDFF) NEM12: 100 header, 200 data stream, 300 day of intervals,
400 interval quality ranges, 500 B2B details, 900 end.

Columnar: the file is split into lines and fields by pyarrow; every check runs on whole arrays
and the 300 records' values are exploded with numpy (ragged index arithmetic), so there is no
Python loop per value (only over the lines of a few error messages).

Records and counts. A *record* is one interval value of a valid 300 record; a bad 300 record
(or any other bad line) is one rejected row, so ``records`` = values loaded + rows rejected.
Each rejected reason starts with the file's line ("line 17: 300 record has 45 interval values,
expected 48 for a 30-minute interval length").

Design decisions
- **No 100 header** (or a header that is not ``NEM12``, e.g. NEM13) rejects the whole file at the
  line of the first record. An empty file is rejected too.
- **Truncation**: complete records before the cut load; a missing 900 is recorded as a rejected
  row at the line after the last record ("no 900 end-of-data record ...: the file may be
  truncated"), so the file is *partially loaded*, never silently complete. A truncated last 300
  line fails its value count and is rejected on its own. Records after a 900 are rejected.
- **200 record** → meter and channel. Meter id = NMI, plus ``-`` + meter serial number when the
  serial is present (``NEM1201002-01002``); the NMI suffix's element (second character) is appended
  as ``:<element>`` when it is not ``1`` (``E2`` controlled load → ``NEM1201002-01002:2``), because
  E1 and E2 of one meter are both import energy and would otherwise collide. Channel from the
  suffix letter: E → kwh_delivered, B → kwh_received, Q → kvarh, K → kvarh_received; other
  suffixes are rejected. UOM is case-insensitive (``kWh``, ``KWH``, ``Wh``, ``kVArh``…), kept as
  ``source_unit`` and normalised; it must fit the suffix (energy for E/B, reactive for Q/K).
  Interval length 5, 15 or 30 minutes (MDFF), also 1, 10 and 60 for non-AEMO exports; it may
  change between 200 blocks. A bad 200 record rejects each 300 record under it with its reason.
- **300 record**: ``300,CCYYMMDD,v1..vN,QualityMethod,ReasonCode,ReasonDescription,UpdateDateTime
  [,MSATSLoadDateTime]`` with N = 1440 / interval length. A wrong number of values (or none),
  a bad date, a bad quality method or a non-numeric value rejects the record.
- **Quality**: ``source_quality`` = the 300 record's QualityMethod verbatim (``A``, ``E52``,
  ``F52``, ``S14``, ``N``…), replaced for the intervals of a 400 record by the 400's method (a
  later 400 wins where ranges overlap). Quality ``V`` needs 400 records covering every interval,
  else the 300 record is rejected; a bad 400 record is rejected and so is its 300 record (its
  values' quality is unknown). ``N`` (null data) is a no-read placeholder: value NaN, never the
  0 the file carries. An empty value is allowed only where the quality is N.
- **Time**: interval n of a day covers [(n−1)·L, n·L) minutes after midnight and is labelled
  by its end. By the AEMO specification NEM12 days are in NEM time (AEST, fixed UTC+10 without
  DST, ``Etc/GMT-10``) whatever the utility's or the source's zone (``SourceConfig.timezone`` is the
  zone of *naive local* timestamps of other formats and is not used here); a source whose NEM12
  files follow another zone says so explicitly with ``SourceConfig.nem12_timezone``. A day that
  is not 1,440 minutes long in that zone (a DST zone on its change days) is rejected, since a
  300 record always holds 1,440 minutes.
- 500 records are read past; 100/200/400/500/900 lines are not data records.
"""

from __future__ import annotations

import re
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smartmdm_pipelines.adapters.base import BOM, Adapter, FileRejected, ParsedFile, SourceConfig
from smartmdm_pipelines.domain.readings import (
    INTERVAL_READ_COLUMNS,
    REJECTED_COLUMNS,
    UTC_TS,
    conform,
    normalise_units,
)

NEM_TIME = "Etc/GMT-10"  # AEST, UTC+10 all year
SUFFIX_CHANNELS = {"E": "kwh_delivered", "B": "kwh_received", "Q": "kvarh", "K": "kvarh_received"}
ACTIVE_UNITS = {"kwh", "wh", "mwh"}
REACTIVE_UNITS = {"kvarh", "varh"}
LENGTHS = {1, 5, 10, 15, 30, 60}  # minutes dividing a day into canonical intervals; MDFF uses 5/15/30
QUALITY = r"^[AEFNSVaefnsv][0-9]{0,2}$"
RECORDS = ("100", "200", "300", "400", "500", "900")
TRAILER_300 = "quality method, reason code, reason description, update time[, MSATS load time]"


class Nem12Adapter(Adapter):
    name = "nem12"
    reasons_start_with_line = True

    def sniff(self, head: bytes, path: Path) -> bool:
        text = head.removeprefix(BOM).lstrip(b"\r\n\t ")
        first = text.split(b"\n", 1)[0].strip().upper()
        if first.startswith(b"100,NEM12"):
            return True
        # a NEM12 body without its header: recognised, so that parse can reject it precisely
        return first.startswith(b"200,") and b"\n300," in text

    def read(self, path: Path, source: SourceConfig, result: ParsedFile) -> None:
        tz = _zone(source)
        parsed = _Parse(self.text(path).decode("utf-8"), tz)
        result.intervals, result.rejected = parsed.intervals, parsed.rejected
        result.records = len(parsed.intervals) + len(parsed.rejected)


ADAPTER = Nem12Adapter()


def _zone(source: SourceConfig) -> str:
    """NEM time, unless the source overrides the zone of its NEM12 days."""
    tz = source.nem12_timezone or NEM_TIME
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise FileRejected(
            f"NEM12 time zone {tz!r} of source {source.name!r} is not a known IANA zone"
        ) from None
    return tz


def _ragged(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + c) for each (s, c), without a Python loop."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    before = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) + np.repeat(starts - before, counts)


class _Parse:
    """One pass over a decoded NEM12 file (see the module docstring for the rules)."""

    def __init__(self, text: str, tz: str) -> None:
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        self.tz = tz
        self.raw = pc.utf8_trim_whitespace(pa.array(lines, pa.string()))
        n = len(self.raw)
        self.nonblank = np.asarray(
            pc.greater(pc.utf8_length(self.raw), 0).to_numpy(zero_copy_only=False), bool
        )
        if not self.nonblank.any():
            raise FileRejected("the file is empty (expected a 100 header record, then 200/300 records)", 1)
        fields = pc.split_pattern(self.raw, ",")
        self.nf = pc.list_value_length(fields).to_numpy(zero_copy_only=False).astype(np.int64)
        self.offsets = fields.offsets.to_numpy().astype(np.int64)
        self.flat = pc.utf8_trim_whitespace(fields.values)
        self.rec = self.field(np.arange(n), 0)
        self.rejects: list[tuple[np.ndarray, np.ndarray]] = []  # (line indices, reasons)

        first = int(np.flatnonzero(self.nonblank)[0])
        self._header(first)
        idx = np.arange(n)
        is_end = self.rec == "900"
        end = int(np.flatnonzero(is_end)[0]) if is_end.any() else n
        after_end = self.nonblank & (idx > end)
        live = self.nonblank & ~after_end
        kind = {r: live & (self.rec == r) for r in RECORDS}
        self._reject(
            np.flatnonzero(after_end), lambda i: f"record after the 900 end-of-data record at line {end + 1}"
        )
        self._reject(
            np.flatnonzero(kind["100"] & (idx != first)),
            lambda i: f"a second 100 header record (the header is line {first + 1})",
        )
        unknown = live & ~np.logical_or.reduce([kind[r] for r in RECORDS])
        self._reject(
            np.flatnonzero(unknown),
            lambda i: (
                f"record indicator '{self.rec[i][:20]}' is not a NEM12 record (100, 200, 300, 400, 500 or 900)"
            ),
        )
        if not is_end.any():
            last = int(np.flatnonzero(self.nonblank)[-1])
            self.rejects.append(
                (
                    np.array([last + 1]),
                    np.array(
                        [
                            f"line {last + 2}: no 900 end-of-data record after the last record (line {last + 1}): "
                            "the file may be truncated"
                        ],
                        dtype=object,
                    ),
                )
            )
        self.intervals = self._data(kind, idx)
        self.rejected = self._rejected()

    # -- helpers -------------------------------------------------------------------------------
    def field(self, rows: np.ndarray, k: int | np.ndarray) -> np.ndarray:
        """Field k (0-based) of each line in rows, '' where the line has fewer fields."""
        k = np.broadcast_to(np.asarray(k, dtype=np.int64), rows.shape)
        has = k < self.nf[rows]
        out = np.full(len(rows), "", dtype=object)
        if has.any():
            take = self.offsets[rows[has]] + k[has]
            out[has] = pc.take(self.flat, pa.array(take)).to_numpy(zero_copy_only=False)
        return out

    def _reject(self, rows: np.ndarray, reason) -> None:  # reason: line index -> text
        if len(rows):
            self.rejects.append((rows, np.array([f"line {i + 1}: {reason(i)}" for i in rows], dtype=object)))

    def _header(self, first: int) -> None:
        if self.rec[first] != "100":
            text = str(self.raw[first])[:60]
            raise FileRejected(
                f"the file does not start with a 100 header record (found '{text}'); "
                "a NEM12 file starts with 100,NEM12,<CCYYMMDDhhmm>,<from>,<to>",
                first + 1,
            )
        version = self.field(np.array([first]), 1)[0]
        if version.upper() != "NEM12":
            raise FileRejected(
                f"the 100 header's version is '{version[:20]}'; only NEM12 interval data is supported",
                first + 1,
            )

    # -- 200, 300, 400 -------------------------------------------------------------------------
    def _blocks(self, rows200: np.ndarray) -> dict[str, np.ndarray]:
        """Meter, channel, unit and interval length of each 200 record, or why it is invalid."""
        nmi, suffix, serial = self.field(rows200, 1), self.field(rows200, 4), self.field(rows200, 6)
        uom, length_txt = self.field(rows200, 7), self.field(rows200, 8)
        m = len(rows200)
        reason = np.full(m, None, dtype=object)
        letter = np.array([s[:1].upper() for s in suffix], dtype=object)
        element = np.array([s[1:] for s in suffix], dtype=object)
        channel = np.array([SUFFIX_CHANNELS.get(x, "") for x in letter], dtype=object)
        unit_key = np.array([u.lower() for u in uom], dtype=object)
        length = pd.to_numeric(pd.Series(length_txt, dtype=object), errors="coerce").to_numpy(
            dtype=np.float64
        )
        for j in range(m):  # one iteration per 200 record (a data stream), not per value
            if self.nf[rows200[j]] < 9:
                reason[j] = (
                    f"200 record has {self.nf[rows200[j]]} fields, expected 10 (NMI, NMI configuration, register "
                    "id, NMI suffix, MDM data stream, meter serial number, UOM, interval length, next read date)"
                )
            elif not nmi[j]:
                reason[j] = "200 record has an empty NMI"
            elif len(suffix[j]) != 2 or not channel[j]:
                reason[j] = (
                    f"NMI suffix '{suffix[j][:10]}' is not a supported data stream (E1.. import kWh, B1.. export "
                    "kWh, Q1.. import kvarh, K1.. export kvarh)"
                )
            elif unit_key[j] not in ACTIVE_UNITS | REACTIVE_UNITS:
                reason[j] = (
                    f"UOM '{uom[j][:20]}' is not an energy unit (expected kWh, Wh, MWh, kVArh or VArh)"
                )
            elif (unit_key[j] in ACTIVE_UNITS) != (letter[j] in "EB"):
                family = "active energy (kWh, Wh)" if letter[j] in "EB" else "reactive energy (kVArh, VArh)"
                reason[j] = f"UOM '{uom[j]}' does not fit NMI suffix {suffix[j]}, which holds {family}"
            elif not (np.isfinite(length[j]) and length[j] in LENGTHS):
                reason[j] = f"interval length '{length_txt[j][:10]}' is not 5, 15 or 30 minutes"
        meter = np.array(
            [
                n + (f"-{s}" if s else "") + (f":{e}" if e not in ("1", "") else "")
                for n, s, e in zip(nmi, serial, element, strict=True)
            ],
            dtype=object,
        )
        minutes = np.where(reason == None, np.nan_to_num(length, nan=30.0), 30).astype(np.int64)  # noqa: E711
        return {"reason": reason, "meter": meter, "channel": channel, "unit": uom, "minutes": minutes}

    def _data(self, kind: dict[str, np.ndarray], idx: np.ndarray) -> pd.DataFrame:
        rows200 = np.flatnonzero(kind["200"])
        blocks = self._blocks(rows200)
        block_of = np.maximum.accumulate(np.where(kind["200"], np.arange(len(idx)), -1))
        rows300 = np.flatnonzero(kind["300"])
        k = len(rows300)
        reason = np.full(k, None, dtype=object)

        def fail(mask: np.ndarray, message) -> None:
            for j in np.flatnonzero(mask & (reason == None)):  # noqa: E711
                reason[j] = f"line {rows300[j] + 1}: {message(j)}"

        owner_line = block_of[rows300]
        owner = np.searchsorted(rows200, owner_line)  # position of the owning 200 record
        orphan = owner_line < 0
        owner = np.where(orphan, 0, owner)
        fail(orphan, lambda j: "300 record before any 200 record")
        if len(rows200):
            block_reason = blocks["reason"][owner]
            fail(
                ~orphan & (block_reason != None),  # noqa: E711
                lambda j: (
                    f"300 record under the invalid 200 record at line {owner_line[j] + 1}: {block_reason[j]}"
                ),
            )
            minutes = blocks["minutes"][owner]
        else:
            minutes = np.full(k, 30, dtype=np.int64)
        count = 1440 // minutes
        nf = self.nf[rows300]
        date_txt = self.field(rows300, 1)
        dates = pd.to_datetime(pd.Series(date_txt, dtype=object), format="%Y%m%d", errors="coerce")
        well_formed = pd.Series(date_txt, dtype="str").str.fullmatch(r"[0-9]{8}").to_numpy(dtype=bool)
        fail(
            ~well_formed | dates.isna().to_numpy(),
            lambda j: f"interval date '{date_txt[j][:20]}' is not a valid CCYYMMDD date",
        )
        plausible = ((date_txt >= "19700101") & (date_txt < "22000101")).astype(bool)
        fail(~plausible, lambda j: f"interval date '{date_txt[j]}' is not between 1970 and 2199")
        dates = dates.where(plausible)
        layout = (nf == count + 6) | (nf == count + 7)
        fail(~layout, lambda j: self._count_problem(rows300[j], int(count[j]), int(minutes[j])))
        quality = self.field(rows300, np.where(layout, 2 + count, 0))
        quality = np.where(layout, quality, "")
        good_quality = pd.Series(quality, dtype="str").str.fullmatch(QUALITY).to_numpy(dtype=bool)
        fail(
            ~good_quality,
            lambda j: (
                f"quality method '{quality[j][:10]}' after the {count[j]} interval values is not "
                "A, E.., F.., N, S.. or V"
            ),
        )
        start_utc = self._day_starts(dates, fail)

        # explode the values of structurally sound records
        sound = reason == None  # noqa: E711
        rows = np.flatnonzero(sound)
        counts = count[rows]
        first_value = np.cumsum(counts) - counts  # position of each record's first value
        pos = _ragged(self.offsets[rows300[rows]] + 2, counts)
        which = np.repeat(np.arange(len(rows)), counts)
        interval_no = np.arange(len(pos)) - np.repeat(first_value, counts)  # 0-based within the day
        value_txt = pc.take(self.flat, pa.array(pos, pa.int64()))
        value_q = np.repeat(quality[rows], counts).astype(object)
        self._apply_400(kind, rows300, rows, counts, first_value, value_q, reason, quality)

        numbers = _numbers(value_txt)
        empty = np.asarray(pc.equal(value_txt, "").to_numpy(zero_copy_only=False), bool)
        null = np.char.startswith(np.asarray(value_q, dtype=str), "N") | np.char.startswith(
            np.asarray(value_q, dtype=str), "n"
        )
        bad_value = (~empty & ~np.isfinite(numbers)) | (empty & ~null)
        if bad_value.any():
            texts = value_txt.to_numpy(zero_copy_only=False)
            bad_rows, first_bad = np.unique(which[bad_value], return_index=True)
            at = np.flatnonzero(bad_value)[first_bad]
            for r, a in zip(bad_rows, at, strict=True):
                j = rows[r]
                if reason[j] is None:
                    shown = (
                        f"'{texts[a][:20]}' is not a number"
                        if texts[a]
                        else f"is empty (quality {value_q[a]})"
                    )
                    reason[j] = f"line {rows300[j] + 1}: interval value {interval_no[a] + 1} {shown}"

        self.rejects.append((rows300[reason != None], reason[reason != None]))  # noqa: E711
        keep = (reason == None)[rows][which]  # noqa: E711
        which, interval_no = which[keep], interval_no[keep]
        line_no = rows300[rows][which]
        block = owner[rows][which]
        secs = minutes[rows][which] * 60
        ends = start_utc[rows][which] + (interval_no + 1) * secs
        values = np.where(null[keep], np.nan, numbers[keep])
        channel = pd.Series(blocks["channel"][block] if len(rows200) else [], dtype="str")
        source_unit = pd.Series(blocks["unit"][block] if len(rows200) else [], dtype="str")
        value, unit, _ = normalise_units(pd.Series(values, dtype="float64"), source_unit, channel)
        frame = pd.DataFrame(
            {
                "line": line_no + 1,
                "meter_id": pd.Series(blocks["meter"][block] if len(rows200) else [], dtype="str"),
                "channel": channel,
                "interval_end": pd.Series(
                    pd.DatetimeIndex(ends.astype("datetime64[s]"), tz="UTC").astype(UTC_TS)
                ),
                "interval_seconds": secs.astype(np.int32),
                "value": value,
                "unit": unit,
                "source_unit": source_unit,
                "source_quality": pd.Series(value_q[keep], dtype="str"),
            }
        )
        return conform(frame, INTERVAL_READ_COLUMNS)

    def _count_problem(self, row: int, count: int, minutes: int) -> str:
        """Why a 300 record has the wrong number of fields, in terms of its interval values."""
        nf = int(self.nf[row])
        texts = self.field(np.full(max(nf - 2, 0), row), np.arange(2, nf))
        quality_at = next((i for i, t in enumerate(texts) if re.fullmatch(QUALITY, t)), None)
        expected = f"expected {count} for a {minutes}-minute interval length"
        found = quality_at if quality_at is not None else len(texts)
        if found == 0:
            return f"300 record has no interval values, {expected}"
        if found != count:
            tail = "" if quality_at is not None else " and no quality method"
            return f"300 record has {found} interval values{tail}, {expected}"
        if quality_at is None:
            return (
                f"300 record has its {count} interval values but nothing after them (expected {TRAILER_300})"
            )
        return (
            f"300 record has {nf} fields, expected {count + 6} or {count + 7}: record indicator, date, {count} "
            f"interval values, {TRAILER_300}"
        )

    def _day_starts(self, dates: pd.Series, fail) -> np.ndarray:
        """UTC epoch seconds of each date's local midnight; days not 24 h long in the zone fail."""
        naive = dates.fillna(pd.Timestamp("2000-01-01")).astype("datetime64[s]")
        start = naive.dt.tz_localize(self.tz, ambiguous="NaT", nonexistent="NaT")
        after = (naive + pd.Timedelta(days=1)).dt.tz_localize(self.tz, ambiguous="NaT", nonexistent="NaT")
        length = (after - start).dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan)
        fail(
            ~(length == 86400),
            lambda j: (
                f"day {dates.iloc[j]:%Y-%m-%d} is not 1,440 minutes long in time zone {self.tz} "
                "(NEM12 days always are; set the source's nem12_timezone to a fixed-offset zone, or leave it out "
                "for NEM time, Etc/GMT-10)"
            ),
        )
        epoch = start.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[s]")
        return epoch.astype(np.int64)  # NaT rows are rejected above

    def _apply_400(
        self,
        kind: dict[str, np.ndarray],
        rows300: np.ndarray,
        rows: np.ndarray,
        counts: np.ndarray,
        first_value: np.ndarray,
        value_q: np.ndarray,
        reason: np.ndarray,
        quality: np.ndarray,
    ) -> None:
        """Overlay 400 quality ranges on the values of their 300 record; check V coverage."""
        n = len(self.rec)
        rows400 = np.flatnonzero(kind["400"])
        last_other = np.maximum.accumulate(np.where(self.nonblank & ~kind["400"], np.arange(n), -1))
        owner_line = last_other[rows400]
        owner300 = np.searchsorted(rows300, owner_line)
        follows_300 = (owner_line >= 0) & kind["300"][np.maximum(owner_line, 0)]
        owner300 = np.where(follows_300, owner300, 0)
        self._reject(rows400[~follows_300], lambda i: "400 record does not follow a 300 record")
        rows400, owner_line, owner300 = rows400[follows_300], owner_line[follows_300], owner300[follows_300]
        # 400s of a record rejected for its own structure share its fate (not counted again)
        sound_pos = np.full(len(rows300), -1, dtype=np.int64)
        sound_pos[rows] = np.arange(len(rows))
        at = sound_pos[owner300]
        rows400, owner_line, owner300, at = (
            rows400[at >= 0],
            owner_line[at >= 0],
            owner300[at >= 0],
            at[at >= 0],
        )
        start = pd.to_numeric(pd.Series(self.field(rows400, 1), dtype=object), errors="coerce").to_numpy(
            np.float64
        )
        stop = pd.to_numeric(pd.Series(self.field(rows400, 2), dtype=object), errors="coerce").to_numpy(
            np.float64
        )
        method = self.field(rows400, 3)
        limit = counts[at]
        bad = np.full(len(rows400), None, dtype=object)
        for j in range(len(rows400)):  # one iteration per 400 record
            s, e = start[j], stop[j]
            if self.nf[rows400[j]] < 4:
                bad[j] = (
                    f"400 record has {self.nf[rows400[j]]} fields, expected 6 (start interval, end interval, "
                    "quality method, reason code, reason description)"
                )
            elif not (np.isfinite(s) and np.isfinite(e) and s == int(s) and e == int(e)):
                bad[j] = "400 record start/end interval is not a whole number"
            elif not 1 <= s <= e <= limit[j]:
                bad[j] = (
                    f"400 record interval range {int(s)}-{int(e)} is outside 1-{limit[j]} of the 300 record at "
                    f"line {owner_line[j] + 1}"
                )
            elif not re.fullmatch(QUALITY, method[j]) or method[j].upper() == "V":
                bad[j] = f"400 record quality method '{method[j][:10]}' is not A, E.., F.., N or S.."
        invalid = bad != None  # noqa: E711
        self.rejects.append(
            (
                rows400[invalid],
                np.array(
                    [f"line {r + 1}: {b}" for r, b in zip(rows400[invalid], bad[invalid], strict=True)],
                    dtype=object,
                ),
            )
        )
        for r, o in zip(rows400[invalid], owner300[invalid], strict=True):
            if reason[o] is None:
                reason[o] = (
                    f"line {rows300[o] + 1}: 300 record rejected because its 400 record at line {r + 1} is invalid"
                )
        ok = ~invalid
        s0 = start[ok].astype(np.int64) - 1
        size = stop[ok].astype(np.int64) - s0
        positions = _ragged(first_value[at[ok]] + s0, size)
        covered = np.zeros(len(value_q), dtype=bool)
        if len(positions):
            value_q[positions] = np.repeat(method[ok], size)
            covered[positions] = True
        variable = np.char.upper(np.asarray(quality[rows], dtype=str)) == "V"
        if variable.any():
            which = np.repeat(np.arange(len(rows)), counts)
            gaps = ~covered & variable[which]
            gap_rows, first_gap = np.unique(which[gaps], return_index=True)
            gap_at = np.flatnonzero(gaps)[first_gap]
            for g, a in zip(gap_rows, gap_at, strict=True):
                j = rows[g]
                if reason[j] is None:
                    reason[j] = (
                        f"line {rows300[j] + 1}: 300 record has quality method V but interval {a - first_value[g] + 1} "
                        "is not covered by a 400 record (V needs a 400 record for every interval)"
                    )

    def _rejected(self) -> pd.DataFrame:
        if not self.rejects:
            return conform(pd.DataFrame({"line": [], "raw_text": [], "reason": []}), REJECTED_COLUMNS)
        rows = np.concatenate([r for r, _ in self.rejects]).astype(np.int64)
        reasons = np.concatenate([m for _, m in self.rejects])
        n = len(self.raw)
        in_file = rows < n
        raw = np.full(len(rows), "", dtype=object)
        if in_file.any():
            raw[in_file] = pc.take(self.raw, pa.array(rows[in_file])).to_numpy(zero_copy_only=False)
        frame = pd.DataFrame({"line": rows + 1, "raw_text": raw, "reason": reasons})
        return conform(frame.sort_values("line", kind="stable"), REJECTED_COLUMNS)


def _numbers(text: pa.Array) -> np.ndarray:
    """float64 of each string, NaN where empty or not a number (fast path: one Arrow cast)."""
    nulled = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    try:
        return pc.cast(nulled, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        series = pd.Series(text.to_numpy(zero_copy_only=False), dtype=object)
        return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
