"""Fuzzing every head-end adapter, plain and in a container (.zip / .gz): ``EXAMPLES`` mutated
inputs per adapter (1,000 in the normal run, about half of them in a container; ``make fuzz``
runs many more), seeded.

Invariants, on ``Adapter.parse`` itself (not ``registry.parse_file``, whose catch-all would hide an
adapter bug): no exception but the adapter's declared rejection (``FileRejected`` -> a one-line
fatal reason), every record loaded or rejected (rows_in = loaded + rejected), every rejection has
its line and a one-line reason, and no input takes longer than the per-file limit. In a container,
every member is either expanded and parsed under the same invariants or rejected with a reason.
"""

from __future__ import annotations

import gzip
import io
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, seed
from hypothesis import strategies as st

from smartmdm_pipelines.adapters.registry import ADAPTERS
from smartmdm_pipelines.services.unpack import UnpackLimits, container_kind, members
from smartmdm_pipelines_tests.adapters.test_contract import SAMPLES, assert_accounted, sample_data
from smartmdm_pipelines_tests.fuzz.harness import assert_fatal_is_one_line, timed
from smartmdm_pipelines_tests.fuzz.mutate import EXAMPLES, FUZZ_SETTINGS, SEED, mutated

pytestmark = pytest.mark.fuzz

# small limits, so that the fuzzer reaches the zip-bomb branches with small inputs
LIMITS = UnpackLimits(max_members=4, max_total_bytes=4 << 20, max_ratio=100.0)
MEMBER_NAMES = [
    "day1.csv",
    "sub/dir/day1.dat",
    "../escape.csv",
    "/abs/path.csv",
    "C:\\x.csv",
    "a\x00b.csv",
    "..",
    "é€😀.csv",
    "x" * 300,
    "nested.zip",
]


def check_parse(name: str, path: Path, data: bytes) -> bool:
    """Whether the file was rejected as a whole (after checking the invariants either way)."""
    parsed, _ = timed(lambda: ADAPTERS[name].parse(path, SAMPLES[name].source))
    if parsed.fatal is not None:
        assert_fatal_is_one_line(parsed)
        return True
    assert_accounted(name, parsed, data)
    return False


@st.composite
def container(draw: st.DrawFn, data: bytes) -> tuple[bytes, list[bytes]]:
    """A .zip (stored or deflated, 1-3 members, hostile names) or .gz of mutated files; sometimes
    the container's own bytes are then mutated too. Returns it and the members' bytes."""
    payloads = [draw(mutated(data)) for _ in range(draw(st.integers(1, 3)))]
    if draw(st.booleans()):
        buffer = io.BytesIO()
        method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
        with zipfile.ZipFile(buffer, "w", method) as archive:
            for i, payload in enumerate(payloads):
                member = draw(st.sampled_from(MEMBER_NAMES))
                archive.writestr(f"{i}{member}" if draw(st.booleans()) else member, payload)
        packed = buffer.getvalue()
    else:
        payloads = payloads[:1]
        packed = gzip.compress(payloads[0], mtime=0)
    if draw(st.integers(0, 3)) == 0:
        packed = draw(mutated(packed, max_edits=2))
    return packed, payloads


def found_folder(found) -> Path:
    (folder,) = {m.path.resolve().parent for m in found if m.path is not None}
    assert folder.name.startswith("smartmdm-unpack-")
    return folder


@st.composite
def delivery(draw: st.DrawFn, data: bytes) -> tuple[str, bytes]:
    """A mutated file as delivered: plain (half the inputs) or in a container."""
    if draw(st.booleans()):
        return "plain", draw(mutated(data))
    return "container", draw(container(data))[0]


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_fuzz_adapter(name: str) -> None:
    seen = {"plain": 0, "container": 0, "expanded": 0, "member rejected": 0, "fatal": 0}

    @seed(SEED)
    @FUZZ_SETTINGS
    @given(delivery(sample_data(name)))
    def check(case: tuple[str, bytes]) -> None:
        kind, data = case
        seen[kind] += 1
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / ("delivery.dat" if kind == "plain" else "delivery.zip")
            path.write_bytes(data)
            packing = container_kind(path)
            if packing is None:  # plain, or a container whose magic bytes the mutation broke
                seen["fatal"] += check_parse(name, path, data)
                return
            with members(path, packing, LIMITS) as found:
                assert found
                for member in found:
                    assert member.name == path.name or member.name.startswith(path.name + "!")
                    if member.path is None:
                        seen["member rejected"] += 1
                        assert member.error and "\n" not in member.error.strip(), member
                        continue
                    seen["expanded"] += 1
                    assert member.error is None
                    # expanded into the unpack folder itself, whatever the member's name
                    assert member.path.resolve().parent == found_folder(found)
                    seen["fatal"] += check_parse(name, member.path, member.path.read_bytes())

    check()
    print(name, seen)
    assert min(seen["plain"], seen["container"]) >= EXAMPLES // 4, seen
    assert seen["expanded"] and seen["member rejected"], seen
