"""Green Button / ESPI Atom adapter: resource graph, scaling, quality, time quirks, writer round trip."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartmdm_pipelines.adapters.base import SourceConfig
from smartmdm_pipelines.adapters.green_button import ADAPTER
from smartmdm_pipelines.adapters.registry import detect_format, parse_file
from smartmdm_pipelines.domain.readings import normalise_units
from smartmdm_pipelines.simulate.writers.base import SCHEMAS, Delivery
from smartmdm_pipelines.simulate.writers.green_button import GreenButtonWriter

ESPI = 'xmlns="http://naesb.org/espi"'
R = "/espi/1_1/resource"
UP = f"{R}/RetailCustomer/9B6C/UsagePoint/5446AF3F"
T0 = 1330578000  # 2012-03-01T05:00:00Z


# -- fixture builders (from the ESPI schema, not copied from any sample file) ----------------------
def entry(self_href: str, up: str = "", related: tuple[str, ...] = (), content: str = "") -> str:
    links = f'<link rel="self" href="{self_href}"/>\n'
    if up:
        links += f'<link rel="up" href="{up}"/>\n'
    links += "".join(f'<link rel="related" href="{h}"/>\n' for h in related)
    return (
        f"<entry>\n<id>urn:test:{self_href}</id>\n{links}<title/>\n<content>{content}</content>\n</entry>\n"
    )


def usage_point(up: str = UP, kind: int | str = 0) -> str:
    return entry(
        up,
        up.rsplit("/", 1)[0],
        (f"{up}/MeterReading", f"{R}/LocalTimeParameters/01"),
        f"<UsagePoint {ESPI}><ServiceCategory><kind>{kind}</kind></ServiceCategory></UsagePoint>",
    )


def meter_reading(mr: str, rt: str, up: str = UP) -> str:
    return entry(
        f"{up}/MeterReading/{mr}",
        f"{up}/MeterReading",
        (f"{up}/MeterReading/{mr}/IntervalBlock", rt),
        f"<MeterReading {ESPI}/>",
    )


def reading_type(rt: str, **fields: object) -> str:
    body = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    return entry(rt, f"{R}/ReadingType", (), f"<ReadingType {ESPI}>{body}</ReadingType>")


def reading(
    start: object, duration: object, value: object = None, quality: object = None, extra: str = ""
) -> str:
    q = f"<ReadingQuality><quality>{quality}</quality></ReadingQuality>" if quality is not None else ""
    v = f"<value>{value}</value>" if value is not None else ""
    return f"<IntervalReading><cost>1</cost>{q}<timePeriod><duration>{duration}</duration><start>{start}</start>{extra}</timePeriod>{v}</IntervalReading>\n"


def block(mr: str, n: int, readings: list[str], header: tuple[int, int] | None = None, up: str = UP) -> str:
    head = (
        f"<interval><duration>{header[1]}</duration><start>{header[0]}</start></interval>\n" if header else ""
    )
    return entry(
        f"{up}/MeterReading/{mr}/IntervalBlock/{n}",
        f"{up}/MeterReading/{mr}/IntervalBlock",
        (),
        f"<IntervalBlock {ESPI}>\n{head}{''.join(readings)}</IntervalBlock>",
    )


def feed(*entries: str, prolog: str = "") -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        + prolog
        + '<feed xmlns="http://www.w3.org/2005/Atom">\n<id>urn:uuid:feed</id>\n<title>t</title>\n'
        + "".join(entries)
        + "</feed>\n"
    )


ELECTRIC_RT = dict(
    accumulationBehaviour=4,
    commodity=1,
    flowDirection=1,
    intervalLength=900,
    kind=12,
    powerOfTenMultiplier=0,
    uom=72,
)


def write(tmp_path: Path, text: str | bytes, name: str = "gb.xml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    at = -1
    for _ in range(occurrence):
        at = text.index(needle, at + 1)
    return text.count("\n", 0, at) + 1


def parse(path: Path, **source: object):
    return ADAPTER.parse(path, SourceConfig(**source))


# -- the resource graph ------------------------------------------------------------------------------
def test_feed_loads_scaled_values_with_reading_quality_over_default_quality(tmp_path: Path) -> None:
    text = feed(
        usage_point(),
        meter_reading("01", f"{R}/ReadingType/07"),
        reading_type(f"{R}/ReadingType/07", **ELECTRIC_RT, defaultQuality=17),
        block(
            "01",
            1,
            [reading(T0, 900, 282, 8), reading(T0 + 900, 900, 323), reading(T0 + 1800, 900, 294, 7)],
            header=(T0, 86400),
        ),
    )
    parsed = parse(write(tmp_path, text))
    assert parsed.status == "loaded" and parsed.records == 3 and parsed.fatal is None
    iv = parsed.intervals
    assert iv["meter_id"].tolist() == ["RetailCustomer/9B6C/UsagePoint/5446AF3F"] * 3
    assert iv["channel"].tolist() == ["kwh_delivered"] * 3
    assert iv["value"].tolist() == pytest.approx([0.282, 0.323, 0.294])
    assert iv["unit"].tolist() == ["kWh"] * 3 and iv["source_unit"].tolist() == ["Wh"] * 3
    assert iv["interval_end"].tolist() == [
        pd.Timestamp("2012-03-01T05:15Z"),
        pd.Timestamp("2012-03-01T05:30Z"),
        pd.Timestamp("2012-03-01T05:45Z"),
    ]
    assert iv["interval_seconds"].tolist() == [900] * 3
    assert iv["source_quality"].tolist() == ["8", "17", "7"]
    assert iv["line"].tolist() == [line_of(text, "<IntervalReading>", k) for k in (1, 2, 3)]
    assert detect_format(write(tmp_path, text, "again.xml")) == "green_button"


def test_entries_in_any_order_several_usage_points_and_flow_directions(tmp_path: Path) -> None:
    up2 = f"{R}/RetailCustomer/9B6C/UsagePoint/77"
    rt = {
        "del": reading_type(f"{R}/ReadingType/del", **ELECTRIC_RT),
        "rec": reading_type(f"{R}/ReadingType/rec", **{**ELECTRIC_RT, "flowDirection": 19}),
        "net": reading_type(f"{R}/ReadingType/net", **{**ELECTRIC_RT, "flowDirection": 4}),
        "var": reading_type(f"{R}/ReadingType/var", **{**ELECTRIC_RT, "uom": 73, "flowDirection": 19}),
    }
    text = feed(
        # blocks first, then reading types, meter readings, usage points last
        block("a", 1, [reading(T0, 900, 1000)], up=up2),
        block("b", 1, [reading(T0, 900, -250)], up=up2),
        block("c", 1, [reading(T0, 900, 500)]),
        block("d", 1, [reading(T0, 900, 40)]),
        *rt.values(),
        meter_reading("a", f"{R}/ReadingType/del", up=up2),
        meter_reading("b", f"{R}/ReadingType/net", up=up2),
        meter_reading("c", f"{R}/ReadingType/rec"),
        meter_reading("d", f"{R}/ReadingType/var"),
        usage_point(up2),
        usage_point(),
    )
    iv = parse(write(tmp_path, text)).intervals
    got = dict(zip(zip(iv["meter_id"], iv["channel"], strict=True), iv["value"], strict=True))
    up1, up2 = "RetailCustomer/9B6C/UsagePoint/5446AF3F", "RetailCustomer/9B6C/UsagePoint/77"
    assert got == {
        (up2, "kwh_delivered"): 1.0,
        (up2, "kwh_net"): -0.25,
        (up1, "kwh_received"): 0.5,
        (up1, "kvarh_received"): 0.04,
    }
    assert iv.loc[iv["channel"] == "kvarh_received", "unit"].item() == "kVARh"


def test_usage_points_keep_their_customer_or_subscription_scope(tmp_path: Path) -> None:
    """Issue 9 item 4: ``RetailCustomer/5/UsagePoint/1`` and ``RetailCustomer/1/UsagePoint/1`` are
    two meters; a root-form href is the custodian's own id."""
    ids = []
    for up in (
        f"https://utility.example{R}/RetailCustomer/5/UsagePoint/1",
        f"{R}/RetailCustomer/1/UsagePoint/1",
        f"{R}/Subscription/77/UsagePoint/1",
        f"{R}/UsagePoint/G%20000123",
    ):
        text = feed(
            usage_point(up),
            meter_reading("01", f"{R}/ReadingType/07", up=up),
            reading_type(f"{R}/ReadingType/07", **ELECTRIC_RT),
            block("01", 1, [reading(T0, 900, 282)], up=up),
        )
        ids += parse(write(tmp_path, text)).intervals["meter_id"].tolist()
    assert ids == [
        "RetailCustomer/5/UsagePoint/1",
        "RetailCustomer/1/UsagePoint/1",
        "Subscription/77/UsagePoint/1",
        "G 000123",
    ]


