"""One sensor per head-end configured under ``realtime.pull`` in the utility YAML: it pulls the
head-end's REST API from the stored cursor (services/pull.py). The deliveries it loads are
validated and pushed by ``smartmdm serve`` like pushed ones (channel ``pull``)."""

import dagster as dg

from smartmdm_pipelines.config import ConfigError, PullHeadend
from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.services.pull import PullError, pull_once


def pull_sensor(headend: PullHeadend) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"pull_headend_{headend.source}",
        minimum_interval_seconds=headend.interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Pulls new reads of head-end {headend.source} from {headend.url} (since the stored cursor).",
    )
    def _sensor(context: dg.SensorEvaluationContext, store: StoreResource, utility: UtilityConfigResource):
        try:
            result = pull_once(store.get_store(), utility.config, headend)
        except PullError as exc:
            return dg.SkipReason(str(exc))
        if not result.deliveries:
            return dg.SkipReason(f"no new reads from {headend.source} (cursor {result.cursor})")
        return dg.SensorResult(
            asset_events=[
                dg.AssetObservation(
                    asset_key="raw_reads",
                    metadata={
                        "channel": "pull",
                        "source": headend.source,
                        "deliveries": len(result.deliveries),
                        "interval_reads": result.interval_reads,
                        "rejected_rows": result.rejected_rows,
                        "cursor": str(result.cursor),
                    },
                )
            ]
        )

    return _sensor


@dg.definitions
def pull_sensors() -> dg.Definitions:
    try:
        headends = UtilityConfigResource.from_environment().config.realtime.pull
    except ConfigError:  # the config's own error shows where it is loaded for the assets
        headends = []
    return dg.Definitions(sensors=[pull_sensor(h) for h in headends])
