"""The CIS REST client against a real HTTP server on loopback (pytest-httpserver)."""

from __future__ import annotations

import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from smartmdm_pipelines.integrations.cis_client import CisClient, CisError


def meters(first: int, n: int) -> list[dict]:
    return [{"meter_id": f"M{i:03d}", "kind": "ami", "multiplier": 1.0} for i in range(first, first + n)]


def client(server: HTTPServer, **kw) -> CisClient:
    kw.setdefault("backoff_factor", 0)
    return CisClient(server.url_for("/api/"), page_size=2, **kw)


def test_pages_by_next_links_relative_and_absolute(httpserver: HTTPServer, monkeypatch) -> None:
    monkeypatch.setenv("SMARTMDM_CIS_TOKEN", "s3cret")
    httpserver.expect_ordered_request(
        "/api/meters", query_string="page_size=2", headers={"Authorization": "Bearer s3cret"}
    ).respond_with_json({"items": meters(0, 2), "next": "meters?page_size=2&cursor=abc"})
    httpserver.expect_ordered_request("/api/meters", query_string="page_size=2&cursor=abc").respond_with_json(
        {"items": meters(2, 2), "next": httpserver.url_for("/api/meters") + "?page_size=2&cursor=def"}
    )
    httpserver.expect_ordered_request("/api/meters", query_string="page_size=2&cursor=def").respond_with_json(
        {"items": meters(4, 1), "next": None}
    )
    with client(httpserver) as cis:
        frame = cis.fetch("meters")
        assert "s3cret" not in repr(cis)
    assert frame["meter_id"].tolist() == [f"M{i:03d}" for i in range(5)]
    assert frame["_record"].tolist() == [1, 2, 1, 2, 1]
    assert frame["_source"].iloc[-1].endswith("/api/meters?page_size=2&cursor=def")
    httpserver.check_assertions()


def test_pages_by_page_and_total_pages(httpserver: HTTPServer) -> None:
    for page in (1, 2, 3):
        query = "page_size=2" if page == 1 else f"page_size=2&page={page}"
        httpserver.expect_ordered_request("/api/zones", query_string=query).respond_with_json(
            {"items": [{"zone_id": f"Z{page}"}], "page": page, "total_pages": 3}
        )
    frame = client(httpserver).fetch("zones")
    assert frame["zone_id"].tolist() == ["Z1", "Z2", "Z3"]
    httpserver.check_assertions()


def test_a_503_is_retried_honouring_retry_after(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request("/api/meters").respond_with_data(
        "busy", status=503, headers={"Retry-After": "1"}
    )
    httpserver.expect_ordered_request("/api/meters").respond_with_json({"items": meters(0, 1), "next": None})
    started = time.monotonic()
    frame = client(httpserver, retries=2).fetch("meters")
    assert time.monotonic() - started >= 0.9  # waited as told
    assert frame["meter_id"].tolist() == ["M000"]
    assert len(httpserver.log) == 2


def test_a_500_forever_gives_a_clear_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/meters").respond_with_data("database down", status=500)
    with pytest.raises(CisError) as err:
        client(httpserver, retries=2).fetch("meters")
    message = str(err.value)
    assert httpserver.url_for("/api/meters") in message
    assert "HTTP 500 after 3 attempts" in message
    assert "expected 200" in message and "database down" in message
    assert len(httpserver.log) == 3


def test_a_404_is_not_retried(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/meters").respond_with_data("no such dataset", status=404)
    with pytest.raises(CisError, match="HTTP 404; expected 200"):
        client(httpserver, retries=3).fetch("meters")
    assert len(httpserver.log) == 1


def test_a_body_without_items_is_refused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/meters").respond_with_json({"data": [], "next": None})
    with pytest.raises(CisError) as err:
        client(httpserver).fetch("meters")
    assert "/api/meters?page_size=2" in str(err.value)
    assert "no 'items'" in str(err.value) and "expected a JSON object" in str(err.value)


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ("<html>login</html>", "text/html", "not JSON"),
        ("[1, 2]", "application/json", "body is a JSON list"),
        ('{"items": [1], "next": null}', "application/json", "record 1 is int; expected a JSON object"),
        ('{"items": [], "next": 7}', "application/json", "'next' is 7"),
    ],
)
def test_bad_bodies(httpserver: HTTPServer, body: str, content_type: str, expected: str) -> None:
    httpserver.expect_request("/api/meters").respond_with_data(body, content_type=content_type)
    with pytest.raises(CisError, match=expected):
        client(httpserver).fetch("meters")


def test_a_next_link_to_the_same_page_is_a_loop(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/meters").respond_with_json({"items": [], "next": "meters?page_size=2"})
    with pytest.raises(CisError, match="paging loops"):
        client(httpserver).fetch("meters")


def test_a_timeout_names_the_url() -> None:
    def slow(request: Request) -> Response:
        time.sleep(1.0)
        return Response('{"items": []}', content_type="application/json")

    server = HTTPServer(threaded=True)
    server.expect_request("/api/meters").respond_with_handler(slow)
    server.start()
    try:
        started = time.monotonic()
        with pytest.raises(CisError) as err:
            CisClient(server.url_for("/api/"), timeout_seconds=0.2, retries=1, backoff_factor=0).fetch(
                "meters"
            )
        assert time.monotonic() - started < 0.9 * 2
        assert "no response within 0.2s (2 attempts)" in str(err.value)
        assert server.url_for("/api/meters") in str(err.value)
    finally:
        server.clear()
        server.stop()


def test_an_empty_base_url_is_refused() -> None:
    with pytest.raises(CisError, match="base_url"):
        CisClient("")
