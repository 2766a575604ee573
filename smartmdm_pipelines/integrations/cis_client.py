"""HTTP client for the CIS master-data API (see docs/cis.md for the contract).

``GET {base_url}/{dataset}?page_size=N`` returns ``{"items": [...], "next": url | null}``;
``next`` may be absolute or relative to the page it came in. A ``page``/``total_pages``
body is accepted too (the next page is requested with ``&page=K``). Transient failures
(429, 500, 502, 503, 504, connection errors, read timeouts) are retried with exponential
backoff, honouring ``Retry-After``; every request has a timeout. The bearer token comes from
``$SMARTMDM_CIS_TOKEN`` (never from configuration files).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import pandas as pd
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

if TYPE_CHECKING:
    from smartmdm_pipelines.config import CisSettings

DATASETS: tuple[str, ...] = (
    "meters",
    "service_points",
    "accounts",
    "meter_installs",
    "billing_cycles",
    "zones",
)
RETRY_STATUSES = (429, 500, 502, 503, 504)
TOKEN_ENV = "SMARTMDM_CIS_TOKEN"
SOURCE_COLUMN = "_source"  # page URL each record came from (for error messages)
RECORD_COLUMN = "_record"  # 1-based position of the record in its page
_MAX_PAGES = 1_000_000


class CisError(RuntimeError):
    """The CIS answered something other than the contract: names the URL, the status and what was expected."""


class CisClient:
    """Fetches the CIS master datasets, page by page, into DataFrames of raw JSON values."""

    def __init__(
        self,
        base_url: str,
        *,
        page_size: int = 1000,
        timeout_seconds: float = 30.0,
        retries: int = 3,
        backoff_factor: float = 0.5,
        token: str | None = None,
        retry_after_max: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``retry_after_max``: a ``Retry-After`` longer than this is waited only this long (urllib3
        would wait up to 6 hours per retry). ``sleep``: how the waits between retries are spent
        (a test's clock)."""
        if not base_url:
            raise CisError(
                "CIS base_url is empty: set cis.base_url in the utility config for cis.source=rest"
            )
        self.base_url = base_url.rstrip("/") + "/"
        self.page_size = int(page_size)
        self.timeout_seconds = float(timeout_seconds)
        self.retries = int(retries)
        self.session = requests.Session()
        retry = _retry_class(sleep)(
            total=self.retries,
            connect=self.retries,
            read=self.retries,
            status=self.retries,
            other=0,
            backoff_factor=backoff_factor,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET"}),
            respect_retry_after_header=True,
            retry_after_max=retry_after_max,
            raise_on_status=False,  # the last response comes back; _get names its status
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["Accept"] = "application/json"
        token = token if token is not None else os.environ.get(TOKEN_ENV)
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def from_settings(cls, settings: CisSettings) -> CisClient:
        return cls(
            settings.base_url or "",
            page_size=settings.page_size,
            timeout_seconds=settings.timeout_seconds,
            retries=settings.retries,
        )

    def __enter__(self) -> CisClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    def __repr__(self) -> str:  # never shows the token
        return f"CisClient({self.base_url!r}, page_size={self.page_size})"

    # --- API ---------------------------------------------------------------------------------------

    def dataset_url(self, dataset: str) -> str:
        return urljoin(self.base_url, dataset) + "?" + urlencode({"page_size": self.page_size})

    def pages(self, dataset: str) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """(page URL, items) for every page of one dataset, following ``next`` or ``page``/``total_pages``."""
        url: str | None = self.dataset_url(dataset)
        seen: set[str] = set()
        while url is not None:
            if url in seen or len(seen) >= _MAX_PAGES:
                raise CisError(
                    f"GET {url}: paging loops (this page was already fetched); expected a new 'next'"
                )
            seen.add(url)
            body = self._get(url)
            items = body.get("items")
            if not isinstance(items, list):
                raise CisError(
                    f"GET {url}: HTTP 200 but the body has {'no' if items is None else 'a non-list'} 'items'; "
                    f'expected a JSON object {{"items": [...], "next": url | null}} (keys: {sorted(body)[:10]})'
                )
            bad = next((i for i, item in enumerate(items, 1) if not isinstance(item, dict)), None)
            if bad is not None:
                raise CisError(
                    f"GET {url}: record {bad} is {type(items[bad - 1]).__name__}; expected a JSON object"
                )
            yield url, items
            url = self._next_url(url, body)

    def fetch(self, dataset: str) -> pd.DataFrame:
        """One dataset as a DataFrame (raw JSON values) with ``_source`` (page URL) and ``_record``."""
        frames = []
        for url, items in self.pages(dataset):
            frame = pd.DataFrame.from_records(items) if items else pd.DataFrame(index=range(0))
            frame[SOURCE_COLUMN] = url
            frame[RECORD_COLUMN] = range(1, len(frame) + 1)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def fetch_all(self, datasets: Iterable[str] = DATASETS) -> dict[str, pd.DataFrame]:
        return {dataset: self.fetch(dataset) for dataset in datasets}

    # --- plumbing ----------------------------------------------------------------------------------

    def _get(self, url: str) -> dict[str, Any]:
        attempts = self.retries + 1
        try:
            response = self.session.get(url, timeout=self.timeout_seconds)
        except requests.exceptions.RetryError as exc:  # pragma: no cover - raise_on_status=False
            raise CisError(f"GET {url}: gave up after {attempts} attempts: {exc}") from exc
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as exc:
            timed_out = isinstance(exc, requests.exceptions.Timeout) or "timed out" in str(exc).lower()
            if timed_out:
                raise CisError(
                    f"GET {url}: no response within {self.timeout_seconds:g}s "
                    f"({attempts} attempts); expected an HTTP 200 JSON page"
                ) from exc
            raise CisError(f"GET {url}: connection failed after {attempts} attempts: {exc}") from exc
        if response.status_code != 200:
            retried = f" after {attempts} attempts" if response.status_code in RETRY_STATUSES else ""
            raise CisError(
                f"GET {url}: HTTP {response.status_code}{retried}; expected 200 with a JSON page "
                f'{{"items": [...], "next": ...}}. Body: {_snippet(response.text)}'
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise CisError(
                f"GET {url}: HTTP 200 but the body is not JSON "
                f"(Content-Type {response.headers.get('Content-Type')!r}); expected a JSON page. "
                f"Body: {_snippet(response.text)}"
            ) from exc
        if not isinstance(body, dict):
            raise CisError(
                f"GET {url}: HTTP 200 but the body is a JSON {type(body).__name__}; "
                f'expected a JSON object {{"items": [...], "next": url | null}}'
            )
        return body

    def _next_url(self, url: str, body: dict[str, Any]) -> str | None:
        if "next" in body:
            nxt = body["next"]
            if nxt in (None, ""):
                return None
            if not isinstance(nxt, str):
                raise CisError(f"GET {url}: 'next' is {nxt!r}; expected a URL string or null")
            return urljoin(url, nxt)
        if "total_pages" in body:
            try:
                page, total = int(body.get("page", 1)), int(body["total_pages"])
            except (TypeError, ValueError) as exc:
                raise CisError(
                    f"GET {url}: page={body.get('page')!r}, total_pages={body['total_pages']!r}; expected integers"
                ) from exc
            return _with_query(url, page=page + 1) if page < total else None
        return None  # a single page


def _retry_class(sleep: Callable[[float], None]) -> type[Retry]:
    """urllib3's ``Retry`` spending its waits through ``sleep`` (``Retry.new`` keeps the class)."""

    class SleepingRetry(Retry):
        def sleep(self, response=None) -> None:
            asked = self.get_retry_after(response) if self.respect_retry_after_header and response else None
            wait = asked if asked else self.get_backoff_time()
            if wait > 0:
                sleep_fn(wait)

    sleep_fn = sleep
    return SleepingRetry


def _with_query(url: str, **params: Any) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update({k: str(v) for k, v in params.items()})
    return urlunsplit(parts._replace(query=urlencode(query)))


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return repr(text[:limit] + ("…" if len(text) > limit else ""))
