"""CIS master data inbound — from the CSV drop or the CIS REST API — kept with history.

Both sources give the same frames and go through :func:`sync_master_data`:

* ``meters``, ``zones``, ``billing_cycles`` (PK cycle_id, period_start): upsert.
* ``accounts`` (PK account_id, service_point_id, move_in) and ``meter_installs``
  (PK meter_id, service_point_id, installed_at) are effective-dated by the CIS: new rows are
  inserted, changed rows (move_out, removed_at, multiplier …) updated. Rows absent from a
  snapshot are never deleted.
* ``service_points`` is the current snapshot (upsert by id) and ``service_point_history``
  gets a new version whenever an attribute changes: the open version is closed
  (``valid_to`` = the change's effective date, exclusive) and a new one opened on that date.

Rules (docs/cis.md):

* The effective date of a change is the row's ``effective_from`` if the CIS sends one, else
  the ``effective_date`` argument, else today (UTC).
* First sight of a service point opens its history at ``effective_from`` if sent, else the
  earliest known ``accounts.move_in`` / ``meter_installs.installed_at`` (UTC date) of that
  service point, else 1900-01-01 (nothing earlier is known, so the version applies to the past).
* A change dated on or before the open version's ``valid_from`` corrects that open version in
  place (counted as ``updated`` in the history) instead of producing an empty or overlapping one.
* Only columns the source sends are written on update; a column it omits keeps its stored value.
* ``synced_at`` is when the row's current content was written: a re-sync of identical data
  changes nothing at all.

Every write is set-based: the frame is bulk-loaded into a temporary staging table, then
``INSERT … ON CONFLICT … DO UPDATE … WHERE IS DISTINCT FROM`` (DuckDB and PostgreSQL), all
tables in one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from smartmdm_pipelines.integrations.cis_client import RECORD_COLUMN, SOURCE_COLUMN, CisClient, CisError
from smartmdm_pipelines.store.store import Store

# table -> CSV file name in the drop folder; also the sync order (history comes last).
MASTER_TABLES: dict[str, str] = {
    "zones": "zones.csv",
    "billing_cycles": "billing_cycles.csv",
    "meters": "meters.csv",
    "service_points": "service_points.csv",
    "accounts": "accounts.csv",
    "meter_installs": "meter_installs.csv",
}
MASTER_FILES = {table: name for table, name in MASTER_TABLES.items()}  # backwards-compatible name
HISTORY_TABLE = "service_point_history"
HISTORY_ATTRIBUTES = (
    "commodity",
    "timezone",
    "rate_code",
    "billing_cycle",
    "route",
    "zone_id",
    "customer_class",
    "has_solar",
    "status",
)
EFFECTIVE_FROM = "effective_from"
FIRST_SIGHT_FALLBACK = dt.date(1900, 1, 1)
# values used when a non-null column is sent but empty (the same as the schema's server defaults)
DEFAULTS: dict[str, object] = {"role": "customer", "multiplier": 1.0, "has_solar": False, "status": "active"}
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}

MasterSource = Path | str | Mapping[str, pd.DataFrame] | CisClient


class MasterDataError(ValueError):
    """Bad master data: names the file or URL, the line or record, and what was expected."""


@dataclass
class TableCounts:
    received: int = 0
    inserted: int = 0
    updated: int = 0
    closed: int = 0
    unchanged: int = 0


@dataclass
class SyncReport:
    """Per-table counts of one sync (``service_point_history`` included)."""

    source: str
    effective_date: dt.date
    tables: dict[str, TableCounts] = field(default_factory=dict)

    def __getitem__(self, table: str) -> TableCounts:
        return self.tables[table]

    @property
    def changed(self) -> int:
        return sum(c.inserted + c.updated + c.closed for c in self.tables.values())

    def as_metadata(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for table, c in self.tables.items():
            for name in ("received", "inserted", "updated", "closed"):
                out[f"{table}_{name}"] = getattr(c, name)
        return out


@dataclass
class _Raw:
    """One dataset as received: text/JSON values plus where each row came from."""

    table: str
    frame: pd.DataFrame  # with SOURCE_COLUMN and RECORD_COLUMN
    where: str  # file or URL, for dataset-level errors
    unit: str  # "line" | "record"


# --- public API ----------------------------------------------------------------------------------


def read_master_data(source: MasterSource) -> dict[str, pd.DataFrame]:
    """Read and validate every master dataset of ``source`` into typed frames (no database)."""
    return {raw.table: _typed(raw) for raw in _read_source(source)}


def sync_master_data(
    store: Store, frames_or_source: MasterSource, effective_date: dt.date | None = None
) -> SyncReport:
    """Synchronise CIS master data into the store, keeping history (never overwriting it).

    ``frames_or_source`` is a CSV drop folder, a :class:`CisClient`, or a mapping of table
    name to frame (text or typed values). Tables the source does not have are left alone.
    """
    raws = _read_source(frames_or_source)
    typed = {raw.table: _typed(raw) for raw in raws}
    default_date = effective_date or pd.Timestamp.now(tz="UTC").date()
    now = pd.Timestamp.now(tz="UTC")
    report = SyncReport(source=_describe(frames_or_source), effective_date=default_date)
    stages: dict[str, sa.Table] = {}
    with store.begin() as conn:
        for table in MASTER_TABLES:
            if table not in typed:
                continue
            frame = typed[table]
            if frame.empty:
                report.tables[table] = TableCounts()
                continue
            stage = _stage(store, conn, table, frame, now)
            counts = _upsert(
                conn, store.table(table), stage, list(frame.columns.drop(EFFECTIVE_FROM, errors="ignore"))
            )
            counts.received = len(frame)
            report.tables[table] = counts
            stages[table] = stage
        if "service_points" in stages:  # after accounts and installs: first sight needs their dates
            report.tables[HISTORY_TABLE] = _history(conn, stages["service_points"], default_date, now)
        for stage in _staged(conn):
            _drop(conn, stage)
    return report


# --- reading --------------------------------------------------------------------------------------


def _describe(source: MasterSource) -> str:
    if isinstance(source, CisClient):
        return source.base_url
    if isinstance(source, Mapping):
        return "frames"
    return str(source)


def _read_source(source: MasterSource) -> list[_Raw]:
    if isinstance(source, CisClient):
        raws = []
        for table in MASTER_TABLES:
            try:
                frame = source.fetch(table)
            except CisError as exc:
                raise MasterDataError(str(exc)) from exc
            raws.append(_Raw(table, frame, source.dataset_url(table), "record"))
        return raws
    if isinstance(source, Mapping):
        unknown = set(source) - set(MASTER_TABLES)
        if unknown:
            raise MasterDataError(
                f"unknown master tables {sorted(unknown)}; expected some of {list(MASTER_TABLES)}"
            )
        raws = []
        for table in MASTER_TABLES:
            if table in source:
                frame = source[table].reset_index(drop=True).copy()
                if SOURCE_COLUMN not in frame:
                    frame[SOURCE_COLUMN] = f"<{table} frame>"
                    frame[RECORD_COLUMN] = range(1, len(frame) + 1)
                raws.append(_Raw(table, frame, f"<{table} frame>", "record"))
        return raws
    folder = Path(source)
    raws = []
    for table, name in MASTER_TABLES.items():
        path = folder / name
        if path.exists():
            try:
                frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            except (ValueError, pd.errors.ParserError) as exc:
                raise MasterDataError(f"{path}: not a readable CSV file: {exc}") from exc
            frame = frame.replace({"": None})
            frame[SOURCE_COLUMN] = str(path)
            frame[RECORD_COLUMN] = range(2, len(frame) + 2)  # line 1 is the header
            raws.append(_Raw(table, frame, str(path), "line"))
    if not raws:
        raise MasterDataError(
            f"no CIS master files in {folder} (expected some of {list(MASTER_TABLES.values())})"
        )
    return raws


def _typed(raw: _Raw) -> pd.DataFrame:
    """Validate and convert one dataset to the table's types; errors name file/URL, line/record, expectation."""
    table = _schema_table(raw.table)
    frame = raw.frame
    if len(frame) == 0 and not (set(frame.columns) - {SOURCE_COLUMN, RECORD_COLUMN}):
        return pd.DataFrame()  # an empty REST dataset carries no columns: nothing to check or sync
    known = [c.name for c in table.columns if c.name != "synced_at"]
    missing = [
        c.name
        for c in table.columns
        if c.name != "synced_at" and not c.nullable and c.name not in DEFAULTS and c.name not in frame
    ]
    if missing:
        raise MasterDataError(
            f"{raw.where}: missing column{'s' if len(missing) > 1 else ''} {missing}; "
            f"expected columns {known} (required: {[c.name for c in table.columns if not c.nullable and c.name not in DEFAULTS]})"
        )
    wanted = [c for c in known if c in frame]
    if raw.table == "service_points" and EFFECTIVE_FROM in frame:
        wanted.append(EFFECTIVE_FROM)
    out = pd.DataFrame(index=frame.index)
    for name in wanted:
        column = table.c[name] if name in table.c else sa.Column(EFFECTIVE_FROM, sa.Date)
        out[name] = _convert(raw, name, column)
        if not column.nullable:
            empty = out[name].isna()
            if name in DEFAULTS:
                out[name] = out[name].where(~empty, DEFAULTS[name])
                if column.type.python_type is bool:
                    out[name] = out[name].astype(bool)
            elif empty.any():
                raise MasterDataError(f"{_at(raw, empty)}: column {name!r} is empty; expected a value")
    key = [c.name for c in table.primary_key.columns]
    dup = out.duplicated(key, keep=False)
    if dup.any():
        first = out.loc[dup, key].iloc[0]
        same = dup & (out[key] == first).all(axis=1)
        where = raw.frame.loc[same, RECORD_COLUMN].tolist()[:5]
        raise MasterDataError(
            f"{raw.where}: duplicate key {dict(first)} on {raw.unit}s {where}; expected one row per {key}"
        )
    return out.reset_index(drop=True)


