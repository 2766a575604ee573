"""The utility's master data (meters, service points, accounts, zones, billing cycles) as arrays.

Built once for the whole population, vectorised, from ``numpy.random.Generator`` seeded by the
spec's seed: master data is small (one row per meter) even for a million meters. Everything a
chunk of meters needs to produce its reads (segment, time zone, load parameters, install
window, register start) is looked up here by meter index, so a meter's reads never depend on
which other meters are in its chunk.

Index layout: customer meters ``[0, n_customer)`` each with its own service point (same
index), then the replacement meters of meter exchanges (service point of the meter they
replace, assigned by the fault plan), then one bulk meter per water zone (service point
``n_customer + zone``). Inactive service points (no meter) come last.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import holidays
import numpy as np

from . import catalog as c
from . import noise
from .spec import SimulationSpec
from .time_grid import DAY, local_midnights_utc

NO_END = np.iinfo(np.int64).max  # "never removed / never vacated"
N_CYCLES = 20
SOUTH_STREAM = 9  # noise stream of the ami-south draw (generate.py uses 8 for handheld read times)

_FIRST_NAMES = np.array(
    [
        "James",
        "Mary",
        "Robert",
        "Patricia",
        "John",
        "Jennifer",
        "Michael",
        "Linda",
        "David",
        "Elizabeth",
        "William",
        "Barbara",
        "Richard",
        "Susan",
        "Joseph",
        "Jessica",
        "Thomas",
        "Sarah",
        "Carlos",
        "Karen",
        "Daniel",
        "Lisa",
        "Matthew",
        "Nancy",
        "Anthony",
        "Betty",
        "Mark",
        "Sandra",
        "Wei",
        "Ashley",
        "Steven",
        "Emily",
        "Andrew",
        "Kimberly",
        "Jose",
        "Donna",
        "Kevin",
        "Michelle",
        "Brian",
        "Carol",
        "Priya",
        "Amanda",
        "Luis",
        "Melissa",
    ]
)
_LAST_NAMES = np.array(
    [
        "Smith",
        "Johnson",
        "Williams",
        "Brown",
        "Jones",
        "Garcia",
        "Miller",
        "Davis",
        "Rodriguez",
        "Martinez",
        "Hernandez",
        "Lopez",
        "Gonzalez",
        "Wilson",
        "Anderson",
        "Thomas",
        "Taylor",
        "Moore",
        "Jackson",
        "Martin",
        "Lee",
        "Perez",
        "Thompson",
        "White",
        "Harris",
        "Sanchez",
        "Clark",
        "Ramirez",
        "Lewis",
        "Robinson",
        "Walker",
        "Young",
        "Allen",
        "King",
        "Wright",
        "Scott",
        "Torres",
        "Nguyen",
        "Hill",
        "Flores",
        "Green",
        "Adams",
        "Nelson",
        "Baker",
        "Hall",
        "Rivera",
        "Campbell",
        "Mitchell",
        "Carter",
        "Roberts",
        "Patel",
        "Kowalski",
    ]
)
_BUSINESS_SUFFIXES = np.array(
    [
        "Bakery",
        "Hardware",
        "Dental",
        "Auto Repair",
        "Market",
        "Holdings, LLC",
        "& Sons",
        "Logistics",
        "Cafe",
        "Machine Works",
        "Laundromat",
        "Family Clinic",
    ]
)
_ZONE_NAMES = (
    "North Hills",
    "Lakeside",
    "Riverside",
    "Oak Park",
    "Airport",
    "Eastgate",
    "Westfield",
    "Central",
    "Southside",
    "Fairview",
    "Highland",
    "Meadowbrook",
    "Cedar Grove",
    "Maple Heights",
    "Pinecrest",
    "Brookside",
    "Sunset Valley",
    "Old Town",
    "Harbor Point",
)


@dataclass
class Population:
    """Master data of the synthetic utility. Per-meter arrays have length ``n_meters``, per
    service point arrays length ``n_sp``. Epochs are int64 UTC seconds."""

    spec: SimulationSpec
    timezones: tuple[str, ...]
    # meters
    meter_id: np.ndarray
    meter_segment: np.ndarray
    meter_sp: np.ndarray
    meter_unit: np.ndarray
    multiplier: np.ndarray
    dials: np.ndarray
    installed_at: np.ndarray
    removed_at: np.ndarray
    start_register: np.ndarray
    register_u: np.ndarray  # U[0,1) used to place the register at the window start
    n_customer: int
    n_replacement: int
    n_bulk: int
    # service points
    sp_id: np.ndarray
    sp_segment: np.ndarray  # -1 for inactive service points without a meter
    sp_tz: np.ndarray  # index into ``timezones``
    sp_cycle: np.ndarray
    sp_route: np.ndarray
    sp_zone: np.ndarray  # -1 unless water in a zone
    sp_class: np.ndarray  # customer class strings
    sp_rate: np.ndarray
    sp_status: np.ndarray
    sp_solar: np.ndarray
    # load parameters per service point (meaning depends on the segment, see load_shapes)
    p_scale: np.ndarray
    p_shift: np.ndarray
    p_heat: np.ndarray
    p_cool: np.ndarray
    p_extra: np.ndarray
    vacant_at: np.ndarray  # epoch from which the premise is vacant (NO_END if never)
    # accounts (one row per account)
    acct_id: np.ndarray
    acct_sp: np.ndarray
    acct_name: np.ndarray
    acct_move_in: np.ndarray  # datetime64[D]
    acct_move_out: np.ndarray  # datetime64[D], NaT if none
    # zones
    zone_id: np.ndarray
    zone_name: np.ndarray
    zone_bulk_meter: np.ndarray  # meter index of each zone's bulk meter
    # billing cycles: cycle index -> sorted read dates (covering the window with a margin)
    cycle_read_dates: list[list[dt.date]]
    # changes made by the fault plan, completed during generation
    multiplier_changes: dict[int, dict] = field(default_factory=dict)  # meter -> {at, old, new, register}
    end_registers: dict[int, float] = field(default_factory=dict)  # meter -> register at removal
    # service points whose electric AMI meters report through ami-south (all False without it)
    sp_south: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @property
    def n_meters(self) -> int:
        return len(self.meter_id)

    @property
    def n_sp(self) -> int:
        return len(self.sp_id)

    @property
    def n_regular(self) -> int:
        """Meters generated in the regular chunks (all but the zone bulk meters)."""
        return self.n_customer + self.n_replacement

    def meter_tz(self, meters: np.ndarray) -> np.ndarray:
        return self.sp_tz[self.meter_sp[meters]]

    def bulk_meters(self) -> np.ndarray:
        return np.arange(self.n_regular, self.n_meters)

    def south(self, meters: np.ndarray) -> np.ndarray:
        """Whether each meter reports through ami-south (its service point is a south one)."""
        if not len(self.sp_south):
            return np.zeros(len(meters), dtype=bool)
        return self.sp_south[self.meter_sp[meters]] & np.isin(self.meter_segment[meters], c.ELECTRIC_AMI)

    def headend_of(self, meter: int) -> str:
        """The head-end that reads ``meter``."""
        if self.south(np.array([meter]))[0]:
            return c.HEADEND_SOUTH
        return c.SEGMENTS[self.meter_segment[meter]].headend


def segment_counts(n_customer: int) -> dict[int, int]:
    """Customer meters per segment: the shares, with minimums, the remainder to elec_res."""
    counts = {s: max(c.SEGMENT_MIN[s], int(share * n_customer)) for s, share in c.SEGMENT_SHARE.items()}
    counts[c.SEG_ELEC_RES] += n_customer - sum(counts.values())
    if counts[c.SEG_ELEC_RES] < c.SEGMENT_MIN[c.SEG_ELEC_RES]:
        raise ValueError(f"too few meters for the segment minimums ({n_customer} customer meters)")
    return counts


def zone_count(n_water_customers: int) -> int:
    return max(3, round(n_water_customers / 4000))


def _cycle_read_dates(spec: SimulationSpec) -> list[list[dt.date]]:
    """Read date of cycle k in a month = its (k+1)-th business day; months around the window."""
    first = dt.date(spec.start.year, spec.start.month, 1)
    months = []
    y, m = first.year, first.month - 1
    if m == 0:
        y, m = y - 1, 12
    last = spec.end + dt.timedelta(days=40)
    while dt.date(y, m, 1) <= last:
        months.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    hol = holidays.country_holidays(spec.holiday_country, years=range(months[0][0], months[-1][0] + 1))
    out: list[list[dt.date]] = [[] for _ in range(N_CYCLES)]
    for y, m in months:
        day = dt.date(y, m, 1)
        business: list[dt.date] = []
        while day.month == m and len(business) < N_CYCLES:
            if day.weekday() < 5 and day not in hol:
                business.append(day)
            day += dt.timedelta(days=1)
        for k, d in enumerate(business):
            out[k].append(d)
    return out


def _pick(rng: np.random.Generator, choices, p, n: int) -> np.ndarray:
    return rng.choice(np.asarray(choices), size=n, p=np.asarray(p, dtype=float))


def build_population(spec: SimulationSpec, n_replacement: int, n_vacant_min: int) -> Population:
    """Draw the whole utility's master data from the seed.

    ``n_replacement`` meters are reserved for meter exchanges; ``n_vacant_min`` residential
    electric AMI premises are vacated (move-out without successor) inside the window.
    """
    rng = np.random.default_rng([spec.seed, 1])
    alt_tz = "America/Denver" if spec.timezone != "America/Denver" else "America/Chicago"
    timezones = (spec.timezone, alt_tz)

    n_customer_guess = spec.meters - n_replacement - 3
    counts = segment_counts(n_customer_guess)
    water_customers = counts[c.SEG_WATER_RES] + counts[c.SEG_WATER_COM]
    n_bulk = zone_count(water_customers)
    n_customer = spec.meters - n_replacement - n_bulk
    counts = segment_counts(n_customer)
    n_meters = spec.meters

    # --- customer meters: shuffled segments --------------------------------------------------
    seg_customer = np.concatenate([np.full(n, s, dtype=np.int8) for s, n in sorted(counts.items())])
    seg_customer = seg_customer[rng.permutation(n_customer)]
    meter_segment = np.concatenate(
        [
            seg_customer,
            np.full(n_replacement, c.SEG_ELEC_RES, dtype=np.int8),
            np.full(n_bulk, c.SEG_WATER_BULK, dtype=np.int8),
        ]
    )
    n_inactive = max(1, round(0.003 * n_customer))
    n_sp = n_customer + n_bulk + n_inactive
    meter_sp = np.concatenate(
        [
            np.arange(n_customer, dtype=np.int32),
            np.full(n_replacement, -1, dtype=np.int32),  # set by the fault plan
            np.arange(n_customer, n_customer + n_bulk, dtype=np.int32),
        ]
    )
    commodity_prefix = np.array([c.SEGMENTS[s].commodity[0].upper() for s in range(len(c.SEGMENTS))])
    meter_id = np.char.add(
        commodity_prefix[meter_segment], np.char.zfill(np.arange(1, n_meters + 1).astype(str), 7)
    )

    # --- units, multipliers, dials -----------------------------------------------------------
    meter_unit = np.full(n_meters, c.U_KWH, dtype=np.int8)
    multiplier = np.ones(n_meters)
    dials = np.full(n_meters, 5, dtype=np.int8)
    seg = meter_segment

    def where(*segments: int) -> np.ndarray:
        return np.nonzero(np.isin(seg, segments))[0]

    res_e = where(c.SEG_ELEC_RES, c.SEG_ELEC_SOLAR, c.SEG_ELEC_AMR, c.SEG_MANUAL_RES)
    dials[res_e] = _pick(rng, [5, 6], [0.8, 0.2], len(res_e))
    com_e = where(c.SEG_ELEC_COM)
    multiplier[com_e] = _pick(rng, [1.0, 40.0, 80.0], [0.5, 0.3, 0.2], len(com_e))
    multiplier[com_e[0]] = 40.0  # at least one CT-metered commercial meter (multiplier_change)
    dials[com_e] = 6
    man_c = where(c.SEG_MANUAL_COM)
    multiplier[man_c] = _pick(rng, [1.0, 40.0], [0.7, 0.3], len(man_c))
    dials[man_c] = 6
    w = where(c.SEG_WATER_RES)
    meter_unit[w] = _pick(rng, [c.U_GAL, c.U_FT3, c.U_CCF], [0.85, 0.10, 0.05], len(w))
    w = where(c.SEG_WATER_COM)
    meter_unit[w] = _pick(rng, [c.U_GAL, c.U_FT3, c.U_CCF], [0.6, 0.2, 0.2], len(w))
    w = where(c.SEG_WATER_RES, c.SEG_WATER_COM, c.SEG_WATER_BULK)
    dials[w] = 6
    meter_unit[where(c.SEG_WATER_BULK)] = c.U_GAL
    dials[where(c.SEG_WATER_BULK)] = 8
    g = where(c.SEG_GAS_RES, c.SEG_GAS_COM)
    meter_unit[g] = _pick(rng, [c.U_THERM, c.U_CCF], [0.7, 0.3], len(g))

    # --- installs -----------------------------------------------------------------------------
    window_start = int(local_midnights_utc(spec.timezone, spec.start, 1)[0])
    installed_at = window_start - rng.integers(60 * DAY, 3650 * DAY, n_meters) // 60 * 60
    removed_at = np.full(n_meters, NO_END, dtype=np.int64)
    start_register = np.round(rng.uniform(0.0, 0.05, n_meters) * 10.0 ** dials.astype(np.int64), 1)
    register_u = rng.uniform(0.0, 1.0, n_meters)
    start_register[n_customer : n_customer + n_replacement] = np.round(rng.uniform(0, 3, n_replacement), 1)

    # --- service points -----------------------------------------------------------------------
    sp_segment = np.concatenate(
        [seg_customer, np.full(n_bulk, c.SEG_WATER_BULK), np.full(n_inactive, -1)]
    ).astype(np.int8)
    sp_tz = np.zeros(n_sp, dtype=np.int8)
    elec_res_sp = np.nonzero(sp_segment == c.SEG_ELEC_RES)[0]
    electric_sp = np.nonzero(np.isin(sp_segment, c.ELECTRIC_AMI + c.REGISTER_ONLY))[0]
    alt = rng.random(len(electric_sp)) < 0.02
    sp_tz[electric_sp[alt]] = 1
    sp_tz[elec_res_sp[:2]] = 1  # always a few in the other zone
    sp_cycle = rng.integers(0, N_CYCLES, n_sp).astype(np.int8)
    route_no = rng.integers(1, 9, n_sp)
    sp_route = np.char.add(
        np.char.add(np.char.add("C", np.char.zfill((sp_cycle + 1).astype(str), 2)), "-R"),
        np.char.zfill(route_no.astype(str), 2),
    )

    # zones: water customers spread over zones of unequal size, every zone non-empty
    sp_zone = np.full(n_sp, -1, dtype=np.int16)
    water_sp = np.nonzero(np.isin(sp_segment, c.WATER_CUSTOMER))[0]
    weights = rng.uniform(0.5, 1.5, n_bulk)
    zone_of = rng.choice(n_bulk, size=len(water_sp), p=weights / weights.sum())
    zone_of[:n_bulk] = np.arange(n_bulk)
    sp_zone[water_sp] = zone_of
    sp_zone[n_customer : n_customer + n_bulk] = np.arange(n_bulk)

    seg_class = np.array([s.customer_class for s in c.SEGMENTS] + ["residential"])
    sp_class = seg_class[sp_segment].astype(object)
    customer_multiplier = np.ones(n_sp)
    customer_multiplier[:n_customer] = multiplier[:n_customer]
    sp_class[(sp_segment == c.SEG_ELEC_COM) & (customer_multiplier == 80.0)] = "industrial"
    sp_class = sp_class.astype(str)
    seg_rate = np.array(
        [
            "E-RES",
            "E-RES-NEM",
            "E-GS",
            "E-RES",
            "E-RES",
            "E-GS",
            "W-RES",
            "W-COM",
            "W-DMA",
            "G-RES",
            "G-COM",
            "E-RES",
        ]
    )
    sp_rate = seg_rate[sp_segment].astype(object)
    sp_rate[(sp_segment == c.SEG_ELEC_COM) & (customer_multiplier > 1)] = "E-LGS"
    sp_rate = sp_rate.astype(str)
    sp_status = np.where(sp_segment >= 0, "active", "inactive")
    sp_solar = sp_segment == c.SEG_ELEC_SOLAR
    sp_id = np.char.add("SP", np.char.zfill(np.arange(1, n_sp + 1).astype(str), 7))

    # --- load parameters ------------------------------------------------------------------------
    p_scale = np.zeros(n_sp)
    p_shift = rng.uniform(-1.0, 1.0, n_sp)
    p_heat = rng.uniform(0.2, 0.9, n_sp)
    p_cool = rng.uniform(0.3, 1.2, n_sp)
    p_extra = np.zeros(n_sp)
    lognormal = rng.lognormal(0.0, 1.0, n_sp)  # one standard draw, scaled per segment below

    def sp_where(*segments: int) -> np.ndarray:
        return np.nonzero(np.isin(sp_segment, segments))[0]

    i = sp_where(c.SEG_ELEC_RES, c.SEG_ELEC_SOLAR, c.SEG_ELEC_AMR, c.SEG_MANUAL_RES)
    p_scale[i] = 26.0 * lognormal[i] ** 0.35  # kWh/day
    i = sp_where(c.SEG_ELEC_SOLAR)
    p_extra[i] = rng.uniform(3.0, 9.0, len(i))  # PV kW peak
    i = sp_where(c.SEG_ELEC_COM)
    p_scale[i] = 600.0 * lognormal[i] ** 0.9 * np.where(customer_multiplier[i] == 80.0, 3.0, 1.0)
    p_extra[i] = rng.uniform(0.25, 0.6, len(i))  # tan(phi) for kvarh
    i = sp_where(c.SEG_MANUAL_COM)
    p_scale[i] = 300.0 * lognormal[i] ** 0.6
    i = sp_where(c.SEG_WATER_RES)
    p_scale[i] = 230.0 * lognormal[i] ** 0.35  # gal/day
    i = sp_where(c.SEG_WATER_COM)
    p_scale[i] = 1500.0 * lognormal[i] ** 0.8
    i = sp_where(c.SEG_WATER_BULK)
    p_scale[i] = rng.uniform(1.5, 4.0, len(i))  # background leakage, gal/h per customer
    i = sp_where(c.SEG_GAS_RES, c.SEG_GAS_COM)
    p_scale[i] = rng.uniform(0.12, 0.25, len(i)) * np.where(
        sp_segment[i] == c.SEG_GAS_COM, 10.0, 1.0
    )  # therm/HDD
    p_extra[i] = rng.uniform(0.3, 1.2, len(i)) * np.where(sp_segment[i] == c.SEG_GAS_COM, 10.0, 1.0)  # base

    # --- accounts, move-outs ------------------------------------------------------------------
    start64 = np.datetime64(spec.start, "D")
    active_sp = np.arange(n_customer)
    move_in = start64 - rng.integers(20, 4000, n_sp).astype("timedelta64[D]")
    move_out = np.full(n_sp, np.datetime64("NaT"), dtype="datetime64[D]")
    n_moves = max(n_vacant_min + 3, round(0.01 * n_customer))
    last_move_day = max(0, spec.days - 2)
    forced = rng.choice(elec_res_sp, size=min(len(elec_res_sp), n_vacant_min), replace=False)
    rest_pool = np.setdiff1d(active_sp, forced)
    others = rng.choice(rest_pool, size=min(len(rest_pool), n_moves - len(forced)), replace=False)
    movers = np.concatenate([forced, others])
    vacant = np.concatenate([np.ones(len(forced), bool), rng.random(len(others)) < 0.5])
    move_day = rng.integers(0, last_move_day + 1, len(movers))
    move_out[movers] = start64 + move_day.astype("timedelta64[D]")
    vacant_at = np.full(n_sp, NO_END, dtype=np.int64)
    for tz_index, tz in enumerate(timezones):
        bounds = local_midnights_utc(tz, spec.start, spec.days)
        sel = vacant & (sp_tz[movers] == tz_index)
        vacant_at[movers[sel]] = bounds[np.minimum(move_day[sel] + 1, spec.days)]
    successors = movers[~vacant]
    inactive_sp = np.arange(n_customer + n_bulk, n_sp)
    move_out[inactive_sp] = start64 - rng.integers(1, 300, n_inactive).astype("timedelta64[D]")
    move_in[inactive_sp] = move_out[inactive_sp] - rng.integers(200, 3000, n_inactive).astype(
        "timedelta64[D]"
    )

    acct_sp = np.concatenate([active_sp, inactive_sp, successors]).astype(np.int32)
    acct_move_in = np.concatenate(
        [move_in[active_sp], move_in[inactive_sp], move_out[successors] + np.timedelta64(1, "D")]
    )
    acct_move_out = np.concatenate(
        [
            move_out[active_sp],
            move_out[inactive_sp],
            np.full(len(successors), np.datetime64("NaT"), "datetime64[D]"),
        ]
    )
    order = np.lexsort((acct_move_in, acct_sp))
    acct_sp, acct_move_in, acct_move_out = acct_sp[order], acct_move_in[order], acct_move_out[order]
    n_acct = len(acct_sp)
    acct_id = np.char.add("AC", np.char.zfill(np.arange(1, n_acct + 1).astype(str), 7))
    person = np.char.add(
        np.char.add(_FIRST_NAMES[rng.integers(0, len(_FIRST_NAMES), n_acct)], " "),
        _LAST_NAMES[rng.integers(0, len(_LAST_NAMES), n_acct)],
    )
    business = np.char.add(
        np.char.add(_LAST_NAMES[rng.integers(0, len(_LAST_NAMES), n_acct)], " "),
        _BUSINESS_SUFFIXES[rng.integers(0, len(_BUSINESS_SUFFIXES), n_acct)],
    )
    acct_name = np.where(sp_class[acct_sp] == "residential", person, business)

    # --- zones ------------------------------------------------------------------------------------
    zone_id = np.char.add("Z", np.char.zfill(np.arange(1, n_bulk + 1).astype(str), 2))
    zone_name = np.array(
        [f"DMA {k + 1:02d} {_ZONE_NAMES[k % len(_ZONE_NAMES)]}" for k in range(n_bulk)], dtype=str
    )
    zone_bulk_meter = np.arange(n_customer + n_replacement, n_meters)

    return Population(
        spec=spec,
        timezones=timezones,
        meter_id=meter_id,
        meter_segment=meter_segment,
        meter_sp=meter_sp,
        meter_unit=meter_unit,
        multiplier=multiplier,
        dials=dials,
        installed_at=installed_at.astype(np.int64),
        removed_at=removed_at,
        start_register=start_register,
        register_u=register_u,
        n_customer=n_customer,
        n_replacement=n_replacement,
        n_bulk=n_bulk,
        sp_id=sp_id,
        sp_segment=sp_segment,
        sp_tz=sp_tz,
        sp_cycle=sp_cycle,
        sp_route=sp_route,
        sp_zone=sp_zone,
        sp_class=sp_class,
        sp_rate=sp_rate,
        sp_status=sp_status,
        sp_solar=sp_solar,
        p_scale=p_scale,
        p_shift=p_shift,
        p_heat=p_heat,
        p_cool=p_cool,
        p_extra=p_extra,
        vacant_at=vacant_at,
        acct_id=acct_id,
        acct_sp=acct_sp,
        acct_name=acct_name,
        acct_move_in=acct_move_in,
        acct_move_out=acct_move_out,
        zone_id=zone_id,
        zone_name=zone_name,
        zone_bulk_meter=zone_bulk_meter,
        cycle_read_dates=_cycle_read_dates(spec),
        sp_south=_south_service_points(spec, sp_segment, sp_tz),
    )


def _south_service_points(spec: SimulationSpec, sp_segment: np.ndarray, sp_tz: np.ndarray) -> np.ndarray:
    """``catalog.SOUTH_SHARE`` of the electric AMI service points in the utility's zone (at least 2),
    by a hash of (seed, service point): the ami-south territory. Empty without ami-south."""
    if not spec.south:
        return np.zeros(0, dtype=bool)
    candidates = np.nonzero(np.isin(sp_segment, c.ELECTRIC_AMI) & (sp_tz == 0))[0]
    n = min(len(candidates), max(2, round(c.SOUTH_SHARE * len(candidates))))
    draw = noise.uniform(spec.seed, SOUTH_STREAM, candidates.astype(np.int64), np.zeros(1, dtype=np.int64))
    south = np.zeros(len(sp_segment), dtype=bool)
    south[candidates[np.argsort(draw, kind="stable")[:n]]] = True
    return south
