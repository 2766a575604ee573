"""`smartmdm tariff inspect` and `smartmdm shadow-bill` as an operator uses them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from smartmdm_pipelines.cli import main
from smartmdm_pipelines.domain.billing.numbers import cents

FIXTURES = Path(__file__).resolve().parent.parent / "domain" / "billing" / "fixtures"


def _usage_csv(path: Path, per_hour: float = 2000 / 744, **extra) -> Path:
    ends = pd.date_range("2027-01-01 01:00", "2027-02-01 00:00", freq="1h", tz="America/New_York")
    lines = ["interval_end,kwh" + "".join(f",{k}" for k in extra)]
    for i, end in enumerate(ends):
        lines.append(f"{end.isoformat()},{per_hour}" + "".join(f",{v[i % len(v)]}" for v in extra.values()))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_tariff_inspect_prints_periods_tiers_and_schedules(capsys) -> None:
    assert main(["tariff", "inspect", str(FIXTURES / "camel_export.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [len(p["tiers"]) for p in out["energy"]["periods"]] == [2, 1]
    assert out["energy"]["periods"][0]["tiers"][0] == {
        "max": 20000, "rate": pytest.approx(0.11), "base_rate": 0.1, "adj": 0.01, "sell": 0.03, "unit": "kWh"
    }  # fmt: skip
    assert len(out["energy"]["weekday_schedule"]) == 12 and len(out["energy"]["weekday_schedule"][0]) == 24
    assert out["demand"]["window_minutes"] == 15
    assert out["fixed_charge"] == {"amount": 3.298, "unit": "$/day"}
    assert out["netting"] == "per_interval"


def test_tariff_inspect_bad_file_exits_1_with_the_field_path(tmp_path: Path, capsys) -> None:
    data = json.loads((FIXTURES / "fpl_rs1.json").read_text())
    data["energyratestructure"][0][1]["rate"] = "abc"
    bad = tmp_path / "fpl.json"
    bad.write_text(json.dumps(data))
    assert main(["tariff", "inspect", str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert 'fpl.json: energyratestructure[0][1].rate: expected a number, got "abc"' in captured.err


def test_shadow_bill_json(tmp_path: Path, capsys) -> None:
    csv = _usage_csv(tmp_path / "usage.csv")
    args = ["shadow-bill", "--tariff", str(FIXTURES / "fpl_rs1.json"), "--usage", str(csv)]
    assert main([*args, "--tz", "America/New_York", "--json"]) == 0
    (bill,) = json.loads(capsys.readouterr().out)
    assert bill["month"] == "2027-01" and bill["days"] == 31
    assert bill["energy"][0]["tiers"] == pytest.approx([1000, 1000], abs=1e-6)
    assert bill["total"] == pytest.approx(195.24 + 7.57, abs=0.005)
    assert [line["category"] for line in bill["lines"]] == ["energy", "energy", "fixed"]


def test_shadow_bill_table(tmp_path: Path, capsys) -> None:
    csv = _usage_csv(tmp_path / "usage.csv", per_hour=0.5, kvarh=[0.1], received_kwh=[0, 0.2])
    tariff = FIXTURES / "camel_export.json"
    assert (
        main(["shadow-bill", "--tariff", str(tariff), "--usage", str(csv), "--tz", "America/New_York"]) == 0
    )
    out = capsys.readouterr().out
    assert "2027-01" in out and "energy by period" in out and "off-peak" in out and "on-peak" in out
    assert "TOU demand period 1" in out and "Reactive demand" in out and "total" in out
    assert "1 month(s), total $" in out


def test_shadow_bill_water_units(tmp_path: Path, capsys) -> None:
    csv = _usage_csv(tmp_path / "water.csv", per_hour=2_880_000 / 77 / 744)
    args = ["shadow-bill", "--tariff", str(FIXTURES / "london_water_ccf.json"), "--usage", str(csv)]
    assert (
        main([*args, "--tz", "America/New_York", "--holidays", "none", "--usage-unit", "gal", "--json"]) == 0
    )
    (bill,) = json.loads(capsys.readouterr().out)
    assert bill["unit"] == "CCF" and bill["total"] == pytest.approx(105.77, abs=1e-9)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            ["2027-01-01T01:00:00-05:00,1", "not-a-date,1"],
            "usage.csv line 3: interval_end 'not-a-date' is not",
        ),
        (
            ["2027-01-01T01:00:00,1"],
            "usage.csv line 2: interval_end '2027-01-01T01:00:00' is not an ISO-8601",
        ),
        (["2027-01-01,1"], "usage.csv line 2: interval_end '2027-01-01' is not an ISO-8601"),
        (["2027-01-01T01:00:00-05:00,1", "2027-01-01T02:00:00-05:00,x"], "usage.csv line 3: kwh 'x' is not"),
        (["2027-01-01T01:00:00-05:00,-1"], "usage.csv line 2: kwh '-1' is not a non-negative number"),
        (["2027-01-01T01:00:00-05:00,1", "2027-01-01T01:00:00-05:00,1"], "usage.csv line 3: duplicate"),
    ],
)
def test_shadow_bill_bad_csv_names_file_and_line(tmp_path: Path, capsys, rows, message: str) -> None:
    csv = tmp_path / "usage.csv"
    csv.write_text("interval_end,kwh\n" + "\n".join(rows) + "\n")
    args = ["shadow-bill", "--tariff", str(FIXTURES / "fpl_rs1.json"), "--usage", str(csv), "--tz", "UTC"]
    assert main(args) == 1
    assert message in capsys.readouterr().err


def test_shadow_bill_missing_column_and_bad_tariff(tmp_path: Path, capsys) -> None:
    csv = tmp_path / "usage.csv"
    csv.write_text("time,kwh\n2027-01-01T01:00:00Z,1\n")
    args = ["shadow-bill", "--tariff", str(FIXTURES / "fpl_rs1.json"), "--usage", str(csv), "--tz", "UTC"]
    assert main(args) == 1
    assert "usage.csv line 1: missing column(s) interval_end" in capsys.readouterr().err
    bad = tmp_path / "t.json"
    bad.write_text('{"energyratestructure": [[{"rate": 1}]], "energyweekdayschedule": [[0]]}')
    good_csv = _usage_csv(tmp_path / "u.csv")
    assert main(["shadow-bill", "--tariff", str(bad), "--usage", str(good_csv), "--tz", "UTC"]) == 1
    assert "t.json: energyweekdayschedule: expected 12 months" in capsys.readouterr().err


# ------------------------------------------------------------------ issue 9: one-line errors (item 8)

HUGE = 64 * 1024 * 1024


def _one_line_error(capsys, name: str) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err[:500]
    assert name in err and len(err) < 400, err[:500]
    return err


def _bad_inputs(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (tmp_path / "huge.json").write_bytes(b"y" * HUGE)  # 64 MB on one line
    return {
        "directory": tmp_path / "a_folder",
        "missing": tmp_path / "missing.json",
        "binary": tmp_path / "photo.png",
        "huge": tmp_path / "huge.json",
    }


EXPECTED = {
    "directory": "a_folder: cannot read: it is a directory, not a {kind} file",
    "missing": "missing.json: cannot read: no such file",
    "binary": "photo.png: not {kind}: binary data (byte 0x89 at offset 0 is not UTF-8 text)",
    "huge": "huge.json: not valid JSON: Expecting value at line 1 column 1, near 'yyy",
}


# a path that cannot be opened exits 2 (as in `ingest`, `inspect`), content that is wrong exits 1
EXIT_CODE = {"directory": 2, "missing": 2, "binary": 1, "huge": 1}


@pytest.mark.parametrize("case", list(EXPECTED))
def test_tariff_file_errors_are_one_line_in_both_commands(tmp_path: Path, capsys, case: str) -> None:
    bad = _bad_inputs(tmp_path)[case]
    expected = "error: " + EXPECTED[case].format(kind="JSON")
    assert main(["tariff", "inspect", str(bad), "--tz", "UTC"]) == EXIT_CODE[case]
    assert _one_line_error(capsys, bad.name).startswith(expected)
    csv = _usage_csv(tmp_path / "usage.csv")
    assert main(["shadow-bill", "--tariff", str(bad), "--usage", str(csv), "--tz", "UTC"]) == EXIT_CODE[case]
    assert _one_line_error(capsys, bad.name).startswith(expected)


@pytest.mark.parametrize("case", ["directory", "missing", "binary"])
def test_usage_file_errors_are_one_line(tmp_path: Path, capsys, case: str) -> None:
    bad = _bad_inputs(tmp_path)[case]
    args = ["shadow-bill", "--tariff", str(FIXTURES / "fpl_rs1.json"), "--usage", str(bad), "--tz", "UTC"]
    assert main(args) == EXIT_CODE[case]
    assert _one_line_error(capsys, bad.name).startswith("error: " + EXPECTED[case].format(kind="CSV"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"interval_end,kwh\n2027-01-01T01:00:00Z," + b"1" * HUGE + b"\n",
            "u.csv line 2: kwh '1111111111",
        ),
        (
            b"interval_end,kwh\n2027-01-01T01:00:00Z,1\n2027-01-01T02:00:00Z,1,9\n",
            "u.csv line 3: expected 2 fields, saw 3",
        ),
        (
            b'interval_end,kwh\n2027-01-01T01:00:00Z,1\n2027-01-01T02:00:00Z,"1\n',
            "u.csv line 3: a quoted field is never closed",
        ),
        (b"", "u.csv: not CSV: the file is empty (expected a header interval_end, kwh"),
        (
            b"interval_end,kwh\n2027-01-01T01:00:00Z,1e999\n",
            "u.csv line 2: kwh '1e999' is not a non-negative number",
        ),
        (b"interval_end,kwh\n2027-01-01T01:00:00Z\n", "u.csv line 2: kwh '' is not a non-negative number"),
    ],
)
def test_bad_usage_csv_is_one_line_with_the_line_number(
    tmp_path: Path, capsys, content: bytes, message: str
) -> None:
    csv = tmp_path / "u.csv"
    csv.write_bytes(content)
    args = ["shadow-bill", "--tariff", str(FIXTURES / "fpl_rs1.json"), "--usage", str(csv), "--tz", "UTC"]
    assert main(args) == 1
    err = _one_line_error(capsys, "u.csv")
    assert message in err
    assert "ArrowInvalid" not in err and err.count("1") <= 200


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tz", "Mars/Base"], "argument --tz: 'Mars/Base' is not an IANA time zone"),
        (["--tz", "UTC", "--holidays", "XX"], "argument --holidays: 'XX' is not a holiday calendar"),
        (
            ["--tz", "UTC", "--interval-seconds", "0"],
            "argument --interval-seconds: '0' is not a whole number",
        ),
    ],
)
def test_bad_command_line_exits_2(tmp_path: Path, capsys, extra: list[str], message: str) -> None:
    csv = _usage_csv(tmp_path / "usage.csv")
    with pytest.raises(SystemExit) as info:
        main(["shadow-bill", "--tariff", str(FIXTURES / "fpl_rs1.json"), "--usage", str(csv), *extra])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err.strip().splitlines()[-1]
    assert "Traceback" not in err


# ------------------------------------------------------------------ issue 9: startdate in the utility zone (item 14)

SYDNEY_NEW_YEAR = 1704027600  # 2024-01-01 00:00 in Sydney = 2023-12-31T13:00Z


def test_tariff_inspect_shows_startdate_in_the_utility_zone(tmp_path: Path, capsys) -> None:
    tariff = json.loads((FIXTURES / "fpl_rs1.json").read_text())
    tariff["startdate"] = SYDNEY_NEW_YEAR
    path = tmp_path / "aus.json"
    path.write_text(json.dumps(tariff))
    config = tmp_path / "utility.yaml"
    config.write_text("utility:\n  name: Harbour Power\n  timezone: Australia/Sydney\n")
    assert main(["--config", str(config), "tariff", "inspect", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["startdate"], out["timezone"]) == ("2024-01-01", "Australia/Sydney")
    assert out["start_instant"] == "2023-12-31T13:00:00+00:00"
    assert main(["--config", str(config), "tariff", "inspect", str(path), "--tz", "UTC"]) == 0
    assert json.loads(capsys.readouterr().out)["startdate"] == "2023-12-31"
    missing = tmp_path / "none.yaml"
    assert main(["--config", str(missing), "tariff", "inspect", str(path)]) == 2
    assert "cannot read the utility configuration for its time zone" in _one_line_error(capsys, "pass --tz")


# ------------------------------------------------------------------ issue 9: charge lines multiply out (items 13, 14)


def _charge_rows(text: str) -> list[list[str]]:
    """The charge rows of a text bill: description, quantity, unit, rate, amount."""
    rows, inside = [], False
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == "charge":
            inside = True
        elif cells[0] == "total":
            inside = False
        elif inside:
            rows.append(cells)
    return rows


def _number(cell: str) -> float:
    if "/" in cell:
        num, den = cell.split("/")
        return int(num) / int(den)
    return float(cell.replace(",", ""))


def test_text_bill_lines_multiply_out_with_unrounded_rates(tmp_path: Path, capsys) -> None:
    tariff = json.loads((FIXTURES / "fpl_rs1.json").read_text())
    tariff["fixedmonthlycharge"] = 249720.88
    tariff["flatdemandstructure"] = [[{"max": 2, "rate": 12.345678}, {"max": 4, "rate": 9.87}]]
    tariff["flatdemandmonths"] = [0] * 12
    path = tmp_path / "big.json"
    path.write_text(json.dumps(tariff))
    ends = pd.date_range("2027-01-30 01:00", "2027-02-01 01:00", freq="1h", tz="UTC")  # 2 days + 1 hour
    kwh = [0.7] * len(ends)
    kwh[5] = 6.25  # 6.25 kW: above the last tier's limit of 4 kW
    csv = tmp_path / "usage.csv"
    csv.write_text(
        "interval_end,kwh\n" + "".join(f"{e.isoformat()},{v}\n" for e, v in zip(ends, kwh, strict=True))
    )
    assert main(["shadow-bill", "--tariff", str(path), "--usage", str(csv), "--tz", "UTC"]) == 0
    out = capsys.readouterr().out
    rows = _charge_rows(out)
    assert len(rows) >= 6
    for description, quantity, _unit, rate, amount in rows:
        assert cents(_number(quantity) * _number(rate)) == _number(amount), (
            description,
            quantity,
            rate,
            amount,
        )
    fixed = [row for row in rows if row[0].startswith("Fixed charge")]
    assert fixed[0][1:] == ["2/31", "month", "249,720.88", "16,111.02"]
    assert fixed[1][1:] == ["1/28", "month", "249,720.88", "8,918.60"]
    assert "0.08721" in out and "0.08721000" not in out
    assert "note: Demand: 6.25 kW is above the last tier's limit of 4 kW" in out


def test_json_bill_lines_multiply_out_and_report_kwh_per_kw(tmp_path: Path, capsys) -> None:
    tariff = {
        "energyratestructure": [
            [{"max": 200, "rate": 0.0712, "unit": "kWh/kW"}, {"rate": 0.0433, "unit": "kWh/kW"}]
        ],
        "flatdemandstructure": [[{"rate": 4.5}]],
        "fixedchargefirstmeter": 1.1,
        "fixedchargeunits": "$/day",
    }
    path = tmp_path / "hours_use.json"
    path.write_text(json.dumps(tariff))
    csv = _usage_csv(tmp_path / "usage.csv", per_hour=30.0)
    base = ["shadow-bill", "--tariff", str(path), "--usage", str(csv), "--tz", "America/New_York"]
    assert main([*base, "--json"]) == 0
    (bill,) = json.loads(capsys.readouterr().out)
    for line in bill["lines"]:
        assert cents(line["quantity"] * line["rate"]) == line["amount"], line
    limits = bill["energy"][0]["tier_limits"]
    assert limits[0]["unit"] == "kWh/kW" and limits[0]["limit"] == 6000  # 200 kWh/kW × 30 kW
    assert main(base) == 0
    assert "tier limits: 200 kWh/kW × 30 kW billing demand = 6,000 kWh | no limit" in capsys.readouterr().out
