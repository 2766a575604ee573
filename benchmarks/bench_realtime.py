"""Real-time path benchmark: one quarter-hour burst (a read per meter) published over MQTT and over
HTTP to `smartmdm serve`, measured until a CIS receiver on loopback has every validated record.

    .venv/bin/python benchmarks/bench_realtime.py [--meters 100000] [--backend duckdb|postgres]
        [--reads-per-delivery 1000] [--bursts 1] [--preload-slots 40] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
        [--serve-log serve.log]

The day's first ``--preload-slots`` quarter-hours are loaded and validated first (a landed file
and the daily VEE), so the burst is the next quarter-hour of a day in progress.
Half of the deliveries go over MQTT (QoS 1, the broker at 127.0.0.1:1883), half over HTTP (POST
/v1/headend/{source}/reads, 4 concurrent clients). Latency per read = time the CIS receiver got its
validated record - time its delivery was published. Prints p50/p95/p99 latency, the sustained
rate (reads / (last record received - first publish)), the service's CPU seconds over its whole
life (start-up included) and the machine's 1-minute load average at the end, as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pandas as pd
import requests
from pg import Postgres

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services.ingestion import ingest_file
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.realtime.helpers import (
    master_data,
)  # meters, service points, installs, accounts

ROOT = Path(__file__).resolve().parent.parent
HEADER = "meter_id,channel,interval_end,interval_seconds,value,unit,quality\n"
DAY_START = pd.Timestamp("2024-03-12T05:00Z")


class Receiver:
    """The CIS usage API: records the receipt time of every (meter, interval end)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: dict[tuple[str, str], float] = {}
        self.records = 0
        recv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                now = time.time()
                with recv.lock:
                    for r in data["records"]:
                        recv.received.setdefault((r["meter_id"], r["interval_end"]), now)
                        recv.records += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/usage"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def deliveries(meters: list[str], slots, size: int, seed: int) -> list[tuple[list[str], str, bytes]]:
    """Deliveries of ``size`` meters each holding the quarter-hours ``slots`` (an int: one)."""
    slots = [slots] if isinstance(slots, int) else list(slots)
    out = []
    for i in range(0, len(meters), size):
        chunk = meters[i : i + size]
        lines = []
        for slot in slots:
            end = DAY_START + pd.Timedelta(minutes=15 * (slot + 1))
            stamp = end.strftime("%Y-%m-%dT%H:%M:%SZ")
            values = np.random.default_rng(seed + slot).gamma(2.0, 0.2, len(meters)).round(3) + 0.05
            lines += [
                f"{m},kwh_delivered,{stamp},900,{v},kWh,"
                for m, v in zip(chunk, values[i : i + size], strict=True)
            ]
        out.append((chunk, end.isoformat(), (HEADER + "\n".join(lines) + "\n").encode()))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: argparse.Namespace, url: str, workdir: Path) -> dict:
    meters = [f"E{i:07d}" for i in range(args.meters)]
    store = Store(url)
    master_data(store, meters)
    if (
        args.preload_slots
    ):  # the day so far, loaded and validated the daily way: the burst is its next quarter-hour
        config = load_config(data_dir=workdir / "data")
        for s in range(0, args.preload_slots, 8):
            for i, (_, _, data) in enumerate(
                deliveries(meters, range(s, min(s + 8, args.preload_slots)), 100_000, 7)
            ):
                path = workdir / f"preload-{s}-{i}.csv"
                path.write_bytes(data)
                ingest_file(store, path, config, archive=False)
        started = time.time()
        run_day(store, DAY_START.tz_convert("America/Chicago").date(), config)
        print(
            f"preloaded {args.preload_slots} quarter-hours; their VEE day took {time.time() - started:.0f}s",
            file=sys.stderr,
        )
    store.dispose()
    receiver = Receiver()
    port, prefix = free_port(), f"bench-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "SMARTMDM_DATABASE_URL": url,
        "SMARTMDM_DATA_DIR": str(workdir / "data"),
        "SMARTMDM_HEADEND_TOKENS": "he1=bench",
        "SMARTMDM_CIS_PUSH_URL": receiver.url,
        "SMARTMDM_MQTT_TOPIC_PREFIX": prefix,
    }
    env.pop("DAGSTER_HOME", None)
    log = open(workdir / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "smartmdm_pipelines.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if requests.get(f"{base}/v1/health", timeout=1).ok:
                break
        except requests.RequestException:
            time.sleep(0.2)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", 1883)
    pub.loop_start()
    published: dict[tuple[str, str], float] = {}
    session = requests.Session()

    def post(item) -> None:
        chunk, end, data = item
        t = time.time()
        r = session.post(
            f"{base}/v1/headend/he1/reads", data=data, headers={"Authorization": "Bearer bench"}, timeout=300
        )
        r.raise_for_status()
        for m in chunk:
            published[(m, end)] = t

    first_publish = time.time()
    expected = 0
    try:
        for burst in range(args.bursts):
            items = deliveries(meters, args.preload_slots + burst, args.reads_per_delivery, seed=burst)
            expected += len(meters)
            http_items = items[1::2]
            with ThreadPoolExecutor(4) as pool:
                futures = [pool.submit(post, item) for item in http_items]
                for chunk, end, data in items[0::2]:
                    t = time.time()
                    pub.publish(f"{prefix}/headend/he1/reads", data, qos=1)
                    for m in chunk:
                        published[(m, end)] = t
                for f in futures:
                    f.result()
            if burst + 1 < args.bursts:
                time.sleep(args.burst_gap)
        deadline = time.time() + args.timeout
        while time.time() < deadline and len(receiver.received) < expected:
            time.sleep(0.2)
    finally:
        pub.loop_stop()
        pub.disconnect()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        # the service's CPU time (user + system; its only child process): on a shared machine a
        # steadier yardstick than the latencies, which grow with the other jobs' load
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        service_cpu = usage.ru_utime + usage.ru_stime
        log.close()
        if args.serve_log:
            Path(args.serve_log).write_bytes((workdir / "serve.log").read_bytes())
    got = receiver.received
    lat = np.array([got[k] - published[k] for k in published if k in got])
    last = max(got.values()) if got else first_publish
    return {
        "meters": args.meters,
        "bursts": args.bursts,
        "reads_published": len(published),
        "records_received": len(got),
        "records_posted": receiver.records,
        "reads_per_delivery": args.reads_per_delivery,
        "preloaded_quarter_hours": args.preload_slots,
        "latency_p50_s": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
        "latency_p95_s": round(float(np.percentile(lat, 95)), 2) if len(lat) else None,
        "latency_p99_s": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
        "latency_max_s": round(float(lat.max()), 2) if len(lat) else None,
        "sustained_reads_per_s": round(len(got) / max(last - first_publish, 1e-9), 1),
        "service_cpu_s": round(service_cpu, 1),
        "load_average_1m": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--backend", choices=["duckdb", "postgres"], default="duckdb")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--reads-per-delivery", type=int, default=1000)
    parser.add_argument(
        "--bursts", type=int, default=1, help="quarter-hour bursts, --burst-gap seconds apart"
    )
    parser.add_argument("--burst-gap", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument(
        "--preload-slots",
        type=int,
        default=40,
        help="quarter-hours of the day loaded and validated before the burst (0: the burst is the day's first read)",
    )
    parser.add_argument(
        "--serve-log", help="keep the service's log (its VEE passes, with times) in this file"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.backend == "duckdb":
            result = run(args, f"duckdb:///{workdir / 'store.duckdb'}", workdir)
        else:
            pg = Postgres(args.postgres)
            if pg.problem:
                print(json.dumps({"backend": "postgres", "result": pg.problem}))
                return
            name, url = pg.database()
            try:
                result = run(args, url, workdir)
            finally:
                pg.drop(name)
                pg.close()
    print(json.dumps({"backend": args.backend, **result}, indent=2))


if __name__ == "__main__":
    main()
