"""The hourly usage rollup (``usage_hourly``) on both backends: it equals the current intervals
summed per hour after every kind of write (VEE, late actuals, an operator edit, direct version
writes), and the portal history served from it equals the history computed from the intervals
(hour/day/month, DST days, estimated/edited/missing statuses), falling back to the intervals
where an hour is cut by an install boundary or the zone's hours are not UTC hours."""

from __future__ import annotations

import datetime as dt

import numpy as np
import orjson
import pandas as pd
import pytest
import sqlalchemy as sa

from smartmdm_pipelines.domain.portal.usage import bucket
from smartmdm_pipelines.services import portal_usage
from smartmdm_pipelines.services.exceptions import Resolution, list_exceptions, resolve
from smartmdm_pipelines.services.ingestion import ingest_file
from smartmdm_pipelines.services.vee import run_day
from smartmdm_pipelines.store import usage_rollup
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.portal.helpers import TZ, add_version, client, seed, token, write_intervals
from smartmdm_pipelines_tests.services.test_vee_service import (
    DAY,
    config,  # noqa: F401  (fixture)
    day_values,
    master_data,
    reads_file,
)


def expected_rollup(store: Store) -> pd.DataFrame:
    """The rollup computed here in pandas from every stored version (not through the store's SQL)."""
    v = store.read_frame(
        "SELECT meter_id, channel, interval_end, version, interval_seconds, value, status, unit FROM intervals"
    )
    cur = v.sort_values("version").drop_duplicates(["meter_id", "channel", "interval_end"], keep="last")
    end = pd.to_datetime(cur["interval_end"], utc=True)
    cur = cur.assign(
        hour_start=(end - pd.to_timedelta(cur["interval_seconds"], unit="s")).dt.floor("h"),
        rank=np.where(
            cur["value"].isna(), np.nan, cur["status"].map({"estimated": 2, "edited": 1}).fillna(0)
        ),
        est=(cur["status"] == "estimated").astype(int),
    )
    g = cur.groupby(["meter_id", "channel", "hour_start"])
    out = pd.DataFrame(
        {
            "value_sum": g["value"].sum(min_count=1),
            "value_count": g["value"].count(),
            "interval_count": g.size(),
            "estimated_count": g["est"].sum(),
            "status_rank": g["rank"].max(),
        }
    ).reset_index()
    return out.sort_values(["meter_id", "channel", "hour_start"]).reset_index(drop=True)


def stored_rollup(store: Store) -> pd.DataFrame:
    r = store.read_frame(
        "SELECT meter_id, channel, hour_start, value_sum, value_count, interval_count, estimated_count, "
        "status_rank FROM usage_hourly"
    )
    r["hour_start"] = pd.to_datetime(r["hour_start"], utc=True)
    return r.sort_values(["meter_id", "channel", "hour_start"]).reset_index(drop=True)


def assert_rollup_current(store: Store) -> None:
    got, want = stored_rollup(store), expected_rollup(store)
    assert len(want) > 0
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_exact=False, rtol=1e-9)


def test_vee_late_actuals_and_an_edit_keep_the_rollup_current(store: Store, config, tmp_path) -> None:  # noqa: F811
    master_data(store)
    values = {**day_values("M1", gap=range(40, 44)), **day_values("M2")}
    values[("M2", 50)] = 55.0  # a spike, edited below
    ingest_file(store, reads_file(tmp_path / "d1.csv", values), config)
    run_day(store, DAY, config)
    assert_rollup_current(store)
    gap_hour = stored_rollup(store).query("meter_id == 'M1'").iloc[10]  # slots 40-43: 15:00 UTC
    assert gap_hour["status_rank"] == 2 and gap_hour["estimated_count"] == 4

    ingest_file(store, reads_file(tmp_path / "late.csv", {("M1", s): 1.11 for s in range(40, 44)}), config)
    run_day(store, DAY, config)
    assert_rollup_current(store)
    late = stored_rollup(store).query("meter_id == 'M1'").iloc[10]
    assert late["status_rank"] == 0 and late["value_sum"] == pytest.approx(4.44)

    spike = list_exceptions(store, rule="spike")
    resolve(
        store, config, Resolution(spike["exception_id"].iloc[0], "edit", by="jdoe", reason="test", value=0.5)
    )
    assert_rollup_current(store)
    assert stored_rollup(store).query("meter_id == 'M2'")["status_rank"].max() == 1


