"""Operations commands of the `smartmdm` CLI: ``vee run`` over a date range and ``cis sync``.

Both run their Dagster job on the instance in $DAGSTER_HOME (the local one under the data
directory unless set), against code location ``smartmdm`` (lib/launch.py), so the runs appear
on the job pages of the UI like those the daemon launches.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path


def _prepare(args: argparse.Namespace) -> None:
    """Environment of the jobs: data directory, utility YAML, local Dagster instance."""
    from smartmdm_pipelines.demo import prepare_environment

    if args.config:
        os.environ["SMARTMDM_CONFIG"] = str(Path(args.config).resolve())
    prepare_environment(Path(args.data_dir or os.environ.get("SMARTMDM_DATA_DIR") or "data").resolve())


def day_chunks(first: dt.date, last: dt.date, size: int) -> list[tuple[str, str]]:
    """``first..last`` as consecutive runs of at most ``size`` days (first and last key of each)."""
    days = (last - first).days + 1
    return [
        (
            (first + dt.timedelta(days=a)).isoformat(),
            (first + dt.timedelta(days=min(a + size, days) - 1)).isoformat(),
        )
        for a in range(0, days, size)
    ]


def _range_error(first: dt.date, last: dt.date, start: dt.date, newest: str | None) -> str | None:
    if first > last:
        return f"--from {first} is after --to {last}"
    if first < start:
        return (
            f"--from {first} is before the first operating-day partition {start} "
            "(utility.partitions_start in the utility YAML)"
        )
    if newest is None or last.isoformat() > newest:
        return f"--to {last} is not a complete operating day yet (the newest is {newest})"
    return None


def _failure(result) -> str:
    """The first failed step's message (one line)."""
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            return str(event.event_specific_data.error.message).strip().splitlines()[0]
    return "run failed"


def _day_chunks_of(args: argparse.Namespace, asset: str) -> tuple[list[tuple[str, str]], int] | None:
    """The backfill chunks of --from..--to for a day-partitioned asset (its backfill policy caps
    --chunk), or None after printing why the range is not valid."""
    from smartmdm_pipelines.definitions import defs
    from smartmdm_pipelines.lib.partitions import read_days

    partitions = read_days()
    keys = partitions.get_partition_keys()
    error = _range_error(args.first, args.last, partitions.start.date(), keys[-1] if keys else None)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return None
    policy = defs().get_assets_def(asset).backfill_policy
    chunk = min(args.chunk, (policy.max_partitions_per_run if policy else None) or args.chunk)
    return day_chunks(args.first, args.last, chunk), chunk


def cmd_vee_run(args: argparse.Namespace) -> int:
    """Validate and estimate the operating days --from..--to through vee_job, in backfill chunks."""
    _prepare(args)
    import dagster as dg

    from smartmdm_pipelines.lib.instance import QUIET_RUN_CONFIG
    from smartmdm_pipelines.lib.launch import run_job

    planned = _day_chunks_of(args, "validated_intervals")
    if planned is None:
        return 2
    chunks, chunk = planned
    total = sum((dt.date.fromisoformat(b) - dt.date.fromisoformat(a)).days + 1 for a, b in chunks)
    started, done, reads, failed_days, failed_runs = time.perf_counter(), 0, 0, [], 0
    print(
        f"VEE of {total} operating days {args.first}..{args.last} in {len(chunks)} run(s) of up to {chunk} days"
    )
    has_zones = _has_water_zones()
    with dg.DagsterInstance.get() as instance:
        for first, last in chunks:
            one = first == last
            result = run_job(
                instance,
                "vee_job",
                partition_key=first if one else None,
                partition_range=None if one else (first, last),
                run_config=QUIET_RUN_CONFIG,
                tags={"smartmdm/command": "vee run"},
            )
            done += (dt.date.fromisoformat(last) - dt.date.fromisoformat(first)).days + 1
            for event in result.asset_materializations_for_node("vee_day"):
                if event.asset_key.path == ["validated_intervals"]:
                    reads += int(event.metadata["received_intervals"].value)
            gx = [
                e.partition
                for e in result.get_asset_check_evaluations()
                if e.check_name == "interval_estimates_gx" and e.partition and not e.passed
            ]
            failed_days += gx
            failed_runs += 0 if result.success else 1
            if result.success and has_zones:  # the NRW outputs of these days follow their intervals
                nrw = _run_chunk(instance, "nrw_job", first, last, "vee run")
                failed_runs += 0 if nrw.success else 1
            elapsed = time.perf_counter() - started
            status = (
                "ok"
                if result.success
                else (
                    f"{len(gx)} day(s) failed interval_estimates_gx: {', '.join(gx[:5])}"
                    if gx
                    else _failure(result)
                )
            )
            print(
                f"{done}/{total} days  {reads:,} reads  {reads / elapsed:,.0f} reads/s  run {first}..{last}: {status}",
                flush=True,
            )
        run_job(instance, "exception_queue_job", run_config=QUIET_RUN_CONFIG)  # the UI's queue, refreshed
    if failed_days:
        print(f"{len(failed_days)} day(s) fail the blocking check and hold billing back: {failed_days[:20]}")
    return 1 if failed_runs else 0


