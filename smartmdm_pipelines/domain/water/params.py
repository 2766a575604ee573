"""NRW detection parameters per zone class, read from the ``nrw`` section of the utility YAML.

nrw:
  channel: water                 # the interval channel of water meters
  default:                       # every zone class; each key documented on ZoneParams
    night_start_hour: 2
  classes:
    dma: {min_rate_share: 0.02}
  zones:                         # IWA/UARL attributes per zone (the CIS zones feed has no columns yet)
    Z01: {mains_km: 12.5, private_pipe_km: 1.8, pressure_m: 45}
  operations:                    # known operational events: a loss starting inside one is explained
    - {zone: Z01, start: "2024-03-12T08:00:00-05:00", end: "2024-03-12T14:00:00-05:00", reason: mains flushing}
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

GALLON_LITRES = 3.785411784
LITRES_PER_UNIT = {
    "gal": GALLON_LITRES,
    "L": 1.0,
    "l": 1.0,
    "m3": 1000.0,
    "ft3": 28.316846592,
    "CCF": 2831.6846592,
}


@dataclass(frozen=True)
class ZoneParams:
    """Detection and balance parameters of one zone class (defaults in brackets)."""

    night_start_hour: int = 2  # minimum night flow window, local clock hours [2, 4)
    night_end_hour: int = 4
    legitimate_night_use_lph: float = 1.7  # allowance per connection per hour, litres (UK practice)
    min_completeness: float = 0.98  # share of expected intervals before a balance counts as complete
    baseline_hours: int = 168  # quiet hours whose median is the loss baseline (7 days)
    min_history_hours: int = 48  # quiet hours needed before the detector may raise events
    min_rate_share: float = 0.02  # smallest loss rate of interest, share of the zone's mean inflow
    min_rate_sigma: float = 1.5  # ... and in units of the hourly noise (robust sigma)
    threshold_sigma: float = 6.0  # CUSUM decision interval h, in sigma
    max_estimated_ratio: float = 0.5  # drop an event when the estimated (or VEE-replaced) customer volume
    #                                   per hour reaches this share of its rate (the data could explain it)
    nested_after_hours: int = 24  # a second loss on top of an open one is looked for after this age
    high_confidence: float = 0.8  # the asset check warns on new events at or above this confidence
    baseline_nights: int = 7  # night-flow baseline: 20th percentile of the previous nights
    # IWA water balance (AWWA FWAS defaults where there is no data)
    meter_under_registration: float = 0.02  # p: customer meters register (1 - p) of the true volume
    unauthorized_share: float = 0.0025  # unauthorized consumption, share of system input
    unbilled_unmetered_share: float = 0.0125  # flushing, fire fighting: share of system input
    mains_km: float | None = None  # UARL inputs; None: ILI is not computed
    private_pipe_km: float | None = None
    pressure_m: float | None = None

    def replace(self, **changes) -> ZoneParams:
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name for f in dataclasses.fields(ZoneParams)}


def _checked(values: dict, where: str) -> dict:
    unknown = sorted(set(values) - _FIELDS)
    if unknown:
        raise ValueError(f"nrw.{where}: unknown parameter(s) {unknown}; known: {sorted(_FIELDS)}")
    return values


@dataclass(frozen=True)
class Operation:
    """A known operational event (mains flushing, tank filling, a valve operation, fire fighting):
    water leaves the zone unmetered on purpose between ``start`` and ``end`` (UTC)."""

    zone_id: str | None  # None: every zone
    start: dt.datetime
    end: dt.datetime
    reason: str

    @classmethod
    def from_dict(cls, raw: dict, where: str) -> Operation:
        unknown = sorted(set(raw) - {"zone", "start", "end", "reason"})
        if unknown:
            raise ValueError(f"nrw.{where}: unknown key(s) {unknown}; known: zone, start, end, reason")
        try:
            start, end = (dt.datetime.fromisoformat(str(raw[k])) for k in ("start", "end"))
        except (KeyError, ValueError) as exc:
            raise ValueError(
                f"nrw.{where}: start and end must be ISO 8601 times with an offset ({exc})"
            ) from None
        if start.tzinfo is None or end.tzinfo is None or end <= start:
            raise ValueError(f"nrw.{where}: start and end need a UTC offset and end must be after start")
        zone = raw.get("zone")
        return cls(
            None if zone in (None, "", "*") else str(zone),
            start.astimezone(dt.UTC),
            end.astimezone(dt.UTC),
            str(raw.get("reason") or "operation"),
        )


@dataclass(frozen=True)
class NrwConfig:
    """The ``nrw`` section: a default, per-class overrides and per-zone attributes."""

    channel: str = "water"
    default: ZoneParams = field(default_factory=ZoneParams)
    classes: dict[str, dict] = field(default_factory=dict)
    zones: dict[str, dict] = field(default_factory=dict)
    operations: tuple[Operation, ...] = ()

    @classmethod
    def from_dict(cls, raw: dict | None) -> NrwConfig:
        raw = dict(raw or {})
        unknown = sorted(set(raw) - {"channel", "default", "classes", "zones", "operations"})
        if unknown:
            raise ValueError(
                f"nrw: unknown key(s) {unknown}; known: channel, default, classes, zones, operations"
            )
        default = ZoneParams(**_checked(dict(raw.get("default") or {}), "default"))
        classes = {
            str(k): _checked(dict(v or {}), f"classes.{k}") for k, v in (raw.get("classes") or {}).items()
        }
        zones = {str(k): _checked(dict(v or {}), f"zones.{k}") for k, v in (raw.get("zones") or {}).items()}
        operations = tuple(
            Operation.from_dict(dict(op or {}), f"operations[{i}]")
            for i, op in enumerate(raw.get("operations") or [])
        )
        config = cls(str(raw.get("channel", "water")), default, classes, zones, operations)
        for name in [*classes, *zones]:
            p = config.for_zone(name if name in zones else None, name if name in classes else None)
            if not 0 <= p.night_start_hour < p.night_end_hour <= 24:
                raise ValueError(f"nrw {name}: night window must satisfy 0 <= start < end <= 24")
        return config

    def for_zone(self, zone_id: str | None, zone_class: str | None) -> ZoneParams:
        """The default, overridden by the zone's class, overridden by the zone's own entry."""
        params = self.default
        if zone_class and zone_class in self.classes:
            params = params.replace(**self.classes[zone_class])
        if zone_id and zone_id in self.zones:
            params = params.replace(**self.zones[zone_id])
        return params


def litres_per(unit: str | None) -> float:
    """Litres in one ``unit`` (US gallons when unknown: the store's canonical water unit)."""
    return LITRES_PER_UNIT.get(str(unit or "gal"), GALLON_LITRES)
