"""What every fuzz target checks: a per-file time limit (SIGALRM) and the adapter invariants."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from smartmdm_pipelines.adapters.base import ParsedFile
from smartmdm_pipelines_tests.fuzz.mutate import FILE_SECONDS

T = TypeVar("T")


class FileTimeout(Exception):
    """A single input took longer than the per-file limit (a hang)."""


@contextmanager
def time_limit(seconds: float = FILE_SECONDS) -> Iterator[None]:
    def expire(signum, frame):  # noqa: ARG001
        raise FileTimeout(f"one input took more than {seconds:g} s (per-file limit)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def timed(call: Callable[[], T]) -> tuple[T, float]:
    with time_limit():
        started = time.perf_counter()
        value = call()
    return value, time.perf_counter() - started


def assert_fatal_is_one_line(parsed: ParsedFile) -> None:
    assert parsed.fatal.strip() and "\n" not in parsed.fatal and parsed.status == "rejected", parsed.fatal
    assert parsed.fatal_line is None or parsed.fatal_line >= 1
    assert len(parsed.fatal) <= 2_000, "a reason quotes a short excerpt, never a whole field"
