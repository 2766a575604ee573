"""The five interrupted workloads of the crash-anywhere suite, each on a fresh copy of a prepared
store and data folder (a *bench*), and the copies themselves (DuckDB: a file copy; PostgreSQL:
``CREATE DATABASE … TEMPLATE``).

Each scenario's ``run`` is what the process does, and is also its recovery: it is re-run after the
kill exactly as the system re-runs the interrupted work (the sensor ingests what is still in the
landing folder; VEE re-runs the day; Dagster re-executes the close job from its failed step; the
head-end re-sends the deliveries it got no 202 for, and the restarted service validates what is
pending and drains the outbox). Progress a re-execution relies on (a step that succeeded, a
delivery acknowledged) is recorded in the bench's ``progress`` folder, as Dagster's event log or
the head-end would remember it.
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psycopg2
import sqlalchemy as sa

from smartmdm_pipelines.config import UtilityConfig, load_config
from smartmdm_pipelines.services.billing_close import version_determinants
from smartmdm_pipelines.services.billing_period import export_period
from smartmdm_pipelines.services.dispatch import Dispatcher
from smartmdm_pipelines.services.ingestion import ingest_path
from smartmdm_pipelines.services.outbox import push_targets
from smartmdm_pipelines.services.realtime import ingest_body, validate_pending
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.fixtures import interval_file
from smartmdm_pipelines_tests.realtime.helpers import body, master_data

DAY = dt.date(2024, 3, 12)
METERS = ["M1", "M2", "M3"]
CYCLE = "C01"


@dataclass(frozen=True)
class Bench:
    """A store and a data folder for one run."""

    url: str
    data_dir: Path

    def store(self) -> Store:
        return Store(self.url, migrate_schema=False)

    def config(self) -> UtilityConfig:
        return load_config(data_dir=self.data_dir)

    def done(self, step: str) -> bool:
        return (self.data_dir / "progress" / step).exists()

    def mark(self, step: str) -> None:
        folder = self.data_dir / "progress"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / step).touch()


# --- copies of a prepared store -----------------------------------------------------------------------


class Copies:
    """Fresh benches made from one prepared template (store + data folder)."""

    def __init__(self, backend: str, base: Path, admin_url: str | None = None) -> None:
        self.backend, self.base, self.admin_url = backend, base, admin_url
        self.databases: list[str] = []
        self.template: Bench | None = None

    def prepare(self, setup: Callable[[Bench], None], run_in: Callable) -> None:
        data = self.base / "template" / "data"
        data.mkdir(parents=True)
        if self.backend == "duckdb":
            url = f"duckdb:///{self.base / 'template' / 'store.duckdb'}"
        else:
            url = self._create(f"crash_tpl_{uuid.uuid4().hex[:10]}")
        self.template = Bench(url, data)
        run_in(_setup_template, self.template, setup)

    def fresh(self, name: str) -> Bench:
        assert self.template is not None
        folder = self.base / name
        shutil.copytree(self.template.data_dir, folder / "data")
        if self.backend == "duckdb":
            source = Path(sa.engine.make_url(self.template.url).database)
            shutil.copy(source, folder / "store.duckdb")
            url = f"duckdb:///{folder / 'store.duckdb'}"
        else:
            template_db = sa.engine.make_url(self.template.url).database
            url = self._create(f"crash_{uuid.uuid4().hex[:10]}", template=template_db)
        return Bench(url, folder / "data")

    def drop_all(self) -> None:
        for name in self.databases:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.databases.clear()

    def _create(self, name: str, template: str | None = None) -> str:
        sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
        for attempt in range(50):  # a killed child's backend may take a moment to leave the template
            try:
                self._admin(sql)
                break
            except psycopg2.errors.ObjectInUse:
                if attempt == 49:
                    raise
                time.sleep(0.1)
        self.databases.append(name)
        return sa.engine.make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def _admin(self, sql: str) -> None:
        url = sa.engine.make_url(self.admin_url)
        conn = psycopg2.connect(
            host=url.host, port=url.port, user=url.username, password=url.password or "", dbname="postgres"
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()


def _setup_template(bench: Bench, setup: Callable[[Bench], None]) -> None:
    store = Store(bench.url)  # migrated here, once
    try:
        setup(bench)
    finally:
        store.dispose()


# --- 1. a multi-file delivery in the landing folder -----------------------------------------------------


def setup_delivery(bench: Bench) -> None:
    landing = bench.config().landing_dir
    bad = ["M9,kwh_delivered,not-a-time,900,1.0,kWh,", "M9,kwh_delivered,2024-03-12T06:00:00Z,900,abc,kWh,"]
    interval_file(landing / "ami-east_20240312_a.csv", ["M1", "M2"], "2024-03-12", bad_lines=bad)
    interval_file(landing / "ami-east_20240313_b.csv", ["M1"], "2024-03-13")
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        for day, meters in (("2024-03-14", ["M2", "M3"]), ("2024-03-15", ["M3"])):
            member = interval_file(bench.data_dir / "tmp" / f"ami-east_{day}.csv", meters, day)
            zf.write(member, member.name)
        zf.writestr("notes.bin", b"\x00\x01 not a head-end file")
    (landing / "ami-east_20240316_pack.zip").write_bytes(zipped.getvalue())
    (landing / "ami-east_20240317_junk.csv").write_text("this is not,a head-end file\n1,2\n")
    shutil.rmtree(bench.data_dir / "tmp")


def run_delivery(bench: Bench) -> None:
    """The sensor's work: every file in the landing folder, in name order, ingested and archived."""
    store, config = bench.store(), bench.config()
    try:
        for path in sorted(config.landing_dir.iterdir()):
            ingest_path(store, path, config)
    finally:
        store.dispose()


