"""Retry for Python callables, driven by the core's retry state machine.

``Retry`` wraps a function: ``Retry(max_attempts=3).call(fn, *args)``, ``@Retry(...)`` or
``@retry(...)``; ``Retry.from_config(RetryConfig(...), clock=...)`` builds one from the same
:class:`RetryConfig` a scenario's ``<dependency>.retry`` takes. A call that succeeds costs one
``try``/``except`` around the function and a counter increment: no native call, no clock read.
After a failure the decision is the native ``RetryLoop``'s (the same state machine the engines
run), so Python and the engines agree on every rule:

* ``max_attempts`` counts attempts, the first call included (3 means at most 2 retries).
* Only retryable outcomes are retried (``retry_on``; by default timeouts, connection errors and
  HTTP 429, 500, 502, 503, 504). Everything else is permanent and re-raised unchanged at once.
* Local rejections (:class:`~reliability_lab.errors.Rejected`: breaker, bulkhead, throttle) and
  cancellation (``KeyboardInterrupt``, ``SystemExit``, ``GeneratorExit``,
  ``asyncio.CancelledError``) are never retried, whatever ``retry_on`` says.
* A ``retry_after`` hint on the exception (seconds) is honoured, capped at ``max_retry_after``.
* With a deadline, no attempt starts at or after it and no sleep is started that would end at or
  after it (:class:`~reliability_lab.errors.DeadlineExceeded`). An attempt already running is not
  interrupted: Python cannot pre-empt the callable.
* A retry budget, if given, sees every call and attempt and may refuse a retry
  (:class:`~reliability_lab.errors.RetryBudgetExhausted`).
* :meth:`Retry.call_with` passes the callable a :class:`RetryContext` (attempt number, deadline,
  time remaining) and accepts a ``cancel`` event: setting it ends a backoff sleep at once with
  :class:`~reliability_lab.errors.Cancelled`, which breakers do not count.

How exceptions are classified into outcomes: by the one native mapping shared with the circuit
breaker (the table is in :mod:`reliability_lab.errors`):

==========================================================  ====================================
``errors.Rejected`` and subclasses                          local rejection: permanent, re-raised
``errors.CANCELLED_TYPES`` (``KeyboardInterrupt``,          ``cancelled``: permanent, re-raised
``asyncio`` / ``concurrent.futures`` ``CancelledError``,
``errors.Cancelled``, ...)
``errors.DeadlineExceeded`` (a nested deadline)             ``deadline_exceeded``: ends "deadline"
``TimeoutError`` (and asyncio / concurrent.futures's)       ``timeout``
``ConnectionError`` (reset, refused, aborted, broken pipe)  ``connection_reset``
an int ``status_code`` or ``status`` in [300, 599] on the   that HTTP status, e.g. ``"503"``
exception or on its ``response``
anything else                                               ``error``
==========================================================  ====================================

``retry_on`` accepts outcome names (``"timeout"``, ``"connection_reset"``, ``"error"``, ``"503"``,
``"5xx"``, ``"4xx"``, ``"default"`` for the default set) and exception classes (an instance of a
listed class is retryable whatever its outcome). Plain exceptions such as ``ValueError`` are *not*
retried by default: a bug does not go away on the second try. Add ``"error"`` or the class.

Sleeps go through ``clock.sleep``: the steady clock sleeps with the GIL released, a
:class:`~reliability_lab.clock.ManualClock` just advances, so tests never wait.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, ParamSpec, Protocol, TypeAlias, TypeVar, overload

from reliability_lab import _checks, _core, _schema
from reliability_lab.backoff import Backoff
from reliability_lab.clock import Clock, default_clock
from reliability_lab.errors import (
    Cancelled,
    DeadlineExceeded,
    RetryBudgetExhausted,
    RetryExhausted,
)

P = ParamSpec("P")
R = TypeVar("R")

RetryOnItem: TypeAlias = "str | type[BaseException]"
"""One entry of ``retry_on``: an outcome name or an exception class."""

RetryOn: TypeAlias = "RetryOnItem | Iterable[RetryOnItem]"
"""What ``retry_on`` accepts: one entry or an iterable of entries."""

DEFAULT_RETRY_ON: tuple[str, ...] = (
    "timeout",
    "connection_reset",
    "429",
    "500",
    "502",
    "503",
    "504",
)
"""The outcomes retried by default: the transient ones."""

END_REASONS: tuple[str, ...] = tuple(_core.retry_end_reasons())
"""How a retried call can end: succeeded, exhausted, permanent, deadline, budget."""

_MAX_DURATION_S = 1e6  # the core's kMaxDurationS
_outcome_of_exception = _core.outcome_of_exception


class CancelToken(Protocol):
    """What ``cancel`` accepts: a :class:`threading.Event` or anything shaped like one."""

    def is_set(self) -> bool:
        """Whether cancellation was requested."""

    def wait(self, timeout: float | None = None) -> bool:
        """Waits up to ``timeout`` seconds for cancellation; True if it was requested."""


@dataclass(frozen=True)
class RetryContext:
    """What one attempt is told, by :meth:`Retry.call_with`.

    Attributes:
        attempt: this attempt's number, 1 for the first call.
        deadline: the call's absolute deadline in seconds on the retry's clock, or None.
        cancel: the call's cancel token, or None (pass it on to work that can be cancelled).
    """

    attempt: int
    deadline: float | None
    cancel: CancelToken | None = None
    clock: Clock = field(default_factory=default_clock, repr=False)

    @property
    def remaining(self) -> float | None:
        """Seconds left before the deadline, read now (0 once it has passed; None without one).

        Use it to bound the attempt itself, e.g. as a socket or HTTP timeout.
        """
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - self.clock.now())

    @property
    def cancelled(self) -> bool:
        """Whether the call's cancel token is set."""
        return self.cancel is not None and self.cancel.is_set()