def _convert(raw: _Raw, name: str, column: sa.Column) -> pd.Series:
    values = raw.frame[name]
    text = values.astype("string").str.strip()
    text = text.where(text != "", pd.NA)
    present = text.notna()
    kind = column.type
    if isinstance(kind, sa.DateTime):
        parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
        expected = "an ISO 8601 timestamp (e.g. 2024-03-01T06:00:00Z)"
    elif isinstance(kind, sa.Date):
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_localize(None)
        bad_time = present & parsed.notna() & (parsed != parsed.dt.normalize())
        parsed = parsed.where(~bad_time)
        parsed = parsed.dt.normalize().astype("datetime64[s]")
        expected = "an ISO 8601 date (YYYY-MM-DD)"
    elif isinstance(kind, sa.Boolean):
        lower = text.str.lower()
        parsed = lower.map(lambda v: True if v in _TRUE else False if v in _FALSE else None).astype("boolean")
        expected = "a boolean (true/false, 1/0, yes/no)"
    elif isinstance(kind, sa.Integer):
        number = pd.to_numeric(text, errors="coerce")
        parsed = number.where(number.isna() | (number == number.round()))
        parsed = parsed.astype("Int64")
        expected = "an integer"
    elif isinstance(kind, sa.Float | sa.Double | sa.Numeric):
        parsed = pd.to_numeric(text, errors="coerce").astype("float64")
        expected = "a number"
    else:
        return text.astype(object).where(present, None)
    bad = present & parsed.isna()
    if bad.any():
        value = text[bad].iloc[0]
        raise MasterDataError(f"{_at(raw, bad)}: column {name!r} is {value!r}; expected {expected}")
    return parsed


