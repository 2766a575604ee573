"""Batch export of billing determinants to the CIS, recorded in the outbox.

One record per account, service point, cycle, period and version (the determinants table is
long: one row per determinant). A batch is three files in the export folder:

* ``{batch}.csv`` — wide: one line per record, a column per determinant (``_p{tou_period}``
  suffix for TOU determinants; ``_s{n}`` when a period is split in rate segments), plus
  ``period_end``, ``is_correction``, ``estimated_share`` (the largest share of the record) and
  the ``idempotency_key``;
* ``{batch}.jsonl`` — the same records as JSON objects, determinants nested as a list of
  ``{determinant, tou_period, value, unit, source}`` (plus the rate segment when present);
* ``{batch}.manifest.json`` — batch name, created_at, record and determinant-row counts,
  sha256 and size of each file, the cycle periods covered and the number of corrections.
  Written last: a CIS that waits for the manifest never sees a partial batch.

Every file is written under a temporary name, then kept as ``.{file}.pending`` until the
transaction that records the batch commits; only then are the files renamed to their names, the
manifest last. An export killed before its commit leaves pending files that the next export into
the folder deletes (their records were never recorded as sent, so they are exported again); one
killed after it leaves pending files that the next export publishes (their records are recorded as
sent and will not be exported again). So a record is in one published batch, never in two, and
never in none. Exports into one folder take turns (``Store.begin_locked``). Each exported record becomes one
``outbound_messages`` row (key ``billing:{account}:{service point}:{cycle}:{period start}:v{version}``,
channel ``cis_batch``, status ``sent``, response = the batch file name); a record whose key is
already in the outbox is skipped, so re-exporting is idempotent. Outbox rows and files are
written in one transaction (outbox rows first, so a concurrent export of the same records fails
on the key before it writes a file).

Given an :class:`IntervalScope` (the cycle close does), the batch also carries the period's
interval records, read from the real-time ``outbox`` (``services/outbox.batch_records``):

* ``{batch}.intervals.csv`` — one line per interval version, the columns and values of the push
  contract (``message_id`` … ``version``): a version pushed in real time has the same
  ``message_id`` here, so the CIS reconciles the file against the pushes by id. Only versions no
  earlier batch carried are in it (they become outbox rows of destination ``cis_batch``), so a
  re-close after a new version carries the new id alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from smartmdm_pipelines.services import outbox
from smartmdm_pipelines.store.store import Store

RECORD_KEY = ["account_id", "service_point_id", "cycle_id", "period_start", "version"]
REQUIRED = [*RECORD_KEY, "period_end", "determinant", "value"]
CHANNEL = "cis_batch"
KIND = "billing_determinants"
_SEGMENT = ["rate_code", "segment_start", "segment_end"]


class ExportError(ValueError):
    pass


# the meters a period bills: installed at the service points of dbt's bill_segments for the period
BILLED_METERS = (
    "SELECT DISTINCT mi.meter_id FROM meter_installs mi JOIN bill_segments s "
    "ON s.service_point_id = mi.service_point_id AND s.cycle_id = :scope_cycle "
    "AND s.period_start = :scope_start"
)


@dataclass(frozen=True)
class IntervalScope:
    """The interval records a cycle's batch carries: those of the meters ``meters_sql`` selects
    (default: the meters the period bills), on the period's operating days."""

    cycle_id: str
    period_start: dt.date
    period_end: dt.date
    meters_sql: str = BILLED_METERS  # may use :scope_cycle and :scope_start

    chunk_intervals: int = 1_000_000  # about this many interval rows in memory at a time

    def chunks(self, store: Store, conn) -> Iterator[pd.DataFrame]:
        """The new interval records (``outbox.batch_records``), a chunk of meters at a time."""
        params = {"scope_cycle": self.cycle_id, "scope_start": self.period_start}
        meters = store.read_frame(
            f"SELECT meter_id FROM ({self.meters_sql}) m ORDER BY meter_id", params, conn
        )["meter_id"].tolist()
        days = (self.period_end - self.period_start).days + 1
        per_chunk = max(1, self.chunk_intervals // (days * 96))
        for i in range(0, len(meters), per_chunk):
            yield outbox.batch_records(
                store,
                conn,
                "SELECT unnest(:chunk_meters)",
                {"chunk_meters": meters[i : i + per_chunk]},
                self.period_start,
                self.period_end,
            )


@dataclass
class ExportResult:
    batch_name: str
    exported: int = 0  # records written to the batch
    skipped: int = 0  # records already in the outbox
    interval_records: int = 0  # interval versions in {batch}.intervals.csv
    determinant_rows: int = 0
    corrections: int = 0
    files: dict[str, Path] = field(default_factory=dict)  # csv, jsonl, manifest
    manifest: dict | None = None


def idempotency_keys(records: pd.DataFrame) -> pd.Series:
    """``billing:{account_id}:{service_point_id}:{cycle_id}:{period_start}:v{version}`` per row."""
    return (
        "billing:"
        + records["account_id"].astype(str)
        + ":"
        + records["service_point_id"].astype(str)
        + ":"
        + records["cycle_id"].astype(str)
        + ":"
        + _iso_date(records["period_start"])
        + ":v"
        + records["version"].astype("int64").astype(str)
    )


def export_determinants(
    store: Store,
    determinants: pd.DataFrame,
    export_dir: Path,
    batch_name: str,
    *,
    intervals: IntervalScope | None = None,
) -> ExportResult:
    """Export the records of ``determinants`` not yet in the outbox as batch ``batch_name``, with
    the interval records of ``intervals`` no batch carried yet (``{batch}.intervals.csv``)."""
    missing = [c for c in REQUIRED if c not in determinants]
    if missing:
        raise ExportError(
            f"determinants lack columns {missing}; expected the columns of billing_determinants"
        )
    if not batch_name or any(ch in batch_name for ch in "/\\") or batch_name.startswith("."):
        raise ExportError(f"batch name {batch_name!r} must be a plain file stem")
    export_dir = Path(export_dir)
    names = {
        "csv": f"{batch_name}.csv",
        "jsonl": f"{batch_name}.jsonl",
        "manifest": f"{batch_name}.manifest.json",
    }
    if intervals is not None:
        names["intervals"] = f"{batch_name}.intervals.csv"
    long = _normalise(determinants)
    rid = long.groupby(RECORD_KEY, sort=False).ngroup().to_numpy()
    keys = idempotency_keys(long.drop_duplicates(RECORD_KEY)).to_numpy(dtype=object)
    long["idempotency_key"] = keys[rid]
    long["_rid"] = rid
    all_keys = keys
    result = ExportResult(batch_name)
    if long.empty and intervals is None:
        return result
    lock = f"cis_export:{export_dir.resolve()}"
    with store.begin_locked(lock) as conn:
        recover_batches(store, conn, export_dir)
    with store.begin_locked(lock) as conn:
        sent = _sent_keys(store, long, conn) if len(long) else pd.Series([], dtype=object)
        long = long[~long["idempotency_key"].isin(sent)]
        result.skipped = int(len(all_keys) - long["idempotency_key"].nunique())
        if long.empty and intervals is None:
            return result
        now = pd.Timestamp.now(tz="UTC")
        export_dir.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        records = lines = wide = None
        try:
            if long.empty:  # only interval versions can be new: no determinant files
                names.pop("csv")
                names.pop("jsonl")
            else:  # outbox rows first: a concurrent export of the same records fails on the key here
                long = long.sort_values(["_rid", "column"], kind="stable")
                records = _records(long)
                wide = _wide(long, records)
                lines = _json_lines(long, records)
                store.bulk_insert(
                    "outbound_messages",
                    pd.DataFrame(
                        {
                            "idempotency_key": records["idempotency_key"].to_numpy(),
                            "channel": CHANNEL,
                            "kind": KIND,
                            "payload": lines.to_numpy(),
                            "status": "sent",
                            "attempts": 1,
                            "response": names["jsonl"],
                            "created_at": now,
                            "sent_at": now,
                        }
                    ),
                    conn,
                )
            interval_file = None
            if intervals is not None:  # streamed, meters chunk by chunk; None when nothing is new
                interval_file = _write_intervals(
                    store, conn, intervals, export_dir / names["intervals"], batch_name, now, written
                )
            if records is None and interval_file is None:
                return result
            if interval_file is None:
                names.pop("intervals", None)
            manifest = _write_batch(
                export_dir,
                names,
                wide,
                lines,
                records,
                long,
                batch_name,
                now,
                written,
                interval_file,
                intervals,
            )
        except BaseException:
            for path in written:  # the outbox rows roll back: leave no half batch behind
                path.unlink(missing_ok=True)
            raise
    _publish(export_dir, batch_name)  # committed: the files take their names, the manifest last
    result.exported = 0 if records is None else len(records)
    result.determinant_rows = len(long)
    result.interval_records = interval_file[3] if interval_file else 0
    result.corrections = manifest["corrections"]
    result.files = {kind: export_dir / name for kind, name in names.items()}
    result.manifest = manifest
    return result


def _write_intervals(
    store: Store,
    conn,
    scope: IntervalScope,
    path: Path,
    batch_name: str,
    now: pd.Timestamp,
    written: list[Path],
) -> tuple[Path, str, int, int] | None:
    """Stream the scope's new interval records into ``path`` chunk by chunk (and into the outbox as
    ``cis_batch`` rows): (path, sha256, bytes, records), or None (no file) when nothing is new."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    digest, size, count = hashlib.sha256(), 0, 0
    try:
        with open(tmp, "wb") as fh:
            for frame in scope.chunks(store, conn):
                if frame.empty:
                    continue
                data = outbox.records_csv(frame, header=count == 0)
                fh.write(data)
                digest.update(data)
                size += len(data)
                count += len(frame)
                outbox.mark_batched(store, conn, frame, batch_name, now)
            fh.flush()
            os.fsync(fh.fileno())
        if count == 0:
            return None
        _refuse_taken(path.parent, batch_name, [path.name])
        os.replace(tmp, _pending(path))
        written.append(_pending(path))
    finally:
        if tmp.exists():
            tmp.unlink()
    return path, digest.hexdigest(), size, count


def _sent_keys(store: Store, long: pd.DataFrame, conn) -> pd.Series:
    """Outbox keys that could collide with this batch's: those of its billing periods (a LIKE
    superset, compared exactly afterwards), so a close does not read the whole outbox history."""
    periods = long[["cycle_id", "period_start"]].drop_duplicates()
    params: dict = {"kind": KIND}
    where = ""
    if len(periods) <= 64:
        likes = []
        for i, (cycle, start) in enumerate(periods.itertuples(index=False)):
            params[f"p{i}"] = f"%:{cycle}:{start}:v%"
            likes.append(f"idempotency_key LIKE :p{i}")
        where = " AND (" + " OR ".join(likes) + ")"
    return store.read_frame(
        f"SELECT idempotency_key FROM outbound_messages WHERE kind = :kind{where}", params, conn
    )["idempotency_key"]


# --- shaping ------------------------------------------------------------------------------------------


def _iso_date(values: pd.Series) -> pd.Series:
    """ISO dates, formatted once per distinct value (a period has a handful of dates, not millions)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    text = pd.to_datetime(pd.Series(uniques)).dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
    out = np.where(codes >= 0, text[np.maximum(codes, 0)] if len(text) else None, None)
    return pd.Series(out, index=values.index, dtype=object)


