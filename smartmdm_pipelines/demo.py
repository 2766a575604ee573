"""`smartmdm demo`: a synthetic utility, landed and ingested through Dagster, summarised from the store."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from smartmdm_pipelines.demo_live import live_lines
from smartmdm_pipelines.lib.instance import QUIET_RUN_CONFIG, ensure_local_instance


@dataclass
class DemoOptions:
    data_dir: Path
    meters: int = 1000
    start: dt.date = dt.date(2024, 3, 8)
    days: int = 7
    seed: int = 42
    fresh: bool = True
    live: bool = True  # the live section (demo_live.py) after the batch part


@dataclass
class DemoResult:
    runs_succeeded: int = 0
    runs_failed: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # closes refused by the completeness gate, as designed
    seconds: float = 0.0
    summary: dict = field(default_factory=dict)


def prepare_environment(data_dir: Path) -> None:
    os.environ["SMARTMDM_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("SMARTMDM_LANDING_SETTLE_SECONDS", "0")
    ensure_local_instance(data_dir)


def run_demo(options: DemoOptions, echo=print) -> DemoResult:
    started = time.perf_counter()
    data_dir = Path(options.data_dir).resolve()
    prepare_environment(data_dir)
    if options.fresh:
        _reset(data_dir)

    # imported here: they read the environment prepared above
    import dagster as dg

    from smartmdm_pipelines.config import load_config
    from smartmdm_pipelines.definitions import defs
    from smartmdm_pipelines.lib.launch import run_job, sensor_run_tags, store_sensor_cursor
    from smartmdm_pipelines.lib.resources import UtilityConfigResource
    from smartmdm_pipelines.simulate import SimulationSpec, generate
    from smartmdm_pipelines.store.store import Store

    cfg = load_config(data_dir=data_dir)
    sim_dir = data_dir / "simulation"
    echo(
        f"Generating a synthetic utility: {options.meters} meters, {options.days} days from {options.start} …"
    )
    generated = generate(
        sim_dir,
        SimulationSpec(
            meters=options.meters, start=options.start, days=options.days, seed=options.seed, formats="mix"
        ),
    )
    _land(sim_dir, cfg)
    echo(f"  {len(generated.files)} head-end files landed in {cfg.landing_dir}")

    definitions = defs()
    result = DemoResult()
    with dg.DagsterInstance.get() as instance:
        # every run is created against code location `smartmdm` (lib/launch.py), so the UI's job
        # pages list them; sensor ticks are recorded on the instance as the daemon records them
        echo("Syncing CIS master data (asset cis_master_data) …")
        cis = run_job(instance, "cis_sync_job", run_config=QUIET_RUN_CONFIG)
        _count(result, cis.success, "cis_master_data")

        sensor = definitions.resolve_sensor_def("headend_file_sensor")
        context = dg.build_sensor_context(
            instance=instance,
            definitions=definitions,
            resources={"utility": UtilityConfigResource.from_environment()},
        )
        tick = sensor(context)
        for request in tick.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        requests = tick.run_requests or []
        echo(f"Ingesting {len(requests)} files (sensor headend_file_sensor → job ingest_headend_job) …")
        for request in requests:
            run = run_job(
                instance,
                "ingest_headend_job",
                partition_key=request.partition_key,
                run_config=QUIET_RUN_CONFIG,
                tags=sensor_run_tags(sensor.name, request),
            )
            _count(result, run.success, request.tags.get("smartmdm/file", request.partition_key))
        store_sensor_cursor(instance, sensor, tick.cursor)

        vee_sensor = definitions.resolve_sensor_def("vee_day_sensor")
        vee_tick = vee_sensor(dg.build_sensor_context(instance=instance, definitions=definitions))
        days = [r.partition_key for r in vee_tick.run_requests or []]
        echo(f"Validating and estimating {len(days)} operating days (sensor vee_day_sensor → job vee_job) …")
        for request in vee_tick.run_requests or []:
            run = run_job(
                instance,
                "vee_job",
                partition_key=request.partition_key,
                run_config=QUIET_RUN_CONFIG,
                tags=sensor_run_tags(vee_sensor.name, request),
            )
            _count(result, run.success, f"vee {request.partition_key}")
        # the daemon started with the UI continues from here: it does not validate these days again
        store_sensor_cursor(instance, vee_sensor, vee_tick.cursor)
        queue = run_job(instance, "exception_queue_job", run_config=QUIET_RUN_CONFIG)
        _count(result, queue.success, "vee_exception_queue")

        echo("Loading tariffs and system peaks (asset billing_reference_data) …")
        ref = run_job(instance, "billing_reference_job", run_config=QUIET_RUN_CONFIG)
        _count(result, ref.success, "billing_reference_data")
        _close_a_cycle(instance, result, options, echo)
        _nrw(instance, result, options, echo)
        _revenue_protection(instance, result, options, echo)

    store = Store()
    result.summary = store_summary(store)
    result.summary["protection"] = protection_summary(store)
    result.summary["nrw"] = nrw_summary(store)
    store.dispose()
    if options.live:
        from smartmdm_pipelines.demo_live import run_live

        echo("Live: smartmdm serve in-process with a CIS stub on loopback; reads POSTed over HTTP …")
        live = run_live(cfg)
        result.summary["live"] = live.to_dict()
        if not live.ok:
            result.runs_failed.append("live section")
    result.seconds = time.perf_counter() - started
    return result


def _close_config(**config) -> dict:
    close = {"closed_by": "demo", "reason": "demo: monthly close", **config}
    return {**QUIET_RUN_CONFIG, "ops": {"billing_determinants": {"config": close}}}


def _close_a_cycle(instance, result: DemoResult, options: DemoOptions, echo) -> None:
    """Close the billing period that overlaps the demo window most: the completeness gate refuses it
    (the demo holds one week of the period), then the billing team's forced close goes through."""
    import pandas as pd

    from smartmdm_pipelines.lib.launch import run_job
    from smartmdm_pipelines.services.billing_close import period_key
    from smartmdm_pipelines.store.store import Store

    store = Store()
    first, last = options.start, options.start + dt.timedelta(days=options.days - 1)
    periods = store.read_frame(
        "SELECT cycle_id, period_start, period_end FROM billing_cycles WHERE period_start <= :b AND period_end >= :a "
        "ORDER BY cycle_id, period_start",
        {"a": first, "b": last},
    )
    store.dispose()
    if periods.empty:
        echo("  no billing period overlaps the demo window; nothing to close")
        return
    starts = pd.to_datetime(periods["period_start"]).dt.date
    ends = pd.to_datetime(periods["period_end"]).dt.date
    overlap = [(min(e, last) - max(b, first)).days for b, e in zip(starts, ends, strict=True)]
    best = periods.iloc[max(range(len(overlap)), key=overlap.__getitem__)]
    key = period_key(best.cycle_id, starts.iloc[periods.index.get_loc(best.name)])
    echo(
        f"Closing billing period {key} (job close_billing_cycle_job: dbt → determinants → checks → export) …"
    )
    first_try = run_job(instance, "close_billing_cycle_job", partition_key=key, run_config=_close_config())
    if not first_try.success:
        if not _refused(best.cycle_id, starts.iloc[periods.index.get_loc(best.name)]):
            _count(result, False, f"close {key} (not a completeness refusal: see the run in the UI)")
            return
        result.refusals.append(key)
        echo(
            "  refused by the completeness gate (the demo holds one week of this period); closing with force=true"
        )
        forced = run_job(
            instance,
            "close_billing_cycle_job",
            partition_key=key,
            run_config=_close_config(force=True, reason="demo: the store holds only one week of this period"),
        )
        _count(result, forced.success, f"close {key}")
    else:
        _count(result, True, f"close {key}")


