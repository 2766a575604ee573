"""Before/after timing of a billing close on a store bench_close.py generated (kept with
``--duckdb-dir``, or a PostgreSQL database kept by hand), for whichever checkout PYTHONPATH names:

    PYTHONPATH=OLD_CHECKOUT .venv/bin/python benchmarks/close_ab.py URL   # before
    PYTHONPATH=$PWD         .venv/bin/python benchmarks/close_ab.py URL   # after, same store

Empties the close's tables, then times a first close (dbt build forced, versioning) and a re-close
with unchanged data, and prints them as JSON with a digest of the written determinants (the same
digest before and after: identical results), dbt's own time for the build's nodes
(``dbt_nodes_s``, from its run_results.json; the rest of ``dbt_build_s`` is importing and parsing
dbt) and for the heavy model (``segment_usage_s``).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import sys
import time

from smartmdm_pipelines.services.billing_close import version_determinants
from smartmdm_pipelines.services.dbt_runner import DBT_PROJECT_DIR, run_dbt
from smartmdm_pipelines.store.store import Store

CYCLE, START = "C01", "2024-07-01"


def close(store: Store):
    return version_determinants(
        store, CYCLE, START, closed_by="bench", threshold=0.98, estimated_share_limit=0.1
    )


def dbt_timings() -> dict:
    """dbt's own account of the build just run (its run_results.json): the time of every node
    run (models and tests; the rest of dbt_build_s is importing and parsing dbt) and of the
    heavy model, segment_usage."""
    results = json.loads((DBT_PROJECT_DIR / "target" / "run_results.json").read_text())["results"]
    heavy = [r["execution_time"] for r in results if r["unique_id"] == "model.smartmdm.segment_usage"]
    return {
        "dbt_nodes_s": round(sum(r["execution_time"] for r in results), 2),
        "segment_usage_s": round(heavy[0], 2) if heavy else None,
    }


def main() -> None:
    store = Store(sys.argv[1])
    for table in ("billing_determinants", "billing_closes", "outbound_messages", "outbox"):
        store.execute(f"DELETE FROM {table}")
    if store.backend == "postgresql":
        store.execute("ANALYZE")
    force = {"reuse": False} if "reuse" in inspect.signature(run_dbt).parameters else {}
    out: dict = {"intervals": store.count("intervals")}
    t0 = time.perf_counter()
    run_dbt(store, CYCLE, START, **force)
    out["dbt_build_s"] = round(time.perf_counter() - t0, 2)
    out.update(dbt_timings())
    t1 = time.perf_counter()
    out["new_versions"] = close(store).new_versions
    out["versioning_s"] = round(time.perf_counter() - t1, 2)
    out["close_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    again = run_dbt(store, CYCLE, START)
    out["reclose_dbt_s"] = round(time.perf_counter() - t0, 2)
    out["reclose_dbt_skipped"] = getattr(again, "skipped", False)
    out["reclose_new_versions"] = close(store).new_versions
    out["reclose_s"] = round(time.perf_counter() - t0, 2)
    out["load"] = [round(x, 1) for x in os.getloadavg()]
    rows = store.read_frame(
        "SELECT account_id, segment_start, determinant, tou_period, value, unit, source, version, content_hash "
        "FROM billing_determinants ORDER BY account_id, segment_start, determinant, tou_period"
    )
    rows["value"] = rows["value"].round(9)
    out["determinant_rows"] = len(rows)
    out["digest"] = hashlib.sha256(rows.to_csv(index=False).encode()).hexdigest()
    store.dispose()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
