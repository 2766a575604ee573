"""Bearer tokens of the portal API: JWT (HS256) signed with ``$SMARTMDM_API_SIGNING_KEY``,
issuer, audience and expiry checked, scopes ``customer`` (only the accounts in the token's
``accounts`` claim), ``portal-service`` (any account) and ``ops`` (alert configuration).

A per-token rate limit (token bucket keyed by the token's ``jti``) answers 429 with
``Retry-After``. Tokens and the key are never logged: errors name the claim that failed only.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass

import jwt
from fastapi import HTTPException, Request

ISSUER = "smartmdm"
AUDIENCE = "smartmdm-portal-api"
SCOPES = ("customer", "portal-service", "ops")
KEY_ENV = "SMARTMDM_API_SIGNING_KEY"
RATE_ENV = "SMARTMDM_API_RATE_LIMIT"  # requests per second per token (burst: twice that)
MIN_KEY_BYTES = 32


class SigningKeyError(RuntimeError):
    pass


def signing_key(env: dict | None = None) -> str:
    env = os.environ if env is None else env
    key = env.get(KEY_ENV) or ""
    if len(key.encode()) < MIN_KEY_BYTES:
        raise SigningKeyError(
            f"{KEY_ENV} must be set to a secret of at least {MIN_KEY_BYTES} bytes "
            "(e.g. `openssl rand -hex 32`)"
        )
    return key


def issue_token(
    scope: str,
    accounts: list[str] | None = None,
    ttl: int = 3600,
    subject: str | None = None,
    key: str | None = None,
) -> str:
    """A signed token (what ``smartmdm token`` prints)."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    accounts = list(accounts or [])
    if scope == "customer" and not accounts:
        raise ValueError("a customer token needs at least one --account")
    if ttl <= 0:
        raise ValueError(f"--ttl must be a positive number of seconds, not {ttl}")
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject or (f"customer:{accounts[0]}" if scope == "customer" else scope),
        "scope": scope,
        "accounts": accounts,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key or signing_key(), algorithm="HS256")


@dataclass(frozen=True)
class Principal:
    subject: str
    scope: str
    accounts: frozenset[str]
    token_id: str

    def may_read(self, account_id: str) -> bool:
        """Usage, bills, Green Button: the account's own customer, or the portal back end."""
        if self.scope == "portal-service":
            return True
        return self.scope == "customer" and account_id in self.accounts

    def may_see_alerts(self, account_id: str) -> bool:
        return self.scope == "ops" or self.may_read(account_id)


class RateLimiter:
    """Token bucket per token id: ``rate`` requests/s, bursts of ``2 × rate``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(1.0, 2 * rate)
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 if allowed, else the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self.lock:
            tokens, last = self.buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self.buckets[key] = (tokens - 1.0, now)
                return 0.0
            self.buckets[key] = (tokens, now)
            if len(self.buckets) > 100_000:  # forget idle tokens
                self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < 60}
            return (1.0 - tokens) / self.rate


def limiter_for(request: Request) -> RateLimiter:
    state = request.app.state
    limiter = getattr(state, "portal_limiter", None)
    if limiter is None:
        limiter = RateLimiter(float(os.environ.get(RATE_ENV) or 20))
        state.portal_limiter = limiter
    return limiter


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(401, detail, {"WWW-Authenticate": 'Bearer realm="smartmdm"'})


def decode(token: str, key: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iss", "aud", "scope"]},
        )
    except jwt.ExpiredSignatureError:
        raise _unauthorised("the token has expired") from None
    except jwt.InvalidAudienceError:
        raise _unauthorised(f"the token's audience is not {AUDIENCE}") from None
    except jwt.InvalidIssuerError:
        raise _unauthorised(f"the token's issuer is not {ISSUER}") from None
    except jwt.MissingRequiredClaimError as exc:
        raise _unauthorised(f"the token has no {exc.claim!r} claim") from None
    except jwt.InvalidTokenError:
        raise _unauthorised("the token is not a valid signed token") from None
    scope = claims.get("scope")
    if scope not in SCOPES:
        raise _unauthorised(f"the token's scope must be one of {', '.join(SCOPES)}")
    accounts = claims.get("accounts") or []
    if not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts):
        raise _unauthorised("the token's accounts claim must be a list of account ids")
    return Principal(
        str(claims.get("sub") or scope),
        scope,
        frozenset(accounts),
        str(claims.get("jti") or claims.get("sub")),
    )


def principal(request: Request) -> Principal:
    """The FastAPI dependency: the caller, authenticated and within its rate limit."""
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorised("missing bearer token (Authorization: Bearer TOKEN)")
    try:
        key = signing_key()
    except SigningKeyError:
        raise HTTPException(503, f"the portal API is not configured: {KEY_ENV} is not set") from None
    who = decode(token.strip(), key)
    wait = limiter_for(request).take(who.token_id)
    if wait > 0:
        raise HTTPException(
            429, "rate limit of this token exceeded; retry later", {"Retry-After": str(max(1, round(wait)))}
        )
    return who
