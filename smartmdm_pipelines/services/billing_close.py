"""Billing-cycle close: completeness gate, versioned determinants, billed lock, close log.

The set-based work (segments, TOU buckets, demand, registers, completeness) is the dbt
project; this module turns its fresh ``period_determinants`` into versions of
``billing_determinants``. An account-period gets a new version only when its determinants
changed (a content hash over every row), and a new version of a period that was already
closed is a correction. Re-closing with unchanged data writes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa

from smartmdm_pipelines.services import audit
from smartmdm_pipelines.store.store import Store

ACCOUNT_KEY = ["account_id", "service_point_id"]
# the latest version of every account-period of one billing period (:c cycle, :p period start)
LATEST_VERSIONS = (
    "SELECT account_id, service_point_id, max(version) AS version FROM billing_determinants "
    "WHERE cycle_id = :c AND period_start = :p GROUP BY account_id, service_point_id"
)
HASHED = ["segment_start", "rate_code", "determinant", "tou_period", "value", "unit", "source"]


class CloseRefused(RuntimeError):
    """The period's data are not complete enough to bill and no override was given."""


@dataclass(frozen=True)
class Completeness:
    expected: int
    present: int
    service_points: int
    short_service_points: pd.DataFrame = field(repr=False)

    @property
    def ratio(self) -> float:
        return self.present / self.expected if self.expected else 1.0


@dataclass
class CloseResult:
    cycle_id: str
    period_start: str
    outcome: str  # closed | corrected | unchanged | refused
    completeness: float
    accounts: int
    new_versions: int
    corrections: int
    determinant_rows: int
    flagged_for_review: int
    forced: bool

    def to_dict(self) -> dict:
        return asdict(self)


def parse_period_key(key: str) -> tuple[str, str]:
    """``C01|2024-02-01`` -> ("C01", "2024-02-01")."""
    cycle_id, _, period_start = key.partition("|")
    if not cycle_id or not period_start:
        raise ValueError(f"billing period key {key!r}: expected CYCLE|YYYY-MM-DD")
    dt.date.fromisoformat(period_start)
    return cycle_id, period_start


def period_key(cycle_id: str, period_start: dt.date | pd.Timestamp | str) -> str:
    """``CYCLE|YYYY-MM-DD`` whatever form the date comes in (a database may return a timestamp)."""
    return f"{cycle_id}|{pd.Timestamp(period_start).date().isoformat()}"


def completeness(store: Store, cycle_id: str, period_start: str) -> Completeness:
    """Present vs expected intervals from the dbt model ``period_completeness``."""
    frame = store.read_frame(
        "SELECT service_point_id, sum(expected_intervals) AS expected, sum(present_intervals) AS present "
        "FROM period_completeness WHERE cycle_id = :c AND period_start = :p GROUP BY service_point_id",
        {"c": cycle_id, "p": dt.date.fromisoformat(period_start)},
    )
    expected = frame["expected"].astype("float64")
    present = np.minimum(frame["present"].astype("float64"), expected)
    ratio = np.where(expected > 0, present / expected.where(expected > 0, 1.0), 1.0)
    short = frame.assign(ratio=ratio)[ratio < 1.0].sort_values("ratio")
    return Completeness(int(expected.sum()), int(present.sum()), len(frame), short)


def refusal_message(cycle_id: str, period_start: str, comp: Completeness, threshold: float) -> str:
    worst = ", ".join(
        f"{r.service_point_id} {r.ratio:.1%}" for r in comp.short_service_points.head(5).itertuples()
    )
    return (
        f"billing cycle {cycle_id} period {period_start}: data completeness {comp.ratio:.2%} is below the "
        f"{threshold:.2%} threshold ({comp.expected - comp.present:,} of {comp.expected:,} intervals missing "
        f"across {len(comp.short_service_points):,} of {comp.service_points:,} service points; worst: {worst}). "
        "Close with force=true to bill what is there, or forward_estimate=true to estimate the missing intervals."
    )


