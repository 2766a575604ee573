"""Resources, configured from environment variables. This module holds only the
``@definitions`` function (a module with a Definitions object exports nothing else)."""

import dagster as dg
from dagster_dbt import DbtCliResource

from smartmdm_pipelines.lib.dbt import DBT_PROJECT_DIR, dbt_environment, dbt_executable, smartmdm_dbt
from smartmdm_pipelines.lib.resources import CisClientResource, StoreResource, UtilityConfigResource
from smartmdm_pipelines.lib.scale import VeeShardsResource
from smartmdm_pipelines.store.engine import database_url


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "store": StoreResource.from_environment(),
            "utility": UtilityConfigResource.from_environment(),
            "cis": CisClientResource(),
            "vee_shards": VeeShardsResource.from_environment(),  # defs/vee/scale.py
            "dbt": DbtCliResource(
                project_dir=smartmdm_dbt,
                profiles_dir=str(DBT_PROJECT_DIR),
                target=dbt_environment(database_url())["DBT_TARGET"],
                dbt_executable=dbt_executable(),
            ),
        }
    )
