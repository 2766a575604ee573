"""The dbt billing models as Dagster assets, partitioned by billing period.

Sources map to the Python assets upstream (interval_estimates, cis_master_data,
billing_reference_data, raw_reads), so lineage is one graph; dbt tests become asset checks. The
models' kind is the store's backend (duckdb or postgres), whatever target parsed the manifest.
"""

import os

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from smartmdm_pipelines.lib.dbt import dbt_environment, smartmdm_dbt
from smartmdm_pipelines.lib.partitions import BILLING_PERIODS
from smartmdm_pipelines.lib.resources import StoreResource
from smartmdm_pipelines.services.billing_close import parse_period_key
from smartmdm_pipelines.services.dbt_runner import INPUTS_ENV, period_environment
from smartmdm_pipelines.store.engine import database_url


class BillingTranslator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props) -> str:
        return "billing"

    def get_owners(self, dbt_resource_props):
        return ["team:billing"]

    def get_asset_spec(self, manifest, unique_id, project):
        spec = super().get_asset_spec(manifest, unique_id, project)
        backend = dbt_environment(database_url())["DBT_TARGET"]  # duckdb | postgres
        kinds = {"dbt", backend} | ({"view"} if "view" in spec.kinds else set())
        return spec.replace_attributes(kinds=kinds).merge_attributes(
            metadata={"dagster/storage_kind": backend}
        )

    def get_partition_mapping(self, dbt_resource_props, dbt_parent_resource_props):
        # a billing period reads whichever operating days (and master data) it covers
        return dg.AllPartitionMapping()


@dbt_assets(
    manifest=smartmdm_dbt.manifest_path,
    project=smartmdm_dbt,
    dagster_dbt_translator=BillingTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)),
    partitions_def=BILLING_PERIODS,
    pool="smartmdm_store",
)
def billing_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, store: StoreResource):
    cycle_id, period_start = parse_period_key(context.partition_key)
    store.get_store().dispose()  # DuckDB: dbt's process must be able to open the file
    # the period in the environment, not --vars: changed --vars make dbt parse the whole project again;
    # no inputs fingerprint: this build does not record one (the close's own run_dbt can skip a build)
    os.environ.update({**dbt_environment(store.database_url), **period_environment(cycle_id, period_start)})
    os.environ[INPUTS_ENV] = ""
    yield from dbt.cli(["build"], context=context).stream()
