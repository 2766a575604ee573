"""A big single-line file per format stays under a bounded RSS (measured in a fresh process).

The normal run writes a 64 MiB line per format; ``make fuzz`` 1 GiB (``SMARTMDM_FUZZ_BIG_MB``).
Each file is written lazily in 1 MiB pieces into a temporary folder and removed after its parse.
The bound: the process's peak RSS after the big files is at most ``RSS_SLACK_MIB`` above its
peak after parsing every format's small seed (the peak is monotonic, so any one big file that
blew up would show).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from smartmdm_pipelines.adapters.registry import ADAPTERS

pytestmark = pytest.mark.fuzz

BIG_MIB = int(os.environ.get("SMARTMDM_FUZZ_BIG_MB", "64"))
RSS_SLACK_MIB = 48
SECONDS = 120 + len(ADAPTERS) * BIG_MIB / 8  # >= 8 MiB/s for writing and scanning, on a loaded machine


def test_a_big_single_line_file_stays_under_a_bounded_rss(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "smartmdm_pipelines_tests.fuzz.big_line", str(BIG_MIB), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=SECONDS,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    small, big = rows[: len(ADAPTERS)], rows[len(ADAPTERS) :]
    assert [r["format"] for r in big] == sorted(ADAPTERS)
    base = max(r["max_rss_mib"] for r in small)
    for out in big:
        print(out)
        assert out["bytes"] >= BIG_MIB << 20
        assert out["max_rss_mib"] <= base + RSS_SLACK_MIB, (base, out)
        # the line is accounted for: the file is rejected naming it, or it is a rejected row
        if out["fatal"] is not None:
            assert out["fatal_line"] is not None and len(out["fatal"]) <= 500, out
        else:
            assert out["rejected"] >= 1 and out["rejected_lines"], out
