"""The one definition of "the current version of an interval".

``intervals`` is append-only: every validation result, estimate and edit is a new version of
(meter_id, channel, interval_end), numbered 1, 2, … . The *current* version of an interval is
its highest version. Every reader of current intervals (services, asset checks, the demo
summary, benchmarks) builds its SQL here; dbt's ``current_intervals`` macro
(``dbt_project/macros/current_intervals.sql``) computes the same set and a test proves the two
agree on DuckDB and PostgreSQL.

The filter given to :func:`current_intervals_sql` is applied *before* ranking, so it must only
constrain columns every version of an interval shares (``meter_id``, ``channel``,
``interval_end``, ``read_day``); filters on a version's own columns (``status``, ``value`` …)
go outside, on the result.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from smartmdm_pipelines.store.schema import intervals

INTERVAL_KEY = ("meter_id", "channel", "interval_end")
INTERVAL_COLUMNS: tuple[str, ...] = tuple(c.name for c in intervals.columns)
RANK = "rn"  # the rank column of :func:`ranked_intervals_sql`; 1 is the current version


def version_rank(alias: str = "", *, within: str = "") -> str:
    """``row_number()`` over the versions of one interval, newest first: 1 is the current version.

    ``alias`` qualifies the columns (``"i"`` → ``i.meter_id``); ``within`` adds a partition
    expression, ranking inside a subset of the versions (e.g. ``created_by = :val`` numbers the
    versions one stage wrote, so rank 1 among those with ``created_by = :val`` is that stage's latest).
    """
    prefix = f"{alias}." if alias else ""
    partition = ", ".join(f"{prefix}{c}" for c in INTERVAL_KEY)
    if within:
        partition += f", {within}"
    return f"row_number() OVER (PARTITION BY {partition} ORDER BY {prefix}version DESC)"


def ranked_intervals_sql(where: str = "1 = 1", columns: Sequence[str] | str | None = None) -> str:
    """Every version matching ``where`` with its rank (:data:`RANK`, 1 = current) as a SELECT."""
    cols = _columns(columns, "i")
    return f"SELECT {cols}, {version_rank('i')} AS {RANK} FROM intervals i WHERE {where}"


def current_intervals_sql(where: str = "1 = 1", columns: Sequence[str] | str | None = None) -> str:
    """A SELECT of the current version of every interval matching ``where``.

    ``where`` is SQL over the identity columns (``:name`` parameters allowed, no alias); it is
    applied before ranking so an index on ``read_day`` or ``meter_id`` narrows the read.
    ``columns`` picks and may rename output columns (``"value AS cur_value"``); default: all
    columns of ``intervals``. Use the result as a derived table: ``FROM ({sql}) c``.
    """
    inner = ranked_intervals_sql(where, INTERVAL_COLUMNS)
    return f"SELECT {_columns(columns)} FROM ({inner}) ranked WHERE {RANK} = 1"


def _columns(columns: Sequence[str] | str | None, alias: str = "") -> str:
    if columns is None:
        columns = INTERVAL_COLUMNS
    if isinstance(columns, str):
        return columns
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}{c}" if c in INTERVAL_COLUMNS else c for c in columns)


def current_of(versions: pd.DataFrame) -> pd.DataFrame:
    """The current version of each interval in a frame of versions already read (the same rule as
    the SQL above: the highest version of each (meter_id, channel, interval_end) present)."""
    key = [c for c in INTERVAL_KEY if c in versions.columns]
    return versions.sort_values([*key, "version"]).drop_duplicates(key, keep="last")
