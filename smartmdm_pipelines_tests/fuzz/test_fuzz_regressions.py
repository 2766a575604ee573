"""Regressions of what the fuzz suites found in the adapters (each failed before its fix)."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartmdm_pipelines.adapters.base import MAX_LINE_BYTES
from smartmdm_pipelines.adapters.registry import ADAPTERS
from smartmdm_pipelines_tests.adapters.test_contract import SAMPLES, assert_accounted, sample_data


def parse(name: str, path: Path):
    return ADAPTERS[name].parse(path, SAMPLES[name].source)


def test_a_cmep_count_in_arabic_digits_is_a_rejected_record_not_a_crash(tmp_path: Path) -> None:
    """``\\d`` matched '٣' (a Unicode digit) that ``to_numeric`` then could not read (ValueError)."""
    lines = sample_data("cmep").split(b"\n")
    fields = lines[0].split(b",")
    fields[13] = "\u0663".encode()
    path = tmp_path / "x.cmep"
    path.write_bytes(b"\n".join([b",".join(fields), *lines[1:]]))
    parsed = parse("cmep", path)
    assert parsed.fatal is None
    assert list(parsed.rejected["line"]) == [1]
    assert "count (field 14)" in parsed.rejected["reason"].iloc[0]
    assert_accounted("cmep", parsed, path.read_bytes())


@pytest.mark.parametrize("name", sorted(n for n in ADAPTERS if n != "green_button"))
def test_a_line_longer_than_the_limit_is_rejected_on_its_own_and_the_rest_loads(
    name: str, tmp_path: Path
) -> None:
    """A 5 MiB line in the middle of a file: it was read whole (NEM12: 2 GiB RSS and 107 s for a
    64 MiB line; the generic CSVs crashed with ArrowInvalid 'Empty CSV file' when it was the only
    row). Now it is cut out before parsing and rejected with its line; every other line loads."""
    seed = sample_data(name)
    lines = seed.rstrip(b"\n").split(b"\n")
    at = len(lines) - 1  # the last record (NEM12: before its 900 end record)
    if name == "nem12":
        at = len(lines) - 2
    long_line = b"9" * (MAX_LINE_BYTES + 1)
    path = tmp_path / "x.dat"
    path.write_bytes(b"\n".join([*lines[:at], long_line, *lines[at:]]) + b"\n")
    whole = parse(name, tmp_path / "x.dat")
    assert whole.fatal is None, whole.fatal
    assert at + 1 in set(whole.rejected["line"])
    reason = whole.rejected.loc[whole.rejected["line"] == at + 1, "reason"].iloc[0]
    assert f"the line is {len(long_line):,} bytes" in reason and len(reason) < 300
    clean = tmp_path / "clean.dat"
    clean.write_bytes(seed)
    expected = parse(name, clean)
    loaded = len(whole.intervals) + len(whole.registers) + len(whole.events)
    assert loaded == len(expected.intervals) + len(expected.registers) + len(expected.events)
    assert_accounted(name, whole, path.read_bytes())


def test_a_long_first_line_rejects_the_file_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"\n\n" + b"m" * (MAX_LINE_BYTES + 10) + b"\nE1,kwh\n")
    parsed = parse("generic_interval_csv", path)
    assert parsed.fatal_line == 3 and "more than the 4 MiB a line may have" in parsed.fatal


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field", ["energyweekdayschedule", "flatdemandmonths", "demandwindow"])
def test_a_urdb_nan_or_infinity_where_an_integer_belongs_is_a_tariff_error(
    field: str, bad: str, tmp_path: Path
) -> None:
    """Python's JSON reads NaN/Infinity; ``int(v)`` then raised ValueError/OverflowError."""
    import json

    from smartmdm_pipelines.domain.billing.tariff import TariffError
    from smartmdm_pipelines.domain.billing.urdb import load_tariff
    from smartmdm_pipelines_tests.fuzz.test_fuzz_billing import TARIFF

    tariff = json.loads(json.dumps(TARIFF))
    if field == "energyweekdayschedule":
        tariff[field][0][0] = "BAD"
    elif field == "flatdemandmonths":
        tariff[field][3] = "BAD"
    else:
        tariff[field] = "BAD"
    path = tmp_path / "t.json"
    path.write_text(json.dumps(tariff).replace('"BAD"', bad))
    with pytest.raises(TariffError, match=f"t.json: {field}"):
        load_tariff(path)


def test_a_usage_csv_header_of_200000_columns_is_refused_at_once(tmp_path: Path) -> None:
    """Found by the shadow-bill fuzzer: a 200 kB field of commas in the header made pandas'
    read_csv run past the 10 s per-file limit; now it is a UsageError naming line 1."""
    import time

    from smartmdm_pipelines.cli_billing import UsageError, read_usage_csv

    path = tmp_path / "usage.csv"
    path.write_text("interval_end,kwh" + "," * 200_000 + "\n2024-07-30T06:00:00+00:00,1\n")
    started = time.perf_counter()
    with pytest.raises(UsageError, match="usage.csv line 1: the header has 200,002 columns"):
        read_usage_csv(path)
    assert time.perf_counter() - started < 2


def test_a_zip_member_whose_local_name_is_not_the_utf8_it_claims_is_rejected_alone(tmp_path: Path) -> None:
    import zipfile

    from smartmdm_pipelines.services.unpack import members

    path = tmp_path / "delivery.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ok.csv", "a,b\n")
        archive.writestr("caf\u00e9.csv", "a,b\n")  # non-ASCII: the UTF-8 flag is set
    data = path.read_bytes()
    # the local header's copy of the name becomes invalid UTF-8; the central directory's stays valid
    path.write_bytes(data.replace(b"caf\xc3\xa9.csv", b"caf\x93\xa9.csv", 1))
    with members(path, "zip") as found:
        outcome = {m.member: (m.path is not None, m.error) for m in found}
    assert outcome["ok.csv"] == (True, None)
    loaded, error = outcome["caf\u00e9.csv"]
    assert not loaded and "cannot be expanded" in error
