"""Billing commands of the `smartmdm` CLI: ``tariff inspect`` and ``shadow-bill``."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

# a clock time followed by Z or a UTC offset (+hh, +hhmm, +hh:mm)
_OFFSET = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)
_MAX_ERRORS = 5


class UsageError(ValueError):
    """A usage CSV that cannot be billed; the message names the file and line."""


def cmd_tariff_inspect(args: argparse.Namespace) -> int:
    from smartmdm_pipelines.domain.billing.tariff import TariffError, load_tariff

    try:
        tariff = load_tariff(args.file)
    except TariffError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(tariff.to_dict(), indent=2))
    return 0


def read_usage_csv(path: Path):
    """Read a usage CSV (interval_end ISO-8601 with offset, kwh, optional kvarh, received_kwh)."""
    import pandas as pd

    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path.name}: cannot read as CSV: {exc}") from None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    missing = [c for c in ("interval_end", "kwh") if c not in raw.columns]
    if missing:
        raise UsageError(
            f"{path.name} line 1: missing column(s) {', '.join(missing)} "
            f"(expected interval_end, kwh[, kvarh, received_kwh]; got {', '.join(raw.columns)})"
        )
    raw = raw[(raw != "").any(axis=1)]  # blank lines; the index still gives the line number
    line = raw.index.to_numpy() + 2
    errors: list[tuple[int, str]] = []

    text = raw["interval_end"].str.strip()
    ends = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = ends.isna().to_numpy() | ~text.str.contains(_OFFSET).to_numpy()
    errors += [
        (n, f"interval_end {v!r} is not an ISO-8601 timestamp with a UTC offset")
        for n, v in zip(line[bad], text[bad], strict=True)
    ]
    out = pd.DataFrame({"interval_end": ends})
    for col, required in (("kwh", True), ("received_kwh", False), ("kvarh", False)):
        if col not in raw.columns:
            continue
        vals = raw[col].str.strip()
        empty = (vals == "").to_numpy()
        num = pd.to_numeric(vals.where(~empty, "0" if not required else "x"), errors="coerce")
        bad = num.isna().to_numpy() | (num < 0).fillna(False).to_numpy()
        errors += [
            (n, f"{col} {v!r} is not a non-negative number")
            for n, v in zip(line[bad], vals[bad], strict=True)
        ]
        out[col] = num.to_numpy(dtype="float64")
    if errors:
        errors.sort()
        shown = "; ".join(f"{path.name} line {n}: {msg}" for n, msg in errors[:_MAX_ERRORS])
        more = f" (and {len(errors) - _MAX_ERRORS} more)" if len(errors) > _MAX_ERRORS else ""
        raise UsageError(shown + more)
    dup = out["interval_end"].duplicated(keep="first").to_numpy()
    if dup.any():
        n = int(line[dup][0])
        raise UsageError(f"{path.name} line {n}: duplicate interval_end {text.to_numpy()[dup][0]!r}")
    if out.empty:
        raise UsageError(f"{path.name}: no usage rows")
    return out.reset_index(drop=True)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def format_bills(bills, currency: str = "$") -> str:
    lines: list[str] = []
    grand = 0.0
    for bill in bills:
        grand += bill.total
        lines.append(f"{bill.month}  {bill.start} .. {bill.end}  ({bill.days} of {bill.days_in_month} days)")
        if bill.energy:
            lines.append(
                f"  {'energy by period':<24}{'delivered':>12}{'received':>12}{'billed':>12}  tiers ({bill.unit})"
            )
            for e in bill.energy:
                tiers = " / ".join(_fmt(q, 3) for q in e["tiers"])
                lines.append(
                    f"  {e['period']:>2} {e['label']:<21}{_fmt(e['delivered'], 3):>12}"
                    f"{_fmt(e['received'], 3):>12}{_fmt(e['billed'], 3):>12}  {tiers}"
                )
        if bill.demand:
            lines.append(f"  {'demand':<24}{'actual':>12}{'billing':>12}")
            for d in bill.demand:
                period = "" if d["period"] is None else f" period {d['period']}"
                lines.append(
                    f"  {d['kind'] + period:<24}{_fmt(d['actual'], 3):>12}{_fmt(d['billing'], 3):>12}  {d['unit']}"
                )
        lines.append(f"  {'charge':<36}{'quantity':>14} {'unit':<9}{'rate':>12}{'amount':>12}")
        for c in bill.lines:
            lines.append(
                f"  {c.description:<36}{_fmt(c.quantity, 3):>14} {c.unit:<9}{c.rate:>12.6g}{_fmt(c.amount):>12}"
            )
        lines.append(f"  {'total':<36}{'':>14} {'':<9}{'':>12}{currency}{_fmt(bill.total):>11}")
        for note in bill.notes:
            lines.append(f"  note: {note}")
        lines.append("")
    lines.append(f"{len(bills)} month(s), total {currency}{_fmt(grand)}")
    return "\n".join(lines)


def cmd_shadow_bill(args: argparse.Namespace) -> int:
    from smartmdm_pipelines.domain.billing.shadow_bill import shadow_bill
    from smartmdm_pipelines.domain.billing.tariff import TariffError, load_tariff

    try:
        tariff = load_tariff(args.tariff)
        usage = read_usage_csv(Path(args.usage))
        bills = shadow_bill(
            tariff,
            usage,
            args.tz,
            holidays=args.holidays,
            interval_seconds=args.interval_seconds,
            demand_method=args.demand_method,
            netting=args.netting,
            usage_unit=args.usage_unit,
            billing_unit=args.unit,
        )
    except (TariffError, UsageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([b.to_dict() for b in bills], indent=2))
    else:
        print(format_bills(bills))
    return 0


def _zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an IANA time zone (e.g. America/Chicago)"
        ) from None
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tariff`` and ``shadow-bill`` to the `smartmdm` command."""
    p = subparsers.add_parser(
        "tariff", help="URDB tariffs: inspect (validate and show periods, tiers, schedules)"
    )
    t = p.add_subparsers(dest="action", required=True)
    q = t.add_parser("inspect", help="validate a URDB JSON file and print it as JSON")
    q.add_argument("file")
    q.set_defaults(func=cmd_tariff_inspect)

    p = subparsers.add_parser("shadow-bill", help="bill a usage CSV on a URDB tariff, month by month")
    p.add_argument("--tariff", required=True, help="URDB JSON file")
    p.add_argument(
        "--usage", required=True, help="CSV: interval_end (ISO-8601 with offset), kwh[, kvarh, received_kwh]"
    )
    p.add_argument("--tz", required=True, type=_zone, help="the service point's IANA time zone")
    p.add_argument("--holidays", default="NERC", help="NERC (default), none, or a country code (US, CA …)")
    p.add_argument("--interval-seconds", type=int, help="interval length (default: inferred from the data)")
    p.add_argument("--demand-method", choices=["block", "rolling"], default="block")
    p.add_argument(
        "--netting",
        choices=["per_period", "per_interval", "buy_all_sell_all"],
        help="override the tariff's netting rule (default from dgrules)",
    )
    p.add_argument("--usage-unit", help="unit of the kwh column for water/gas (e.g. gal, CCF)")
    p.add_argument("--unit", help="billing unit when not kWh (default: the tariff's tier unit)")
    p.add_argument("--json", action="store_true", help="print the bills as JSON")
    p.set_defaults(func=cmd_shadow_bill)