def _refused(cycle_id: str, period_start: dt.date) -> bool:
    """Whether the close log holds the completeness gate's refusal of this period."""
    from smartmdm_pipelines.store.store import Store

    store = Store()
    try:
        return bool(
            store.scalar(
                "SELECT count(*) FROM billing_closes WHERE cycle_id = :c AND period_start = :p "
                "AND outcome = 'refused'",
                {"c": cycle_id, "p": period_start},
            )
        )
    finally:
        store.dispose()


def _revenue_protection(instance, result: DemoResult, options: DemoOptions, echo) -> None:
    """Evaluate the window's last operating day for revenue protection (its window covers the week)."""
    from smartmdm_pipelines.lib.launch import run_job

    last = (options.start + dt.timedelta(days=options.days - 1)).isoformat()
    echo(f"Revenue protection for {last} (job revenue_protection_job: signals → ranked cases) …")
    run = run_job(instance, "revenue_protection_job", partition_key=last, run_config=QUIET_RUN_CONFIG)
    _count(result, run.success, f"revenue protection {last}")


def _nrw(instance, result: DemoResult, options: DemoOptions, echo) -> None:
    """Zone balances, night flow and loss events of the week (one backfill run of nrw_job)."""
    from smartmdm_pipelines.lib.launch import run_job

    first = options.start.isoformat()
    last = (options.start + dt.timedelta(days=options.days - 1)).isoformat()
    echo(f"NRW zone balances and loss events {first}..{last} (job nrw_job) …")
    run = run_job(instance, "nrw_job", partition_range=(first, last), run_config=QUIET_RUN_CONFIG)
    _count(result, run.success, f"nrw {first}..{last}")


