"""The audit log of manual actions: one append-only, hash-chained row per action, written in the
transaction of the action itself (so an action without its row, or a row without its action,
cannot be committed). Nothing here updates or deletes a row; on PostgreSQL a trigger refuses it
(migration 0008), and ``verify`` detects a row changed behind the code's back on either store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pandas as pd
import sqlalchemy as sa

from smartmdm_pipelines.domain.audit import (
    GENESIS,
    AuditError,
    canonical_details,
    first_broken,
    require,
    row_hash,
)
from smartmdm_pipelines.store.store import Store

__all__ = ["AuditError", "entries", "record", "require", "transaction", "verify"]

T = TypeVar("T")

INSERT = (
    "INSERT INTO audit_log (id, acted_at, actor, action, object_type, object_id, reason, details, prev_hash, hash) "
    "VALUES (:id, :acted_at, :actor, :action, :object_type, :object_id, :reason, :details, :prev_hash, :hash)"
)


def record(
    store: Store,
    conn: sa.Connection,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    reason: str,
    details: Mapping[str, Any] | None = None,
    at: pd.Timestamp | dt.datetime | None = None,
) -> dict:
    """Append the action's row inside ``conn``'s transaction (the action's own); returns it.

    PostgreSQL: a transaction-scoped advisory lock makes concurrent writers take turns, so the
    chain never forks. DuckDB (one writing process): a concurrent writer fails on the primary key
    and its whole action rolls back, it is never recorded twice or half."""
    who, why = require(actor, reason, action)
    when = pd.Timestamp(at if at is not None else pd.Timestamp.now(tz="UTC")).tz_convert("UTC").floor("us")
    if store.backend == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended('smartmdm.audit_log', 0))"))
    last = conn.execute(sa.text("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")).first()
    row = {
        "id": 1 if last is None else int(last[0]) + 1,
        "acted_at": when.to_pydatetime(),
        "actor": who,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id),
        "reason": why,
        "details": canonical_details(details),
        "prev_hash": GENESIS if last is None else last[1],
    }
    row["hash"] = row_hash(row)
    conn.execute(sa.text(INSERT), row)
    return row


def transaction(store: Store, work: Callable[[sa.Connection], T], attempts: int = 3) -> T:
    """Run ``work(conn)`` — an action that records its audit row — in one transaction. DuckDB
    snapshots a transaction at its start, so two threads recording at once both see the same last
    row and the second commit fails on the primary key; that whole transaction is then run again
    (up to ``attempts`` times) instead of failing the caller. PostgreSQL serialises in ``record``."""
    for attempt in range(1, attempts + 1):
        try:
            with store.begin() as conn:
                return work(conn)
        except sa.exc.DBAPIError as exc:
            # at the INSERT (a ConstraintException: "Duplicate key") or at COMMIT ("constraint violation")
            text = str(exc).lower()
            conflict = store.backend == "duckdb" and (
                "duplicate key" in text or "constraint violation" in text
            )
            if not conflict or attempt == attempts:
                raise
    raise AssertionError("unreachable")


def entries(
    store: Store,
    action: str | None = None,
    since: pd.Timestamp | None = None,
    object_id: str | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Rows in chain order; ``action`` is an exact name or a prefix ending in '.' (``exception.``)."""
    clauses, params = [], {}
    if action:
        if action.endswith("."):
            clauses.append("left(action, :n) = :action")
            params.update(action=action, n=len(action))
        else:
            clauses.append("action = :action")
            params["action"] = action
    if since is not None:
        clauses.append("acted_at >= :since")
        params["since"] = pd.Timestamp(since).to_pydatetime()
    if object_id:
        clauses.append("object_id = :object_id")
        params["object_id"] = object_id
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    tail = f" LIMIT {int(limit)}" if limit else ""
    return store.read_frame(f"SELECT * FROM audit_log{where} ORDER BY id{tail}", params)


def verify(store: Store) -> tuple[int, tuple[int, str] | None]:
    """(rows checked, the first broken row's id and what is wrong — None when the chain holds)."""
    rows = store.read_frame("SELECT * FROM audit_log ORDER BY id")
    return len(rows), first_broken(rows.to_dict("records"))
