"""Hedged requests guarding any Python callable ("The Tail at Scale", Dean and Barroso 2013).

``Hedging`` runs the first copy of a call at once and another copy each time ``delay`` (or the
``quantile`` of recent latencies) passes without an answer, up to ``max_hedges`` extra copies;
the first copy to succeed wins::

    hedging = Hedging(max_hedges=1, quantile=0.95, budget_ratio=0.05)
    value = hedging.call(fetch, key)          # copies of fetch(key)
    value = hedging.call_with(lambda ctx: fetch(key, cancel=ctx.cancel))
    @hedging                                   # ... or as a decorator
    def fetch(key): ...

When to hedge (a fixed delay, or the nearest-rank quantile of the last ``window`` successful
latencies) and the hedge budget (a token bucket: every call adds ``budget_ratio`` tokens, every
hedge takes one) are the native ``Hedger`` the engines use (``cpp/rlab/policy/hedge.h``); this
module owns the copies, the executor and the clock. The rules are those of a scenario's
:class:`~reliability_lab.Hedge` round:

- **Idempotency.** Every copy really runs ``fn``: the callable must be idempotent (or carry an
  idempotency key), since several copies may complete their side effects.
- **First success wins.** The call returns the first successful copy's result. It fails only
  when every copy sent so far has failed, raising the exception of the copy that finished last
  on the clock (the latest sent among equals). It is a single exception, not an ExceptionGroup,
  so that an outer :class:`~reliability_lab.Retry` or :class:`~reliability_lab.CircuitBreaker`
  classifies it as it would a plain call's. A failure
  does not send a hedge early: hedging cuts latency; compose with a retry policy for errors.
- **Cancellation.** Once the call is decided, each copy still outstanding is *cancelled*: its
  :class:`HedgeContext` ``cancel`` event is set and its future is cancelled. A copy that has not
  started yet then never runs; a copy already running cannot be interrupted (Python has no safe
  way to stop a thread): it runs on until it returns or notices ``ctx.cancel``, and its result or
  exception is discarded. Its thread stays busy meanwhile, so a slow dependency can fill the
  executor with abandoned copies; :meth:`call_with` lets the callable poll ``ctx.cancel`` (or
  pass it on as a timeout / abort signal) to stop early.
- **Budget.** A hedge the budget refuses is not sent, and no further hedge is tried for that call
  (``hedges_denied``). A hedge the executor refuses (e.g. shut down) likewise ends hedging for
  the call; the copies already sent go on.
- **Bounded waits.** The caller waits until the next hedge is due, a copy finishes, or
  ``timeout`` passes (then every copy is cancelled and
  :class:`~reliability_lab.errors.DeadlineExceeded` is raised). Without ``timeout`` the call
  lasts as long as its slowest needed copy.

Time comes from ``clock``: with the steady clock the caller blocks on the copies' futures; with a
:class:`~reliability_lab.ManualClock` waiting for a hedge means ``clock.sleep(delay)`` (which
advances it), so tests can script hedges with a fake executor and no real waiting.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import inspect
import itertools
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reliability_lab import _checks, _core, _schema
from reliability_lab.clock import Clock, default_clock
from reliability_lab.errors import DeadlineExceeded
from reliability_lab.metrics import PREFIX
from reliability_lab.retry import _count_value
from reliability_lab.scenario.hedge import Hedge

P = ParamSpec("P")
R = TypeVar("R")

_COUNTERS = ("calls", "succeeded", "failed", "hedges", "hedges_won", "hedges_denied", "cancelled")


class Executor(Protocol):
    """What ``executor`` accepts: :class:`concurrent.futures.Executor` or anything with its
    ``submit``."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        """Schedules ``fn(*args, **kwargs)``; returns its future."""


@dataclass(frozen=True)
class HedgeContext:
    """What one copy is told, by :meth:`Hedging.call_with`.

    Attributes:
        copy: 0 for the first copy, 1.. for the hedges.
        cancel: set once the call no longer needs this copy (another won, every copy failed, or
            the call's timeout passed). Poll it, or pass it on, to stop early.
        clock: the policy's clock.
    """

    copy: int
    cancel: threading.Event
    clock: Clock


@dataclass(frozen=True)
class HedgingStats:
    """Counters of one :class:`Hedging` since it was made."""

    calls: int
    """Calls started."""
    succeeded: int
    failed: int
    """Calls that raised: every copy failed, or the timeout passed."""
    hedges: int
    """Extra copies sent."""
    hedges_won: int
    """Calls won by a hedge (not the first copy)."""
    hedges_denied: int
    """Hedges due but refused by the budget."""
    cancelled: int
    """Copies still outstanding when their call was decided (cancelled or abandoned)."""
    budget_tokens: float
    """Hedge budget tokens left now."""


class _Copy:
    __slots__ = ("end_ns", "event", "future", "index", "start_ns")

    def __init__(self, index: int, start_ns: int) -> None:
        self.index = index
        self.start_ns = start_ns
        self.end_ns = start_ns
        self.event = threading.Event()
        self.future: cf.Future[Any] | None = None


class Hedging:
    """Hedged calls of any callable: first success wins, losers cancelled, extra copies capped by
    a budget. Thread-safe: one policy (its latency window and budget) serves every call through
    it, as one client of one dependency.

    Args:
        max_hedges: extra copies per call, in [1, 31].
        delay: seconds without an answer before the next copy, in (0, 1e6]; with a quantile, the
            delay used until the latency window is full.
        quantile: None for the fixed ``delay``; in (0, 1) to hedge after this quantile of the
            latencies of the last ``window`` successful copies (copies cancelled after at least
            the delay count with their elapsed time, as in the engines).
        window: latencies kept for the quantile, in [1, 100000].
        budget_ratio: hedge budget tokens added per call, in [0, 31]; None: no budget.
        budget_burst: the budget's size (it starts full), in [1, 1e9].
        timeout: seconds a call may last before every copy is cancelled and
            :class:`~reliability_lab.errors.DeadlineExceeded` is raised, in (0, 1e6]; None: no
            limit.
        executor: runs the copies (``submit``); None: a thread pool of the policy's own with
            ``max_workers`` threads, shut down by :meth:`close` (or when the policy is garbage
            collected). An executor passed in is never shut down by the policy.
        max_workers: the own pool's size, in [1, 10000]; None: 8 x (max_hedges + 1).
        clock: where time is read and waited for; the steady clock if None.
        name: used in metric labels and thread names.

    Raises:
        ValueError: an invalid parameter, named ``hedging.<field>`` with its allowed range.
    """

    def __init__(
        self,
        max_hedges: int = 1,
        delay: float = 0.05,
        quantile: float | None = None,
        window: int = 100,
        budget_ratio: float | None = 0.05,
        budget_burst: float = 10.0,
        *,
        timeout: float | None = None,
        executor: Executor | None = None,
        max_workers: int | None = None,
        clock: Clock | None = None,
        name: str = "hedging",
    ) -> None:
        with _checks.at("hedging"):
            self.config = Hedge(max_hedges, delay, quantile, window, budget_ratio, budget_burst)
            self.timeout = None if timeout is None else _checks.in_range(
                "timeout", timeout, 0, _checks.MAX_S, seconds=True, lo_open=True
            )
            workers = 8 * (self.config.max_hedges + 1) if max_workers is None else max_workers
            self.max_workers = _checks.in_range("max_workers", workers, 1, 10_000)
        if not isinstance(name, str):
            raise TypeError(f"hedging.name must be a str, got {name!r}")
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise TypeError(f"hedging.executor must have submit(), got {executor!r}")
        self._native = _core.Hedger(_schema.values(self.config))  # the Hedge field table
        self.name = name
        self._clock = clock if clock is not None else default_clock()
        self._steady = isinstance(self._clock, _core.SteadyClock)
        self._executor = executor
        self._own: cf.ThreadPoolExecutor | None = None
        self._own_lock = threading.Lock()
        self._counters = {k: itertools.count() for k in _COUNTERS}

    @classmethod
    def from_config(cls, config: Hedge, **kwargs: Any) -> Hedging:
        """A policy with a scenario :class:`~reliability_lab.Hedge`'s settings."""
        return cls(
            config.max_hedges, config.delay, config.quantile, config.window,
            config.budget_ratio, config.budget_burst, **kwargs,
        )

    # -- calling ---------------------------------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Runs copies of ``fn(*args, **kwargs)``; returns the first successful result."""
        return self._run(lambda _ctx: fn(*args, **kwargs))

    def call_with(self, fn: Callable[[HedgeContext], R], /) -> R:
        """Runs copies of ``fn(context)``, each told its copy number and its cancel event."""
        return self._run(fn)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorates ``fn`` so that every call is hedged."""
        if inspect.iscoroutinefunction(fn):
            raise TypeError("Hedging wraps synchronous callables, not coroutine functions")

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return self.call(fn, *args, **kwargs)

        wrapper.__dict__["hedging"] = self
        return wrapper

    @property
    def delay(self) -> float:
        """Seconds from a copy's start before the next copy is sent, now."""
        return self._native.delay_ns() / 1e9

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self, wait: bool = True) -> None:
        """Shuts the policy's own thread pool down (copies not started are dropped; with
        ``wait``, waits for the running ones, i.e. as long as the slowest abandoned copy). An
        executor passed in is left alone. Calls after close use a new pool."""
        with self._own_lock:
            pool, self._own = self._own, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)

    def __enter__(self) -> Hedging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _pool(self) -> Executor:
        if self._executor is not None:
            return self._executor
        with self._own_lock:
            if self._own is None:
                pool = cf.ThreadPoolExecutor(self.max_workers, thread_name_prefix=self.name)
                # An unclosed policy that is collected releases its idle threads.
                weakref.finalize(self, pool.shutdown, wait=False, cancel_futures=True)
                self._own = pool
            return self._own

    # -- statistics ------------------------------------------------------------------------------

    def stats(self) -> HedgingStats:
        """The counters so far and the budget now."""
        c = {k: _count_value(v) for k, v in self._counters.items()}
        return HedgingStats(**c, budget_tokens=self._native.tokens)

    def metrics(self) -> list[Metric]:
        """Prometheus families labelled ``policy=<name>``."""
        s = self.stats()
        out: list[Metric] = []
        for key, help_text in (
            ("calls", "Hedged calls started."),
            ("hedges", "Hedges (extra copies) sent."),
            ("hedges_won", "Calls won by a hedge."),
            ("hedges_denied", "Hedges refused by the hedge budget."),
            ("cancelled", "Copies cancelled or abandoned once their call was decided."),
        ):
            family = CounterMetricFamily(
                f"{PREFIX}_hedging_{key}", help_text, labels=["policy"]
            )
            family.add_metric([self.name], float(getattr(s, key)))
            out.append(family)
        tokens = GaugeMetricFamily(
            f"{PREFIX}_hedging_budget_tokens", "Hedge budget tokens left.", labels=["policy"]
        )
        tokens.add_metric([self.name], s.budget_tokens)
        out.append(tokens)
        return out

    def collector(self) -> Collector:
        """A prometheus_client collector reading this policy at each scrape."""
        policy = self

        class _HedgingCollector(Collector):
            def collect(self) -> Iterator[Metric]:
                return iter(policy.metrics())

        return _HedgingCollector()

    # -- the round -------------------------------------------------------------------------------

    def _launch(self, copies: list[_Copy], fn: Callable[[HedgeContext], Any]) -> None:
        copy = _Copy(len(copies), self._clock.now_ns())
        clock = self._clock

        def run() -> Any:
            try:
                return fn(HedgeContext(copy.index, copy.event, clock))
            finally:
                copy.end_ns = clock.now_ns()

        copy.future = self._pool().submit(run)
        copies.append(copy)

    def _wait(self, pending: list[cf.Future[Any]], timeout_ns: int | None) -> None:
        """Returns once a pending copy is done or ``timeout_ns`` has passed on the clock."""
        if self._steady:
            cf.wait(pending, None if timeout_ns is None else timeout_ns / 1e9,
                    cf.FIRST_COMPLETED)
        elif any(f.done() for f in pending):
            return
        elif timeout_ns is None:
            cf.wait(pending, None, cf.FIRST_COMPLETED)
        else:
            self._clock.sleep(timeout_ns / 1e9)

    def _cancel(self, outstanding: list[_Copy], now_ns: int) -> None:
        delay_ns = self._native.delay_ns()
        for copy in outstanding:
            copy.event.set()
            assert copy.future is not None
            copy.future.cancel()
            next(self._counters["cancelled"])
            # As the engines do (order_flow.cc CancelCopies): a copy cut short after at least the
            # delay is known to be slower than it; leaving it out would bias the quantile low.
            elapsed = now_ns - copy.start_ns
            if elapsed >= delay_ns:
                self._native.record_latency(elapsed)
        outstanding.clear()

    def _run(self, fn: Callable[[HedgeContext], R]) -> R:
        native, clock, n = self._native, self._clock, self._counters
        next(n["calls"])
        native.on_call()
        start = clock.now_ns()
        deadline = None if self.timeout is None else start + round(self.timeout * 1e9)
        copies: list[_Copy] = []
        try:
            self._launch(copies, fn)
        except BaseException:
            next(n["failed"])
            raise
        next_hedge: int | None = start + native.delay_ns()
        outstanding = list(copies)
        last_error: BaseException | None = None
        last_end = 0
        try:
            while True:
                for copy in [c for c in outstanding if c.future is not None and c.future.done()]:
                    outstanding.remove(copy)
                    future = copy.future
                    assert future is not None
                    error = (cf.CancelledError() if future.cancelled() else future.exception())
                    if error is not None:
                        # The copy that finished last (the latest sent among equals) names it.
                        if last_error is None or copy.end_ns >= last_end:
                            last_error, last_end = error, copy.end_ns
                        continue
                    native.record_latency(copy.end_ns - copy.start_ns)
                    self._cancel(outstanding, clock.now_ns())
                    next(n["succeeded"])
                    if copy.index > 0:
                        next(n["hedges_won"])
                    result: R = future.result()
                    return result
                if not outstanding:
                    next(n["failed"])
                    assert last_error is not None
                    raise last_error
                now = clock.now_ns()
                if deadline is not None and now >= deadline:
                    self._cancel(outstanding, now)
                    next(n["failed"])
                    raise DeadlineExceeded(
                        f"hedging {self.name!r}: no copy succeeded within {self.timeout:g} s",
                        len(copies),
                    ) from last_error
                if next_hedge is not None and now >= next_hedge:
                    next_hedge = None
                    if not native.try_hedge():
                        next(n["hedges_denied"])
                        continue
                    try:
                        self._launch(copies, fn)
                    except Exception:  # refused locally: no more hedges, the sent copies go on
                        continue
                    next(n["hedges"])
                    outstanding.append(copies[-1])
                    if len(copies) <= self.config.max_hedges:
                        next_hedge = now + native.delay_ns()
                    continue
                wake = min((t for t in (next_hedge, deadline) if t is not None), default=None)
                pending = [c.future for c in outstanding if c.future is not None]
                self._wait(pending, None if wake is None else wake - now)
        except BaseException:
            # Whatever ended the call (every copy failed, the timeout, the caller interrupted
            # while waiting), no copy still outstanding is needed any more.
            self._cancel(outstanding, clock.now_ns())
            raise
