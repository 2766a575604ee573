"""schemathesis against the service's /openapi.json: generated requests (bounded examples) to
every portal operation, as a customer of A1 and as the portal back end: never a 5xx, and a
customer never gets another account's data."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.portal.helpers import client, seed, token

EXAMPLES = 30


@pytest.fixture
def app(duckdb_url, monkeypatch):
    store = Store(duckdb_url)
    seed(store)
    yield client(store, monkeypatch).app
    store.dispose()


def test_openapi_lists_the_portal_contract(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    paths = set(schema.raw_schema["paths"])
    assert {
        "/v1/accounts/{account_id}/usage",
        "/v1/accounts/{account_id}/usage/compare",
        "/v1/accounts/{account_id}/bill-to-date",
        "/v1/accounts/{account_id}/greenbutton",
        "/v1/accounts/{account_id}/alerts",
        "/v1/service-points/{service_point_id}/alerts",
    } <= paths
    usage = schema.raw_schema["paths"]["/v1/accounts/{account_id}/usage"]["get"]
    assert {"from", "to", "resolution", "format"} <= {p["name"] for p in usage["parameters"]}


def exercise(operation, headers: dict, who: str) -> set[int]:
    """Run the operation's generated cases; the status codes seen."""
    codes: set[int] = set()

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        for own in (False, True):  # as generated, then on the caller's own account / service point
            if own:
                params = case.path_parameters or {}
                if "account_id" in params:
                    params["account_id"] = "A1"
                if "service_point_id" in params:
                    params["service_point_id"] = "SP-1"
            response = case.call(headers=headers)
            code = response.status_code
            codes.add(code)
            assert code < 500, (
                f"{case.method} {case.formatted_path} {case.query} -> {code}: {response.text[:300]}"
            )
            account = (case.path_parameters or {}).get("account_id")
            if who == "customer" and account not in (None, "A1") and code == 200:
                pytest.fail(f"customer of A1 got 200 for account {account!r}")

    run()
    return codes


@pytest.mark.parametrize("who", ["customer", "portal-service"])
def test_no_server_errors_on_generated_requests(app, who):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(
        path_regex=r"^/v1/(accounts|service-points|alerts)"
    )
    headers = token("customer", "A1") if who == "customer" else token("portal-service")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6
    seen = {operation.label: exercise(operation, headers, who) for operation in operations}
    assert all(seen.values()), seen
    assert any(code < 300 for codes in seen.values() for code in codes), seen  # not all rejected
