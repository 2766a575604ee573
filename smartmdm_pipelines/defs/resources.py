"""Resources, configured from environment variables. This module holds only the
``@definitions`` function (a module with a Definitions object exports nothing else)."""

import dagster as dg

from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "store": StoreResource.from_environment(),
            "utility": UtilityConfigResource.from_environment(),
        }
    )
