"""The circuit breaker: stop calling a dependency that is failing, and probe until it recovers.

``Breaker`` is the configuration (a frozen, validated dataclass, also used inside scenarios);
``CircuitBreaker`` is the live object guarding Python callables::

    cb = CircuitBreaker(Breaker(consecutive_failures=5, open_for=5.0), name="payment")
    cb.call(charge, order)          # one call through the breaker
    @cb                              # ... or as a decorator
    def charge(order): ...
    permit = cb.allow()             # ... or in two steps, around code you cannot wrap
    permit.record(ok)

Rejections raise :class:`~reliability_lab.errors.BreakerOpen` (open) or
:class:`~reliability_lab.errors.BreakerHalfOpenFull` (half-open, every probe slot taken): two
distinct types, both :class:`~reliability_lab.errors.Rejected`. The state machine, its counters
and the hot ``call`` path are native; listeners run after the breaker's lock is released, exactly
once per transition and in order.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, ParamSpec, TypeVar

from reliability_lab import _core
from reliability_lab.clock import Clock, ManualClock, default_clock
from reliability_lab.errors import Rejected

_log = logging.getLogger("reliability_lab")

P = ParamSpec("P")
R = TypeVar("R")

BreakerStateName = Literal["closed", "open", "half_open"]

#: Exceptions that are the caller giving up, or a policy refusing locally: they say nothing about
#: the dependency's health, so they count as neither success nor failure.
CANCELLATION_TYPES: tuple[type[BaseException], ...] = (
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
    asyncio.CancelledError,
    Rejected,
)

_SUCCESS, _FAILURE, _IGNORED = 0, 1, 2


@dataclass(frozen=True)
class Breaker:
    """Circuit breaker configuration. Times are in seconds.

    Trip policies (any enabled one can open the breaker):
        consecutive_failures: open on the N-th failure in a row (0 disables).
        failure_rate_threshold: open when failures/calls >= this over the window (0 disables).
        slow_call_rate_threshold: open when slow calls/calls >= this over the window (0 disables);
            a call longer than ``slow_call_duration`` is slow.
        window: ``"count"`` (the last ``window_size`` calls) or ``"time"`` (the last
            ``window_duration`` seconds in ``window_buckets`` buckets).
        minimum_calls: the rate policies wait for this many calls in the window.
    Open and half-open:
        open_for: seconds open before the next admission becomes a half-open probe.
        open_growth, max_open_for: each trip without closing multiplies ``open_for`` by
            ``open_growth``, capped at ``max_open_for`` (0: no growth beyond ``open_for``).
        half_open_max_calls: concurrent probes allowed while half-open.
        success_threshold: successful probes needed to close; any failed probe reopens.
    """

    consecutive_failures: int = 5
    failure_rate_threshold: float = 0.0
    slow_call_rate_threshold: float = 0.0
    slow_call_duration: float = 0.0
    window: Literal["count", "time"] = "count"
    window_size: int = 100
    window_duration: float = 60.0
    window_buckets: int = 10
    minimum_calls: int = 10
    open_for: float = 5.0
    open_growth: float = 1.0
    max_open_for: float = 0.0
    half_open_max_calls: int = 1
    success_threshold: int = 1

    def __post_init__(self) -> None:
        # One source of truth for the rules: the native constructor validates and names the field.
        _native(self, ManualClock(), "validate", ())

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a plain dict."""
        return asdict(self)

    def replace(self, **changes: Any) -> Breaker:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


def _native(
    config: Breaker, clock: Clock, name: str, ignored: tuple[type[BaseException], ...]
) -> _core.CircuitBreaker:
    for field in ("consecutive_failures", "window_size", "window_buckets", "minimum_calls",
                  "half_open_max_calls", "success_threshold"):
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{field} must be an integer, got {value!r}")
    return _core.CircuitBreaker(
        clock,
        name,
        config.consecutive_failures,
        float(config.failure_rate_threshold),
        float(config.slow_call_rate_threshold),
        float(config.slow_call_duration),
        config.window,
        config.window_size,
        float(config.window_duration),
        config.window_buckets,
        config.minimum_calls,
        float(config.open_for),
        float(config.open_growth),
        float(config.max_open_for),
        config.half_open_max_calls,
        config.success_threshold,
        ignored,
    )


@dataclass(frozen=True)
class Transition:
    """One state change, as delivered to listeners."""

    breaker: str
    from_state: BreakerStateName
    to_state: BreakerStateName
    at: float
    generation: int


