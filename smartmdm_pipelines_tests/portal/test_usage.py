"""GET /v1/accounts/{id}/usage and /usage/compare on both backends: DST days, statuses, units,
paging, CSV, empty ranges, validation."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from smartmdm_pipelines_tests.portal.helpers import TZ, add_version, client, seed, token, write_intervals


@pytest.fixture
def api(store, monkeypatch):
    m1 = seed(store, with_tariffs=False)
    return client(store, monkeypatch), m1, store


def test_fall_back_day_has_25_hours_with_offsets_and_statuses(api):
    c, m1, store = api
    local = m1["interval_end"].dt.tz_convert(TZ)
    # an estimate and an edit on the repeated 01:00 hour (CDT then CST), a missing interval at 05:00
    first_1am = m1[(local.dt.strftime("%Y-%m-%d %H:%M %z") == "2024-11-03 01:15 -0500")]
    second_1am = m1[(local.dt.strftime("%Y-%m-%d %H:%M %z") == "2024-11-03 01:30 -0600")]
    five = m1[(local.dt.strftime("%Y-%m-%d %H:%M") == "2024-11-03 05:15")]
    add_version(store, first_1am, "estimated", 9.0)
    add_version(store, second_1am, "edited", 7.0)
    add_version(store, five, "missing", None)
    r = c.get(
        "/v1/accounts/A1/usage?from=2024-11-03&to=2024-11-03&resolution=hour", headers=token("customer", "A1")
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["account_id"] == "A1" and doc["unit"] == "kWh" and doc["timezone"] == TZ
    items = doc["items"]
    assert len(items) == 25
    assert items[0]["start"] == "2024-11-03T00:00:00-05:00"
    assert [i["start"] for i in items[1:3]] == ["2024-11-03T01:00:00-05:00", "2024-11-03T01:00:00-06:00"]
    assert items[-1]["end"] == "2024-11-04T00:00:00-06:00"
    assert items[1]["status"] == "estimated" and items[2]["status"] == "edited"
    assert items[0]["status"] == "actual"
    assert items[6]["start"] == "2024-11-03T05:00:00-06:00" and items[6]["status"] == "actual"
    # hour sums: the repeated hour holds the estimate; the missing interval is left out of its hour
    vals = m1.set_index("interval_end")["value"]
    hour1 = m1[(local > "2024-11-03T01:00-05:00") & (local <= "2024-11-03T01:00-06:00")]
    expected = vals[hour1["interval_end"]].sum() - vals[first_1am["interval_end"]].sum() + 9.0
    assert items[1]["value"] == pytest.approx(expected)
    hour5 = m1[(local > "2024-11-03T05:00-06:00") & (local <= "2024-11-03T06:00-06:00")]
    assert items[6]["value"] == pytest.approx(
        vals[hour5["interval_end"]].sum() - vals[five["interval_end"]].sum()
    )


def test_day_and_month_resolutions_and_spring_day(api):
    c, m1, _ = api
    h = token("customer", "A1")
    days = c.get("/v1/accounts/A1/usage?from=2024-11-02&to=2024-11-04&resolution=day", headers=h).json()[
        "items"
    ]
    assert [d["start"] for d in days] == [
        "2024-11-02T00:00:00-05:00",
        "2024-11-03T00:00:00-05:00",
        "2024-11-04T00:00:00-06:00",
    ]
    local = m1["interval_end"].dt.tz_convert(TZ) - pd.Timedelta(minutes=15)
    nov3 = m1[local.dt.strftime("%Y-%m-%d") == "2024-11-03"]
    assert len(nov3) == 100
    assert days[1]["value"] == pytest.approx(nov3["value"].sum())
    months = c.get("/v1/accounts/A1/usage?from=2024-10-01&to=2024-11-30&resolution=month", headers=h).json()
    assert [m["start"] for m in months["items"]] == ["2024-10-01T00:00:00-05:00", "2024-11-01T00:00:00-05:00"]
    assert months["items"][1]["end"] == "2024-12-01T00:00:00-06:00"
    oct_total = m1[local.dt.month == 10]["value"].sum()
    assert months["items"][0]["value"] == pytest.approx(oct_total)
    intervals = c.get(
        "/v1/accounts/A1/usage?from=2024-11-03&to=2024-11-03&resolution=interval", headers=h
    ).json()
    assert len(intervals["items"]) == 100
    assert intervals["items"][0]["value"] == pytest.approx(nov3["value"].iloc[0])


def test_paging_and_csv(api):
    c, _, _ = api
    h = token("customer", "A1")
    url = "/v1/accounts/A1/usage?from=2024-11-01&to=2024-11-03&resolution=hour"
    full = c.get(url, headers=h).json()
    assert full["total_items"] == 73 and full["next_page_token"] is None
    p1 = c.get(url + "&page_size=50", headers=h).json()
    assert len(p1["items"]) == 50 and p1["next_page_token"] == 50
    p2 = c.get(url + "&page_size=50&page_token=50", headers=h).json()
    assert p1["items"] + p2["items"] == full["items"] and p2["next_page_token"] is None
    r = c.get(url + "&format=csv", headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 73 and rows[0]["unit"] == "kWh"
    assert float(rows[5]["value"]) == pytest.approx(full["items"][5]["value"])
    assert rows[25]["start"] == full["items"][25]["start"]


def test_empty_range_and_validation(api):
    c, _, _ = api
    h = token("customer", "A1")
    r = c.get("/v1/accounts/A1/usage?from=2023-01-01&to=2023-01-31&resolution=day", headers=h)
    assert r.status_code == 200 and r.json()["items"] == [] and r.json()["unit"] == "kWh"
    r = c.get("/v1/accounts/A1/usage?from=2024-11-05&to=2024-11-01", headers=h)
    assert r.status_code == 400 and "before" in r.json()["detail"]
    r = c.get("/v1/accounts/A1/usage?from=2023-01-01&to=2024-11-01&resolution=hour", headers=h)
    assert r.status_code == 400 and "at most 400 days" in r.json()["detail"]
    r = c.get("/v1/accounts/A1/usage?from=2024-13-01&to=2024-11-01", headers=h)
    assert r.status_code == 422
    r = c.get("/v1/accounts/A1/usage?from=2024-11-01&to=2024-11-01&resolution=week", headers=h)
    assert r.status_code == 422


def test_compare_previous_period_and_last_year(api):
    c, m1, store = api
    h = token("customer", "A1")
    # double the evening hours (18:00-19:59 local) of the second week: the drivers are 18 and 19
    local = m1["interval_end"].dt.tz_convert(TZ) - pd.Timedelta(minutes=15)
    week2 = m1[(local >= "2024-10-08") & (local < "2024-10-15") & local.dt.hour.isin([18, 19])]
    write_intervals(store, week2.assign(version=2, value=week2["value"] * 2, created_by="test-v2"))
    r = c.get(
        "/v1/accounts/A1/usage/compare?from=2024-10-08&to=2024-10-14&against=previous_period", headers=h
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["baseline"] == {"from": "2024-10-01", "to": "2024-10-07"}
    assert doc["drivers"][0]["hour_of_day"] in (18, 19) and doc["drivers"][1]["hour_of_day"] in (18, 19)
    assert doc["difference"] == pytest.approx(doc["current_total"] - doc["baseline_total"])
    assert doc["percent_change"] > 0
    ly = c.get(
        "/v1/accounts/A1/usage/compare?from=2024-10-08&to=2024-10-14&against=last_year", headers=h
    ).json()
    assert ly["baseline"] == {"from": "2023-10-08", "to": "2023-10-14"}
    assert ly["baseline_total"] == 0 and ly["percent_change"] is None


def test_received_channel_is_not_usage(api):
    c, m1, _ = api
    r = c.get(
        "/v1/accounts/A1/usage?from=2024-10-01&to=2024-10-01&resolution=day", headers=token("customer", "A1")
    )
    local = m1["interval_end"].dt.tz_convert(TZ) - pd.Timedelta(minutes=15)
    oct1 = m1[(local.dt.day == 1) & (local.dt.month == 10)]
    assert r.json()["items"][0]["value"] == pytest.approx(oct1["value"].sum())
    assert r.json()["items"][0]["value"] < 100


def test_dates_out_of_range_are_400(api):
    c, _, _ = api
    h = token("customer", "A1")
    for path in (
        "/v1/accounts/A1/usage?from=0001-01-01&to=0001-01-02",
        "/v1/accounts/A1/usage/compare?from=0001-01-01&to=0002-01-01",
        "/v1/accounts/A1/bill-to-date?as_of=9999-12-31",
        "/v1/accounts/A1/greenbutton?from=2999-01-01&to=2999-01-02",
    ):
        r = c.get(path, headers=h)
        assert r.status_code == 400 and "must be" in r.json()["detail"], (path, r.text)