def test_reverse_order_readings_and_lying_or_missing_block_headers(tmp_path: Path) -> None:
    readings = [reading(T0 + 3600 * k, 3600, 100 + k) for k in (2, 1, 0)]
    text = feed(
        usage_point(),
        meter_reading("01", f"{R}/ReadingType/h"),
        reading_type(f"{R}/ReadingType/h", **{**ELECTRIC_RT, "intervalLength": 3600}),
        block("01", 1, readings, header=(T0 - 86400, 744 * 3600)),  # a 744-hour header over 3 readings
        block("01", 2, [reading(T0 + 3 * 3600, 3600, 200)]),  # no header at all
    )
    parsed = parse(write(tmp_path, text))
    assert parsed.status == "loaded"
    iv = parsed.intervals
    assert iv["value"].tolist() == pytest.approx([0.102, 0.101, 0.100, 0.200])  # file order kept
    assert iv["interval_end"].tolist() == [
        pd.Timestamp(T0 + 3600 * k, unit="s", tz="UTC") for k in (3, 2, 1, 4)
    ]


def test_orphan_reading_type_and_other_resources_are_ignored(tmp_path: Path) -> None:
    ltp = entry(
        f"{R}/LocalTimeParameters/01",
        f"{R}/LocalTimeParameters",
        (),
        f"<LocalTimeParameters {ESPI}><dstEndRule>B40E2000</dstEndRule><dstOffset>3600</dstOffset>"
        "<dstStartRule>360E2000</dstStartRule><tzOffset>-18000</tzOffset></LocalTimeParameters>",
    )
    summary = entry(
        f"{UP}/ElectricPowerUsageSummary/1",
        f"{UP}/ElectricPowerUsageSummary",
        (),
        f"<ElectricPowerUsageSummary {ESPI}><billingPeriod><duration>86400</duration><start>{T0}</start>"
        "</billingPeriod><overallConsumptionLastPeriod><powerOfTenMultiplier>0</powerOfTenMultiplier>"
        "<uom>72</uom><value>999</value></overallConsumptionLastPeriod></ElectricPowerUsageSummary>",
    )
    text = feed(
        usage_point(),
        ltp,
        summary,
        reading_type(f"{R}/ReadingType/orphan", **{**ELECTRIC_RT, "uom": 38}),
        meter_reading("01", f"{R}/ReadingType/07"),
        reading_type(f"{R}/ReadingType/07", **ELECTRIC_RT),
        block("01", 1, [reading(T0, 900, 5)]),
    )
    parsed = parse(write(tmp_path, text))
    assert parsed.status == "loaded" and parsed.records == 1
    assert parsed.intervals["value"].tolist() == [0.005]