def _at(raw: _Raw, mask: pd.Series) -> str:
    row = raw.frame.loc[mask].iloc[0]
    return f"{row[SOURCE_COLUMN]} {raw.unit} {row[RECORD_COLUMN]}"


def _schema_table(name: str) -> sa.Table:
    from smartmdm_pipelines.store.schema import metadata

    return metadata.tables[name]


# --- writing -------------------------------------------------------------------------------------

_STAGE_PREFIX = "_cis_stage_"


def _stage(store: Store, conn: sa.Connection, table: str, frame: pd.DataFrame, now: pd.Timestamp) -> sa.Table:
    """Bulk-load ``frame`` (+ synced_at) into a temporary table shaped like ``table``'s columns."""
    target = store.table(table)
    columns = [sa.Column(c.name, c.type) for c in target.columns if c.name in frame or c.name == "synced_at"]
    if EFFECTIVE_FROM in frame:
        columns.append(sa.Column(EFFECTIVE_FROM, sa.Date))
    stage = sa.Table(_STAGE_PREFIX + table, sa.MetaData(), *columns, prefixes=["TEMPORARY"])
    _drop(conn, stage.name)
    stage.create(conn)
    store.bulk_insert(stage, frame.assign(synced_at=now), conn)
    return stage


def _staged(conn: sa.Connection) -> list[str]:
    return [_STAGE_PREFIX + t for t in MASTER_TABLES]


