"""Non-revenue water per operating day: DMA zone balances (hourly and daily) with minimum night
flow, and loss events from every detector (group nrw)."""

import datetime as dt

import dagster as dg
import pandas as pd

from smartmdm_pipelines.lib.metadata import table
from smartmdm_pipelines.lib.partitions import read_days
from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.services.loss_events import list_events
from smartmdm_pipelines.services.nrw import NrwRun, daily_balance_summary, day_window, run_days

READ_DAYS = read_days()
EVENT_ROWS = 50
BALANCE_COLUMNS = {
    "zone_id": "zone (DMA)",
    "read_day": "operating day",
    "input_volume": "system input: inlet meters minus outflow to child zones",
    "metered_volume": "customer consumption (valid + estimated intervals)",
    "estimated_volume": "estimated part of the customer consumption",
    "loss_volume": "input - customers (NRW volume)",
    "loss_percent": "loss as % of input",
    "input_completeness": "share of inlet intervals measured",
    "metered_completeness": "share of customer intervals holding a value",
    "complete": "complete enough to raise loss events",
    "min_night_flow": "minimum night flow (unit/h)",
    "excess_night_flow": "minimum night flow - legitimate night use (unit/h)",
}
EVENT_COLUMNS = {
    "event_id": "stable id (re-runs update the event)",
    "zone_id": "zone",
    "start": "change point (UTC)",
    "end": "end if it stopped",
    "kind": "abrupt | gradual (inflow detector) | balance",
    "shape": "step | rise",
    "rate_per_hour": "loss rate (unit/h)",
    "volume": "volume lost so far",
    "confidence": "0..1",
    "sources": "detectors that found it",
}


def events_table(events: pd.DataFrame) -> pd.DataFrame:
    import json

    ev = events.head(EVENT_ROWS)
    return pd.DataFrame(
        {
            "event_id": ev["event_id"],
            "zone_id": ev["zone_id"],
            "start": ev["start_at"].astype(str),
            "end": ev["end_at"].astype(str).where(ev["end_at"].notna(), "open"),
            "kind": ev["kind"],
            "shape": [json.loads(e or "{}").get("shape", "") for e in ev["evidence"]],
            "rate_per_hour": ev["rate"].astype(float).round(2),
            "volume": ev["volume"].astype(float).round(1),
            "confidence": ev["confidence"].astype(float).round(3),
            "sources": [
                "+".join(json.loads(e or "{}").get("sources", [s]))
                for e, s in zip(ev["evidence"], ev["source"], strict=True)
            ],
        }
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "zone_balances",
            deps=["interval_estimates"],
            group_name="nrw",
            kinds={"python"},
            owners=["team:nrw"],
            description=(
                "Per DMA zone (nested via parent_zone_id), per hour and per operating day: system input (inlet "
                "meters minus outflow to child zones), customer consumption from current valid and estimated "
                "intervals (estimated share shown), NRW volume and % of input, completeness of both sides; and the "
                "minimum night flow (02:00-04:00 local by default) with legitimate night use, excess and baseline."
            ),
        ),
        dg.AssetSpec(
            "loss_events",
            deps=["zone_balances"],
            group_name="nrw",
            kinds={"python"},
            owners=["team:nrw"],
            description=(
                "Loss events per zone from change points of the complete hourly balance (CUSUM; step vs slow rise; "
                "gaps and estimate-explained rises suppressed) and from any other registered detector: start, end, "
                "rate, volume, confidence, evidence. Re-runs update events by their stable id, never duplicate them; "
                "events of two detectors describing the same leak are merged."
            ),
        ),
    ],
    partitions_def=READ_DAYS,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=31),
    pool="smartmdm_store",
)
def nrw_day(context: dg.AssetExecutionContext, store: StoreResource, utility: UtilityConfigResource):
    cfg = utility.config
    db = store.get_store()
    window = context.partition_time_window
    first = pd.Timestamp(window.start).date()
    last = pd.Timestamp(window.end).date() - dt.timedelta(days=1)
    runs: list[NrwRun] = []
    for offset in range((last - first).days + 1):  # day by day: each day's detection sees the days before
        day = first + dt.timedelta(days=offset)
        run = run_days(db, cfg, day, day)
        context.log.info(
            f"{day}: {len(run.zones)} zones, {run.complete_days} complete / {run.incomplete_days} incomplete "
            f"balances; events "
            + ", ".join(
                f"{s}: {len(r.new)} new {len(r.updated)} updated {len(r.withdrawn)} withdrawn"
                for s, r in run.events.items()
            )
        )
        runs.append(run)
    balances = daily_balance_summary(db, first, last)[list(BALANCE_COLUMNS)]
    yield dg.MaterializeResult(
        asset_key="zone_balances",
        metadata={
            "dagster/row_count": sum(r.hourly_rows + r.daily_rows for r in runs),
            "zones": len({z for r in runs for z in r.zones}),
            "complete_zone_days": sum(r.complete_days for r in runs),
            "incomplete_zone_days": sum(r.incomplete_days for r in runs),
            "loss_volume": dg.MetadataValue.float(float(balances["loss_volume"].sum())),
            "daily_balances": table(balances, BALANCE_COLUMNS),
        },
    )
    start, end = day_window(first, last, cfg.utility.timezone)
    events = list_events(db, start=start, end=end)
    yield dg.MaterializeResult(
        asset_key="loss_events",
        metadata={
            "dagster/row_count": len(events),
            "new_events": dg.MetadataValue.json(
                sorted({e for r in runs for e in r.new_events} - {e for r in runs for e in r.merged})
            ),
            "merged_events": dg.MetadataValue.json(sorted({e for r in runs for e in r.merged})),
            "open_events": int((events["status"] == "open").sum()) if not events.empty else 0,
            "events": table(events_table(events), EVENT_COLUMNS),
        },
    )


nrw_job = dg.define_asset_job(
    "nrw_job",
    selection=dg.AssetSelection.assets("zone_balances", "loss_events"),
    description="Zone balances, night flow and loss events of operating days (`smartmdm nrw run`; `vee run` runs it too).",
)
