"""The HTTP API (FastAPI on uvicorn): orders, probes, metrics and the admin endpoints.

Routes::

    POST /orders                 202 {id}; Idempotency-Key: the same key gives the same order
    GET  /orders/{order_id}      the order and every status transition
    GET  /orders?status=&limit=&cursor=   a page of orders in id order, and the next cursor
    GET  /metrics                Prometheus exposition: the engine's and the HTTP metrics
    GET  /livez /readyz /startupz
    PUT  /lab/faults             replace a dependency's fault model (bearer token; PATCH merges)
    GET  /debug/internals        queue, workers, breakers, writer (bearer token)
    GET  /debug/pprof/profile    CPU profile, speedscope JSON (bearer token; profiling.py)
    GET  /debug/pprof/heap       memory snapshot (bearer token; profiling.py)

The OpenAPI document (``/openapi.json``) declares every route's answers: see schemas.py.

HTTP metrics are labelled by the route *template* (``/orders/{order_id}``), never the raw path,
and by method and status class from fixed sets: their cardinality is bounded by the code.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from reliability_lab.scenario import Scenario
from reliability_lab.service.config import ServiceConfig
from reliability_lab.service.core import (
    Accepted,
    NotAccepting,
    OrderService,
    QueueFull,
    log_event,
)
from reliability_lab.service.profiling import add_profiling_routes
from reliability_lab.service.schemas import FaultsChange, install_openapi
from reliability_lab.service.store import STATUSES, StoreError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})
_IDEMPOTENCY_KEY_MAX = 200
_KEY_CACHE = 100_000  # recent Idempotency-Keys kept in memory; the database knows them all
_MAX_ID = 2**63 - 1  # ids are 64-bit in every store
_READY_TIMEOUT = 0.9  # /readyz answers within this, whatever the database does


class OrderIn(BaseModel):
    """The body of ``POST /orders``."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:@-]+$")
    amount_cents: StrictInt = Field(gt=0, le=100_000_000)
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")


def _error(
    status: int,
    error: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status, headers=headers)


