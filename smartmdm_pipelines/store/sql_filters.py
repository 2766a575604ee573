"""SQL fragments that restrict a statement to a list of keys bound as one parameter.

PostgreSQL gets ``column = ANY(:param)``: a filter, hashed for long arrays, evaluated on the rows
the rest of the WHERE clause selects, whatever the planner believes about them. The join form
(``column IN (SELECT unnest(:param))``) lets the planner pick a nested loop when the table's
statistics are stale — right after a writer's INSERT in the same run (a chunked VEE day, the
real-time path) a day of millions of rows is estimated at a few hundred — and that loop compares
every row of the day with every key: 40–50 s for 1,000 meters against 283,000 intervals, where the
filter takes 70 ms. DuckDB has no such plan and keeps the ``unnest`` form."""

from __future__ import annotations


def in_list(
    dialect: str, column: str = "meter_id", param: str = "meters", otherwise: str | None = None
) -> str:
    """``column`` is one of the values of the list parameter ``:param`` (no leading AND);
    ``otherwise``: the condition to use on DuckDB instead (e.g. a join with a staged table that
    holds the same keys, cheaper there than unnesting a long list)."""
    if dialect == "postgresql":
        return f"{column} = ANY(:{param})"
    return otherwise or f"{column} IN (SELECT unnest(:{param}))"
