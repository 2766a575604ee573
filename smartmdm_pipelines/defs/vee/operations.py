"""The exception queue from the launchpad: accept, edit, estimate or dismiss with name and reason."""

import dagster as dg

from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.services.exceptions import Resolution, resolve


class ResolveExceptionConfig(dg.Config):
    exception_id: str
    action: str  # accept | edit | estimate | dismiss
    by: str
    reason: str
    value: float | None = None
    method: str | None = None


@dg.op(description="Resolve one VEE exception; data changes become new interval versions with who and why.")
def resolve_exception(
    context: dg.OpExecutionContext,
    config: ResolveExceptionConfig,
    store: StoreResource,
    utility: UtilityConfigResource,
) -> dict:
    outcome = resolve(store.get_store(), utility.config, Resolution(**config.model_dump()))
    context.log.info(
        f"{config.exception_id}: {outcome['status']} by {config.by} ({outcome['new_versions']} new versions)"
    )
    context.add_output_metadata({"status": outcome["status"], "new_versions": outcome["new_versions"]})
    return outcome


@dg.job(description="Resolve a VEE exception (config: exception_id, action, by, reason, value or method).")
def resolve_exception_job() -> None:
    resolve_exception()