def _field_name(loc: Iterable[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


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


class _Reservation:
    """An Idempotency-Key whose order is being created: later requests wait for it."""

    __slots__ = ("done", "request_hash")

    def __init__(self, request_hash: str) -> None:
        self.request_hash = request_hash
        self.done = asyncio.Event()


def _encode_cursor(after_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after_id}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)["after"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_ID:
        return None
    return value


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
    # Idempotency-Keys this server answered recently (a replay needs no write), and those
    # whose first request is still running (later ones wait for it). The database is the
    # authority: a key missing here is inserted-or-found by the writer in one statement.
    keys: OrderedDict[str, tuple[int, str] | _Reservation] = OrderedDict()
    # Store reads and the readiness ping run on their own threads: a request that stops
    # waiting returns at once, and stuck reads never starve the probe (or the event loop's
    # shared pool).
    read_pool = ThreadPoolExecutor(8, thread_name_prefix="rlab-read")
    probe_pool = ThreadPoolExecutor(2, thread_name_prefix="rlab-probe")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(svc.start)
        try:
            assert svc.lab is not None
            registry.register(svc.lab.collector)
        except BaseException:
            await run_in_threadpool(svc.drain, 0.0)  # never leave engine threads behind
            raise
        try:
            yield
        finally:
            await run_in_threadpool(svc.drain)
            read_pool.shutdown(wait=False, cancel_futures=True)
            probe_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="reliability-lab order service",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.service = svc
    app.state.config = config

    # --- errors ----------------------------------------------------------------------------

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(400, "invalid_json", "the request body is not valid JSON", field="body")
        fields = [
            {
                "field": _field_name(e.get("loc", ())),
                "message": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in errors
        ]
        names = ", ".join(dict.fromkeys(f["field"] for f in fields))
        return _error(422, "validation_failed", f"invalid field(s): {names}", fields=fields)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), headers=exc.headers)

    # --- auth ------------------------------------------------------------------------------

    def check_admin(request: Request) -> JSONResponse | None:
        auth = request.headers.get("authorization")
        challenge = {"WWW-Authenticate": 'Bearer realm="reliability-lab"'}
        if not auth:
            return _error(401, "unauthorized", "a bearer token is required", challenge)
        scheme, _, credentials = auth.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return _error(401, "unauthorized", "use Authorization: Bearer <token>", challenge)
        token = config.admin_token
        if token is None:
            return _error(403, "forbidden", "admin endpoints are disabled (no admin token set)")
        if not hmac.compare_digest(credentials.strip().encode(), token.encode()):
            return _error(403, "forbidden", "the token is not valid")
        return None

    # --- orders ----------------------------------------------------------------------------

    def accepted(order_id: int, key: str | None, replayed: bool) -> JSONResponse:
        headers = {"Location": f"/orders/{order_id}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        body: dict[str, Any] = {"id": order_id, "href": f"/orders/{order_id}"}
        if key is not None:
            body["idempotency_key"] = key
        return JSONResponse(body, 202, headers=headers)

    def unavailable(error: str, message: str, retry_after: int) -> JSONResponse:
        return _error(503, error, message, {"Retry-After": str(retry_after)})

    async def read(fn: Callable[[], Any]) -> Any:
        # The store bounds each call itself; this bounds the request even if it did not. (Not
        # run_in_threadpool: a cancelled anyio thread call still waits for its thread.)
        deadline = time.monotonic() + config.store_timeout

        def call() -> Any:
            if time.monotonic() > deadline:  # queued behind stuck reads: nobody waits any more
                raise StoreError("no read connection in time")
            return fn()

        fut = asyncio.get_running_loop().run_in_executor(read_pool, call)
        return await asyncio.wait_for(fut, config.store_timeout)

    async def settled_order(order_id: int, key: str | None, deadline: float) -> bool:
        """Whether order ``order_id`` still holds ``key`` once it has left ``pending`` (polled
        until ``deadline``, the event loop's clock)."""
        loop = asyncio.get_running_loop()
        while True:
            row = await read(lambda: svc.store.get_order(order_id, with_transitions=False))
            if row is None or row["idempotency_key"] != key:
                return False  # given up by its server: the key was released
            if row["status"] != "pending":
                return True
            if loop.time() + 0.05 > deadline:
                return False
            await asyncio.sleep(0.05)

    def store_down(route: str, e: BaseException) -> JSONResponse:
        # The driver's message (host, port, SQL state) goes to the log, not to the client.
        log_event("store_read_failed", logging.WARNING, route=route, error=str(e) or repr(e))
        return unavailable("store_unavailable", "the order store is unavailable; retry later", 2)

    @app.post("/orders", status_code=202)
    async def create_order(
        order: OrderIn,
        request: Request,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> Response:
        """Accepts an order for asynchronous processing (202 + its id)."""
        if not svc.accepting:
            return unavailable("shutting_down", "the service is not accepting orders", 5)
        payload = order.model_dump()
        request_hash = svc.hash_request(payload)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + config.store_timeout  # every wait below shares this budget
        reservation: _Reservation | None = None

        def release(outcome: Accepted | None) -> None:
            if idempotency_key is None or reservation is None:
                return
            if keys.get(idempotency_key) is reservation:
                if outcome is None:
                    del keys[idempotency_key]
                else:
                    keys[idempotency_key] = (outcome.order_id, outcome.request_hash)
                    keys.move_to_end(idempotency_key)
                    while len(keys) > _KEY_CACHE:
                        oldest, value = next(iter(keys.items()))
                        if isinstance(value, _Reservation):
                            break
                        del keys[oldest]
            reservation.done.set()

        def replay(order_id: int, first_hash: str) -> Response:
            if first_hash != request_hash:
                return _error(
                    409,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with a different body",
                    field="Idempotency-Key",
                    order_id=order_id,
                )
            svc.stats.idempotent_replays += 1
            request.scope.setdefault("state", {})["order_id"] = order_id
            return accepted(order_id, idempotency_key, True)

        if idempotency_key is not None:
            if not (
                1 <= len(idempotency_key) <= _IDEMPOTENCY_KEY_MAX
                and all(33 <= ord(c) <= 126 for c in idempotency_key)
            ):
                return _error(
                    400,
                    "invalid_header",
                    f"Idempotency-Key must be 1 to {_IDEMPOTENCY_KEY_MAX} visible ASCII characters",
                    field="Idempotency-Key",
                )
            while True:
                hit = keys.get(idempotency_key)
                if isinstance(hit, _Reservation):
                    # The first request with this key is still running: wait for it, within
                    # this request's own budget.
                    remaining = deadline - loop.time()
                    try:
                        if remaining <= 0:
                            raise asyncio.TimeoutError
                        await asyncio.wait_for(hit.done.wait(), remaining)
                    except asyncio.TimeoutError:
                        return unavailable(
                            "busy", "a request with this Idempotency-Key is still in progress", 1
                        )
                    continue
                if hit is not None:
                    return replay(hit[0], hit[1])
                reservation = _Reservation(request_hash)
                keys[idempotency_key] = reservation
                break

        try:
            pending = svc.submit(
                customer_id=order.customer_id,
                amount_cents=order.amount_cents,
                currency=order.currency,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
            )
        except QueueFull:
            release(None)
            return unavailable("queue_full", "the order queue is full; retry later", 1)
        except NotAccepting:
            release(None)
            return unavailable("shutting_down", "the service is not accepting orders", 5)
        # An outcome nobody awaits any more is still retrieved (no "never retrieved" noise).
        pending.future.add_done_callback(lambda f: f.cancelled() or f.exception())
        # The order reaches the engine only after its row is committed; a request that stops
        # waiting abandons it first, so a 503 below means nothing was stored or charged.
        try:
            outcome: Accepted | None = await asyncio.wait_for(
                asyncio.shield(pending.future), max(0.0, deadline - loop.time())
            )
        except asyncio.TimeoutError:
            outcome = svc.abandon(pending)
            if outcome is None:
                release(None)
                return unavailable("store_unavailable", "the order could not be stored in time", 2)
        except QueueFull:
            release(None)
            return unavailable("queue_full", "the order queue is full; retry later", 1)
        except NotAccepting:
            release(None)
            return unavailable("shutting_down", "the service is not accepting orders", 5)
        except StoreError:
            release(None)
            return unavailable("store_unavailable", "the order could not be stored", 2)
        except asyncio.CancelledError:
            release(svc.abandon(pending))
            raise
        assert outcome is not None
        if outcome.replayed and outcome.request_hash == request_hash:
            # The key names an order another server stored: answer 202 only once that server
            # has handed it to the engine (it may still give it up, as its own request did).
            try:
                settled = await settled_order(outcome.order_id, idempotency_key, deadline)
            except (StoreError, asyncio.TimeoutError):
                settled = False
            if not settled:
                release(None)
                return unavailable("store_unavailable", "the order could not be stored", 2)
        release(outcome)
        if outcome.replayed:
            return replay(outcome.order_id, outcome.request_hash)
        order_id = outcome.order_id
        request.scope.setdefault("state", {})["order_id"] = order_id
        if config.access_log:
            log_event(
                "order_accepted",
                order_id=order_id,
                route="/orders",
                idempotency_key=idempotency_key,
            )
        return accepted(order_id, idempotency_key, False)

    @app.get("/orders/{order_id}")
    async def get_order(order_id: int, request: Request) -> Response:
        """An order, its current status and every transition."""
        if not 1 <= order_id <= 2**63 - 1:  # ids are 64-bit in both stores
            return _error(
                422,
                "validation_failed",
                "invalid field(s): order_id",
                fields=[{"field": "order_id", "message": "must be in [1, 2**63 - 1]"}],
            )
        request.scope.setdefault("state", {})["order_id"] = order_id
        try:
            found = await read(lambda: svc.store.get_order(order_id))
        except (StoreError, asyncio.TimeoutError) as e:  # the store is down: the probe says so
            return store_down("/orders/{order_id}", e)
        if found is None:
            return _error(404, "not_found", f"no order {order_id}")
        return JSONResponse(found)

    @app.get("/orders")
    async def list_orders(
        status: Annotated[Literal[STATUSES] | None, Query()] = None,  # type: ignore[valid-type]
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response:
        """A page of orders in id order; pass ``next_cursor`` back as ``cursor`` for the next."""
        after = 0
        if cursor is not None:
            decoded = _decode_cursor(cursor)
            if decoded is None:
                return _error(
                    422,
                    "validation_failed",
                    "invalid field(s): cursor",
                    fields=[{"field": "cursor", "message": "not a cursor from this API"}],
                )
            after = decoded
        try:
            rows = await read(
                lambda: svc.store.list_orders(status=status, after_id=after, limit=limit + 1)
            )
        except (StoreError, asyncio.TimeoutError) as e:
            return store_down("/orders", e)
        more = len(rows) > limit
        rows = rows[:limit]
        return JSONResponse(
            {
                "orders": rows,
                "next_cursor": _encode_cursor(rows[-1]["id"]) if more and rows else None,
            }
        )

    # --- observability ---------------------------------------------------------------------

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus exposition: engine metrics plus HTTP metrics by route template."""
        data = await run_in_threadpool(generate_latest, registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    @app.get("/livez")
    async def livez() -> Response:
        """200 while the process serves HTTP and its own threads make progress (the writer
        takes turns, the engine's workers finish orders): restart me only if this fails. It
        never looks at the database: an outage is /readyz's business."""
        checks = svc.liveness()
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "stuck", "checks": checks}, 200 if ok else 503
        )

    @app.get("/readyz")
    async def readyz() -> Response:
        """200 when the store answers and writes succeed, the engine runs and the service is
        not shutting down. Answers within a second whatever the database does."""
        checks = {
            "not_draining": not svc.draining,
            "engine_running": svc.lab is not None and svc.lab.running,
            "writer_running": svc.writer_alive(),
            "writes_succeed": svc.write_failing_since is None,
        }
        if checks["not_draining"]:  # no store round trip once we are leaving anyway
            try:
                ping = asyncio.get_running_loop().run_in_executor(
                    probe_pool, svc.store.ping, _READY_TIMEOUT - 0.1
                )
                checks["store"] = await asyncio.wait_for(ping, _READY_TIMEOUT)
            except asyncio.TimeoutError:
                checks["store"] = False
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks}, 200 if ok else 503
        )

    @app.get("/startupz")
    async def startupz() -> Response:
        """200 once the schema is migrated, the engine started and recovery submitted."""
        ok = svc.started and svc.recovery_done
        return JSONResponse(
            {
                "status": "ok" if ok else "starting",
                "started": svc.started,
                "recovery_done": svc.recovery_done,
            },
            200 if ok else 503,
        )

    # --- admin -----------------------------------------------------------------------------

    @app.put("/lab/faults")
    async def put_faults(request: Request) -> Response:
        """Replaces a dependency's fault model while the engine runs (the chaos switch).

        Body: ``{"dependency": "payment", "faults": {...}}`` (the scenario's dict form); fields
        left out take the defaults of :class:`~reliability_lab.scenario.Faults`."""
        return await change_faults(request, merge=False)

    @app.patch("/lab/faults")
    async def patch_faults(request: Request) -> Response:
        """Like PUT, but the given fields are merged into the current fault model
        (``{"dependency": "payment", "faults": {"failure_rate": 1.0}}`` changes just that)."""
        return await change_faults(request, merge=True)

    async def change_faults(request: Request, *, merge: bool) -> Response:
        denied = check_admin(request)  # before reading the body: strangers learn nothing
        if denied is not None:
            return denied
        try:
            body = FaultsChange.model_validate_json(await request.body())
        except ValidationError as e:
            if any(err.get("type") == "json_invalid" for err in e.errors()):
                return _error(
                    400, "invalid_json", "the request body is not valid JSON", field="body"
                )
            fields = [
                {"field": _field_name(err.get("loc", ())), "message": err.get("msg", "")}
                for err in e.errors()
            ]
            bad = ", ".join(dict.fromkeys(str(f["field"]) for f in fields))
            return _error(422, "validation_failed", f"invalid field(s): {bad}", fields=fields)
        names = [d.name for d in svc.scenario.dependencies]
        if body.dependency not in names:
            return _error(
                422,
                "validation_failed",
                "invalid field(s): dependency",
                fields=[{"field": "dependency", "message": f"unknown dependency; one of {names}"}],
            )
        d = svc.scenario.to_dict()
        i = names.index(body.dependency)
        if merge:
            d["dependencies"][i]["faults"].update(body.fault_fields())
        else:
            d["dependencies"][i]["faults"] = body.fault_fields()
        try:
            new = Scenario.from_dict(d)
        except (ValueError, TypeError) as e:
            return _error(
                422,
                "validation_failed",
                "invalid field(s): faults",
                fields=[{"field": "faults", "message": str(e)}],
            )
        lab = svc.lab
        if lab is None or not hasattr(lab, "set_faults"):
            return _error(
                501, "not_implemented", "this engine build cannot change faults while running"
            )
        faults = new.dependency(body.dependency).faults
        try:
            lab.set_faults(body.dependency, faults)
        except (KeyError, ValueError, RuntimeError) as e:
            return _error(409, "conflict", str(e))
        svc.scenario = new
        log_event(
            "faults_changed",
            dependency=body.dependency,
            route="/lab/faults",
            faults=new.dependency(body.dependency).to_dict()["faults"],
        )
        return JSONResponse(
            {
                "dependency": body.dependency,
                "faults": new.dependency(body.dependency).to_dict()["faults"],
            }
        )

    @app.get("/debug/internals")
    async def internals(request: Request) -> Response:
        """Queue depth, workers, breaker states and the writer's figures."""
        denied = check_admin(request)
        if denied is not None:
            return denied
        return JSONResponse(await run_in_threadpool(svc.internals))

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