def test_refresh_touches_only_the_hours_written_and_rebuild_agrees(store: Store) -> None:
    m1 = seed(store, with_tariffs=False)
    assert_rollup_current(store)
    before = stored_rollup(store)
    day = m1[m1["read_day"] == pd.Timestamp("2024-11-03")]
    add_version(store, day.iloc[5:9], "estimated", 9.0)  # read_day is the local day of the end: 01:00-02:00
    add_version(store, day.iloc[20:21], "missing", None, version=2)
    assert_rollup_current(store)
    after = stored_rollup(store)
    changed = after.merge(before, on=["meter_id", "channel", "hour_start"], suffixes=("", "_old"))
    changed = changed[
        ~np.isclose(changed["value_sum"], changed["value_sum_old"], rtol=1e-12, equal_nan=True)
        | (changed["status_rank"] != changed["status_rank_old"])
    ]
    assert len(changed) == 2 and set(changed["meter_id"]) == {"M1"}
    with store.begin() as conn:
        usage_rollup.rebuild(conn)
    pd.testing.assert_frame_equal(stored_rollup(store), after)


def _both(store: Store, account: str, first: dt.date, last: dt.date, resolution: str):
    scope = portal_usage.account_scope(store, account)
    served = portal_usage.buckets(store, scope, first, last, resolution)[1]
    computed = bucket(portal_usage.current_intervals(store, scope, first, last), resolution, scope.timezone)
    return scope, served, computed


def assert_same(served: pd.DataFrame, computed: pd.DataFrame) -> None:
    assert len(computed) > 0
    pd.testing.assert_frame_equal(
        served.reset_index(drop=True),
        computed.reset_index(drop=True),
        check_dtype=False,
        check_exact=False,
        rtol=1e-12,
    )


@pytest.mark.parametrize("resolution", ["hour", "day", "month"])
def test_history_from_the_rollup_equals_the_intervals(store: Store, resolution: str) -> None:
    m1 = seed(store, with_tariffs=False)
    # a spring-forward day (23 hours) as well as the seeded fall-back day (25 hours)
    spring = pd.date_range("2024-03-09T06:00Z", "2024-03-12T05:00Z", freq="15min", inclusive="right")
    write_intervals(
        store,
        m1.iloc[: len(spring)].assign(
            interval_end=spring,
            value=np.arange(len(spring)) * 0.01,
            read_day=spring.tz_convert(TZ).normalize().tz_localize(None),
        ),
    )
    local = m1["interval_end"].dt.tz_convert(TZ)
    add_version(store, m1[local.dt.strftime("%Y-%m-%d %H") == "2024-11-03 01"].iloc[:3], "estimated", 2.5)
    add_version(store, m1[local.dt.strftime("%Y-%m-%d %H:%M") == "2024-11-03 07:15"], "edited", 0.1)
    starts = (m1["interval_end"] - pd.Timedelta(minutes=15)).dt.tz_convert(TZ)
    add_version(
        store, m1[starts.dt.strftime("%Y-%m-%d %H") == "2024-11-04 09"], "missing", None
    )  # a whole hour
    for first, last in [
        (dt.date(2024, 11, 3), dt.date(2024, 11, 4)),
        (dt.date(2024, 3, 9), dt.date(2024, 3, 11)),
        (dt.date(2024, 1, 1), dt.date(2024, 12, 31)),
    ]:
        scope, served, computed = _both(store, "A1", first, last, resolution)
        assert portal_usage.hourly_rollup(store, scope, first, last) is not None  # really from the rollup
        assert_same(served, computed)
    hours = _both(store, "A1", dt.date(2024, 11, 3), dt.date(2024, 11, 4), "hour")[1]
    assert len(hours) == 25 + 24
    assert set(hours["status"]) == {"actual", "estimated", "edited", "missing"}
    spring_days = _both(store, "A1", dt.date(2024, 3, 10), dt.date(2024, 3, 10), "day")[1]
    assert spring_days["intervals"].tolist() == [92]