def _has_water_zones() -> bool:
    """Whether the store holds zones (else `vee run` has no NRW outputs to refresh)."""
    from smartmdm_pipelines.store.busy import open_store

    store = open_store()
    try:
        return bool(store.scalar("SELECT count(*) FROM zones"))
    finally:
        store.dispose()


def _run_chunk(instance, job: str, first: str, last: str, command: str):
    from smartmdm_pipelines.lib.instance import QUIET_RUN_CONFIG
    from smartmdm_pipelines.lib.launch import run_job

    one = first == last
    return run_job(
        instance,
        job,
        partition_key=first if one else None,
        partition_range=None if one else (first, last),
        run_config=QUIET_RUN_CONFIG,
        tags={"smartmdm/command": command},
    )


def run_days_through(args: argparse.Namespace, job: str, command: str, chunk_asset: str) -> int:
    """Run a day-partitioned job over --from..--to in backfill chunks (what `nrw run` does)."""
    _prepare(args)
    import dagster as dg

    planned = _day_chunks_of(args, chunk_asset)
    if planned is None:
        return 2
    failed = 0
    with dg.DagsterInstance.get() as instance:
        for first, last in planned[0]:
            result = _run_chunk(instance, job, first, last, command)
            failed += 0 if result.success else 1
            print(f"{job} {first}..{last}: {'ok' if result.success else _failure(result)}", flush=True)
    return 1 if failed else 0


def cmd_cis_sync(args: argparse.Namespace) -> int:
    """Synchronise CIS master data (CSV drop or REST API, per cis.source) through cis_sync_job."""
    _prepare(args)
    import dagster as dg

    from smartmdm_pipelines.lib.instance import QUIET_RUN_CONFIG
    from smartmdm_pipelines.lib.launch import run_job

    with dg.DagsterInstance.get() as instance:
        result = run_job(
            instance, "cis_sync_job", run_config=QUIET_RUN_CONFIG, tags={"smartmdm/command": "cis sync"}
        )
    if not result.success:
        print(f"error: {_failure(result)}", file=sys.stderr)
        return 1
    [event] = result.asset_materializations_for_node("cis_master_data")
    meta = {k: v.value for k, v in event.metadata.items()}
    print(f"CIS master data from {meta['source']} (effective {meta['effective_date']})")
    tables = sorted({k.rsplit("_", 1)[0] for k in meta if k.endswith("_received")})
    for table in tables:
        counts = ", ".join(
            f"{meta[f'{table}_{n}']:,} {n}" for n in ("received", "inserted", "updated", "closed")
        )
        print(f"  {table:<24} {counts}")
    print(f"  billing periods added    {meta['billing_periods_added']:,}")
    if meta["vee_days"]:
        days = meta["vee_days"]
        print(
            f"  {len(days)} operating day(s) hold reads of meters this sync registered: validate them with "
            f"`smartmdm vee run --from {days[0]} --to {days[-1]}` (the daemon's vee_day_sensor requests them too)"
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    date = dt.date.fromisoformat
    p = sub.add_parser("vee", help="VEE through Dagster: `vee run --from DAY --to DAY`")
    vee = p.add_subparsers(dest="vee_command", required=True)
    q = vee.add_parser(
        "run", help="validate and estimate a range of operating days through vee_job, in backfill chunks"
    )
    q.add_argument("--from", dest="first", type=date, required=True, help="first operating day (YYYY-MM-DD)")
    q.add_argument("--to", dest="last", type=date, required=True, help="last operating day (YYYY-MM-DD)")
    q.add_argument(
        "--chunk", type=int, default=31, help="days per Dagster run (at most the backfill policy's 31)"
    )
    q.set_defaults(func=cmd_vee_run)

    p = sub.add_parser("cis", help="CIS master data through Dagster: `cis sync`")
    cis = p.add_subparsers(dest="cis_command", required=True)
    q = cis.add_parser("sync", help="synchronise CIS master data (CSV drop or REST API, per cis.source)")
    q.set_defaults(func=cmd_cis_sync)
