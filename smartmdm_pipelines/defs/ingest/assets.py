"""Ingestion of one head-end file per partition (dynamic partitions, one per file)."""

from pathlib import Path

import dagster as dg

from smartmdm_pipelines.lib.partitions import HEADEND_FILES
from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.services.ingestion import (
    ArchiveError,
    FileSummary,
    ingest_path,
    landing_key,
    loaded_file_id,
)


@dg.asset(
    partitions_def=HEADEND_FILES,
    group_name="ingest",
    kinds={"python", "csv"},
    owners=["team:mdm-operations"],
    pool="smartmdm_store",
    description=(
        "Raw reads of one head-end file, exactly as received after unit normalisation: interval reads, "
        "register reads, meter events and rejected rows, with the file registered in headend_files. "
        "The partition is the file (short sha256 + name); a .zip or .gz file loads each member as a "
        "delivery of its own."
    ),
)
def raw_reads(
    context: dg.AssetExecutionContext, store: StoreResource, utility: UtilityConfigResource
) -> dg.MaterializeResult:
    cfg = utility.config
    sha_prefix, _, name = context.partition_key.partition("-")
    path = cfg.landing_dir / name
    db = store.get_store()
    if not path.exists() or not landing_key(path, cfg).startswith(sha_prefix):
        file_id = loaded_file_id(db, sha_prefix, name)
        if file_id is not None:
            context.log.info(f"{name} was already loaded as file {file_id}")
            return dg.MaterializeResult(metadata={"status": "already loaded"})
        raise dg.Failure(f"{name}: not in the landing folder {cfg.landing_dir} with sha256 {sha_prefix}…")
    try:
        summaries = ingest_path(db, path, cfg)
    except ArchiveError as exc:  # loaded once, not archived: re-executing this run finishes the archiving
        raise dg.Failure(description=str(exc), allow_retries=True) from exc
    metadata = _metadata(summaries)
    rejected = [s for s in summaries if s.status == "rejected"]
    if rejected:
        errors = "; ".join(
            f"{Path(s.file).name} line {e['line']}: {e['reason']}"
            if len(summaries) > 1
            else f"line {e['line']}: {e['reason']}"
            for s in rejected
            for e in s.errors[:5]
        )
        raise dg.Failure(description=f"{name} was rejected: {errors}", metadata=metadata)
    return dg.MaterializeResult(metadata=metadata)


def _metadata(summaries: list[FileSummary]) -> dict:
    """The run's metadata: the file's counts (summed over the members of a compressed file)."""
    first = summaries[0]

    def total(attr: str) -> int:
        return sum(getattr(s, attr) for s in summaries)

    statuses = sorted({s.status for s in summaries})
    metadata = {
        "file": first.container and Path(first.container).name or (first.file and Path(first.file).name),
        "file_id": first.file_id if first.file_id is not None else -1,
        "status": statuses[0] if len(statuses) == 1 else ", ".join(statuses),
        "format": ", ".join(sorted({s.format for s in summaries if s.format})),
        "dagster/row_count": total("interval_reads") + total("register_reads") + total("events"),
        "interval_reads": total("interval_reads"),
        "register_reads": total("register_reads"),
        "events": total("events"),
        "rejected_rows": total("rejected_rows"),
        "meters": total("meters"),
        "read_days": dg.MetadataValue.json(sorted({d for s in summaries for d in s.read_days})),
        "vee_days": dg.MetadataValue.json(sorted({d for s in summaries for d in s.vee_days})),
        "errors": dg.MetadataValue.json([e for s in summaries for e in s.errors][:20]),
        "archived_to": first.archived_to or "",
    }
    if first.container:
        metadata["members"] = dg.MetadataValue.json(
            [
                {
                    "file": s.file.rsplit("!", 1)[-1],
                    "status": s.status,
                    "file_id": s.file_id,
                    "error": (s.errors or [{}])[0].get("reason"),
                }
                for s in summaries
            ]
        )
    return metadata