def test_empty_elements_whitespace_and_non_standard_elements(tmp_path: Path) -> None:
    rt = reading_type(
        f"{R}/ReadingType/07",
        accumulationBehaviour=" 4 ",
        commodity="",
        flowDirection="\n  ",
        intervalLength=900,
        kind="",
        powerOfTenMultiplier=" ",
        uom="\n72\n",
        interharmonic="",
        argument="",
    )
    text = feed(
        usage_point(kind=""),
        meter_reading("01", f"{R}/ReadingType/07"),
        rt,
        block(
            "01",
            1,
            [
                reading(f"  {T0}\n", " 900 ", "\n 282 \n"),
                reading(T0 + 900, "", "  "),  # empty duration -> intervalLength; blank value -> no read
                reading(T0 + 1800, 900, extra="<timezone>EST</timezone>"),  # no value element at all
                "<IntervalReading><timePeriod><duration>900</duration>"
                f"<start>{T0 + 2700}</start></timePeriod><value/><ReadingQuality><quality> </quality>"
                "</ReadingQuality></IntervalReading>\n",
            ],
        ),
    )
    parsed = parse(write(tmp_path, text))
    assert parsed.status == "loaded", parsed.rejected
    iv = parsed.intervals
    assert iv["value"].iloc[0] == pytest.approx(0.282)
    assert iv["value"].iloc[1:].isna().all()  # no-reads are NaN, never zero
    assert iv["interval_seconds"].tolist() == [900] * 4
    assert iv["channel"].tolist() == ["kwh_delivered"] * 4  # empty flowDirection = forward
    assert iv["source_quality"].tolist() == [""] * 4


# -- timestamps ------------------------------------------------------------------------------------
def _simple_entries(readings: list[str], **rt: object) -> list[str]:
    return [
        usage_point(),
        meter_reading("01", f"{R}/ReadingType/07"),
        reading_type(f"{R}/ReadingType/07", **{**ELECTRIC_RT, **rt}),
        block("01", 1, readings),
    ]


def _simple(readings: list[str], **rt: object) -> str:
    return feed(*_simple_entries(readings, **rt))


def test_every_reading_with_the_same_fractional_start_rejects_the_file(tmp_path: Path) -> None:
    text = _simple([reading("1330578000.437", 900, v) for v in (1, 2, 3)])
    parsed = parse(write(tmp_path, text))
    assert parsed.status == "rejected"
    assert parsed.fatal_line == line_of(text, "<IntervalReading>")
    assert "all 3 IntervalReadings" in parsed.fatal and "1330578000.437" in parsed.fatal
    assert "export timestamp" in parsed.fatal
    assert parsed.intervals.empty and parsed.rejected.empty


