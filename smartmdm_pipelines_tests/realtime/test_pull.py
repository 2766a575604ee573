"""The pull connector against a real head-end API on loopback (pytest-httpserver): paging from a
stored cursor, bearer auth, Retry-After, idempotent re-pulls, a clear error for a refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from werkzeug.wrappers import Response

from smartmdm_pipelines.config import PullHeadend, load_config
from smartmdm_pipelines.services.pull import PullError, get_cursor, pull_once
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.realtime.helpers import body, master_data


class HeadEnd:
    """Pages of 8 quarter-hours each for M1; cursor = the next slot; 429 on command."""

    def __init__(self, slots: int = 24) -> None:
        self.slots = slots
        self.calls: list[dict] = []
        self.throttle = 0

    def __call__(self, request) -> Response:
        self.calls.append({"args": dict(request.args), "auth": request.headers.get("Authorization")})
        if request.headers.get("Authorization") != "Bearer pull-secret":
            return Response(json.dumps({"error": "no"}), status=401)
        if self.throttle:
            self.throttle -= 1
            return Response("slow down", status=429, headers={"Retry-After": "0"})
        start = int(request.args.get("since", 0))
        end = min(start + int(request.args["limit"]) // 1, self.slots)
        data = body(["M1"], range(start, end)).decode() if start < end else ""
        return Response(
            json.dumps({"data": data, "next_cursor": str(end), "has_more": end < self.slots}),
            content_type="application/json",
        )


@pytest.fixture
def config(tmp_path: Path):
    return load_config(data_dir=tmp_path / "data")


def test_pull_pages_from_the_cursor_and_resumes(store: Store, config, httpserver, monkeypatch) -> None:
    monkeypatch.setenv("HE3_TOKEN", "pull-secret")
    master_data(store, ["M1"])
    api = HeadEnd()
    httpserver.expect_request("/reads").respond_with_handler(api)
    headend = PullHeadend(source="he3", url=httpserver.url_for("/reads"), token_env="HE3_TOKEN", page_size=8)
    api.throttle = 1
    result = pull_once(store, config, headend)
    assert result.pages == 3 and result.interval_reads == 24 and len(result.deliveries) == 3
    assert get_cursor(store, "he3") == "24"
    assert [c["args"].get("since") for c in api.calls] == [None, None, "8", "16"]  # the 429 was retried
    reg = store.read_frame("SELECT channel, source, rows_in, status FROM headend_files ORDER BY file_id")
    assert set(reg["channel"]) == {"pull"} and set(reg["source"]) == {"he3"} and reg["rows_in"].sum() == 24

    api.slots = 30  # six new quarter-hours: the next pull asks from the cursor only
    again = pull_once(store, config, headend)
    assert again.interval_reads == 6 and api.calls[-1]["args"]["since"] == "24"
    assert store.count("raw_reads") == 30


def test_pull_refusal_is_one_clear_error(store: Store, config, httpserver, monkeypatch) -> None:
    monkeypatch.setenv("HE3_TOKEN", "wrong")
    httpserver.expect_request("/reads").respond_with_handler(HeadEnd())
    headend = PullHeadend(source="he3", url=httpserver.url_for("/reads"), token_env="HE3_TOKEN", retries=0)
    with pytest.raises(PullError, match=r"he3: .* refused the request \(HTTP 401"):
        pull_once(store, config, headend)
    monkeypatch.delenv("HE3_TOKEN")
    with pytest.raises(PullError, match=r"\$HE3_TOKEN"):
        pull_once(store, config, headend)
    assert get_cursor(store, "he3") is None
