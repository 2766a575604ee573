"""Wall time of a VEE backfill in-process vs on Celery workers (issue 14).

    .venv/bin/python benchmarks/bench_celery_vee.py [--meters 2000] [--days 3] [--shards 2] [--workers 2]

One synthetic utility is loaded into three PostgreSQL stores; then the same days run
- ``vee_job`` in-process (the daily asset, unsharded: what a single machine runs today),
- ``vee_sharded_job`` in-process (the same shards one after the other: the sharding's own cost),
- ``vee_celery_job`` on ``--workers`` Celery worker processes over RabbitMQ (127.0.0.1:5672 or
  SMARTMDM_TEST_AMQP_URL), the Dagster instance on PostgreSQL.
Days run in order, one run each. Worker start-up is not timed; each Celery figure includes the
run coordinator, the queue round trips and the workers' first load of the code location.
Prints JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import yaml
from pg import Postgres

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' helpers and the job pointer

from smartmdm_pipelines.store.store import Store  # noqa: E402
from smartmdm_pipelines_tests.scale import utility  # noqa: E402
from smartmdm_pipelines_tests.scale.celery_workers import Workers  # noqa: E402
from smartmdm_pipelines_tests.scale.utility import load  # noqa: E402

BROKER = os.environ.get("SMARTMDM_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
REPO = Path(__file__).resolve().parents[1]


def timed_days(days: list[dt.date], run) -> float:
    t0 = time.perf_counter()
    for day in days:
        if not run(day).success:
            raise SystemExit(f"the run of {day} failed")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--meters", type=int, default=2000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    postgres = Postgres(args.postgres)
    if postgres.problem:
        raise SystemExit(postgres.problem)
    result: dict = vars(args) | {"cpus": os.cpu_count()}
    names = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sim = utility.simulate(tmp / "sim", meters=args.meters, days=args.days)
        data = tmp / "data"
        os.environ["SMARTMDM_DATA_DIR"] = str(data)
        try:
            urls = {}
            for label in ("in_process", "sharded_in_process", "celery", "instance"):
                name, url = postgres.database()
                names.append(name)
                urls[label] = (name, url)
            for label in ("in_process", "sharded_in_process", "celery"):
                store = Store(urls[label][1])
                days = load(store, sim, data)
                store.dispose()
            result["intervals_per_day"] = args.meters * 96  # about: most meters are 15-minute
            from smartmdm_pipelines.definitions import defs

            shards = {"resources": {"vee_shards": {"config": {"count": args.shards}}}}
            os.environ["SMARTMDM_DATABASE_URL"] = urls["in_process"][1]
            vee_job = defs().resolve_job_def("vee_job")
            result["in_process_vee_job_s"] = round(
                timed_days(days, lambda d: vee_job.execute_in_process(partition_key=d.isoformat())), 1
            )
            os.environ["SMARTMDM_DATABASE_URL"] = urls["sharded_in_process"][1]
            sharded = defs().get_job_def("vee_sharded_job")
            result["in_process_sharded_s"] = round(
                timed_days(
                    days, lambda d: sharded.execute_in_process(partition_key=d.isoformat(), run_config=shards)
                ),
                1,
            )
            os.environ["SMARTMDM_DATABASE_URL"] = urls["celery"][1]
            home = tmp / "dagster_home"
            home.mkdir()
            storage = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())["storage"]
            admin = postgres.admin
            storage["postgres"]["postgres_db"].update(
                hostname=admin.host,
                port=admin.port or 5432,
                username=admin.username,
                password=admin.password or "",
                db_name=urls["instance"][0],
            )
            (home / "dagster.yaml").write_text(
                yaml.safe_dump({"storage": storage, "telemetry": {"enabled": False}})
            )
            env = {**os.environ, "DAGSTER_HOME": str(home)}
            workers = Workers(tmp / "workers", env, args.workers, BROKER)
            try:
                workers.wait_ready(300)
                config = shards | {
                    "execution": {
                        "config": {
                            "broker": BROKER,
                            "backend": "rpc://",
                            "config_source": {"task_default_queue": workers.queue},
                        }
                    }
                }
                with dg.DagsterInstance.from_config(str(home)) as instance:
                    result["celery_s"] = round(
                        timed_days(
                            days,
                            lambda d: dg.execute_job(
                                dg.reconstructable(utility.celery_job),
                                instance=instance,
                                run_config=config,
                                tags={"dagster/partition": d.isoformat()},
                            ),
                        ),
                        1,
                    )
            finally:
                workers.stop()
            counts = {}
            for label in ("in_process", "celery"):
                store = Store(urls[label][1])
                counts[label] = store.count("intervals")
                store.dispose()
            result["interval_versions"] = counts
        finally:
            for name in names:
                postgres.drop(name)
            postgres.close()
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
