"""DMAs metered only at their inlet: a year of 5-15 minute inlet reads with injected leaks (issue 16).

Each zone's customers are read monthly (no interval data), so the only fast signal is the inlet
meter. Consumption = customer demand (diurnal shape by weekday/weekend, seasonality, a daily
weather factor, per-interval noise) + background leakage + injected leaks:

* abrupt leaks/bursts: a step of 2-30 % of the zone's mean inflow at a random minute, repaired
  (step back down) after 5-60 days in about 60 % of cases;
* gradual leaks: a ramp reaching 5-20 % of mean inflow over 2-12 weeks, then a plateau, repaired
  in about 40 % of cases;
* inlet data gaps (1 hour to 3 days), which must not look like leaks.

Every ``tank_every``-th zone is fed through a tank: the inlet meter measures the pump (on/off with
level hysteresis), a level meter reports the tank level (m, 1 cm resolution) and consumption is
``pumped - area x level change``.

``simulate_inflow_zones`` returns frames (the benchmark uses them directly);
``write_inflow_zones`` writes the inlet reads as generic CSV (m3) under ``headend/inflow/``, the
tank levels under ``headend/inflow_levels/`` (length units are not a head-end unit the ingestion
accepts yet), the zones/meters/service points into the CIS drop (appended) and the ground truth to
``ground_truth/inflow_events.csv``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

STEPS = (300, 600, 900)
M3_PER_PROPERTY_DAY = 0.45
NIGHT_SHARE = 0.25  # demand at the quietest hour relative to the mean


@dataclass(frozen=True)
class InflowZoneSpec:
    zones: int = 4
    start: dt.date = dt.date(2024, 1, 1)
    days: int = 365
    seed: int = 42
    timezone: str = "America/Chicago"
    tank_every: int = 4  # every n-th zone is tank-fed (0: none)
    gaps: bool = True
    leaks: bool = True
    warmup_days: int = 35  # no leak starts before this many days (the detector needs a baseline)


@dataclass
class InflowSimulation:
    zones: pd.DataFrame
    meters: pd.DataFrame
    service_points: pd.DataFrame
    reads: (
        pd.DataFrame
    )  # inlet meters: meter_id, channel, interval_end, interval_seconds, value (m3), unit, quality
    levels: pd.DataFrame  # tank level meters: same columns, value in m
    truth: pd.DataFrame  # one row per injected leak
    gaps: pd.DataFrame  # zone_id, start, end of each inlet data gap


def _shape(local_hours: np.ndarray, weekend: np.ndarray) -> np.ndarray:
    """Diurnal demand shape (mean ~1): weekday peaks 07:30 and 19:00, weekend peak 10:00."""

    def bump(h: np.ndarray, centre: float, width: float) -> np.ndarray:
        d = (h - centre + 12) % 24 - 12
        return np.exp(-0.5 * (d / width) ** 2)

    weekday = (
        NIGHT_SHARE
        + 1.5 * bump(local_hours, 7.5, 1.4)
        + 1.0 * bump(local_hours, 19.0, 2.2)
        + 0.5 * bump(local_hours, 13.0, 3.0)
    )
    weekend_shape = (
        NIGHT_SHARE
        + 1.3 * bump(local_hours, 10.0, 2.2)
        + 0.9 * bump(local_hours, 19.0, 2.5)
        + 0.3 * bump(local_hours, 14.5, 2.5)
    )
    shape = np.where(weekend, weekend_shape, weekday)
    return shape / 1.25


def _schedule(rng: np.random.Generator, spec: InflowZoneSpec, mean_inflow: float) -> list[dict]:
    """Leaks of one zone: start instants (epoch seconds) spaced so each change stands alone."""
    if not spec.leaks:
        return []
    t0 = pd.Timestamp(spec.start, tz=spec.timezone).tz_convert("UTC").timestamp()
    end = t0 + spec.days * 86400
    events: list[dict] = []
    at = t0 + spec.warmup_days * 86400 + rng.uniform(0, 20) * 86400
    while True:
        kind = "gradual" if rng.random() < 0.3 else "abrupt"
        if kind == "abrupt":
            share = float(rng.uniform(0.02, 0.30))
            ramp = 0.0
        else:
            share = float(rng.uniform(0.05, 0.20))
            ramp = float(rng.uniform(14, 84))
        if at + max(ramp, 3) * 86400 > end:
            break
        repaired = rng.random() < (0.6 if kind == "abrupt" else 0.4)
        until = at + (ramp + float(rng.uniform(5, 60))) * 86400 if repaired else None
        if until is not None and until >= end:
            until = None
        events.append(
            {
                "kind": kind,
                "start": at,
                "end": until,
                "share": share,
                "rate_m3h": share * mean_inflow,
                "ramp_days": ramp,
            }
        )
        last_change = max(at + ramp * 86400, until or 0)
        at = last_change + rng.uniform(14, 45) * 86400
    return events


def _leak_rate(events: list[dict], t: np.ndarray) -> np.ndarray:
    rate = np.zeros(len(t))
    for ev in events:
        on = t > ev["start"]
        if ev["end"] is not None:
            on &= t <= ev["end"]
        if ev["ramp_days"] > 0:
            growth = np.clip((t - ev["start"]) / (ev["ramp_days"] * 86400), 0, 1)
        else:
            growth = np.ones(len(t))
        rate += np.where(on, ev["rate_m3h"] * growth, 0.0)
    return rate


def _tank(
    rng: np.random.Generator, use_m3: np.ndarray, step: int, area: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pump volumes per interval and the tank level (m) at each interval end (hysteresis 2-4 m)."""
    pump_rate = 1.8 * float(np.percentile(use_m3, 99.5))  # m3 per interval
    level = 3.0
    pumping = False
    pumped = np.empty(len(use_m3))
    levels = np.empty(len(use_m3))
    for k, use in enumerate(use_m3.tolist()):  # hysteresis is sequential: one pass over a zone's intervals
        if level < 2.0:
            pumping = True
        elif level > 4.0:
            pumping = False
        inflow = pump_rate if pumping else 0.0
        level += (inflow - use) / area
        pumped[k] = inflow
        levels[k] = level
    return pumped, levels