def test_every_reading_with_the_same_whole_start_rejects_the_file(tmp_path: Path) -> None:
    parsed = parse(write(tmp_path, _simple([reading(T0, 900, v) for v in (1, 2)])))
    assert parsed.status == "rejected" and "same timePeriod start 1330578000" in parsed.fatal


@pytest.mark.parametrize("duration", [0, -900])
def test_zero_or_negative_duration_rejects_the_file(tmp_path: Path, duration: int) -> None:
    text = _simple([reading(T0, 900, 1), reading(T0 + 900, duration, 2)])
    parsed = parse(write(tmp_path, text))
    assert parsed.status == "rejected"
    assert parsed.fatal_line == line_of(text, "<IntervalReading>", 2)
    assert f"duration is {duration} s" in parsed.fatal


def test_one_fractional_start_is_a_bad_record_not_a_bad_file(tmp_path: Path) -> None:
    text = _simple([reading(T0, 900, 1), reading(f"{T0 + 900}.5", 900, 2), reading(T0 + 1800, 900, 3)])
    parsed = parse(write(tmp_path, text))
    assert parsed.status == "partially loaded"
    assert parsed.rejected["reason"].tolist() == [
        f"line {line_of(text, '<IntervalReading>', 2)}: timePeriod start '{T0 + 900}.5' is not whole epoch seconds"
    ]


def test_tz_offset_sign_never_shifts_epoch_times(tmp_path: Path) -> None:
    def with_ltp(offset: int) -> str:
        ltp = entry(
            f"{R}/LocalTimeParameters/01",
            f"{R}/LocalTimeParameters",
            (),
            f"<LocalTimeParameters {ESPI}><dstOffset>3600</dstOffset><tzOffset>{offset}</tzOffset></LocalTimeParameters>",
        )
        return feed(ltp, *_simple_entries([reading(T0, 900, 1), reading(T0 + 900, 900, 2)]))

    right = parse(write(tmp_path, with_ltp(-18000), "right.xml")).intervals
    wrong = parse(write(tmp_path, with_ltp(18000), "wrong.xml")).intervals
    pd.testing.assert_frame_equal(right, wrong)
    assert right["interval_end"].iloc[0] == pd.Timestamp("2012-03-01T05:15Z")
    # nor does the source's configured zone: ESPI times are UTC epochs
    other = parse(write(tmp_path, with_ltp(-18000), "tz.xml"), timezone="America/New_York").intervals
    pd.testing.assert_frame_equal(right, other)


def test_daily_values_on_dst_days_keep_their_23_and_25_hour_lengths(tmp_path: Path) -> None:
    spring = 1710050400  # 2024-03-10T06:00Z = local midnight America/Chicago (CST)
    fall = 1730610000  # 2024-11-03T05:00Z = local midnight America/Chicago (CDT)
    text = _simple(
        [reading(spring - 86400, 86400, 10000), reading(spring, 82800, 9000), reading(fall, 90000, 11000)],
        intervalLength=86400,
    )
    iv = parse(write(tmp_path, text)).intervals
    assert iv["interval_seconds"].tolist() == [86400, 82800, 90000]
    assert iv["interval_end"].tolist() == [
        pd.Timestamp("2024-03-10T06:00Z"),
        pd.Timestamp("2024-03-11T05:00Z"),
        pd.Timestamp("2024-11-04T06:00Z"),
    ]


def test_billing_period_readings_keep_their_length(tmp_path: Path) -> None:
    text = _simple([reading(T0, 30 * 86400, 812000), reading(T0 + 30 * 86400, 31 * 86400, 790000)])
    iv = parse(write(tmp_path, text)).intervals
    assert iv["interval_seconds"].tolist() == [2592000, 2678400]
    assert iv["value"].tolist() == pytest.approx([812.0, 790.0])