# --- 2. a VEE day -------------------------------------------------------------------------------------


def setup_vee(bench: Bench) -> None:
    store, config = bench.store(), bench.config()
    try:
        master_data(store, METERS)
        gaps = [s for s in range(96) if s not in (20, 21, 22, 60)]
        spiky = {("M2", 50): 999.0, ("M3", 10): -5.0}
        folder = bench.data_dir / "drop"
        for i, meters in enumerate((["M1"], ["M2", "M3"])):
            path = folder / f"ami-east_{i}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body(meters, gaps if i == 0 else range(96), spiky))
            ingest_path(store, path, config, archive=False)
    finally:
        store.dispose()


def run_vee(bench: Bench) -> None:
    store, config = bench.store(), bench.config()
    try:
        run_day(store, DAY, config)
    finally:
        store.dispose()


# --- 3. a billing close with its CIS export -----------------------------------------------------------


def setup_billing(bench: Bench) -> None:
    """A validated day and what dbt would have built for a one-day period of cycle C01."""
    setup_vee(bench)
    run_vee(bench)
    store = bench.store()
    try:
        store.bulk_insert(
            "billing_cycles",
            pd.DataFrame(
                {"cycle_id": [CYCLE], "period_start": [DAY], "period_end": [DAY], "read_date": [DAY]}
            ),
        )
        sps = [f"SP-{m}" for m in METERS]
        store.execute(
            "CREATE TABLE bill_segments (service_point_id VARCHAR, cycle_id VARCHAR, period_start DATE)"
        )
        store.execute(
            "CREATE TABLE period_completeness (service_point_id VARCHAR, cycle_id VARCHAR, "
            "period_start DATE, expected_intervals BIGINT, present_intervals BIGINT)"
        )
        store.execute(
            "CREATE TABLE period_determinants (account_id VARCHAR, service_point_id VARCHAR, "
            "cycle_id VARCHAR, period_start DATE, period_end DATE, determinant VARCHAR, value DOUBLE PRECISION, "
            "unit VARCHAR, estimated_share DOUBLE PRECISION, tou_period SMALLINT, source VARCHAR, "
            "rate_code VARCHAR, segment_start DATE, segment_end DATE)"
        )
        for i, sp in enumerate(sps):
            store.execute("INSERT INTO bill_segments VALUES (:sp, :c, :p)", {"sp": sp, "c": CYCLE, "p": DAY})
            store.execute(
                "INSERT INTO period_completeness VALUES (:sp, :c, :p, 96, :n)",
                {"sp": sp, "c": CYCLE, "p": DAY, "n": 96 - i},
            )
            for det, tou, value, unit in (
                ("kwh_delivered", None, 30.0 + i, "kWh"),
                ("kwh_tou", 0, 20.0 + i, "kWh"),
                ("kwh_tou", 1, 10.0, "kWh"),
                ("kw_max", None, 2.5 * (i + 1), "kW"),
            ):
                store.execute(
                    "INSERT INTO period_determinants VALUES (:a, :sp, :c, :p, :p, :d, :v, :u, 0.01, :t, "
                    "'interval', 'R1', :p, :p)",
                    {
                        "a": f"A-{METERS[i]}",
                        "sp": sp,
                        "c": CYCLE,
                        "p": DAY,
                        "d": det,
                        "v": value,
                        "u": unit,
                        "t": tou,
                    },
                )
    finally:
        store.dispose()