def _drop(conn: sa.Connection, name: str) -> None:
    conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))


def _q(name: str) -> str:
    return f'"{name}"'


def _upsert(conn: sa.Connection, target: sa.Table, stage: sa.Table, columns: list[str]) -> TableCounts:
    key = [c.name for c in target.primary_key.columns]
    attrs = [c for c in columns if c not in key]
    t, s = _q(target.name), _q(stage.name)
    on = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in key)
    differs = " OR ".join(f"t.{_q(c)} IS DISTINCT FROM s.{_q(c)}" for c in attrs) or "FALSE"
    inserted = conn.execute(
        sa.text(f"SELECT count(*) FROM {s} s WHERE NOT EXISTS (SELECT 1 FROM {t} t WHERE {on})")
    ).scalar_one()
    updated = conn.execute(
        sa.text(f"SELECT count(*) FROM {s} s JOIN {t} t ON {on} WHERE {differs}")
    ).scalar_one()
    cols = ", ".join(_q(c) for c in [*columns, "synced_at"])
    if attrs:
        sets = ", ".join(f"{_q(c)} = EXCLUDED.{_q(c)}" for c in [*attrs, "synced_at"])
        changed = " OR ".join(f"{t}.{_q(c)} IS DISTINCT FROM EXCLUDED.{_q(c)}" for c in attrs)
        action = f"DO UPDATE SET {sets} WHERE {changed}"
    else:
        action = "DO NOTHING"
    conn.execute(
        sa.text(
            f"INSERT INTO {t} ({cols}) SELECT {cols} FROM {s} "
            f"ON CONFLICT ({', '.join(_q(k) for k in key)}) {action}"
        )
    )
    total = conn.execute(sa.text(f"SELECT count(*) FROM {s}")).scalar_one()
    return TableCounts(
        inserted=int(inserted), updated=int(updated), unchanged=int(total - inserted - updated)
    )