# -- commodities, units and registers -------------------------------------------------------------
def test_gas_in_therms_with_multiplier_minus_3_and_volumes_by_commodity(tmp_path: Path) -> None:
    gas_up, water_up, unknown_up = (f"{R}/RetailCustomer/1/UsagePoint/{x}" for x in ("G1", "W1", "X1"))
    text = feed(
        usage_point(gas_up, kind=1),
        usage_point(water_up, kind=2),
        usage_point(unknown_up, kind=""),
        reading_type(
            f"{R}/ReadingType/therm", accumulationBehaviour=4, commodity=7, uom=169, powerOfTenMultiplier=-3
        ),
        reading_type(f"{R}/ReadingType/ft3", accumulationBehaviour=4, uom=119, powerOfTenMultiplier=0),
        reading_type(f"{R}/ReadingType/gal", accumulationBehaviour=4, uom=128, powerOfTenMultiplier=-1),
        meter_reading("t", f"{R}/ReadingType/therm", up=gas_up),
        meter_reading("v", f"{R}/ReadingType/ft3", up=gas_up),
        meter_reading("w", f"{R}/ReadingType/ft3", up=water_up),
        meter_reading("g", f"{R}/ReadingType/gal", up=water_up),
        meter_reading("x", f"{R}/ReadingType/ft3", up=unknown_up),
        block("t", 1, [reading(T0, 86400, 12000)], up=gas_up),
        block("v", 1, [reading(T0, 86400, 250)], up=gas_up),
        block("w", 1, [reading(T0, 3600, 10)], up=water_up),
        block("g", 1, [reading(T0, 3600, 25)], up=water_up),
        block("x", 1, [reading(T0, 3600, 10)], up=unknown_up),
    )
    parsed = parse(write(tmp_path, text))
    iv = parsed.intervals
    g1, w1 = "RetailCustomer/1/UsagePoint/G1", "RetailCustomer/1/UsagePoint/W1"
    assert list(zip(iv["meter_id"], iv["channel"], iv["unit"], iv["source_unit"], strict=True)) == [
        (g1, "gas", "therm", "therm"),
        (g1, "gas", "CCF", "ft3"),
        (w1, "water", "gal", "ft3"),
        (w1, "water", "gal", "gal"),
    ]
    assert iv["value"].tolist() == pytest.approx([12.0, 2.5, 74.80519480519482, 2.5])
    (reason,) = parsed.rejected["reason"]
    assert reason.startswith(
        f"line {line_of(text, '<IntervalReading>', 5)}: IntervalReading rejected because"
    )
    assert "neither its commodity nor the UsagePoint's ServiceCategory" in reason
    assert parsed.records == 5


def test_summation_and_bulk_quantity_are_register_reads(tmp_path: Path) -> None:
    text = feed(
        usage_point(),
        reading_type(f"{R}/ReadingType/sum", accumulationBehaviour=9, uom=72, powerOfTenMultiplier=3),
        reading_type(f"{R}/ReadingType/bulk", accumulationBehaviour=1, uom=72, flowDirection=19),
        meter_reading("s", f"{R}/ReadingType/sum"),
        meter_reading("b", f"{R}/ReadingType/bulk"),
        block("s", 1, [reading(T0, 0, 48213), reading(T0 + 86400, "", 48225)]),
        block("b", 1, [reading(T0, 86400, 7000), reading(T0 + 86400, 86400, "")]),
    )
    parsed = parse(write(tmp_path, text))
    rg = parsed.registers
    assert rg["channel"].tolist() == ["kwh_delivered", "kwh_delivered", "kwh_received"]
    assert rg["value"].tolist() == pytest.approx([48213.0, 48225.0, 7.0])
    assert rg["read_at"].tolist() == [
        pd.Timestamp(T0, unit="s", tz="UTC"),
        pd.Timestamp(T0 + 86400, unit="s", tz="UTC"),
        pd.Timestamp(T0 + 86400, unit="s", tz="UTC"),  # bulkQuantity: the register at the period's end
    ]
    assert parsed.intervals.empty
    assert parsed.rejected["reason"].str.contains("register reading has no value").tolist() == [True]
    assert parsed.records == 4


