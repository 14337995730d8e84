"""``GET /metrics`` and the probes: ``/livez``, ``/readyz``, ``/startupz``."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from reliability_lab.service.routes.common import StateDep

_READY_TIMEOUT = 0.9  # /readyz answers within this, whatever the database does

router = APIRouter()


@router.get("/metrics")
async def metrics(state: StateDep) -> Response:
    """Prometheus exposition: engine metrics plus HTTP metrics by route template."""
    data = await run_in_threadpool(generate_latest, state.registry)
    return Response(data, media_type=CONTENT_TYPE_LATEST)


@router.get("/livez")
async def livez(state: StateDep) -> Response:
    """200 while the process serves HTTP and its own threads make progress (the writer
    takes turns, the engine's workers finish orders): restart me only if this fails. It
    never looks at the database: an outage is /readyz's business."""
    checks = state.service.liveness()
    ok = all(checks.values())
    return JSONResponse({"status": "ok" if ok else "stuck", "checks": checks}, 200 if ok else 503)


@router.get("/readyz")
async def readyz(state: StateDep) -> Response:
    """200 when the store answers and writes succeed, the engine runs and the service is
    not shutting down. Answers within a second whatever the database does."""
    svc = state.service
    checks = {
        "not_draining": not svc.draining,
        "engine_running": svc.lab is not None and svc.lab.running,
        "writer_running": svc.writer_alive(),
        "writes_succeed": svc.write_failing_since is None,
    }
    if checks["not_draining"]:  # no store round trip once we are leaving anyway
        try:
            ping = asyncio.get_running_loop().run_in_executor(
                state.probe_pool, svc.store.ping, _READY_TIMEOUT - 0.1
            )
            checks["store"] = await asyncio.wait_for(ping, _READY_TIMEOUT)
        except asyncio.TimeoutError:
            checks["store"] = False
    ok = all(checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, 200 if ok else 503
    )


@router.get("/startupz")
async def startupz(state: StateDep) -> Response:
    """200 once the schema is migrated, the engine started and recovery submitted."""
    svc = state.service
    ok = svc.started and svc.recovery_done
    return JSONResponse(
        {
            "status": "ok" if ok else "starting",
            "started": svc.started,
            "recovery_done": svc.recovery_done,
        },
        200 if ok else 503,
    )