def test_a_mid_hour_meter_exchange_and_a_half_hour_zone_fall_back_to_the_intervals(store: Store) -> None:
    seed(store, with_tariffs=False)
    first, last = dt.date(2024, 11, 1), dt.date(2024, 11, 5)
    # the account's meter replaced at 10:20 local on Nov 2: that hour is cut by the install window
    store.execute(
        "UPDATE meter_installs SET removed_at = :t WHERE meter_id = 'M1'",
        {"t": pd.Timestamp("2024-11-02T15:20Z")},
    )
    scope, served, computed = _both(store, "A1", first, last, "hour")
    assert portal_usage.hourly_rollup(store, scope, first, last) is None
    assert_same(served, computed)
    assert computed["end"].max() == pd.Timestamp("2024-11-02T16:00Z")
    # an exchange on the hour is served by the rollup
    store.execute(
        "UPDATE meter_installs SET removed_at = :t WHERE meter_id = 'M1'",
        {"t": pd.Timestamp("2024-11-02T15:00Z")},
    )
    scope, served, computed = _both(store, "A1", first, last, "day")
    assert portal_usage.hourly_rollup(store, scope, first, last) is not None
    assert_same(served, computed)
    # Kolkata (+05:30): a local hour is two halves of UTC hours
    store.execute("UPDATE service_points SET timezone = 'Asia/Kolkata' WHERE service_point_id = 'SP-2'")
    scope, served, computed = _both(store, "A2", first, last, "hour")
    assert portal_usage.hourly_rollup(store, scope, first, last) is None
    assert_same(served, computed)
    assert served["start"].iloc[0].minute == 30


def test_the_api_serves_the_rollup_and_follows_a_new_version(store: Store, monkeypatch) -> None:
    m1 = seed(store, with_tariffs=False)
    c = client(store, monkeypatch)
    url = "/v1/accounts/A1/usage?from=2024-11-03&to=2024-11-03&resolution=hour"
    before = c.get(url, headers=token("customer", "A1")).json()["items"]
    assert len(before) == 25 and before[2]["status"] == "actual"
    local = m1["interval_end"].dt.tz_convert(TZ)
    second_1am = m1[local.dt.strftime("%Y-%m-%d %H:%M %z") == "2024-11-03 01:30 -0600"]
    add_version(store, second_1am, "estimated", 5.0)
    after = c.get(url, headers=token("customer", "A1")).json()["items"]
    assert after[2]["start"] == "2024-11-03T01:00:00-06:00" and after[2]["status"] == "estimated"
    assert after[2]["value"] == pytest.approx(before[2]["value"] - second_1am["value"].sum() + 5.0)
    assert [i for k, i in enumerate(after) if k != 2] == [i for k, i in enumerate(before) if k != 2]


def test_the_hourly_json_of_postgresql_equals_the_general_path(postgres_url: str, monkeypatch) -> None:
    store = Store(postgres_url)
    try:
        m1 = seed(store, with_tariffs=False)
        local = m1["interval_end"].dt.tz_convert(TZ)
        add_version(store, m1[local.dt.strftime("%Y-%m-%d %H") == "2024-11-03 01"].iloc[:3], "estimated", 2.5)
        add_version(store, m1[local.dt.strftime("%Y-%m-%d %H:%M") == "2024-11-03 07:15"], "edited", 0.1)
        starts = (m1["interval_end"] - pd.Timedelta(minutes=15)).dt.tz_convert(TZ)
        add_version(store, m1[starts.dt.strftime("%Y-%m-%d %H") == "2024-11-04 09"], "missing", None)
        c = client(store, monkeypatch)
        h = token("customer", "A1")
        base = "/v1/accounts/A1/usage?from=2024-10-30&to=2024-11-05&resolution=hour"
        fast = portal_usage.hourly_json(store, "A1", dt.date(2024, 10, 30), dt.date(2024, 11, 5))
        assert fast is not None and fast[1] == 7 * 24 + 1
        # the general path: the same document through CSV's code path, compared item by item
        doc = c.get(base, headers=h).json()
        assert doc["total_items"] == 169 and len(doc["items"]) == 169
        general = portal_usage.usage(store, "A1", dt.date(2024, 10, 30), dt.date(2024, 11, 5), "hour")
        from smartmdm_pipelines.server.portal import _items

        assert doc["items"] == _items(general["items"], TZ)
        assert {i["status"] for i in doc["items"]} == {"actual", "estimated", "edited", "missing"}
        assert doc["unit"] == general["unit"] and doc["timezone"] == TZ
        # pages: the same items in pieces
        p1 = c.get(base + "&page_size=100", headers=h).json()
        p2 = c.get(base + f"&page_size=100&page_token={p1['next_page_token']}", headers=h).json()
        assert p1["next_page_token"] == 100 and p2["next_page_token"] is None
        assert p1["items"] + p2["items"] == doc["items"]
        # a zone of +05:30 is refused by the statement and served by the general path
        store.execute("UPDATE service_points SET timezone = 'Asia/Kolkata' WHERE service_point_id = 'SP-1'")
        assert portal_usage.hourly_json(store, "A1", dt.date(2024, 10, 30), dt.date(2024, 11, 5)) is None
        kolkata = c.get(base, headers=h).json()
        assert kolkata["items"][0]["start"] == "2024-10-30T00:00:00+05:30"
    finally:
        store.dispose()


