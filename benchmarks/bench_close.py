"""Billing-cycle close time: N accounts with 15-minute data over one billing period.

    .venv/bin/python benchmarks/bench_close.py [--accounts 100000] [--days 30]
        [--backends duckdb,postgresql] [--pg-accounts 10000] [--duckdb-dir DIR] [--skip-export]

Generates the store directly in SQL (master data, one billing cycle, one current version per
15-minute interval of delivered energy; a tenth of the accounts on a TOU energy + TOU demand
tariff, the rest on a tiered residential tariff, the demo's tariffs from the utility config),
then times one close as the Dagster job runs it:
- dbt build: billing segments, TOU slots, billing-ready usage, TOU buckets, demand, registers,
  completeness and determinants, with every dbt test;
- versioning: completeness gate, content hashes, new versions written, billed lock, close log;
- export: CSV + JSON lines + manifest into an outbox folder and one outbox row per record, plus
  the period's interval versions read from the real-time outbox (``{batch}.intervals.csv``, one
  ``outbox`` row of destination ``cis_batch`` each; ``export_intervals_s`` times that part alone);
and a re-close with unchanged data (no new version; its dbt build is skipped when the period's
inputs fingerprint is unchanged, ``reclose_dbt_skipped``). Prints JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

from pg import Postgres

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services.billing_close import version_determinants
from smartmdm_pipelines.services.billing_reference import load_billing_reference
from smartmdm_pipelines.services.cis_export import IntervalScope, export_determinants
from smartmdm_pipelines.services.dbt_runner import run_dbt
from smartmdm_pipelines.store.store import Store

PERIOD_START = "2024-07-01"
TZ = "America/Chicago"
CHUNK = 10_000  # accounts per generating statement


def generate(store: Store, accounts: int, days: int) -> int:
    series = "range" if store.backend == "duckdb" else "generate_series"
    hi = "" if store.backend == "duckdb" else " - 1"
    ident = "lpad(cast(a AS varchar), 7, '0')"
    end = f"date '{PERIOD_START}' + {days - 1}"
    master = [
        f"INSERT INTO meters (meter_id, kind, commodity, role, channels, unit, interval_seconds, multiplier) "
        f"SELECT 'M' || {ident}, 'ami', 'electric', 'customer', 'kwh_delivered', 'kWh', 900, 1 "
        f"FROM {series}(0, {accounts}{hi}) t(a)",
        f"INSERT INTO meter_installs (meter_id, service_point_id, installed_at, multiplier) "
        f"SELECT 'M' || {ident}, 'SP' || {ident}, TIMESTAMPTZ '2020-01-01 00:00:00+00', 1 "
        f"FROM {series}(0, {accounts}{hi}) t(a)",
        f"INSERT INTO accounts (account_id, service_point_id, move_in) "
        f"SELECT 'A' || {ident}, 'SP' || {ident}, date '2020-01-01' FROM {series}(0, {accounts}{hi}) t(a)",
        f"INSERT INTO service_points (service_point_id, commodity, timezone, rate_code, billing_cycle, status) "
        f"SELECT 'SP' || {ident}, 'electric', '{TZ}', CASE WHEN a % 10 = 0 THEN 'E-GS' ELSE 'E-RES' END, "
        f"'C01', 'active' FROM {series}(0, {accounts}{hi}) t(a)",
        "INSERT INTO service_point_history (service_point_id, valid_from, commodity, timezone, rate_code, "
        "billing_cycle, has_solar, status) SELECT service_point_id, date '2000-01-01', commodity, timezone, "
        "rate_code, billing_cycle, false, status FROM service_points",
        f"INSERT INTO billing_cycles (cycle_id, period_start, period_end, read_date) "
        f"VALUES ('C01', date '{PERIOD_START}', {end}, {end} + 1)",
    ]
    for sql in master:
        store.execute(sql)
    per_day = 96
    first_end = f"TIMESTAMPTZ '{PERIOD_START} 05:15:00+00'"  # local midnight + 15 min (CDT)
    for lo in range(0, accounts, CHUNK):
        hi_a = min(accounts, lo + CHUNK)
        store.execute(
            "INSERT INTO intervals (meter_id, channel, interval_end, version, interval_seconds, value, unit, "
            "status, read_day, created_by, created_at, billed) "
            f"SELECT 'M' || {ident}, 'kwh_delivered', {first_end} + k * INTERVAL '15 minutes', 1, 900, "
            f"0.05 + ((a * 7 + k * 13) % 97) / 200.0, 'kWh', 'valid', "
            f"date '{PERIOD_START}' + cast(floor(k / {per_day}) AS integer), 'bench', "
            "TIMESTAMPTZ '2024-08-01 00:00:00+00', false "
            f"FROM {series}({lo}, {hi_a}{hi}) t(a), {series}(0, {days * per_day}{hi}) s(k)"
        )
    return accounts * days * per_day


def bench(
    url: str, accounts: int, days: int, out: Path, reuse: bool = False, skip_export: bool = False
) -> dict:
    cfg = load_config(data_dir=out)
    store = Store(url)
    t0 = time.perf_counter()
    if reuse and store.count("intervals"):
        for table in ("billing_determinants", "billing_closes", "outbound_messages", "outbox"):
            store.execute(f"DELETE FROM {table}")
        n = store.count("intervals")
    else:
        load_billing_reference(store, cfg)
        n = generate(store, accounts, days)
    generated = time.perf_counter() - t0
    if store.backend == "postgresql":
        store.execute("ANALYZE")
    stages = {}
    t0 = time.perf_counter()
    run_dbt(store, "C01", PERIOD_START, reuse=False)  # a first close: its inputs are new (and --duckdb-dir)
    stages["dbt_build_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = version_determinants(
        store, "C01", PERIOD_START, closed_by="bench", threshold=0.98, estimated_share_limit=0.1
    )
    stages["versioning_s"] = time.perf_counter() - t0
    export = only = None
    export_intervals_s = 0.0
    if not skip_export:
        t0 = time.perf_counter()
        rows = store.read_frame("SELECT * FROM billing_determinants WHERE cycle_id = 'C01'")
        start = dt.date.fromisoformat(PERIOD_START)
        scope = IntervalScope("C01", start, start + dt.timedelta(days=days - 1))
        export = export_determinants(store, rows, out / "outbox", "bench_C01", intervals=scope)
        stages["export_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.execute("DELETE FROM outbox WHERE destination = 'cis_batch'")  # the interval part alone, again
        only = export_determinants(
            store, rows.iloc[:0], out / "outbox", "bench_C01_intervals", intervals=scope
        )
        export_intervals_s = time.perf_counter() - t0
    close_s = sum(stages.values())
    t0 = time.perf_counter()
    rebuilt = run_dbt(store, "C01", PERIOD_START)
    reclose_dbt_s = time.perf_counter() - t0
    again = version_determinants(
        store, "C01", PERIOD_START, closed_by="bench", threshold=0.98, estimated_share_limit=0.1
    )
    reclose_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_dbt(store, "C01", PERIOD_START, reuse=False)  # the same build again, forced: dbt's own cost
    rebuild_s = time.perf_counter() - t0
    store.dispose()
    return {
        "accounts": accounts,
        "days": days,
        "intervals": n,
        "generate_s": round(generated, 1),
        **{k: round(v, 2) for k, v in stages.items()},
        "close_total_s": round(close_s, 2),
        "intervals_per_s": round(n / close_s),
        "outcome": result.outcome,
        "new_versions": result.new_versions,
        "determinant_rows": result.determinant_rows,
        "exported_records": export.exported if export else None,
        "interval_records": export.interval_records if export else None,
        "export_intervals_s": round(export_intervals_s, 2) if export else None,
        "interval_records_per_s": round(only.interval_records / export_intervals_s)
        if export_intervals_s
        else None,
        "reclose_s": round(reclose_s, 2),
        "reclose_dbt_s": round(reclose_dbt_s, 2),
        "reclose_dbt_skipped": rebuilt.skipped,
        "forced_rebuild_dbt_s": round(rebuild_s, 2),
        "reclose_new_versions": again.new_versions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument(
        "--pg-accounts", type=int, default=10_000, help="accounts for PostgreSQL (slower to load)"
    )
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--backends", default="duckdb,postgresql")
    parser.add_argument("--pg-admin-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--duckdb-dir", help="keep the DuckDB store here and reuse its generated data on the next run"
    )
    parser.add_argument(
        "--skip-export",
        action="store_true",
        help="time dbt, versioning and the re-close only (no CIS export of determinants and intervals)",
    )
    args = parser.parse_args()
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for backend in args.backends.split(","):
            if backend == "duckdb":
                folder = Path(args.duckdb_dir) if args.duckdb_dir else tmp
                folder.mkdir(parents=True, exist_ok=True)
                url = f"duckdb:///{folder / 'close.duckdb'}"
                report["duckdb"] = bench(
                    url,
                    args.accounts,
                    args.days,
                    tmp / "duck",
                    reuse=bool(args.duckdb_dir),
                    skip_export=args.skip_export,
                )
            elif backend == "postgresql":
                pg = Postgres(args.pg_admin_url)
                if pg.problem:
                    report["postgresql"] = pg.problem
                    continue
                name, url = pg.database()
                try:
                    report["postgresql"] = bench(
                        url, args.pg_accounts, args.days, tmp / "pg", skip_export=args.skip_export
                    )
                finally:
                    pg.drop(name)
                    pg.close()
            print(json.dumps(report, indent=2), flush=True)


if __name__ == "__main__":
    main()