class RetryBudgetLike(Protocol):
    """What :class:`Retry` needs from a retry budget (``now`` in seconds on the Retry's clock).

    ``reliability_lab.budget.TokenBucket`` and ``RatioBudget`` implement it; so can any object.
    """

    def on_request(self, now: float, /) -> object:
        """A call's first attempt is about to be sent."""

    def try_acquire_retry(self, now: float, /) -> bool:
        """Asks to send one retry now; False refuses it."""

    def on_outcome(self, now: float, success: bool, retryable_failure: bool, /) -> object:
        """An attempt ended: a success, a retryable failure, or neither (permanent)."""


@dataclass(frozen=True)
class RetryStats:
    """How the calls of one :class:`Retry` ended, and how many retries they made.

    The field names are the end reasons (usable as metric labels).
    """

    succeeded: int
    exhausted: int
    permanent: int
    deadline: int
    budget: int
    retries: int
    cancelled: int = 0
    """Calls ended by their cancel token (:meth:`Retry.call_with`)."""

    @property
    def calls(self) -> int:
        """Calls that have ended."""
        return (
            self.succeeded
            + self.exhausted
            + self.permanent
            + self.deadline
            + self.budget
            + self.cancelled
        )


def _count_value(counter: itertools.count[int]) -> int:
    # itertools.count is the cheapest counter whose increment is atomic under the GIL (one C
    # call); its repr is the only stable way to read it without advancing it.
    return int(repr(counter)[len("count(") : -1])


def _retry_after_ns(exc: BaseException) -> int:
    hint = getattr(exc, "retry_after", None)
    if isinstance(hint, bool) or not isinstance(hint, (int, float)):
        return -1
    if not math.isfinite(hint) or hint < 0:
        return -1
    return round(min(float(hint), _MAX_DURATION_S) * 1e9)


def _parse_retry_on(retry_on: RetryOn) -> tuple[list[str], tuple[type[BaseException], ...]]:
    items: Iterable[Any] = (retry_on,) if isinstance(retry_on, (str, type)) else retry_on
    names: list[str] = []
    classes: list[type[BaseException]] = []
    for item in items:
        if isinstance(item, str):
            names.extend(DEFAULT_RETRY_ON if item == "default" else (item,))
        elif isinstance(item, type) and issubclass(item, BaseException):
            classes.append(item)
        else:
            raise TypeError(
                f"retry_on entries must be outcome names or exception classes, got {item!r}"
            )
    return names, tuple(classes)


