"""Crash anywhere (issue 15): run a scenario in a forked child that SIGKILLs itself at its N-th step.

A *step* is one side effect the code is about to make, counted in the child in the order it
happens:

* every statement SQLAlchemy sends (``before_cursor_execute`` on every ``Engine``) and every
  COMMIT (``commit``): the store's SQL, reads included;
* every bulk write that bypasses SQLAlchemy's cursor events (``store._duckdb_insert``: DuckDB's
  Arrow ``INSERT … SELECT``; ``store._postgres_copy``: PostgreSQL's ``COPY FROM STDIN``);
* every file operation of landing, archive, quarantine and export: ``os.replace``, ``os.rename``,
  ``shutil.move``, ``shutil.copy2``, ``os.fsync`` (after a file's bytes are written, before it is
  renamed into place), ``os.unlink``;
* every HTTP request (``requests.Session.send``: the outbox dispatcher's POST).

The child is killed *before* step N happens (``os.kill(getpid(), SIGKILL)``: no ``finally``, no
``atexit``, no flush, no rollback but the database's own). A dry run counts the steps; the
points are the last step and N drawn from [1, total) with a seeded generator. Counting is
deterministic: the same scenario on the same fresh store takes the same steps.

Children are forked from the warm test process (the imports are done once); the parent holds no
database connection while it forks. A child sends its result back pickled through a pipe.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import shutil
import signal
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import requests
import sqlalchemy as sa

from smartmdm_pipelines.store import store as store_module
from smartmdm_pipelines.store.schema import metadata
from smartmdm_pipelines.store.store import Store

DEFAULT_SEED = 20261202


def crash_points(total: int, count: int, seed: int | None = None) -> list[int]:
    """``count`` distinct points in [1, total] (all of them when there are fewer): always the last
    step (the work is done but its last effect, e.g. the archive move or the publication of a
    batch: where both bugs this suite found were), and ``count - 1`` drawn from the others by a
    seeded generator."""
    seed = int(os.environ.get("SMARTMDM_CRASH_SEED", DEFAULT_SEED)) if seed is None else seed
    if total <= count:
        return list(range(1, total + 1))
    return sorted([*random.Random(seed).sample(range(1, total), count - 1), total])


# --- counting steps in the child ----------------------------------------------------------------------


class _Steps:
    def __init__(self, kill_at: int | None) -> None:
        self.kill_at = kill_at
        self.count = 0
        self.kinds: Counter[str] = Counter()

    def __call__(self, kind: str) -> None:
        self.count += 1
        self.kinds[kind] += 1
        if self.kill_at is not None and self.count >= self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


def _arm(steps: _Steps) -> None:
    """Count (and kill at) every step of this process from now on. Only ever called in a child."""
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", lambda *a, **k: steps("sql"))
    sa.event.listen(sa.engine.Engine, "commit", lambda *a, **k: steps("commit"))

    def counted(kind: str, fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            steps(kind)
            return fn(*args, **kwargs)

        return wrapper

    store_module._duckdb_insert = counted("bulk", store_module._duckdb_insert)
    store_module._postgres_copy = counted("bulk", store_module._postgres_copy)
    for name in ("replace", "rename", "fsync", "unlink"):
        setattr(os, name, counted(f"os.{name}", getattr(os, name)))
    shutil.move = counted("shutil.move", shutil.move)
    shutil.copy2 = counted("shutil.copy2", shutil.copy2)
    requests.Session.send = counted("http", requests.Session.send)


# --- forking ------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    killed: bool
    steps: int = 0  # steps taken (a run that finished)
    kinds: dict | None = None
    value: Any = None


class ChildFailed(AssertionError):
    pass


def run_forked(fn: Callable[..., Any], *args, kill_at: int | None = None, count: bool = False) -> Outcome:
    """Run ``fn(*args)`` in a forked child; ``kill_at``: SIGKILL it before its ``kill_at``-th step;
    ``count``: count its steps (a dry run). The child's return value must pickle."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read_end)
            steps = _Steps(kill_at)
            if kill_at is not None or count:
                _arm(steps)
            value = fn(*args)
            payload = pickle.dumps(("ok", value, steps.count, dict(steps.kinds)))
        except BaseException:  # reported to the parent, which fails the test with it
            payload = pickle.dumps(("error", traceback.format_exc(), 0, {}))
            code = 1
        try:
            with os.fdopen(write_end, "wb") as out:
                out.write(payload)
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as inp:
        data = inp.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
        return Outcome(killed=True)
    if not data:
        raise ChildFailed(f"child {pid} ended without a result (status {status})")
    kind, value, steps, kinds = pickle.loads(data)
    if kind == "error":
        raise ChildFailed(f"the forked scenario raised:\n{value}")
    return Outcome(killed=False, steps=steps, kinds=kinds, value=value)


