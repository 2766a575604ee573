"""The outbox dispatcher: POST pending records in batches to a push destination (docs/cis.md).

A batch is ``batch_size`` records (the contract's 1,000), or up to ``max_batch_size`` when more
are pending (a burst's backlog: fewer POSTs, reads and commits per record; the default
``max_batch_size`` is ``batch_size``, the service's ``realtime.push_max_batch_size`` 10,000).

At-least-once with stable ids: a batch's rows get their ``Idempotency-Key`` (a hash of the
batch's message ids) stored *before* the POST, so a batch interrupted by a crash is re-sent
with the same key and the same records. Records go out in outbox order per destination and a
failing batch blocks the ones behind it, which keeps the order per meter-channel.

* 2xx: the batch is delivered.
* 408, 429, 5xx, a timeout or a refused connection: the same batch again after an exponential
  backoff with jitter, at least the ``Retry-After`` the receiver asked for.
* another 4xx: the receiver refused the batch as a whole; it is split in halves until the
  refused record is alone, which is dead-lettered with the receiver's reason (``smartmdm
  outbox replay`` puts it back).
"""

from __future__ import annotations

import email.utils
import hashlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import requests

from smartmdm_pipelines.services.outbox import PushTarget, record_json, records
from smartmdm_pipelines.store.store import Store

RETRYABLE = {408, 425, 429}
MAX_REASON = 300


@dataclass
class Attempt:
    """What one ``Dispatcher.step`` did: records delivered or dead-lettered, and how long to wait."""

    delivered: int = 0
    dead: int = 0
    wait_seconds: float = 0.0
    idle: bool = False
    error: str | None = None


class Dispatcher:
    def __init__(
        self,
        store: Store,
        target: PushTarget,
        *,
        batch_size: int = 1000,
        max_batch_size: int | None = None,
        timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 60.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``clock`` and ``sleep`` drive ``drain`` (a test runs an hour-long outage on a clock of its own)."""
        self.store = store
        self.target = target
        self.batch_size = batch_size
        self.max_batch_size = max(batch_size, max_batch_size or batch_size)
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.session = session or requests.Session()
        self.clock = clock
        self.sleep = sleep
        self.failures = 0  # consecutive failed attempts of the batch at the head

    # --- batches -----------------------------------------------------------------------------------

    def _head_batch(self) -> pd.DataFrame:
        """The batch at the head of the queue: the one already keyed (a retry, or one a crash
        interrupted), else the next pending records, keyed now: ``batch_size`` of them, or up to
        ``max_batch_size`` when more are pending."""
        d = {"d": self.target.destination}
        # the head of the queue and the records behind it, in one read (the usual case: none keyed)
        head = self.store.read_frame(
            "SELECT * FROM outbox WHERE destination = :d AND state = 'pending' ORDER BY seq LIMIT :n",
            {**d, "n": self.max_batch_size},
        )
        if head.empty:
            return head
        keys = head["batch_key"]
        if pd.isna(keys.iloc[0]):  # a new batch: the unkeyed records among them, keyed now
            rows = head[keys.isna().to_numpy()].reset_index(drop=True)
            key = self._assign(rows["seq"].tolist(), rows["message_id"].tolist())
            return rows.assign(batch_key=key)
        key = keys.iloc[0]
        return self.store.read_frame(
            "SELECT * FROM outbox WHERE destination = :d AND state = 'pending' AND batch_key = :k ORDER BY seq",
            {**d, "k": key},
        )

    def _assign(self, seqs: list[int], ids: list[str]) -> str:
        key = hashlib.sha256(("\n".join([self.target.destination, *ids])).encode()).hexdigest()[:32]
        self.store.execute(
            "UPDATE outbox SET batch_key = :k WHERE seq IN (SELECT unnest(:s))",
            {"k": key, "s": [int(s) for s in seqs]},
        )
        return key

    # --- one step ----------------------------------------------------------------------------------

    def step(self) -> Attempt:
        """Send the batch at the head of the queue once."""
        batch = self._head_batch()
        if batch.empty:
            self.failures = 0
            return Attempt(idle=True)
        key = str(batch["batch_key"].iloc[0])
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        if self.target.token:
            headers["Authorization"] = f"Bearer {self.target.token}"
        try:
            response = self.session.post(
                self.target.url, data=record_json(records(batch)), headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            return self._retry(key, f"{type(exc).__name__}: {exc}", None)
        code = response.status_code
        if 200 <= code < 300:
            self.failures = 0
            self.store.execute(
                "UPDATE outbox SET state = 'delivered', delivered_at = :now, attempts = attempts + 1, "
                "last_error = NULL WHERE batch_key = :k AND state = 'pending'",
                {"k": key, "now": pd.Timestamp.now(tz="UTC").to_pydatetime()},
            )
            return Attempt(delivered=len(batch))
        reason = f"HTTP {code}: {' '.join(response.text.split())}"[:MAX_REASON]
        if code in RETRYABLE or code >= 500:
            return self._retry(key, reason, response.headers.get("Retry-After"))
        return self._refused(batch, reason)

    def _retry(self, key: str, reason: str, retry_after: str | None) -> Attempt:
        self.failures += 1
        self.store.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = :e WHERE batch_key = :k AND state = 'pending'",
            {"k": key, "e": reason[:MAX_REASON]},
        )
        wait = backoff_seconds(self.failures, self.backoff_base, self.backoff_cap)
        asked = retry_after_seconds(retry_after)
        if asked is not None:
            wait = max(wait, min(asked, self.backoff_cap * 10))
        return Attempt(wait_seconds=wait, error=reason)

    def _refused(self, batch: pd.DataFrame, reason: str) -> Attempt:
        """A 4xx: split the batch until the refused record is alone, then dead-letter it."""
        self.failures = 0
        seqs, ids = batch["seq"].tolist(), batch["message_id"].tolist()
        if len(seqs) > 1:
            half = len(seqs) // 2
            self._assign(seqs[:half], ids[:half])
            self._assign(seqs[half:], ids[half:])
            return Attempt(error=reason)
        self.store.execute(
            "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = :e WHERE seq = :s",
            {"s": int(seqs[0]), "e": reason},
        )
        return Attempt(dead=1, error=reason)

    def drain(self, max_seconds: float = 60.0, stop=None) -> int:
        """Send until the queue is empty (or ``max_seconds``, or ``stop()``): records delivered."""
        deadline = self.clock() + max_seconds
        delivered = 0
        while self.clock() < deadline and not (stop and stop()):
            attempt = self.step()
            delivered += attempt.delivered
            if attempt.idle:
                break
            if attempt.wait_seconds:
                self.sleep(min(attempt.wait_seconds, max(deadline - self.clock(), 0)))
        return delivered


def backoff_seconds(failures: int, base: float, cap: float) -> float:
    """The wait after the ``failures``-th failure in a row: ``base`` doubled each time up to ``cap``,
    with jitter (50–100 %). The exponent stops growing once the cap is reached, so an outage of
    any length (thousands of failures) never overflows the float."""
    doublings = 0 if failures <= 1 else min(failures - 1, max(int(math.log2(max(cap / base, 1.0))) + 1, 0))
    return min(cap, base * 2**doublings) * random.uniform(0.5, 1.0)


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header as seconds (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((pd.Timestamp(when) - pd.Timestamp.now(tz="UTC")).total_seconds(), 0.0)
