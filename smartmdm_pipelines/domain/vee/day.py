"""The shapes of one operating day's VEE: what it reads (``DayInputs``), what it returns
(``DayResult``), the exception row layout and its stable ids, shared by validation
(validation.py, day_rules.py) and estimation (estimate.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

import pandas as pd

from smartmdm_pipelines.domain.vee.config import VeeConfig
from smartmdm_pipelines.domain.vee.keys import Catalog

CHANNEL_UNITS = {
    "kwh_delivered": "kWh",
    "kwh_received": "kWh",
    "kwh_net": "kWh",
    "kvarh": "kVARh",
    "kvarh_received": "kVARh",
    "water": "gal",
}
EXCEPTION_COLUMNS = [
    "exception_id",
    "meter_id",
    "channel",
    "read_day",
    "period_start",
    "period_end",
    "rule",
    "severity",
    "intervals",
    "detail",
]
STATUSES = ["valid", "suspect", "missing", "estimated"]


@dataclass
class DayInputs:
    """Everything VEE needs for one operating day (frames as read from the store)."""

    day: dt.date
    tz: str
    # raw reads touching the day: meter_id, channel, interval_end, interval_seconds, value,
    # source_quality, file_id, line
    reads: pd.DataFrame
    # meter_id, kind, commodity, channels, interval_seconds, unit, multiplier, dials
    meters: pd.DataFrame
    # meter_id, service_point_id, installed_at, removed_at, multiplier, start_register, end_register
    installs: pd.DataFrame = field(default_factory=pd.DataFrame)
    # service_point_id, status, customer_class, has_solar
    service_points: pd.DataFrame = field(default_factory=pd.DataFrame)
    # service_point_id, move_in, move_out
    accounts: pd.DataFrame = field(default_factory=pd.DataFrame)
    # meter_id, event_at, event_type
    events: pd.DataFrame = field(default_factory=pd.DataFrame)
    # meter_id, channel, read_at, value (dial units)
    registers: pd.DataFrame = field(default_factory=pd.DataFrame)
    # current intervals of the reference weeks and the neighbouring days, for the series to estimate
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    # daily_usage rows of the reference weeks (all series): spikes against history, high/low usage
    daily_history: pd.DataFrame = field(default_factory=pd.DataFrame)
    # newest interval end received from any meter (the data clock), and per series the last interval
    # end received on or after the day; without them nothing is awaited
    frontier: pd.Timestamp | None = None
    last_seen: pd.DataFrame = field(default_factory=pd.DataFrame)  # meter_id, channel, last_end
    holidays: frozenset = frozenset()
    config: VeeConfig = field(default_factory=VeeConfig)
    catalog: Catalog | None = None  # set by validate_day: the integer keys of this day
    # a meter shard's run (domain/vee/class_profiles.py): the class-profile sums and counts of every
    # shard of the day, so E5 estimates with the whole day's profile; None: this frame's own
    class_profile_parts: pd.DataFrame | None = None
    # meter-day exceptions found before validation (register decreases met deriving intervals):
    # meter_id, channel, rule, severity, detail, intervals, period_start, period_end
    exceptions: pd.DataFrame = field(default_factory=pd.DataFrame)
    # the real-time path (incremental.py): each series' intervals only up to its latest received
    # read (later ones are the day's future, not gaps) and no day rules (they judge a whole day)
    through_last_read: bool = False


@dataclass
class DayResult:
    intervals: pd.DataFrame
    exceptions: pd.DataFrame
    stats: dict


def typed_installs(installs: pd.DataFrame) -> pd.DataFrame:
    """The installations with UTC timestamps (an empty frame with the columns when there are none)."""
    if installs is None or installs.empty:
        return pd.DataFrame(columns=["meter_id", "installed_at", "removed_at"])
    out = installs.copy()
    for col in ("installed_at", "removed_at"):
        out[col] = pd.to_datetime(out[col], utc=True)
    return out


def exception_ids(meter_id: pd.Series, channel: pd.Series, day, rule) -> list[str]:
    """The stable id of an exception: one per meter-channel-day-rule (``day`` and ``rule`` may be
    scalars or series of ISO dates and rule names), so re-runs find the same row."""
    key = meter_id.astype(str) + "|" + channel.astype(str) + "|" + day + "|" + rule
    return [hashlib.sha1(k.encode()).hexdigest()[:20] for k in key]
