"""The utility configuration: YAML validated at load (pydantic), paths under the data directory.

``SMARTMDM_CONFIG`` points at another YAML file; ``SMARTMDM_DATA_DIR`` moves the data
directory (default ``./data``); ``SMARTMDM_LANDING_DIR`` overrides the landing folder.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from smartmdm_pipelines.adapters.base import SourceConfig
from smartmdm_pipelines.adapters.csv_mapping import CsvMapping
from smartmdm_pipelines.domain.vee.config import VeeConfig
from smartmdm_pipelines.domain.water.inflow_events import InflowParams

DEFAULT_CONFIG = Path(__file__).with_name("default_utility") / "utility.yaml"
MAPPED_CSV = "mapped_csv"


def _valid_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. America/Chicago)") from None
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UtilitySettings(_Strict):
    name: str
    timezone: str
    partitions_start: dt.date = dt.date(2020, 1, 1)
    holidays: str = "NERC"

    _zone = field_validator("timezone")(_valid_zone)


class UnpackSettings(_Strict):
    """Limits on opening compressed deliveries (.zip, .gz): beyond them an archive is a zip bomb."""

    max_members: int = Field(10_000, gt=0)  # files in one .zip
    max_total_mb: int = Field(4096, gt=0)  # bytes written when every member is expanded
    max_ratio: float = Field(100.0, gt=1)  # expanded / compressed bytes of a member, past its first 10 MiB


class LandingSettings(_Strict):
    path: Path = Path("landing")
    archive: Path = Path("archive")
    quarantine: Path = Path("quarantine")
    cis_drop: Path = Path("cis")
    migration: Path = Path("migration")
    unpack: UnpackSettings = Field(default_factory=UnpackSettings)


class SourceSettings(_Strict):
    name: str
    pattern: str
    timezone: str = "UTC"
    format: str | None = None
    default_unit: str | None = None
    csv: CsvMapping | None = None  # a YAML-mapped CSV source (adapters/csv_mapping.py)
    # NEM12 intervals are in NEM time (AEMO: UTC+10 without DST) whatever ``timezone`` says;
    # a source whose NEM12 files follow another fixed-offset zone names it here
    nem12_timezone: str | None = None
    # CSV ``external_id,meter_id`` (relative paths resolve against the config folder): the ids a
    # head-end sends -> CIS meter ids
    meter_map: Path | None = None

    _zone = field_validator("timezone")(_valid_zone)

    @field_validator("nem12_timezone")
    @classmethod
    def _nem12_zone(cls, value: str | None) -> str | None:
        return None if value is None else _valid_zone(value)

    @model_validator(mode="after")
    def _mapped_csv(self) -> SourceSettings:
        """A ``csv:`` block chooses the mapped-CSV adapter; that adapter needs the block."""
        if self.csv is not None and self.format not in (None, MAPPED_CSV):
            raise ValueError(
                f"source {self.name!r}: a csv mapping reads files as {MAPPED_CSV!r}, not {self.format!r}"
            )
        if self.format == MAPPED_CSV and self.csv is None:
            raise ValueError(
                f"source {self.name!r}: format {MAPPED_CSV!r} needs a csv: block (the column mapping)"
            )
        if self.csv is not None:
            self.format = MAPPED_CSV
        return self


class CisSettings(_Strict):
    """Where CIS master data comes from: the CSV drop, or the CIS REST API."""

    source: str = "csv"  # csv | rest
    base_url: str | None = None  # for rest; the token comes from $SMARTMDM_CIS_TOKEN
    page_size: int = 1000
    timeout_seconds: float = 30.0
    retries: int = 3
    export: Path = Path("outbox/cis")  # batch files of billing determinants for the CIS

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if value not in ("csv", "rest"):
            raise ValueError(f"cis.source must be 'csv' or 'rest', not {value!r}")
        return value


class TariffSettings(_Strict):
    """One rate code's tariff: a URDB JSON file plus what URDB cannot say."""

    rate_code: str
    file: Path  # URDB JSON; relative paths resolve against the config folder
    effective_from: dt.date = dt.date(2000, 1, 1)
    holidays: str = "NERC"  # mapped to the weekend schedule: NERC, none, or a holidays country code
    netting: str | None = None  # per_period | per_interval | buy_all_sell_all (default from dgrules)
    demand_method: str = "block"  # block | rolling
    unit: str | None = None  # billing unit when not kWh (e.g. CCF, kgal, therm)