def nrw_summary(store) -> dict:
    """Zone balance totals and every loss event found."""
    from smartmdm_pipelines.config import load_config
    from smartmdm_pipelines.services.loss_events import list_events

    totals = store.read_frame(
        "SELECT count(DISTINCT zone_id) AS zones, sum(input_volume) AS input, sum(loss_volume) AS loss, "
        "sum(CASE WHEN complete THEN 1 ELSE 0 END) AS complete, count(*) AS days, max(unit) AS unit "
        "FROM zone_balances WHERE interval_seconds = 86400"
    ).iloc[0]
    events = list_events(store)
    tz = load_config().utility.timezone
    for column in ("start_at", "end_at"):  # local time, as `smartmdm nrw events` prints it
        events[column] = (
            events[column].dt.tz_convert(tz).dt.strftime("%Y-%m-%d %H:%M").where(events[column].notna())
        )
    return {
        "zones": int(totals["zones"] or 0),
        "input": float(totals["input"] or 0),
        "loss": float(totals["loss"] or 0),
        "complete_days": int(totals["complete"] or 0),
        "zone_days": int(totals["days"] or 0),
        "unit": totals["unit"] or "",
        "events": events.to_dict(orient="records"),
    }


def _nrw_lines(s: dict) -> list[str]:
    n = s.get("nrw") or {}
    if not n.get("zone_days"):
        return []
    share = 100 * n["loss"] / n["input"] if n["input"] else 0.0
    lines = [
        f"  NRW zone balances      {n['zone_days']:>12,}  zone-days in {n['zones']} zones, {n['complete_days']} complete; "
        f"loss {n['loss']:,.0f} {n['unit']} ({share:.1f} % of input)",
        f"  loss events            {len(n['events']):>12,}"
        + (" — `smartmdm nrw events` lists them:" if n["events"] else ""),
    ]
    for e in n["events"]:
        end = e["end_at"] if isinstance(e["end_at"], str) else "open"
        lines.append(
            f"    {e['zone_id']:<5} {e['start_at']} → {end:<16} {e['kind']:<8} "
            f"{e['rate']:>9,.1f} {e['unit']}/h  {e['volume']:>10,.0f} {e['unit']}  confidence {e['confidence']:.2f}"
        )
    return lines


def protection_summary(store, top: int = 5) -> dict:
    """Open cases, their revenue at stake and the top ``top`` by revenue at stake × score."""
    from smartmdm_pipelines.services.protection import list_cases

    cases = list_cases(store)
    return {
        "open_cases": len(cases),
        "revenue_at_stake": float(cases["revenue_at_stake"].fillna(0).sum()),
        "top": cases.head(top).to_dict(orient="records"),
    }


