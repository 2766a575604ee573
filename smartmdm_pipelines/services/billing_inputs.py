"""The fingerprint of everything one billing period's dbt build reads, so a re-close with
unchanged inputs does not rebuild the models.

The dbt models of a period are a pure function of the project's files and of the store rows they
read: the master data, tariffs, billing cycles and system peaks (small: hashed whole, every column),
register reads near the period and the interval versions of the period's read days. Interval
versions are append-only (a VEE result, estimate or edit is a new version; the close only flips
``billed``, which no model reads), so their watermark over the period's read days, widened by the
register-read tolerance, — count, sum of versions, first and last ``created_at`` — changes whenever
a version is added. The fingerprint is recorded by the build itself (the ``close_inputs`` model,
built last, after every model and test of the period passed); every dbt run empties it first
(the project's on-run-start hook), so a failed or other-period build never leaves a fingerprint
that matches tables it did not finish.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import sqlalchemy as sa
import yaml

from smartmdm_pipelines.store.store import Store

SMALL_TABLES = (
    "meters",
    "meter_installs",
    "accounts",
    "service_point_history",
    "billing_cycles",
    "tariffs",
    "tariff_schedules",
    "tariff_holidays",
    "system_peaks",
)
MARGIN_DAYS = 2  # read days on either side of a period's local days (time zones, the models' ±1)


def _row_hash(store: Store, alias: str, columns: str | None = None) -> str:
    """An order-independent hash of every row (or the given columns), summed."""
    if store.backend == "duckdb":
        return f"sum(hash({columns or alias}))"
    return f"sum(hashtextextended(({f'row({columns})' if columns else alias})::text, 0))"


def project_digest(project_dir: Path) -> str:
    """A digest of the dbt project's files (models, macros, seeds, YAML)."""
    digest = hashlib.sha256()
    for path in sorted(project_dir.rglob("*")):
        if path.suffix in (".sql", ".yml", ".csv") and "target" not in path.parts:
            digest.update(str(path.relative_to(project_dir)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def tolerance_days(project_dir: Path) -> int:
    """The project's register_read_tolerance_days (register reads this close to a boundary bill it)."""
    project = yaml.safe_load((project_dir / "dbt_project.yml").read_text())
    return int(project.get("vars", {}).get("register_read_tolerance_days", 3))


def period_fingerprint(store: Store, cycle_id: str, period_start: str, project_dir: Path) -> str | None:
    """The fingerprint of one period's dbt inputs; None when the period is not in billing_cycles."""
    start = dt.date.fromisoformat(period_start)
    end = store.scalar(
        "SELECT period_end FROM billing_cycles WHERE cycle_id = :c AND period_start = :p",
        {"c": cycle_id, "p": start},
    )
    if end is None:
        return None
    end = end if isinstance(end, dt.date) else dt.date.fromisoformat(str(end)[:10])
    margin = dt.timedelta(days=tolerance_days(project_dir) + MARGIN_DAYS)
    d0, d1 = start - margin, end + margin
    parts = [store.backend, cycle_id, period_start, project_digest(project_dir)]
    small = " UNION ALL ".join(
        f"SELECT '{t}' AS t, count(*) AS n, cast({_row_hash(store, 'x')} AS varchar) AS h FROM {t} AS x"
        for t in SMALL_TABLES
    )
    reads = (
        f"SELECT 'register_reads' AS t, count(*) AS n, "
        f"cast({_row_hash(store, 'x', 'meter_id, channel, read_at, value')} AS varchar) AS h "
        "FROM register_reads AS x WHERE read_at >= :t0 AND read_at < :t1"
    )
    intervals = (
        "SELECT 'intervals' AS t, count(*) AS n, cast(sum(version) AS varchar) || '|' || "
        "cast(min(created_at) AS varchar) || '|' || cast(max(created_at) AS varchar) AS h "
        "FROM intervals WHERE read_day BETWEEN :d0 AND :d1"
    )
    frame = store.read_frame(
        f"{small} UNION ALL {reads} UNION ALL {intervals} ORDER BY t",
        {
            "t0": dt.datetime.combine(d0, dt.time(), dt.UTC),
            "t1": dt.datetime.combine(d1, dt.time(), dt.UTC),
            "d0": d0,
            "d1": d1,
        },
    )
    parts += [f"{r.t} {r.n} {r.h}" for r in frame.itertuples()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def built_fingerprint(store: Store) -> str | None:
    """The fingerprint the last complete dbt build recorded (None when none is recorded)."""
    if not sa.inspect(store.engine).has_table("close_inputs"):
        return None
    return store.scalar("SELECT max(fingerprint) FROM close_inputs")
