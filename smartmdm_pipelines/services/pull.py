"""The pull connector: for a head-end that only offers a REST API, fetch new reads page by page
from a stored ``since`` cursor and ingest each page as a delivery (channel ``pull``).

The head-end API it speaks (docs/cis.md, "Pull connector"):

    GET {url}?since={cursor}&limit={page_size}      Authorization: Bearer {token}
    200 {"data": "<a delivery in any supported format>", "next_cursor": "...", "has_more": true|false}

The first request has no ``since``. A page's delivery is committed before the cursor moves on, so
a crash re-fetches at most one page, which ingestion then recognises as a duplicate (sha256).
429, 5xx and timeouts are retried (``retries`` times, exponential backoff, at least the
``Retry-After`` asked for); another 4xx stops the pull with its reason.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field

import pandas as pd
import requests

from smartmdm_pipelines.config import PullHeadend, UtilityConfig
from smartmdm_pipelines.services.dispatch import retry_after_seconds
from smartmdm_pipelines.services.realtime import ingest_body
from smartmdm_pipelines.store.store import Store

MAX_PAGES = 1000  # per pull; the next pull continues from the cursor


class PullError(RuntimeError):
    """The head-end API refused or kept failing: one line naming it and the reason."""


@dataclass
class PullResult:
    source: str
    pages: int = 0
    deliveries: list[int] = field(default_factory=list)
    interval_reads: int = 0
    rejected_rows: int = 0
    duplicates: int = 0
    cursor: str | None = None


def get_cursor(store: Store, source: str) -> str | None:
    frame = store.read_frame("SELECT cursor FROM headend_cursors WHERE source = :s", {"s": source})
    return None if frame.empty else frame["cursor"].iloc[0]


def set_cursor(store: Store, source: str, cursor: str | None) -> None:
    with store.begin() as conn:
        store.execute("DELETE FROM headend_cursors WHERE source = :s", {"s": source}, conn)
        store.execute(
            "INSERT INTO headend_cursors (source, cursor, updated_at) VALUES (:s, :c, :t)",
            {"s": source, "c": cursor, "t": pd.Timestamp.now(tz="UTC").to_pydatetime()},
            conn,
        )


def _get(session: requests.Session, headend: PullHeadend, params: dict, sleep=time.sleep) -> dict:
    headers = {}
    if headend.token_env:
        token = os.environ.get(headend.token_env)
        if not token:
            raise PullError(f"head-end {headend.source}: ${headend.token_env} (its API token) is not set")
        headers["Authorization"] = f"Bearer {token}"
    problem = ""
    for attempt in range(headend.retries + 1):
        try:
            response = session.get(
                headend.url, params=params, headers=headers, timeout=headend.timeout_seconds
            )
        except requests.RequestException as exc:
            problem, wait = f"{type(exc).__name__}: {exc}", None
        else:
            code = response.status_code
            if 200 <= code < 300:
                try:
                    return response.json()
                except ValueError:
                    raise PullError(f"head-end {headend.source}: {headend.url} answered non-JSON") from None
            problem = f"HTTP {code}: {' '.join(response.text.split())[:200]}"
            if code not in (408, 429) and code < 500:
                raise PullError(f"head-end {headend.source}: {headend.url} refused the request ({problem})")
            wait = retry_after_seconds(response.headers.get("Retry-After"))
        if attempt < headend.retries:
            backoff = min(30.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)
            sleep(max(backoff, min(wait, 300.0)) if wait is not None else backoff)
    raise PullError(
        f"head-end {headend.source}: {headend.url} failed {headend.retries + 1} times ({problem})"
    )


def pull_once(
    store: Store, config: UtilityConfig, headend: PullHeadend, session: requests.Session | None = None
) -> PullResult:
    """Fetch every page after the stored cursor (at most ``MAX_PAGES``) and ingest them."""
    session = session or requests.Session()
    result = PullResult(headend.source, cursor=get_cursor(store, headend.source))
    for _ in range(MAX_PAGES):
        params = {"limit": headend.page_size} | ({"since": result.cursor} if result.cursor else {})
        page = _get(session, headend, params)
        data, next_cursor = page.get("data") or "", page.get("next_cursor")
        if data:
            name = f"pull-{headend.source}-{(result.cursor or 'start')[:40]}"
            summary = ingest_body(store, config, headend.source, data.encode(), "pull", name)
            if summary.status == "duplicate":
                result.duplicates += 1
            else:
                result.deliveries.append(int(summary.file_id))
                result.interval_reads += summary.interval_reads
                result.rejected_rows += summary.rejected_rows
        result.pages += 1
        if next_cursor is not None and next_cursor != result.cursor:
            result.cursor = str(next_cursor)
            set_cursor(store, headend.source, result.cursor)
        if not page.get("has_more") or next_cursor is None:
            break
    return result
