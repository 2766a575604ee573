"""Small head-end files written by the tests themselves (never read from files outside the repository)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from smartmdm_pipelines.domain.timeutil import interval_ends

INTERVAL_HEADER = "meter_id,channel,interval_end,interval_seconds,value,unit,quality\n"


def interval_file(
    path: Path,
    meters: list[str],
    day: str,
    tz: str = "America/Chicago",
    value: float = 0.25,
    bad_lines: list[str] | None = None,
    shaped: bool = False,
) -> Path:
    """One local day of 15-minute kWh reads per meter, optionally followed by bad lines.

    ``shaped`` adds a small daily shape (a constant day is, rightly, a flat-line suspect for VEE).
    """
    ends = interval_ends(pd.Timestamp(day).date(), tz, 900)
    rows = [
        f"{m},kwh_delivered,{e.strftime('%Y-%m-%dT%H:%M:%SZ')},900,"
        f"{round(value + (0.01 * (i % 4) if shaped else 0), 3)},kWh,"
        for m in meters
        for i, e in enumerate(ends)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(INTERVAL_HEADER + "\n".join(rows + (bad_lines or [])) + "\n")
    return path


def nem12_text(
    days: list[str],
    channels: tuple[str, ...] = ("E1", "B1", "Q1", "K1"),
    nmi: str = "4102335210",
    serial: str = "M1",
) -> str:
    """A NEM12 file (AEMO MDFF layout) of 30-minute reads: one 200 record per channel suffix, one
    300 record per day (``CCYYMMDD``) with values 0.001 .. 0.048 and quality A, then 900."""
    units = {"E": "kWh", "B": "kWh", "Q": "kVArh", "K": "kVArh"}
    values = ",".join(f"{0.001 * (i + 1):.3f}" for i in range(48))
    lines = ["100,NEM12,202404020930,MDPX,RETAILER"]
    for suffix in channels:
        lines.append(f"200,{nmi},{''.join(channels)},{suffix},{suffix},N1,{serial},{units[suffix[0]]},30,")
        lines += [f"300,{day},{values},A,,,20240402093000," for day in days]
    return "\n".join(lines + ["900"]) + "\n"


def cmep_line(meter: str, start: str, protocols: list[str], values: list[str], units: str = "KWH") -> str:
    """One CMEP MEPMD01 interval record of 15-minute readings from ``start`` (``CCYYMMDDHHMM``, local
    time of the source), each with its protocol text and value (blank times after the first)."""
    triplets = [
        f"{start if i == 0 else ''},{q},{v}" for i, (q, v) in enumerate(zip(protocols, values, strict=True))
    ]
    return (
        f"MEPMD01,20080501,HEADEND,UTIL:1,MDM,,202403100000,{meter},OK,E,{units},1.0,00000015,"
        f"{len(values)}," + ",".join(triplets) + "\n"
    )


def green_button_feed(usage_point: str, start: int, values: list[int], seconds: int = 3600) -> str:
    """A minimal ESPI feed: one UsagePoint (its ``self`` href), a Wh delta ReadingType, one
    MeterReading and one IntervalBlock of ``values`` every ``seconds`` from epoch ``start``."""
    rt = "/espi/1_1/resource/ReadingType/1"
    mr = f"{usage_point}/MeterReading/1"

    def entry(self_href: str, related: list[str], content: str) -> str:
        links = f'<link rel="self" href="{self_href}"/>' + "".join(
            f'<link rel="related" href="{h}"/>' for h in related
        )
        return f"<entry>{links}<content>{content}</content></entry>\n"

    readings = "".join(
        f"<IntervalReading><timePeriod><duration>{seconds}</duration><start>{start + i * seconds}</start>"
        f"</timePeriod><value>{v}</value></IntervalReading>"
        for i, v in enumerate(values)
    )
    espi = 'xmlns="http://naesb.org/espi"'
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">\n'
        + entry(usage_point, [f"{usage_point}/MeterReading"], f"<UsagePoint {espi}/>")
        + entry(
            rt,
            [],
            f"<ReadingType {espi}><accumulationBehaviour>4</accumulationBehaviour>"
            f"<flowDirection>1</flowDirection><uom>72</uom><powerOfTenMultiplier>0</powerOfTenMultiplier>"
            f"</ReadingType>",
        )
        + entry(mr, [f"{mr}/IntervalBlock", rt], f"<MeterReading {espi}/>")
        + entry(f"{mr}/IntervalBlock/1", [], f"<IntervalBlock {espi}>{readings}</IntervalBlock>")
        + "</feed>\n"
    )
