"""Issue 15, dependencies failing: the CIS API is down for 10 minutes — during the outbox pushes
and during a master-data sync — without the test waiting 10 real minutes.

The receivers are real HTTP servers on loopback whose outage is decided by a clock of the test's
own; the dispatcher and the CIS client spend their waits through that clock's ``sleep``, so every
backoff and ``Retry-After`` wait is exactly what the code asked for, and 10 minutes pass in a
second.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from smartmdm_pipelines.integrations.cis_client import CisClient
from smartmdm_pipelines.services import outbox
from smartmdm_pipelines.services.cis_sync import MASTER_TABLES, MasterDataError, sync_master_data
from smartmdm_pipelines.services.dispatch import Dispatcher, backoff_seconds
from smartmdm_pipelines.services.outbox import PushTarget
from smartmdm_pipelines.services.realtime import ingest_body, validate_pending
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.realtime import test_outbox
from smartmdm_pipelines_tests.realtime.cis_stub import CisStub
from smartmdm_pipelines_tests.realtime.helpers import body, master_data
from smartmdm_pipelines_tests.realtime.test_outbox import outbox_rows
from smartmdm_pipelines_tests.services.test_cis_sync import accounts, installs, master, service_points

pytestmark = pytest.mark.reliability

config = test_outbox.config  # the same fixtures as the outbox tests
push_env = test_outbox.push_env
OUTAGE = 600.0  # seconds: 10 minutes
CAP = 60.0


class Clock:
    """Monotonic seconds that move only when someone sleeps on them; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.on_sleep = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(self.now)


# --- pushes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", [None, "45"], ids=["backoff", "retry-after"])
def test_ten_minutes_down_during_pushes_loses_nothing_and_duplicates_nothing(
    store: Store, config, push_env, retry_after
) -> None:
    meters = ["M1", "M2", "M3"]
    master_data(store, meters)
    ingest_body(store, config, "he1", body(meters, range(0, 40)), "http")
    validate_pending(store, config)
    clock = Clock()
    arrived_during_outage = []

    def more_reads_mid_outage(now: float) -> None:  # the head-end keeps sending while CIS is down
        if now >= OUTAGE / 2 and not arrived_during_outage:
            ingest_body(store, config, "he1", body(meters, range(40, 80)), "http")
            validate_pending(store, config)
            arrived_during_outage.append(now)

    clock.on_sleep = more_reads_mid_outage
    with CisStub() as stub:
        stub.down = lambda: clock.now < OUTAGE
        stub.retry_after = retry_after
        d = Dispatcher(
            store,
            PushTarget("cis", stub.url, None),
            batch_size=50,
            timeout=5.0,
            backoff_cap=CAP,
            clock=clock,
            sleep=clock.sleep,
        )
        delivered = d.drain(max_seconds=2 * 3600)
        requests_made = stub.requests

    queued = outbox_rows(store)
    assert arrived_during_outage and len(queued) == 3 * 80
    assert delivered == len(queued) and set(queued["state"]) == {"delivered"}
    received = stub.message_ids()
    assert len(received) == len(set(received))  # 0 duplicated by message id
    assert sorted(received) == sorted(queued["message_id"])  # 0 lost
    waits = clock.sleeps
    assert waits and max(waits) <= CAP  # every wait capped
    if retry_after:
        assert min(waits) >= 45  # the receiver's Retry-After honoured on every retry
    assert requests_made == len(waits) + len(stub.batches)  # one request per wait: no hammering
    assert len(waits) <= 10 + OUTAGE / (CAP / 2)
    assert clock.now <= OUTAGE + CAP  # the backlog went out within one capped wait of the return
    assert outbox.status(store).pending == 0 and outbox.status(store).dead_lettered == 0


def test_backoff_after_any_number_of_failures_stays_within_the_cap() -> None:
    waits = [backoff_seconds(n, 0.5, CAP) for n in (1, 2, 8, 9, 1025, 5000, 10**6)]
    assert waits[0] <= 0.5 and all(0 < w <= CAP for w in waits)
    assert all(w >= CAP / 2 for w in waits[3:])  # at the cap (with jitter) once it is reached


# --- master-data sync -----------------------------------------------------------------------------


