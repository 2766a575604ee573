"""VEE of an operating day in meter chunks: memory bounded by the chunk, computation on several
processes (issue 14).

A day of many meters is split into chunks of about ``chunk_meters`` meters (the stable meter hash
of domain/vee/shards.py). Two passes over the chunks:

1. validate each chunk and keep its class-profile sums (``profile_parts``: a few rows per class
   and slot) and the series it has to estimate; the chunk's inputs and validated frame are
   spilled to a temporary file, so memory holds one chunk at a time;
2. per chunk: load the estimated series' history, estimate with the parts of *every* chunk (so
   class-profile estimates (E5) use the whole day's profile, as in services/vee_shards.py), and
   write the chunk's rows (versions, rollup, exceptions, daily usage, outbox) in its own
   transaction under the day's lock.

Every row VEE writes belongs to one meter, so the chunks write disjoint rows and the store ends
as after the unchunked ``run_day`` (tested on both backends), every version stamped with one
``created_at``. The chunks' transactions are separate: a run stopped half way leaves the
chunks written so far; running the day again completes it (a version is written only where
something changed).

With ``processes`` ≥ 2 the validation and estimation of chunks run in that many worker processes
(spawned: they share nothing with this process but the arguments). On DuckDB this process reads
the next chunk's inputs and writes the previous chunk's rows (the one writer DuckDB allows stays
here); on PostgreSQL each worker reads and writes its chunks itself, under the chunk's shard lock
(held within the day's lock, as a sharded day's: services/vee.py ``day_transaction``).
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import logging
import math
import multiprocessing
import os
import pickle
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from smartmdm_pipelines.config import UtilityConfig
from smartmdm_pipelines.domain.vee.class_profiles import PART_COLUMNS, profile_parts
from smartmdm_pipelines.domain.vee.day import DayInputs, DayResult
from smartmdm_pipelines.domain.vee.estimate import estimate_day
from smartmdm_pipelines.domain.vee.history import daily_usage
from smartmdm_pipelines.domain.vee.shards import Shard, shard_of
from smartmdm_pipelines.domain.vee.validation import validate_day
from smartmdm_pipelines.services.vee import (
    VeeRun,
    day_transaction,
    load_history,
    load_inputs,
    run_day,
    stage_tables,
    to_estimate,
    write_staged,
)
from smartmdm_pipelines.services.vee_shards import day_meters
from smartmdm_pipelines.store.store import Store

log = logging.getLogger(__name__)
CHUNK_METERS_ENV = "SMARTMDM_VEE_CHUNK_METERS"
PROCESSES_ENV = "SMARTMDM_VEE_PROCESSES"
# 100,000 meters (~7 M reads of 15-minute meters) run as one frame in ~5.4 GB; a bigger day runs in
# chunks of that size, so a day of any size stays near that peak; below it one frame is faster
DEFAULT_CHUNK_METERS = 100_000
DEFAULT_PROCESSES = 1


def chunk_settings() -> tuple[int, int]:
    """(meters per chunk, processes) from ``SMARTMDM_VEE_CHUNK_METERS`` (0: never chunk) and
    ``SMARTMDM_VEE_PROCESSES``."""
    chunk = int(os.environ.get(CHUNK_METERS_ENV, DEFAULT_CHUNK_METERS))
    processes = int(os.environ.get(PROCESSES_ENV, DEFAULT_PROCESSES))
    return chunk, max(processes, 1)


def run_day_auto(store: Store, day: dt.date, cfg: UtilityConfig) -> VeeRun:
    """The daily VEE of ``day``: in meter chunks when it has more meters than one chunk
    (:func:`chunk_settings`), else ``run_day``."""
    chunk, processes = chunk_settings()
    if chunk <= 0:
        return run_day(store, day, cfg)
    return run_day_chunked(store, day, cfg, chunk_meters=chunk, processes=processes)


def meter_chunks(meters: list[str], chunk_meters: int) -> list[list[str]]:
    """``meters`` in ⌈n / chunk_meters⌉ chunks by the stable meter hash (each sorted)."""
    ids = np.unique(np.asarray([str(m) for m in meters], dtype=object))
    count = max(math.ceil(len(ids) / max(chunk_meters, 1)), 1)
    which = shard_of(ids, count)
    return [c for c in (ids[which == i].tolist() for i in range(count)) if c]


# --- the work of a chunk (in a worker process, or in this one) ---------------------------------


def _validate_chunk(inputs: DayInputs, spill: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pass 1: validate; spill (inputs, validated) to ``spill``; (profile parts, series to estimate)."""
    validated = validate_day(inputs)
    parts = profile_parts(validated.intervals, inputs.tz)
    with open(spill, "wb") as f:
        pickle.dump((inputs, validated), f, protocol=pickle.HIGHEST_PROTOCOL)
    return parts, to_estimate(validated)


