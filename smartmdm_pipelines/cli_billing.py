"""Billing commands of the `smartmdm` CLI: ``tariff inspect`` and ``shadow-bill``.

Exit codes: 0 = done; 1 = an input file was rejected (unreadable, not JSON/CSV, an invalid
tariff, bad usage rows) — one line on stderr names the file, the line or field and what was
expected; 2 = a bad command line (argparse); 3 = an internal error (one line; set
``SMARTMDM_DEBUG=1`` for the traceback). Never a traceback or a dump of the input.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from smartmdm_pipelines.domain.billing.files import is_unreadable, quote, read_text

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

# a clock time followed by Z or a UTC offset (+hh, +hhmm, +hh:mm)
_OFFSET = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)
_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_OPEN_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")
_MAX_ERRORS = 5
_VALUE_LIMIT = 60  # characters of a bad value quoted in a message
_USAGE_COLUMNS = "interval_end, kwh[, kvarh, received_kwh]"


class UsageError(ValueError):
    """A usage CSV that cannot be billed; the message names the file and line."""


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a command so that nothing but one line reaches stderr, whatever goes wrong."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except BrokenPipeError:  # `smartmdm tariff inspect f.json | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK
        except Exception as exc:
            if os.environ.get("SMARTMDM_DEBUG"):
                raise
            print(
                f"error: internal error ({type(exc).__name__}: {quote(str(exc), 120)}); "
                "set SMARTMDM_DEBUG=1 for the traceback",
                file=sys.stderr,
            )
            return EXIT_INTERNAL

    return run


def _fail(error: Exception) -> int:
    """One line on stderr; exit 2 when a path or the configuration could not be read (as every other
    command does), 1 when a file was read and its content is wrong."""
    print(f"error: {error}", file=sys.stderr)
    if is_unreadable(error) or getattr(error, "usage", False):
        return EXIT_USAGE
    return EXIT_INPUT


def _utility_zone(args: argparse.Namespace) -> str:
    """``--tz``, else the utility's zone from the configuration."""
    if args.tz:
        return args.tz
    from smartmdm_pipelines.config import load_config

    try:
        return load_config(getattr(args, "config", None)).utility.timezone
    except (OSError, ValueError) as exc:
        error = UsageError(
            f"cannot read the utility configuration for its time zone ({quote(str(exc), 120)}); pass --tz"
        )
        error.usage = True  # type: ignore[attr-defined]
        raise error from None


@_guarded
def cmd_tariff_inspect(args: argparse.Namespace) -> int:
    from smartmdm_pipelines.domain.billing.tariff import TariffError
    from smartmdm_pipelines.domain.billing.urdb import load_tariff

    try:
        tariff = load_tariff(args.file, tz=_utility_zone(args))
    except (TariffError, UsageError) as exc:
        return _fail(exc)
    print(json.dumps(tariff.to_dict(), indent=2))
    return EXIT_OK


_MAX_COLUMNS = 64


def _short(value: str) -> str:
    return quote(value, _VALUE_LIMIT)


def _read_csv(path: Path):
    """The CSV as text cells, the header as row 0 (so a row of the wrong width has a line number)."""
    import pandas as pd

    text = read_text(path, "CSV", f"a header {_USAGE_COLUMNS}", UsageError)
    width = text[: text.find("\n")].count(",") + 1 if "\n" in text else text.count(",") + 1
    if width > _MAX_COLUMNS:  # pandas takes minutes over a header of 100,000 columns
        raise UsageError(
            f"{path.name} line 1: the header has {width:,} columns; a usage CSV has at most "
            f"{_MAX_COLUMNS} (expected {_USAGE_COLUMNS})"
        )
    try:
        cells = pd.read_csv(
            io.StringIO(text), header=None, dtype=str, keep_default_na=False, skip_blank_lines=False
        )
    except pd.errors.ParserError as exc:
        found, quoted = _FIELDS.search(str(exc)), _OPEN_QUOTE.search(str(exc))
        if found:
            expected, line, saw = found.groups()
            raise UsageError(f"{path.name} line {line}: expected {expected} fields, saw {saw}") from None
        if quoted:
            line = int(quoted.group(1)) + 1
            raise UsageError(f"{path.name} line {line}: a quoted field is never closed") from None
        raise UsageError(f"{path.name}: not a readable CSV: {quote(str(exc).strip(), 120)}") from None
    except pd.errors.EmptyDataError:
        raise UsageError(f"{path.name}: no header (expected {_USAGE_COLUMNS})") from None
    return cells.fillna("")


