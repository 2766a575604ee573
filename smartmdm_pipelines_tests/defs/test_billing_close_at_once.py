"""Issue 15, concurrency: two closes of the same billing period at the same moment give one version
per account-period, and one of them reports it unchanged (both backends)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pytest

from smartmdm_pipelines.services import billing_close
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.defs.test_billing_close import KEY, build, close

pytestmark = pytest.mark.reliability


def test_two_closes_of_one_period_at_once_write_one_version(
    billing_env: str, instance: dg.DagsterInstance, monkeypatch
) -> None:
    from smartmdm_pipelines.definitions import defs

    build(billing_env)
    assert close(defs(), instance).success  # dbt builds period_determinants; version 1 written
    store = Store(billing_env)
    one_version = store.count("billing_determinants")
    assert one_version > 0
    store.execute("DELETE FROM billing_determinants")
    store.execute("DELETE FROM billing_closes")

    # both closes computed their content hashes before either compares with the latest versions
    barrier = threading.Barrier(2, timeout=30)
    hashes = billing_close._content_hashes

    def hashes_then_wait(rows):
        out = hashes(rows)
        barrier.wait()
        return out

    monkeypatch.setattr(billing_close, "_content_hashes", hashes_then_wait)
    cycle_id, period_start = billing_close.parse_period_key(KEY)

    def one_close(who: str):
        return billing_close.version_determinants(
            store,
            cycle_id,
            period_start,
            closed_by=who,
            threshold=0.0,
            estimated_share_limit=1.0,
            reason="at once",
        )

    with ThreadPoolExecutor(2) as pool:
        results = [f.result(timeout=120) for f in [pool.submit(one_close, w) for w in ("ops-a", "ops-b")]]

    assert sorted(r.outcome for r in results) == ["closed", "unchanged"]
    assert store.count("billing_determinants") == one_version  # written once, not twice
    assert store.scalar("SELECT max(version) FROM billing_determinants") == 1
    assert store.scalar("SELECT count(*) FROM billing_closes") == 2
    store.dispose()