def _normalise(determinants: pd.DataFrame) -> pd.DataFrame:
    long = determinants.reset_index(drop=True).copy()
    for col in ("period_start", "period_end", "segment_start", "segment_end"):
        if col in long:
            long[col] = _iso_date(long[col]).astype(object).where(long[col].notna(), None)
    if long[["period_start", "period_end"]].isna().any().any():
        raise ExportError("determinants have empty period_start/period_end")
    long["version"] = long["version"].astype("int64")
    for col, default in (
        ("tou_period", pd.NA),
        ("unit", None),
        ("source", None),
        ("estimated_share", np.nan),
    ):
        if col not in long:
            long[col] = default
    long["tou_period"] = long["tou_period"].astype("Int64")
    long["is_correction"] = (
        long["is_correction"].fillna(False).astype(bool) if "is_correction" in long else False
    )
    long["value"] = long["value"].astype("float64")
    # rate segments: numbered within the record when a period is split (rate change, move-in/out)
    if "segment_start" in long and long["segment_start"].notna().any():
        seg = long["segment_start"].fillna("")
        long["segment_no"] = (
            long.assign(_seg=seg).groupby(RECORD_KEY, sort=False)["_seg"].rank(method="dense").astype("int64")
        )
        multi = long.groupby(RECORD_KEY, sort=False)["segment_no"].transform("max") > 1
        long["segment_no"] = long["segment_no"].where(multi, 0)
    else:
        long["segment_no"] = 0
    name = long["determinant"].astype(str)
    name = name.where(long["tou_period"].isna(), name + "_p" + long["tou_period"].astype(str))
    long["column"] = name.where(long["segment_no"] == 0, name + "_s" + long["segment_no"].astype(str))
    dup = long.duplicated([*RECORD_KEY, "column"], keep=False)
    if dup.any():
        first = long.loc[dup].iloc[0]
        raise ExportError(
            f"determinant {first['column']!r} appears more than once for record "
            f"{first['idempotency_key'] if 'idempotency_key' in long else dict(first[RECORD_KEY])}; "
            "expected one row per account, period, version, determinant and TOU period"
        )
    return long


