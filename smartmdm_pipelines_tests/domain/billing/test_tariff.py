"""URDB import: key variants, validation with field paths, store frames."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from smartmdm_pipelines.domain.billing.tariff import (
    SCHEDULE_COLUMNS,
    TariffError,
    holiday_frame,
    schedule_frame,
)
from smartmdm_pipelines.domain.billing.urdb import load_tariff, parse_urdb
from smartmdm_pipelines_tests.domain.billing.helpers import ZEROS, fixture, fixture_json, peak_tariff


def test_fpl_rs1_parses_tiers_adj_and_fixed_charge() -> None:
    t = load_tariff(fixture("fpl_rs1.json"))
    assert t.source == "fpl_rs1.json"
    assert len(t.energy_periods) == 1
    low, high = t.energy_periods[0]
    assert low.max == 1000 and low.rate == pytest.approx(0.08721, abs=1e-12)
    assert high.max == np.inf and high.rate == pytest.approx(0.10803, abs=1e-12)
    assert (low.base_rate, low.adj, low.unit) == (0.07531, 0.0119, "kWh")
    assert t.fixed_charge == 7.57 and t.fixed_charge_unit == "$/month"
    assert t.netting == "per_period"  # no dgrules -> net metering
    assert t.startdate == dt.date(2015, 6, 1)
    assert t.energy_weekday.shape == (12, 24) and not t.energy_weekday.any()


@pytest.mark.parametrize("name", ["double_encoded.json", "api_items.json"])
def test_double_encoded_and_api_wrapper_give_the_same_tariff(name: str) -> None:
    reference = load_tariff(fixture("fpl_rs1.json")).to_dict()
    got = load_tariff(fixture(name)).to_dict()
    reference.pop("source"), got.pop("source")
    assert got == reference


def test_dict_json_string_and_bytes_are_accepted() -> None:
    data = fixture_json("fpl_rs1.json")
    for value in (data, json.dumps(data), json.dumps(data).encode()):
        assert parse_urdb(value).energy_periods[0][0].rate == pytest.approx(0.08721)


def test_camel_case_web_export_keys_are_normalised() -> None:
    t = load_tariff(fixture("camel_export.json"))
    assert [len(p) for p in t.energy_periods] == [2, 1]
    assert t.energy_periods[0][0].rate == pytest.approx(0.11) and t.energy_periods[0][0].sell == 0.03
    assert t.energy_labels == ["off-peak", "on-peak"]
    assert t.energy_weekday[0, 16] == 1 and t.energy_weekday[0, 15] == 0
    assert t.demand_periods[1][0].rate == 12.5 and t.demand_window == 15
    assert t.flat_demand_unit == "kW" and t.flat_demand_months == [0] * 12
    assert [x.max for x in t.flat_demand_periods[0]] == [100, np.inf]
    assert t.reactive_charge == 0.25  # demandReactPwrCharge
    assert t.ratchet_percentages == [0.8] * 12  # percent values normalised to fractions
    assert (t.lookback_percent, t.lookback_range) == (0.5, 6)
    assert (t.fixed_charge, t.fixed_charge_unit) == (3.298, "$/day")
    assert (t.min_charge, t.min_charge_unit) == (50, "$/month")
    assert t.netting == "per_interval" and t.netting_interval_seconds is None
    assert t.coincident_periods[0][0].rate == 2.0 and t.coincident_schedule.shape == (12, 24)


@pytest.mark.parametrize(
    ("dgrules", "netting", "seconds"),
    [
        ("Net Metering", "per_period", None),
        ("Net Billing Instantaneous", "per_interval", None),
        ("Net Billing Hourly", "per_interval", 3600),
        ("Buy All Sell All", "buy_all_sell_all", None),
    ],
)
def test_dgrules_map_to_netting(dgrules: str, netting: str, seconds: int | None) -> None:
    t = parse_urdb({**peak_tariff(), "dgrules": dgrules})
    assert (t.netting, t.netting_interval_seconds) == (netting, seconds)


def test_legacy_and_new_charge_fields() -> None:
    t = parse_urdb({**peak_tariff(), "fixedmonthlycharge": 5, "minmonthlycharge": 10, "annualmincharge": 120})
    assert (t.fixed_charge, t.fixed_charge_unit, t.min_charge, t.annual_min_charge) == (5, "$/month", 10, 120)
    t = parse_urdb({**peak_tariff(), "fixedchargefirstmeter": 60, "fixedchargeunits": "$/year"})
    assert (t.fixed_charge, t.fixed_charge_unit) == (60, "$/year")


def test_volume_units_and_unlimited_1e38() -> None:
    t = load_tariff(fixture("london_water_ccf.json"))
    assert t.energy_unit == "CCF"
    assert [x.max for x in t.energy_periods[0]] == [12, 40, np.inf]
    assert t.energy_weekday is not None and not t.energy_weekday.any()  # one period: default schedule
    t = parse_urdb({**peak_tariff(), "energyratestructure": [[{"max": 1e38, "rate": 1}], [{"rate": 2}]]})
    assert t.energy_periods[0][0].max == np.inf


def _err(data, source: str = "fpl.json") -> str:
    with pytest.raises(TariffError) as info:
        parse_urdb(data, source=source)
    return str(info.value)


def test_bad_rate_names_the_source_and_path() -> None:
    data = fixture_json("fpl_rs1.json")
    data["energyratestructure"][0][1]["rate"] = "abc"
    assert _err(data) == 'fpl.json: energyratestructure[0][1].rate: expected a number, got "abc"'


def test_camel_case_error_path_uses_the_key_as_written() -> None:
    data = fixture_json("camel_export.json")
    data["energyRateStructure"][1][0]["rate"] = None
    assert _err(data, "x.json") == "x.json: energyRateStructure[1][0].rate: expected a number, got None"


def test_schedule_pointing_at_a_missing_period_is_rejected() -> None:
    data = peak_tariff()
    data["energyweekdayschedule"][6][15] = 2
    assert _err(data) == (
        "fpl.json: energyweekdayschedule[6][15]: period 2 does not exist (energyratestructure has 2 period(s))"
    )


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(energyweekendschedule=ZEROS[:11]), "energyweekendschedule: expected 12 months"),
        (
            lambda d: d["energyweekdayschedule"][3].pop(),
            "energyweekdayschedule[3]: expected 24 hourly periods",
        ),
        (
            lambda d: d["energyweekdayschedule"][0].__setitem__(2, 0.5),
            "energyweekdayschedule[0][2]: expected a",
        ),
        (
            lambda d: d["energyweekdayschedule"][0].__setitem__(2, "1"),
            "energyweekdayschedule[0][2]: expected a",
        ),
        (lambda d: d.pop("energyweekdayschedule"), "energyweekdayschedule: missing"),
        (lambda d: d.update(dgrules="Feed-in"), 'dgrules: unknown rule "Feed-in"'),
        (
            lambda d: d.update(fixedchargefirstmeter=1, fixedchargeunits="$/week"),
            "fixedchargeunits: unknown unit",
        ),
        (
            lambda d: d["energyratestructure"][0].insert(0, {"max": 100, "rate": 0.1, "unit": "kWh/month"}),
            'energyratestructure[0][0].unit: unknown unit "kWh/month"',
        ),
        (
            lambda d: d.update(
                energyratestructure=[[{"max": 500, "rate": 1}, {"max": 400, "rate": 1}], [{"rate": 1}]]
            ),
            "energyratestructure[0][1].max: tier bounds must increase",
        ),
        (
            lambda d: d.update(energyratestructure=[[{"rate": 1}, {"rate": 2}], [{"rate": 1}]]),
            "energyratestructure[0][0].max: only the last tier may be unlimited",
        ),
        (
            lambda d: d.update(energyratestructure=[[], [{"rate": 1}]]),
            "energyratestructure[0]: expected a non-empty",
        ),
        (lambda d: d.update(demandwindow="x"), 'demandwindow: expected a number, got "x"'),
        (
            lambda d: d.update(flatdemandstructure=[[{"rate": 1}]], flatdemandmonths=[0] * 11 + [1]),
            "flatdemandmonths[11]: period 1 does not exist",
        ),
        (lambda d: d.update(demandratestructure=[[{"rate": 1}]]), "demandweekdayschedule: missing"),
    ],
)
def test_malformed_tariffs_name_the_field(mutate, expected: str) -> None:
    data = peak_tariff()
    mutate(data)
    message = _err(data)
    assert message.startswith("fpl.json: ") and expected in message


def test_not_json_and_wrapper_with_two_items() -> None:
    assert _err("{not json", "a.json").startswith("a.json: not valid JSON")
    assert _err({"items": [peak_tariff(), peak_tariff()]}, "b.json") == (
        "b.json: items: expected exactly one tariff, got 2"
    )
    assert _err([1, 2], "c.json") == "c.json: expected a URDB tariff object, got list"


def test_load_tariff_missing_file(tmp_path) -> None:
    with pytest.raises(TariffError, match=r"^nope.json: cannot read"):
        load_tariff(tmp_path / "nope.json")


# Sydney midnight on 2024-01-01 is 2023-12-31T13:00Z: the UTC date is the day before
SYDNEY_NEW_YEAR = 1704027600


@pytest.mark.parametrize(
    ("tz", "expected"),
    [("Australia/Sydney", dt.date(2024, 1, 1)), ("UTC", dt.date(2023, 12, 31))],
)
def test_startdate_is_the_date_in_the_utility_zone(tz: str, expected: dt.date) -> None:
    t = parse_urdb({**peak_tariff(), "startdate": SYDNEY_NEW_YEAR, "enddate": SYDNEY_NEW_YEAR + 86400}, tz=tz)
    assert t.startdate == expected and t.enddate == expected + dt.timedelta(days=1)
    assert t.start_instant == dt.datetime(2023, 12, 31, 13, tzinfo=dt.UTC)
    d = t.to_dict()
    assert (d["startdate"], d["timezone"]) == (expected.isoformat(), tz)
    assert d["start_instant"] == "2023-12-31T13:00:00+00:00"


def test_startdate_written_as_a_date_stays_that_date() -> None:
    t = parse_urdb({**peak_tariff(), "startdate": "2024-01-01"}, tz="Pacific/Auckland")
    assert t.startdate == dt.date(2024, 1, 1) and t.start_instant is None
    assert "startdate: expected epoch seconds" in _err({**peak_tariff(), "startdate": 1e300})
    with pytest.raises(TariffError, match="'Mars/Base' is not an IANA time zone"):
        parse_urdb(peak_tariff(), tz="Mars/Base")


def test_file_errors_are_one_line_naming_the_file(tmp_path) -> None:
    def err(name: str, content: bytes | None = None) -> str:
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(TariffError) as info:
            load_tariff(path)
        message = str(info.value)
        assert "\n" not in message and len(message) < 400, message
        return message

    (tmp_path / "folder").mkdir()
    assert err("folder") == "folder: cannot read: it is a directory, not a JSON file"
    assert err("gone.json").startswith("gone.json: cannot read: no such file")
    assert err("logo.json", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR") == (
        "logo.json: not JSON: binary data (byte 0x89 at offset 0 is not UTF-8 text)"
    )
    assert (
        err("nul.json", b'{"a": 1}\x00')
        == "nul.json: not JSON: binary data (byte 0x00 at offset 8 is not UTF-8 text)"
    )
    assert err("empty.json", b"  \n") == "empty.json: not JSON: the file is empty (expected a URDB tariff)"
    huge = err("huge.json", b"x" * (64 * 1024 * 1024))  # 64 MB on one line, not JSON
    assert huge.startswith("huge.json: not valid JSON: Expecting value at line 1 column 1, near 'xxx")
    value = err("value.json", b'{"energyratestructure": "' + b"A" * (64 * 1024 * 1024) + b'"}')
    assert value.startswith('value.json: energyratestructure: expected a list of periods, got "AAAA')
    assert value.endswith("(67,108,864 characters)") and value.count("A") <= 200
    assert err("deep.json", b"[" * 100_000) == "deep.json: not a URDB tariff: JSON nested too deeply"
    assert err("digits.json", b'{"startdate": ' + b"9" * 5000 + b"}").startswith(
        "digits.json: not valid JSON: "
    )
    assert err("inf.json", b'{"energyratestructure": [[{"rate": 1e999}]]}') == (
        "inf.json: energyratestructure[0][0].rate: expected a finite price"
    )
    # a byte-order mark is not an error
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + fixture("fpl_rs1.json").read_bytes())
    assert load_tariff(tmp_path / "bom.json").fixed_charge == 7.57


def test_to_dict_is_json_serialisable() -> None:
    d = load_tariff(fixture("camel_export.json")).to_dict()
    text = json.dumps(d)
    assert json.loads(text)["energy"]["periods"][0]["tiers"][1]["max"] is None
    assert d["demand"]["window_minutes"] == 15 and d["netting"] == "per_interval"
    assert len(d["energy"]["weekday_schedule"]) == 12


def test_schedule_frame_long_form() -> None:
    t = load_tariff(fixture("camel_export.json"))
    frame = schedule_frame(t, "E-GS", dt.date(2026, 1, 1))
    assert list(frame.columns) == SCHEDULE_COLUMNS
    assert len(frame) == 2 * 2 * 12 * 24
    assert set(frame["kind"]) == {"energy", "demand"} and set(frame["daytype"]) == {"weekday", "weekend"}
    assert frame[["kind", "month", "daytype", "hour"]].duplicated().sum() == 0
    row = frame[
        (frame.kind == "energy") & (frame.month == 7) & (frame.daytype == "weekday") & (frame.hour == 16)
    ]
    assert row["period"].tolist() == [1]
    assert frame["rate_code"].eq("E-GS").all() and frame["effective_from"].eq(dt.date(2026, 1, 1)).all()
    energy_only = schedule_frame(load_tariff(fixture("fpl_rs1.json")), "E-RES", dt.date(2026, 1, 1))
    assert len(energy_only) == 576 and set(energy_only["kind"]) == {"energy"}


def test_holiday_frame_tv14_nerc_2027_2028() -> None:
    frame = holiday_frame("E-RES", dt.date(2026, 1, 1), "NERC", 2027, 2028)
    assert list(frame.columns) == ["rate_code", "effective_from", "holiday", "name"]
    assert [d.isoformat() for d in frame["holiday"]] == [
        "2027-01-01", "2027-05-31", "2027-07-05", "2027-09-06", "2027-11-25", "2027-12-25",
        "2028-01-01", "2028-05-29", "2028-07-04", "2028-09-04", "2028-11-23", "2028-12-25",
    ]  # fmt: skip
    assert frame["name"].iloc[2] == "Independence Day (observed)"
    assert frame["name"].iloc[5] == "Christmas Day"
    assert holiday_frame("W-RES", dt.date(2026, 1, 1), "none", 2027, 2028).empty