def _retry_names(retry_on: object) -> tuple[str, ...]:
    """``retry_on`` as a tuple of unique outcome names, ``"default"`` expanded."""
    items: Iterable[object]
    if isinstance(retry_on, str):
        items = (retry_on,)
    elif isinstance(retry_on, Iterable) and not isinstance(retry_on, (bytes, Mapping)):
        items = retry_on
    else:
        raise ValueError(f"retry_on must be an outcome name or a list of them, got {retry_on!r}")
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"retry_on must hold outcome names, got {item!r}")
        for name in DEFAULT_RETRY_ON if item == "default" else (item,):
            if name not in names:
                names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class RetryConfig:
    """The settings of a retry loop: a scenario's ``<dependency>.retry``, and what
    :meth:`Retry.from_config` builds a :class:`Retry` from (validated on construction).

    Attributes:
        max_attempts: attempts per call, the first included, in [1, 1000000].
        backoff: the delays between attempts.
        retry_on: outcome names to retry (``"timeout"``, ``"503"``, ``"5xx"``, ...; ``"default"``
            stands for the default set); stored as a tuple of unique names, ``"default"``
            expanded. Exception classes are for a :class:`Retry` around Python code only.
        max_retry_after: cap in seconds on a Retry-After hint, in [0, 1e6].

    Raises:
        ValueError: an invalid parameter, named with its allowed range.
    """

    max_attempts: int = 3
    backoff: Backoff = Backoff()  # noqa: RUF009 (frozen: immutable)
    retry_on: tuple[str, ...] = DEFAULT_RETRY_ON
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        # "default" expanded and names made unique (Python only); then the table's checks.
        object.__setattr__(self, "retry_on", _retry_names(self.retry_on))
        _schema.check(self)

    def _native(self) -> _core.RetryConfig:
        return _core.RetryConfig(_schema.values(self))


