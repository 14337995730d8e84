"""The HTTP edge of ``reliability-lab serve``: connection timeouts, limits and descriptors.

uvicorn bounds the idle time *between* requests (``timeout_keep_alive``) but nothing bounds the
time a client takes to send a request's headers: a connection that sends a request line and
never finishes its headers (or sends nothing at all) is kept forever, and enough of them use up
the process's file descriptors (uvicorn issue #157 lists ``--timeout-request-start`` as never
done). This module adds, at the protocol level (below ASGI, which only sees complete requests):

* a **header-read timeout**: the request head must be complete within ``header_timeout_s`` of
  the connection being accepted or, on a kept-alive connection, of the first byte of the next
  request. It is an absolute deadline, not reset by further bytes, so trickling a byte at a time
  does not help (the same rule as hyper's ``header_read_timeout``, hyperium/hyper PR #2675).
  A connection that sent part of a request gets ``408`` and is closed; one that sent nothing is
  closed silently.
* a **body-read timeout**: once the head is in, the whole body must arrive within
  ``body_timeout_s``, or the request gets ``408`` and the connection is closed. Without it a
  client trickling its body would hold a request slot of the in-flight limit forever.
* a **connection cap** that prefers idle connections: when a new connection would take the
  process past ``max_connections``, the oldest connection *without a request in flight* (waiting
  for headers, or idle between requests) is closed to make room; only when every connection is
  busy is the new one refused.
* an **in-flight request limit** (:class:`InFlightLimit`): past ``limit_concurrency`` requests
  being served, new ones get ``503`` at once, except the probes and ``/metrics``.
  uvicorn's own ``limit_concurrency`` is not used: it counts *connections* too, so a flood of
  idle sockets would turn ``/livez`` into 503.
* the **descriptor budget** (:func:`raise_nofile_limit`): the soft ``RLIMIT_NOFILE`` is raised to
  the hard limit at start; every connection holds one descriptor, and ``FD_RESERVE`` are kept
  for the database, the ledger, the logs, the event loop and the profiler.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from reliability_lab import _checks
from reliability_lab.service.core import log_event

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Descriptors kept out of the connection budget: database connections, the ledger, log files,
#: the event loop's own descriptors, the thread pool, the profiler's pipes and output file.
FD_RESERVE = 256
#: Paths the in-flight limit never refuses: probes must report health, not load.
UNLIMITED_PATHS = frozenset({"/livez", "/readyz", "/startupz", "/metrics"})


# The numeric settings, declared once: (name, lo, hi, in seconds, lo excluded);
# max_connections may also be None.
_RANGES = (
    ("header_timeout_s", 0, 3600, True, True),
    ("body_timeout_s", 0, 3600, True, True),
    ("keep_alive_timeout_s", 1, 3600, False, False),
    ("limit_concurrency", 1, 1_000_000, False, False),
    ("tracemalloc_frames", 0, 100, False, False),
    ("max_connections", 1, 10**7, False, False),
)


@dataclass(frozen=True)
class EdgeConfig:
    """Connection handling and diagnostics of the HTTP server.

    Attributes:
        header_timeout_s: seconds a connection gets to send a complete request head, from
            being accepted (or from the first byte of a later request), in (0, 3600].
        body_timeout_s: seconds a request's body gets to arrive once its head is in, in
            (0, 3600].
        keep_alive_timeout_s: seconds an idle kept-alive connection stays open, in [1, 3600].
        limit_concurrency: requests served at once before new ones get 503, in [1, 1e6].
        max_connections: open connections at most; None: the descriptor budget (the soft
            ``RLIMIT_NOFILE`` after raising it, minus :data:`FD_RESERVE`). In [1, 1e7].
        tracemalloc_frames: frames per allocation traced by ``tracemalloc`` from the start (0:
            off), in [0, 100]; it feeds ``GET /debug/pprof/heap`` and slows allocation-heavy code.
    """

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_timeout_s: int = 5
    limit_concurrency: int = 1024
    max_connections: int | None = None
    tracemalloc_frames: int = 0

    def __post_init__(self) -> None:
        for name, lo, hi, seconds, lo_open in _RANGES:
            value = getattr(self, name)
            if value is not None or name != "max_connections":
                _checks.in_range(name, value, lo, hi, seconds=seconds, lo_open=lo_open)


def _nr_open() -> int:
    """The kernel's ceiling for RLIMIT_NOFILE (an unlimited hard limit cannot be used as is)."""
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1 << 20