def in_child(fn: Callable[..., Any], *args) -> Any:
    """``fn(*args)`` in a forked child, without counting: work that opens the store (DuckDB or a
    driver's threads) stays out of the parent that forks again."""
    return run_forked(fn, *args).value


# --- the store's content ------------------------------------------------------------------------------

# Columns that differ between two correct runs of the same work, normalised rather than compared:
WALL_CLOCK = {  # when it happened: compared as set / not set
    "received_at",
    "loaded_at",
    "created_at",
    "vee_at",
    "sent_at",
    "delivered_at",
    "closed_at",
    "updated_at",
    "detected_at",
    "synced_at",
}
# Surrogate keys drawn from a sequence (a crashed transaction consumes numbers on PostgreSQL) are
# replaced by the natural key they stand for (``file_id`` and ``*_file_id`` -> the delivery's
# sha256) or by their rank (``outbox.seq``: the order is what counts).
# names built from the wall clock: the batch stamp ``_20261202T021314Z``, the archive folder of
# the day a file was received (``archive/2026/12/02/``); paths are relative to the bench's data folder
_STAMP = re.compile(r"_\d{8}T\d{6}Z")
_RECEIVED_DAY = re.compile(r"archive/\d{4}/\d{2}/\d{2}/")
_SKIPPED_TABLES = {"alembic_version"}


def stamp_free(text: str, data_dir: str | None = None) -> str:
    if data_dir:
        text = text.replace(data_dir, "<data>")
    return _RECEIVED_DAY.sub("archive/<day>/", _STAMP.sub("_<stamp>", text))


def store_content(url: str, data_dir: str) -> dict[str, list[tuple]]:
    """Every table of the store as sorted, normalised rows (see ``WALL_CLOCK`` and the notes above)."""
    store = Store(url, migrate_schema=False)
    try:
        files = store.read_frame("SELECT file_id, sha256 FROM headend_files")
        sha_of = dict(zip(files["file_id"].astype("int64"), files["sha256"], strict=True))
        out = {}
        for name in sorted(metadata.tables):
            if name in _SKIPPED_TABLES:
                continue
            frame = store.read_frame(f'SELECT * FROM "{name}"')
            out[name] = _normalised_rows(name, frame, sha_of, data_dir)
        return out
    finally:
        store.dispose()


def _normalised_rows(table: str, frame: pd.DataFrame, sha_of: dict[int, str], data_dir: str) -> list[tuple]:
    frame = frame.copy()
    for column in frame.columns:
        if column in WALL_CLOCK:
            frame[column] = frame[column].notna()
        elif column == "file_id" or column.endswith("_file_id"):
            frame[column] = frame[column].map(lambda v: sha_of.get(int(v)) if pd.notna(v) else None)
        elif table == "outbox" and column == "seq":
            frame[column] = frame[column].rank(method="dense").astype("int64")
    rows = []
    for row in frame.astype(object).where(frame.notna(), None).itertuples(index=False):
        rows.append(tuple(stamp_free(v, data_dir) if isinstance(v, str) else _plain(v) for v in row))
    return sorted(rows, key=repr)


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def differences(expected: dict[str, list[tuple]], got: dict[str, list[tuple]], limit: int = 3) -> list[str]:
    """One line per table whose rows differ: counts and a few rows missing / extra."""
    out = []
    for table in sorted(set(expected) | set(got)):
        a, b = Counter(expected.get(table, [])), Counter(got.get(table, []))
        if a == b:
            continue
        missing, extra = list((a - b).elements()), list((b - a).elements())
        out.append(
            f"{table}: {sum(a.values())} rows expected, {sum(b.values())} found; "
            f"missing {[repr(r)[:400] for r in missing[:limit]]}; extra {[repr(r)[:400] for r in extra[:limit]]}"
        )
    return out
