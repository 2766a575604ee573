"""The real-time path in the UI: the push outbox as an asset whose observations (from the
``push_outbox_monitor`` sensor, every minute) show the backlog, the dead letters and the oldest
undelivered age, with a check that fails when the backlog is older than
``realtime.backlog_max_age_seconds``. The service itself reports observations of ``raw_reads``
and ``validated_intervals`` per VEE pass over pushed deliveries (server/dagster_events.py)."""

import dagster as dg
import requests

from smartmdm_pipelines.config import UtilityConfig
from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.services import outbox
from smartmdm_pipelines.store.store import Store

PUSH_OUTBOX = dg.AssetKey("push_outbox")
CHECK = "push_outbox_backlog"


def current_status(cfg: UtilityConfig, store: StoreResource) -> outbox.OutboxStatus:
    """Asked of the running service first (with DuckDB it is the store's single writer), else
    read from the store."""
    rt = cfg.realtime
    try:
        answer = requests.get(f"http://{rt.host}:{rt.port}/v1/health", timeout=2)
        if answer.ok:
            return outbox.status_from_dict(answer.json()["outbox"])
    except (requests.RequestException, ValueError, KeyError):
        pass
    db = Store(store.database_url)
    try:
        return outbox.status(db)
    finally:
        db.dispose()


def metadata(st: outbox.OutboxStatus) -> dict:
    return {
        "pending": st.pending,
        "delivered": st.delivered,
        "dead_lettered": st.dead_lettered,
        "oldest_pending_age_seconds": dg.MetadataValue.float(float(st.oldest_pending_age_seconds or 0.0)),
        "destinations": dg.MetadataValue.json([d.__dict__ for d in st.destinations]),
    }


@dg.asset(
    key=PUSH_OUTBOX,
    group_name="realtime",
    pool="smartmdm_store",
    kinds={"python"},
    owners=["team:mdm-operations"],
    check_specs=[
        dg.AssetCheckSpec(
            CHECK,
            asset=PUSH_OUTBOX,
            description="fails when the oldest undelivered record is older than realtime.backlog_max_age_seconds",
        )
    ],
    description=(
        "Interval versions queued for the CIS usage API and the portal feed (table outbox, written with the "
        "versions; pushed by `smartmdm serve`). Materializing it records a snapshot of the backlog; the "
        "push_outbox_monitor sensor observes it every minute."
    ),
)
def push_outbox(store: StoreResource, utility: UtilityConfigResource) -> dg.MaterializeResult:
    st = current_status(utility.config, store)
    passed, text = outbox.backlog_verdict(st, utility.config.realtime.backlog_max_age_seconds)
    return dg.MaterializeResult(
        metadata=metadata(st),
        check_results=[dg.AssetCheckResult(check_name=CHECK, passed=passed, description=text)],
    )


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Observes the push outbox (backlog, dead letters, oldest undelivered age) and evaluates its check.",
)
def push_outbox_monitor(
    context: dg.SensorEvaluationContext, store: StoreResource, utility: UtilityConfigResource
) -> dg.SensorResult | dg.SkipReason:
    try:
        st = current_status(utility.config, store)
    except Exception as exc:  # e.g. the DuckDB store is held by a process other than the service
        return dg.SkipReason(f"the outbox cannot be read now: {' '.join(str(exc).split())[:200]}")
    passed, text = outbox.backlog_verdict(st, utility.config.realtime.backlog_max_age_seconds)
    return dg.SensorResult(
        asset_events=[
            dg.AssetObservation(asset_key=PUSH_OUTBOX, metadata=metadata(st)),
            dg.AssetCheckEvaluation(
                asset_key=PUSH_OUTBOX,
                check_name=CHECK,
                passed=passed,
                description=text,
                metadata={"oldest_pending_age_seconds": float(st.oldest_pending_age_seconds or 0.0)},
            ),
        ]
    )
