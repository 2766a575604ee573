"""Ingestion of one head-end file per partition (dynamic partitions, one per file)."""

from pathlib import Path

import dagster as dg

from smartmdm_pipelines.lib.partitions import HEADEND_FILES
from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.services.ingestion import FileSummary, ingest_file, sha256_of


@dg.asset(
    partitions_def=HEADEND_FILES,
    group_name="ingest",
    kinds={"python", "csv"},
    owners=["team:mdm-operations"],
    pool="smartmdm_store",
    description=(
        "Raw reads of one head-end file, exactly as received after unit normalisation: interval reads, "
        "register reads, meter events and rejected rows, with the file registered in headend_files. "
        "The partition is the file (short sha256 + name)."
    ),
)
def raw_reads(
    context: dg.AssetExecutionContext, store: StoreResource, utility: UtilityConfigResource
) -> dg.MaterializeResult:
    cfg = utility.config
    sha_prefix, _, name = context.partition_key.partition("-")
    path = cfg.landing_dir / name
    db = store.get_store()
    if not path.exists() or not sha256_of(path).startswith(sha_prefix):
        loaded = db.read_frame(
            "SELECT file_id, status FROM headend_files WHERE sha256 LIKE :p", {"p": f"{sha_prefix}%"}
        )
        if len(loaded):
            context.log.info(f"{name} was already loaded as file {int(loaded['file_id'].iloc[0])}")
            return dg.MaterializeResult(metadata={"status": "already loaded"})
        raise dg.Failure(f"{name}: not in the landing folder {cfg.landing_dir} with sha256 {sha_prefix}…")
    summary = ingest_file(db, path, cfg)
    metadata = _metadata(summary)
    if summary.status == "rejected":
        errors = "; ".join(f"line {e['line']}: {e['reason']}" for e in summary.errors[:5])
        raise dg.Failure(description=f"{name} was rejected: {errors}", metadata=metadata)
    return dg.MaterializeResult(metadata=metadata)


def _metadata(s: FileSummary) -> dict:
    return {
        "file": s.file and Path(s.file).name,
        "file_id": s.file_id if s.file_id is not None else -1,
        "status": s.status,
        "format": s.format,
        "dagster/row_count": s.interval_reads + s.register_reads + s.events,
        "interval_reads": s.interval_reads,
        "register_reads": s.register_reads,
        "events": s.events,
        "rejected_rows": s.rejected_rows,
        "meters": s.meters,
        "read_days": dg.MetadataValue.json(s.read_days),
        "vee_days": dg.MetadataValue.json(s.vee_days),
        "errors": dg.MetadataValue.json(s.errors[:20]),
        "archived_to": s.archived_to or "",
    }
