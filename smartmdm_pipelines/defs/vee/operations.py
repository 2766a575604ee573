"""The exception queue from the launchpad: accept, edit, estimate or dismiss with name and reason."""

from enum import Enum

import dagster as dg
from pydantic import Field

from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.services.exceptions import ACTIONS, ESTIMATION_METHODS, Resolution, resolve

Action = Enum("Action", {a: a for a in ACTIONS}, type=str)
Action.__doc__ = "What to do with the exception."
EstimationMethod = Enum("EstimationMethod", {m: m for m in ESTIMATION_METHODS}, type=str)
EstimationMethod.__doc__ = "The estimation method an operator may request."


class ResolveExceptionConfig(dg.Config):
    """Launchpad config of one resolution: who decides and why are required, nothing is anonymous."""

    exception_id: str = Field(
        description="The exception to resolve (the id in the vee_exception_queue table or "
        "`smartmdm exceptions list`)."
    )
    action: Action = Field(
        description="accept: the received values are right (verified); edit: replace them with `value`; "
        "estimate: re-estimate them with `method`; dismiss: close it without touching data."
    )
    by: str = Field(min_length=1, description="Who resolves it (name or user id), kept on every new version.")
    reason: str = Field(min_length=1, description="Why: kept on the exception and on every new version.")
    value: float | None = Field(
        default=None, description="edit only: the value for every interval the exception covers."
    )
    method: EstimationMethod | None = Field(
        default=None,
        description="estimate only: linear, like_day, class_profile, average_daily_load or zero_fill.",
    )


@dg.op(description="Resolve one VEE exception; data changes become new interval versions with who and why.")
def resolve_exception(
    context: dg.OpExecutionContext,
    config: ResolveExceptionConfig,
    store: StoreResource,
    utility: UtilityConfigResource,
) -> dict:
    resolution = Resolution(
        exception_id=config.exception_id,
        action=config.action.value,
        by=config.by,
        reason=config.reason,
        value=config.value,
        method=config.method.value if config.method else None,
    )
    outcome = resolve(store.get_store(), utility.config, resolution)
    context.log.info(
        f"{config.exception_id}: {outcome['status']} by {config.by} ({outcome['new_versions']} new versions)"
    )
    context.add_output_metadata({"status": outcome["status"], "new_versions": outcome["new_versions"]})
    return outcome


@dg.job(
    description="Resolve a VEE exception from the launchpad: exception_id, action (accept | edit | estimate | "
    "dismiss), by and reason (required), value (edit) or method (estimate)."
)
def resolve_exception_job() -> None:
    resolve_exception()