def _protection_lines(s: dict) -> list[str]:
    p = s.get("protection") or {}
    lines = [
        f"  protection cases       {p.get('open_cases', 0):>12,}  open, ${p.get('revenue_at_stake', 0):,.2f} at stake"
        + (" — top five:" if p.get("top") else "")
    ]
    for c in p.get("top", []):
        at_stake = (
            c["revenue_at_stake"] if c["revenue_at_stake"] == c["revenue_at_stake"] else 0.0
        )  # NaN: no tariff
        lines.append(
            f"    {c['rank']}. {c['case_id']:<18} score {c['score']:.2f}  ${at_stake:>9,.2f}  "
            f"{c['unbilled_volume']:,.1f} {c['unit'] if isinstance(c['unit'], str) else ''} unbilled  {c['indicators'].replace(';', ', ')}"
        )
    return lines


def store_summary(store) -> dict:
    """Real numbers from the store, per stage."""
    from smartmdm_pipelines.store.intervals import current_intervals_sql

    q = store.read_frame
    meters = q("SELECT commodity || '/' || kind AS k, count(*) AS n FROM meters GROUP BY 1 ORDER BY 1")
    files = q("SELECT status, count(*) AS n FROM headend_files GROUP BY 1 ORDER BY 1")
    return {
        "meters": int(store.count("meters")),
        "meters_by_kind": {r.k: int(r.n) for r in meters.itertuples()},
        "service_points": int(store.count("service_points")),
        "accounts": int(store.count("accounts")),
        "billing_cycles": int(store.count("billing_cycles")),
        "files_by_status": {r.status: int(r.n) for r in files.itertuples()},
        "interval_reads_loaded": int(store.count("raw_reads")),
        "register_reads_loaded": int(store.count("register_reads")),
        "events_loaded": int(store.count("meter_events")),
        "rows_rejected": int(store.count("rejected_rows")),
        "operating_days": int(store.scalar("SELECT count(DISTINCT read_day) FROM raw_reads") or 0),
        # an interval not received yet but still inside the re-collection window is awaited, not missing
        "intervals_by_status": {
            r.status: int(r.n)
            for r in q(
                "SELECT CASE WHEN status = 'missing' AND failed_rules LIKE '%awaiting_data%' THEN 'awaiting' "
                f"ELSE status END AS status, count(*) AS n FROM ({current_intervals_sql()}) c GROUP BY 1 ORDER BY 1"
            ).itertuples()
        },
        "interval_versions": int(store.count("intervals")),
        "estimated_by_method": {
            r.m: int(r.n)
            for r in q(
                "SELECT split_part(estimation_method, '+', 1) AS m, count(*) AS n "
                f"FROM ({current_intervals_sql()}) c WHERE status = 'estimated' GROUP BY 1 ORDER BY 2 DESC"
            ).itertuples()
        },
        "billing_closes": q(
            "SELECT c.cycle_id, c.period_start, c.period_end, c.outcome, c.completeness, c.accounts, c.new_versions, "
            "c.forced, (SELECT count(*) FROM billing_determinants d WHERE d.cycle_id = c.cycle_id "
            "AND d.period_start = c.period_start) AS determinant_rows, (SELECT sum(value) FROM billing_determinants d "
            "WHERE d.cycle_id = c.cycle_id AND d.period_start = c.period_start AND d.determinant = 'kwh_delivered' "
            "AND d.tou_period IS NULL) AS kwh FROM billing_closes c ORDER BY c.closed_at"
        ).to_dict(orient="records"),
        "cis_export_records": int(
            store.scalar("SELECT count(*) FROM outbound_messages WHERE channel = 'cis_batch'")
        ),
        "cis_export_intervals": int(
            store.scalar("SELECT count(*) FROM outbox WHERE destination = 'cis_batch'")
        ),
        "open_exceptions_by_rule": {
            r.rule: int(r.n)
            for r in q(
                "SELECT rule, count(*) AS n FROM vee_exceptions WHERE status = 'open' GROUP BY 1 ORDER BY 2 DESC"
            ).itertuples()
        },
    }


