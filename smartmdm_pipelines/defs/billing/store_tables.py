"""Store tables read by dbt that a Python asset writes next to its main table. Declared as
assets downstream of their writer, so the lineage from the CIS sync and the tariff load to the
billing models is one graph (dagster-dbt maps one source table per asset key)."""

import dagster as dg

_WRITTEN_BY = {
    "cis_master_data": ["meters", "meter_installs", "accounts", "billing_cycles"],
    "billing_reference_data": ["tariff_schedules", "tariff_holidays", "system_peaks"],
}

store_tables = [
    dg.AssetSpec(
        ["store", table],
        deps=[writer],
        group_name="billing",
        kinds={"table"},
        description=f"Store table `{table}`, written by `{writer}`.",
    )
    for writer, tables in _WRITTEN_BY.items()
    for table in tables
]
