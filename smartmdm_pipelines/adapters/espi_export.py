"""Green Button Download My Data: an account's current intervals as NAESB ESPI Atom XML
(UsagePoint → MeterReading → ReadingType + IntervalBlocks, LocalTimeParameters with the
service point's real DST rules, ReadingQuality per reading). What this writes is read back by
``adapters/green_button.py`` with the same values, qualities and interval ends.

* Values are integers: ``value`` × 10^``powerOfTenMultiplier`` (-3) in the ``uom`` (kWh as
  Wh, CCF as ft³), so three decimals of the base unit survive exactly and more round there.
* Quality: the interval's ESPI ``QualityOfReading`` (valid 0, edited 7, estimated 8, …) on every
  reading that is not plain valid; a missing interval is a reading without ``value``.
* One IntervalBlock per local day (23 or 25 hours on DST days) per meter.
* ``dstStartRule``/``dstEndRule``: the ESPI DstRuleType bit fields (month, operator 1 "the day of
  week on or after the day of month", day of week, day of month, hour, seconds) of the
  service point's zone in the export's first year; no DST → ``00000000`` and offset 0.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from lxml import etree

ATOM = "http://www.w3.org/2005/Atom"
ESPI = "http://naesb.org/espi"
BASE = "https://smartmdm.local/espi/1_1/resource"
POWER = -3
# unit in the store -> (ESPI uom, factor to the uom, ReadingType commodity)
UOM = {"kWh": (72, 1000.0, 1), "kVARh": (73, 1000.0, 1), "gal": (128, 1.0, 9), "CCF": (119, 100.0, 7),
       "therm": (169, 1.0, 7)}  # fmt: skip
FLOW = {"kwh_received": 19, "kwh_net": 4, "kvarh_received": 19}
DEFAULT_QUALITY = {"valid": 0, "suspect": 10, "edited": 7, "estimated": 8}
SERVICE_KIND = {"electric": 0, "gas": 1, "water": 2}


@dataclass(frozen=True)
class Meter:
    meter_id: str
    channel: str
    unit: str
    interval_seconds: int


def dst_rule(moment: pd.Timestamp, tz: str) -> str:
    """ESPI DstRuleType (hex) of the transition at ``moment`` (UTC): month, weekday, the day of
    month it is the first such weekday on or after, and the local clock time before it."""
    before = (moment - pd.Timedelta(seconds=1)).tz_convert(ZoneInfo(tz))
    local = (moment + (before.utcoffset() or dt.timedelta(0))).tz_localize(None)  # the clock before
    last_week = local.day > local.days_in_month - 7  # "last Sunday" rules stay last Sundays
    day_of_month = local.days_in_month - 6 if last_week else (local.day - 1) // 7 * 7 + 1
    secs = local.hour * 3600 + local.minute * 60 + local.second
    rule = (
        (local.month << 28)
        | (1 << 25)
        | (day_of_month << 20)
        | ((local.isoweekday()) << 17)
        | ((secs // 3600) << 12)
        | (secs % 3600)
    )
    return f"{rule:08X}"


def transitions(tz: str, year: int) -> list[pd.Timestamp]:
    """UTC instants the zone's offset changes in ``year`` (hourly scan, then to the second)."""
    zone = ZoneInfo(tz)
    hours = pd.date_range(f"{year}-01-01", f"{year + 1}-01-01", freq="h", tz="UTC")
    offs = np.array([h.astimezone(zone).utcoffset().total_seconds() for h in hours])
    out = []
    for i in np.nonzero(np.diff(offs))[0]:
        lo, hi = hours[i], hours[i + 1]
        while hi - lo > pd.Timedelta(seconds=1):
            mid = lo + (hi - lo) / 2
            mid = mid.floor("s")
            if mid.astimezone(zone).utcoffset() == lo.astimezone(zone).utcoffset():
                lo = mid
            else:
                hi = mid
        out.append(hi)
    return out


def local_time_parameters(tz: str, year: int) -> dict[str, str]:
    zone = ZoneInfo(tz)
    jan = pd.Timestamp(f"{year}-01-15T12:00Z")
    jul = pd.Timestamp(f"{year}-07-15T12:00Z")
    offsets = [int(t.astimezone(zone).utcoffset().total_seconds()) for t in (jan, jul)]
    std = min(offsets)
    moves = transitions(tz, year)
    if len(moves) != 2:
        return {"dstEndRule": "00000000", "dstOffset": "0", "dstStartRule": "00000000", "tzOffset": str(std)}
    into = [m for m in moves if m.astimezone(zone).dst()]
    out_of = [m for m in moves if not m.astimezone(zone).dst()]
    return {
        "dstEndRule": dst_rule(out_of[0], tz),
        "dstOffset": str(max(offsets) - std),
        "dstStartRule": dst_rule(into[0], tz),
        "tzOffset": str(std),
    }


def decode_dst_rule(rule: str, year: int) -> dt.datetime:
    """The local (pre-transition clock) time the rule gives in ``year``: for tests and readers."""
    v = int(rule, 16)
    month, dom, dow = v >> 28, (v >> 20) & 0x1F, (v >> 17) & 0x7
    hour, secs = (v >> 12) & 0x1F, v & 0xFFF
    day = dt.date(year, month, dom)
    day += dt.timedelta(days=(dow - day.isoweekday()) % 7)
    return dt.datetime.combine(day, dt.time(hour)) + dt.timedelta(seconds=secs)


def _sub(parent, tag: str, text=None, ns: str = ESPI):
    el = etree.SubElement(parent, f"{{{ns}}}{tag}")
    if text is not None:
        el.text = str(text)
    return el


