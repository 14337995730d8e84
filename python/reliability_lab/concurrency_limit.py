"""Adaptive concurrency limits: admit a call while fewer than ``limit`` are in flight, and move
``limit`` with the latency and drops the calls see.

::

    limiter = ConcurrencyLimiter(Gradient2(), name="payment")
    limiter.call(charge, order)          # raises LimitExceeded when at the limit
    with limiter.acquire() as permit:    # ... or around a block (success unless it raises)
        ...

Four algorithms, each from its published implementation:

- :class:`Aimd` (Netflix concurrency-limits ``AIMDLimit``): +1 while the limit is in use, times
  ``backoff_ratio`` on a drop or an RTT above ``timeout``. Loss based.
- :class:`Vegas` (Netflix ``VegasLimit``, after TCP Vegas): estimates the queue as
  ``limit * (1 - rtt_noload / rtt)`` and keeps it between alpha and beta.
- :class:`Gradient2` (Netflix ``Gradient2Limit``): ``limit * clamp(tolerance * long_rtt / rtt,
  0.5, 1) + queue_size``, smoothed, where ``long_rtt`` is an exponential average of the RTT.
- :class:`EnvoyGradient` (Envoy's adaptive-concurrency filter): periodic min-RTT measurement
  windows at ``min_concurrency``; every ``sample_interval``, ``gradient = clamp(min_rtt * (1 +
  buffer) / sample_rtt, 0.5, 2)`` and ``limit = gradient * limit + sqrt(gradient * limit)``.

How a guarded call ends decides the sample: a return is a success (its RTT is sampled); an
exception for which ``is_drop`` is true (by default :func:`~reliability_lab.throttle.is_overload`:
timeouts, connection errors, 429/502/503/504, local rejections further down) is a drop; the
caller giving up (``errors.CANCELLED_TYPES``) is ignored (no sample); any other exception means
the dependency answered, so its RTT is sampled as a success.

The state machine is native (``_core.ConcurrencyLimiter``, thread-safe, called without the GIL);
time comes from the limiter's clock and random draws (Vegas's probe jitter, Envoy's window
jitter) from a seeded stream. Listeners receive a :class:`LimitChange` each time the limit
moves, on the thread whose call moved it, with no lock held.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, ParamSpec, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reliability_lab import _checks, _core, _schema
from reliability_lab.clock import Clock, default_clock
from reliability_lab.errors import CANCELLED_TYPES, Rejected
from reliability_lab.metrics import PREFIX
from reliability_lab.throttle import is_overload

P = ParamSpec("P")
R = TypeVar("R")

_log = logging.getLogger(__name__)


class LimitExceeded(Rejected):
    """A concurrency limiter refused a call: ``limit`` calls were already in flight."""

    def __init__(self, name: str, limit: int) -> None:
        super().__init__(name, limit)

    @property
    def name(self) -> str:
        """The limiter's name."""
        return str(self.args[0])

    @property
    def limit(self) -> int:
        """The limit at the time of the refusal."""
        return int(self.args[1])

    def __str__(self) -> str:
        return f"concurrency limiter {self.name!r} is at its limit ({self.limit} in flight)"


@dataclass(frozen=True)
class SampleWindow(_schema.Checked):
    """Netflix ``WindowedLimit``: aggregate samples (average RTT, max in flight, any drop) and
    update the limit once per window of ``clamp(2 * min RTT, min_time, max_time)`` with more than
    ``size`` samples. Without it the Netflix algorithms update on every sample, and the many
    samples of one RTT all react to the same queue (Vegas overshoots by several times the knee).

    Attributes:
        min_time, max_time: bounds of a window, seconds in (0, 1e6], min_time <= max_time.
        size: a window needs more than ``size`` samples, in [1, 1e6].
        min_rtt_threshold: shorter RTTs are ignored, seconds in [0, 1e6].
    """

    min_time: float = 1.0
    max_time: float = 1.0
    size: int = 10
    min_rtt_threshold: float = 0.0001


class _Algorithm(_schema.Checked):
    """Common behaviour of the algorithm configurations: checked by their field tables
    (``cpp/rlab/policy/concurrency_limit.cc``), which the native limiter reads them by."""

    algorithm: ClassVar[str]

    def _native(self) -> _core.ConcurrencyLimiter:
        return _core.ConcurrencyLimiter(self.algorithm, _schema.values(self))


