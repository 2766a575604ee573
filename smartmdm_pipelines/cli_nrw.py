"""Non-revenue water commands of the `smartmdm` CLI: ``nrw balance|events|water-balance|run``.

Exit codes: 0 done; 1 a Dagster run failed; 2 a bad command line or an unknown zone (one line on stderr).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _iso(value, tz: str) -> str | None:
    import pandas as pd

    return None if value is None or pd.isna(value) else pd.Timestamp(value).tz_convert(tz).isoformat()


def _number(value, digits: int = 3):
    return None if value is None or value != value else round(float(value), digits)


def event_record(row: dict, tz: str) -> dict:
    """A loss event as the JSON the CLI prints (stable keys)."""
    evidence = json.loads(row["evidence"]) if row.get("evidence") else {}
    return {
        "event_id": row["event_id"],
        "zone_id": row["zone_id"],
        "start": _iso(row["start_at"], tz),
        "end": _iso(row["end_at"], tz),
        "kind": row["kind"],
        "shape": evidence.get("shape"),
        "rate_per_hour": _number(row["rate"]),
        "volume": _number(row["volume"]),
        "unit": row["unit"],
        "confidence": _number(row["confidence"]),
        "status": row["status"],
        "source": row["source"],
        "sources": evidence.get("sources", [row["source"]]),
        "detail": row["detail"],
        "detected_at": _iso(row["detected_at"], tz),
        "evidence": evidence,
    }


def _range(args: argparse.Namespace) -> str | None:
    if (args.first is None) != (args.last is None):
        return "give both --from and --to, or neither"
    if args.first and args.last < args.first:
        return f"--to {args.last} is before --from {args.first}"
    return None


def _context(args: argparse.Namespace):
    from smartmdm_pipelines.cli import _config
    from smartmdm_pipelines.cli_protection import _store

    return _store(args), _config(args)


def cmd_balance(args: argparse.Namespace) -> int:
    from smartmdm_pipelines.services.nrw_reports import balance_report

    error = _range(args)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return _report(
        args,
        lambda store, cfg: balance_report(store, cfg, args.zone, args.first, args.last, hourly=args.hourly),
        format_balance,
    )


def _report(args: argparse.Namespace, build, text) -> int:
    """Build a report on the store (a ValueError is a one-line usage error) and print it as JSON
    (--json) or as text."""
    store, cfg = _context(args)
    try:
        report = build(store, cfg)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        store.dispose()
    print(json.dumps(report, indent=2) if args.json else text(report))
    return EXIT_OK


def format_balance(report: dict) -> str:
    unit = report["unit"] or ""
    lines = [f"zone {report['zone_id']} {report['from']}..{report['to']} per {report['resolution']} ({unit})"]
    head = ("start", "input", "customers", "estimated", "loss", "loss %", "in compl", "cust compl", "ok")
    if report["resolution"] == "day":
        head += ("MNF/h", "LNU/h", "excess/h")
    rows = [head]
    for r in report["rows"]:
        cells = (
            r["start"][: 16 if report["resolution"] == "hour" else 10].replace("T", " "),
            _fmt(r["input_volume"]),
            _fmt(r["metered_volume"]),
            _fmt(r["estimated_volume"]),
            _fmt(r["loss_volume"]),
            _fmt(r["loss_percent"], 1),
            _fmt(r["input_completeness"], 2),
            _fmt(r["metered_completeness"], 2),
            "yes" if r["complete"] else "NO",
        )
        if report["resolution"] == "day":
            cells += (
                _fmt(r.get("min_night_flow")),
                _fmt(r.get("legitimate_night_use")),
                _fmt(r.get("excess_night_flow")),
            )
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines += [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    ]
    t = report["totals"]
    lines.append(
        f"total: input {_fmt(t['input_volume'])}, customers {_fmt(t['metered_volume'])} "
        f"(estimated {_fmt(t['estimated_volume'])}), loss {_fmt(t['loss_volume'])} {unit} "
        f"({_fmt(t.get('loss_percent'), 1)} %); {t['complete_rows']}/{t['rows']} complete"
    )
    if report["night_flow_trend_per_day"] is not None:
        lines.append(f"minimum night flow trend: {report['night_flow_trend_per_day']:+,.2f} {unit}/h per day")
    incomplete = t["rows"] - t["complete_rows"]
    if incomplete:
        lines.append(f"{incomplete} row(s) are incomplete: their loss is shown but raises no loss events")
    return "\n".join(lines)


def _fmt(value, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def cmd_events(args: argparse.Namespace) -> int:
    from smartmdm_pipelines.services.loss_events import list_events
    from smartmdm_pipelines.services.nrw import day_window

    error = _range(args)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    store, cfg = _context(args)
    tz = cfg.utility.timezone
    try:
        if args.zone and store.scalar("SELECT count(*) FROM zones WHERE zone_id = :z", {"z": args.zone}) == 0:
            print(f"error: unknown zone {args.zone!r}", file=sys.stderr)
            return EXIT_USAGE
        start, end = day_window(args.first, args.last, tz) if args.first else (None, None)
        frame = list_events(store, args.zone, start, end)
    finally:
        store.dispose()
    records = [event_record(r, tz) for r in frame.to_dict(orient="records")]
    if args.json:
        print(json.dumps(records, indent=2))
        return EXIT_OK
    if not records:
        print("no loss events")
        return EXIT_OK
    rows = [("zone", "start", "end", "kind", "shape", "rate/h", "volume", "unit", "conf", "sources")]
    for r in records:
        rows.append(
            (
                r["zone_id"],
                r["start"][:16].replace("T", " "),
                (r["end"] or "open")[:16].replace("T", " "),
                r["kind"],
                r["shape"] or "-",
                _fmt(r["rate_per_hour"], 1),
                _fmt(r["volume"]),
                r["unit"] or "",
                _fmt(r["confidence"], 2),
                "+".join(r["sources"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def cmd_water_balance(args: argparse.Namespace) -> int:
    from smartmdm_pipelines.services.nrw_reports import water_balance_report

    if args.last < args.first:
        print(f"error: --to {args.last} is before --from {args.first}", file=sys.stderr)
        return EXIT_USAGE
    return _report(
        args,
        lambda store, cfg: water_balance_report(store, cfg, args.first, args.last, args.zone),
        format_water_balance,
    )


IWA_LINES = (
    ("System input volume", "system_input_volume", 0),
    ("  Authorized consumption", "authorized_consumption", 2),
    ("    Billed metered", "billed_metered", 4),
    ("    Billed unmetered", "billed_unmetered", 4),
    ("    Unbilled metered", "unbilled_metered", 4),
    ("    Unbilled unmetered", "unbilled_unmetered", 4),
    ("  Water losses", "water_losses", 2),
    ("    Apparent losses", "apparent_losses", 4),
    ("      Unauthorized consumption", "unauthorized_consumption", 6),
    ("      Customer metering inaccuracies", "customer_metering_inaccuracies", 6),
    ("      Systematic data handling errors", "systematic_data_handling_errors", 6),
    ("    Real losses (CARL)", "real_losses", 4),
    ("Non-revenue water", "non_revenue_water", 0),
)


def format_water_balance(report: dict) -> str:
    lines = [f"IWA water balance {report['from']}..{report['to']}"]
    for part in [*report["zones"], *([report["system"] | {"zone_id": "system"}] if report["system"] else [])]:
        lines.append(
            f"\n{part['zone_id']} ({part['unit']}, {part['days']} days, {part['connections']} connections)"
        )
        for label, key, _ in IWA_LINES:
            lines.append(f"  {label:<40}{part[key]:>16,.0f}")
        lines.append(f"  {'NRW % of system input':<40}{_fmt(part.get('nrw_percent'), 1):>16}")
        carl, uarl, ili = part.get("carl_l_per_day"), part.get("uarl_l_per_day"), part.get("ili")
        lines.append(f"  {'CARL (L/day)':<40}{_fmt(carl):>16}")
        lines.append(f"  {'UARL (L/day)':<40}{_fmt(uarl):>16}")
        lines.append(
            f"  {'ILI = CARL / UARL':<40}{_fmt(ili, 2) if ili is not None else 'n/a (no zone attributes)':>16}"
        )
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    """Balances, night flow and loss events of the days through nrw_job (like `vee run`)."""
    from smartmdm_pipelines.cli_ops import run_days_through

    if args.last < args.first:
        print(f"error: --to {args.last} is before --from {args.first}", file=sys.stderr)
        return EXIT_USAGE
    return run_days_through(args, "nrw_job", "nrw run", "zone_balances")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``nrw`` to the `smartmdm` command."""
    date = dt.date.fromisoformat
    p = subparsers.add_parser("nrw", help="non-revenue water: zone balances, loss events, IWA water balance")
    sub = p.add_subparsers(dest="nrw_command", required=True)
    q = sub.add_parser(
        "balance", help="a zone's balance per day (or hour): input, customers, loss, night flow"
    )
    q.add_argument("--zone", required=True)
    q.add_argument("--from", dest="first", type=date, required=True)
    q.add_argument("--to", dest="last", type=date, required=True)
    q.add_argument("--hourly", action="store_true")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_balance)
    q = sub.add_parser("events", help="loss events of every detector (balance, inflow), by start time")
    q.add_argument("--zone")
    q.add_argument("--from", dest="first", type=date)
    q.add_argument("--to", dest="last", type=date)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_events)
    q = sub.add_parser("water-balance", help="IWA/AWWA water balance and ILI per zone and for the system")
    q.add_argument("--from", dest="first", type=date, required=True)
    q.add_argument("--to", dest="last", type=date, required=True)
    q.add_argument("--zone")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_water_balance)
    q = sub.add_parser("run", help="compute balances, night flow and loss events of days through nrw_job")
    q.add_argument("--from", dest="first", type=date, required=True)
    q.add_argument("--to", dest="last", type=date, required=True)
    q.add_argument("--chunk", type=int, default=31, help="days per Dagster run")
    q.set_defaults(func=cmd_run)
