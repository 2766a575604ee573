"""Revenue-protection commands of the `smartmdm` CLI: ``protection cases|show|mark|run``.

Exit codes: 0 done; 2 a bad command line or a case that cannot be marked (one line on stderr).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys

from smartmdm_pipelines.domain.protection.cases import CaseError, CaseStatus

EXIT_OK, EXIT_USAGE = 0, 2
STATUSES = ("open", "active", "confirmed", "false_positive", "closed", "withdrawn", "all")


def _store(args: argparse.Namespace):
    """$SMARTMDM_DATABASE_URL, else the DuckDB file of the data directory (``--data-dir``)."""
    from smartmdm_pipelines.cli import _data_dir
    from smartmdm_pipelines.store.busy import open_store

    return open_store(
        os.environ.get("SMARTMDM_DATABASE_URL") or f"duckdb:///{_data_dir(args) / 'smartmdm.duckdb'}"
    )


def _iso(value) -> str | None:
    import pandas as pd

    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def case_record(row: dict) -> dict:
    """A case as the JSON the CLI prints (stable keys)."""
    number = lambda v: None if v is None or v != v else round(float(v), 4)  # noqa: E731
    return {
        "rank": int(row["rank"]) if "rank" in row else None,
        "case_id": row["case_id"],
        "service_point_id": row["service_point_id"],
        "account_id": row["account_id"],
        "status": row["status"],
        "score": number(row["score"]),
        "revenue_at_stake": number(row["revenue_at_stake"]),
        "unbilled_volume": number(row["unbilled_volume"]),
        "unit": row["unit"],
        "indicators": [i for i in str(row["indicators"] or "").split(";") if i],
        "first_signal_at": _iso(row["first_signal_at"]),
        "last_signal_at": _iso(row["last_signal_at"]),
        "rate_code": row["rate_code"],
        "meter_ids": [m for m in str(row["meter_ids"] or "").split(";") if m],
        "as_of": _iso(row["as_of"])[:10] if _iso(row["as_of"]) else None,
        "evidence": json.loads(row["evidence"]) if row.get("evidence") else None,
    }


def format_cases(frame) -> str:
    """Ranked cases as a text table."""
    if frame.empty:
        return "no cases"
    rows = [("rank", "case", "status", "score", "at stake", "unbilled", "indicators", "since")]
    for r in frame.itertuples():
        rows.append(
            (
                str(r.rank),
                r.case_id,
                r.status,
                f"{r.score:.2f}",
                f"${(r.revenue_at_stake if r.revenue_at_stake == r.revenue_at_stake else 0):,.2f}",
                f"{r.unbilled_volume:,.1f} {r.unit if isinstance(r.unit, str) else ''}".strip(),
                r.indicators.replace(";", ", "),
                str(_iso(r.first_signal_at))[:16].replace("T", " "),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    align = "<<<>>><<"
    return "\n".join(
        "  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths, strict=True)).rstrip()
        for row in rows
    )


def cmd_cases(args: argparse.Namespace) -> int:
    from smartmdm_pipelines.services.protection import list_cases

    store = _store(args)
    try:
        frame = list_cases(store, top=args.top, status=args.status)
    finally:
        store.dispose()
    if args.json:
        print(json.dumps([case_record(r) for r in frame.to_dict(orient="records")], indent=2))
    else:
        print(format_cases(frame))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from smartmdm_pipelines.services.protection import case_history, get_case

    store = _store(args)
    try:
        case = get_case(store, args.case_id)
        history = case_history(store, args.case_id)
    except CaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        store.dispose()
    record = case_record(case)
    record["history"] = [
        {
            "changed_at": _iso(h["changed_at"]),
            "status_from": h["status_from"],
            "status_to": h["status_to"],
            "by": h["changed_by"],
            "reason": h["reason"],
        }
        for h in history.to_dict(orient="records")
    ]
    print(json.dumps(record, indent=2))
    return EXIT_OK


def cmd_mark(args: argparse.Namespace) -> int:
    from smartmdm_pipelines.services.protection import mark_case

    store = _store(args)
    try:
        outcome = mark_case(store, args.case_id, args.status, args.by, args.reason)
    except CaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        store.dispose()
    print(json.dumps(outcome))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from smartmdm_pipelines.cli import _config
    from smartmdm_pipelines.services.protection import evaluate_day

    store = _store(args)
    try:
        run = evaluate_day(store, _config(args), args.day)
    finally:
        store.dispose()
    print(
        json.dumps(
            {
                "as_of": run.as_of.isoformat(),
                "signals": run.signals,
                "signals_by_indicator": run.signals_by_indicator,
                "cases_supported": run.candidates,
                "opened": run.opened,
                "reopened": run.reopened,
                "withdrawn": run.withdrawn,
                "updated": run.updated,
                "new_high_score": run.high_score_new,
            },
            indent=2,
        )
    )
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``protection`` to the `smartmdm` command."""
    p = subparsers.add_parser(
        "protection", help="revenue protection: ranked cases, their evidence, analysts' decisions"
    )
    sub = p.add_subparsers(dest="action", required=True)
    q = sub.add_parser("cases", help="cases ranked by revenue at stake x score")
    q.add_argument("--top", type=int, help="only the first N")
    q.add_argument(
        "--status", choices=STATUSES, default="open", help="open (default), active = open+confirmed …"
    )
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_cases)
    q = sub.add_parser("show", help="a case with its signals, evidence and history (JSON)")
    q.add_argument("case_id")
    q.set_defaults(func=cmd_show)
    q = sub.add_parser("mark", help="record a decision on a case (audited: who, when, why)")
    q.add_argument("case_id")
    q.add_argument("--status", required=True, choices=[s.value for s in CaseStatus])
    q.add_argument("--by", required=True, help="who decides")
    q.add_argument("--reason", required=True, help="why")
    q.set_defaults(func=cmd_mark)
    q = sub.add_parser("run", help="evaluate an operating day (what the protection_cases asset does)")
    q.add_argument("--day", required=True, type=dt.date.fromisoformat, help="operating day YYYY-MM-DD")
    q.set_defaults(func=cmd_run)