def _entry(feed, href: str, title: str, related: list[str], up: str | None = None):
    e = _sub(feed, "entry", ns=ATOM)
    _sub(e, "id", "urn:uuid:" + str(_uuid(href)), ns=ATOM)
    _sub(e, "link", ns=ATOM).attrib.update({"rel": "self", "href": href})
    if up:
        _sub(e, "link", ns=ATOM).attrib.update({"rel": "up", "href": up})
    for r in related:
        _sub(e, "link", ns=ATOM).attrib.update({"rel": "related", "href": r})
    _sub(e, "title", title, ns=ATOM)
    _sub(e, "published", _now_text(), ns=ATOM)
    _sub(e, "updated", _now_text(), ns=ATOM)
    return _sub(e, "content", ns=ATOM)


def _uuid(text: str) -> str:
    h = hashlib.sha256(text.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


_NOW: list[str] = []


def _now_text() -> str:
    return _NOW[0] if _NOW else pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def feed(
    account_id: str,
    points: list[tuple[str, str, str]],
    intervals: pd.DataFrame,
    first: dt.date,
    now: pd.Timestamp | None = None,
) -> bytes:
    """``points``: (service_point_id, commodity, timezone). ``intervals``: the current intervals
    (service_point_id, meter_id, channel, interval_end, interval_seconds, value, unit, status,
    espi_quality)."""
    _NOW[:] = [(now or pd.Timestamp.now(tz="UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")]
    root = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM, "espi": ESPI})
    _sub(root, "id", "urn:uuid:" + _uuid(f"{account_id}|{first}"), ns=ATOM)
    _sub(root, "title", f"Green Button Download My Data: account {account_id}", ns=ATOM)
    _sub(root, "updated", _now_text(), ns=ATOM)
    customer = f"{BASE}/RetailCustomer/{account_id}"
    rt_seq = 0
    for sp_id, commodity, tz in points:
        up = f"{customer}/UsagePoint/{sp_id}"
        ltp = f"{BASE}/LocalTimeParameters/{_uuid(tz)[:8]}"
        content = _entry(
            root, up, f"Service point {sp_id}", [f"{up}/MeterReading", ltp], up=f"{customer}/UsagePoint"
        )
        upx = _sub(content, "UsagePoint")
        _sub(_sub(upx, "ServiceCategory"), "kind", SERVICE_KIND.get(commodity, 0))
        params = _sub(_entry(root, ltp, f"Local time: {tz}", []), "LocalTimeParameters")
        for k, v in local_time_parameters(tz, first.year).items():
            _sub(params, k, v)
        rows = intervals[intervals["service_point_id"] == sp_id]
        for (meter_id, channel), series in rows.groupby(["meter_id", "channel"], sort=True):
            unit = str(series["unit"].iloc[0])
            if unit not in UOM:
                raise ValueError(f"unit {unit!r} of meter {meter_id} has no ESPI unit of measure")
            uom, factor, espi_commodity = UOM[unit]
            seconds = int(series["interval_seconds"].mode().iloc[0])
            rt_seq += 1
            mr = f"{up}/MeterReading/{meter_id}"
            rt = f"{BASE}/ReadingType/{rt_seq}"
            _sub(_entry(root, mr, f"Meter {meter_id} {channel}", [rt, f"{mr}/IntervalBlock"], up=f"{up}/MeterReading"),
                 "MeterReading")  # fmt: skip
            rtx = _sub(_entry(root, rt, f"{unit} {channel}", []), "ReadingType")
            for k, v in [
                ("accumulationBehaviour", 4),
                ("commodity", espi_commodity),
                ("currency", 840),
                ("dataQualifier", 12),
                ("flowDirection", FLOW.get(channel, 1)),
                ("intervalLength", seconds),
                ("kind", 12),
                ("phase", 769),
                ("powerOfTenMultiplier", POWER),
                ("timeAttribute", 0),
                ("uom", uom),
            ]:
                _sub(rtx, k, v)
            _blocks(root, mr, series, tz, factor)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _blocks(root, mr: str, series: pd.DataFrame, tz: str, factor: float) -> None:
    s = series.sort_values("interval_end")
    end = pd.to_datetime(s["interval_end"], utc=True)
    secs = s["interval_seconds"].astype("int64").to_numpy()
    start_epoch = ((end - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(
        dtype="int64"
    ) - secs
    day = (end - pd.to_timedelta(secs, unit="s")).dt.tz_convert(tz).dt.date.to_numpy()
    scaled = s["value"].astype("float64").to_numpy() * factor / 10.0**POWER
    quality = s["espi_quality"].astype("float64").to_numpy()
    fallback = s["status"].map(DEFAULT_QUALITY).astype("float64").to_numpy()
    quality = np.where(np.isnan(quality), fallback, quality)
    status = s["status"].to_numpy()
    for i, d in enumerate(sorted(set(day))):
        idx = np.nonzero(day == d)[0]
        content = _entry(root, f"{mr}/IntervalBlock/{d.isoformat()}", f"{d}", [], up=f"{mr}/IntervalBlock")
        block = _sub(content, "IntervalBlock")
        interval = _sub(block, "interval")
        first = int(start_epoch[idx[0]])
        _sub(interval, "duration", int(start_epoch[idx[-1]] + secs[idx[-1]] - first))
        _sub(interval, "start", first)
        for j in idx:
            reading = _sub(block, "IntervalReading")
            if not np.isnan(quality[j]) and (quality[j] != 0 or status[j] != "valid"):
                _sub(_sub(reading, "ReadingQuality"), "quality", int(quality[j]))
            period = _sub(reading, "timePeriod")
            _sub(period, "duration", int(secs[j]))
            _sub(period, "start", int(start_epoch[j]))
            if not np.isnan(scaled[j]):
                _sub(reading, "value", int(round(scaled[j])))
        del i
