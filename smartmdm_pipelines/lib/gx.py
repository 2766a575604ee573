"""Great Expectations 1.x suites run as Dagster asset checks (GX is imported lazily: ~5 s)."""

from __future__ import annotations

import os
from collections.abc import Callable

import dagster as dg
import pandas as pd


def run_suite(
    frame: pd.DataFrame, name: str, build: Callable, severity=dg.AssetCheckSeverity.ERROR
) -> dg.AssetCheckResult:
    """Validate ``frame`` with the expectations ``build(gxe)`` returns; one AssetCheckResult."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # GX's progress bars would flood the run logs
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    suite = gx.ExpectationSuite(name=name, expectations=build(gxe))
    batch = (
        context.data_sources.add_pandas("mdm")
        .add_dataframe_asset(name=name)
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    result = batch.validate(suite)
    failed = [
        {
            "expectation": r.expectation_config.type,
            "kwargs": {k: v for k, v in r.expectation_config.kwargs.items() if k != "batch_id"},
            "unexpected_percent": r.result.get("unexpected_percent"),
            "observed_value": r.result.get("observed_value"),
        }
        for r in result.results
        if not r.success
    ]
    return dg.AssetCheckResult(
        passed=bool(result.success),
        severity=severity,
        metadata={
            "rows": len(frame),
            "failed_expectations": dg.MetadataValue.json(failed),
            "success_percent": float(result.statistics.get("success_percent") or 0.0),
        },
    )