def format_summary(result: DemoResult) -> str:
    s = result.summary
    lines = [
        "",
        "Smart MDM demo — summary from the store",
        f"  meters                 {s['meters']:>12,}  "
        + ", ".join(f"{k} {v}" for k, v in s["meters_by_kind"].items()),
        f"  service points         {s['service_points']:>12,}",
        f"  accounts               {s['accounts']:>12,}",
        f"  billing cycle periods  {s['billing_cycles']:>12,}",
        "  head-end files         "
        + f"{sum(s['files_by_status'].values()):>12,}  "
        + ", ".join(f"{k} {v}" for k, v in s["files_by_status"].items()),
        f"  interval reads loaded  {s['interval_reads_loaded']:>12,}  over {s['operating_days']} operating days",
        f"  register reads loaded  {s['register_reads_loaded']:>12,}",
        f"  meter events loaded    {s['events_loaded']:>12,}",
        f"  rows rejected          {s['rows_rejected']:>12,}  (see table rejected_rows)",
        "  VEE current intervals  "
        + f"{sum(s['intervals_by_status'].values()):>12,}  "
        + ", ".join(
            f"{k} {v:,}" + (" (inside the re-collection window)" if k == "awaiting" else "")
            for k, v in s["intervals_by_status"].items()
        ),
        f"  interval versions      {s['interval_versions']:>12,}",
        "  estimated by method    " + ", ".join(f"{k} {v:,}" for k, v in s["estimated_by_method"].items()),
        f"  open VEE exceptions    {sum(s['open_exceptions_by_rule'].values()):>12,}  "
        + ", ".join(f"{k} {v}" for k, v in list(s["open_exceptions_by_rule"].items())[:8]),
        *_billing_lines(s),
        *_nrw_lines(s),
        *_protection_lines(s),
        *live_lines(s.get("live")),
        f"  Dagster runs           {result.runs_succeeded:>12,} succeeded, {len(result.runs_failed)} failed"
        + (f" ({', '.join(result.runs_failed[:5])})" if result.runs_failed else "")
        + (
            f"; {len(result.refusals)} close refused by the completeness gate, as designed"
            if result.refusals
            else ""
        ),
        f"  elapsed                {result.seconds:>12.1f} s",
    ]
    return "\n".join(lines)


def _billing_lines(s: dict) -> list[str]:
    lines = []
    for c in s.get("billing_closes", []):
        line = (
            f"  billing close          {c['cycle_id']} {str(c['period_start'])[:10]}..{str(c['period_end'])[:10]}: "
            f"{c['outcome']}{' (forced)' if c['forced'] else ''}, completeness {c['completeness']:.1%}"
        )
        if c["outcome"] != "refused":
            line += (
                f", {c['accounts']:,} accounts, {c['new_versions']:,} new versions, "
                f"{c['determinant_rows']:,} determinant rows, {(c['kwh'] or 0):,.0f} kWh delivered"
            )
        lines.append(line)
    lines.append(
        f"  CIS export records     {s.get('cis_export_records', 0):>12,}  determinant records and "
        f"{s.get('cis_export_intervals', 0):,} interval versions (outbox folder; outbound_messages, outbox)"
    )
    return lines


def _count(result: DemoResult, success: bool, label: str) -> None:
    if success:
        result.runs_succeeded += 1
    else:
        result.runs_failed.append(label)


def _reset(data_dir: Path) -> None:
    for name in ("landing", "archive", "quarantine", "cis", "simulation", "dagster_home"):
        shutil.rmtree(data_dir / name, ignore_errors=True)
    for name in ("smartmdm.duckdb", "smartmdm.duckdb.wal"):
        (data_dir / name).unlink(missing_ok=True)
    ensure_local_instance(data_dir)


def _land(sim_dir: Path, cfg) -> None:
    """Copy the simulator's CIS drop and head-end files to where the pipelines look for them."""
    cfg.cis_drop_dir.mkdir(parents=True, exist_ok=True)
    for path in (sim_dir / "cis").glob("*.csv"):
        shutil.copy2(path, cfg.cis_drop_dir / path.name)
    cfg.landing_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted((sim_dir / "headend").iterdir()):
        if path.is_file():
            shutil.copy2(path, cfg.landing_dir / path.name)
