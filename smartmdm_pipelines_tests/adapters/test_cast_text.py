"""``validation.cast_text`` reads every text as pandas does (its fallback), whichever of its paths
— one Arrow cast, the canonical-form split a chunk with many bad values takes, the bisection —
reads it: the fast paths change the speed of a garbage-heavy file, never an outcome."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from smartmdm_pipelines.adapters.validation import _pandas_instants, cast_text, pandas_numbers

UTC = pa.timestamp("us", "UTC")


def _same_as_pandas(texts: list[str], target: pa.DataType, fallback) -> None:
    empty = np.array([t == "" for t in texts])
    got = cast_text(pa.chunked_array([pa.array(texts, pa.large_string())]), empty, target, fallback)
    masked = [None if e else t for t, e in zip(texts, empty, strict=True)]
    expected = fallback(pa.array(masked, pa.large_string())).cast(target)
    if pa.types.is_timestamp(target):  # as microseconds: year 0 has no Python datetime
        got, expected = got.cast(pa.int64()), expected.cast(pa.int64())
    got_list, expected_list = got.to_pylist(), expected.to_pylist()
    for text, g, e in zip(texts, got_list, expected_list, strict=True):
        if isinstance(e, float) and np.isnan(e):
            assert g is None or np.isnan(g), text
        else:
            assert g == e or (e is None and g is not None and np.isnan(g)), (text, g, e)


def two(low: int, high: int):
    return st.integers(low, high).map(lambda n: f"{n:02d}")


zulu = st.builds(  # each field just inside and just outside its range: roll-over territory
    lambda y, mo, d, h, mi, s: f"{y}-{mo}-{d}T{h}:{mi}:{s}Z",
    st.sampled_from(["2023", "2024", "1999", "0000", "9999"]),
    two(0, 13),
    two(0, 32),
    two(0, 25),
    two(0, 61),
    two(0, 62),
)
ROLL_OVER = ["2024-02-30T00:00:00Z", "2023-02-29T00:00:00Z", "2024-12-31T23:59:60Z", "2024-03-12T05:60:00Z",
             "2024-04-31T00:00:00Z", "2024-03-12T24:00:00Z", "2024-13-45T25:61:00Z"]  # fmt: skip
odd_instants = st.sampled_from(
    [
        "",
        "2024-03-12T05:15:00.5Z",
        "2024-03-12T05:15:00+01:00",
        "2024-3-12T05:15:00Z",
        "yesterday",
        "2024-03-12",
    ]
)


def test_impossible_instants_are_not_rolled_over() -> None:
    _same_as_pandas(["2024-03-12T05:15:00Z", *ROLL_OVER], UTC, _pandas_instants)


@given(st.lists(st.one_of(zulu, odd_instants), min_size=1, max_size=40))
def test_instants_read_as_pandas_reads_them(texts: list[str]) -> None:
    _same_as_pandas(["2024-03-12T05:15:00Z", *texts], UTC, _pandas_instants)


numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(
        ["", "abc", "1,5", "0.253kWh", "inf", "-inf", "NaN", "1e999", "-1e-999", ".5", "5.", "+3", "1e5", "٣"]
    ),
)


@given(st.lists(numbers, min_size=1, max_size=40))
def test_numbers_read_as_pandas_reads_them(texts: list[str]) -> None:
    _same_as_pandas(["0.253", *texts], pa.float64(), pandas_numbers)