class MasterApi:
    """The CIS master-data API over ``frames`` that goes down (503) from the ``fail_from``-th
    dataset request until ``clock`` reaches ``up_at``."""

    def __init__(self, server: HTTPServer, clock: Clock, retry_after: str | None) -> None:
        self.server, self.clock, self.retry_after = server, clock, retry_after
        self.frames: dict[str, pd.DataFrame] = {}
        self.fail_from: int | None = None
        self.up_at = 0.0
        self.served: list[str] = []
        for table in MASTER_TABLES:
            server.expect_request(f"/cis/{table}").respond_with_handler(self._handler(table))

    def _handler(self, table: str):
        def handle(request) -> Response:
            self.served.append(table)
            if (
                self.fail_from is not None
                and len(self.served) >= self.fail_from
                and self.clock.now < self.up_at
            ):
                headers = {"Retry-After": self.retry_after} if self.retry_after else {}
                return Response(
                    json.dumps({"error": "maintenance"}), 503, headers, content_type="application/json"
                )
            frame = self.frames.get(table, pd.DataFrame())
            items = frame.replace({"": None}).to_dict("records")
            return Response(json.dumps({"items": items, "next": None}), 200, content_type="application/json")

        return handle


def _master_state(store: Store) -> dict[str, pd.DataFrame]:
    out = {}
    for table in (*MASTER_TABLES, "service_point_history"):
        frame = store.read_frame(f"SELECT * FROM {table}")
        frame = frame.drop(
            columns=[c for c in frame.columns if c in ("synced_at", "updated_at", "created_at")]
        )
        out[table] = (
            frame.sort_values(list(frame.columns[:2])).reset_index(drop=True) if len(frame) else frame
        )
    return out


@pytest.mark.parametrize(("retry_after", "waited"), [("30", 30.0), ("3600", CAP)], ids=["honoured", "capped"])
def test_ten_minutes_down_during_a_sync_fails_it_whole_and_a_later_sync_succeeds(
    store: Store, httpserver: HTTPServer, tmp_path: Path, retry_after, waited
) -> None:
    clock = Clock()
    api = MasterApi(httpserver, clock, retry_after)
    api.frames = master()
    with CisClient(httpserver.url_for("/cis"), retries=3, sleep=clock.sleep) as cis:
        sync_master_data(store, cis, effective_date=dt.date(2024, 3, 1))
    before = _master_state(store)
    assert len(before["service_points"]) == 2

    changed = {
        "service_points": service_points(SP1={"rate_code": "R2"}),
        "accounts": accounts(move_out="2024-03-31"),
        "meter_installs": installs(multiplier="2"),
    }
    api.frames = changed
    api.served.clear()
    api.fail_from = 5  # zones, billing_cycles, meters, service_points fetched; accounts fails
    api.up_at = clock.now + OUTAGE
    cis = CisClient(httpserver.url_for("/cis"), retries=3, sleep=clock.sleep)
    with cis, pytest.raises(MasterDataError) as failed:
        sync_master_data(store, cis, effective_date=dt.date(2024, 4, 1))
    message = str(failed.value)
    assert "/cis/accounts" in message and "HTTP 503 after 4 attempts" in message and "\n" not in message
    assert clock.sleeps[-3:] == [waited] * 3  # Retry-After honoured, and capped
    after = _master_state(store)
    for table, frame in before.items():  # no partial master data: service points unchanged too
        pd.testing.assert_frame_equal(after[table], frame, obj=table)

    clock.now = api.up_at  # the next scheduled sync, after the outage
    with CisClient(httpserver.url_for("/cis"), retries=3, sleep=clock.sleep) as cis:
        report = sync_master_data(store, cis, effective_date=dt.date(2024, 4, 1))
    assert report.changed > 0
    reference = Store(f"duckdb:///{tmp_path / 'reference.duckdb'}") if store.backend == "duckdb" else None
    if reference is not None:  # the same two syncs without an outage give the same store
        try:
            sync_master_data(reference, master(), effective_date=dt.date(2024, 3, 1))
            sync_master_data(reference, changed, effective_date=dt.date(2024, 4, 1))
            expected = _master_state(reference)
        finally:
            reference.dispose()
        for table, frame in _master_state(store).items():
            pd.testing.assert_frame_equal(frame, expected[table], obj=table, check_dtype=False)
    assert (
        _master_state(store)["service_points"].set_index("service_point_id").loc["SP1", "rate_code"] == "R2"
    )