@dataclass(frozen=True, eq=False)
class Retry:
    """Retries a Python callable with backoff, by the core's retry rules.

    Use ``retry.call(fn, *args, **kwargs)``, ``retry.call_within(timeout, fn, ...)``,
    ``retry.call_until(deadline, fn, ...)``, or decorate: ``@Retry(max_attempts=5)``. A callable
    that wants its remaining time, or a call that must be cancellable from another thread, uses
    ``retry.call_with(fn, timeout=..., cancel=event)`` (``fn`` takes a :class:`RetryContext`).
    ``Retry.from_config(config, clock=...)`` builds one from a :class:`RetryConfig` (the settings
    a scenario uses), :meth:`to_config` gives them back. A ``Retry`` is a runtime object (it holds
    a clock, a random stream and counters): a scenario takes a :class:`RetryConfig`.

    Attributes:
        max_attempts: attempts per call, the first included, in [1, 1000000].
        backoff: the delays between attempts.
        retry_on: outcome names and/or exception classes to retry (see the module docs).
        max_retry_after: cap in seconds on an exception's ``retry_after`` hint, in [0, 1e6].
        budget: an optional shared retry budget (:class:`RetryBudgetLike`).
        clock: where time is read and sleeps happen; the steady clock if None.
        seed: seeds the jitter draws (deterministic delays); OS entropy if None.
        timeout: if set, every call gets a deadline this many seconds after it starts.
        on_retry: called as ``on_retry(attempt, exception, delay)`` before each sleep, where
            ``attempt`` is the number of the attempt that just failed (1 = first call). It runs
            with no lock held; an exception it raises ends the call and propagates.

    Raises:
        ValueError: an invalid parameter, named with its allowed range.
    """

    max_attempts: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    retry_on: RetryOn = DEFAULT_RETRY_ON
    max_retry_after: float = 60.0
    budget: RetryBudgetLike | None = None
    clock: Clock | None = None
    seed: int | None = None
    timeout: float | None = None
    on_retry: Callable[[int, BaseException, float], object] | None = None

    # Derived in __post_init__; not parameters.
    _config: _core.RetryConfig = field(init=False, repr=False)
    _classes: tuple[type[BaseException], ...] = field(init=False, repr=False)
    _clock: Clock = field(init=False, repr=False)
    _rng: random.Random = field(init=False, repr=False)
    _plain: bool = field(init=False, repr=False)
    _counters: dict[str, itertools.count[int]] = field(init=False, repr=False)
    _tick_succeeded: Callable[[], int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        names, classes = _parse_retry_on(self.retry_on)
        if self.timeout is not None:
            _checks.in_range("timeout", self.timeout, 0, _checks.MAX_S, seconds=True, lo_open=True)
        if self.seed is not None:
            _checks.in_range("seed", self.seed, 0, 2**64 - 1)
        config = RetryConfig(
            self.max_attempts, self.backoff, tuple(names), self.max_retry_after
        )._native()
        init = functools.partial(object.__setattr__, self)
        init("_config", config)
        init("_classes", classes)
        init("_clock", self.clock if self.clock is not None else default_clock())
        init("_rng", random.Random(self.seed))
        # The fast path needs no loop at all: nothing to tell a budget, no deadline to check.
        init("_plain", self.budget is None and self.timeout is None)
        counters = {
            reason: itertools.count() for reason in (*END_REASONS, "cancelled", "retries")
        }
        init("_counters", counters)
        init("_tick_succeeded", counters["succeeded"].__next__)

    @classmethod
    def from_config(
        cls,
        config: RetryConfig,
        *,
        budget: RetryBudgetLike | None = None,
        clock: Clock | None = None,
        seed: int | None = None,
        timeout: float | None = None,
        on_retry: Callable[[int, BaseException, float], object] | None = None,
    ) -> Retry:
        """A retry with ``config``'s settings (a scenario's ``<dependency>.retry``, say) and the
        runtime-only ones given here (see the class attributes)."""
        if not isinstance(config, RetryConfig):
            raise TypeError(f"config must be a RetryConfig, got {_checks.short_repr(config)}")
        return cls(
            max_attempts=config.max_attempts,
            backoff=config.backoff,
            retry_on=config.retry_on,
            max_retry_after=config.max_retry_after,
            budget=budget,
            clock=clock,
            seed=seed,
            timeout=timeout,
            on_retry=on_retry,
        )

    def to_config(self) -> RetryConfig:
        """This retry's :class:`RetryConfig` (its runtime-only settings left out).

        Raises:
            ValueError: ``retry_on`` holds exception classes, which a config cannot carry.
        """
        return RetryConfig(
            max_attempts=self.max_attempts,
            backoff=self.backoff,
            retry_on=_retry_names(self.retry_on),
            max_retry_after=self.max_retry_after,
        )

    # -- calling ---------------------------------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Calls ``fn(*args, **kwargs)``, retrying per this policy; returns its result."""
        if self._plain:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                error = exc
            else:
                self._tick_succeeded()
                return result
            # Outside the except block, so that later attempts' exceptions do not chain to it.
            return self._run(fn, args, kwargs, None, error)
        return self._run(fn, args, kwargs, self._deadline_ns(None), None)

    def call_within(
        self, timeout: float, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Like :meth:`call`, with a deadline ``timeout`` seconds from now."""
        _checks.in_range("timeout", timeout, 0, _checks.MAX_S, seconds=True)
        deadline_ns = self._now_ns() + round(timeout * 1e9)
        return self._run(fn, args, kwargs, self._deadline_ns(deadline_ns), None)

    def call_until(
        self, deadline: float, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Like :meth:`call`, with an absolute ``deadline`` in seconds on this policy's clock."""
        if not (isinstance(deadline, (int, float)) and math.isfinite(deadline)):
            raise ValueError(f"deadline must be a finite number of seconds, got {deadline!r}")
        return self._run(fn, args, kwargs, self._deadline_ns(round(deadline * 1e9)), None)

    def call_with(
        self,
        fn: Callable[[RetryContext], R],
        /,
        *,
        timeout: float | None = None,
        deadline: float | None = None,
        cancel: CancelToken | None = None,
    ) -> R:
        """Calls ``fn(context)``, retrying per this policy; returns its result.

        Each attempt gets a :class:`RetryContext`: its number, the call's deadline and the time
        remaining (``context.remaining``), and the cancel token. Bind other arguments with a
        lambda or :func:`functools.partial`.

        Args:
            timeout: a deadline this many seconds from now (combined with ``deadline`` and the
                policy's own ``timeout``: the earliest wins).
            deadline: an absolute deadline in seconds on this policy's clock.
            cancel: a token such as :class:`threading.Event`. Once set, no attempt starts and a
                backoff sleep ends at once: the call raises
                :class:`~reliability_lab.errors.Cancelled` (from the last attempt's exception).
                An attempt already running is not interrupted (pass ``context.cancel`` on to it).
                A retry budget may already have granted the retry that the cancellation
                prevents.
        """
        deadline_ns: int | None = None
        if timeout is not None:
            _checks.in_range("timeout", timeout, 0, _checks.MAX_S, seconds=True)
            deadline_ns = self._now_ns() + round(timeout * 1e9)
        if deadline is not None:
            if not (
                isinstance(deadline, (int, float))
                and not isinstance(deadline, bool)
                and math.isfinite(deadline)
            ):
                raise ValueError(f"deadline must be a finite number of seconds, got {deadline!r}")
            by_deadline = round(deadline * 1e9)
            deadline_ns = by_deadline if deadline_ns is None else min(deadline_ns, by_deadline)
        if cancel is not None and not (
            callable(getattr(cancel, "is_set", None)) and callable(getattr(cancel, "wait", None))
        ):
            raise TypeError(
                f"cancel must have is_set() and wait(timeout), like threading.Event; got {cancel!r}"
            )
        return self._run(fn, (), {}, self._deadline_ns(deadline_ns), None, cancel, True)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorates ``fn`` so that every call is retried by this policy.

        The wrapper's ``retry`` attribute is this policy (for :meth:`stats`).
        """
        if inspect.iscoroutinefunction(fn):
            raise TypeError(
                "Retry wraps synchronous callables; calling a coroutine function only creates a "
                "coroutine, so nothing would ever be retried"
            )
        if self._plain:
            succeeded = self._tick_succeeded
            run = self._run

            @functools.wraps(fn)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    error = exc
                else:
                    succeeded()
                    return result
                return run(fn, args, kwargs, None, error)

        else:
            call = self.call

            @functools.wraps(fn)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                return call(fn, *args, **kwargs)

        wrapper.__dict__["retry"] = self
        return wrapper

    # -- statistics ------------------------------------------------------------------------------

    def stats(self) -> RetryStats:
        """How this policy's calls have ended so far (each counter is exact; the set is not an
        atomic snapshot while calls are in flight)."""
        c = self._counters
        return RetryStats(
            succeeded=_count_value(c["succeeded"]),
            exhausted=_count_value(c["exhausted"]),
            permanent=_count_value(c["permanent"]),
            deadline=_count_value(c["deadline"]),
            budget=_count_value(c["budget"]),
            retries=_count_value(c["retries"]),
            cancelled=_count_value(c["cancelled"]),
        )

    # -- the failure path ------------------------------------------------------------------------

    def _now_ns(self) -> int:
        return self._clock.now_ns()

    def _deadline_ns(self, deadline_ns: int | None) -> int | None:
        if self.timeout is None:
            return deadline_ns
        by_timeout = self._now_ns() + round(self.timeout * 1e9)
        return by_timeout if deadline_ns is None else min(deadline_ns, by_timeout)

    def _classify(self, exc: BaseException) -> tuple[str, int, bool | None]:
        """The outcome label, Retry-After hint (ns, -1 for none) and retryability override.

        The outcome comes from the native mapping the breaker uses too; the core loop keeps
        local rejections, cancellation and deadlines permanent whatever the override says.
        """
        kind, status = _outcome_of_exception(exc)
        retryable = True if self._classes and isinstance(exc, self._classes) else None
        return (f"http_{status}" if status else kind), _retry_after_ns(exc), retryable

    def _run(
        self,
        fn: Callable[..., R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        deadline_ns: int | None,
        error: BaseException | None,
        cancel: CancelToken | None = None,
        with_context: bool = False,
    ) -> R:
        """The retry loop; ``error`` is the first attempt's exception if it already ran."""
        clock = self._clock
        loop = _core.RetryLoop(self._config, self.budget, deadline_ns)
        if error is not None:
            loop.on_attempt_start(clock.now_ns())  # no deadline, no budget: always admitted
        last: BaseException | None = None
        deadline_s = None if deadline_ns is None else deadline_ns / 1e9
        while True:
            if error is None:
                if cancel is not None and cancel.is_set():
                    self._cancelled(loop.attempts, last)
                if not loop.on_attempt_start(clock.now_ns()):
                    self._give_up("deadline", loop.attempts, last)
                try:
                    if with_context:
                        result = fn(RetryContext(loop.attempts, deadline_s, cancel, clock))
                    else:
                        result = fn(*args, **kwargs)
                except BaseException as exc:
                    error = exc
                else:
                    loop.on_attempt_end("success", clock.now_ns(), 0.0)
                    self._tick_succeeded()
                    return result
            outcome, retry_after_ns, retryable = self._classify(error)
            step = loop.on_attempt_end(
                outcome, clock.now_ns(), self._rng.random(), retry_after_ns, retryable
            )
            last, error = error, None
            if step.done:
                self._give_up(step.reason, loop.attempts, last)
            next(self._counters["retries"])
            if self.on_retry is not None:
                self.on_retry(loop.attempts, last, step.delay)
            if cancel is None:
                clock.sleep(step.delay)
            elif isinstance(clock, _core.SteadyClock):
                # The event's own timed wait is the sleep: setting it wakes this thread at once.
                if cancel.wait(step.delay):
                    self._cancelled(loop.attempts, last)
            else:
                # A virtual clock's sleep returns at once; only a token set meanwhile counts.
                clock.sleep(step.delay)
                if cancel.is_set():
                    self._cancelled(loop.attempts, last)

    def _cancelled(self, attempts: int, error: BaseException | None) -> NoReturn:
        """Counts a call ended by its cancel token and raises Cancelled."""
        next(self._counters["cancelled"])
        last = f"; last error: {error!r}" if error is not None else ""
        raise Cancelled(f"cancelled after {attempts} attempt(s){last}", attempts) from error

    def _give_up(self, reason: str | None, attempts: int, error: BaseException | None) -> NoReturn:
        """Counts the end of a failed call and raises what it ended with."""
        reason = reason or "permanent"
        next(self._counters[reason])
        if reason == "permanent" and error is not None:
            raise error  # unchanged: the caller sees the real failure
        last = f"; last error: {error!r}" if error is not None else ""
        if reason == "budget":
            raise RetryBudgetExhausted(
                f"retry budget refused a retry after {attempts} attempt(s){last}", attempts
            ) from error
        if reason == "deadline":
            raise DeadlineExceeded(
                f"deadline reached after {attempts} attempt(s){last}", attempts
            ) from error
        raise RetryExhausted(f"all {attempts} attempt(s) failed{last}", attempts) from error


@overload
def retry(fn: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def retry(
    fn: None = None,
    /,
    *,
    max_attempts: int = 3,
    backoff: Backoff | None = None,
    retry_on: RetryOn = DEFAULT_RETRY_ON,
    max_retry_after: float = 60.0,
    budget: RetryBudgetLike | None = None,
    clock: Clock | None = None,
    seed: int | None = None,
    timeout: float | None = None,
    on_retry: Callable[[int, BaseException, float], object] | None = None,
) -> Retry: ...


def retry(
    fn: Callable[P, R] | None = None,
    /,
    *,
    max_attempts: int = 3,
    backoff: Backoff | None = None,
    retry_on: RetryOn = DEFAULT_RETRY_ON,
    max_retry_after: float = 60.0,
    budget: RetryBudgetLike | None = None,
    clock: Clock | None = None,
    seed: int | None = None,
    timeout: float | None = None,
    on_retry: Callable[[int, BaseException, float], object] | None = None,
) -> Callable[P, R] | Retry:
    """Decorator form of :class:`Retry`: ``@retry`` or ``@retry(max_attempts=5, ...)``."""
    policy = Retry(
        max_attempts=max_attempts,
        backoff=backoff if backoff is not None else Backoff(),
        retry_on=retry_on,
        max_retry_after=max_retry_after,
        budget=budget,
        clock=clock,
        seed=seed,
        timeout=timeout,
        on_retry=on_retry,
    )
    return policy if fn is None else policy(fn)


__all__ = [
    "DEFAULT_RETRY_ON",
    "END_REASONS",
    "CancelToken",
    "Retry",
    "RetryBudgetLike",
    "RetryConfig",
    "RetryContext",
    "RetryOn",
    "RetryOnItem",
    "RetryStats",
    "retry",
]