class BillingSettings(_Strict):
    grace_days: int = 3  # the close schedule waits this long after a cycle's read date
    completeness_threshold: float = 0.98  # share of expected intervals present before a close is allowed
    estimated_share_limit: float = 0.10  # above this a determinant set is flagged for review
    tariffs: list[TariffSettings] = Field(default_factory=list)


class InflowClassSettings(_Strict):
    """Inflow-only loss detection parameters of one zone class (``domain.water.inflow_events``)."""

    night_start_hour: int = Field(2, ge=0, le=23)
    night_end_hour: int = Field(4, ge=0, le=23)
    min_step_share: float = Field(0.05, gt=0, lt=1)
    step_z: float = Field(4.0, gt=0)
    min_duration_hours: int = Field(48, ge=1)
    baseline_nights: int = Field(14, ge=3)
    min_history_nights: int = Field(7, ge=3)
    gradual_window_days: int = Field(21, ge=7)
    min_gradual_share: float = Field(0.04, gt=0, lt=1)
    gradual_z: float = Field(3.0, gt=0)
    profile_days: int = Field(21, ge=7)
    lookback_days: int = Field(120, ge=14)
    legitimate_night_use_l_per_property_h: float = Field(1.7, ge=0)
    level_resolution_m: float = Field(0.01, gt=0)
    settle_nights: int = Field(14, ge=0)
    demand_adjust: bool = True

    @model_validator(mode="after")
    def _window(self) -> InflowClassSettings:
        if self.night_start_hour == self.night_end_hour:
            raise ValueError("night_start_hour and night_end_hour must differ")
        return self


class WaterDetectionSettings(_Strict):
    """Per zone class detection parameters; a class names only what differs from ``dma``'s."""

    default_class: str = "dma"
    classes: dict[str, dict] = Field(default_factory=lambda: {"dma": {}})

    @model_validator(mode="after")
    def _classes(self) -> WaterDetectionSettings:
        for name in self.classes:
            self.params_for(name)
        if self.default_class not in self.classes:
            raise ValueError(f"default_class {self.default_class!r} is not one of {sorted(self.classes)}")
        return self

    def params_for(self, zone_class: str | None) -> InflowParams:
        """The parameters of a class (its own fields over the default class's over the defaults)."""
        base = dict(self.classes.get(self.default_class) or {})
        base.update(self.classes.get(zone_class or self.default_class) or {})
        try:
            settings = InflowClassSettings.model_validate(base)
        except Exception as exc:
            raise ValueError(f"water_detection class {zone_class!r}: {exc}") from None
        return InflowParams(**settings.model_dump())


class PullHeadend(_Strict):
    """A head-end that only offers a REST API: the pull connector polls it (services/pull.py)."""

    source: str  # the head-end source name (its deliveries' ``headend_files.source``)
    url: str  # GET endpoint returning pages of reads
    token_env: str | None = None  # the environment variable holding its bearer token
    page_size: int = Field(1000, gt=0)
    timeout_seconds: float = Field(30.0, gt=0)
    retries: int = Field(3, ge=0)
    interval_seconds: int = Field(60, gt=0)  # how often the sensor polls


class RealtimeSettings(_Strict):
    """The real-time service (``smartmdm serve``): HTTP push API, MQTT subscriber, outbox push."""

    host: str = "127.0.0.1"
    port: int = Field(8080, gt=0, lt=65536)
    mqtt_host: str = "127.0.0.1"  # $SMARTMDM_MQTT_HOST overrides; $SMARTMDM_MQTT=off disables
    mqtt_port: int = Field(1883, gt=0, lt=65536)
    push_batch_size: int = Field(1000, gt=0)  # records per POST to the CIS and the portal
    # with more than push_batch_size records pending (a burst's backlog) a POST takes up to this many
    push_max_batch_size: int = Field(10_000, gt=0)
    push_timeout_seconds: float = Field(10.0, gt=0)
    backlog_max_age_seconds: float = Field(300.0, gt=0)  # the outbox asset check fails past this
    pull: list[PullHeadend] = Field(default_factory=list)


