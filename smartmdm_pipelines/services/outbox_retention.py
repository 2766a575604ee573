"""Retention of the push outbox: delivered push records are removed after a grace period.

The outbox holds one row per interval version and push destination (docs/cis.md). A pending or
dead-lettered row is work still to do and is never removed here; a delivered row of a push
destination (``cis``, ``portal``) is only a receipt, and at utility scale these receipts are the
largest table of the store (docs/scaling.md: about 230 bytes per read and destination). Removing
one changes nothing a user of the MDM relies on:
- the receiver already has the record (it answered 2xx), and a version is queued once, in the
  transaction that writes it: nothing re-reads the outbox to decide whether to queue it again;
- the cycle-close batch file rebuilds a record it cannot find in the outbox from the interval
  version itself, with the same ``message_id`` (``outbox.batch_records``);
- the batch file's own rows (destination ``cis_batch``) record what earlier batch files carried,
  so that a re-close sends only newer versions: they are kept.

Rows are deleted in chunks of ``chunk`` (each its own short transaction, oldest first), so a
purge of millions of rows never holds one long transaction against the dispatchers. The purge is
recorded in the audit log (who, why, the cut-off and the rows removed per destination).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from smartmdm_pipelines.services import audit
from smartmdm_pipelines.services.outbox import DESTINATIONS
from smartmdm_pipelines.store.store import Store

PUSH_DESTINATIONS = tuple(DESTINATIONS)  # cis, portal: never the cycle-close batch's rows


@dataclass
class PurgeReport:
    cutoff: pd.Timestamp
    dry_run: bool
    removed: dict[str, int] = field(default_factory=dict)  # per destination (to remove, when dry)

    @property
    def total(self) -> int:
        return sum(self.removed.values())

    def to_dict(self) -> dict:
        return {
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            "removed": dict(self.removed),
            "total": self.total,
        }


def purge_delivered(
    store: Store,
    older_than: pd.Timedelta,
    *,
    actor: str,
    reason: str,
    now: pd.Timestamp | None = None,
    dry_run: bool = False,
    chunk: int = 50_000,
) -> PurgeReport:
    """Remove the push destinations' rows delivered before ``now - older_than``.

    Returns what was removed per destination (with ``dry_run``: what would be, nothing changes).
    ``actor`` and ``reason`` go to the audit log, as for every change to the store's records."""
    if older_than < pd.Timedelta(0):
        raise ValueError(f"older_than must not be negative, not {older_than}")
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, not {chunk}")
    audit.require(actor, reason, "outbox.purge")
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now).tz_convert("UTC")
    cutoff = now - older_than
    report = PurgeReport(cutoff=cutoff, dry_run=dry_run)
    params = {"cutoff": cutoff.to_pydatetime()}
    counts = store.read_frame(
        "SELECT destination, count(*) AS n FROM outbox WHERE state = 'delivered' AND delivered_at < :cutoff "
        f"AND destination IN ({', '.join(repr(d) for d in PUSH_DESTINATIONS)}) GROUP BY destination",
        params,
    )
    if dry_run:
        report.removed = {str(d): int(n) for d, n in zip(counts["destination"], counts["n"], strict=True)}
        return report
    for destination in sorted(counts["destination"].astype(str)):
        removed = 0
        while True:
            with store.begin() as conn:
                n = store.execute(
                    "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE destination = :d "
                    "AND state = 'delivered' AND delivered_at < :cutoff ORDER BY seq LIMIT :n)",
                    {**params, "d": destination, "n": chunk},
                    conn,
                ).rowcount
            removed += n
            if n < chunk:
                break
        report.removed[destination] = removed

    def record(conn) -> None:
        audit.record(
            store,
            conn,
            actor=actor,
            action="outbox.purge",
            object_type="outbox",
            object_id=",".join(PUSH_DESTINATIONS),
            reason=reason,
            details={"cutoff": cutoff.isoformat(), "removed": report.removed},
            at=now,
        )

    audit.transaction(store, record)
    return report
