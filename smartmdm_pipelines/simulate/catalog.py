"""Fixed vocabularies: meter segments, channel codes, units, qualities, head-ends, event codes.

A *segment* is a kind of meter installation (e.g. residential electric AMI with solar): it fixes
commodity, meter kind, interval length, channels, head-end and load profile. Codes are small
integers so that per-read arrays stay compact; the strings appear only when files are written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHANNELS = ("kwh_delivered", "kwh_received", "kvarh", "water", "gas")
CH_DELIVERED, CH_RECEIVED, CH_KVARH, CH_WATER, CH_GAS = range(5)

UNITS = ("kWh", "kVARh", "gal", "ft3", "CCF", "therm")
U_KWH, U_KVARH, U_GAL, U_FT3, U_CCF, U_THERM = range(6)
GALLONS_PER_UNIT = {U_GAL: 1.0, U_FT3: 7.48052, U_CCF: 748.052}
THERM_PER_UNIT = {U_THERM: 1.0, U_CCF: 1.037}
# The same as lookup arrays by unit code (1.0 for units that are not volumes / gas energy).
GALLONS_LUT = np.array([GALLONS_PER_UNIT.get(u, 1.0) for u in range(len(UNITS))])
THERM_LUT = np.array([THERM_PER_UNIT.get(u, 1.0) for u in range(len(UNITS))])

QUALITIES = ("", "N", "E")
Q_ACTUAL, Q_NO_READ, Q_ESTIMATED = range(3)

EVENT_TYPES = ("outage", "restore", "tamper", "reverse_flow", "clock_set", "meter_exchange", "leak", "other")
# Head-end event codes, kept verbatim by the MDM (IEC 61968-9 style EndDeviceEventType codes).
EVENT_CODES = {
    "outage": "3.26.0.85",
    "restore": "3.26.0.216",
    "tamper": "3.12.0.257",
    "reverse_flow": "3.26.131.219",
    "clock_set": "3.36.114.24",
    "meter_exchange": "3.0.0.242",
    "leak": "8.26.83.79",
    "other": "0.0.0.0",
}

HEADEND_ELECTRIC = "ami-east"
HEADEND_WATER = "ami-water"
HEADEND_GAS = "gas-amr"
HEADEND_HANDHELD = "handheld"
INTERVAL_HEADENDS = (HEADEND_ELECTRIC, HEADEND_WATER, HEADEND_GAS)
# Optional second electric AMI head-end: when ``SimulationSpec.formats`` names it, the electric AMI
# meters of a share of the service points in the utility's own time zone report through it
# (``master_data.Population.headend_of``); otherwise it does not exist and they report to ami-east.
HEADEND_SOUTH = "ami-south"
SOUTH_SHARE = 0.1
HEADENDS = (HEADEND_ELECTRIC, HEADEND_SOUTH, HEADEND_WATER, HEADEND_GAS, HEADEND_HANDHELD)


@dataclass(frozen=True)
class Segment:
    code: int
    name: str
    commodity: str  # electric | water | gas
    kind: str  # manual | amr | ami
    customer_class: str  # residential | commercial (commercial may become industrial)
    step: int  # interval seconds; for manual/amr the internal resolution (not written)
    channels: tuple[int, ...]
    headend: str
    profile: str  # load_shapes profile name

    @property
    def writes_intervals(self) -> bool:
        return self.kind == "ami"


SEGMENTS = (
    Segment(
        0, "elec_res", "electric", "ami", "residential", 900, (CH_DELIVERED,), HEADEND_ELECTRIC, "elec_res"
    ),
    Segment(
        1,
        "elec_res_solar",
        "electric",
        "ami",
        "residential",
        900,
        (CH_DELIVERED, CH_RECEIVED),
        HEADEND_ELECTRIC,
        "elec_res_solar",
    ),
    Segment(
        2,
        "elec_com",
        "electric",
        "ami",
        "commercial",
        3600,
        (CH_DELIVERED, CH_KVARH),
        HEADEND_ELECTRIC,
        "elec_com",
    ),
    Segment(
        3, "elec_amr", "electric", "amr", "residential", 3600, (CH_DELIVERED,), HEADEND_HANDHELD, "elec_res"
    ),
    Segment(
        4,
        "elec_manual_res",
        "electric",
        "manual",
        "residential",
        3600,
        (CH_DELIVERED,),
        HEADEND_HANDHELD,
        "elec_res",
    ),
    Segment(
        5,
        "elec_manual_com",
        "electric",
        "manual",
        "commercial",
        3600,
        (CH_DELIVERED,),
        HEADEND_HANDHELD,
        "elec_com",
    ),
    Segment(6, "water_res", "water", "ami", "residential", 3600, (CH_WATER,), HEADEND_WATER, "water_res"),
    Segment(7, "water_com", "water", "ami", "commercial", 3600, (CH_WATER,), HEADEND_WATER, "water_com"),
    Segment(8, "water_bulk", "water", "ami", "industrial", 3600, (CH_WATER,), HEADEND_WATER, "water_bulk"),
    Segment(9, "gas_res", "gas", "ami", "residential", 86400, (CH_GAS,), HEADEND_GAS, "gas_res"),
    Segment(10, "gas_com", "gas", "ami", "commercial", 86400, (CH_GAS,), HEADEND_GAS, "gas_com"),
)
(
    SEG_ELEC_RES,
    SEG_ELEC_SOLAR,
    SEG_ELEC_COM,
    SEG_ELEC_AMR,
    SEG_MANUAL_RES,
    SEG_MANUAL_COM,
    SEG_WATER_RES,
    SEG_WATER_COM,
    SEG_WATER_BULK,
    SEG_GAS_RES,
    SEG_GAS_COM,
) = range(11)

ELECTRIC_AMI = (SEG_ELEC_RES, SEG_ELEC_SOLAR, SEG_ELEC_COM)
REGISTER_ONLY = (SEG_ELEC_AMR, SEG_MANUAL_RES, SEG_MANUAL_COM)
WATER_CUSTOMER = (SEG_WATER_RES, SEG_WATER_COM)
GAS = (SEG_GAS_RES, SEG_GAS_COM)
INTERVAL_CUSTOMER = ELECTRIC_AMI + WATER_CUSTOMER + GAS

# Share of customer meters per segment (the remainder of rounding goes to elec_res) and minimum
# counts so that even a 100-meter utility has every kind and every fault is possible.
SEGMENT_SHARE = {
    SEG_ELEC_RES: 0.54,
    SEG_ELEC_SOLAR: 0.06,
    SEG_ELEC_COM: 0.05,
    SEG_ELEC_AMR: 0.08,
    SEG_MANUAL_RES: 0.03,
    SEG_MANUAL_COM: 0.01,
    SEG_WATER_RES: 0.19,
    SEG_WATER_COM: 0.01,
    SEG_GAS_RES: 0.025,
    SEG_GAS_COM: 0.005,
}
SEGMENT_MIN = {
    SEG_ELEC_RES: 20,
    SEG_ELEC_SOLAR: 2,
    SEG_ELEC_COM: 3,
    SEG_ELEC_AMR: 2,
    SEG_MANUAL_RES: 1,
    SEG_MANUAL_COM: 1,
    SEG_WATER_RES: 8,
    SEG_WATER_COM: 1,
    SEG_GAS_RES: 1,
    SEG_GAS_COM: 1,
}