def simulate_inflow_zones(spec: InflowZoneSpec) -> InflowSimulation:
    rng = np.random.default_rng([spec.seed, 1616])
    t0 = pd.Timestamp(spec.start, tz=spec.timezone).tz_convert("UTC")
    zones, meters, sps, reads, levels, truth, gaps = [], [], [], [], [], [], []
    for z in range(spec.zones):
        zone_id = f"DMA-I{z + 1:02d}"
        inlet = f"INL-I{z + 1:02d}"
        tank = spec.tank_every > 0 and (z + 1) % spec.tank_every == 0
        step = int(rng.choice(STEPS))
        properties = int(rng.integers(800, 4000))
        demand = properties * M3_PER_PROPERTY_DAY / 24.0  # m3/h mean
        background = float(rng.uniform(0.10, 0.25)) * demand
        n = spec.days * 86400 // step
        ends = t0 + pd.to_timedelta(np.arange(1, n + 1) * step, unit="s")
        t = (ends - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1) - step / 2  # mid-points, epoch s
        t = np.asarray(t, dtype="float64")
        local = (ends - pd.Timedelta(seconds=step / 2)).tz_convert(spec.timezone)
        hours = local.hour + local.minute / 60.0
        weekend = local.dayofweek >= 5
        day_no = ((t - t[0]) // 86400).astype(int)
        doy = local.dayofyear.to_numpy()
        season = 1.0 + 0.15 * np.sin(2 * np.pi * (doy - 105) / 365.25)
        weather = np.empty(day_no.max() + 1)
        weather[0] = 0.0
        shocks = rng.normal(0, 0.04, len(weather))
        for d in range(1, len(weather)):
            weather[d] = 0.7 * weather[d - 1] + shocks[d]
        hour_no = ((t - t[0]) // 3600).astype(int)
        hourly_noise = rng.normal(0, 0.04, hour_no.max() + 1)[hour_no]
        noise = rng.normal(0, 0.08, n)
        rate = demand * _shape(hours, weekend) * season * np.exp(weather[day_no]) * (1 + hourly_noise + noise)
        mean_inflow = demand + background
        events = _schedule(rng, spec, mean_inflow)
        rate = np.clip(rate, 0, None) + background + _leak_rate(events, t)
        use = rate * step / 3600.0
        zone = {
            "zone_id": zone_id,
            "name": f"Inlet-only DMA {z + 1}",
            "timezone": spec.timezone,
            "bulk_meter_ids": inlet,
            "parent_zone_id": "",
            "zone_class": "dma_tank" if tank else "dma",
            "tank_level_meter_id": "",
            "tank_area_m2": np.nan,
        }
        meters.append(_meter(inlet, step, "m3"))
        volume = use
        if tank:
            area = float(rng.uniform(300, 800))
            pumped, level = _tank(rng, use, step, area)
            volume = pumped
            level_id = f"LVL-I{z + 1:02d}"
            zone["tank_level_meter_id"] = level_id
            zone["tank_area_m2"] = round(area, 1)
            meters.append(_meter(level_id, step, "m", channel="level"))
            levels.append(_frame(level_id, ends, step, np.round(level, 2), "m", "level"))
        keep = np.ones(n, dtype=bool)
        gap_lo = min(spec.warmup_days, spec.days // 4) * 86400 // step
        gap_hi = n - 4 * 86400 // step
        if spec.gaps and gap_hi > gap_lo:
            for hours_long in (1, 6, 24, 72):
                at = int(rng.integers(gap_lo, gap_hi))
                width = hours_long * 3600 // step
                keep[at : at + width] = False
                gaps.append(
                    {
                        "zone_id": zone_id,
                        "start": ends[at] - pd.Timedelta(seconds=step),
                        "end": ends[at + width - 1],
                    }
                )
        reads.append(_frame(inlet, ends[keep], step, np.round(volume[keep], 4), "m3", "water"))
        zones.append(zone)
        sps.append(_service_points(zone_id, properties, spec.timezone))
        for k, ev in enumerate(events):
            truth.append(
                {
                    "event_id": f"{zone_id}-L{k + 1}",
                    "zone_id": zone_id,
                    "kind": ev["kind"],
                    "start": pd.Timestamp(ev["start"], unit="s", tz="UTC"),
                    "end": pd.Timestamp(ev["end"], unit="s", tz="UTC") if ev["end"] else pd.NaT,
                    "rate_m3h": round(ev["rate_m3h"], 4),
                    "share_of_mean_inflow": round(ev["share"], 4),
                    "ramp_days": round(ev["ramp_days"], 2),
                    "mean_inflow_m3h": round(mean_inflow, 4),
                    "tank_fed": tank,
                }
            )
    return InflowSimulation(
        zones=pd.DataFrame(zones),
        meters=pd.DataFrame(meters),
        service_points=pd.concat(sps, ignore_index=True),
        reads=pd.concat(reads, ignore_index=True),
        levels=pd.concat(levels, ignore_index=True)
        if levels
        else _frame("", pd.DatetimeIndex([], tz="UTC"), 0, np.array([]), "m", "level"),
        truth=pd.DataFrame(
            truth,
            columns=[
                "event_id",
                "zone_id",
                "kind",
                "start",
                "end",
                "rate_m3h",
                "share_of_mean_inflow",
                "ramp_days",
                "mean_inflow_m3h",
                "tank_fed",
            ],
        ),
        gaps=pd.DataFrame(gaps, columns=["zone_id", "start", "end"]),
    )


def write_inflow_zones(out_dir: Path, sim: InflowSimulation) -> dict[str, int]:
    """Write the simulation beside a generated utility (or alone): inlet CSVs, CIS rows, truth.

    Inlet reads go to ``headend/inflow/scada-inflow_<zone>_<YYYYMM>.csv`` (generic CSV, m3, one file
    per zone and month); tank levels to ``headend/inflow_levels/`` (same layout, metres). The CIS
    files ``zones``, ``meters``, ``service_points`` and ``meter_installs`` get the zones' rows
    appended (created when absent); ``ground_truth/inflow_events.csv`` and ``inflow_gaps.csv``
    hold the injected leaks and inlet gaps.
    """
    out_dir = Path(out_dir)
    files = 0
    for folder, frame in (("inflow", sim.reads), ("inflow_levels", sim.levels)):
        if frame.empty:
            continue
        (out_dir / "headend" / folder).mkdir(parents=True, exist_ok=True)
        month = frame["interval_end"].dt.strftime("%Y%m")
        text = frame.assign(interval_end=frame["interval_end"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        for (meter, label), part in text.groupby([frame["meter_id"], month], sort=True):
            path = out_dir / "headend" / folder / f"scada-inflow_{meter}_{label}.csv"
            part.to_csv(path, index=False, lineterminator="\n", float_format="%.4f")
            files += 1
    cis = out_dir / "cis"
    cis.mkdir(parents=True, exist_ok=True)
    inlet_sps = pd.DataFrame(
        {
            "service_point_id": "SP-" + sim.meters["meter_id"],
            "commodity": "water",
            "timezone": sim.zones["timezone"].iloc[0],
            "rate_code": "",
            "billing_cycle": "",
            "route": "",
            "zone_id": [_zone_of(m, sim.zones) for m in sim.meters["meter_id"]],
            "customer_class": "network",
            "has_solar": "false",
            "status": "active",
        }
    )
    installs = pd.DataFrame(
        {
            "meter_id": sim.meters["meter_id"],
            "service_point_id": "SP-" + sim.meters["meter_id"],
            "installed_at": "2000-01-01T00:00:00Z",
            "removed_at": "",
            "multiplier": 1.0,
            "start_register": np.nan,
            "end_register": np.nan,
        }
    )
    for name, frame in (
        ("zones", sim.zones),
        ("meters", sim.meters),
        ("service_points", pd.concat([sim.service_points, inlet_sps], ignore_index=True)),
        ("meter_installs", installs),
    ):
        path = cis / f"{name}.csv"
        if path.exists():
            existing = pd.read_csv(path, dtype=str, keep_default_na=False)
            frame = pd.concat([existing, frame.astype(object).where(frame.notna(), "")], ignore_index=True)
        frame = frame.astype(object).where(frame.notna(), "")
        frame.to_csv(path, index=False, lineterminator="\n")
    truth = out_dir / "ground_truth"
    truth.mkdir(parents=True, exist_ok=True)
    iso = {
        "start": lambda f: pd.to_datetime(f["start"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": lambda f: pd.to_datetime(f["end"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    sim.truth.assign(**iso).to_csv(truth / "inflow_events.csv", index=False, lineterminator="\n")
    sim.gaps.assign(**iso).to_csv(truth / "inflow_gaps.csv", index=False, lineterminator="\n")
    return {"zones": len(sim.zones), "files": files, "leaks": len(sim.truth)}


def _zone_of(meter_id: str, zones: pd.DataFrame) -> str:
    hit = zones[(zones["bulk_meter_ids"] == meter_id) | (zones["tank_level_meter_id"] == meter_id)]
    return str(hit["zone_id"].iloc[0]) if len(hit) else ""


def _meter(meter_id: str, step: int, unit: str, channel: str = "water") -> dict:
    return {
        "meter_id": meter_id,
        "kind": "ami",
        "commodity": "water",
        "role": "zone_bulk",
        "channels": channel,
        "unit": unit,
        "interval_seconds": step,
        "multiplier": 1.0,
        "dials": 8,
        "headend": "scada-inflow",
    }


def _frame(
    meter_id: str, ends: pd.DatetimeIndex, step: int, values: np.ndarray, unit: str, channel: str
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "meter_id": meter_id,
            "channel": channel,
            "interval_end": ends,
            "interval_seconds": step,
            "value": values,
            "unit": unit,
            "quality": "",
        }
    )


def _service_points(zone_id: str, properties: int, tz: str) -> pd.DataFrame:
    """The zone's customers (monthly-read premises): service points only, for the property count."""
    ids = [f"SP-{zone_id}-{k:05d}" for k in range(properties)]
    return pd.DataFrame(
        {
            "service_point_id": ids,
            "commodity": "water",
            "timezone": tz,
            "rate_code": "W-RES",
            "billing_cycle": "C01",
            "route": f"R-{zone_id}",
            "zone_id": zone_id,
            "customer_class": "residential",
            "has_solar": "false",
            "status": "active",
        }
    )