@dataclass(frozen=True)
class Aimd(_Algorithm):
    """Netflix ``AIMDLimit``: additive increase, multiplicative decrease on loss.

    Attributes:
        initial_limit: in [min_limit, max_limit].
        min_limit, max_limit: bounds of the limit, in [1, 1e6].
        backoff_ratio: the factor applied on a drop, in [0.5, 1).
        timeout: an RTT above it (seconds, in (0, 1e6]) counts as a drop.
        window: a :class:`SampleWindow` to update once per window; None (Netflix's
            default) updates on every sample.
    """

    algorithm: ClassVar[str] = "aimd"
    initial_limit: int = 20
    min_limit: int = 20
    max_limit: int = 200
    backoff_ratio: float = 0.9
    timeout: float = 5.0
    window: SampleWindow | None = None


@dataclass(frozen=True)
class Vegas(_Algorithm):
    """Netflix ``VegasLimit``. With ``L = max(1, floor(log10(limit)))`` and ``queue =
    ceil(limit * (1 - rtt_noload / rtt))``: grow by ``beta_factor * L`` while queue <=
    ``threshold_factor * L``, by L while queue < ``alpha_factor * L``; shrink by L when queue >
    ``beta_factor * L`` or on a drop.

    Attributes:
        initial_limit: in [1, max_limit].
        max_limit: in [1, 1e6].
        smoothing: in (0, 1]; 1 takes each new estimate at once.
        alpha_factor, beta_factor, threshold_factor: integers in [0, 1000], alpha <= beta.
        probe_multiplier: in [1, 1e6]; the no-load RTT is re-probed every ``jitter *
            probe_multiplier * limit`` samples, the jitter uniform from 0.5 to 1.
        window: a :class:`SampleWindow` to update once per window; None (Netflix's
            default) updates on every sample.
    """

    algorithm: ClassVar[str] = "vegas"
    initial_limit: int = 20
    max_limit: int = 1000
    smoothing: float = 1.0
    alpha_factor: int = 3
    beta_factor: int = 6
    threshold_factor: int = 1
    probe_multiplier: int = 30
    window: SampleWindow | None = None


@dataclass(frozen=True)
class Gradient2(_Algorithm):
    """Netflix ``Gradient2Limit``: ``new = limit * clamp(rtt_tolerance * long_rtt / rtt, 0.5, 1)
    + queue_size``, then ``limit = (1 - smoothing) * limit + smoothing * new``.

    Attributes:
        initial_limit: in [min_limit, max_limit].
        min_limit, max_limit: bounds of the limit, in [1, 1e6].
        smoothing: in (0, 1].
        queue_size: the growth allowance per sample, in [0, 1e6].
        long_window: samples of the long RTT's exponential average, in [1, 1e6].
        rtt_tolerance: how much above the long RTT the RTT may rise before the limit shrinks,
            in [1, 100].
        window: a :class:`SampleWindow` to update once per window; None (Netflix's
            default) updates on every sample.
    """

    algorithm: ClassVar[str] = "gradient2"
    initial_limit: int = 20
    min_limit: int = 20
    max_limit: int = 200
    smoothing: float = 0.2
    queue_size: int = 4
    long_window: int = 600
    rtt_tolerance: float = 1.5
    window: SampleWindow | None = None


@dataclass(frozen=True)
class EnvoyGradient(_Algorithm):
    """Envoy's adaptive-concurrency gradient controller.

    Attributes:
        sample_interval: seconds between limit updates (``concurrency_update_interval``).
        min_rtt_interval: seconds between min-RTT measurements (``min_rtt_calc_params.interval``).
        jitter: fraction of ``min_rtt_interval`` added at random, in [0, 1].
        request_count: samples per min-RTT measurement, in [1, 1e6].
        min_concurrency: the limit during a measurement and the floor, in [1, max_limit].
        buffer: tolerated latency above min RTT, as a fraction, in [0, 10].
        max_limit: in [1, 1e6].
        percentile: the quantile of a window's RTTs used as its RTT, in (0, 1].
        max_samples: samples kept per window (reservoir-sampled beyond), in [1, 1e6].
    """

    algorithm: ClassVar[str] = "envoy"
    sample_interval: float = 0.1
    min_rtt_interval: float = 60.0
    jitter: float = 0.15
    request_count: int = 50
    min_concurrency: int = 3
    buffer: float = 0.25
    max_limit: int = 1000
    percentile: float = 0.5
    max_samples: int = 1024


