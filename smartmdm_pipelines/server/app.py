"""The ASGI app of ``smartmdm serve``: one router per concern over a shared ``Runtime``."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool

from smartmdm_pipelines.server import headend, portal
from smartmdm_pipelines.server.runtime import Runtime
from smartmdm_pipelines.server.settings import ServerSettings
from smartmdm_pipelines.services import outbox


def create_app(settings: ServerSettings, runtime: Runtime | None = None) -> FastAPI:
    runtime = runtime or Runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runtime.start()
        portal.start(runtime)
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPI(title="Smart MDM real-time service", lifespan=lifespan)
    app.state.runtime = runtime
    app.include_router(headend.router)
    portal.install(app)  # the customer portal API (issue 13)

    @app.get("/v1/health")
    async def health(request: Request) -> dict:
        rt = request.app.state.runtime
        status = await run_in_threadpool(outbox.status, rt.store)
        sub = rt.subscriber
        return {
            "status": "ok",
            "store": rt.store.backend,
            "mqtt": None if sub is None else ("connected" if sub.connected.is_set() else "connecting"),
            "push": [t.destination for t in rt.settings.targets],
            "outbox": status.to_dict(),
        }

    return app
