"""Token scoping on every portal endpoint: a customer asking for another account gets 404 (path
and query variants), bad/expired/foreign tokens 401, the rate limit 429, and the CLI's tokens."""

from __future__ import annotations

import time

import jwt
import pytest

from smartmdm_pipelines.cli import main
from smartmdm_pipelines.server.portal_auth import AUDIENCE, ISSUER
from smartmdm_pipelines_tests.portal.helpers import KEY, client, seed, token

# every account-scoped read endpoint, with {a} for the account id
READS = [
    "/v1/accounts/{a}/usage?from=2024-11-01&to=2024-11-02&resolution=hour",
    "/v1/accounts/{a}/usage?from=2024-11-01&to=2024-11-02&resolution=day&format=csv",
    "/v1/accounts/{a}/usage?from=2024-11-01&to=2024-11-02&service_point_id=SP-2",
    "/v1/accounts/{a}/usage?from=2024-11-01&to=2024-11-02&meter_id=M2",
    "/v1/accounts/{a}/usage/compare?from=2024-11-01&to=2024-11-02",
    "/v1/accounts/{a}/bill-to-date?as_of=2024-11-05",
    "/v1/accounts/{a}/greenbutton?from=2024-11-01&to=2024-11-02",
    "/v1/accounts/{a}/alerts",
]


@pytest.fixture
def api(store, monkeypatch):
    seed(store)
    return client(store, monkeypatch)


def test_customer_sees_only_own_accounts_everywhere(api):
    own, other = token("customer", "A1"), token("customer", "A2")
    portal = token("portal-service")
    for path in READS:
        mine = api.get(path.format(a="A1"), headers=own)
        theirs = api.get(path.format(a="A2"), headers=own)
        nobody = api.get(path.format(a="NOPE"), headers=own)
        assert theirs.status_code == 404, (path, theirs.text)
        assert nobody.status_code == 404 and theirs.json()["detail"] == "account A2 not found"
        assert "A2" not in theirs.text.replace("account A2 not found", "")
        assert api.get(path.format(a="A2"), headers=other).status_code in (200, 404), path
        if "SP-2" in path or "M2" in path:  # A1's own account with A2's service point or meter
            assert mine.status_code == 404, (path, mine.text)
        else:
            assert mine.status_code == 200, (path, mine.text)
            assert api.get(path.format(a="A2"), headers=portal).status_code == 200, path
    # the service-point alert configuration: another customer's service point is 404 too
    body = {"rules": [{"kind": "daily_usage_above", "threshold": 5}]}
    assert api.put("/v1/service-points/SP-2/alerts", json=body, headers=own).status_code == 404
    assert api.put("/v1/service-points/SP-1/alerts", json=body, headers=own).status_code == 200


def test_bad_tokens_are_401(api):
    path = READS[0].format(a="A1")
    assert api.get(path).status_code == 401
    assert api.get(path, headers={"Authorization": "Basic abc"}).status_code == 401
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "scope": "customer", "accounts": ["A1"], "exp": now + 60}
    forged = jwt.encode(claims, "another-key-of-at-least-32-bytes-long!!", algorithm="HS256")
    assert api.get(path, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    for bad, why in [
        (claims | {"exp": now - 10}, "expired"),
        (claims | {"aud": "elsewhere"}, "audience"),
        (claims | {"iss": "someone"}, "issuer"),
        (claims | {"scope": "admin"}, "scope"),
    ]:
        r = api.get(path, headers={"Authorization": "Bearer " + jwt.encode(bad, KEY, algorithm="HS256")})
        assert r.status_code == 401 and why in r.json()["detail"], (why, r.text)
        assert KEY not in r.text
    none_alg = jwt.encode(claims, None, algorithm="none")
    assert api.get(path, headers={"Authorization": f"Bearer {none_alg}"}).status_code == 401


def test_ops_configures_alerts_but_reads_no_usage(api):
    ops = token("ops")
    assert api.get(READS[0].format(a="A1"), headers=ops).status_code == 403
    assert api.get("/v1/accounts/A1/alerts", headers=ops).status_code == 200
    body = {"rules": [{"kind": "daily_usage_above", "threshold": 5}]}
    assert api.put("/v1/service-points/SP-2/alerts", json=body, headers=ops).status_code == 200


def test_rate_limit_per_token(store, monkeypatch):
    seed(store, with_tariffs=False)
    api = client(store, monkeypatch, rate="2")  # 2/s, bursts of 4
    a, b = token("customer", "A1"), token("customer", "A1")
    path = "/v1/accounts/A1/alerts"
    codes = [api.get(path, headers=a).status_code for _ in range(8)]
    assert codes[:4] == [200] * 4 and 429 in codes[4:]
    limited = next(api.get(path, headers=a) for _ in range(1))
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert api.get(path, headers=b).status_code == 200  # another token has its own bucket


def test_cli_token(monkeypatch, capsys):
    monkeypatch.setenv("SMARTMDM_API_SIGNING_KEY", KEY)
    assert main(["token", "--scope", "customer", "--account", "A1", "--ttl", "60"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), KEY, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["scope"] == "customer" and claims["accounts"] == ["A1"] and claims["iss"] == ISSUER
    assert 55 <= claims["exp"] - time.time() <= 61
    assert main(["token", "--scope", "customer"]) == 2
    assert "--account" in capsys.readouterr().err
    monkeypatch.delenv("SMARTMDM_API_SIGNING_KEY")
    assert main(["token", "--scope", "ops"]) == 2
    assert "SMARTMDM_API_SIGNING_KEY" in capsys.readouterr().err