LimitAlgorithm = Aimd | Vegas | Gradient2 | EnvoyGradient


@dataclass(frozen=True)
class LimitChange:
    """One move of the limit, as delivered to listeners."""

    name: str
    old: int
    new: int
    at: float
    """The limiter's clock reading when the change was seen."""


@dataclass(frozen=True)
class LimiterSnapshot:
    """Gauges and lifetime counters; ``acquired == succeeded + dropped + ignored + inflight``."""

    limit: int
    estimate: float
    inflight: int
    acquired: int
    rejected: int
    succeeded: int
    dropped: int
    ignored: int


class LimitPermit:
    """One admitted call. End it exactly once with :meth:`success`, :meth:`dropped` or
    :meth:`ignore` (later calls do nothing); as a context manager it ends as a guarded call
    does."""

    __slots__ = ("_done", "_limiter", "_lock", "_token")

    def __init__(self, limiter: ConcurrencyLimiter, token: _core.LimitToken) -> None:
        self._limiter = limiter
        self._token = token
        self._done = False
        self._lock = threading.Lock()

    def _claim(self) -> bool:
        with self._lock:
            if self._done:
                return False
            self._done = True
            return True

    @property
    def done(self) -> bool:
        """Whether the permit has been handed back."""
        return self._done

    def success(self) -> None:
        """The call got an answer: release and sample its RTT."""
        if self._claim():
            self._limiter._release(self._token, "success")

    def dropped(self) -> None:
        """The call was dropped (timeout, overload refusal): release and sample a drop."""
        if self._claim():
            self._limiter._release(self._token, "dropped")

    def ignore(self) -> None:
        """The call says nothing about the dependency: release only."""
        if self._claim():
            self._limiter._release(self._token, "ignore")

    def end_with(self, exc: BaseException | None) -> None:
        """Ends the permit as a guarded call ending with ``exc`` (None: a return) would."""
        if exc is None:
            self.success()
        elif isinstance(exc, CANCELLED_TYPES):
            self.ignore()
        elif self._limiter._is_drop(exc):
            self.dropped()
        else:
            self.success()

    def __enter__(self) -> LimitPermit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end_with(exc)


