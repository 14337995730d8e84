"""Fault injection for your own code, driven by the lab's fault models.

What Polly's Simmy (chaos policies wrapped around calls) and Toxiproxy (a proxy that breaks
connections) do for production code, here deterministic: a :class:`FaultInjector` reads an
:class:`~reliability_lab.scenario.Faults` model (failure rate, failure mix, latency, phases,
ambiguous commits, hang time) and decides, for every call, from a seeded random stream and the
time on its clock since :meth:`FaultInjector.start`, whether the call fails (and how), hangs, or
is slowed down. Your retry and breaker code is then tested against the same fault models the
lab simulates::

    clock = rl.ManualClock()
    inj = FaultInjector(rl.Faults(failure_rate=0.2, phases=[rl.Outage(10, 20)]),
                        clock=clock, seed=7)
    charge = inj.wrap(real_charge)                    # any Python callable
    client = httpx.Client(transport=inj.httpx_transport(inner))   # or an httpx client
    aclient = httpx.AsyncClient(transport=inj.httpx_async_transport(inner))
    session.mount("http://", inj.requests_adapter(inner))         # or a requests session

How an injected fault shows, for a wrapped callable / the httpx transport / the requests adapter:

* ``http500``, ``http503``, ``http429``: :class:`InjectedHTTPError` (with ``status_code``; a 429
  also has ``retry_after``) / a 500, 503 or 429 response (a 429 with a ``Retry-After`` header)
  / the same response.
* ``timeout``: :class:`InjectedTimeout` (a ``TimeoutError``) after hanging /
  ``httpx.ReadTimeout`` / ``requests.exceptions.ReadTimeout``.
* ``connection_reset``: :class:`InjectedConnectionReset` (a ``ConnectionResetError``) /
  ``httpx.ReadError`` / ``requests.exceptions.ConnectionError``.

Every call that does not hang first waits the model's latency (times the phase's multiplier),
error answers included; then a call that goes through runs the real call, and with
``ambiguous_rate`` its answer is then lost (a timeout after the effect).
Waits go through the clock: a :class:`~reliability_lab.clock.ManualClock` advances at once, so
tests never sleep; the steady clock really waits. A hang lasts the model's ``hang`` seconds, or
less when the caller set a shorter timeout (:meth:`FaultInjector.call_within`, the request's read
timeout for the transports): every wait has a bound.

Not modelled here: ``Faults.capacity`` (limited concurrency belongs to a server; the injector has
no queue). The exceptions are classified by the lab's outcome table like the real ones
(``TimeoutError``, ``ConnectionError``, an HTTP ``status_code``), so :class:`rl.Retry
<reliability_lab.retry.Retry>` and :class:`rl.CircuitBreaker
<reliability_lab.breaker.CircuitBreaker>` retry and count them as they would real faults.
"""

from __future__ import annotations

import functools
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

from reliability_lab.clock import Clock, default_clock
from reliability_lab.scenario import (
    Constant,
    Exponential,
    FailureMix,
    Faults,
    Latency,
    LogNormal,
    Mixture,
    Uniform,
)

if TYPE_CHECKING:
    import httpx
    import requests

P = ParamSpec("P")
R = TypeVar("R")

FaultKind = Literal["http500", "http503", "http429", "timeout", "connection_reset"]
_KINDS: tuple[FaultKind, ...] = ("http500", "http503", "http429", "timeout", "connection_reset")
_STATUS = {"http500": 500, "http503": 503, "http429": 429}


class InjectedFault(Exception):
    """Base of the exceptions a wrapped callable raises for an injected fault."""

    kind: str = ""


class InjectedHTTPError(InjectedFault):
    """An injected HTTP error answer (500, 503 or 429); a 429 carries ``retry_after``."""

    def __init__(self, status_code: int, retry_after: float | None = None) -> None:
        hint = "" if retry_after is None else f", Retry-After {retry_after:g} s"
        super().__init__(f"injected HTTP {status_code}{hint}")
        self.status_code = status_code
        self.retry_after = retry_after
        self.kind = f"http{status_code}"


