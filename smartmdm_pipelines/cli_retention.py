"""``smartmdm retention``: remove whole months of ``raw_reads`` or ``intervals`` older than a horizon
(PostgreSQL: DETACH + DROP of the monthly partitions; DuckDB: DELETE by read day: the same rows),
recorded in the audit log; and ``smartmdm partitions split-default``: move rows an older client
left in a DEFAULT partition into their months. docs/partitioning.md."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def cmd_retention(args: argparse.Namespace) -> int:
    from smartmdm_pipelines.services import audit
    from smartmdm_pipelines.store import partitions
    from smartmdm_pipelines.store.busy import open_store

    try:
        before = dt.date.fromisoformat(args.before)
    except ValueError as exc:
        print(f"error: --before {args.before!r}: {exc} (expected YYYY-MM-01)", file=sys.stderr)
        return EXIT_USAGE
    if before.day != 1:
        print(f"error: --before {before}: the horizon is the first day of a month", file=sys.stderr)
        return EXIT_USAGE
    if not args.dry_run:
        try:
            audit.require(args.by, args.reason, "retention.drop")
        except audit.AuditError as exc:
            print(f"error: {exc} (--by, --reason)", file=sys.stderr)
            return EXIT_USAGE
    store = open_store()
    try:
        result = run_retention(
            store, args.table, before, by=args.by, reason=args.reason, force=args.force, dry_run=args.dry_run
        )
    except partitions.RetentionRefused as exc:
        print(f"error: {exc} (--force)", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        store.dispose()
    if args.json:
        print(json.dumps({**result.details(), "dry_run": result.dry_run}))
    else:
        verb = "would remove" if result.dry_run else "removed"
        months = ", ".join(result.partitions) or "no whole partition"
        billed = (
            f", {result.billed} billed versions (needs --force)" if result.billed and not args.force else ""
        )
        print(f"{args.table}: {verb} {result.rows} rows before {before} ({months}; {result.backend}){billed}")
    return EXIT_OK


def run_retention(
    store,
    table: str,
    before: dt.date,
    *,
    by: str | None = None,
    reason: str | None = None,
    force: bool = False,
    dry_run: bool = False,
):
    """:func:`partitions.apply_retention` in one transaction with its audit row
    (``retention.drop``, object ``table:<name>``); a dry run changes and records nothing."""
    from smartmdm_pipelines.services import audit
    from smartmdm_pipelines.store import partitions

    def work(conn):
        result = partitions.apply_retention(conn, table, before, force=force, dry_run=dry_run)
        if not dry_run:
            audit.record(
                store,
                conn,
                actor=by,
                action="retention.drop",
                object_type="table",
                object_id=table,
                reason=reason,
                details={**result.details(), "forced": bool(force)},
            )
        return result

    if dry_run:
        with store.begin() as conn:
            return work(conn)
    return audit.transaction(store, work)


def cmd_split_default(args: argparse.Namespace) -> int:
    from smartmdm_pipelines.store import partitions
    from smartmdm_pipelines.store.busy import open_store

    store = open_store()
    try:
        if store.backend != "postgresql":
            print("partitions: DuckDB stores are not partitioned; nothing to split")
            return EXIT_OK
        with store.begin() as conn:
            moved = {t: partitions.split_default(conn, t) for t in partitions.PARTITIONED}
    finally:
        store.dispose()
    for table, counts in moved.items():
        text = ", ".join(f"{p} {n}" for p, n in counts.items()) or "DEFAULT was empty"
        print(f"{table}: {text}")
    return EXIT_OK


def register(sub) -> None:
    p = sub.add_parser(
        "retention",
        help="drop whole months of raw_reads or intervals before a horizon (recorded in the audit log)",
    )
    p.add_argument("--table", required=True, choices=["raw_reads", "intervals"])
    p.add_argument("--before", required=True, help="YYYY-MM-01: rows with read_day before it go")
    p.add_argument("--dry-run", action="store_true", help="say what would go; change and record nothing")
    p.add_argument("--force", action="store_true", help="intervals: drop billed versions too")
    p.add_argument("--by", help="who (required unless --dry-run)")
    p.add_argument("--reason", help="why (required unless --dry-run)")
    p.add_argument("--json", action="store_true", help="a JSON object instead of a line")
    p.set_defaults(func=cmd_retention)
    q = sub.add_parser("partitions", help="PostgreSQL monthly partitions: split-default")
    qs = q.add_subparsers(dest="partitions_command", required=True)
    r = qs.add_parser("split-default", help="move rows of the DEFAULT partitions into monthly partitions")
    r.set_defaults(func=cmd_split_default)
