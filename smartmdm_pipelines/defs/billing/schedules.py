"""The close job (launchpad: cycle|period partition, force, forward_estimate, closed_by, reason)
and the schedule that closes periods whose read date plus the grace period has passed."""

import dagster as dg
import pandas as pd

from smartmdm_pipelines.config import default_config
from smartmdm_pipelines.lib.partitions import BILLING_PERIODS, ensure_partitions
from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.services.billing_close import period_key
from smartmdm_pipelines.services.billing_schedule import periods_due

close_billing_cycle_job = dg.define_asset_job(
    "close_billing_cycle_job",
    selection=dg.AssetSelection.groups("billing")
    - dg.AssetSelection.assets("billing_reference_data")
    - dg.AssetSelection.key_prefixes("store"),
    partitions_def=BILLING_PERIODS,
    description=(
        "Close or re-close one billing cycle period: dbt determinants and tests, completeness gate, versioned "
        "determinants (corrections when a closed period changed), blocking checks, CIS batch export. Config "
        "billing_determinants.config: closed_by and reason (required), force, forward_estimate. Refused while a "
        "day of the period fails the blocking interval_estimates_gx check."
    ),
)

billing_reference_job = dg.define_asset_job(
    "billing_reference_job",
    selection=dg.AssetSelection.assets("billing_reference_data"),
    description="Reload tariffs and system peaks from the utility config.",
)


@dg.schedule(
    cron_schedule="0 6 * * *",
    job=close_billing_cycle_job,
    execution_timezone=default_config().utility.timezone,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every morning: close the billing periods whose read date plus the grace period has passed.",
)
def billing_close_schedule(
    context: dg.ScheduleEvaluationContext, store: StoreResource, utility: UtilityConfigResource
):
    cfg = utility.config
    when = pd.Timestamp(context.scheduled_execution_time)
    today = (when.tz_localize("UTC") if when.tzinfo is None else when).tz_convert(cfg.utility.timezone).date()
    due = periods_due(store.get_store(), today, cfg.billing.grace_days)
    keys = [period_key(r.cycle_id, r.period_start) for r in due.itertuples()]
    if not keys:
        return dg.SkipReason(f"no billing period due on {today} (grace {cfg.billing.grace_days} days)")
    ensure_partitions(context.instance, BILLING_PERIODS, keys)
    # a scheduled close says who and why, like a manual one (both are required config)
    close = {
        "closed_by": "billing_close_schedule",
        "reason": f"read date + {cfg.billing.grace_days} grace days passed",
    }
    return [
        dg.RunRequest(
            partition_key=k,
            run_key=f"close:{k}:{today}",
            run_config={"ops": {"billing_determinants": {"config": close}}},
        )
        for k in keys
    ]
