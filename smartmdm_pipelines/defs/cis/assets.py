"""CIS master data, synchronised inbound from the CIS's CSV drop or its REST API, with history."""

import dagster as dg

from smartmdm_pipelines.lib.partitions import BILLING_PERIODS, ensure_partitions
from smartmdm_pipelines.lib.resources import CisClientResource, StoreResource, UtilityConfigResource
from smartmdm_pipelines.services.billing_close import period_key
from smartmdm_pipelines.services.billing_schedule import all_periods
from smartmdm_pipelines.services.cis_sync import sync_master_data
from smartmdm_pipelines.services.exceptions import days_waiting_for_master_data


@dg.asset(
    group_name="cis",
    kinds={"python", "csv"},
    owners=["team:mdm-operations"],
    pool="smartmdm_store",
    description=(
        "Accounts, service points (with their effective-dated history), meters, meter installs, "
        "billing cycles and water zones from the CIS (CSV drop or REST API, per cis.source). "
        "Upserts; nothing is deleted or overwritten without history. Operating days whose reads waited for "
        "a meter this sync brings (unregistered_meter exceptions) are requested for VEE again."
    ),
)
def cis_master_data(
    context: dg.AssetExecutionContext,
    store: StoreResource,
    utility: UtilityConfigResource,
    cis: CisClientResource,
) -> dg.MaterializeResult:
    config = utility.config
    if config.cis.source == "rest":
        with cis.get_client(config.cis) as client:
            report = sync_master_data(store.get_store(), client)
    else:
        report = sync_master_data(store.get_store(), config.cis_drop_dir)
    for table, counts in report.tables.items():
        context.log.info(
            f"{table}: {counts.received} received, {counts.inserted} inserted, "
            f"{counts.updated} updated, {counts.closed} closed"
        )
    # every billing period of the read calendar becomes a partition the billing team can close
    periods = all_periods(store.get_store())
    keys = [period_key(r.cycle_id, r.period_start) for r in periods.itertuples()]
    new = ensure_partitions(context.instance, BILLING_PERIODS, keys)
    received = sum(c.received for t, c in report.tables.items() if t != "service_point_history")
    # days whose reads waited for meters this sync brought: vee_day_sensor re-runs them
    waiting = days_waiting_for_master_data(store.get_store())
    if waiting:
        context.log.info(
            f"{len(waiting)} operating days hold reads of newly registered meters: {waiting[:10]}"
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": received,
            "source": f"{config.cis.source}: {report.source}",
            "effective_date": report.effective_date.isoformat(),
            "billing_periods_added": len(new),
            "vee_days": dg.MetadataValue.json(waiting),
            **report.as_metadata(),
        }
    )


cis_sync_job = dg.define_asset_job(
    "cis_sync_job",
    selection=dg.AssetSelection.assets("cis_master_data"),
    description="Synchronise CIS master data (CSV drop or REST API) into the store, keeping history.",
)