def run_billing(bench: Bench) -> None:
    """``close_billing_cycle_job``: the close, then the export; re-executed from the failed step."""
    store, config = bench.store(), bench.config()
    try:
        if not bench.done("close"):
            version_determinants(
                store, CYCLE, DAY.isoformat(), closed_by="ops", threshold=0.9, estimated_share_limit=0.5
            )
            bench.mark("close")
        if not bench.done("export"):
            export_period(store, CYCLE, DAY.isoformat(), config.cis_export_dir)
            bench.mark("export")
    finally:
        store.dispose()


# --- 4. the real-time service -------------------------------------------------------------------------

PUSHES = [
    ("he1", ["M1"], range(0, 48)),
    ("he2", ["M2", "M3"], range(0, 48)),
    ("he1", ["M1"], range(48, 96)),
    ("he2", ["M2"], [s for s in range(48, 96) if s != 70]),
]


def setup_realtime(bench: Bench) -> None:
    store = bench.store()
    try:
        master_data(store, METERS)
    finally:
        store.dispose()


def run_realtime(bench: Bench) -> None:
    """The head-end pushes (re-sending a delivery it got no answer for); the service commits each,
    validates what is pending, and its dispatcher drains the outbox to the CIS."""
    store, config = bench.store(), bench.config()
    try:
        for i, (source, meters, slots) in enumerate(PUSHES):
            if not bench.done(f"push-{i}"):
                ingest_body(store, config, source, body(meters, slots), "http", name=f"push-{i}.csv")
                bench.mark(f"push-{i}")  # the 202 the head-end got
        validate_pending(store, config)
        _drain(store)
    finally:
        store.dispose()


def _drain(store: Store) -> None:
    """The dispatcher of every push destination ($SMARTMDM_CIS_PUSH_URL in the tests)."""
    for target in push_targets():
        Dispatcher(store, target, batch_size=40, timeout=10.0, backoff_base=0.01).drain(max_seconds=120)


# --- 5. the outbox dispatcher -------------------------------------------------------------------------


def setup_outbox(bench: Bench) -> None:
    setup_realtime(bench)
    store, config = bench.store(), bench.config()
    try:
        for i, (source, meters, slots) in enumerate(PUSHES):
            ingest_body(store, config, source, body(meters, slots), "http", name=f"push-{i}.csv")
        validate_pending(store, config)
    finally:
        store.dispose()


def run_outbox(bench: Bench) -> None:
    store = bench.store()
    try:
        _drain(store)
    finally:
        store.dispose()


@dataclass(frozen=True)
class Scenario:
    name: str
    setup: Callable[[Bench], None]
    run: Callable[[Bench], None]


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("delivery", setup_delivery, run_delivery),
        Scenario("vee_day", setup_vee, run_vee),
        Scenario("billing_close", setup_billing, run_billing),
        Scenario("realtime", setup_realtime, run_realtime),
        Scenario("outbox", setup_outbox, run_outbox),
    )
}
