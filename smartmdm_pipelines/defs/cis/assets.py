"""CIS master data, synchronised inbound from the CIS's CSV drop."""

import dagster as dg

from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.services.cis_sync import sync_master_data


@dg.asset(
    group_name="cis",
    kinds={"python", "csv"},
    owners=["team:mdm-operations"],
    pool="smartmdm_store",
    description="Accounts, service points, meters, meter installs, billing cycles and water zones from the CIS drop.",
)
def cis_master_data(store: StoreResource, utility: UtilityConfigResource) -> dg.MaterializeResult:
    counts = sync_master_data(store.get_store(), utility.config.cis_drop_dir)
    return dg.MaterializeResult(
        metadata={"dagster/row_count": sum(counts.values()), **{f"{t}_rows": n for t, n in counts.items()}}
    )


cis_sync_job = dg.define_asset_job(
    "cis_sync_job",
    selection=dg.AssetSelection.assets("cis_master_data"),
    description="Synchronise CIS master data from the CSV drop.",
)
