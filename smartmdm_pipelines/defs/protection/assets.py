"""Revenue protection per operating day: signals from the validated and estimated data, and cases
ranked by revenue at stake (group revenue_protection)."""

import dagster as dg
import pandas as pd

from smartmdm_pipelines.lib.partitions import read_days, window_days
from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.services.protection import ProtectionRun, evaluate_day, list_cases, open_case_totals

READ_DAYS = read_days()
TOP_ROWS = 10


def _top_table(cases: pd.DataFrame) -> str:
    lines = [
        "| rank | case | service point | score | revenue at stake | unbilled | indicators | since |",
        "|---:|---|---|---:|---:|---:|---|---|",
    ]
    for r in cases.itertuples():
        lines.append(
            f"| {r.rank} | {r.case_id} | {r.service_point_id} | {r.score:.2f} | "
            f"{(r.revenue_at_stake or 0):,.2f} | {r.unbilled_volume:,.1f} {r.unit or ''} | "
            f"{r.indicators.replace(';', ', ')} | {str(r.first_signal_at)[:16]} |"
        )
    return "\n".join(lines)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "protection_signals",
            deps=["interval_estimates", "billing_reference_data"],
            group_name="revenue_protection",
            kinds={"python"},
            owners=["team:revenue-protection"],
            description=(
                "Revenue-protection signals of the window ending on the operating day, per service point: tamper "
                "and reverse-flow events, consumption drop against its own history and its peers (seasonally "
                "adjusted), zero use on an occupied premise, a stopped water meter while its zone's losses rose, "
                "use on a vacant premise, register/interval disagreement, repeated estimation (protection_flags)."
            ),
        ),
        dg.AssetSpec(
            "protection_cases",
            deps=["protection_signals"],
            group_name="revenue_protection",
            kinds={"python"},
            owners=["team:revenue-protection"],
            description=(
                "One case per service point with a score and the revenue at stake (unbilled volume shadow-billed "
                "on the customer's tariff), ranked by revenue at stake × score. Analysts mark cases confirmed, "
                "false_positive or closed (mark_protection_case_job); closed cases reopen only on new evidence."
            ),
        ),
    ],
    partitions_def=READ_DAYS,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=31),
    pool="smartmdm_store",
)
def revenue_protection_day(
    context: dg.AssetExecutionContext, store: StoreResource, utility: UtilityConfigResource
):
    db = store.get_store()
    runs: list[ProtectionRun] = []
    for day in window_days(context.partition_time_window):
        run = evaluate_day(db, utility.config, day)
        context.log.info(
            f"{run.as_of}: {run.signals} signals, {run.candidates} cases supported; opened {len(run.opened)}, "
            f"reopened {len(run.reopened)}, withdrawn {len(run.withdrawn)}, updated {run.updated}"
        )
        runs.append(run)
    by_indicator: dict[str, int] = {}
    for run in runs:
        for name, n in run.signals_by_indicator.items():
            by_indicator[name] = by_indicator.get(name, 0) + n
    yield dg.MaterializeResult(
        asset_key="protection_signals",
        metadata={
            "dagster/row_count": sum(r.signals for r in runs),
            "signals_by_indicator": dg.MetadataValue.json(by_indicator),
        },
    )
    top = list_cases(db, top=TOP_ROWS, status="active")
    open_cases, at_stake = open_case_totals(db)
    yield dg.MaterializeResult(
        asset_key="protection_cases",
        metadata={
            "dagster/row_count": open_cases,
            "opened": sum(len(r.opened) for r in runs),
            "reopened": sum(len(r.reopened) for r in runs),
            "withdrawn": sum(len(r.withdrawn) for r in runs),
            "updated": sum(r.updated for r in runs),
            "new_high_score": dg.MetadataValue.json(sorted({c for r in runs for c in r.high_score_new})),
            "revenue_at_stake_open": dg.MetadataValue.float(at_stake),
            "top_cases": dg.MetadataValue.md(_top_table(top)),
        },
    )


revenue_protection_job = dg.define_asset_job(
    "revenue_protection_job",
    selection=dg.AssetSelection.assets("protection_signals", "protection_cases"),
    description="Evaluate operating days for revenue protection: signals, then ranked cases.",
)