class ConcurrencyLimiter:
    """An adaptive concurrency limit around Python callables (thread-safe).

    Args:
        algorithm: :class:`Aimd`, :class:`Vegas`, :class:`Gradient2` (default) or
            :class:`EnvoyGradient`.
        clock: the time source; a :class:`~reliability_lab.clock.ManualClock` makes tests exact.
        seed: seeds the random draws (an integer in [0, 2**64)); None draws a fresh seed.
        name: used in errors, events and metrics.
        is_drop: classifies an exception of a guarded call; True samples it as a drop.
        listeners: callables taking a :class:`LimitChange`.
    """

    def __init__(
        self,
        algorithm: LimitAlgorithm | None = None,
        clock: Clock | None = None,
        seed: int | None = None,
        name: str = "limiter",
        *,
        is_drop: Callable[[BaseException], bool] = is_overload,
        listeners: Iterable[Callable[[LimitChange], object]] = (),
    ) -> None:
        if algorithm is None:
            algorithm = Gradient2()
        if not isinstance(algorithm, (Aimd, Vegas, Gradient2, EnvoyGradient)):
            raise TypeError(
                "algorithm must be Aimd, Vegas, Gradient2 or EnvoyGradient, got "
                f"{algorithm!r}"
            )
        self._algorithm = algorithm
        self._native = algorithm._native()
        self._clock = clock if clock is not None else default_clock()
        seed = _checks.seed("seed", seed)
        self._seed = seed
        self._rng = _core.RandomStream(seed)
        self._rng_lock = threading.Lock()
        self._name = str(name)
        self._is_drop = is_drop
        self._listeners: list[Callable[[LimitChange], object]] = list(listeners)
        self._event_lock = threading.Lock()
        self._last_limit = self._native.limit(self._clock.now())

    @property
    def algorithm(self) -> LimitAlgorithm:
        """The algorithm's configuration."""
        return self._algorithm

    @property
    def native(self) -> _core.ConcurrencyLimiter:
        """The native limiter."""
        return self._native

    @property
    def name(self) -> str:
        """The limiter's name."""
        return self._name

    @property
    def seed(self) -> int:
        """The seed of the limiter's random draws."""
        return self._seed

    def add_listener(self, listener: Callable[[LimitChange], object]) -> None:
        """Adds a listener for later limit changes."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[LimitChange], object]) -> None:
        """Removes a listener added earlier."""
        self._listeners.remove(listener)

    def try_acquire(self) -> LimitPermit | None:
        """A permit while fewer than ``limit`` calls are in flight, else None."""
        token = self._native.try_acquire(self._clock.now())
        self._notify()  # Envoy's windows move the limit on time alone
        return None if token is None else LimitPermit(self, token)

    def acquire(self) -> LimitPermit:
        """A permit, or :class:`LimitExceeded` at once (never waits)."""
        now = self._clock.now()
        token = self._native.try_acquire(now)
        self._notify()
        if token is None:
            raise LimitExceeded(self._name, self._native.limit(now))
        return LimitPermit(self, token)

    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Runs ``fn(*args, **kwargs)`` under a permit; raises LimitExceeded when at the limit."""
        permit = self.acquire()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            permit.end_with(exc)
            raise
        permit.success()
        return result

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorates ``fn`` so that every call goes through the limiter."""

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            return self.call(fn, *args, **kwargs)

        return guarded

    def _draw(self) -> float:
        with self._rng_lock:
            return self._rng.uniform01()

    def _release(self, token: _core.LimitToken, how: str) -> None:
        if how == "ignore":
            self._native.on_ignore(token)
            return
        now = self._clock.now()
        if how == "success":
            self._native.on_success(token, now, self._draw())
        else:
            self._native.on_dropped(token, now, self._draw())
        self._notify()

    def _notify(self) -> None:
        with self._event_lock:
            now = self._clock.now()
            new = self._native.limit(now)
            old = self._last_limit
            if new == old:
                return
            self._last_limit = new
        change = LimitChange(self._name, old, new, now)
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                # One failing listener must not hide the change from the others.
                _log.exception("concurrency limiter %r listener failed on %s", self._name, change)

    def snapshot(self) -> LimiterSnapshot:
        """Gauges and counters now."""
        s = self._native.snapshot(self._clock.now())
        return LimiterSnapshot(
            s.limit, s.estimate, s.inflight, s.acquired, s.rejected, s.succeeded, s.dropped,
            s.ignored,
        )

    @property
    def limit(self) -> int:
        """The concurrency limit now."""
        return self._native.limit(self._clock.now())

    @property
    def inflight(self) -> int:
        """Calls in flight now."""
        return self.snapshot().inflight

    def metrics(self) -> list[Metric]:
        """Prometheus families: the limit and in-flight gauges and the outcome counters, labelled
        ``limiter=<name>``."""
        s = self.snapshot()
        limit = GaugeMetricFamily(
            f"{PREFIX}_concurrency_limit", "The adaptive concurrency limit.", labels=["limiter"]
        )
        limit.add_metric([self._name], float(s.limit))
        inflight = GaugeMetricFamily(
            f"{PREFIX}_concurrency_limit_inflight", "Calls in flight.", labels=["limiter"]
        )
        inflight.add_metric([self._name], float(s.inflight))
        calls = CounterMetricFamily(
            f"{PREFIX}_concurrency_limit_calls",
            "Calls by result: rejected at admission, or how an admitted call ended.",
            labels=["limiter", "result"],
        )
        for result, n in (
            ("rejected", s.rejected),
            ("succeeded", s.succeeded),
            ("dropped", s.dropped),
            ("ignored", s.ignored),
        ):
            calls.add_metric([self._name, result], float(n))
        return [limit, inflight, calls]

    def collector(self) -> Collector:
        """A prometheus_client collector reading this limiter at each scrape."""
        limiter = self

        class _LimiterCollector(Collector):
            def collect(self) -> Iterator[Metric]:
                return iter(limiter.metrics())

        return _LimiterCollector()

    def __repr__(self) -> str:
        s = self.snapshot()
        return (
            f"ConcurrencyLimiter(name={self._name!r}, algorithm={self._algorithm.algorithm!r},"
            f" limit={s.limit}, inflight={s.inflight})"
        )


__all__ = [
    "Aimd",
    "ConcurrencyLimiter",
    "EnvoyGradient",
    "Gradient2",
    "LimitAlgorithm",
    "LimitChange",
    "LimitExceeded",
    "LimitPermit",
    "LimiterSnapshot",
    "SampleWindow",
    "Vegas",
]