def test_bad_readings_are_rejected_with_their_line_and_the_rest_loads(tmp_path: Path) -> None:
    text = feed(
        usage_point(),
        reading_type(f"{R}/ReadingType/ok", **ELECTRIC_RT),
        reading_type(f"{R}/ReadingType/demand", **{**ELECTRIC_RT, "uom": 38, "kind": 8}),
        reading_type(f"{R}/ReadingType/inst", **{**ELECTRIC_RT, "accumulationBehaviour": 12}),
        reading_type(f"{R}/ReadingType/total", **{**ELECTRIC_RT, "flowDirection": 20}),
        meter_reading("ok", f"{R}/ReadingType/ok"),
        meter_reading("demand", f"{R}/ReadingType/demand"),
        meter_reading("inst", f"{R}/ReadingType/inst"),
        meter_reading("total", f"{R}/ReadingType/total"),
        meter_reading("nort", f"{R}/ReadingType/missing"),
        block(
            "ok",
            1,
            [
                reading(T0, 900, 1),
                reading("", 900, 2),
                reading("soon", 900, 3),
                reading(T0 + 2700, 900, "12kWh"),
                reading(T0 + 3600, "abc", 5),
                reading(1e12, 900, 6),
                reading(T0 + 5400, 900, 7),
            ],
        ),
        block("demand", 1, [reading(T0, 900, 1), reading(T0 + 900, 900, 1)]),
        block("inst", 1, [reading(T0, 900, 1)]),
        block("total", 1, [reading(T0, 900, 1)]),
        block("nort", 1, [reading(T0, 900, 1)]),
        entry(
            f"{R}/Elsewhere/IntervalBlock/1",
            f"{R}/Elsewhere/IntervalBlock",
            (),
            f"<IntervalBlock {ESPI}>{reading(T0, 900, 1)}</IntervalBlock>",
        ),
    )
    parsed = parse(write(tmp_path, text))
    assert parsed.status == "partially loaded"
    assert parsed.intervals["value"].tolist() == pytest.approx([0.001, 0.007])
    assert parsed.records == len(parsed.intervals) + len(parsed.registers) + len(parsed.rejected) == 13
    line = [line_of(text, "<IntervalReading>", k) for k in range(1, 14)]
    reasons = dict(zip(parsed.rejected["line"], parsed.rejected["reason"], strict=True))
    assert (
        reasons[line[1]]
        == f"line {line[1]}: IntervalReading has no timePeriod start (expected epoch seconds)"
    )
    assert (
        reasons[line[2]]
        == f"line {line[2]}: timePeriod start 'soon' is not a number (expected epoch seconds)"
    )
    assert reasons[line[3]] == f"line {line[3]}: value '12kWh' is not a number"
    assert reasons[line[4]] == f"line {line[4]}: timePeriod duration 'abc' is not a number"
    assert "is not a plausible instant" in reasons[line[5]]
    assert "uom 38 (W), not an energy or volume unit" in reasons[line[7]]
    assert "uom 38" in reasons[line[8]]
    assert "accumulationBehaviour 12 (instantaneous)" in reasons[line[9]]
    assert "flowDirection 20" in reasons[line[10]]
    assert "has no ReadingType" in reasons[line[11]]
    assert "is not linked to any MeterReading" in reasons[line[12]]
    raw = dict(zip(parsed.rejected["line"], parsed.rejected["raw_text"], strict=True))
    assert raw[line[3]] == f"IntervalReading start={T0 + 2700} duration=900 value=12kWh quality="


# -- document-level problems ---------------------------------------------------------------------
def test_truncated_or_damaged_xml_rejects_the_file_with_its_line(tmp_path: Path) -> None:
    text = _simple([reading(T0, 900, 1), reading(T0 + 900, 900, 2)])
    cut = text[: text.index("<IntervalReading>", text.index("<IntervalReading>") + 1) + 30]
    parsed = parse(write(tmp_path, cut))
    assert parsed.status == "rejected" and "not well-formed XML" in parsed.fatal
    assert parsed.fatal_line == cut.count("\n") + 1


def test_wrong_encoding_is_fatal_and_a_bom_is_fine(tmp_path: Path) -> None:
    text = _simple([reading(T0, 900, 1)]).replace("<title/>", "<title>Zähler</title>", 1)
    bad = parse(write(tmp_path, text.encode("latin-1"), "latin.xml"))
    assert bad.status == "rejected" and bad.fatal_line == line_of(text, "Zähler")
    good = parse(write(tmp_path, b"\xef\xbb\xbf" + text.encode("utf-8"), "bom.xml"))
    assert good.status == "loaded" and len(good.intervals) == 1


def test_not_an_atom_feed_is_fatal(tmp_path: Path) -> None:
    text = f'<?xml version="1.0"?>\n<IntervalBlock {ESPI}>{reading(T0, 900, 1)}</IntervalBlock>\n'
    parsed = parse(write(tmp_path, text))
    assert parsed.status == "rejected" and "expected an Atom <feed>" in parsed.fatal


def test_external_entities_are_not_loaded(tmp_path: Path) -> None:
    secret = write(tmp_path, "s3cret", "secret.txt")
    text = _simple([reading(T0, 900, "&x;")]).replace(
        "<feed", f'<!DOCTYPE feed [<!ENTITY x SYSTEM "file://{secret}">]>\n<feed', 1
    )
    parsed = parse(write(tmp_path, text))
    assert "s3cret" not in str(parsed.rejected.to_dict()) and "s3cret" not in str(parsed.fatal)


