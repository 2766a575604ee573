"""`smartmdm tariff inspect` and `smartmdm shadow-bill` as an operator uses them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from smartmdm_pipelines.cli import main

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
