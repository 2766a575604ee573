"""OpenEI URDB rate JSON -> a validated :class:`~smartmdm_pipelines.domain.billing.tariff.Tariff`.

The parser is tolerant about the *shape* of the input (a dict, a JSON string, a double-encoded
JSON string, the API's ``{"items": [...]}`` wrapper, lower-case API keys or the web export's
camelCase keys) and strict about the *content*: every problem raises :class:`TariffError`
naming the source and the path of the bad field, e.g.
``fpl.json: energyratestructure[0][1].rate: expected a number, got "abc"``. Messages are one
line and quote at most a short excerpt of a bad value or file. Each section of the tariff
(energy, TOU demand, flat demand, coincident demand, demand rules, charges, distributed
generation) has its own parser.

``startdate``/``enddate`` are epoch seconds in URDB: they are kept as instants and shown as the
date in the utility's zone (``parse_urdb(..., tz=...)``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from smartmdm_pipelines.domain.billing.files import excerpt, quote, read_text
from smartmdm_pipelines.domain.billing.tariff import (
    CHARGE_UNITS,
    DEMAND_UNITS,
    DG_RULES,
    ENERGY_UNITS,
    UNLIMITED,
    UNLIMITED_FROM,
    Tariff,
    TariffError,
    Tier,
)

# Non-standard spellings seen in real records -> the API's key (after lower-casing).
_ALIASES = {
    "flatdemandunits": "flatdemandunit",
    "demandrateunits": "demandrateunit",
    "demandreactpwrcharge": "demandreactivepowercharge",
    "coincidentrateunits": "coincidentrateunit",
    "supercedes": "supersedes",
    "energytoulabel": "energytoulabels",
}


def parse_urdb(data: Any, source: str = "<tariff>", tz: str = "UTC") -> Tariff:
    """Parse a URDB tariff (dict, JSON text, double-encoded JSON, ``{"items": [..]}``).

    ``tz`` is the utility's zone: URDB's epoch ``startdate``/``enddate`` become dates there.
    """
    zone = _zone(tz)
    raw = _decode(data, source)
    keys: dict[str, str] = {}
    d: dict[str, Any] = {}
    for key, value in raw.items():
        norm = str(key).lower()
        norm = _ALIASES.get(norm, norm)
        keys.setdefault(norm, str(key))
        try:
            d.setdefault(norm, _lower_keys(value) if norm.endswith("structure") else value)
        except RecursionError:
            raise TariffError(f"{source}: {key}: nested too deeply for a rate structure") from None
    ctx = _Ctx(source, keys)

    t = Tariff(source=source, raw=raw, timezone=tz)
    t.label, t.name, t.utility = _text(d, "label"), _text(d, "name"), _text(d, "utility")
    t.sector, t.servicetype = _text(d, "sector"), _text(d, "servicetype")
    t.startdate, t.start_instant = _date(ctx, d, "startdate", zone)
    t.enddate, t.end_instant = _date(ctx, d, "enddate", zone)

    for section in _SECTIONS:
        section(ctx, d, t)
    return t


def load_tariff(path: Path | str, tz: str = "UTC") -> Tariff:
    """Read and validate a URDB JSON file; errors are one line naming the file (and the field path).

    A directory, a missing file, binary data or a file that is not JSON is rejected as such.
    """
    path = Path(path)
    text = read_text(path, "JSON", "a URDB tariff", TariffError)
    return parse_urdb(text, source=path.name, tz=tz)


# --------------------------------------------------------------------------- one parser per section


def _parse_energy(ctx: _Ctx, d: dict[str, Any], t: Tariff) -> None:
    """Energy: tiers per period, the weekday/weekend schedules (a single period needs none), TOU labels."""
    t.energy_periods = _structure(ctx, d, "energyratestructure", ENERGY_UNITS)
    n = len(t.energy_periods)
    t.energy_weekday = _schedule(ctx, d, "energyweekdayschedule", n, "energyratestructure")
    t.energy_weekend = _schedule(ctx, d, "energyweekendschedule", n, "energyratestructure")
    if n and (t.energy_weekday is None) != (t.energy_weekend is None):
        missing = "energyweekendschedule" if t.energy_weekend is None else "energyweekdayschedule"
        raise ctx.fail(ctx.path(missing), "missing (both weekday and weekend schedules are needed)")
    if n and t.energy_weekday is None:
        if n > 1:
            raise ctx.fail(
                ctx.path("energyweekdayschedule"), f"missing; needed to choose among {n} energy periods"
            )
        t.energy_weekday = np.zeros((12, 24), dtype="int64")
        t.energy_weekend = np.zeros((12, 24), dtype="int64")
    labels = d.get("energytoulabels")
    if labels is not None:
        if not isinstance(labels, list):
            raise ctx.fail(ctx.path("energytoulabels"), f"expected a list of names, got {_show(labels)}")
        t.energy_labels = [str(x) for x in labels]


def _parse_tou_demand(ctx: _Ctx, d: dict[str, Any], t: Tariff) -> None:
    """TOU demand: tiers per period, both schedules, the demand unit."""
    t.demand_periods = _structure(ctx, d, "demandratestructure", None)
    n = len(t.demand_periods)
    t.demand_weekday = _schedule(ctx, d, "demandweekdayschedule", n, "demandratestructure")
    t.demand_weekend = _schedule(ctx, d, "demandweekendschedule", n, "demandratestructure")
    if n and (t.demand_weekday is None or t.demand_weekend is None):
        missing = "demandweekdayschedule" if t.demand_weekday is None else "demandweekendschedule"
        raise ctx.fail(ctx.path(missing), "missing; TOU demand needs weekday and weekend schedules")
    t.demand_unit = _unit(ctx, d, "demandrateunit", DEMAND_UNITS, "kW")


def _parse_flat_demand(ctx: _Ctx, d: dict[str, Any], t: Tariff) -> None:
    """Flat demand: tiers per period, the period of each month, the unit."""
    t.flat_demand_periods = _structure(ctx, d, "flatdemandstructure", None)
    n = len(t.flat_demand_periods)
    months = d.get("flatdemandmonths")
    if months is not None:
        vals = _twelve(ctx, d, "flatdemandmonths") or []
        out = []
        for i, v in enumerate(vals):
            if not math.isfinite(v) or v != int(v) or v < 0 or int(v) >= max(n, 1):
                raise ctx.fail(
                    ctx.path("flatdemandmonths", i),
                    f"period {v:g} does not exist (flatdemandstructure has {n} period(s))",
                )
            out.append(int(v))
        t.flat_demand_months = out
    elif n:
        if n > 1:
            raise ctx.fail(ctx.path("flatdemandmonths"), f"missing; needed to choose among {n} periods")
        t.flat_demand_months = [0] * 12
    t.flat_demand_unit = _unit(ctx, d, "flatdemandunit", DEMAND_UNITS, "kW")


def _parse_coincident(ctx: _Ctx, d: dict[str, Any], t: Tariff) -> None:
    """Coincident demand: tiers per period, the schedule (all period 0 when absent), the unit."""
    t.coincident_periods = _structure(ctx, d, "coincidentratestructure", None)
    t.coincident_schedule = _schedule(
        ctx, d, "coincidentrateschedule", len(t.coincident_periods), "coincidentratestructure"
    )
    if t.coincident_periods and t.coincident_schedule is None:
        t.coincident_schedule = np.zeros((12, 24), dtype="int64")
    t.coincident_unit = _unit(ctx, d, "coincidentrateunit", DEMAND_UNITS, "kW")


def _parse_demand_rules(ctx: _Ctx, d: dict[str, Any], t: Tariff) -> None:
    """Demand window, ratchet (percentages, look-back) and the reactive power charge."""
    window = d.get("demandwindow")
    if window is not None:
        w = _number(ctx, window, ctx.path("demandwindow"))
        if not math.isfinite(w) or w <= 0 or w != int(w):
            raise ctx.fail(ctx.path("demandwindow"), f"expected whole minutes > 0, got {_show(window)}")
        t.demand_window = int(w)
    pct = _twelve(ctx, d, "demandratchetpercentage")
    if pct is not None:
        t.ratchet_percentages = [p / 100.0 if p > 1 else p for p in pct]  # percent or fraction
    if d.get("lookbackpercent") is not None:
        lp = _number(ctx, d["lookbackpercent"], ctx.path("lookbackpercent"))
        t.lookback_percent = lp / 100.0 if lp > 1 else lp
    if d.get("lookbackrange") is not None:
        t.lookback_range = int(_number(ctx, d["lookbackrange"], ctx.path("lookbackrange")))
    lbm = d.get("lookbackmonths")
    if lbm is not None:
        if not isinstance(lbm, list) or len(lbm) != 12:
            raise ctx.fail(ctx.path("lookbackmonths"), f"expected 12 booleans, got {_show(lbm)}")
        t.lookback_months = [bool(x) for x in lbm]
    if d.get("demandreactivepowercharge") is not None:
        t.reactive_charge = _number(
            ctx, d["demandreactivepowercharge"], ctx.path("demandreactivepowercharge")
        )


def _parse_charges(ctx: _Ctx, d: dict[str, Any], t: Tariff) -> None:
    """Fixed, minimum and annual minimum charges."""
    if d.get("fixedchargefirstmeter") is not None:
        t.fixed_charge = _number(ctx, d["fixedchargefirstmeter"], ctx.path("fixedchargefirstmeter"))
        t.fixed_charge_unit = _unit(ctx, d, "fixedchargeunits", CHARGE_UNITS, "$/month")
    elif d.get("fixedmonthlycharge") is not None:
        t.fixed_charge = _number(ctx, d["fixedmonthlycharge"], ctx.path("fixedmonthlycharge"))
    if d.get("mincharge") is not None:
        t.min_charge = _number(ctx, d["mincharge"], ctx.path("mincharge"))
        t.min_charge_unit = _unit(ctx, d, "minchargeunits", CHARGE_UNITS, "$/month")
    elif d.get("minmonthlycharge") is not None:
        t.min_charge = _number(ctx, d["minmonthlycharge"], ctx.path("minmonthlycharge"))
    if d.get("annualmincharge") is not None:
        t.annual_min_charge = _number(ctx, d["annualmincharge"], ctx.path("annualmincharge"))


def _parse_dg(ctx: _Ctx, d: dict[str, Any], t: Tariff) -> None:
    """Distributed generation: the netting rule and whether export is credited at the buy rate."""
    dg = d.get("dgrules")
    if dg not in (None, ""):
        rule = DG_RULES.get(str(dg).strip().lower())
        if rule is None:
            raise ctx.fail(
                ctx.path("dgrules"),
                f"unknown rule {_show(dg)} (expected Net Metering, Net Billing Instantaneous, "
                "Net Billing Hourly or Buy All Sell All)",
            )
        t.dgrules = str(dg)
        t.netting, t.netting_interval_seconds = rule
    t.use_net_metering = bool(d.get("usenetmetering") or False)


_SECTIONS: tuple[Callable[[_Ctx, dict[str, Any], Tariff], None], ...] = (
    _parse_energy,
    _parse_tou_demand,
    _parse_flat_demand,
    _parse_coincident,
    _parse_demand_rules,
    _parse_charges,
    _parse_dg,
)


# --------------------------------------------------------------------------- parsing helpers


class _Ctx:
    def __init__(self, source: str, keys: dict[str, str]):
        self.source = source
        self.keys = keys  # normalised key -> key as written in the file

    def path(self, key: str, *rest: int | str) -> str:
        out = self.keys.get(key, key)
        for r in rest:
            out += f"[{r}]" if isinstance(r, int) else f".{r}"
        return out

    def fail(self, path: str, message: str) -> TariffError:
        return TariffError(f"{self.source}: {path}: {message}")


_VALUE_LIMIT = 80  # characters of a bad value quoted in a message


def _show(value: Any) -> str:
    """A bad value for a message: JSON-quoted strings, at most ``_VALUE_LIMIT`` characters."""
    if isinstance(value, str):
        if len(value) <= _VALUE_LIMIT:
            return json.dumps(value)
        return f"{json.dumps(value[: _VALUE_LIMIT - 1])}… ({len(value):,} characters)"
    if isinstance(value, list | dict) and len(value) > _VALUE_LIMIT:
        return f"a {type(value).__name__} of {len(value):,} items"
    text = repr(value)
    return text if len(text) <= _VALUE_LIMIT else f"{text[: _VALUE_LIMIT - 1]}… ({len(text):,} characters)"


def _price(rate: float, adj: float) -> float:
    """``rate + adj`` without binary float noise (0.07531 + 0.0119 = 0.08721, not 0.08721000000000001)."""
    try:
        return float(Decimal(repr(rate)) + Decimal(repr(adj)))
    except InvalidOperation:  # inf
        return rate + adj


def _number(ctx: _Ctx, value: Any, path: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        if isinstance(value, str):
            try:
                out = float(value.strip())
            except ValueError:
                raise ctx.fail(path, f"expected a number, got {_show(value)}") from None
            if math.isfinite(out):
                return out
        raise ctx.fail(path, f"expected a number, got {_show(value)}")
    if math.isnan(value):
        raise ctx.fail(path, "expected a number, got NaN")
    return float(value)


def _loads(text: str | bytes, source: str, level: int) -> Any:
    where = "" if level == 0 else " (inside the JSON string that holds the tariff)"
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TariffError(
            f"{source}: not valid JSON{where}: {exc.msg} at line {exc.lineno} column {exc.colno}, "
            f"near {excerpt(str(exc.doc), exc.pos)}"
        ) from None
    except RecursionError:
        raise TariffError(f"{source}: not a URDB tariff: JSON nested too deeply{where}") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise TariffError(f"{source}: not valid JSON{where}: {quote(str(exc), 120)}") from None


def _decode(data: Any, source: str) -> dict[str, Any]:
    for level in range(3):  # a JSON string, possibly holding JSON again (double-encoded)
        if not isinstance(data, str | bytes):
            break
        data = _loads(data, source, level)
    if isinstance(data, dict):
        items = None
        for key, value in data.items():
            if key.lower() == "items" and isinstance(value, list):
                items = value
        if items is not None:
            if len(items) != 1:
                raise TariffError(f"{source}: items: expected exactly one tariff, got {len(items)}")
            return _decode(items[0], source)
        return data
    if isinstance(data, list) and len(data) == 1:
        return _decode(data[0], source)
    raise TariffError(f"{source}: expected a URDB tariff object, got {type(data).__name__}")


def _lower_keys(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_lower_keys(v) for v in obj]
    return obj


def _structure(ctx: _Ctx, d: dict[str, Any], key: str, units: dict[str, str] | None) -> list[list[Tier]]:
    value = d.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ctx.fail(ctx.path(key), f"expected a list of periods, got {_show(value)}")
    periods: list[list[Tier]] = []
    for p, tiers in enumerate(value):
        if not isinstance(tiers, list) or not tiers:
            raise ctx.fail(ctx.path(key, p), f"expected a non-empty list of tiers, got {_show(tiers)}")
        out: list[Tier] = []
        previous = 0.0
        for t, tier in enumerate(tiers):
            if not isinstance(tier, dict):
                raise ctx.fail(ctx.path(key, p, t), f"expected a tier object, got {_show(tier)}")
            tier = {str(k).lower(): v for k, v in tier.items()}
            rate = _number(ctx, tier.get("rate", 0.0), ctx.path(key, p, t, "rate"))
            adj = _number(ctx, tier.get("adj", 0.0), ctx.path(key, p, t, "adj"))
            if math.isinf(rate) or math.isinf(adj):
                raise ctx.fail(ctx.path(key, p, t, "rate"), "expected a finite price")
            sell = _number(ctx, tier.get("sell", 0.0), ctx.path(key, p, t, "sell"))
            upper = _number(ctx, tier.get("max"), ctx.path(key, p, t, "max"), allow_none=True)
            if upper is None or upper >= UNLIMITED_FROM:
                upper = UNLIMITED
            elif t > 0 and upper <= previous:
                raise ctx.fail(
                    ctx.path(key, p, t, "max"),
                    f"tier bounds must increase (cumulative); {upper:g} after {previous:g}",
                )
            if upper <= 0:
                raise ctx.fail(ctx.path(key, p, t, "max"), f"must be positive, got {upper:g}")
            if t < len(tiers) - 1 and math.isinf(upper):
                raise ctx.fail(ctx.path(key, p, t, "max"), "only the last tier may be unlimited")
            unit = tier.get("unit")
            if unit is not None and units is not None:
                canon = units.get(str(unit).strip().lower())
                if canon is None:
                    raise ctx.fail(
                        ctx.path(key, p, t, "unit"),
                        f"unknown unit {_show(unit)} (expected one of {', '.join(sorted(set(units.values())))})",
                    )
                unit = canon
            previous = upper
            out.append(Tier(upper, _price(rate, adj), rate, adj, sell, unit))
        if units is not None:
            _check_limit_units(ctx, key, p, out)
        periods.append(out)
    return periods


def _limit_kind(unit: str | None) -> str:
    """What a tier limit is measured in: kWh per month, per day, per kW, per kW per day."""
    return unit if unit in ("kWh daily", "kWh/kW", "kWh/kW daily") else "kWh"


def _check_limit_units(ctx: _Ctx, key: str, period: int, tiers: list[Tier]) -> None:
    """The limits of one period must scale the same way (all kWh, all kWh/kW …); tiers that mix
    kWh/kW hours-use blocks with kWh steps (SAM's Georgia Power "block step") are not supported."""
    limited = [(t, tier) for t, tier in enumerate(tiers) if not math.isinf(tier.max)]
    kinds = {_limit_kind(tier.unit) for _, tier in limited}
    if len(kinds) > 1:
        first = _limit_kind(limited[0][1].unit)
        t, other = next((t, tier) for t, tier in limited if _limit_kind(tier.unit) != first)
        raise ctx.fail(
            ctx.path(key, period, t, "unit"),
            f"{_limit_kind(other.unit)} limit after {first} limits in the same period is not supported "
            "(every limited tier of a period must use the same unit)",
        )


def _schedule(ctx: _Ctx, d: dict[str, Any], key: str, n_periods: int, label: str) -> np.ndarray | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 12:
        n = len(value) if isinstance(value, list) else _show(value)
        raise ctx.fail(ctx.path(key), f"expected 12 months of 24 hours, got {n} months")
    out = np.zeros((12, 24), dtype="int64")
    for m, row in enumerate(value):
        if not isinstance(row, list) or len(row) != 24:
            n = len(row) if isinstance(row, list) else _show(row)
            raise ctx.fail(ctx.path(key, m), f"expected 24 hourly periods, got {n}")
        for h, v in enumerate(row):
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or not math.isfinite(v)
                or v != int(v)
                or v < 0
            ):
                raise ctx.fail(ctx.path(key, m, h), f"expected a period index (integer >= 0), got {_show(v)}")
            if int(v) >= n_periods:
                raise ctx.fail(
                    ctx.path(key, m, h),
                    f"period {int(v)} does not exist ({label} has {n_periods} period(s))",
                )
            out[m, h] = int(v)
    return out