def raise_nofile_limit() -> tuple[int, int]:
    """Raises the soft ``RLIMIT_NOFILE`` to the hard limit; returns ``(soft, hard)`` after.

    Raising the hard limit needs privileges (CAP_SYS_RESOURCE), so it is left as it is: set it
    with ``ulimit -Hn``, systemd's ``LimitNOFILE=`` or the container runtime.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _nr_open() if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft, hard
    return target, hard


def connection_budget(soft_limit: int) -> int:
    """Connections the descriptor limit leaves room for (at least 1)."""
    return max(1, soft_limit - FD_RESERVE)


class _EdgeState:
    """Per-server bookkeeping shared by its connections (all on the event loop's thread)."""

    def __init__(
        self, header_timeout_s: float, body_timeout_s: float, max_connections: int
    ) -> None:
        self.header_timeout_s = header_timeout_s
        self.body_timeout_s = body_timeout_s
        self.max_connections = max_connections
        # Connections with no request in flight, oldest first (dicts keep insertion order).
        self.idle: dict[Any, None] = {}
        self.header_timeouts = 0
        self.body_timeouts = 0
        self.evicted = 0
        self.refused = 0
        self._last_report = float("-inf")  # the first event is logged at once

    def note(self) -> None:
        """Logs the pressure counters at most every 10 s (a flood must not flood the log)."""
        now = time.monotonic()
        if now - self._last_report >= 10.0:
            self._last_report = now
            log_event(
                "connection_pressure",
                header_timeouts=self.header_timeouts,
                body_timeouts=self.body_timeouts,
                evicted_idle=self.evicted,
                refused=self.refused,
            )


def _response_408(message: str) -> bytes:
    body = json.dumps({"error": "request_timeout", "message": message}).encode()
    return (
        b"HTTP/1.1 408 Request Timeout\r\n"
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + body
    )


_TIMEOUT_RESPONSE = _response_408("the request head was not received in time")
_BODY_TIMEOUT_RESPONSE = _response_408("the request body was not received in time")

if TYPE_CHECKING:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
else:
    _Base = object


class _EdgeProtocolMixin(_Base):
    """Header and body deadlines and idle-first connection cap on a uvicorn HTTP protocol.

    Works with both of uvicorn's HTTP/1.1 implementations: the only hooks used are
    ``connection_made``, ``data_received``, ``on_response_complete`` and ``connection_lost``;
    a request's head is known to be complete when the protocol creates a new ``cycle``, and its
    body when the cycle's ``more_body`` turns false.
    """

    _edge: ClassVar[_EdgeState]
    _header_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    _partial = False  # bytes of a request arrived since the header timer was armed

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._partial = False
        self._header_timer = self.loop.call_later(
            self._edge.header_timeout_s, self._on_header_timeout
        )

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _on_header_timeout(self) -> None:
        self._header_timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._edge.header_timeouts += 1
        self._edge.note()
        if self._partial:
            # RFC 9110 15.5.9: 408 with "close" when a request was begun but not finished.
            transport.write(_TIMEOUT_RESPONSE)
        transport.close()
        self._edge.idle.pop(self, None)

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _on_body_timeout(self) -> None:
        self._body_timer = None
        cycle, transport = self.cycle, self.transport
        if cycle is None or not cycle.more_body or cycle.response_complete:
            return
        if transport is None or transport.is_closing():
            return
        self._edge.body_timeouts += 1
        self._edge.note()
        if not cycle.response_started:
            transport.write(_BODY_TIMEOUT_RESPONSE)
        # What uvicorn does when the peer goes away: the app's receive() returns
        # http.disconnect and its sends are dropped, so the request ends and frees its slot.
        cycle.disconnected = True
        cycle.message_event.set()
        transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        edge = self._edge
        if len(self.connections) > edge.max_connections:
            # Make room by closing the oldest connection that has no request in flight.
            victim = next(iter(edge.idle), None)
            if victim is not None:
                edge.idle.pop(victim, None)
                victim._cancel_header_timer()
                victim.transport.close()
                edge.evicted += 1
            else:
                edge.refused += 1
                edge.note()
                self.transport.close()
                return
            edge.note()
        edge.idle[self] = None
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        waiting = before is None or before.response_complete
        if waiting and self._header_timer is None:
            self._arm_header_timer()  # the first byte of a request on a kept-alive connection
        self._partial = self._partial or bool(data)
        super().data_received(data)
        cycle = self.cycle
        if cycle is not before and cycle is not None:
            self._request_started()
            if cycle.more_body and not cycle.response_complete:
                self._cancel_body_timer()
                self._body_timer = self.loop.call_later(
                    self._edge.body_timeout_s, self._on_body_timeout
                )
        if self._body_timer is not None and (cycle is None or not cycle.more_body):
            self._cancel_body_timer()  # the body is complete

    def on_response_complete(self) -> None:
        self._cancel_body_timer()
        super().on_response_complete()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            self._request_started()  # a pipelined request is being served
        elif not self.transport.is_closing():
            self._edge.idle[self] = None  # uvicorn's keep-alive timer now bounds the idle time

    def _request_started(self) -> None:
        self._cancel_header_timer()
        self._edge.idle.pop(self, None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        self._cancel_body_timer()
        self._edge.idle.pop(self, None)
        super().connection_lost(exc)


def make_protocol_class(
    header_timeout_s: float,
    body_timeout_s: float,
    max_connections: int,
    *,
    impl: Literal["auto", "httptools", "h11"] = "auto",
) -> type[asyncio.Protocol]:
    """A uvicorn HTTP protocol class with the header and body deadlines and the connection
    cap; one class (one shared state) per server. ``impl``: uvicorn's parser, ``auto`` being
    httptools when installed, else h11 (like uvicorn's own choice)."""
    if impl not in ("auto", "httptools", "h11"):
        raise ValueError(f"impl must be 'auto', 'httptools' or 'h11', got {impl!r}")
    base: type[Any] | None = None
    if impl != "h11":
        try:
            from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

            base = HttpToolsProtocol
        except ImportError:  # uvicorn without httptools
            if impl == "httptools":
                raise
    if base is None:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        base = H11Protocol
    state = _EdgeState(header_timeout_s, body_timeout_s, max_connections)
    cls: type[asyncio.Protocol] = type(
        "EdgeHttpProtocol", (_EdgeProtocolMixin, base), {"_edge": state}
    )
    return cls


class InFlightLimit:
    """Pure ASGI middleware: at most ``limit`` requests in flight; the next get 503 at once.

    Probes and ``/metrics`` (:data:`UNLIMITED_PATHS`) are never refused: a liveness probe that
    fails under load gets a healthy, merely busy process restarted.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0
        self.refused = 0
        self._last_report = float("-inf")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self.refused += 1
            now = time.monotonic()
            if now - self._last_report >= 10.0:  # at most one line per 10 s under overload
                self._last_report = now
                log_event("overloaded", refused=self.refused, limit=self.limit)
            body = json.dumps(
                {"error": "overloaded", "message": "too many requests in flight; retry later"}
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"retry-after", b"1"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
