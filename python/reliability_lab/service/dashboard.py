"""The control room: a live dashboard of a running engine, and its controls.

::

    GET  /dashboard                  the page (Plotly.js, shipped in ``static/``: works offline)
    GET  /dashboard/stream           Server-Sent Events: ``history`` once, then one ``snapshot``
                                     per sampling interval
    POST /dashboard/actions          a control action (bearer token, like the admin endpoints)
    GET  /dashboard/static/{name}    the page's script and Plotly.js

One :class:`Dashboard` per engine samples the engine's native metrics registry (the counters
behind ``/metrics``) every ``interval`` seconds, on one task shared by every client, so the cost
is bounded by the sampling rate whatever the order rate and however many clients watch. Each
client gets its own small queue; a slow client loses old snapshots, never blocks the sampler, and
a client that disconnects leaves nothing behind. The sampler starts with the first visit.

Used by ``reliability-lab serve`` (``create_app`` mounts the router) and by
:meth:`reliability_lab.Lab.dashboard` (a small app on loopback in a background thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse

from reliability_lab.breaker import Breaker
from reliability_lab.scenario import Faults, Phase

__all__ = ["ACTIONS", "Dashboard", "EngineSource", "dashboard_router", "percentile"]

STATIC = Path(__file__).parent / "static"
_ASSETS = {"dashboard.js": "text/javascript", "plotly.min.js": "text/javascript"}

#: The control actions ``POST /dashboard/actions`` accepts (``arrival_rate``: only where the
#: engine generates the load, i.e. a Lab with Poisson or constant arrivals; ``breaker``: only
#: where a dependency has a circuit breaker).
ACTIONS = (
    "outage",
    "brownout",
    "latency_spike",
    "failure_rate",
    "recover",
    "arrival_rate",
    "breaker",
)

# Breaker states as the band chart's numbers (closed 0, half-open 1, open 2).
BREAKER_CODES = {"closed": 0, "half_open": 1, "open": 2}


class EngineSource(Protocol):
    """What the dashboard reads and steers: a live engine (the service's or a Lab's)."""

    def metrics(self) -> list[dict[str, Any]]:
        """The native metric families (``_core.LiveEngine.metrics()``); called off the loop."""
        ...

    def now(self) -> float:
        """Seconds since the engine started (the clock of fault phases)."""
        ...

    def dependencies(self) -> list[str]:
        """The root's dependencies: the ones the charts draw (the engine's
        ``rlab_dependency_*`` and ``rlab_breaker_*`` families are labelled by them)."""
        ...

    def controls(self) -> list[str]:
        """The dependencies the controls reach: the root's, then in a service graph each
        service's own as ``"<service>.<dependency>"`` (as the results and
        :meth:`reliability_lab.Lab.set_faults` name them)."""
        ...

    def faults(self, dependency: str) -> Faults:
        """The dependency's current fault model."""
        ...

    def set_faults(self, dependency: str, faults: Faults) -> None:
        """Replaces the dependency's fault model (ValueError/KeyError if refused)."""
        ...

    def status(self) -> str:
        """``starting``, ``running``, ``draining`` or ``stopped``."""
        ...

    def arrival_rate(self) -> float | None:
        """The engine's own open-loop arrival rate (orders/s), None if it has none to change."""
        ...

    def set_arrival_rate(self, rate: float) -> None:
        """Changes it (ValueError naming ``arrivals.rate`` if refused)."""
        ...

    def breaker(self, dependency: str) -> Breaker | None:
        """The dependency's circuit breaker parameters now (None without a breaker)."""
        ...

    def set_breaker(self, dependency: str, change: dict[str, Any]) -> Breaker:
        """Merges ``change`` (some of the breaker's fields, in seconds) into the dependency's
        breaker parameters (ValueError naming ``payment.breaker.<field>`` if refused) and
        returns the parameters now in force."""
        ...