def _unit(ctx: _Ctx, d: dict[str, Any], key: str, units: dict[str, str], default: str) -> str:
    value = d.get(key)
    if value is None or value == "":
        return default
    canon = units.get(str(value).strip().lower())
    if canon is None:
        raise ctx.fail(
            ctx.path(key),
            f"unknown unit {_show(value)} (expected one of {', '.join(sorted(set(units.values())))})",
        )
    return canon


def _date(
    ctx: _Ctx, d: dict[str, Any], key: str, zone: ZoneInfo
) -> tuple[dt.date | None, dt.datetime | None]:
    """(the date in ``zone``, the instant) of epoch seconds; a written date is that date, no instant."""
    value = d.get(key)
    if value in (None, ""):
        return None, None
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10]), None
        except ValueError:
            pass
    seconds = _number(ctx, value, ctx.path(key))
    try:
        instant = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise ctx.fail(ctx.path(key), f"expected epoch seconds, got {_show(value)}") from None
    return instant.astimezone(zone).date(), instant


def _twelve(ctx: _Ctx, d: dict[str, Any], key: str) -> list[float] | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 12:
        raise ctx.fail(ctx.path(key), f"expected 12 monthly values, got {_show(value)}")
    return [_number(ctx, v, ctx.path(key, i)) for i, v in enumerate(value)]


def _text(d: dict[str, Any], key: str) -> str | None:
    value = d.get(key)
    return None if value is None else str(value)


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise TariffError(f"{tz!r} is not an IANA time zone (e.g. America/Chicago)") from None
