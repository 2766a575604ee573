"""Monthly partitions (migration 0010) on a year of intervals: the day's VEE reads, the outbox's
"versions written now" read and the portal's one-year history, before and after, in one run.

A throw-away PostgreSQL database is brought to 0009 (plain tables), filled with ``--days`` days of
``--meters`` meters' hourly reads and interval versions (version 1 of every interval, a version 2
of 1 % of them), each query is timed with EXPLAIN ANALYZE (median of ``--repeat`` warm runs), the
store is migrated to 0010 (timed: that is the production upgrade), and the same queries are timed
again. Prints the partitions each plan touches.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_partitions.py --meters 1000 --days 365
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import time

import psycopg2

from benchmarks.pg import Postgres
from smartmdm_pipelines.store import migrate
from smartmdm_pipelines.store.intervals import current_intervals_sql
from smartmdm_pipelines.store.store import Store

FIRST = dt.date(2025, 1, 1)


def fill(url: str, meters: int, days: int) -> dict[str, int]:
    raw = psycopg2.connect(url.replace("postgresql+psycopg2", "postgresql"))
    raw.autocommit = True
    cur = raw.cursor()
    cur.execute("SET TIME ZONE 'UTC'")
    grid = (
        "FROM generate_series(0, %(days)s - 1) d, generate_series(0, %(meters)s - 1) m, generate_series(1, 24) h "
        "CROSS JOIN LATERAL (SELECT DATE %(first)s + d AS day) x"
    )
    args = {"days": days, "meters": meters, "first": FIRST}
    cur.execute(
        "INSERT INTO raw_reads (file_id, line, meter_id, channel, interval_end, interval_seconds, value, unit, "
        "source_unit, read_day) SELECT d + 1, m * 24 + h, 'M' || lpad(m::text, 6, '0'), 'kwh_delivered', "
        "x.day + make_interval(hours => h), 3600, (m %% 17) * 0.1 + h * 0.01, 'kWh', 'Wh', x.day " + grid,
        args,
    )
    cur.execute(
        "INSERT INTO intervals (meter_id, channel, interval_end, version, interval_seconds, value, unit, status, "
        "source_file_id, source_line, read_day, created_by, created_at) SELECT 'M' || lpad(m::text, 6, '0'), "
        "'kwh_delivered', x.day + make_interval(hours => h), 1, 3600, (m %% 17) * 0.1 + h * 0.01, 'kWh', "
        "'valid', d + 1, m * 24 + h, x.day, 'vee_validation', x.day + interval '1 day 2 hours' " + grid,
        args,
    )
    cur.execute(
        "INSERT INTO intervals (meter_id, channel, interval_end, version, interval_seconds, value, unit, status, "
        "read_day, created_by, created_at, previous_value) SELECT meter_id, channel, interval_end, 2, "
        "interval_seconds, value + 1, unit, 'edited', read_day, 'analyst', created_at + interval '3 hours', value "
        "FROM intervals WHERE version = 1 AND hashtext(meter_id || interval_end::text) % 100 = 0"
    )
    cur.execute("ANALYZE raw_reads")
    cur.execute("ANALYZE intervals")
    cur.execute("SELECT (SELECT count(*) FROM raw_reads), (SELECT count(*) FROM intervals)")
    n_raw, n_int = cur.fetchone()
    raw.close()
    return {"raw_reads": n_raw, "intervals": n_int}


def queries(meters: int, days: int) -> dict[str, tuple[str, dict]]:
    day = FIRST + dt.timedelta(days=days // 2)
    now = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(2), dt.UTC)
    meter = f"M{meters // 2:06d}"
    a = dt.datetime.combine(FIRST, dt.time(0), dt.UTC)
    b = a + dt.timedelta(days=days)
    written_now = (  # emit_versions; usage_rollup.refresh(written_at=…)
        "SELECT *, row_number() OVER (PARTITION BY meter_id, channel, interval_end ORDER BY version DESC) "
        "FROM intervals WHERE read_day = %(day)s AND created_at = %(now)s"
    )
    return {
        "vee_day_raw_reads": (
            "SELECT meter_id, channel, interval_end, interval_seconds, value, source_quality, file_id, line "
            "FROM raw_reads WHERE read_day = %(day)s",
            {"day": day},
        ),
        "vee_day_current_versions": (current_intervals_sql("read_day = %(day)s"), {"day": day}),
        "outbox_written_now_batch": (written_now, {"day": day, "now": now}),  # the day's whole run
        "outbox_written_now_1pct": (written_now, {"day": day, "now": now + dt.timedelta(hours=3)}),  # edits
        "portal_one_year_history": (
            current_intervals_sql(
                "meter_id IN (SELECT unnest(%(m)s)) AND channel IN (SELECT unnest(%(c)s)) "
                "AND interval_end > %(a)s AND interval_end <= %(b)s",
                "meter_id, channel, interval_end, interval_seconds, value, unit, status, espi_quality",
            ),
            {"m": [meter], "c": ["kwh_delivered"], "a": a, "b": b},
        ),
    }


def explain(url: str, sql: str, params: dict, repeat: int) -> dict:
    raw = psycopg2.connect(url.replace("postgresql+psycopg2", "postgresql"))
    cur = raw.cursor()
    cur.execute("SET TIME ZONE 'UTC'")
    query = cur.mogrify(sql, params).decode()
    times, plan = [], None
    for _ in range(repeat + 1):  # the first run warms the cache
        cur.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {query}")
        plan = cur.fetchone()[0][0]
        times.append(plan["Execution Time"])
    raw.close()
    text = json.dumps(plan)
    touched = sorted(set(re.findall(r'"Relation Name": "([a-z_0-9]+)"', text)))
    indexes = sorted(
        {
            re.sub(r"^intervals_\d{4}_\d{2}_|^raw_reads_\d{4}_\d{2}_", "", i)
            for i in re.findall(r'"Index Name": "([a-z_0-9]+)"', text)
        }
    )
    return {
        "ms": round(statistics.median(times[1:]), 2),
        "plan_ms": round(plan["Planning Time"], 2),
        "relations": touched,
        "indexes": indexes,
        "rows": plan["Plan"].get("Actual Rows"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("SMARTMDM_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--keep", action="store_true", help="keep the database (prints its URL)")
    args = parser.parse_args()
    pg = Postgres(args.admin_url)
    if pg.problem:
        print(pg.problem)
        return
    name, url = pg.database()
    try:
        store = Store(url, migrate_schema=False)
        migrate.upgrade(store.engine, "0009")
        t0 = time.perf_counter()
        rows = fill(url, args.meters, args.days)
        print(f"load average {os.getloadavg()}; filled {rows} in {time.perf_counter() - t0:.1f} s")
        qs = queries(args.meters, args.days)
        before = {k: explain(url, sql, p, args.repeat) for k, (sql, p) in qs.items()}
        t0 = time.perf_counter()
        migrate.upgrade(store.engine)
        upgrade_s = time.perf_counter() - t0
        after = {k: explain(url, sql, p, args.repeat) for k, (sql, p) in qs.items()}
        print(f"migration 0010 (move {rows} rows into monthly partitions): {upgrade_s:.1f} s")
        for k in qs:
            b, a = before[k], after[k]
            print(
                f"{k:<30} {b['ms']:>9.2f} ms -> {a['ms']:>9.2f} ms  (planning {b['plan_ms']} -> {a['plan_ms']} ms; "
                f"rows {b['rows']} / {a['rows']})"
            )
            print(f"    before: {', '.join(b['relations'])} via {', '.join(b['indexes']) or 'no index'}")
            print(f"    after:  {', '.join(a['relations'])} via {', '.join(a['indexes']) or 'no index'}")
        print(f"load average {os.getloadavg()}")
        store.dispose()
    finally:
        if args.keep:
            print(f"kept {url}")
        else:
            pg.drop(name)
        pg.close()


if __name__ == "__main__":
    main()
