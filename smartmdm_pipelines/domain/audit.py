"""The audit log's hash chain: a row's canonical form, its hash, and the check of a whole chain.

A row's hash is the SHA-256 of its canonical JSON (sorted keys, no spaces, UTF-8) over every
column but ``hash`` itself, ``prev_hash`` included: changing any column of any row, deleting a
row or inserting one breaks the chain at that row or at the next one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

GENESIS = "0" * 64
COLUMNS = ("id", "acted_at", "actor", "action", "object_type", "object_id", "reason", "details", "prev_hash")


class AuditError(ValueError):
    pass


def canonical_details(details: Mapping[str, Any] | None) -> str:
    """The details as stored: canonical JSON (sorted keys), so the stored text is what is hashed."""
    return json.dumps(
        dict(details or {}), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def utc_text(at: Any) -> str:
    """An instant as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC, microseconds: both stores keep those)."""
    if not isinstance(at, dt.datetime):
        at = dt.datetime.fromisoformat(str(at))
    if at.tzinfo is None:
        raise AuditError(f"audit time {at!r} has no time zone")
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_hash(row: Mapping[str, Any]) -> str:
    canonical = {c: row[c] for c in COLUMNS}
    canonical["id"] = int(canonical["id"])
    canonical["acted_at"] = utc_text(canonical["acted_at"])
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def require(actor: str | None, reason: str | None, action: str) -> tuple[str, str]:
    """Who and why, stripped; an ``AuditError`` naming the missing one."""
    who, why = str(actor or "").strip(), str(reason or "").strip()
    if not who:
        raise AuditError(f"{action}: who (by) is required for the audit log")
    if not why:
        raise AuditError(f"{action}: why (reason) is required for the audit log")
    return who, why


def first_broken(rows: Iterable[Mapping[str, Any]]) -> tuple[int, str] | None:
    """(id, what is wrong) of the first row, in id order, that breaks the chain; None if intact."""
    prev_hash, expected_id = GENESIS, 1
    for row in rows:
        rid = int(row["id"])
        if rid != expected_id:
            return rid, f"id {rid} where id {expected_id} was expected (a row is missing or was inserted)"
        if row["prev_hash"] != prev_hash:
            return rid, "its prev_hash is not the hash of the row before it"
        if row_hash(row) != row["hash"]:
            return rid, "its content does not match its hash (the row was changed)"
        prev_hash, expected_id = row["hash"], expected_id + 1
    return None