def _estimate_chunk(spill: str, history: pd.DataFrame, parts: pd.DataFrame) -> tuple:
    """Pass 2: estimate the spilled chunk with the whole day's parts: what the writer needs
    (staged tables, exceptions, daily usage, stats)."""
    with open(spill, "rb") as f:
        inputs, validated = pickle.load(f)
    os.unlink(spill)
    inputs.history = history
    inputs.class_profile_parts = parts
    estimated = estimate_day(validated, inputs)
    frame = estimated.intervals
    return stage_tables(frame), validated.exceptions, daily_usage(frame, inputs.day), estimated.stats


_STORES: dict[str, Store] = {}


def _worker_store(url: str) -> Store:
    """This worker process's own connection to the store (PostgreSQL: workers read and write)."""
    if url not in _STORES:
        _STORES[url] = Store(url, migrate_schema=False)
    return _STORES[url]


def _validate_from_store(url: str, day: dt.date, cfg: UtilityConfig, meters: list[str], spill: str) -> tuple:
    """Pass 1 in a PostgreSQL worker: it reads the chunk's inputs itself."""
    return _validate_chunk(load_inputs(_worker_store(url), day, cfg, meters_only=meters), spill)


def _estimate_and_write(
    url: str,
    day: dt.date,
    meters: list[str],
    spill: str,
    todo: pd.DataFrame,
    weeks: int,
    parts: pd.DataFrame,
    now: pd.Timestamp,
    shard: Shard,
) -> tuple:
    """Pass 2 in a PostgreSQL worker: history, estimation and the chunk's writes under its
    shard's lock (chunks of one day write side by side): (versions, estimates, open, stats)."""
    store = _worker_store(url)
    history = load_history(store, day, todo, weeks)
    staged, exceptions, usage, stats = _estimate_chunk(spill, history, parts)
    with day_transaction(store, day, shard) as conn:
        written = write_staged(store, conn, day, staged, exceptions, usage, now, meters)
    return (*written, stats)


class _Inline(cf.Executor):
    """An executor running each call at once in this process (``processes`` = 1)."""

    def submit(self, fn, /, *args, **kwargs):
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the caller through the future, as a pool does
            future.set_exception(exc)
        return future


