"""Runless asset events: the real-time path shows up in the Dagster UI on the ``raw_reads`` and
``validated_intervals`` assets (an observation per VEE pass over pushed deliveries, with counts
and the receipt-to-validation latency), on the instance in $DAGSTER_HOME."""

from __future__ import annotations

import logging
import os

import dagster as dg

from smartmdm_pipelines.services.realtime import RealtimeVee

log = logging.getLogger("smartmdm.serve")


class Reporter:
    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance

    @classmethod
    def if_configured(cls) -> Reporter | None:
        if not os.environ.get("DAGSTER_HOME"):
            log.info("DAGSTER_HOME is not set: the service reports no asset events to Dagster")
            return None
        try:
            return cls(dg.DagsterInstance.get())
        except Exception as exc:  # the UI is optional for the service: say why and go on
            log.warning("the Dagster instance in $DAGSTER_HOME cannot be opened (%s): no asset events", exc)
            return None

    def delivery_validated(self, run: RealtimeVee) -> None:
        common = {
            "deliveries": len(run.deliveries),
            "first_delivery_id": min(run.deliveries),
            "last_delivery_id": max(run.deliveries),
            "interval_reads": run.interval_reads,
            "latency_seconds": dg.MetadataValue.float(float(run.latency_seconds or 0.0)),
            "channel": "real-time (http, mqtt, pull)",
        }
        events = [
            dg.AssetObservation(asset_key="raw_reads", metadata=common),
            dg.AssetObservation(
                asset_key="validated_intervals",
                metadata={
                    **common,
                    "operating_days": ", ".join(run.days),
                    "meter_days": run.meter_days,
                    "validation_versions": run.validation_versions,
                    "estimation_versions": run.estimation_versions,
                },
            ),
        ]
        try:
            for event in events:
                self.instance.report_runless_asset_event(event)
        except Exception as exc:
            log.warning("reporting asset events to Dagster failed: %s", exc)