def read_usage_csv(path: Path):
    """Read a usage CSV (interval_end ISO-8601 with offset, kwh, optional kvarh, received_kwh)."""
    import numpy as np
    import pandas as pd

    cells = _read_csv(path)
    raw = cells.iloc[1:].set_axis([str(c).strip().lower() for c in cells.iloc[0]], axis=1)
    missing = [c for c in ("interval_end", "kwh") if c not in raw.columns]
    if missing:
        raise UsageError(
            f"{path.name} line 1: missing column(s) {', '.join(missing)} "
            f"(expected {_USAGE_COLUMNS}; got {quote(', '.join(raw.columns), 120)})"
        )
    raw = raw[(raw != "").any(axis=1)]  # blank lines; the index still gives the line number
    line = raw.index.to_numpy() + 1  # row 0 is the header on line 1
    errors: list[tuple[int, str]] = []

    text = raw["interval_end"].str.strip()
    ends = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = ends.isna().to_numpy() | ~text.str.contains(_OFFSET).to_numpy()
    errors += [
        (n, f"interval_end {_short(v)} is not an ISO-8601 timestamp with a UTC offset")
        for n, v in zip(line[bad], text[bad], strict=True)
    ]
    out = pd.DataFrame({"interval_end": ends})
    for col, required in (("kwh", True), ("received_kwh", False), ("kvarh", False)):
        if col not in raw.columns:
            continue
        vals = raw[col].str.strip()
        empty = (vals == "").to_numpy()
        num = pd.to_numeric(vals.where(~empty, "0" if not required else "x"), errors="coerce")
        values = num.to_numpy(dtype="float64", na_value=np.nan)
        bad = ~np.isfinite(values) | (values < 0)
        errors += [
            (n, f"{col} {_short(v)} is not a non-negative number")
            for n, v in zip(line[bad], vals[bad], strict=True)
        ]
        out[col] = values
    if errors:
        errors.sort()
        shown = "; ".join(f"{path.name} line {n}: {msg}" for n, msg in errors[:_MAX_ERRORS])
        more = f" (and {len(errors) - _MAX_ERRORS} more)" if len(errors) > _MAX_ERRORS else ""
        raise UsageError(shown + more)
    dup = out["interval_end"].duplicated(keep="first").to_numpy()
    if dup.any():
        n = int(line[dup][0])
        raise UsageError(f"{path.name} line {n}: duplicate interval_end {_short(text.to_numpy()[dup][0])}")
    if out.empty:
        raise UsageError(f"{path.name}: no usage rows")
    return out.reset_index(drop=True)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _table(rows: list[tuple[str, ...]], align: str) -> list[str]:
    """Rows as columns as wide as their widest cell; ``align`` is one of < > per column."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(align))]
    return [
        "  " + "  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths, strict=True)).rstrip()
        for row in rows
    ]


def _tariff_header(tariff) -> str:
    what = tariff.name or tariff.label or tariff.source
    who = f" ({tariff.utility})" if tariff.utility else ""
    since = f", from {tariff.startdate.isoformat()}" if tariff.startdate else ""
    until = f" to {tariff.enddate.isoformat()}" if tariff.enddate else ""
    zone = f" ({tariff.timezone})" if tariff.start_instant or tariff.end_instant else ""
    return f"tariff: {what}{who}{since}{until}{zone}"


def format_bills(bills, currency: str = "$", tariff=None) -> str:
    """The bills as text: determinants, then charge lines where quantity × rate = amount.

    Quantities and rates are printed with every significant digit they have (a prorated
    quantity as its fraction, 1/31 month); amounts to the cent with thousands separators.
    """
    from smartmdm_pipelines.domain.billing.numbers import cents, money, plain

    lines: list[str] = [_tariff_header(tariff)] if tariff is not None else []
    grand = 0.0
    for bill in bills:
        grand += cents(bill.total)  # the months' totals as printed add up to the grand total
        lines.append(f"{bill.month}  {bill.start} .. {bill.end}  ({bill.days} of {bill.days_in_month} days)")
        if bill.energy:
            lines.append(
                f"  {'energy by period':<24}{'delivered':>12}{'received':>12}{'billed':>12}  tiers ({bill.unit})"
            )
            for e in bill.energy:
                tiers = " / ".join(_fmt(q) for q in e["tiers"])
                lines.append(
                    f"  {e['period']:>2} {e['label']:<21}{_fmt(e['delivered']):>12}"
                    f"{_fmt(e['received']):>12}{_fmt(e['billed']):>12}  {tiers}"
                )
                if any(t["limit"] is not None for t in e.get("tier_limits", [])):
                    lines.append(f"     tier limits: {' | '.join(t['text'] for t in e['tier_limits'])}")
        if bill.demand:
            lines.append(f"  {'demand':<24}{'actual':>12}{'billing':>12}")
            for d in bill.demand:
                period = "" if d["period"] is None else f" period {d['period']}"
                lines.append(
                    f"  {d['kind'] + period:<24}{_fmt(d['actual']):>12}{_fmt(d['billing']):>12}  {d['unit']}"
                )
        rows = [("charge", "quantity", "unit", "rate", "amount")]
        for c in bill.lines:
            rows.append(
                (c.description, c.quantity_label or plain(c.quantity), c.unit, plain(c.rate), money(c.amount))
            )
        rows.append(("total", "", "", currency, money(bill.total)))
        lines += _table(rows, "<><>>")
        for note in bill.notes:
            lines.append(f"  note: {note}")
        lines.append("")
    lines.append(f"{len(bills)} month(s), total {currency}{money(grand)}")
    return "\n".join(lines)


@_guarded
def cmd_shadow_bill(args: argparse.Namespace) -> int:
    from smartmdm_pipelines.domain.billing.shadow_bill import shadow_bill
    from smartmdm_pipelines.domain.billing.tariff import TariffError
    from smartmdm_pipelines.domain.billing.urdb import load_tariff

    try:
        tariff = load_tariff(args.tariff, tz=args.tz)
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
        return _fail(exc)
    if args.json:
        print(json.dumps([b.to_dict() for b in bills], indent=2))
    else:
        print(format_bills(bills, tariff=tariff))
    return EXIT_OK


def _checked(check: Callable[[str], object], expected: str) -> Callable[[str], str]:
    """An argparse type: the value if ``check`` accepts it, else a one-line usage error (exit 2)."""

    def parse(value: str) -> str:
        try:
            check(value)
        except (KeyError, ValueError, NotImplementedError, AttributeError):
            raise argparse.ArgumentTypeError(f"{quote(value, _VALUE_LIMIT)} is not {expected}") from None
        return value

    return parse


def _holiday_calendar(value: str) -> object:
    from smartmdm_pipelines.domain.calendar import holidays_for

    return holidays_for(value, 2020, 2020)


_zone = _checked(ZoneInfo, "an IANA time zone (e.g. America/Chicago)")
_holidays = _checked(_holiday_calendar, "a holiday calendar (NERC, none, or a country code such as US)")


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{quote(value, _VALUE_LIMIT)} is not a whole number of seconds > 0")
    return number


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tariff`` and ``shadow-bill`` to the `smartmdm` command."""
    p = subparsers.add_parser(
        "tariff", help="URDB tariffs: inspect (validate and show periods, tiers, schedules)"
    )
    t = p.add_subparsers(dest="action", required=True)
    q = t.add_parser("inspect", help="validate a URDB JSON file and print it as JSON")
    q.add_argument("file")
    q.add_argument(
        "--tz",
        type=_zone,
        help="the utility's IANA time zone for startdate/enddate (default: utility.timezone of the config)",
    )
    q.set_defaults(func=cmd_tariff_inspect)

    p = subparsers.add_parser("shadow-bill", help="bill a usage CSV on a URDB tariff, month by month")
    p.add_argument("--tariff", required=True, help="URDB JSON file")
    p.add_argument(
        "--usage", required=True, help="CSV: interval_end (ISO-8601 with offset), kwh[, kvarh, received_kwh]"
    )
    p.add_argument("--tz", required=True, type=_zone, help="the service point's IANA time zone")
    p.add_argument(
        "--holidays",
        default="NERC",
        type=_holidays,
        help="NERC (default), none, or a country code (US, CA …)",
    )
    p.add_argument(
        "--interval-seconds", type=_positive, help="interval length (default: inferred from the data)"
    )
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