def run_day_chunked(
    store: Store,
    day: dt.date,
    cfg: UtilityConfig,
    chunk_meters: int = DEFAULT_CHUNK_METERS,
    processes: int = 1,
) -> VeeRun:
    """VEE of ``day`` in chunks of about ``chunk_meters`` meters on ``processes`` processes;
    the store ends as after ``run_day(store, day, cfg)``. The returned run carries the day's
    figures (stats, versions written, open exceptions), not its frames."""
    chunks = meter_chunks(day_meters(store, day), chunk_meters)
    if len(chunks) <= 1:  # one chunk: the day as one frame
        return run_day(store, day, cfg)
    weeks = cfg.vee_config().default.reference_weeks
    now = pd.Timestamp.now(tz="UTC")
    t0 = time.perf_counter()
    spill_dir = Path(tempfile.mkdtemp(prefix=f"vee_{day.isoformat()}_"))
    if processes > 1:
        pool: cf.Executor = cf.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
    else:
        pool = _Inline()
    # PostgreSQL takes several writers: its workers read and write their chunks themselves
    direct = processes > 1 and store.backend == "postgresql"
    try:
        # pass 1: validate (this process reads chunk i + 1 while workers validate chunk i)
        spills = [str(spill_dir / f"chunk_{i}.pickle") for i in range(len(chunks))]
        pending: list[cf.Future] = []
        for i, meters in enumerate(chunks):
            if direct:
                pending.append(pool.submit(_validate_from_store, store.url, day, cfg, meters, spills[i]))
            else:
                inputs = load_inputs(store, day, cfg, meters_only=meters)
                pending.append(pool.submit(_validate_chunk, inputs, spills[i]))
                del inputs
            if len(pending) - sum(f.done() for f in pending) > processes:
                cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        firsts = [f.result() for f in pending]
        t1 = time.perf_counter()
        parts = pd.concat(
            [p for p, _ in firsts if len(p)] or [pd.DataFrame(columns=PART_COLUMNS)], ignore_index=True
        )
        todos = [t for _, t in firsts]
        del firsts, pending
        # pass 2: estimate (workers) and write (here, one chunk behind)
        n_val = n_est = open_count = 0
        stats: list[dict] = []
        queue: list[tuple[list[str], cf.Future]] = []

        def write(meters: list[str], future: cf.Future) -> None:
            nonlocal n_val, n_est, open_count
            staged, exceptions, usage, chunk_stats = future.result()
            with day_transaction(store, day) as conn:
                v, e, o = write_staged(store, conn, day, staged, exceptions, usage, now, meters)
            n_val, n_est, open_count = n_val + v, n_est + e, open_count + o
            stats.append(chunk_stats)

        if direct:
            shards = [Shard(i, len(chunks)) for i in range(len(chunks))]
            done = [
                pool.submit(
                    _estimate_and_write, store.url, day, m, spills[i], todos[i], weeks, parts, now, shards[i]
                )
                for i, m in enumerate(chunks)
            ]
            for future in done:
                v, e, o, chunk_stats = future.result()
                n_val, n_est, open_count = n_val + v, n_est + e, open_count + o
                stats.append(chunk_stats)
        for i, meters in enumerate([] if direct else chunks):
            history = load_history(store, day, todos[i], weeks)
            todos[i] = None
            queue.append((meters, pool.submit(_estimate_chunk, spills[i], history, parts)))
            del history
            while len(queue) > processes:
                write(*queue.pop(0))
        while queue:
            write(*queue.pop(0))
        log.info(
            "VEE %s in %d chunks on %d processes: validated in %.1f s, estimated and written in %.1f s",
            day,
            len(chunks),
            processes,
            t1 - t0,
            time.perf_counter() - t1,
        )
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(spill_dir, ignore_errors=True)
    figures = combine_stats(stats)
    empty = pd.DataFrame()
    return VeeRun(
        day,
        DayResult(empty, empty, figures),
        DayResult(empty, empty, figures),
        n_val,
        n_est,
        open_count,
    )


def combine_stats(parts: list[dict]) -> dict:
    """The day's VEE figures from its chunks' (counts summed, shares weighted by their base)."""
    if not parts:
        return {}
    out: dict = {}
    for key in parts[0]:
        values = [p.get(key) for p in parts]
        if isinstance(values[0], dict):
            total: Counter = Counter()
            for v in values:
                total.update(v or {})
            out[key] = {k: int(n) for k, n in total.items()}
        elif isinstance(values[0], (int, np.integer)) and not isinstance(values[0], bool):
            out[key] = int(sum(values))
    weights = {
        "first_pass_valid_share": "expected_intervals",
        "estimated_share": "expected_intervals",
        "completeness": "due_intervals",
    }
    for key, base in weights.items():
        if key in parts[0]:
            w = np.asarray([p.get(base, 0) for p in parts], dtype="float64")
            v = np.asarray([p[key] for p in parts], dtype="float64")
            out[key] = float((v * w).sum() / w.sum()) if w.sum() else float(v[0])
    return out
