"""Portal API commands of the `smartmdm` CLI: ``token`` (a development bearer token)."""

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
