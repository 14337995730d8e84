"""What the routers share: the per-app state, error bodies and the admin check."""

from __future__ import annotations

import asyncio
import hmac
import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client.registry import CollectorRegistry

from reliability_lab.service.config import ServiceConfig
from reliability_lab.service.core import OrderService, log_event
from reliability_lab.service.store import StoreError

#: The most answered Idempotency-Keys a server keeps in memory (see :class:`KeyCache`).
KEY_CACHE_CAPACITY = 100_000


class Reservation:
    """An Idempotency-Key whose order is being created: later requests wait for it."""

    __slots__ = ("done", "request_hash")

    def __init__(self, request_hash: str) -> None:
        self.request_hash = request_hash
        self.done = asyncio.Event()


class KeyCache:
    """The Idempotency-Keys a server answered recently, and those whose first request is
    still running, in memory that stops growing once the cache has been filled once.

    Answered keys live in two generations of plain dicts: new keys go into the young one,
    and when it holds ``capacity // 2`` keys the old one is dropped whole and the young one
    becomes old. So the cache holds between ``capacity // 2`` and ``capacity`` of the most
    recent keys, and a generation only ever grows, then is freed: its hash table reaches its
    final size while the first one fills. (A dict trimmed one key at a time, as an LRU
    OrderedDict is, keeps a tombstone per deleted key and rebuilds its table when they fill
    it: at 100,000 keys that first doubled the table, by 7 MB, about 75 s after the cache was
    full.) Reservations (keys being created) are a separate dict, as large as the requests
    in flight. A key missing here is still known to the database, which is the authority.

    Args:
        capacity: the most answered keys held, >= 2.
    """

    __slots__ = ("_old", "_pending", "_young", "capacity")

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 2:
            raise ValueError(f"KeyCache.capacity must be an integer >= 2, got {capacity!r}")
        self.capacity = capacity
        self._young: dict[str, tuple[int, str]] = {}
        self._old: dict[str, tuple[int, str]] = {}
        self._pending: dict[str, Reservation] = {}

    def get(self, key: str) -> tuple[int, str] | Reservation | None:
        """The key's reservation while its first request runs, then its ``(order id,
        request hash)``; None when not held."""
        hit = self._pending.get(key)
        if hit is not None:
            return hit
        return self._young.get(key) or self._old.get(key)

    def reserve(self, key: str, reservation: Reservation) -> None:
        """Marks ``key`` as being created by the request holding ``reservation``."""
        self._pending[key] = reservation

    def resolve(self, key: str, reservation: Reservation, answer: tuple[int, str] | None) -> bool:
        """Ends ``reservation`` (if it still holds ``key``): the key is then held with
        ``answer``, or forgotten when None (nothing was stored). Returns whether it held."""
        if self._pending.get(key) is not reservation:
            return False
        del self._pending[key]
        if answer is not None:
            if len(self._young) >= self.capacity // 2:
                self._old, self._young = self._young, {}
            self._young[key] = answer
        return True

    def __len__(self) -> int:
        """Keys held: answered ones and reservations."""
        return len(self._young) + len(self._old) + len(self._pending)

    def table_bytes(self) -> int:
        """The bytes of the three dicts themselves (their hash tables; not the keys)."""
        return sum(sys.getsizeof(d) for d in (self._young, self._old, self._pending))


@dataclass(eq=False)
class AppState:
    """Everything one app's handlers share (``app.state.shared``)."""

    config: ServiceConfig
    service: OrderService
    #: The Prometheus registry ``/metrics`` exposes.
    registry: CollectorRegistry
    # Store reads and the readiness ping run on their own threads: a request that stops
    # waiting returns at once, and stuck reads never starve the probe (or the event loop's
    # shared pool).
    read_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(8, thread_name_prefix="rlab-read")
    )
    probe_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="rlab-probe")
    )
    # Idempotency-Keys this server answered recently (a replay needs no write), and those
    # whose first request is still running (later ones wait for it). The database is the
    # authority: a key missing here is inserted-or-found by the writer in one statement.
    keys: KeyCache = field(default_factory=lambda: KeyCache(KEY_CACHE_CAPACITY))

    async def read(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` (a store read) on the read pool, bounded by ``config.store_timeout``."""
        # The store bounds each call itself; this bounds the request even if it did not. (Not
        # run_in_threadpool: a cancelled anyio thread call still waits for its thread.)
        timeout = self.config.store_timeout
        deadline = time.monotonic() + timeout

        def call() -> Any:
            if time.monotonic() > deadline:  # queued behind stuck reads: nobody waits any more
                raise StoreError("no read connection in time")
            return fn()

        fut = asyncio.get_running_loop().run_in_executor(self.read_pool, call)
        return await asyncio.wait_for(fut, timeout)

    def close_pools(self) -> None:
        self.read_pool.shutdown(wait=False, cancel_futures=True)
        self.probe_pool.shutdown(wait=False, cancel_futures=True)


def app_state(app: FastAPI) -> AppState:
    """The :class:`AppState` that ``create_app`` put on ``app``."""
    state = app.state.shared
    assert isinstance(state, AppState)
    return state


async def get_state(request: Request) -> AppState:
    # async: FastAPI would run a plain function on the thread pool.
    return app_state(request.app)


#: A handler parameter that receives the app's :class:`AppState`.
StateDep = Annotated[AppState, Depends(get_state)]


def error(
    status: int,
    error: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """An error answer: ``{"error": ..., "message": ..., **extra}``."""
    return JSONResponse({"error": error, "message": message, **extra}, status, headers=headers)


def field_name(loc: Iterable[Any]) -> str:
    """A pydantic error location as a dotted field name (without ``body``/``query``/...)."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def unavailable(error_code: str, message: str, retry_after: int) -> JSONResponse:
    """A 503 with ``Retry-After``."""
    return error(503, error_code, message, {"Retry-After": str(retry_after)})


def store_down(route: str, e: BaseException) -> JSONResponse:
    """The 503 of a failed store read."""
    # The driver's message (host, port, SQL state) goes to the log, not to the client.
    log_event("store_read_failed", logging.WARNING, route=route, error=str(e) or repr(e))
    return unavailable("store_unavailable", "the order store is unavailable; retry later", 2)


def check_admin(request: Request) -> JSONResponse | None:
    """None if the request carries the admin bearer token, else the 401/403 to answer."""
    auth = request.headers.get("authorization")
    challenge = {"WWW-Authenticate": 'Bearer realm="reliability-lab"'}
    if not auth:
        return error(401, "unauthorized", "a bearer token is required", challenge)
    scheme, _, credentials = auth.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return error(401, "unauthorized", "use Authorization: Bearer <token>", challenge)
    token = app_state(request.app).config.admin_token
    if token is None:
        return error(403, "forbidden", "admin endpoints are disabled (no admin token set)")
    if not hmac.compare_digest(credentials.strip().encode(), token.encode()):
        return error(403, "forbidden", "the token is not valid")
    return None
