"""Portal API commands of the `smartmdm` CLI: ``token`` (a development bearer token), ``alerts``,
``rollup`` (rebuild the hourly usage rollup)."""

from __future__ import annotations

import argparse
import sys


def cmd_token(args: argparse.Namespace) -> int:
    from smartmdm_pipelines.server.portal_auth import SigningKeyError, issue_token

    try:
        print(issue_token(args.scope, args.account or [], ttl=args.ttl, subject=args.subject))
    except (SigningKeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    import json

    import pandas as pd

    from smartmdm_pipelines.server.run import open_store
    from smartmdm_pipelines.services import portal_alerts
    from smartmdm_pipelines.services.portal_usage import BadRequest

    store = open_store()
    try:
        if args.action == "import":
            try:
                out = portal_alerts.import_rules_csv(store, args.file)
            except BadRequest as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            for line in out["errors"]:
                print(line, file=sys.stderr)
        elif args.action == "evaluate":
            out = portal_alerts.evaluate(store, pd.Timestamp(args.at) if args.at else None)
        else:
            out = portal_alerts.send_pending(store)
        print(json.dumps(out))
        return 1 if out.get("errors") else 0
    finally:
        store.dispose()


def cmd_rollup(args: argparse.Namespace) -> int:
    import datetime as dt
    import json

    from smartmdm_pipelines.server.run import open_store
    from smartmdm_pipelines.store import usage_rollup

    try:
        days = [dt.date.fromisoformat(d) for d in args.day or []]
    except ValueError as exc:
        print(f"error: --day: {exc} (expected YYYY-MM-DD)", file=sys.stderr)
        return 2
    store = open_store()
    try:
        with store.begin() as conn:
            rows = usage_rollup.refresh(conn, days, args.meter) if days else usage_rollup.rebuild(conn)
        print(json.dumps({"rows_written": rows, "days": [d.isoformat() for d in days] or "all"}))
        return 0
    finally:
        store.dispose()


def register(sub) -> None:
    p = sub.add_parser(
        "token",
        help="print a development bearer token of the portal API (signed with $SMARTMDM_API_SIGNING_KEY)",
    )
    p.add_argument("--scope", required=True, choices=["customer", "portal-service", "ops"])
    p.add_argument("--account", action="append", help="an account the customer token may read (repeatable)")
    p.add_argument("--ttl", type=int, default=3600, help="seconds until the token expires (default 3600)")
    p.add_argument("--subject", help="the token's subject (default: customer:ACCOUNT or the scope)")
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("alerts", help="customer usage alerts: import rules from the CIS, evaluate, send")
    al = p.add_subparsers(dest="action", required=True)
    q = al.add_parser(
        "import", help="alert rules from a CIS CSV (service_point_id, kind, threshold, hours, …)"
    )
    q.add_argument("file")
    q = al.add_parser("evaluate", help="evaluate every rule now (the day-end run), or --at an instant")
    q.add_argument("--at", help="ISO instant with offset (default: now)")
    al.add_parser("send", help="POST the queued alert notifications to $SMARTMDM_ALERT_WEBHOOK_URL")
    p.set_defaults(func=cmd_alerts)

    p = sub.add_parser(
        "rollup",
        help="rebuild the portal's hourly usage rollup (usage_hourly) from the current intervals: all, or --day …",
    )
    p.add_argument("--day", action="append", help="only the hours of this read day's versions (repeatable)")
    p.add_argument("--meter", action="append", help="with --day: only this meter (repeatable)")
    p.set_defaults(func=cmd_rollup)
