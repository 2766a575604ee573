"""A list of keys bound as one parameter (store/sql_filters.py): the same rows on both backends,
and on PostgreSQL a plan that stays a filter when the table's statistics are stale."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from smartmdm_pipelines.store.sql_filters import in_list
from smartmdm_pipelines.store.store import Store

DAY = dt.date(2024, 3, 12)


def _stale_intervals(store: Store, meters: int, per_meter: int) -> None:
    """A `keys` table filled and never analysed, like a partition VEE has just written: the
    planner guesses the day's share of it (0.5 % for an equality without statistics)."""
    with store.begin() as conn:
        conn.execute(sa.text("CREATE TABLE keys (meter_id VARCHAR, read_day DATE, n INTEGER)"))
        if store.backend == "postgresql":
            conn.execute(sa.text("CREATE INDEX ix_keys_day ON keys (read_day)"))
        conn.execute(
            sa.text(
                "INSERT INTO keys SELECT 'M' || lpad(CAST(CAST(floor(i / :per) AS INTEGER) AS VARCHAR), 6, '0'), "
                "DATE '2024-03-12', CAST(i % :per_n AS INTEGER) FROM generate_series(0, :n - 1) AS g(i)"
            ),
            {"per": float(per_meter), "per_n": per_meter, "n": meters * per_meter},
        )


def test_in_list_selects_the_listed_keys_on_both_backends(store: Store) -> None:
    _stale_intervals(store, meters=50, per_meter=4)
    wanted = ["M000003", "M000017", "M999999"]
    sql = f"SELECT meter_id, count(*) AS n FROM keys WHERE read_day = :day AND {in_list(store.backend)} GROUP BY 1 ORDER BY 1"
    got = store.read_frame(sql, {"day": DAY, "meters": wanted})
    assert got["meter_id"].tolist() == ["M000003", "M000017"]
    assert got["n"].tolist() == [4, 4]
    # an empty list selects nothing (not everything)
    none = store.read_frame(sql, {"day": DAY, "meters": []})
    assert none.empty


def test_duckdb_can_keep_its_own_condition() -> None:
    assert (
        in_list("duckdb", otherwise="meter_id IN (SELECT meter_id FROM k)")
        == "meter_id IN (SELECT meter_id FROM k)"
    )
    assert in_list("postgresql", otherwise="ignored") == "meter_id = ANY(:meters)"


def test_postgres_plan_is_a_filter_under_stale_statistics(postgres_url: str) -> None:
    """The existence check a chunked VEE day runs (`LIMIT 1` over a day just written, statistics
    stale) must not become a nested loop comparing every row with every key (quadratic: 50 s for
    1,000 meters × 283,000 rows on the 2-core machine)."""
    store = Store(postgres_url)
    try:
        _stale_intervals(store, meters=400, per_meter=50)
        absent = [f"X{i:06d}" for i in range(300)]
        sql = f"SELECT 1 FROM keys WHERE read_day = :day AND {in_list(store.backend)} LIMIT 1"
        with store.begin() as conn:
            plan = "\n".join(
                r[0] for r in conn.execute(sa.text("EXPLAIN " + sql), {"day": DAY, "meters": absent})
            )
            joined = "\n".join(
                r[0]
                for r in conn.execute(
                    sa.text(
                        "EXPLAIN SELECT 1 FROM keys WHERE read_day = :day "
                        "AND meter_id IN (SELECT unnest(:meters)) LIMIT 1"
                    ),
                    {"day": DAY, "meters": absent},
                )
            )
        assert "Nested Loop" not in plan and "Join" not in plan, plan
        assert "ANY" in plan
        # the join form this replaced does plan a nested loop here: the test sees the hazard
        assert "Nested Loop" in joined, joined
    finally:
        store.dispose()
