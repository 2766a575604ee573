"""Historical migration: legacy files replayed as partitioned backfills in chunks."""

from pathlib import Path

import dagster as dg

from smartmdm_pipelines.lib.partitions import LEGACY_FILES, ensure_partitions
from smartmdm_pipelines.lib.resources import StoreResource, UtilityConfigResource
from smartmdm_pipelines.services.migration import legacy_files, migrate_files

CHUNK_FILES = 50


@dg.asset(
    partitions_def=LEGACY_FILES,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=CHUNK_FILES),
    group_name="migration",
    kinds={"python"},
    owners=["team:mdm-engineering"],
    pool="smartmdm_store",
    description=(
        "Legacy head-end files (one partition per file under the migration folder) loaded through the same "
        f"adapters as live ingestion. A backfill runs {CHUNK_FILES} files per run; files already loaded "
        "(same sha256) are skipped, so a backfill can be resumed or repeated."
    ),
)
def legacy_raw_reads(
    context: dg.AssetExecutionContext, store: StoreResource, utility: UtilityConfigResource
) -> dg.MaterializeResult:
    cfg = utility.config
    keys = context.partition_keys

    def progress(done: int, total: int, summary) -> None:
        if done == total or done % 10 == 0:
            context.log.info(
                f"migration chunk: {done}/{total} files, last {Path(summary.file).name}: {summary.status}"
            )

    report = migrate_files(store.get_store(), cfg.migration_dir, keys, cfg, progress)
    context.log.info(
        f"migrated {report.files} files ({report.loaded} loaded, {report.skipped} already loaded, "
        f"{report.rejected} rejected): {report.reads:,} reads at {report.reads_per_second:,.0f} reads/s"
    )
    return dg.MaterializeResult(
        metadata={
            **report.as_metadata(),
            "rejected_files": dg.MetadataValue.json(report.failures[:50]),
            "vee_days": dg.MetadataValue.json(sorted(report.read_days)),
        }
    )


@dg.op(description="Register every file of the migration folder as a legacy_files partition.")
def register_legacy_files(context: dg.OpExecutionContext, utility: UtilityConfigResource) -> int:
    keys = legacy_files(utility.config.migration_dir)
    new = ensure_partitions(context.instance, LEGACY_FILES, keys)
    context.log.info(
        f"{len(new)} new legacy files registered ({len(keys)} in {utility.config.migration_dir})"
    )
    return len(new)


@dg.job(
    description="Scan the migration folder ($SMARTMDM_MIGRATION_DIR) and register its files for a backfill."
)
def register_legacy_files_job() -> None:
    register_legacy_files()


legacy_migration_job = dg.define_asset_job(
    "legacy_migration_job",
    selection=dg.AssetSelection.assets("legacy_raw_reads"),
    description="Backfill legacy files: select the legacy_files partitions to load (chunks of 50 per run).",
)
