"""Portal API latency on PostgreSQL: N accounts × one year of hourly intervals, then a bounded
open-loop load (asyncio + httpx on loopback) against ``smartmdm serve``: p50/p95 of a one-year
hourly history, a month comparison and a bill-to-date at a target rate.

    .venv/bin/python benchmarks/bench_portal.py --accounts 100000 --rate 200 --seconds 20 --workers 2

The data is generated in the database (``generate_series``), one INSERT … SELECT per chunk of
accounts; a database of the size asked for is kept with ``--keep-url`` and reused by passing it
as ``--url``. Aims (issue 13): p95 ≤ 50 ms for the history and ≤ 150 ms for bill-to-date at 200
requests/s. Nothing here is asserted: it prints what it measured, with the 1-minute load average
before and after each scenario.

Bill-to-date memoises the shadow-bill engine on its inputs (services/portal_bill.py): with few
accounts and a long run most requests are repeats of an account already billed. Run the service
with ``SMARTMDM_PORTAL_BILL_CACHE=0`` in the environment for the engine on every request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
from pg import Postgres

from smartmdm_pipelines.config import default_config
from smartmdm_pipelines.server.portal_auth import issue_token
from smartmdm_pipelines.services.billing_reference import tariff_frames
from smartmdm_pipelines.store import usage_rollup
from smartmdm_pipelines.store.store import Store

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-portal-signing-key-" + "k" * 16
YEAR = 2024
CHUNK = 2_000  # accounts per INSERT … SELECT


def generate(url: str, accounts: int) -> dict:
    store = Store(url)
    t0 = time.perf_counter()
    try:
        if store.count("accounts") >= accounts:
            return {"generated": False, "accounts": store.count("accounts")}
        with store.begin() as conn:
            for sql in (
                "INSERT INTO meters (meter_id, kind, commodity, role, channels, unit, interval_seconds, multiplier) "
                "SELECT 'M' || i, 'ami', 'electric', 'customer', 'kwh_delivered', 'kWh', 3600, 1 "
                "FROM generate_series(1, :n) i",
                "INSERT INTO service_points (service_point_id, commodity, timezone, rate_code, status, has_solar) "
                "SELECT 'SP' || i, 'electric', 'America/Chicago', 'E-RES', 'active', false FROM generate_series(1, :n) i",
                "INSERT INTO meter_installs (meter_id, service_point_id, installed_at, multiplier) "
                "SELECT 'M' || i, 'SP' || i, TIMESTAMPTZ '2020-01-01 00:00Z', 1 FROM generate_series(1, :n) i",
                "INSERT INTO accounts (account_id, service_point_id, move_in) "
                "SELECT 'A' || i, 'SP' || i, DATE '2020-01-01' FROM generate_series(1, :n) i",
            ):
                store.execute(sql, {"n": accounts}, conn)
            for table, frame in tariff_frames(default_config(), pd.Timestamp.now(tz="UTC")).items():
                store.bulk_insert(table, frame, conn)
        start = pd.Timestamp(f"{YEAR}-01-01").tz_localize("America/Chicago").tz_convert("UTC")
        end = pd.Timestamp(f"{YEAR + 1}-01-01").tz_localize("America/Chicago").tz_convert("UTC")
        for lo in range(1, accounts + 1, CHUNK):
            hi = min(accounts, lo + CHUNK - 1)
            store.execute(
                "INSERT INTO intervals (meter_id, channel, interval_end, version, interval_seconds, value, unit, "
                "status, read_day, created_by, created_at) "
                "SELECT 'M' || i, 'kwh_delivered', t, 1, 3600, "
                "round((0.3 + 0.5 * (1 + sin(extract(hour FROM t AT TIME ZONE 'America/Chicago') / 24.0 * 6.283)) "
                "  * (1 + (i % 7) / 10.0))::numeric, 3)::double precision, 'kWh', "
                "CASE WHEN (i + extract(doy FROM t)::int) % 53 = 0 THEN 'estimated' ELSE 'valid' END, "
                "(t AT TIME ZONE 'America/Chicago' - interval '1 second')::date, 'bench', now() "
                "FROM generate_series(:lo, :hi) i, generate_series(:a, :b, interval '1 hour') t",
                {
                    "lo": lo,
                    "hi": hi,
                    "a": (start + pd.Timedelta(hours=1)).to_pydatetime(),
                    "b": end.to_pydatetime(),
                },
            )
            print(f"  intervals: accounts {hi:,}/{accounts:,} ({time.perf_counter() - t0:.0f}s)", flush=True)
        with store.begin() as conn:  # the portal's hourly rollup, as migration 0007 backfills it
            usage_rollup.rebuild(conn)
        print(f"  usage_hourly rebuilt ({time.perf_counter() - t0:.0f}s)", flush=True)
        store.execute("ANALYZE")
        rows = store.count("intervals")
    finally:
        store.dispose()
    return {
        "generated": True,
        "accounts": accounts,
        "interval_rows": rows,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(url: str, port: int, tmp: Path, workers: int = 1) -> subprocess.Popen:
    env = os.environ | {
        "SMARTMDM_DATABASE_URL": url,
        "SMARTMDM_API_SIGNING_KEY": KEY,
        "SMARTMDM_API_RATE_LIMIT": "0",
        "SMARTMDM_MQTT": "off",
        "SMARTMDM_DATA_DIR": str(tmp),
        "DAGSTER_HOME": str(tmp / "dagster_home"),
    }
    (tmp / "dagster_home").mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smartmdm_pipelines.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "serve.log", "wb"),  # noqa: SIM115
        start_new_session=True,  # its own process group: --workers children go with it
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the uvicorn workers too, not only their parent
    raise RuntimeError(f"the service did not start; see {tmp / 'serve.log'}")


async def load(base: str, kind: str, accounts: int, rate: float, seconds: float, concurrency: int) -> dict:
    """Open loop: one request every 1/rate s for ``seconds``, at most ``concurrency`` in flight."""
    headers = {"Authorization": "Bearer " + issue_token("portal-service", ttl=3600, key=KEY)}
    paths = {
        "history": lambda a: f"/v1/accounts/A{a}/usage?from={YEAR}-01-01&to={YEAR}-12-31&resolution=hour",
        "compare": lambda a: f"/v1/accounts/A{a}/usage/compare?from={YEAR}-06-01&to={YEAR}-06-30",
        "bill_to_date": lambda a: f"/v1/accounts/A{a}/bill-to-date?as_of={YEAR}-12-15",
    }
    rng = random.Random(7)
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    dropped = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30, limits=limits) as client:

        async def one(path: str) -> None:
            t = time.perf_counter()
            try:
                r = await client.get(path)
                if r.status_code != 200:
                    errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                else:
                    latencies.append(time.perf_counter() - t)
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            finally:
                gate.release()

        tasks = []
        t0 = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if gate.locked():
                dropped += 1  # the bound: the service is behind by `concurrency` requests
                continue
            await gate.acquire()
            tasks.append(asyncio.create_task(one(paths[kind](rng.randint(1, accounts)))))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
    ms = sorted(x * 1000 for x in latencies)
    q = statistics.quantiles(ms, n=100) if len(ms) >= 2 else [float("nan")] * 99
    return {
        "target_rate": rate,
        "achieved_rate": round(len(ms) / wall, 1),
        "requests": len(ms),
        "dropped_over_concurrency": dropped,
        "errors": errors,
        "p50_ms": round(q[49], 1),
        "p95_ms": round(q[94], 1),
        "max_ms": round(ms[-1], 1) if ms else None,
    }


def cpu_per_request(url: str, accounts: int, n: int = 80) -> dict:
    """In process, without HTTP: the CPU one request costs (this process + its PostgreSQL backend,
    read from /proc) and its wall time, over ``n`` accounts per kind. CPU time depends far less on
    what else the machine runs than latency does; 2 cores / CPU per request bounds the rate."""
    import datetime as dt

    from smartmdm_pipelines.services import portal_usage
    from smartmdm_pipelines.services.portal_bill import bill_to_date

    store = Store(url, migrate_schema=False)
    with store.engine.connect() as conn:  # one request at a time: the pool's one connection
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    tick = os.sysconf("SC_CLK_TCK")

    def backend_cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime + stime

    kinds = {
        "history": lambda a: portal_usage.hourly_json(
            store, f"A{a}", dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31)
        ),
        "bill_to_date": lambda a: bill_to_date(store, f"A{a}", dt.date(YEAR, 12, 15)),
        "bill_to_date_again": lambda a: bill_to_date(store, f"A{a}", dt.date(YEAR, 12, 15)),
    }
    out: dict = {"load_average": round(os.getloadavg()[0], 2)}
    try:
        for kind, fn in kinds.items():
            for a in range(accounts, max(accounts - 10, 0), -1):  # warm the process (pool, tariff parse)
                fn(a)
            p0, g0, w0 = time.process_time(), backend_cpu(), time.perf_counter()
            for a in range(1, min(n, accounts) + 1):
                fn(a)
            k = min(n, accounts)
            out[kind] = {
                "python_cpu_ms": round((time.process_time() - p0) * 1000 / k, 1),
                "postgresql_cpu_ms": round((backend_cpu() - g0) * 1000 / k, 1),
                "wall_ms": round((time.perf_counter() - w0) * 1000 / k, 1),
            }
        out["one_connection"] = store.engine.pool.checkedin() == 1
    finally:
        store.dispose()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--accounts", type=int, default=100_000)
    p.add_argument("--rate", type=float, default=200.0, help="requests per second per scenario")
    p.add_argument("--seconds", type=float, default=20.0, help="duration of each scenario")
    p.add_argument("--concurrency", type=int, default=64, help="most requests in flight")
    p.add_argument("--scenarios", default="history,compare,bill_to_date")
    p.add_argument("--workers", type=int, default=1, help="smartmdm serve --workers (HTTP processes)")
    p.add_argument("--url", help="an existing PostgreSQL store (generated data is reused)")
    p.add_argument("--keep-url", action="store_true", help="keep the generated database and print its URL")
    p.add_argument(
        "--cpu",
        action="store_true",
        help="no HTTP load: CPU per request in process (this process + its PostgreSQL backend)",
    )
    p.add_argument("--pg-admin-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    args = p.parse_args()
    import tempfile

    pg, name = None, None
    url = args.url
    if url is None:
        pg = Postgres(args.pg_admin_url)
        if pg.problem:
            print(json.dumps({"postgresql": pg.problem}))
            return
        name, url = pg.database()
    report: dict = {"accounts": args.accounts, "cpus": os.cpu_count(), "workers": args.workers}
    try:
        report["data"] = generate(url, args.accounts)
        print(json.dumps(report["data"]), flush=True)
        if args.cpu:
            report["cpu_per_request"] = cpu_per_request(url, args.accounts)
            print(json.dumps(report), flush=True)
            return
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            proc = start_service(url, port, Path(tmp), args.workers)
            try:
                base = f"http://127.0.0.1:{port}"
                for kind in [s for s in args.scenarios.split(",") if s]:
                    asyncio.run(load(base, kind, args.accounts, 5, 2, 4))  # warm-up
                    before = os.getloadavg()[0]
                    report[kind] = asyncio.run(
                        load(base, kind, args.accounts, args.rate, args.seconds, args.concurrency)
                    )
                    report[kind]["load_average"] = [round(before, 2), round(os.getloadavg()[0], 2)]
                    print(kind, json.dumps(report[kind]), flush=True)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    finally:
        if pg is not None:
            if args.keep_url:
                report["url"] = url
            else:
                pg.drop(name)
            pg.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
