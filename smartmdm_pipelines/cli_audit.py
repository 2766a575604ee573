"""``smartmdm audit``: read the audit log of manual actions (``list``) and check its hash chain
(``verify``). There is deliberately no command that changes or removes a row."""

from __future__ import annotations

import argparse
import json
import sys

EXIT_OK, EXIT_BROKEN, EXIT_USAGE = 0, 1, 2


def cmd_audit(args: argparse.Namespace) -> int:
    import pandas as pd

    from smartmdm_pipelines.server.run import open_store
    from smartmdm_pipelines.services import audit

    since = None
    if getattr(args, "since", None):
        try:
            since = pd.Timestamp(args.since)
        except ValueError as exc:
            print(
                f"error: --since {args.since!r}: {exc} (expected YYYY-MM-DD or an ISO instant)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        since = since.tz_localize("UTC") if since.tzinfo is None else since.tz_convert("UTC")
    store = open_store()
    try:
        if args.action == "verify":
            checked, broken = audit.verify(store)
            if broken is not None:
                print(
                    f"error: audit_log row {broken[0]}: {broken[1]} ({checked} rows checked)", file=sys.stderr
                )
                return EXIT_BROKEN
            print(f"audit_log: {checked} rows, the hash chain holds")
            return EXIT_OK
        rows = audit.entries(
            store, action=args.action_name, since=since, object_id=args.object, limit=args.limit
        )
    finally:
        store.dispose()
    records = rows.to_dict("records")
    for r in records:
        r["acted_at"] = pd.Timestamp(r["acted_at"]).tz_convert("UTC").isoformat()
        r["id"] = int(r["id"])
        r["details"] = json.loads(r["details"])
    if args.json:
        print(json.dumps(records, ensure_ascii=False))
    elif not records:
        print("no audit rows match")
    else:
        for r in records:
            print(
                f"{r['id']:>6}  {r['acted_at']}  {r['action']:<22} {r['object_type']}:{r['object_id']}  by {r['actor']}: {r['reason']}"
            )
    return EXIT_OK


def register(sub) -> None:
    p = sub.add_parser("audit", help="the audit log of manual actions: list it, verify its hash chain")
    au = p.add_subparsers(dest="action", required=True)
    q = au.add_parser("list", help="audit rows in order (who, when, what, why)")
    q.add_argument(
        "--action",
        dest="action_name",
        help="an action (exception.accept) or a prefix ending in '.' (exception.)",
    )
    q.add_argument("--since", help="rows at or after this day or instant (UTC when no offset)")
    q.add_argument(
        "--object", help="only rows about this object id (an exception, a case, a service point …)"
    )
    q.add_argument("--limit", type=int, help="at most this many rows")
    q.add_argument("--json", action="store_true", help="JSON records instead of lines")
    au.add_parser("verify", help="check the hash chain; exit 1 naming the first broken row")
    p.set_defaults(func=cmd_audit)
