"""Fuzzing the URDB tariff parser and the shadow bill with mutated seed files written here.

- URDB: ``load_tariff`` on a mutated tariff JSON raises nothing but ``TariffError``, whose message
  is one line naming the file.
- Shadow bill (the ``smartmdm shadow-bill`` path: tariff file, usage CSV, ``shadow_bill``): on a
  mutated usage CSV (half the time with a mutated tariff too) nothing but the declared
  ``TariffError`` / ``UsageError`` / ``ValueError``; a bill that is produced has finite amounts,
  and each line's amount is quantity × rate.
Both under the per-file time limit, ``EXAMPLES`` inputs each (1,000 in the normal run).
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, seed
from hypothesis import strategies as st

from smartmdm_pipelines.cli_billing import UsageError, read_usage_csv
from smartmdm_pipelines.domain.billing.shadow_bill import shadow_bill
from smartmdm_pipelines.domain.billing.tariff import TariffError
from smartmdm_pipelines.domain.billing.urdb import load_tariff
from smartmdm_pipelines_tests.fuzz.harness import time_limit
from smartmdm_pipelines_tests.fuzz.mutate import EXAMPLES, FUZZ_SETTINGS, SEED, mutated

pytestmark = pytest.mark.fuzz
TZ = "America/Chicago"


def _schedule(peak: int) -> list[list[int]]:
    return [[peak if 16 <= h <= 20 and 6 <= m <= 9 else 0 for h in range(24)] for m in range(1, 13)]


TARIFF = {
    "label": "fuzz-seed",
    "name": "Seed TOU with tiers, demand and a fixed charge",
    "utility": "Smart MDM test utility",
    "sector": "Residential",
    "startdate": 1704067200,
    "energyratestructure": [
        [{"max": 500, "rate": 0.08, "unit": "kWh"}, {"rate": 0.11, "adj": 0.005, "unit": "kWh"}],
        [{"rate": 0.31, "unit": "kWh", "sell": 0.04}],
    ],
    "energyweekdayschedule": _schedule(1),
    "energyweekendschedule": _schedule(0),
    "flatdemandstructure": [[{"rate": 4.5, "max": 10}, {"rate": 6.0}]],
    "flatdemandmonths": [0] * 12,
    "flatdemandunit": "kW",
    "fixedchargefirstmeter": 12.5,
    "fixedchargeunits": "$/month",
    "mincharge": 5,
    "minchargeunits": "$/month",
}
TARIFF_TEXT = json.dumps(TARIFF, indent=1).encode()
USAGE_TEXT = (
    "interval_end,kwh,received_kwh\n"
    + "".join(
        f"{(pd.Timestamp('2024-07-30T05:00Z') + pd.Timedelta(hours=h)).isoformat()},{0.2 + (h % 24) / 10:.2f},"
        f"{0.5 if 12 <= h % 24 <= 14 else 0}\n"
        for h in range(1, 97)
    )
).encode()


@st.composite
def usage_values(draw: st.DrawFn) -> bytes:
    """A well-formed usage CSV with hostile numbers: huge, tiny, zero, gaps, across a DST change."""
    start = draw(st.sampled_from(["2024-03-09T06:00Z", "2024-11-02T05:00Z", "2024-12-30T06:00Z"]))
    step = draw(st.sampled_from([900, 3600]))
    n = draw(st.integers(1, 300))
    keep = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    value = st.floats(0, 1e12, allow_nan=False) | st.sampled_from([0.0, 1e-300, 5e-324, 1e15])
    lines = ["interval_end,kwh,received_kwh,kvarh"]
    for i in range(n):
        if keep[i] or i == 0:
            end = pd.Timestamp(start) + pd.Timedelta(seconds=step * (i + 1))
            lines.append(f"{end.isoformat()},{draw(value)!r},{draw(value)!r},{draw(value)!r}")
    return ("\n".join(lines) + "\n").encode()


def test_the_seeds_are_valid() -> None:
    with tempfile.TemporaryDirectory() as folder:
        bills = _bill(Path(folder), TARIFF_TEXT, USAGE_TEXT)
    assert [b.month for b in bills] == ["2024-07", "2024-08"] and all(b.total > 0 for b in bills)


def _bill(folder: Path, tariff: bytes, usage: bytes):
    (folder / "tariff.json").write_bytes(tariff)
    (folder / "usage.csv").write_bytes(usage)
    return shadow_bill(load_tariff(folder / "tariff.json", tz=TZ), read_usage_csv(folder / "usage.csv"), TZ)


def test_fuzz_urdb() -> None:
    outcomes = {"parsed": 0, "rejected": 0}

    @seed(SEED)
    @FUZZ_SETTINGS
    @given(mutated(TARIFF_TEXT))
    def check(data: bytes) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "tariff.json"
            path.write_bytes(data)
            try:
                with time_limit():
                    load_tariff(path, tz=TZ)
                outcomes["parsed"] += 1
            except TariffError as exc:
                outcomes["rejected"] += 1
                message = str(exc)
                assert "\n" not in message and message.startswith("tariff.json"), message
                assert len(message) < 1_000, message[:300]

    check()
    print(outcomes)
    assert outcomes["parsed"] and outcomes["rejected"]


def test_fuzz_shadow_bill() -> None:
    outcomes = {"billed": 0, "rejected": 0}

    @seed(SEED)
    @FUZZ_SETTINGS
    @given(
        usage_values() | mutated(USAGE_TEXT, max_edits=2),
        st.sampled_from([None, None, None, "mutated"]).flatmap(
            lambda kind: st.none() if kind is None else mutated(TARIFF_TEXT, max_edits=2)
        ),
    )
    def check(usage: bytes, tariff: bytes | None) -> None:
        with tempfile.TemporaryDirectory() as folder:
            try:
                with time_limit():
                    bills = _bill(Path(folder), tariff or TARIFF_TEXT, usage)
                    rows = len(read_usage_csv(Path(folder) / "usage.csv"))
            except (TariffError, UsageError, ValueError) as exc:
                outcomes["rejected"] += 1
                assert str(exc).strip() and "\n" not in str(exc), str(exc)
                return
        outcomes["billed"] += 1
        assert rows > 0 and bills, "every usage CSV with rows gives at least one month"
        for bill in bills:
            assert math.isfinite(bill.total), bill
            for line in bill.lines:
                assert math.isfinite(line.amount) and math.isfinite(line.quantity), line
                assert line.amount == pytest.approx(line.quantity * line.rate, rel=1e-9, abs=1e-9), line

    check()
    print(outcomes)
    assert outcomes["billed"] >= EXAMPLES // 10 and outcomes["rejected"], outcomes