def test_smartmdm_rollup_rebuilds_a_stale_rollup(duckdb_url: str, monkeypatch, capsys) -> None:
    from smartmdm_pipelines.cli import main

    store = Store(duckdb_url)
    m1 = seed(store, with_tariffs=False)
    # a writer that bypassed the rollup (an old store, a manual repair): the rollup is stale
    store.bulk_insert("intervals", m1.iloc[:40].assign(version=2, value=3.0, created_by="repair"))
    with pytest.raises(AssertionError):
        assert_rollup_current(store)
    store.dispose()
    monkeypatch.setenv("SMARTMDM_DATABASE_URL", duckdb_url)
    assert main(["rollup", "--day", "2024-10-01", "--meter", "M1"]) == 0
    assert main(["rollup", "--day", "2024-13-01"]) == 2
    store = Store(duckdb_url)
    assert_rollup_current(store)
    store.execute("DELETE FROM usage_hourly")
    store.dispose()
    assert main(["rollup"]) == 0
    assert '"days": "all"' in capsys.readouterr().out
    store = Store(duckdb_url)
    assert_rollup_current(store)
    store.dispose()


def test_bill_to_date_from_the_rollup_equals_the_bill_from_the_intervals(store: Store, monkeypatch) -> None:
    from smartmdm_pipelines.services import portal_bill

    m1 = seed(store)
    local = m1["interval_end"].dt.tz_convert(TZ)
    add_version(store, m1[local.dt.strftime("%Y-%m-%d %H") == "2024-11-03 01"].iloc[:3], "estimated", 2.5)
    sources = []
    real = portal_bill._period_usage

    def spy(*args):
        out = real(*args)
        sources.append(out.source)
        return out

    monkeypatch.setattr(portal_bill, "_period_usage", spy)
    served = portal_bill.bill_to_date(store, "A1", dt.date(2024, 11, 10))
    assert sources == ["rollup"]  # E-RES bills energy only: the hourly sums serve
    monkeypatch.setattr(portal_bill, "hourly_rollup", lambda *a, **k: None)
    computed = portal_bill.bill_to_date(store, "A1", dt.date(2024, 11, 10))
    assert sources == ["rollup", "intervals"]
    assert served["service_points"] == computed["service_points"]
    assert served["service_points"][0]["estimated_intervals"] == 3
    assert served["to_date"]["total"] == computed["to_date"]["total"] > 0
    assert served["to_date"]["usage"] == pytest.approx(computed["to_date"]["usage"], rel=1e-12)
    assert served["projected"]["total"] == computed["projected"]["total"]
    assert served["projected"]["usage"] == pytest.approx(computed["projected"]["usage"], rel=1e-9)
    for a, b in zip(served["to_date"]["lines"], computed["to_date"]["lines"], strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == (pytest.approx(b[k], rel=1e-9) if isinstance(b[k], float) else b[k]), k


def test_bill_to_date_reads_the_intervals_when_an_hour_is_partly_missing(store: Store, monkeypatch) -> None:
    from smartmdm_pipelines.services import portal_bill

    m1 = seed(store)
    local = m1["interval_end"].dt.tz_convert(TZ)
    add_version(store, m1[local.dt.strftime("%Y-%m-%d %H:%M") == "2024-11-05 10:15"], "missing", None)
    sources = []
    real = portal_bill._period_usage
    monkeypatch.setattr(portal_bill, "_period_usage", lambda *a: sources.append(real(*a).source) or real(*a))
    doc = portal_bill.bill_to_date(store, "A1", dt.date(2024, 11, 10))
    assert sources == ["intervals"] and doc["to_date"]["total"] > 0


def test_migration_0007_backfills_an_existing_store(store: Store) -> None:
    from smartmdm_pipelines.store import migrate

    seed(store, with_tariffs=False)
    migrate.downgrade(store.engine, "0006")  # a store from before the rollup, with its intervals
    with store.engine.connect() as conn:
        assert not sa.inspect(conn).has_table("usage_hourly")
    migrate.upgrade(store.engine)
    assert_rollup_current(store)


def test_the_hourly_json_of_two_meters_equals_the_general_path(postgres_url: str, monkeypatch) -> None:
    """An exchange on the hour: two meters in the account's window, so the grouped statement (not
    the one-meter one) builds the items; they equal the general path's."""
    store = Store(postgres_url)
    try:
        m1 = seed(store, with_tariffs=False)
        exchange = pd.Timestamp("2024-11-02T15:00Z")
        store.execute("UPDATE meter_installs SET removed_at = :t WHERE meter_id = 'M1'", {"t": exchange})
        store.execute(
            "INSERT INTO meter_installs (meter_id, service_point_id, installed_at, multiplier) "
            "VALUES ('M2', 'SP-1', :t, 1)",
            {"t": exchange},
        )
        local = m1["interval_end"].dt.tz_convert(TZ)
        add_version(store, m1[local.dt.strftime("%Y-%m-%d %H") == "2024-10-31 01"].iloc[:3], "estimated", 2.5)
        statements = []
        real = portal_usage.Store.read_frame
        monkeypatch.setattr(
            portal_usage.Store,
            "read_frame",
            lambda self, sql, *a, **k: statements.append(sql) or real(self, sql, *a, **k),
        )
        first, last = dt.date(2024, 10, 30), dt.date(2024, 11, 5)
        doc, total, items = portal_usage.hourly_json(store, "A1", first, last)
        assert portal_usage._HOUR_JSON_SQL in statements
        general = portal_usage.usage(store, "A1", first, last, "hour")
        from smartmdm_pipelines.server.portal import _items

        assert total == 7 * 24 + 1
        assert orjson.loads("[" + items + "]") == _items(general["items"], TZ)
        assert {i["status"] for i in _items(general["items"], TZ)} == {"actual", "estimated"}
        # the one-meter statement serves A2 (one meter, one channel)
        statements.clear()
        assert portal_usage.hourly_json(store, "A2", first, last) is not None
        assert portal_usage._HOUR_JSON_ONE_METER_SQL in statements
    finally:
        store.dispose()


def test_the_statements_value_text_is_the_numeric_round(postgres_url: str) -> None:
    """The value's JSON skips the numeric round where it cannot change the text: the same text as
    ``round(CAST(v AS numeric), 6)`` for whole, short, long, tiny, huge and special values."""
    rng = np.random.default_rng(13)
    values = [0.0, -0.0, 1.0, -1.0, 0.1, 0.30000000000000004, 0.0000005, -0.0000005, 0.0000015, 1e-7, 2.5e-6,
              1e15, 1e16, 123456789012345678.0, 1e-300, 1e300, 100.0, 123456789.123456, 12345678.1234567,
              float("nan"), float("inf"), float("-inf")]  # fmt: skip
    values += list(rng.uniform(0, 10, 2000)) + list(np.round(rng.uniform(0, 5, 2000), 3) * 3)
    values += list(rng.uniform(-1e12, 1e12, 500)) + list(np.round(rng.uniform(0, 1000, 500), 7))
    store = Store(postgres_url)
    try:
        rows = store.read_frame(
            f"SELECT {portal_usage._VALUE_SQL} AS fast, "
            "CAST(CAST(round(CAST(v AS numeric), 6) AS double precision) AS text) AS exact "
            "FROM (SELECT v, CAST(v AS text) AS t FROM unnest(CAST(:v AS double precision[])) v) x",
            {"v": [float(v) for v in values]},
        )
    finally:
        store.dispose()
    assert len(rows) == len(values)
    assert (rows["fast"] == rows["exact"]).all(), rows[rows["fast"] != rows["exact"]].head()