def test_prefixed_namespaces_are_understood(tmp_path: Path) -> None:
    text = (
        '<?xml version="1.0"?>\n<atom:feed xmlns:atom="http://www.w3.org/2005/Atom" xmlns:ns="http://naesb.org/espi">\n'
        f'<atom:entry><atom:link rel="self" href="{UP}"/><atom:link rel="related" href="{UP}/MeterReading"/>'
        "<atom:content><ns:UsagePoint><ns:ServiceCategory><ns:kind>1</ns:kind></ns:ServiceCategory></ns:UsagePoint>"
        "</atom:content></atom:entry>\n"
        f'<atom:entry><atom:link rel="self" href="{UP}/MeterReading/1"/><atom:link rel="up" href="{UP}/MeterReading"/>'
        f'<atom:link rel="related" href="{R}/ReadingType/1"/><atom:link rel="related" href="{UP}/MeterReading/1/IntervalBlock"/>'
        "<atom:content><ns:MeterReading/></atom:content></atom:entry>\n"
        f'<atom:entry><atom:link rel="self" href="{R}/ReadingType/1"/><atom:content><ns:ReadingType>'
        "<ns:accumulationBehaviour>4</ns:accumulationBehaviour><ns:commodity>7</ns:commodity>"
        "<ns:powerOfTenMultiplier>-3</ns:powerOfTenMultiplier><ns:uom>169</ns:uom></ns:ReadingType></atom:content></atom:entry>\n"
        f'<atom:entry><atom:link rel="self" href="{UP}/MeterReading/1/IntervalBlock/1"/>'
        f'<atom:link rel="up" href="{UP}/MeterReading/1/IntervalBlock"/><atom:content><ns:IntervalBlock>\n'
        f"<ns:IntervalReading><ns:timePeriod><ns:duration>2592000</ns:duration><ns:start>{T0}</ns:start>"
        "</ns:timePeriod><ns:value>12000</ns:value></ns:IntervalReading>\n"
        "</ns:IntervalBlock></atom:content></atom:entry>\n</atom:feed>\n"
    )
    path = write(tmp_path, text)
    assert detect_format(path) == "green_button"
    iv = parse_file(path).intervals
    assert iv[["meter_id", "channel", "unit"]].values.tolist() == [
        ["RetailCustomer/9B6C/UsagePoint/5446AF3F", "gas", "therm"]
    ]
    assert iv["value"].tolist() == [12.0] and iv["line"].tolist() == [
        text.count("\n", 0, text.index("<ns:IntervalReading")) + 1
    ]


def test_line_numbers_beyond_65535_are_exact(tmp_path: Path) -> None:
    padding = "<!-- a commented-out <IntervalReading> does not count -->\n" + "\n" * 70000
    text = (
        _simple([reading(T0 + 900 * k, 900, k) for k in range(3)])
        .replace("<feed", padding + "<feed", 1)
        .replace(f"<start>{T0 + 900}</start>", "<start>later</start>")
    )
    parsed = parse(write(tmp_path, text))
    expected = [line_of(text, "<IntervalReading>", k) for k in (2, 3, 4)]  # 1st hit is in the comment
    assert expected[0] > 70000
    assert parsed.intervals["line"].tolist() == [expected[0], expected[2]]
    assert parsed.rejected["line"].tolist() == [expected[1]]
    assert parsed.rejected["reason"].iloc[0].startswith(f"line {expected[1]}: ")


# -- writer ----------------------------------------------------------------------------------------
UNITS = {
    "kwh_delivered": ["kWh"],
    "kwh_received": ["kWh"],
    "kwh_net": ["kWh"],
    "kvarh": ["kVARh"],
    "kvarh_received": ["kVARh"],
    "water": ["gal", "ft3", "CCF"],
    "gas": ["therm", "CCF", "ft3"],
}
METERS = ["E000123", "W-9", "gas meter/7", "Zähler 1"]
BASE = 1717200000  # 2024-06-01T00:00:00Z


@st.composite
def canonical_intervals(draw: st.DrawFn) -> pd.DataFrame:
    streams = draw(
        st.lists(
            st.tuples(st.sampled_from(METERS), st.sampled_from(sorted(UNITS))),
            min_size=1,
            max_size=4,
            unique=True,
        )
    )
    rows = []
    for meter, channel in streams:
        unit = draw(st.sampled_from(UNITS[channel]))
        seconds = draw(st.sampled_from([300, 900, 3600, 86400]))
        slots = draw(st.lists(st.integers(0, 40), min_size=1, max_size=12, unique=True))
        for slot in slots:
            value = draw(st.none() | st.floats(-1000, 100000, allow_nan=False).map(lambda v: round(v, 3)))
            if channel not in ("kwh_net",) and value is not None:
                value = abs(value)
            quality = draw(st.sampled_from(["", "E", "N", "0", "17"]))
            rows.append((meter, channel, BASE + (slot + 1) * seconds, seconds, value, unit, quality))
    return pd.DataFrame(
        rows, columns=["meter_id", "channel", "t", "interval_seconds", "value", "unit", "quality"]
    )


