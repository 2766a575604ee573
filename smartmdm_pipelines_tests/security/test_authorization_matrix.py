"""Every route of the service × every kind of caller, with the status each must get.

The routes come from the app itself (``fastapi.routing.iter_route_contexts`` over ``app.routes``),
so a new endpoint without an entry in ``ROUTES`` fails ``test_every_route_has_an_entry``. A
customer asking for another account (in the path or through a query id) gets 404 with the
"not found" detail only, never data; head-end tokens open the head-end route of their own source
only and nothing of the portal; portal tokens open nothing of the head-end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import jwt
import pandas as pd
import pytest
from fastapi.routing import iter_route_contexts

from smartmdm_pipelines.config import default_config
from smartmdm_pipelines.server.app import create_app
from smartmdm_pipelines.server.portal_auth import AUDIENCE, ISSUER
from smartmdm_pipelines.server.runtime import Runtime
from smartmdm_pipelines.server.settings import ServerSettings
from smartmdm_pipelines_tests.portal.helpers import KEY, seed, token
from smartmdm_pipelines_tests.realtime.helpers import body as delivery

HEADEND_TOKENS = {"hes1": "hes1-token-" + "a" * 32, "hes2": "hes2-token-" + "b" * 32}


def _jwt(**changes) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "scope": "customer", "accounts": ["A1"], "exp": now + 600}
    claims |= changes
    key = claims.pop("key", KEY)
    return {"Authorization": "Bearer " + jwt.encode(claims, key, algorithm="HS256")}


CALLERS = {
    "none": lambda: {},
    "malformed": lambda: {"Authorization": "Bearer not.a-token"},
    "not_bearer": lambda: {"Authorization": "Basic " + "YTpi"},
    "bad_signature": lambda: _jwt(key="another-key-of-at-least-32-bytes-long!!"),
    "expired": lambda: _jwt(exp=int(time.time()) - 10),
    "wrong_issuer": lambda: _jwt(iss="someone-else"),
    "wrong_audience": lambda: _jwt(aud="another-api"),
    "unknown_scope": lambda: _jwt(scope="admin"),
    "customer": lambda: token("customer", "A1"),
    "customer_other": lambda: token("customer", "A2"),
    "customer_former": lambda: token("customer", "A0"),  # SP-1's tenant before A1 moved in
    "portal_service": lambda: token("portal-service"),
    "ops": lambda: token("ops"),
    "headend_own": lambda: {"Authorization": f"Bearer {HEADEND_TOKENS['hes1']}"},
    "headend_other": lambda: {"Authorization": f"Bearer {HEADEND_TOKENS['hes2']}"},
}
UNAUTHENTICATED = (
    "none",
    "malformed",
    "not_bearer",
    "bad_signature",
    "expired",
    "wrong_issuer",
    "wrong_audience",
)
# what a portal route answers to a caller that is not a valid portal token
PORTAL_REFUSED = dict.fromkeys((*UNAUTHENTICATED, "unknown_scope", "headend_own", "headend_other"), 401)


def policy(**allowed: int) -> dict[str, int]:
    table = PORTAL_REFUSED | allowed
    assert set(table) == set(CALLERS), sorted(set(CALLERS) - set(table))
    return table


PUBLIC = dict.fromkeys(CALLERS, 200)
CUSTOMER_DATA = policy(customer=200, customer_other=404, customer_former=404, portal_service=200, ops=403)
NOBODY_BUT_OPS_READS = policy(
    customer=404, customer_other=404, customer_former=404, portal_service=404, ops=403
)
ALERTS_READ = policy(customer=200, customer_other=404, customer_former=404, portal_service=200, ops=200)
ALERTS_WRITE = policy(customer=200, customer_other=404, customer_former=404, portal_service=200, ops=200)
OPS_ONLY = policy(customer=403, customer_other=403, customer_former=403, portal_service=403, ops=200)
HEADEND = dict.fromkeys(CALLERS, 401) | {"headend_own": 202, "headend_other": 403}


@dataclass
class Call:
    url: str
    expect: dict[str, int]
    json: dict | None = None
    content: bytes | None = None
    note: str = ""
    headers: dict[str, str] = field(default_factory=dict)


USAGE = "/v1/accounts/{a}/usage?from=2024-11-01&to=2024-11-02"
RULES = {"rules": [{"kind": "daily_usage_above", "threshold": 5}], "reason": "authorization matrix"}

# (method, route path) -> the calls made to it, with {a}/{sp} filled as A1 / SP-1 (the "own" account)
ROUTES: dict[tuple[str, str], list[Call]] = {
    ("GET", "/openapi.json"): [Call("/openapi.json", PUBLIC)],
    ("GET", "/docs"): [Call("/docs", PUBLIC)],
    ("GET", "/docs/oauth2-redirect"): [Call("/docs/oauth2-redirect", PUBLIC)],
    ("GET", "/redoc"): [Call("/redoc", PUBLIC)],
    ("GET", "/v1/health"): [Call("/v1/health", PUBLIC, note="liveness probe: counts and names, no data")],
    ("POST", "/v1/headend/{source}/reads"): [
        Call(
            "/v1/headend/hes1/reads",
            HEADEND,
            content=delivery(["M1"], range(4)),
            headers={"X-Filename": "d.csv"},
        )
    ],
    ("GET", "/v1/accounts/{account_id}/usage"): [
        Call(USAGE + "&resolution=hour", CUSTOMER_DATA),
        Call(USAGE + "&resolution=day&format=csv", CUSTOMER_DATA),
        Call(USAGE + "&resolution=interval", CUSTOMER_DATA),
        Call(USAGE + "&service_point_id=SP-1", CUSTOMER_DATA),
        Call(USAGE + "&meter_id=M1", CUSTOMER_DATA),
        # the own account with another account's service point or meter in the query
        Call(USAGE + "&service_point_id=SP-2", NOBODY_BUT_OPS_READS, note="query id of another account"),
        Call(USAGE + "&meter_id=M2", NOBODY_BUT_OPS_READS, note="query id of another account"),
        Call(USAGE + "&meter_id=M2&format=csv&resolution=day", NOBODY_BUT_OPS_READS),
    ],
    ("GET", "/v1/accounts/{account_id}/usage/compare"): [
        Call("/v1/accounts/{a}/usage/compare?from=2024-11-01&to=2024-11-02", CUSTOMER_DATA),
        Call(
            "/v1/accounts/{a}/usage/compare?from=2024-11-01&to=2024-11-02&service_point_id=SP-2",
            NOBODY_BUT_OPS_READS,
        ),
    ],
    ("GET", "/v1/accounts/{account_id}/bill-to-date"): [
        Call("/v1/accounts/{a}/bill-to-date?as_of=2024-11-05", CUSTOMER_DATA)
    ],
    ("GET", "/v1/accounts/{account_id}/greenbutton"): [
        Call("/v1/accounts/{a}/greenbutton?from=2024-11-01&to=2024-11-02", CUSTOMER_DATA)
    ],
    ("GET", "/v1/accounts/{account_id}/alerts"): [Call("/v1/accounts/{a}/alerts", ALERTS_READ)],
    ("PUT", "/v1/service-points/{service_point_id}/alerts"): [
        Call("/v1/service-points/{sp}/alerts", ALERTS_WRITE, json=RULES)
    ],
    ("POST", "/v1/alerts/replay"): [Call("/v1/alerts/replay", OPS_ONLY, json={})],
}


def app_routes(app) -> set[tuple[str, str]]:
    return {
        (method, ctx.path)
        for ctx in iter_route_contexts(app.routes)
        for method in (ctx.methods or {"GET"}) - {"HEAD"}
    }


@pytest.fixture
def app(store, monkeypatch, tmp_path):
    monkeypatch.setenv("SMARTMDM_API_SIGNING_KEY", KEY)
    monkeypatch.setenv("SMARTMDM_API_RATE_LIMIT", "0")
    monkeypatch.setenv("SMARTMDM_DATA_DIR", str(tmp_path / "data"))
    seed(store)
    former = {"account_id": "A0", "service_point_id": "SP-1", "move_in": pd.Timestamp("2018-01-01")}
    store.bulk_insert("accounts", pd.DataFrame([former | {"move_out": pd.Timestamp("2020-01-01")}]))
    config = default_config().model_copy(update={"data_dir": tmp_path / "data"})
    settings = ServerSettings(
        config=config, store_url=store.url, tokens=HEADEND_TOKENS, workers=False, mqtt_host=None
    )
    return create_app(settings, Runtime(settings, store))


def test_every_route_has_an_entry(app) -> None:
    served = app_routes(app)
    assert served - set(ROUTES) == set(), "a route without an authorization entry: add it to ROUTES"
    assert set(ROUTES) - served == set(), "an entry for a route the app no longer serves"


def test_every_route_answers_every_caller_as_expected(app) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(app)
    wrong: list[str] = []
    checked = 0
    for (method, _), calls in ROUTES.items():
        for call in calls:
            url = call.url.format(a="A1", sp="SP-1")
            for caller, expected in call.expect.items():
                headers = CALLERS[caller]() | call.headers
                r = client.request(method, url, headers=headers, json=call.json, content=call.content)
                checked += 1
                if r.status_code != expected:
                    wrong.append(
                        f"{caller:>15} {method} {url}: {r.status_code}, expected {expected}: {r.text[:120]}"
                    )
                    continue
                if expected == 401:
                    assert "WWW-Authenticate" in r.headers, (caller, url)
                if expected in (401, 403, 404):  # a refusal carries its reason and nothing else
                    assert set(r.json()) == {"detail"}, (caller, url, r.text[:200])
                    assert KEY not in r.text and "M1" not in r.text.replace(url, ""), (caller, url)
                if expected == 404:
                    assert r.json()["detail"].endswith("not found"), (caller, url, r.text)
    assert not wrong, f"{len(wrong)} of {checked} calls got another status:\n" + "\n".join(wrong)
    assert checked == sum(len(c.expect) for calls in ROUTES.values() for c in calls)


def test_a_customer_token_for_another_account_sees_nothing_of_it(app) -> None:
    """Path variants: every account route, the other account in the path, under both customers'
    tokens and an unknown account: 404 with the same detail whether the account exists or not."""
    from fastapi.testclient import TestClient

    client = TestClient(app)
    own = token("customer", "A1")
    for (method, path), calls in ROUTES.items():
        if "{account_id}" not in path:
            continue
        for call in calls:
            theirs = client.request(method, call.url.format(a="A2"), headers=own)
            unknown = client.request(method, call.url.format(a="NO-SUCH"), headers=own)
            lower = client.request(method, call.url.format(a="a1"), headers=own)
            assert theirs.status_code == unknown.status_code == lower.status_code == 404, call.url
            assert theirs.json() == {"detail": "account A2 not found"}, theirs.text
            assert unknown.json() == {"detail": "account NO-SUCH not found"}
    foreign_sp = client.put("/v1/service-points/SP-2/alerts", json=RULES, headers=own)
    assert foreign_sp.status_code == 404 and foreign_sp.json() == {"detail": "service point SP-2 not found"}


def test_a_former_tenant_neither_sets_nor_sees_the_current_tenants_alert_rules(app) -> None:
    """Found by the matrix: the alert PUT accepted any account that had ever been on the service
    point, and an account's alerts listed the rules of every service point it had ever been on."""
    from fastapi.testclient import TestClient

    client = TestClient(app)
    current, former = token("customer", "A1"), token("customer", "A0")
    assert client.put("/v1/service-points/SP-1/alerts", json=RULES, headers=current).status_code == 200
    assert client.put("/v1/service-points/SP-1/alerts", json=RULES, headers=former).status_code == 404
    mine = client.get("/v1/accounts/A1/alerts", headers=current).json()
    theirs = client.get("/v1/accounts/A0/alerts", headers=former)
    assert [r["kind"] for r in mine["rules"]] == ["daily_usage_above"]
    assert theirs.status_code == 200 and theirs.json()["rules"] == [], theirs.text