class UtilityConfig(_Strict):
    utility: UtilitySettings
    landing: LandingSettings = Field(default_factory=LandingSettings)
    sources: list[SourceSettings] = Field(default_factory=list)
    vee: dict = Field(default_factory=dict)
    cis: CisSettings = Field(default_factory=CisSettings)
    billing: BillingSettings = Field(default_factory=BillingSettings)
    nrw: dict = Field(default_factory=dict)  # domain/water/params.py documents every key
    water_detection: WaterDetectionSettings = Field(default_factory=WaterDetectionSettings)
    realtime: RealtimeSettings = Field(default_factory=RealtimeSettings)
    config_dir: Path = DEFAULT_CONFIG.parent
    data_dir: Path = Path("data")

    def vee_config(self) -> VeeConfig:
        return VeeConfig.from_dict(self.vee)

    def nrw_config(self):
        from smartmdm_pipelines.domain.water.params import NrwConfig

        return NrwConfig.from_dict(self.nrw)

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else (self.data_dir / path).resolve()

    @property
    def landing_dir(self) -> Path:
        override = os.environ.get("SMARTMDM_LANDING_DIR")
        return Path(override).resolve() if override else self.resolve(self.landing.path)

    @property
    def archive_dir(self) -> Path:
        return self.resolve(self.landing.archive)

    @property
    def quarantine_dir(self) -> Path:
        return self.resolve(self.landing.quarantine)

    @property
    def migration_dir(self) -> Path:
        override = os.environ.get("SMARTMDM_MIGRATION_DIR")
        return Path(override).resolve() if override else self.resolve(self.landing.migration)

    @property
    def cis_drop_dir(self) -> Path:
        return self.resolve(self.landing.cis_drop)

    @property
    def cis_export_dir(self) -> Path:
        return self.resolve(self.cis.export)

    def tariff_path(self, tariff: TariffSettings) -> Path:
        return tariff.file if tariff.file.is_absolute() else (self.config_dir / tariff.file).resolve()

    def source_settings_for(self, file_name: str) -> SourceSettings | None:
        """The configured source whose pattern matches the file name, if any."""
        return next((src for src in self.sources if fnmatch.fnmatch(file_name, src.pattern)), None)

    def source_for(self, file_name: str) -> SourceConfig:
        """The configured source whose pattern matches the file name (else the utility default)."""
        src = self.source_settings_for(file_name)
        if src is None:
            return SourceConfig("unknown", self.utility.timezone)
        return SourceConfig(
            src.name,
            src.timezone,
            src.format,
            src.default_unit,
            csv=src.csv,
            nem12_timezone=src.nem12_timezone,
        )

    def meter_map_path(self, source_name: str) -> Path | None:
        """The meter-id map file of a source (None when it has none)."""
        src = next((s for s in self.sources if s.name == source_name), None)
        if src is None or src.meter_map is None:
            return None
        return src.meter_map if src.meter_map.is_absolute() else (self.config_dir / src.meter_map).resolve()


class ConfigError(ValueError):
    """The utility configuration cannot be read or is invalid."""


def load_config(path: Path | str | None = None, data_dir: Path | str | None = None) -> UtilityConfig:
    """Read and validate the utility YAML; a bad file raises with the failing field's path."""
    path = Path(path or os.environ.get("SMARTMDM_CONFIG") or DEFAULT_CONFIG)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"utility config {path} cannot be read: {' '.join(str(exc).split())}") from None
    raw.setdefault("data_dir", str(data_dir or os.environ.get("SMARTMDM_DATA_DIR", "data")))
    raw.setdefault("config_dir", str(path.resolve().parent))
    try:
        cfg = UtilityConfig.model_validate(raw)
        cfg.vee_config()
        cfg.nrw_config()
    except Exception as exc:
        raise ConfigError(f"invalid utility config {path}: {exc}") from exc
    cfg.data_dir = cfg.data_dir.resolve()
    return cfg


@lru_cache(maxsize=1)
def default_config() -> UtilityConfig:
    return load_config()