class InjectedTimeout(InjectedFault, TimeoutError):
    """An injected hang that ended, or an answer lost after the call took effect."""

    def __init__(self, message: str, *, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous
        self.kind = "timeout"


class InjectedConnectionReset(InjectedFault, ConnectionResetError):
    """An injected broken connection."""

    kind = "connection_reset"


@dataclass(frozen=True)
class Decision:
    """What the injector decided for one call.

    Attributes:
        at: seconds since the injector started.
        phase: the phase in force, or None.
        fault: the failure kind, or None for a call that goes through.
        delay: seconds the call waits first (service time, or the hang).
        retry_after: the Retry-After hint of a 429, else None.
        ambiguous: the call goes through but its answer is lost (a timeout after the effect).
    """

    at: float
    phase: str | None
    fault: FaultKind | None
    delay: float
    retry_after: float | None = None
    ambiguous: bool = False


@dataclass
class InjectionStats:
    """Counts of what the injector did: calls seen, faults by kind, ambiguous answers lost."""

    calls: int = 0
    passed: int = 0
    ambiguous: int = 0
    faults: dict[str, int] | None = None

    @property
    def failed(self) -> int:
        """Calls that got an injected fault (ambiguous ones excluded)."""
        return sum((self.faults or {}).values())


def _sample(rng: random.Random, dist: Latency) -> float:
    if isinstance(dist, Constant):
        return dist.value
    if isinstance(dist, Exponential):
        return rng.expovariate(1.0 / dist.mean) if dist.mean > 0 else 0.0
    if isinstance(dist, LogNormal):
        return dist.median * math.exp(dist.sigma * rng.gauss(0.0, 1.0)) if dist.median else 0.0
    if isinstance(dist, Uniform):
        return rng.uniform(dist.low, dist.high)
    assert isinstance(dist, Mixture)
    (component,) = rng.choices(dist.components, weights=dist.weights)
    return _sample(rng, component)


def _kind(rng: random.Random, mix: FailureMix) -> FaultKind:
    weights = [getattr(mix, k) for k in _KINDS]
    (kind,) = rng.choices(_KINDS, weights=weights)
    return kind


class FaultInjector:
    """Decides and applies faults from an :class:`~reliability_lab.scenario.Faults` model.

    Args:
        faults: the fault model; its phases are timed from :meth:`start` (by default, from the
            injector's creation) on ``clock``.
        clock: where time is read and waits happen (a ManualClock never sleeps); the steady
            clock if None.
        seed: seeds every draw; the same seed, clock readings and call order give the same
            faults.

    Thread-safe: draws are made under a lock, waits and the real calls outside it.
    """

    def __init__(self, faults: Faults, *, clock: Clock | None = None, seed: int = 0) -> None:
        if not isinstance(faults, Faults):
            raise TypeError(f"faults must be a Faults, got {type(faults).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.faults = faults
        self.clock: Clock = clock if clock is not None else default_clock()
        self.seed = seed
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._t0 = self.clock.now()
        self.stats = InjectionStats(faults={})

    def start(self) -> FaultInjector:
        """Restarts the phase timeline at the clock's current time."""
        with self._lock:
            self._t0 = self.clock.now()
        return self

    @property
    def elapsed(self) -> float:
        """Seconds since :meth:`start` on the injector's clock."""
        return self.clock.now() - self._t0

    # -- deciding ----------------------------------------------------------------------------

    def decide(self) -> Decision:
        """Draws the fate of one call made now (counted in :attr:`stats`)."""
        f = self.faults
        with self._lock:
            at = self.clock.now() - self._t0
            phase = next((p for p in f.phases if p.start <= at < p.end), None)
            rate = f.failure_rate
            mix, latency, mult = f.mix, f.latency, 1.0
            if phase is not None:
                rate = rate if phase.failure_rate is None else phase.failure_rate
                mix = mix if phase.mix is None else phase.mix
                latency = latency if phase.latency is None else phase.latency
                mult = phase.latency_multiplier
            name = None if phase is None else phase.name
            self.stats.calls += 1
            if self._rng.random() < rate:
                kind = _kind(self._rng, mix)
                assert self.stats.faults is not None
                self.stats.faults[kind] = self.stats.faults.get(kind, 0) + 1
                if kind == "timeout":
                    return Decision(at, name, kind, f.hang)
                delay = _sample(self._rng, latency) * mult
                hint = mix.retry_after if kind == "http429" else None
                return Decision(at, name, kind, delay, retry_after=hint)
            delay = _sample(self._rng, latency) * mult
            ambiguous = f.ambiguous_rate > 0 and self._rng.random() < f.ambiguous_rate
            if ambiguous:
                self.stats.ambiguous += 1
            else:
                self.stats.passed += 1
            return Decision(at, name, None, delay, ambiguous=ambiguous)

    def _wait(self, seconds: float, limit: float | None) -> bool:
        """Waits ``seconds`` (capped at ``limit``); True if the cap cut it short."""
        cut = limit is not None and limit < seconds
        wait = min(seconds, limit) if limit is not None else seconds
        if wait > 0:
            self.clock.sleep(wait)
        return cut

    # -- Python callables --------------------------------------------------------------------

    def call(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Calls ``fn(*args, **kwargs)`` through the fault model (see the module docs)."""
        return self._call(None, fn, *args, **kwargs)

    def call_within(
        self, timeout: float, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Like :meth:`call`, for a caller that gives up after ``timeout`` seconds: a hang or a
        slow call ends then with :class:`InjectedTimeout` (the real call is not made)."""
        if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout >= 0):
            raise ValueError(f"timeout must be a finite number >= 0, got {timeout!r}")
        return self._call(float(timeout), fn, *args, **kwargs)

    def _call(self, timeout: float | None, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        d = self.decide()
        cut = self._wait(d.delay, timeout)
        if d.fault == "timeout" or cut:
            what = "hang" if d.fault == "timeout" else "slow call"
            waited = timeout if cut and timeout is not None else d.delay
            raise InjectedTimeout(f"injected {what} at t={d.at:g} s, gave up after {waited:g} s")
        if d.fault == "connection_reset":
            raise InjectedConnectionReset(f"injected connection reset at t={d.at:g} s")
        if d.fault is not None:
            raise InjectedHTTPError(_STATUS[d.fault], d.retry_after)
        result = fn(*args, **kwargs)
        if d.ambiguous:
            raise InjectedTimeout(
                f"injected lost answer at t={d.at:g} s (the call took effect)", ambiguous=True
            )
        return result

    def wrap(self, fn: Callable[P, R]) -> Callable[P, R]:
        """``fn`` with every call going through :meth:`call` (usable as a decorator)."""

        @functools.wraps(fn)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            return self._call(None, fn, *args, **kwargs)

        return wrapped

    __call__ = wrap

    # -- HTTP clients ------------------------------------------------------------------------

    def httpx_transport(self, inner: httpx.BaseTransport | None = None) -> httpx.BaseTransport:
        """An ``httpx`` transport that injects faults in front of ``inner`` (default: a transport
        answering every request ``200 {"ok": true}``, for code that only needs an answer)."""
        from reliability_lab.testing._http import make_httpx_transport

        return make_httpx_transport(self, inner)

    def httpx_async_transport(
        self, inner: httpx.AsyncBaseTransport | None = None
    ) -> httpx.AsyncBaseTransport:
        """The same for ``httpx.AsyncClient``: waits on a ManualClock advance it at once, on
        any other clock they are ``asyncio.sleep`` (the event loop is never blocked)."""
        from reliability_lab.testing._http import make_httpx_async_transport

        return make_httpx_async_transport(self, inner)

    def requests_adapter(self, inner: Any = None) -> requests.adapters.BaseAdapter:
        """A ``requests`` adapter (``session.mount(prefix, adapter)``) that injects faults in
        front of ``inner`` (another adapter; default: one answering every request 200)."""
        from reliability_lab.testing._http import make_requests_adapter

        return make_requests_adapter(self, inner)


def inject(
    faults: Faults, *, clock: Clock | None = None, seed: int = 0
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A decorator: ``@inject(rl.Faults(failure_rate=0.3), clock=clock, seed=1)`` makes every
    call of the function go through a new :class:`FaultInjector`."""
    injector = FaultInjector(faults, clock=clock, seed=seed)
    return injector.wrap


__all__ = [
    "Decision",
    "FaultInjector",
    "FaultKind",
    "InjectedConnectionReset",
    "InjectedFault",
    "InjectedHTTPError",
    "InjectedTimeout",
    "InjectionStats",
    "inject",
]