def _table(frame: pd.DataFrame, record: str = "intervals") -> pa.Table:
    time_col = "interval_end" if record == "intervals" else "read_at"
    data = {
        "meter_id": frame["meter_id"].tolist(),
        "channel": frame["channel"].tolist(),
        time_col: pa.array(frame["t"].to_numpy(np.int64), pa.timestamp("s", tz="UTC")),
        "value": pa.array(frame["value"].tolist(), pa.float64()),
        "unit": frame["unit"].tolist(),
        "quality": frame["quality"].tolist(),
    }
    if record == "intervals":
        data["interval_seconds"] = pa.array(frame["interval_seconds"].to_numpy(np.int32))
    return pa.table({name: data[name] for name in SCHEMAS[record].names}).cast(SCHEMAS[record])


def _expected(frame: pd.DataFrame) -> pd.DataFrame:
    value, unit, _ = normalise_units(frame["value"].astype("float64"), frame["unit"], frame["channel"])
    espi = {"": "", "E": "8", "N": "", "0": "0", "17": "17"}
    quality = frame["quality"].map(espi)
    return pd.DataFrame(
        {
            "meter_id": frame["meter_id"],
            "channel": frame["channel"],
            "t": frame["t"],
            "value": value,
            "unit": unit,
            "quality": quality,
        }
    )


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=canonical_intervals(), split=st.integers(0, 100))
def test_writer_round_trip(frame: pd.DataFrame, split: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        writer = GreenButtonWriter(Path(tmp))
        delivery = Delivery("ami-east", "intervals", "20240601")
        writer.open(delivery)
        cut = split * len(frame) // 100
        writer.write(delivery, _table(frame.iloc[:cut]))
        writer.write(delivery, _table(frame.iloc[cut:]))
        (path,) = writer.close()
        parsed = ADAPTER.parse(Path(tmp) / path, SourceConfig())
    assert parsed.status == "loaded", (parsed.fatal, parsed.rejected.head())
    iv = parsed.intervals
    got = pd.DataFrame(
        {
            "meter_id": iv["meter_id"],
            "channel": iv["channel"],
            "t": iv["interval_end"].astype("int64") // 10**6,
            "value": iv["value"],
            "unit": iv["unit"],
            "quality": iv["source_quality"],
            "seconds": iv["interval_seconds"],
        }
    )
    keys = ["meter_id", "channel", "t"]
    got = got.sort_values(keys).reset_index(drop=True)
    want = _expected(frame).assign(seconds=frame["interval_seconds"]).sort_values(keys).reset_index(drop=True)
    assert got[keys + ["unit", "quality"]].astype(str).equals(want[keys + ["unit", "quality"]].astype(str))
    assert got["seconds"].tolist() == want["seconds"].tolist()
    assert got["value"].isna().tolist() == want["value"].isna().tolist()
    np.testing.assert_allclose(got["value"].fillna(0), want["value"].fillna(0), rtol=1e-9, atol=1e-9)


def test_writer_registers_events_and_reopened_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(GreenButtonWriter, "max_open_files", 1)
    writer = GreenButtonWriter(tmp_path)
    registers = Delivery("handheld", "registers", "20240601")
    events = Delivery("ami-east", "events", "20240601")
    frame = pd.DataFrame(
        {
            "meter_id": ["M1", "M1", "G1"],
            "channel": ["kwh_delivered", "kwh_delivered", "gas"],
            "t": [BASE, BASE + 86400, BASE + 3600],
            "value": [48213.0, 48225.5, 1234.567],
            "unit": ["kWh", "kWh", "CCF"],
            "quality": ["", "E", ""],
        }
    )
    writer.open(events)
    writer.write(registers, _table(frame.iloc[:1], "registers"))
    writer.write(events, pa.table({}))  # events cannot be expressed: nothing is written
    writer.write(registers, _table(frame.iloc[1:], "registers"))  # reopened for append
    writer.duplicate(registers, Delivery("handheld", "registers", "20240601", "resend"))
    paths = writer.close()
    assert paths == [
        "headend/ami-east_20240601_events.xml",
        "headend/handheld_20240601_registers.xml",
        "headend/handheld_20240601_registers_resend.xml",
    ]
    parsed = ADAPTER.parse(tmp_path / paths[1], SourceConfig())
    rg = parsed.registers
    assert parsed.status == "loaded" and parsed.intervals.empty
    assert rg["meter_id"].tolist() == ["M1", "M1", "G1"]
    assert rg["value"].tolist() == pytest.approx([48213.0, 48225.5, 1234.567])
    assert rg["unit"].tolist() == ["kWh", "kWh", "CCF"] and rg["source_quality"].tolist() == ["", "8", ""]
    assert rg["read_at"].astype("int64").floordiv(10**6).tolist() == frame["t"].tolist()
    empty = ADAPTER.parse(tmp_path / paths[0], SourceConfig())
    assert empty.status == "loaded" and empty.records == 0
    assert (tmp_path / paths[2]).read_bytes() == (tmp_path / paths[1]).read_bytes()
