"""A CIS (or portal) usage API on loopback that fails on command: 503s, 429 with Retry-After,
timeouts, an outage, and a 400 for batches holding given message ids."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class CisStub:
    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.lock = threading.Lock()
        self.batches: list[dict] = []  # accepted: {"key", "records", "at"}
        self.requests = 0
        self.fail_codes: list[int] = []  # answered to the next requests, one each
        self.retry_after: str | None = None
        self.outage = False  # every request 503 while set
        self.down = None  # or a callable: every request 503 while it returns True (a test's clock)
        self.slow_seconds = 0.0  # answered this late (a client timeout)
        self.slow_requests = 0
        self.accept_delay = 0.0  # accepted, after this long
        self.refuse_ids: set[str] = set()  # a batch holding one of these: 400
        self.unauthorised = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                code, extra = stub._decide(self.headers, body)
                if code == 0:
                    return
                payload = json.dumps(extra).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if code in (429, 503) and stub.retry_after:
                    self.send_header("Retry-After", stub.retry_after)
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/usage"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CisStub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _decide(self, headers, body: bytes) -> tuple[int, dict]:
        with self.lock:
            self.requests += 1
            if self.token and headers.get("Authorization") != f"Bearer {self.token}":
                self.unauthorised += 1
                return 401, {"error": "bad token"}
            if self.slow_requests > 0:
                self.slow_requests -= 1
                slow = self.slow_seconds
            else:
                slow = 0.0
        if slow:
            time.sleep(slow)  # the client has given up by now: nothing is accepted
            return 503, {"error": "too late"}
        if self.accept_delay:
            time.sleep(self.accept_delay)
        with self.lock:
            if self.outage or (self.down is not None and self.down()):
                return 503, {"error": "outage"}
            if self.fail_codes:
                return self.fail_codes.pop(0), {"error": "on command"}
            records = json.loads(body)["records"]
            bad = [r["message_id"] for r in records if r["message_id"] in self.refuse_ids]
            if bad:
                return 400, {"error": f"unknown meter in record {bad[0]}"}
            self.batches.append(
                {"key": headers.get("Idempotency-Key"), "records": records, "at": time.time()}
            )
            return 200, {"accepted": len(records)}

    # --- what was received ----------------------------------------------------------------------

    def records(self) -> list[dict]:
        with self.lock:
            return [r for b in self.batches for r in b["records"]]

    def message_ids(self) -> list[str]:
        return [r["message_id"] for r in self.records()]
