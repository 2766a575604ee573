"""What to generate (``SimulationSpec``) and what was generated (``GenerationSummary``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

MIN_METERS = 50

# Head-end -> format presets for ``SimulationSpec(formats=...)`` (``smartmdm generate --formats mix``).
# "mix": every supported format at once. ami-east delivers CMEP (its kwh_received and events go to
# generic CSV files of the same delivery), ami-south (a share of the electric AMI meters) NEM12,
# ami-water BEACON-style CSV, gas-amr Green Button; handheld keeps ``output_format``.
FORMAT_PRESETS: dict[str, dict[str, str]] = {
    "mix": {
        "ami-east": "cmep",
        "ami-south": "nem12",
        "ami-water": "beacon_csv",
        "gas-amr": "green_button",
    },
}


# Formats whose files are cut on the days of a fixed zone rather than the utility's operating days:
# a NEM12 file holds whole NEM days (AEMO: NEM time, AEST, UTC+10 without DST), so a NEM12 head-end
# delivers each NEM day in a file of its own, labelled with the NEM date.
DELIVERY_ZONES: dict[str, str] = {"nem12": "Etc/GMT-10"}


@dataclass(frozen=True)
class SimulationSpec:
    """A synthetic utility: size, window and seed. Same spec -> byte-identical output.

    ``meters`` is the total number of meters in ``cis/meters.csv`` (customer meters, zone bulk
    meters and the replacement meters of injected meter exchanges). The window is ``days`` local
    days from ``start`` in ``timezone`` (the utility's zone; a few service points use another).
    ``chunk_meters`` bounds memory: meters are generated and written in chunks of that many.
    ``truth_values`` also writes the clean (pre-fault) interval values to
    ``ground_truth/truth_intervals.parquet``. ``output_format`` names a head-end writer
    (see ``smartmdm_pipelines.simulate.writers``); ``formats`` maps head-end names to writers
    (or names a preset of ``FORMAT_PRESETS``, e.g. ``"mix"``) and ``output_format`` serves the
    head-ends it does not map. Mapping ``ami-south`` creates that head-end (``catalog.HEADEND_SOUTH``).
    When any head-end is not generic CSV, what its format cannot carry is delivered in generic
    CSV files of the same head-end (``writers.mixed``), so nothing is lost.
    """

    meters: int = 500
    start: dt.date = dt.date(2024, 3, 8)
    days: int = 7
    seed: int = 42
    timezone: str = "America/Chicago"
    chunk_meters: int = 20_000
    faults: bool = True
    truth_values: bool = True
    holiday_country: str = "US"
    output_format: str = "generic_csv"
    formats: dict[str, str] | None = field(default=None, hash=False)
    theft_rate: float = 0.0  # share of meters per extra theft kind (simulate/theft.py); 0 = none
    inflow_zones: int = 0  # extra DMAs metered only at their inlet (simulate/inflow_zones.py)

    def __post_init__(self) -> None:
        from .catalog import HEADENDS
        from .writers import REGISTRY

        if isinstance(self.formats, str):
            if self.formats not in FORMAT_PRESETS:
                raise ValueError(f"unknown formats preset {self.formats!r}; known: {sorted(FORMAT_PRESETS)}")
            object.__setattr__(self, "formats", dict(FORMAT_PRESETS[self.formats]))
        elif self.formats is not None:
            object.__setattr__(self, "formats", dict(self.formats))
        for name in [self.output_format, *(self.formats or {}).values()]:
            if name not in REGISTRY:
                raise ValueError(f"unknown head-end format {name!r}; known: {sorted(REGISTRY)}")
        unknown = sorted(set(self.formats or {}) - set(HEADENDS))
        if unknown:
            raise ValueError(f"unknown head-end(s) {unknown} in formats; known: {list(HEADENDS)}")
        if self.meters < MIN_METERS:
            raise ValueError(f"meters must be >= {MIN_METERS} (got {self.meters})")
        if self.days < 1:
            raise ValueError(f"days must be >= 1 (got {self.days})")
        if not 0.0 <= self.theft_rate <= 0.2:
            raise ValueError(f"theft_rate must be within [0, 0.2] (got {self.theft_rate})")
        if not 0 <= self.inflow_zones <= 99:
            raise ValueError(f"inflow_zones must be within [0, 99] (got {self.inflow_zones})")
        if self.chunk_meters < 1:
            raise ValueError(f"chunk_meters must be >= 1 (got {self.chunk_meters})")
        if not 0 <= self.seed < 2**63:
            raise ValueError("seed must be in [0, 2**63)")
        if isinstance(self.start, dt.datetime) or not isinstance(self.start, dt.date):
            raise TypeError("start must be a datetime.date")
        try:
            ZoneInfo(self.timezone)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r}") from exc

    def format_of(self, headend: str) -> str:
        """The format head-end ``headend`` delivers in."""
        return (self.formats or {}).get(headend, self.output_format)

    def delivery_zone(self, headend: str) -> str | None:
        """The zone whose days cut the head-end's interval files, when not the utility's."""
        return DELIVERY_ZONES.get(self.format_of(headend))

    @property
    def south(self) -> bool:
        """Whether the optional ``ami-south`` head-end exists (``formats`` maps it)."""
        return "ami-south" in (self.formats or {})

    @property
    def end(self) -> dt.date:
        """The first local day after the window."""
        return self.start + dt.timedelta(days=self.days)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["start"] = self.start.isoformat()
        if not self.theft_rate:  # the manifest of a utility without the option stays as it was
            del d["theft_rate"]
        if not self.inflow_zones:
            del d["inflow_zones"]
        return d


@dataclass
class GenerationSummary:
    """Counts of what ``generate`` wrote. ``files`` are the head-end files, relative to out_dir."""

    meters: int = 0
    meters_by_kind: dict[str, int] = field(default_factory=dict)
    service_points: int = 0
    accounts: int = 0
    zones: int = 0
    interval_reads: int = 0  # rows in interval-format head-end files (incl. re-deliveries and the duplicate)
    register_reads: int = 0
    events: int = 0
    files: list[str] = field(default_factory=list)
    file_formats: dict[str, str] = field(default_factory=dict)  # file -> writer format that wrote it
    faults: int = 0
    faults_by_type: dict[str, int] = field(default_factory=dict)
    truth_reads: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
