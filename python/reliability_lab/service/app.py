"""The HTTP API (FastAPI on uvicorn): ``create_app`` assembles it from one router per concern.

Routes::

    routes/orders.py
    POST /orders                 202 {id}; Idempotency-Key: the same key gives the same order
    GET  /orders/{order_id}      the order and every status transition
    GET  /orders?status=&limit=&cursor=   a page of orders in id order, and the next cursor
    routes/probes.py
    GET  /metrics                Prometheus exposition: the engine's and the HTTP metrics
    GET  /livez /readyz /startupz
    routes/admin.py
    PUT  /lab/faults             replace a dependency's fault model (bearer token; PATCH merges)
    PUT  /lab/breaker/{dep}      replace a dependency's breaker parameters (bearer; PATCH merges)
    GET  /debug/internals        queue, workers, breakers, writer (bearer token)
    dashboard.py (not in the OpenAPI document: a page for people)
    GET  /dashboard              the control room: live charts, event log, controls
    GET  /dashboard/stream       Server-Sent Events, 2 Hz, from the engine's metric counters
    POST /dashboard/actions      outage, brownout, latency spike, failure rate, breaker (bearer)
    profiling.py
    GET  /debug/pprof/profile    CPU profile, speedscope JSON (bearer token)
    GET  /debug/pprof/heap       memory snapshot (bearer token)

The handlers share one typed :class:`~reliability_lab.service.routes.common.AppState` per app
(``app.state.shared``: config, service, metrics registry, read pools, Idempotency-Keys). This
module holds what wraps them: the HTTP metrics middleware (body limit, access log), the
service's Prometheus collector, the error handlers and the lifespan.

The OpenAPI document (``/openapi.json``) declares every route's answers: see schemas.py.

HTTP metrics are labelled by the route *template* (``/orders/{order_id}``), never the raw path,
and by method and status class from fixed sets: their cardinality is bounded by the code.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from reliability_lab.breaker import Breaker
from reliability_lab.scenario import Faults
from reliability_lab.service.config import ServiceConfig
from reliability_lab.service.core import OrderService, log_event
from reliability_lab.service.dashboard import Dashboard, dashboard_router
from reliability_lab.service.profiling import add_profiling_routes
from reliability_lab.service.routes import admin, orders, probes
from reliability_lab.service.routes.common import (
    AppState,
    app_state,
    check_admin,
    error,
    field_name,
)
from reliability_lab.service.routes.orders import OrderIn
from reliability_lab.service.schemas import install_openapi

__all__ = ["HttpMetricsMiddleware", "OrderIn", "ServiceCollector", "create_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})


class HttpMetricsMiddleware:
    """Pure ASGI middleware: body size limit, HTTP metrics by route template, access log.

    (Pure ASGI rather than BaseHTTPMiddleware: no extra task and body copy per request.)
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        requests: Counter,
        latency: Histogram,
        max_body: int,
        access_log: bool,
    ) -> None:
        self.app = app
        self.requests = requests
        self.latency = latency
        self.max_body = max_body
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500
        started = False
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"

        overflow = False  # a streamed body went past the limit

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if overflow:
                # The app answered a truncated body (FastAPI calls it a parse error); the
                # client gets the real reason instead, once.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    status = 413
                    await self._reject_large(send)
                return
            if message["type"] == "http.response.start":
                status = int(message["status"])
                started = True
            await send(message)

        too_large = False
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_large = int(value) > self.max_body
                except ValueError:
                    too_large = False
                break
        try:
            if too_large:
                status = 413
                await self._reject_large(send)
            else:
                seen = 0

                async def receive_limited() -> Message:
                    nonlocal seen, overflow
                    message = await receive()
                    if message["type"] == "http.request":
                        seen += len(message.get("body", b""))
                        if seen > self.max_body:
                            # Stop reading: the app sees a body cut short and fails to parse it.
                            overflow = True
                            return {"type": "http.request", "body": b"", "more_body": False}
                    return message

                await self.app(scope, receive_limited, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - t0
            self.requests.labels(method, template, f"{status // 100}xx").inc()
            self.latency.labels(method, template).observe(elapsed)
            if self.access_log:
                log_event(
                    "http_request",
                    method=method,
                    route=template,
                    status=status,
                    duration_ms=round(elapsed * 1e3, 3),
                    order_id=scope.get("state", {}).get("order_id"),
                )

    async def _reject_large(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": "body_too_large",
                "message": f"the request body exceeds {self.max_body} bytes",
                "field": "body",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class ServiceCollector(Collector):
    """The service's own figures: writer batches, store errors, recoveries, idempotent replays."""

    def __init__(self, service: OrderService) -> None:
        self.service = service

    def collect(self) -> Iterable[Metric]:
        s = self.service.stats
        for name, help_text, value in (
            ("rlab_service_store_batches", "Write transactions committed by the writer", s.batches),
            ("rlab_service_store_errors", "Failed write transactions (retried)", s.store_errors),
            (
                "rlab_service_store_batch_seconds",
                "Seconds spent writing batches (divide by batches for the mean)",
                s.batch_seconds_total,
            ),
            (
                "rlab_service_store_constraint_errors",
                "Write transactions the schema refused (their new orders answered 503)",
                s.constraint_errors,
            ),
            ("rlab_service_orders_stored", "Orders written to the store", s.rows_written),
            (
                "rlab_service_orders_voided",
                "Stored orders that never reached the engine (request gave up, queue full)",
                s.voided,
            ),
            ("rlab_service_recovered_orders", "Orders driven again after a restart", s.recovered),
            (
                "rlab_service_idempotent_replays",
                "POSTs answered from an Idempotency-Key",
                s.idempotent_replays,
            ),
        ):
            c = CounterMetricFamily(name, help_text)
            c.add_metric([], float(value))
            yield c
        g = GaugeMetricFamily("rlab_service_draining", "1 while shutting down")
        g.add_metric([], 1.0 if self.service.draining else 0.0)
        yield g
        g = GaugeMetricFamily("rlab_service_store_writes_failing", "1 while writes fail")
        g.add_metric([], 0.0 if self.service.write_failing_since is None else 1.0)
        yield g
        g = GaugeMetricFamily("rlab_service_active_orders", "Orders the engine is working on")
        g.add_metric([], float(self.service.active_count))
        yield g


async def _on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error(400, "invalid_json", "the request body is not valid JSON", field="body")
    fields = [
        {
            "field": field_name(e.get("loc", ())),
            "message": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]
    names = ", ".join(dict.fromkeys(f["field"] for f in fields))
    return error(422, "validation_failed", f"invalid field(s): {names}", fields=fields)


async def _on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error(exc.status_code, code, str(exc.detail), headers=exc.headers)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Starts the service (engine + store); drains it when the app shuts down."""
    state = app_state(app)
    svc = state.service
    await run_in_threadpool(svc.start)
    try:
        assert svc.lab is not None
        state.registry.register(svc.lab.collector)
    except BaseException:
        await run_in_threadpool(svc.drain, 0.0)  # never leave engine threads behind
        raise
    try:
        yield
    finally:
        await run_in_threadpool(svc.drain)
        await dashboard_of(app).sample()  # the streams' last word: the engine stopped
        await dashboard_of(app).stop()
        state.close_pools()


class ServiceSource:
    """The service's engine as the dashboard sees it."""

    def __init__(self, service: OrderService) -> None:
        self.service = service

    def metrics(self) -> list[dict[str, Any]]:
        lab = self.service.lab
        return [] if lab is None else lab._engine.metrics()

    def now(self) -> float:
        lab = self.service.lab
        return 0.0 if lab is None else lab.now()

    def dependencies(self) -> list[str]:
        return [d.name for d in self.service.scenario.dependencies]

    def controls(self) -> list[str]:
        return self.service.scenario.dependency_labels()

    def faults(self, dependency: str) -> Faults:
        return self.service.scenario.dependency(dependency).faults

    def set_faults(self, dependency: str, faults: Faults) -> None:
        svc = self.service
        if svc.lab is None or not svc.lab.running:
            raise RuntimeError("the engine is not running")
        path = svc.scenario.dependency_path(dependency)
        new = svc.scenario.replace({f"{path}.faults": faults})
        svc.lab.set_faults(dependency, faults)
        svc.scenario = new
        log_event("faults_changed", dependency=dependency, route="/dashboard/actions")

    def status(self) -> str:
        svc = self.service
        lab = svc.lab
        if lab is None or not svc.started:
            return "stopped" if svc.drained else "starting"
        if not lab.running:
            return "stopped"
        return "draining" if svc.draining else "running"

    def arrival_rate(self) -> float | None:
        return None  # the orders come from the HTTP clients

    def set_arrival_rate(self, rate: float) -> None:
        raise ValueError("the service's orders come from its HTTP clients: no arrival rate")

    def breaker(self, dependency: str) -> Breaker | None:
        return self.service.scenario.dependency(dependency).breaker

    def set_breaker(self, dependency: str, change: dict[str, Any]) -> Breaker:
        svc = self.service
        if svc.lab is None or not svc.lab.running:
            raise RuntimeError("the engine is not running")
        new = svc.lab.set_breaker(dependency, change)
        assert isinstance(new, Breaker)
        path = svc.scenario.dependency_path(dependency)
        svc.scenario = svc.scenario.replace({f"{path}.breaker": new})
        log_event(
            "breaker_changed",
            dependency=dependency,
            route="/dashboard/actions",
            breaker=new.to_dict(),
        )
        return new


def dashboard_of(app: FastAPI) -> Dashboard:
    """The app's :class:`Dashboard`."""
    dash = app.state.dashboard
    assert isinstance(dash, Dashboard)
    return dash


def create_app(config: ServiceConfig, service: OrderService | None = None) -> FastAPI:
    """The ASGI application. The service (engine + store) starts in the app's lifespan and is
    drained when the app shuts down, if a signal handler has not drained it already."""
    svc = service if service is not None else OrderService(config)
    registry = CollectorRegistry(auto_describe=False)
    http_requests = Counter(
        "http_requests",
        "HTTP requests by method, route template and status class",
        ["method", "route", "status_class"],
        registry=registry,
    )
    http_latency = Histogram(
        "http_request_duration_seconds",
        "HTTP request latency by method and route template",
        ["method", "route"],
        registry=registry,
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    )
    registry.register(ServiceCollector(svc))

    app = FastAPI(
        title="reliability-lab order service",
        version="0.1.0",
        lifespan=_lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.shared = AppState(config=config, service=svc, registry=registry)
    app.state.service = svc
    app.state.config = config

    app.exception_handler(RequestValidationError)(_on_validation_error)
    app.exception_handler(StarletteHTTPException)(_on_http_error)
    app.include_router(orders.router)
    app.include_router(probes.router)
    app.include_router(admin.router)
    app.state.dashboard = Dashboard(ServiceSource(svc))
    app.include_router(dashboard_router(lambda r: dashboard_of(r.app), check_admin))
    add_profiling_routes(app, check_admin)
    install_openapi(app)

    app.add_middleware(
        HttpMetricsMiddleware,
        requests=http_requests,
        latency=http_latency,
        max_body=config.max_body_bytes,
        access_log=config.access_log,
    )
    logging.getLogger("reliability_lab.service").debug("app created")
    return app