def _content_hashes(rows: pd.DataFrame) -> pd.DataFrame:
    """One order-independent hash per account-period over all its determinant rows."""
    hashed = rows[HASHED].assign(
        value=rows["value"].astype("float64").round(9),
        segment_start=rows["segment_start"].astype("str"),
        tou_period=rows["tou_period"].astype("Int64"),
    )
    row_hash = pd.util.hash_pandas_object(hashed, index=False).to_numpy(dtype="uint64").view("int64")
    # a wrapping sum of row hashes: order-independent and vectorised
    summed = rows[ACCOUNT_KEY].assign(_h=row_hash).groupby(ACCOUNT_KEY, sort=False)["_h"].sum()
    hexed = pd.Series(summed.to_numpy(dtype="int64").view("uint64"), index=summed.index).map("{:016x}".format)
    return hexed.rename("content_hash").reset_index()


def version_determinants(
    store: Store,
    cycle_id: str,
    period_start: str,
    *,
    closed_by: str,
    threshold: float,
    estimated_share_limit: float,
    force: bool = False,
    reason: str = "",
    now: pd.Timestamp | None = None,
) -> CloseResult:
    """Gate on completeness, then write a new version for every account-period that changed."""
    now = now or pd.Timestamp.now(tz="UTC")
    if force:  # a forced close is a manual action: who and why go to the audit log
        audit.require(closed_by, reason, "billing.force_close")
    start = dt.date.fromisoformat(period_start)
    end = period_end(store, cycle_id, start)
    comp = completeness(store, cycle_id, period_start)
    if comp.ratio < threshold and not force:
        message = refusal_message(cycle_id, period_start, comp, threshold)
        _log_close(store, cycle_id, start, end, now, "refused", closed_by, force, comp.ratio, 0, 0, message)
        raise CloseRefused(message)

    fresh = store.read_frame(
        "SELECT * FROM period_determinants WHERE cycle_id = :c AND period_start = :p",
        {"c": cycle_id, "p": start},
    )
    hashes = _content_hashes(fresh) if len(fresh) else pd.DataFrame(columns=[*ACCOUNT_KEY, "content_hash"])
    # two closes of one period at once take turns from here: the second sees the first's versions
    # and writes nothing it already wrote
    with store.begin_locked(f"billing_close:{cycle_id}:{start.isoformat()}") as conn:
        return _write_close(
            store,
            conn,
            cycle_id,
            start,
            end,
            fresh,
            hashes,
            comp,
            closed_by,
            force,
            reason,
            now,
            estimated_share_limit,
        )