def percentile(bounds: Sequence[float], cumulative: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of a histogram (cumulative counts per upper bound, the last bound's
    count being the total), interpolated linearly inside its bucket; None when empty.

    Prometheus's ``histogram_quantile`` does the same: the bucket's lower bound is the previous
    upper bound (0 for the first), and a quantile in the overflow bucket is the last bound."""
    total = cumulative[-1] if cumulative else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for b, c in zip(bounds, cumulative, strict=True):
        if c >= rank:
            if math.isinf(b):
                return lower
            inside = c - below
            return lower + (b - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = b, c
    return lower


@dataclass
class _Raw:
    """The counters of one sample."""

    t: float
    arrived: float = 0.0
    jobs: dict[str, float] = field(default_factory=dict)
    calls: dict[str, float] = field(default_factory=dict)
    failures: dict[str, float] = field(default_factory=dict)
    retried: float = 0.0
    transitions: dict[tuple[str, str, str], float] = field(default_factory=dict)
    breakers: dict[str, str] = field(default_factory=dict)
    budget_tokens: dict[str, float] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)
    bounds: list[float] = field(default_factory=list)
    cumulative: list[float] = field(default_factory=list)


def _read(fams: list[dict[str, Any]], t: float) -> _Raw:
    raw = _Raw(t)
    for fam in fams:
        name = fam["name"]
        series = fam["series"]
        if name == "rlab_orders_arrived":
            raw.arrived = sum(float(s[1]) for s in series)
        elif name == "rlab_worker_jobs":
            raw.jobs = {s[0][0]: float(s[1]) for s in series}
        elif name == "rlab_dependency_calls":
            raw.calls = {s[0][0]: float(s[1]) for s in series}
        elif name == "rlab_dependency_failures":
            raw.failures = {s[0][0]: float(s[1]) for s in series}
        elif name == "rlab_retry_attempts":
            raw.retried = sum(float(s[1]) for s in series if s[0][1] == "retried")
        elif name == "rlab_breaker_transitions":
            raw.transitions = {(s[0][0], s[0][1], s[0][2]): float(s[1]) for s in series}
        elif name == "rlab_retry_budget_tokens":
            raw.budget_tokens = {s[0][0]: float(s[1]) for s in series}
        elif name == "rlab_breaker_state":
            for (dep, state), value, *_ in series:
                if value >= 0.5:
                    raw.breakers[dep] = state
        elif name == "rlab_order_latency_seconds" and series:
            _, _, cumulative, _, count = series[0]
            raw.bounds = [float(b) for b in fam["bounds"]] + [math.inf]
            raw.cumulative = [float(c) for c in cumulative] + [float(count)]
        elif fam["type"] == "gauge" and not fam["labels"] and series:
            raw.gauges[name] = float(series[0][1])
    return raw


def _rate(now: float, before: float, dt: float) -> float:
    return max(0.0, now - before) / dt if dt > 0 else 0.0


class Dashboard:
    """Samples one engine for every client of its stream, and applies control actions.

    Args:
        source: the engine.
        interval: seconds between samples (the stream's rate: 0.5 is 2 Hz).
        window: seconds over which rates, ratios and latency quantiles are computed.
        history: samples kept for clients that connect later (600 at 2 Hz: five minutes).
        max_clients: streams served at once; more are refused with 503.
        on_stopped: called once, on the loop, when the source reports ``stopped``.
    """

    def __init__(
        self,
        source: EngineSource,
        *,
        interval: float = 0.5,
        window: float = 1.0,
        history: int = 600,
        max_clients: int = 8,
        on_stopped: Callable[[], None] | None = None,
    ) -> None:
        if not (math.isfinite(interval) and 0.05 <= interval <= 60):
            raise ValueError(f"dashboard.interval must be in [0.05, 60] seconds, got {interval!r}")
        self.source = source
        self.interval = float(interval)
        self.max_clients = max_clients
        self.snapshots: deque[dict[str, Any]] = deque(maxlen=history)
        self.events: deque[dict[str, Any]] = deque(maxlen=500)
        self._raws: deque[_Raw] = deque(maxlen=max(2, round(window / interval) + 1))
        # Bounded like the log: events recorded while nobody samples (no visitor yet) pile up
        # no further than this.
        self._pending_events: deque[dict[str, Any]] = deque(maxlen=500)
        self._events_lock = threading.Lock()  # record() may be called from any thread
        self._seq = 0
        self._shutdown_logged = False
        self._clients: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._status = ""
        self._on_stopped = on_stopped
        self.samples = 0

    # --- events ----------------------------------------------------------------------------

    def record(self, kind: str, text: str, *, annotate: bool = False, **fields: Any) -> None:
        """Adds an event to the log (and, with ``annotate``, a marker on the charts)."""
        try:
            t = float(self.source.now())
        except Exception:  # the engine is gone: the event still belongs in the log
            t = self.snapshots[-1]["t"] if self.snapshots else 0.0
        with self._events_lock:
            self._seq += 1
            # seq: a client that got the event in the history skips it in the next snapshot.
            event = {
                "seq": self._seq,
                "t": round(t, 3),
                "kind": kind,
                "text": text,
                "annotate": annotate,
                **fields,
            }
            self.events.append(event)
            self._pending_events.append(event)

    def record_shutdown_started(self) -> None:
        """Logs the start of the shutdown (once)."""
        if not self._shutdown_logged:
            self._shutdown_logged = True
            self.record("shutdown", "shutdown started: intake stopped, draining")

    # --- sampling --------------------------------------------------------------------------

    def ensure_started(self) -> None:
        """Starts the sampler on the running loop (once)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stops the sampler and ends every stream."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self._broadcast(None)

    async def _run(self) -> None:
        try:
            while True:
                started = time.monotonic()
                stopped = await self.sample()
                if stopped:
                    self._broadcast(None)
                    if self._on_stopped is not None:
                        self._on_stopped()
                    return
                await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # never a silent death: clients see why the stream ended
            self.record("error", f"dashboard sampler failed: {e!r}")
            self._broadcast(None)

    async def sample(self) -> bool:
        """Takes one sample and sends it to every client; returns True once the engine has
        stopped (after sending the last sample)."""
        status = self.source.status()
        if status != self._status:
            # A quick drain can fall between two samples: its start is logged all the same.
            if status in ("draining", "stopped") and self._status in ("starting", "running"):
                self.record_shutdown_started()
            if status == "stopped" and self._status:
                self.record("shutdown", "shutdown complete: engine stopped")
            self._status = status
        if status in ("running", "draining"):
            fams = await asyncio.to_thread(self.source.metrics)
            snap = self._snapshot(_read(fams, float(self.source.now())))
        else:
            t = self.snapshots[-1]["t"] if self.snapshots else 0.0
            snap = {"t": t}
        snap["status"] = status
        with self._events_lock:
            snap["events"] = list(self._pending_events)
            self._pending_events.clear()
        self.samples += 1
        self.snapshots.append(snap)
        self._broadcast(snap)
        return status == "stopped"

    def _snapshot(self, raw: _Raw) -> dict[str, Any]:
        prev = self._raws[-1] if self._raws else None
        if prev is not None:
            for key, now in raw.transitions.items():
                if now > prev.transitions.get(key, 0.0) and key[1] != key[2]:
                    dep, frm, to = key
                    self.record(
                        "breaker", f"{dep}: breaker {frm} \u2192 {to}", dependency=dep, to=to
                    )
        self._raws.append(raw)
        base = self._raws[0]
        dt = raw.t - base.t
        ended = sum(raw.jobs.values()) - sum(base.jobs.values())
        completed = raw.jobs.get("completed", 0.0) - base.jobs.get("completed", 0.0)
        calls = sum(raw.calls.values()) - sum(base.calls.values())
        hist = [a - b for a, b in zip(raw.cumulative, base.cumulative, strict=False)]
        if base is raw:  # the first sample: since the start
            hist, ended = raw.cumulative, sum(raw.jobs.values())
            completed = raw.jobs.get("completed", 0.0)
        p50 = percentile(raw.bounds, hist, 0.5) if hist else None
        p99 = percentile(raw.bounds, hist, 0.99) if hist else None
        deps = self.source.dependencies()
        dep_fail = {}
        for d in deps:
            n = raw.calls.get(d, 0.0) - base.calls.get(d, 0.0)
            f = raw.failures.get(d, 0.0) - base.failures.get(d, 0.0)
            dep_fail[d] = round(f / n, 4) if n > 0 else None
        g = raw.gauges
        return {
            "t": round(raw.t, 3),
            "arrivals_per_s": round(_rate(raw.arrived, base.arrived, dt), 2),
            "goodput_per_s": round(completed / dt, 2) if dt > 0 else 0.0,
            "success_rate": round(completed / ended, 4) if ended > 0 else None,
            "p50_ms": None if p50 is None else round(p50 * 1e3, 3),
            "p99_ms": None if p99 is None else round(p99 * 1e3, 3),
            "queue_depth": g.get("rlab_queue_depth", 0.0),
            "busy_workers": g.get("rlab_busy_workers", 0.0),
            "workers": g.get("rlab_workers", 0.0),
            "in_flight": g.get("rlab_orders_in_flight", 0.0),
            "retries_per_order": round((raw.retried - base.retried) / ended, 3)
            if ended > 0
            else None,
            "calls_per_order": round(calls / ended, 3) if ended > 0 else None,
            "dependency_failure_rate": dep_fail,
            "breakers": {d: raw.breakers.get(d) for d in deps},
            # Token-bucket retry budgets only (an engine build without the gauge: none).
            "retry_budget_tokens": {d: raw.budget_tokens.get(d) for d in deps},
            "arrived": raw.arrived,
            "offered_per_s": self.source.arrival_rate(),
            "clients": len(self._clients),
        }

    def _broadcast(self, item: dict[str, Any] | None) -> None:
        for q in self._clients:
            if q.full():  # a slow client loses its oldest snapshot, never stalls the sampler
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
            q.put_nowait(item)

    # --- streams ---------------------------------------------------------------------------

    def history(self) -> dict[str, Any]:
        """What a new client starts from: the recent samples and the event log."""
        return {
            "dependencies": self.source.dependencies(),
            "controls": self.source.controls(),
            "interval": self.interval,
            "snapshots": list(self.snapshots),
            "events": list(self.events),
            "actions": self.actions(),
            "breakers": self.breakers(),
        }

    def breakers(self) -> dict[str, dict[str, Any] | None]:
        """Each controlled dependency's breaker parameters now (for the page's inputs; None: no
        breaker)."""
        out: dict[str, dict[str, Any] | None] = {}
        for d in self.source.controls():
            b = self.source.breaker(d)
            out[d] = None if b is None else b.to_dict()
        return out

    def actions(self) -> list[str]:
        """The actions this engine supports."""
        out = list(ACTIONS)
        if self.source.arrival_rate() is None:
            out.remove("arrival_rate")
        if all(self.source.breaker(d) is None for d in self.source.controls()):
            out.remove("breaker")
        return out

    @property
    def clients(self) -> int:
        """Streams open now."""
        return len(self._clients)

    async def stream(self, request: Request) -> Response:
        """The SSE response of one client (503 beyond ``max_clients``)."""
        if len(self._clients) >= self.max_clients:
            return JSONResponse(
                {"error": "too_many_clients", "message": "too many dashboard streams open"},
                503,
                headers={"Retry-After": "5"},
            )
        self.ensure_started()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=8)

        async def events() -> AsyncIterator[bytes]:
            # Registered only once the body is being sent, and always removed in `finally`: a
            # client that leaves (even before its first byte) leaves nothing behind.
            self._clients.add(queue)
            try:
                yield _sse("history", self.history())
                stopped = self._status == "stopped"
                while not stopped:
                    try:
                        # Bounded: a stalled sampler still lets the client's disconnect through.
                        item = await asyncio.wait_for(queue.get(), 5 * self.interval + 5)
                    except asyncio.TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    if item is None:
                        break
                    yield _sse("snapshot", item)
                yield _sse("end", {"status": self._status or "stopped"})
            finally:
                self._clients.discard(queue)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # --- actions ---------------------------------------------------------------------------

    def act(self, body: Any) -> dict[str, Any]:
        """Applies one control action (``{"action", "dependency", "duration_s", "value"}``, and
        for ``breaker`` a ``"breaker"`` object of the fields to change, e.g.
        ``{"consecutive_failures": 3, "open_for": 10}``); ValueError/KeyError/TypeError name
        what is wrong. Returns the recorded event."""
        if not isinstance(body, dict):
            raise TypeError("the body must be a JSON object")
        unknown = set(body) - {"action", "dependency", "duration_s", "value", "breaker"}
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
        action = body.get("action")
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {list(ACTIONS)}, got {action!r}")
        if action == "arrival_rate":
            if self.source.arrival_rate() is None:
                raise ValueError(
                    "action arrival_rate: this engine has no arrival rate to change (the "
                    "service's orders come from its HTTP clients)"
                )
            rate = _number(body, "value", None, 1e-9, 1e7)
            self.source.set_arrival_rate(rate)
            self.record("action", f"arrival rate set to {rate:g}/s", annotate=True, action=action)
            return self.events[-1]
        dep = body.get("dependency")
        deps = self.source.controls()
        if dep not in deps:
            raise KeyError(f"dependency must be one of {deps}, got {dep!r}")
        if action == "breaker":
            change = body.get("breaker")
            if not isinstance(change, dict) or not change:
                raise TypeError(
                    "action breaker: breaker must be an object of the fields to change, e.g. "
                    '{"consecutive_failures": 3, "open_for": 10}'
                )
            if self.source.breaker(dep) is None:
                raise ValueError(f"action breaker: {dep} has no circuit breaker to change")
            b = self.source.set_breaker(dep, change)
            text = (
                f"{dep}: breaker set (consecutive_failures {b.consecutive_failures}, "
                f"open_for {b.open_for:g} s)"
            )
            self.record("action", text, annotate=True, action=action, dependency=dep)
            return self.events[-1]
        duration = _number(body, "duration_s", 30.0, 0.1, 86_400.0)
        current = self.source.faults(dep)
        now = float(self.source.now())
        # Our phases start now; the model's phases that would overlap them are dropped (phases
        # must not overlap), the others are kept.
        end = now + duration
        kept = [p for p in current.phases if p.end <= now or p.start >= end]
        if action == "outage":
            phase = Phase("outage", now, end, failure_rate=1.0)
            text = f"{dep}: outage for {duration:g} s"
        elif action == "brownout":
            rate = _number(body, "value", 0.5, 0.0, 1.0)
            phase = Phase("brownout", now, end, failure_rate=rate, latency_multiplier=5.0)
            text = f"{dep}: brownout ({rate:.0%} failures, 5\u00d7 latency) for {duration:g} s"
        elif action == "latency_spike":
            mult = _number(body, "value", 10.0, 1.0, 1000.0)
            phase = Phase("latency_spike", now, end, latency_multiplier=mult)
            text = f"{dep}: latency \u00d7{mult:g} for {duration:g} s"
        if action in ("outage", "brownout", "latency_spike"):
            new = Faults(**{**_fields(current), "phases": sorted([*kept, phase], key=_start)})
        elif action == "failure_rate":
            rate = _number(body, "value", None, 0.0, 1.0)
            new = Faults(**{**_fields(current), "failure_rate": rate})
            text = f"{dep}: failure rate set to {rate:g}"
        else:  # recover: end every phase in force or to come
            past = [p for p in current.phases if p.end <= now]
            new = Faults(**{**_fields(current), "phases": past})
            text = f"{dep}: recovered (phases in force or to come cleared)"
        self.source.set_faults(dep, new)
        self.record("action", text, annotate=True, action=action, dependency=dep)
        return self.events[-1]


def _start(p: Phase) -> float:
    return p.start


def _fields(f: Faults) -> dict[str, Any]:
    return {
        "failure_rate": f.failure_rate,
        "mix": f.mix,
        "latency": f.latency,
        "phases": list(f.phases),
        "capacity": f.capacity,
        "ambiguous_rate": f.ambiguous_rate,
        "hang": f.hang,
    }


def _number(
    body: dict[str, Any], name: str, default: float | None, low: float, high: float
) -> float:
    value = body.get(name, default)
    if value is None:
        raise ValueError(f"{name} is required for this action")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} must be in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def dashboard_router(
    get: Callable[[Request], Dashboard],
    check_admin: Callable[[Request], Response | None],
) -> APIRouter:
    """The dashboard's routes; ``get`` finds the request's :class:`Dashboard`. Kept out of the
    OpenAPI document: a page and a stream for people, not an API contract."""
    router = APIRouter(include_in_schema=False)

    @router.get("/dashboard")
    async def page(request: Request) -> Response:
        get(request).ensure_started()
        html = (STATIC / "dashboard.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    @router.get("/dashboard/static/{name}")
    async def asset(name: str) -> Response:
        if name not in _ASSETS:  # a fixed list: no path ever reaches the file system
            return JSONResponse({"error": "not_found", "message": "no such asset"}, 404)
        return FileResponse(
            STATIC / name, media_type=_ASSETS[name], headers={"Cache-Control": "max-age=3600"}
        )

    @router.get("/dashboard/stream")
    async def stream(request: Request) -> Response:
        return await get(request).stream(request)

    @router.post("/dashboard/actions")
    async def actions(request: Request) -> Response:
        denied = check_admin(request)  # before reading the body
        if denied is not None:
            return denied
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse(
                {"error": "invalid_json", "message": "the request body is not valid JSON"}, 400
            )
        dash = get(request)
        try:
            event = dash.act(body)
        except (ValueError, TypeError, KeyError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            return JSONResponse({"error": "validation_failed", "message": str(msg)}, 422)
        except RuntimeError as e:  # the engine refused (shut down)
            return JSONResponse({"error": "conflict", "message": str(e)}, 409)
        return JSONResponse(event)

    return router


def mount(app: FastAPI, dashboard: Dashboard, check_admin: Callable[[Request], Any]) -> None:
    """Serves ``dashboard`` from ``app`` (a standalone app: :meth:`Lab.dashboard`)."""
    app.state.dashboard = dashboard
    app.include_router(dashboard_router(lambda r: r.app.state.dashboard, check_admin))


class LabSource:
    """An in-process :class:`~reliability_lab.Lab` as the dashboard sees it."""

    def __init__(self, lab: Any) -> None:
        self.lab = lab

    def metrics(self) -> list[dict[str, Any]]:
        return list(self.lab._engine.metrics())

    def now(self) -> float:
        return float(self.lab.now()) if self.lab._started else 0.0

    def dependencies(self) -> list[str]:
        return [d.name for d in self.lab.scenario.dependencies]

    def controls(self) -> list[str]:
        labels: list[str] = self.lab.scenario.dependency_labels()
        return labels

    def faults(self, dependency: str) -> Faults:
        f = self.lab.faults(dependency)
        assert isinstance(f, Faults)
        return f

    def set_faults(self, dependency: str, faults: Faults) -> None:
        if not self.lab.running:
            raise RuntimeError("the lab is not running")
        self.lab.set_faults(dependency, faults)

    def status(self) -> str:
        if self.lab.running:
            return "running"
        return "stopped" if self.lab._report is not None else "starting"

    def arrival_rate(self) -> float | None:
        rate = getattr(self.lab, "arrival_rate", None)  # None: an engine build without it
        return float(rate) if rate else None

    def set_arrival_rate(self, rate: float) -> None:
        if not self.lab.running:
            raise RuntimeError("the lab is not running")
        self.lab.set_arrival_rate(rate)

    def breaker(self, dependency: str) -> Breaker | None:
        b = self.lab.breaker(dependency)
        assert b is None or isinstance(b, Breaker)
        return b

    def set_breaker(self, dependency: str, change: dict[str, Any]) -> Breaker:
        if not self.lab.running:
            raise RuntimeError("the lab is not running")
        b = self.lab.set_breaker(dependency, change)
        assert isinstance(b, Breaker)
        return b


class LabDashboard:
    """A running control room of an in-process lab (see :meth:`reliability_lab.Lab.dashboard`).

    Attributes:
        url: the page's address, the admin token in its fragment (never sent to the server).
        token: the random admin token of the controls.
        port: the loopback port it listens on.
    """

    def __init__(self, lab: Any, host: str, port: int, interval: float) -> None:
        import secrets
        import socket

        import uvicorn

        self.token = secrets.token_urlsafe(18)
        self.dashboard = Dashboard(LabSource(lab), interval=interval, on_stopped=self._exit)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        self.port = int(sock.getsockname()[1])
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/dashboard#token={self.token}"
        self._loop: asyncio.AbstractEventLoop | None = None
        dash = self.dashboard

        @contextlib.asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            self._loop = asyncio.get_running_loop()
            dash.ensure_started()  # from the start: the charts have history when opened
            yield
            await dash.stop()

        app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
        mount(app, dash, self._check)
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name="reliability_lab-dashboard",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the dashboard server did not start within 30 s")
            time.sleep(0.01)
        if not self._server.started:
            raise RuntimeError("the dashboard server failed to start")

    def _check(self, request: Request) -> Response | None:
        import hmac

        auth = request.headers.get("authorization", "")
        scheme, _, credentials = auth.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return JSONResponse(
                {"error": "unauthorized", "message": "use Authorization: Bearer <token>"},
                401,
                headers={"WWW-Authenticate": 'Bearer realm="reliability-lab"'},
            )
        if not hmac.compare_digest(credentials.strip().encode(), self.token.encode()):
            return JSONResponse({"error": "forbidden", "message": "the token is not valid"}, 403)
        return None

    def _exit(self) -> None:
        self._server.should_exit = True

    @property
    def running(self) -> bool:
        """Whether the server still serves."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Ends the streams and stops the server (the lab's shutdown does it too)."""
        loop = self._loop
        if loop is not None and self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._finish(), loop).result(timeout)
        self._server.should_exit = True
        self._thread.join(timeout)

    async def _finish(self) -> None:
        await self.dashboard.sample()  # the streams' last word: the lab stopped
        await self.dashboard.stop()

    def _repr_html_(self) -> str:
        # Jupyter shows the page itself.
        return (
            f'<iframe src="{self.url}" width="100%" height="900" '
            f'style="border:1px solid #ccc"></iframe>'
        )

    def __repr__(self) -> str:
        return f"LabDashboard(url={self.url.split('#')[0]!r}, running={self.running})"