def _history(conn: sa.Connection, stage: sa.Table, default_date: dt.date, now: pd.Timestamp) -> TableCounts:
    """Close and open service-point versions for the staged service points (after their upsert)."""
    h, s = _q(HISTORY_TABLE), _q(stage.name)
    change = (
        f"COALESCE(s.{_q(EFFECTIVE_FROM)}, :default_date)" if EFFECTIVE_FROM in stage.c else ":default_date"
    )
    differs = " OR ".join(f"h.{_q(a)} IS DISTINCT FROM sp.{_q(a)}" for a in HISTORY_ATTRIBUTES)
    # the open version of each staged service point, joined to its current snapshot row
    changed = (
        f"SELECT h.service_point_id, {change} AS change_date, h.valid_from "
        f"FROM {s} s JOIN service_points sp ON sp.service_point_id = s.service_point_id "
        f"JOIN {h} h ON h.service_point_id = s.service_point_id AND h.valid_to IS NULL "
        f"WHERE {differs}"
    )
    params = {"default_date": default_date, "now": now.to_pydatetime()}
    attrs = ", ".join(_q(a) for a in HISTORY_ATTRIBUTES)
    corrected = conn.execute(
        sa.text(f"SELECT count(*) FROM ({changed}) c WHERE c.change_date <= c.valid_from"), params
    ).scalar_one()
    closed = conn.execute(
        sa.text(f"SELECT count(*) FROM ({changed}) c WHERE c.change_date > c.valid_from"), params
    ).scalar_one()
    sets = ", ".join(f"{_q(a)} = c.{_q(a)}" for a in HISTORY_ATTRIBUTES)
    # 1. a change dated on/before the open version's start corrects that version in place
    conn.execute(
        sa.text(
            f"UPDATE {h} SET {sets}, synced_at = :now FROM ("
            f"SELECT sp.*, {change} AS change_date FROM {s} s "
            f"JOIN service_points sp ON sp.service_point_id = s.service_point_id) c "
            f"WHERE {h}.service_point_id = c.service_point_id AND {h}.valid_to IS NULL "
            f"AND c.change_date <= {h}.valid_from AND ("
            + " OR ".join(f"{h}.{_q(a)} IS DISTINCT FROM c.{_q(a)}" for a in HISTORY_ATTRIBUTES)
            + ")"
        ),
        params,
    )
    # 2. a later change closes the open version …
    conn.execute(
        sa.text(
            f"UPDATE {h} SET valid_to = c.change_date FROM ({changed}) c "
            f"WHERE {h}.service_point_id = c.service_point_id AND {h}.valid_to IS NULL "
            f"AND c.change_date > {h}.valid_from"
        ),
        params,
    )
    # 3. … and every staged service point without an open version gets one: after a close on the
    # change date, at first sight on effective_from / earliest move-in or install / 1900-01-01.
    first_seen = (
        "SELECT service_point_id, min(d) AS first_seen FROM ("
        "SELECT service_point_id, move_in AS d FROM accounts UNION ALL "
        "SELECT service_point_id, CAST(installed_at AT TIME ZONE 'UTC' AS DATE) AS d FROM meter_installs"
        ") x GROUP BY service_point_id"
    )
    sight = f"s.{_q(EFFECTIVE_FROM)}, " if EFFECTIVE_FROM in stage.c else ""
    to_open = (
        f"FROM {s} s JOIN service_points sp ON sp.service_point_id = s.service_point_id "
        f"LEFT JOIN (SELECT service_point_id, max(valid_to) AS last_to FROM {h} GROUP BY service_point_id) p "
        f"ON p.service_point_id = s.service_point_id "
        f"LEFT JOIN ({first_seen}) f ON f.service_point_id = s.service_point_id "
        f"WHERE NOT EXISTS (SELECT 1 FROM {h} o WHERE o.service_point_id = s.service_point_id "
        f"AND o.valid_to IS NULL)"
    )
    valid_from = (
        f"CASE WHEN p.last_to IS NULL THEN COALESCE({sight}f.first_seen, DATE '{FIRST_SIGHT_FALLBACK}') "
        f"ELSE GREATEST({change}, p.last_to) END"
    )
    opened = conn.execute(sa.text(f"SELECT count(*) {to_open}"), params).scalar_one()
    conn.execute(
        sa.text(
            f"INSERT INTO {h} (service_point_id, valid_from, valid_to, {attrs}, synced_at) "
            f"SELECT sp.service_point_id, {valid_from}, NULL, "
            + ", ".join(f"sp.{_q(a)}" for a in HISTORY_ATTRIBUTES)
            + f", :now {to_open}"
        ),
        params,
    )
    total = conn.execute(sa.text(f"SELECT count(*) FROM {s}")).scalar_one()
    return TableCounts(
        received=int(total),
        inserted=int(opened),
        updated=int(corrected),
        closed=int(closed),
        unchanged=int(total - opened - corrected),
    )