def _write_close(
    store: Store,
    conn: sa.Connection,
    cycle_id: str,
    start: dt.date,
    end: dt.date,
    fresh: pd.DataFrame,
    hashes: pd.DataFrame,
    comp: Completeness,
    closed_by: str,
    force: bool,
    reason: str,
    now: pd.Timestamp,
    estimated_share_limit: float,
) -> CloseResult:
    """Inside the period's lock: compare with the latest versions, write the changed ones, log."""
    latest = store.read_frame(
        "SELECT DISTINCT d.account_id, d.service_point_id, d.version, d.content_hash AS latest_hash "
        f"FROM billing_determinants d JOIN ({LATEST_VERSIONS}) l ON l.account_id = d.account_id "
        "AND l.service_point_id = d.service_point_id AND l.version = d.version "
        "WHERE d.cycle_id = :c AND d.period_start = :p",
        {"c": cycle_id, "p": start},
        conn=conn,
    )
    merged = hashes.merge(latest, on=ACCOUNT_KEY, how="left")
    changed = merged[merged["latest_hash"].ne(merged["content_hash"]) | merged["latest_hash"].isna()]
    changed = changed.assign(
        is_correction=changed["version"].notna(),
        new_version=changed["version"].fillna(0).astype("int64") + 1,
    )
    rows = fresh.merge(
        changed[[*ACCOUNT_KEY, "content_hash", "is_correction", "new_version"]], on=ACCOUNT_KEY
    )
    rows = rows.assign(version=rows.pop("new_version"), created_at=now)
    cols = [c.name for c in store.table("billing_determinants").columns]
    est = fresh[fresh["determinant"].eq("share_estimated")]
    flagged = int(est.loc[est["value"] > estimated_share_limit, ACCOUNT_KEY].drop_duplicates().shape[0])
    corrections = int(changed["is_correction"].sum())
    prior_close = store.execute(
        "SELECT count(*) FROM billing_closes WHERE cycle_id = :c AND period_start = :p "
        "AND outcome IN ('closed', 'corrected', 'unchanged')",
        {"c": cycle_id, "p": start},
        conn=conn,
    ).scalar_one()
    outcome = "unchanged" if prior_close and not len(changed) else ("corrected" if corrections else "closed")
    if len(rows):
        store.bulk_insert("billing_determinants", rows[cols], conn)
    _mark_billed(store, cycle_id, start, end, conn)
    _log_close(
        store,
        cycle_id,
        start,
        end,
        now,
        outcome,
        closed_by,
        force,
        comp.ratio,
        len(hashes),
        len(changed),
        reason,
        conn=conn,
    )
    if force:
        audit.record(
            store,
            conn,
            actor=closed_by,
            action="billing.force_close",
            object_type="billing_period",
            object_id=period_key(cycle_id, start),
            reason=reason,
            at=now,
            details={
                "outcome": outcome,
                "completeness": round(float(comp.ratio), 6),
                "accounts": int(len(hashes)),
                "new_versions": int(len(changed)),
                "corrections": corrections,
            },
        )
    return CloseResult(
        cycle_id,
        start.isoformat(),
        outcome,
        comp.ratio,
        len(hashes),
        len(changed),
        corrections,
        len(rows),
        flagged,
        force,
    )


def _mark_billed(store: Store, cycle_id: str, start: dt.date, end: dt.date, conn) -> None:
    """Lock the estimates this close billed: a late actual replacing one raises a restatement."""
    store.execute(
        "UPDATE intervals SET billed = true WHERE billed = false AND status = 'estimated' "
        "AND read_day BETWEEN :d0 AND :d1 AND meter_id IN ("
        " SELECT mi.meter_id FROM meter_installs mi JOIN bill_segments s"
        " ON s.service_point_id = mi.service_point_id AND s.cycle_id = :c AND s.period_start = :p)",
        {
            "c": cycle_id,
            "p": start,
            "d0": start - dt.timedelta(days=1),
            "d1": end + dt.timedelta(days=1),
        },
        conn=conn,
    )


def period_end(store: Store, cycle_id: str, start: dt.date) -> dt.date:
    """The last day of a billing period, from billing_cycles."""
    end = store.scalar(
        "SELECT period_end FROM billing_cycles WHERE cycle_id = :c AND period_start = :p",
        {"c": cycle_id, "p": start},
    )
    if end is None:
        raise ValueError(f"billing cycle {cycle_id} has no period starting {start} in billing_cycles")
    return end if isinstance(end, dt.date) else dt.date.fromisoformat(str(end)[:10])


def _log_close(
    store: Store,
    cycle_id: str,
    start: dt.date,
    end: dt.date,
    now: pd.Timestamp,
    outcome: str,
    closed_by: str,
    forced: bool,
    ratio: float,
    accounts: int,
    new_versions: int,
    reason: str,
    conn=None,
) -> None:
    row = pd.DataFrame(
        [
            {
                "cycle_id": cycle_id,
                "period_start": start,
                "period_end": end,
                "closed_at": now,
                "outcome": outcome,
                "closed_by": closed_by,
                "forced": forced,
                "completeness": ratio,
                "accounts": accounts,
                "new_versions": new_versions,
                "reason": reason or None,
            }
        ]
    )
    store.bulk_insert("billing_closes", row, conn)
