"""The demo's live section: the real-time path on the demo's store, end to end, in a few seconds.

After the batch part, ``run_live`` starts ``smartmdm serve``'s app in-process (uvicorn on a free
loopback port; HTTP only, MQTT is not needed) beside a tiny CIS usage API stub (a real HTTP server
on loopback), POSTs one operating day of reads for two demo meters to
``/v1/headend/demo/reads`` with a bearer token, waits until the dispatcher has pushed the
validated records to the stub, and stops both. Every wait has a deadline: a failure is reported
in one line, it never hangs the demo.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd

SOURCE = "demo"
CSV_HEADER = "meter_id,channel,interval_end,interval_seconds,value,unit,quality\n"


@dataclass
class LiveResult:
    ok: bool = False
    error: str | None = None
    service_url: str = ""
    stub_url: str = ""
    day: str = ""
    meters: list[str] = field(default_factory=list)
    posted: int = 0
    http_status: int | None = None
    delivery: dict = field(default_factory=dict)
    received: int = 0
    batches: int = 0
    batch_keys: list[str] = field(default_factory=list)
    first_seconds: float | None = None  # POST sent → first record at the stub
    all_seconds: float | None = None  # POST sent → every record at the stub
    sample: list[dict] = field(default_factory=list)
    outbox: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class CisStub:
    """A CIS usage API on loopback: accepts ``{"records": [...]}`` with its bearer token, keeps them."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.lock = threading.Lock()
        self.batches: list[tuple[float, str | None, list[dict]]] = []  # (received at, key, records)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Authorization") != f"Bearer {stub.token}":
                    code, answer = 401, {"error": "bad token"}
                else:
                    try:
                        records = json.loads(body)["records"]
                        code, answer = 200, {"accepted": len(records)}
                        with stub.lock:
                            stub.batches.append(
                                (time.monotonic(), self.headers.get("Idempotency-Key"), records)
                            )
                    except (ValueError, KeyError, TypeError) as exc:
                        code, answer = 400, {"error": f"expected {{'records': [...]}}: {exc}"}
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/usage"
        self.thread = threading.Thread(target=self.server.serve_forever, name="demo-cis-stub", daemon=True)

    def __enter__(self) -> CisStub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def records(self) -> list[dict]:
        with self.lock:
            return [r for _, _, recs in self.batches for r in recs]

    def snapshot(self) -> list[tuple[float, str | None, list[dict]]]:
        with self.lock:
            return list(self.batches)


def demo_reads(store, meters: int = 2) -> tuple[str, list[str], bytes, int]:
    """One operating day of quarter-hour reads for ``meters`` demo meters: the day after the last
    one in the store (so every read is new), each meter repeating its own latest complete valid day
    (so VEE passes them). Returns (day, meters, a generic-CSV delivery body, reads)."""
    from smartmdm_pipelines.store.intervals import current_intervals_sql

    last = store.scalar("SELECT max(read_day) FROM intervals")
    if last is None:
        raise RuntimeError("the store holds no validated intervals to take a demo meter from")
    last = pd.Timestamp(last).date()
    picked: list[str] = []
    for back in range(8):  # the latest day with complete valid meters (not a DST day, not a partial one)
        template = last - dt.timedelta(days=back)
        picked = store.read_frame(
            "SELECT c.meter_id FROM ("
            + current_intervals_sql("read_day = :d AND channel = 'kwh_delivered'")
            + ") c JOIN meters m ON m.meter_id = c.meter_id "
            "WHERE c.status = 'valid' AND c.interval_seconds = 900 AND m.kind = 'ami' "
            "GROUP BY c.meter_id HAVING count(*) = 96 ORDER BY c.meter_id LIMIT :n",
            {"d": template, "n": meters},
        )["meter_id"].tolist()
        if picked:
            break
    if not picked:
        raise RuntimeError(f"no AMI meter has a complete valid day in the week up to {last} to repeat")
    rows = store.read_frame(
        current_intervals_sql(
            "read_day = :d AND channel = 'kwh_delivered' AND meter_id IN (SELECT unnest(:m))",
            "meter_id, channel, interval_end, interval_seconds, value, unit",
        )
        + " ORDER BY meter_id, interval_end",
        {"d": template, "m": picked},
    )
    day = last + dt.timedelta(days=1)
    ends = pd.to_datetime(rows["interval_end"], utc=True) + pd.Timedelta(days=(day - template).days)
    body = pd.DataFrame(
        {
            "meter_id": rows["meter_id"],
            "channel": rows["channel"],
            "interval_end": ends.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "interval_seconds": rows["interval_seconds"].astype("int64"),
            "value": rows["value"].round(4),
            "unit": rows["unit"],
            "quality": "",
        }
    ).to_csv(index=False, header=False, lineterminator="\n")
    return day.isoformat(), picked, (CSV_HEADER + body).encode(), len(rows)