class Permit:
    """An admitted call, for the two-step API: report how it ended exactly once.

    Usable as a context manager: leaving the block normally records a success, an exception
    records a failure (or nothing, for cancellations and excluded types) and propagates.
    """

    __slots__ = ("_breaker", "_done", "_start_ns", "_token")

    def __init__(self, breaker: CircuitBreaker, token: int, start_ns: int) -> None:
        self._breaker = breaker
        self._token = token
        self._start_ns = start_ns
        self._done = False

    def record(self, ok: bool) -> None:
        """Records a success (``ok``) or a failure. Only the first report of a permit counts."""
        self._finish(_SUCCESS if ok else _FAILURE)

    def success(self) -> None:
        """Records a success."""
        self._finish(_SUCCESS)

    def failure(self) -> None:
        """Records a failure."""
        self._finish(_FAILURE)

    def ignore(self) -> None:
        """Records neither (e.g. the caller cancelled); a probe slot is released."""
        self._finish(_IGNORED)

    @property
    def done(self) -> bool:
        """Whether this permit's outcome has been recorded."""
        return self._done

    def _finish(self, result: int) -> None:
        if self._done:
            return
        self._done = True
        self._breaker._record(self._token, result, self._start_ns)

    def __enter__(self) -> Permit:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        if exc_type is None:
            self._finish(_SUCCESS)
        elif issubclass(exc_type, self._breaker._ignored_types):
            self._finish(_IGNORED)
        else:
            self._finish(_FAILURE)


class CircuitBreaker(_core.CircuitBreaker):
    """A circuit breaker guarding Python callables (closed / open / half-open).

    Args:
        config: a :class:`Breaker`; keyword ``overrides`` replace its fields.
        name: used in errors, listeners and metrics.
        clock: time source; a :class:`~reliability_lab.clock.ManualClock` makes tests instant.
        exclude: exception types that count as neither success nor failure (in addition to
            cancellations and local rejections, see ``CANCELLATION_TYPES``).
        listeners: callables taking a :class:`Transition`.
    """

    def __init__(
        self,
        config: Breaker | None = None,
        *,
        name: str = "breaker",
        clock: Clock | None = None,
        exclude: Iterable[type[BaseException]] = (),
        listeners: Iterable[Callable[[Transition], object]] = (),
        **overrides: Any,
    ) -> None:
        cfg = config if config is not None else Breaker()
        if overrides:
            cfg = replace(cfg, **overrides)
        excluded = tuple(exclude)
        for t in excluded:
            if not (isinstance(t, type) and issubclass(t, BaseException)):
                raise ValueError(f"exclude must hold exception types, got {t!r}")
        self._ignored_types = CANCELLATION_TYPES + excluded
        self._config = cfg
        self._listeners: list[Callable[[Transition], object]] = list(listeners)
        c = cfg
        super().__init__(
            clock if clock is not None else default_clock(),
            name,
            c.consecutive_failures,
            float(c.failure_rate_threshold),
            float(c.slow_call_rate_threshold),
            float(c.slow_call_duration),
            c.window,
            c.window_size,
            float(c.window_duration),
            c.window_buckets,
            c.minimum_calls,
            float(c.open_for),
            float(c.open_growth),
            float(c.max_open_for),
            c.half_open_max_calls,
            c.success_threshold,
            self._ignored_types,
        )
        self._set_listener(self._dispatch)

    @property
    def config(self) -> Breaker:
        """The configuration this breaker was built with."""
        return self._config

    def allow(self) -> Permit:
        """Admits one call (raising the rejection if refused); record its outcome on the permit."""
        token, start_ns = self._allow()
        return Permit(self, token, start_ns)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorates ``fn`` so that every call goes through the breaker."""
        call = self.call

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            return call(fn, *args, **kwargs)  # type: ignore[no-any-return]

        return guarded

    def add_listener(self, listener: Callable[[Transition], object]) -> None:
        """Adds a listener for later transitions; it runs with no breaker lock held."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Transition], object]) -> None:
        """Removes a listener added earlier."""
        self._listeners.remove(listener)

    def force_open(self) -> None:
        """Opens the breaker now (e.g. an operator's kill switch); it half-opens after open_for."""
        self.force_state("open")

    def force_closed(self) -> None:
        """Closes the breaker now and forgets its windows."""
        self.force_state("closed")

    def _dispatch(self, from_state: str, to_state: str, at: float, generation: int) -> None:
        t = Transition(self.name, from_state, to_state, at, generation)  # type: ignore[arg-type]
        for listener in list(self._listeners):
            try:
                listener(t)
            except Exception:
                # One failing listener must not hide the transition from the others.
                _log.exception("circuit breaker %r listener failed on %s", self.name, t)

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self.name!r}, state={self.state!r})"


__all__ = [
    "CANCELLATION_TYPES",
    "Breaker",
    "CircuitBreaker",
    "Permit",
    "Transition",
]
