"""``read_frame(via_arrow=True)`` returns what the default fetch returns, on both backends (on
PostgreSQL it goes through COPY and Arrow's CSV reader: NULLs, empty strings, types)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from smartmdm_pipelines.store.store import Store


def test_arrow_fetch_matches_the_default_one(store: Store) -> None:
    store.bulk_insert(
        "raw_reads",
        pd.DataFrame(
            {
                "file_id": [1, 1, 2],
                "line": [2, 3, 2],
                "meter_id": ["M,1", 'M"2', "M3"],  # CSV quoting
                "channel": ["kwh_delivered"] * 3,
                "interval_end": pd.to_datetime(
                    ["2024-03-12T05:15Z", "2024-03-12T05:30Z", "2024-03-12T05:45Z"], utc=True
                ),
                "interval_seconds": [900, 900, 900],
                "value": [0.25, None, -1.5],
                "unit": ["kWh"] * 3,
                "source_unit": ["kWh"] * 3,
                "source_quality": ["", None, "E"],
                "read_day": [dt.date(2024, 3, 12)] * 3,
            }
        ),
    )
    sql = (
        "SELECT meter_id, channel, interval_end, interval_seconds, value, source_quality, file_id, line, read_day "
        "FROM raw_reads WHERE read_day = :day AND meter_id IN (SELECT unnest(:meters)) ORDER BY meter_id"
    )
    params = {"day": dt.date(2024, 3, 12), "meters": ["M,1", 'M"2', "M3"]}
    plain = store.read_frame(sql, params)
    arrow = store.read_frame(sql, params, via_arrow=True)
    assert arrow["meter_id"].tolist() == plain["meter_id"].tolist() == ['M"2', "M,1", "M3"]
    assert arrow["source_quality"].tolist()[1] == "" and pd.isna(arrow["source_quality"].tolist()[0])
    assert pd.isna(plain["source_quality"].tolist()[0]) and plain["source_quality"].tolist()[1] == ""
    assert arrow["value"].tolist()[1:] == plain["value"].tolist()[1:] and pd.isna(arrow["value"].iloc[0])
    assert (arrow["interval_end"] == plain["interval_end"]).all()
    assert str(arrow["interval_end"].dt.tz) == "UTC"
    assert arrow["file_id"].tolist() == plain["file_id"].tolist()
    assert [pd.Timestamp(d).date() for d in arrow["read_day"]] == [dt.date(2024, 3, 12)] * 3
    empty = store.read_frame(sql, {**params, "meters": ["nobody"]}, via_arrow=True)
    assert empty.empty and list(empty.columns) == list(plain.columns)
