"""Analysts' dispositions of revenue-protection cases from the launchpad (audited like the CLI's)."""

import dagster as dg
from pydantic import Field

from smartmdm_pipelines.domain.protection.cases import CaseError, CaseStatus
from smartmdm_pipelines.lib.resources import StoreResource
from smartmdm_pipelines.services.protection import mark_case


class MarkCaseConfig(dg.Config):
    """A decision on a revenue-protection case."""

    case_id: str = Field(description="The case, e.g. PC-SP0001234 (smartmdm protection cases lists them).")
    status: CaseStatus = Field(
        description="confirmed (theft or tamper found), false_positive (explained) or closed (dealt with)."
    )
    by: str = Field(description="Who decides (recorded in the case history).")
    reason: str = Field(description="Why (recorded in the case history).")


@dg.op(
    description="Record an analyst's decision on a case: its new status and a history row (who, when, why)."
)
def mark_protection_case(
    context: dg.OpExecutionContext, config: MarkCaseConfig, store: StoreResource
) -> dict:
    try:
        outcome = mark_case(store.get_store(), config.case_id, config.status.value, config.by, config.reason)
    except CaseError as exc:
        raise dg.Failure(description=str(exc)) from exc
    context.log.info(f"{config.case_id}: {outcome['status_from']} -> {outcome['status']} by {config.by}")
    context.add_output_metadata({"status_from": outcome["status_from"], "status": outcome["status"]})
    return outcome


@dg.job(
    description="Mark a revenue-protection case confirmed, false_positive or closed (by and reason required)."
)
def mark_protection_case_job() -> None:
    mark_protection_case()