def _records(long: pd.DataFrame) -> pd.DataFrame:
    """One row per record, in ``_rid`` order (``long`` is sorted by ``_rid``)."""
    rid = long["_rid"].to_numpy()
    first = np.r_[True, rid[1:] != rid[:-1]]
    records = long.loc[first, [*RECORD_KEY, "period_end", "idempotency_key"]].reset_index(drop=True)
    by_record = long.groupby("_rid", sort=True)
    records["is_correction"] = by_record["is_correction"].any().to_numpy()
    records["estimated_share"] = by_record["estimated_share"].max().to_numpy()
    return records[[*RECORD_KEY, "period_end", "is_correction", "estimated_share", "idempotency_key"]]


def _wide(long: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    values = long.set_index([*RECORD_KEY, "column"])["value"].unstack("column")
    values = values[sorted(values.columns)]
    values.columns.name = None
    wide = records.merge(values.reset_index(), on=RECORD_KEY, how="left", validate="one_to_one")
    head = [*RECORD_KEY, "period_end", "is_correction", "estimated_share", "idempotency_key"]
    return wide[head + [c for c in wide.columns if c not in head]]


def _json_lines(long: pd.DataFrame, records: pd.DataFrame) -> pd.Series:
    """One JSON object per record, determinants nested; serialised by pandas, spliced as strings."""
    item_cols = ["determinant", "tou_period", "value", "unit", "source"]
    item_cols += [c for c in _SEGMENT if c in long and long[c].notna().any()]
    items = np.array(
        long[item_cols].to_json(orient="records", lines=True, double_precision=15).splitlines(), dtype=object
    )
    heads = records[["idempotency_key", *RECORD_KEY, "period_end", "is_correction", "estimated_share"]]
    heads = heads.to_json(orient="records", lines=True, double_precision=15).splitlines()
    opening = np.array([h[:-1] + ',"determinants":[' for h in heads], dtype=object)
    rid = long["_rid"].to_numpy()  # sorted: a record's determinants are contiguous
    first = np.r_[True, rid[1:] != rid[:-1]]
    last = np.r_[rid[1:] != rid[:-1], True]
    record_no = np.cumsum(first) - 1
    pieces = np.where(first, opening[record_no], ",") + items + np.where(last, "]}\n", "")
    return pd.Series("".join(pieces.tolist()).split("\n")[:-1], dtype=object)


def _write_batch(
    export_dir: Path,
    names: dict[str, str],
    wide: pd.DataFrame | None,
    lines: pd.Series | None,
    records: pd.DataFrame | None,
    long: pd.DataFrame,
    batch_name: str,
    now: pd.Timestamp,
    written: list[Path],
    interval_file: tuple[Path, str, int, int] | None = None,
    scope: IntervalScope | None = None,
) -> dict:
    _refuse_taken(export_dir, batch_name, names.values())
    contents: dict[str, tuple[bytes, int]] = {}
    if records is not None:
        contents["csv"] = (wide.to_csv(index=False, lineterminator="\n").encode(), len(records))
        contents["jsonl"] = (("\n".join(lines) + "\n").encode(), len(records))
    files = {}
    for kind, (data, count) in contents.items():
        files[kind] = (*_write_atomic(export_dir / names[kind], data), count)
        written.append(_pending(files[kind][0]))
    if interval_file is not None:
        files["intervals"] = interval_file
    if records is not None:
        periods = records[["cycle_id", "period_start", "period_end"]]
    else:
        periods = pd.DataFrame(
            [[scope.cycle_id, _iso(scope.period_start), _iso(scope.period_end)]],
            columns=["cycle_id", "period_start", "period_end"],
        )
    periods = periods.drop_duplicates().sort_values(["cycle_id", "period_start", "period_end"])
    manifest = {
        "batch_name": batch_name,
        "created_at": now.isoformat().replace("+00:00", "Z"),
        "kind": KIND,
        "record_count": 0 if records is None else len(records),
        "determinant_rows": len(long),
        "corrections": 0 if records is None else int(records["is_correction"].sum()),
        "periods": periods.to_dict("records"),
        "files": {
            path.name: {"sha256": digest, "bytes": size, "records": count}
            for path, digest, size, count in files.values()
        },
    }
    if scope is not None:
        manifest["interval_records"] = interval_file[3] if interval_file else 0
    manifest_bytes = (json.dumps(manifest, indent=2) + "\n").encode()
    written.append(_pending(_write_atomic(export_dir / names["manifest"], manifest_bytes)[0]))
    return manifest


def _iso(day) -> str:
    return pd.Timestamp(day).date().isoformat()


def _write_atomic(path: Path, data: bytes) -> tuple[Path, str, int]:
    """Write ``data`` whole as the pending file of ``path`` (published after the commit)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, _pending(path))
    finally:
        if tmp.exists():
            tmp.unlink()
    return path, hashlib.sha256(data).hexdigest(), len(data)


# --- pending batches ----------------------------------------------------------------------------------

_PENDING = ".pending"
_MANIFEST = ".manifest.json"


def _refuse_taken(export_dir: Path, batch_name: str, names) -> None:
    """Batches are never overwritten: checked when there is something to write (a re-run that finds
    nothing new writes nothing, whatever its name)."""
    taken = [n for n in names if (export_dir / n).exists()]
    if taken:
        raise ExportError(
            f"batch {batch_name!r} already exists in {export_dir} ({taken}); batches are never overwritten"
        )


def _pending(path: Path) -> Path:
    return path.with_name(f".{path.name}{_PENDING}")


def _publish(export_dir: Path, batch_name: str) -> None:
    """Rename a committed batch's pending files to their names, the manifest last (a file another
    export's recovery published meanwhile is already in place)."""
    pending = sorted(
        export_dir.glob(f".{batch_name}.*{_PENDING}"), key=lambda p: p.name.endswith(_MANIFEST + _PENDING)
    )
    for path in pending:
        final = path.with_name(path.name[1 : -len(_PENDING)])
        try:
            os.replace(path, final)
        except FileNotFoundError:
            if not final.exists():
                raise


def recover_batches(store: Store, conn, export_dir: Path) -> list[str]:
    """Finish what a killed export left in ``export_dir`` (inside the folder's lock): publish the
    batches whose transaction committed, delete the files of those whose did not (and any
    half-written temporary file). Returns the batches published."""
    if not export_dir.is_dir():
        return []
    published = []
    for manifest in export_dir.glob(f".*{_MANIFEST}{_PENDING}"):
        batch = manifest.name[1 : -len(_MANIFEST + _PENDING)]
        committed = store.execute(
            "SELECT (SELECT count(*) FROM outbound_messages WHERE channel = :ch AND response = :j) "
            "+ (SELECT count(*) FROM outbox WHERE destination = :d AND batch_key = :b)",
            {"ch": CHANNEL, "j": f"{batch}.jsonl", "d": outbox.BATCH_DESTINATION, "b": batch},
            conn=conn,
        ).scalar_one()
        if committed:
            _publish(export_dir, batch)
            published.append(batch)
    for stray in [*export_dir.glob(f".*{_PENDING}"), *export_dir.glob(".*.tmp-*")]:
        stray.unlink(missing_ok=True)  # a batch killed before its commit: its records are not sent
    return published
