"""Real-time commands of the `smartmdm` CLI: ``serve`` and ``outbox status | dead | replay | purge``."""

from __future__ import annotations

import argparse
import json


def cmd_serve(args: argparse.Namespace) -> int:
    from smartmdm_pipelines.server.run import serve

    return serve(args.host, args.port, args.workers)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}min"
    return f"{seconds / 3600:.1f}h"


def cmd_outbox(args: argparse.Namespace) -> int:
    from smartmdm_pipelines.server.run import open_store
    from smartmdm_pipelines.services import outbox

    store = open_store()
    try:
        if args.action == "status":
            st = outbox.status(store)
            if args.json:
                print(json.dumps(st.to_dict(), indent=2))
                return 0
            print(f"{'destination':<12} {'pending':>10} {'delivered':>10} {'dead':>8} {'oldest pending':>15}")
            for d in st.destinations:
                print(
                    f"{d.destination:<12} {d.pending:>10,} {d.delivered:>10,} {d.dead_lettered:>8,} "
                    f"{_age(d.oldest_pending_age_seconds):>15}"
                )
            print(
                f"{'total':<12} {st.pending:>10,} {st.delivered:>10,} {st.dead_lettered:>8,} "
                f"{_age(st.oldest_pending_age_seconds):>15}"
            )
            return 0
        if args.action == "dead":
            frame = outbox.dead_letters(store, args.limit)
            if args.json:
                print(frame.to_json(orient="records", date_format="iso"))
            elif frame.empty:
                print("no dead letters")
            else:
                print(frame.to_string(index=False))
            return 0
        if args.action == "purge":
            return _purge(store, args)
        n = outbox.replay(store, args.message_id or None, args.destination)
        print(f"{n} dead-lettered record(s) queued again")
        return 0
    finally:
        store.dispose()


def _purge(store, args: argparse.Namespace) -> int:
    import pandas as pd

    from smartmdm_pipelines.services.outbox_retention import purge_delivered

    report = purge_delivered(
        store,
        pd.Timedelta(days=args.older_than_days),
        actor=args.by,
        reason=args.reason,
        dry_run=args.dry_run,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    verb = "would remove" if report.dry_run else "removed"
    per = ", ".join(f"{d} {n:,}" for d, n in sorted(report.removed.items())) or "none"
    print(
        f"{verb} {report.total:,} delivered record(s) delivered before {report.cutoff:%Y-%m-%d %H:%M} UTC ({per})"
    )
    return 0


def register(sub) -> None:
    p = sub.add_parser("serve", help="the real-time service: head-end HTTP push and MQTT, CIS/portal push")
    p.add_argument("--host", help="listen address (default: realtime.host in the utility YAML, 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default: realtime.port, 8080)")
    p.add_argument(
        "--workers",
        type=int,
        help="HTTP processes (default $SMARTMDM_SERVE_WORKERS or 1; > 1 needs PostgreSQL; one runs the background work)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "outbox", help="the push outbox to the CIS and the portal: status, dead letters, replay"
    )
    ob = p.add_subparsers(dest="action", required=True)
    q = ob.add_parser("status", help="pending, delivered and dead-lettered counts, oldest pending age")
    q.add_argument("--json", action="store_true")
    q = ob.add_parser("dead", help="list dead-lettered records with the receiver's reason")
    q.add_argument("--json", action="store_true")
    q.add_argument("--limit", type=int, default=100)
    q = ob.add_parser("replay", help="queue dead-lettered records again (all, or --message-id …)")
    q.add_argument("--message-id", action="append", help="only this record (repeatable)")
    q.add_argument("--destination", choices=["cis", "portal"])
    q = ob.add_parser(
        "purge",
        help="remove push records delivered more than N days ago (pending, dead and cycle-close rows stay)",
    )
    q.add_argument(
        "--older-than-days", type=float, default=7.0, help="grace period after delivery (default 7)"
    )
    q.add_argument("--by", required=True, help="who purges (audit log)")
    q.add_argument("--reason", required=True, help="why (audit log)")
    q.add_argument("--dry-run", action="store_true", help="only count what would be removed")
    q.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_outbox)