def _warm_up(day: dt.date) -> None:
    """Load what a running service has long loaded (the holiday calendars VEE's day rules use), so
    the latency shown is that of a warm service, not of a first import."""
    from smartmdm_pipelines.domain.calendar import nerc_holidays

    nerc_holidays(day.year - 1, day.year + 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _push_env(url: str, token: str):
    """The outbox queues rows for the destinations in the environment ($SMARTMDM_CIS_PUSH_URL)."""
    names = ("SMARTMDM_CIS_PUSH_URL", "SMARTMDM_CIS_PUSH_TOKEN", "SMARTMDM_PORTAL_PUSH_URL")
    saved = {n: os.environ.get(n) for n in names}
    os.environ["SMARTMDM_CIS_PUSH_URL"] = url
    os.environ["SMARTMDM_CIS_PUSH_TOKEN"] = token
    os.environ.pop("SMARTMDM_PORTAL_PUSH_URL", None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _wait(predicate, deadline: float, every: float = 0.05) -> bool:
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


def run_live(config=None, store_url: str | None = None, timeout: float = 45.0, meters: int = 2) -> LiveResult:
    """The live section; returns what happened (``ok`` False with ``error`` if a step failed or timed out)."""
    import requests
    import uvicorn

    from smartmdm_pipelines.config import default_config
    from smartmdm_pipelines.server.app import create_app
    from smartmdm_pipelines.server.runtime import Runtime
    from smartmdm_pipelines.server.settings import ServerSettings
    from smartmdm_pipelines.services import outbox
    from smartmdm_pipelines.services.outbox import PushTarget
    from smartmdm_pipelines.store.store import Store

    started = time.monotonic()
    deadline = started + timeout
    result = LiveResult()
    head_token, cis_token = secrets.token_hex(12), secrets.token_hex(12)
    store = Store(store_url)
    server = thread = None
    try:
        result.day, result.meters, body, result.posted = demo_reads(store, meters)
        _warm_up(dt.date.fromisoformat(result.day))
        with CisStub(cis_token) as stub, _push_env(stub.url, cis_token):
            result.stub_url = stub.url
            settings = ServerSettings(
                config=config or default_config(),
                store_url=store_url,
                tokens={SOURCE: head_token},
                targets=[PushTarget("cis", stub.url, cis_token)],
                host="127.0.0.1",
                port=_free_port(),
                mqtt_host=None,  # HTTP only: the demo needs no broker
                vee_idle_seconds=0.05,
                report_to_dagster=False,
            )
            runtime = Runtime(settings, store)
            server = uvicorn.Server(
                uvicorn.Config(
                    create_app(settings, runtime),
                    host=settings.host,
                    port=settings.port,
                    log_level="warning",
                    timeout_graceful_shutdown=2,
                )
            )
            thread = threading.Thread(target=server.run, name="demo-serve", daemon=True)
            thread.start()
            result.service_url = f"http://{settings.host}:{settings.port}"
            if not _wait(lambda: server.started, deadline):
                raise TimeoutError("the service did not start listening in time")
            sent = time.monotonic()
            answer = requests.post(
                f"{result.service_url}/v1/headend/{SOURCE}/reads",
                data=body,
                headers={
                    "Authorization": f"Bearer {head_token}",
                    "X-Filename": f"demo-live-{result.day}.csv",
                },
                timeout=max(deadline - time.monotonic(), 1.0),
            )
            result.http_status = answer.status_code
            result.delivery = answer.json()
            if answer.status_code != 202:
                raise RuntimeError(f"POST answered HTTP {answer.status_code}: {answer.text[:200]}")
            expected = int(result.delivery.get("interval_reads") or 0)
            if not _wait(lambda: len(stub.records()) >= expected > 0, deadline):
                raise TimeoutError(
                    f"the CIS stub received {len(stub.records())} of {expected} records within {timeout:.0f}s"
                )
            batches = stub.snapshot()
            records = [r for _, _, recs in batches for r in recs]
            result.received, result.batches = len(records), len(batches)
            result.batch_keys = [k or "" for _, k, _ in batches]
            result.first_seconds = round(batches[0][0] - sent, 3)
            result.all_seconds = round(batches[-1][0] - sent, 3)
            result.sample = records[:2]
            # the dispatcher marks a batch delivered once the stub's 200 is in: wait for that too
            _wait(lambda: outbox.status(store).pending == 0, deadline, every=0.1)
            result.outbox = outbox.status(store).to_dict()
            result.ok = True
    except Exception as exc:  # the demo reports it and goes on
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if server is not None:
            server.should_exit = True  # the app's shutdown stops the workers and disposes the store
            thread.join(timeout=max(deadline - time.monotonic(), 5.0))
        store.dispose()
    result.seconds = round(time.monotonic() - started, 3)
    return result


def live_lines(live: dict | None) -> list[str]:
    """3-6 lines for the demo summary."""
    if not live:
        return []
    head = (
        f"  live (smartmdm serve)  {live['service_url'] or '(not started)'} → CIS stub {live['stub_url']} "
        f"({live['seconds']:.1f} s)"
    )
    if not live["ok"]:
        return [head, f"    did not complete: {live['error']}"]
    d, o = live["delivery"], live["outbox"]
    cis = next((x for x in o["destinations"] if x["destination"] == "cis"), {"delivered": 0})
    sample = live["sample"][0]
    return [
        head,
        f"    POST /v1/headend/{SOURCE}/reads → {live['http_status']} delivery {d['delivery_id']}: "
        f"{d['interval_reads']} interval reads ({len(live['meters'])} meters, {live['day']}), "
        f"{d['rejected_rows']} rejected",
        f"    CIS stub received {live['received']} records in {live['batches']} batch(es) "
        f"(Idempotency-Key {live['batch_keys'][0][:12]}…), first {live['first_seconds']:.2f} s, "
        f"all {live['all_seconds']:.2f} s after the POST",
        f"    e.g. message_id {sample['message_id']}: {sample['meter_id']} {sample['interval_end']} "
        f"{sample['value']} {sample['unit']} {sample['status']} v{sample['version']}",
        f"    outbox: {o['pending']} pending, {cis['delivered']:,} pushed to the CIS, {o['dead_lettered']} dead-lettered "
        "(`smartmdm outbox status`)",
    ]
