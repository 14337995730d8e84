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
once per transition and in order, on the caller's thread or (``listener_delivery="background"``)
on a delivery thread of the breaker's own.

An exception raised by the guarded code counts by the same outcome table the engines use (see
:mod:`reliability_lab.errors`): dependency faults (timeouts, connection errors, HTTP 408, 429 and
5xx, any other exception) are failures; an HTTP 3xx/4xx answer is a success (the dependency
answered; the request was wrong); the caller giving up (cancellation,
:class:`~reliability_lab.errors.DeadlineExceeded`) and local rejections count as neither. Types
listed in ``exclude`` count as neither, whatever the table says.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, ParamSpec, TypeVar

from reliability_lab import _checks, _core, _schema
from reliability_lab.clock import Clock, default_clock
from reliability_lab.errors import CANCELLED_TYPES, DeadlineExceeded, Rejected

_log = logging.getLogger("reliability_lab")

P = ParamSpec("P")
R = TypeVar("R")

BreakerStateName = Literal["closed", "open", "half_open"]

#: Exceptions that are the caller giving up, or a policy refusing locally: they say nothing about
#: the dependency's health, so they count as neither success nor failure (the outcome table's
#: ``caller_gave_up`` and ``local_rejection`` classes).
CANCELLATION_TYPES: tuple[type[BaseException], ...] = (
    *CANCELLED_TYPES,
    DeadlineExceeded,
    Rejected,
)

ListenerDelivery = Literal["caller", "background"]

_SUCCESS, _FAILURE, _IGNORED = 0, 1, 2
#: Transitions a background delivery thread may hold before a caller has to wait for room.
MAX_QUEUED_TRANSITIONS = 1024
#: How long a caller waits for room in a full delivery queue before dropping the transition.
_QUEUE_WAIT_S = 10.0
#: An idle delivery thread exits after this long; the next transition starts a new one.
_IDLE_EXIT_S = 5.0


@dataclass(frozen=True)
class Breaker(_schema.Checked):
    """Circuit breaker configuration. Times are in seconds.

    Trip policies (any enabled one can open the breaker):
        consecutive_failures: open on the N-th failure in a row (0 disables).
        failure_rate_threshold: open when failures/calls >= this over the window (0 disables).
        slow_call_rate_threshold: open when slow calls/calls >= this over the window (0 disables);
            a call longer than ``slow_call_duration`` is slow.
        slow_call_duration: seconds, in [0, 1e6]; a call that took longer is slow (needed when
            ``slow_call_rate_threshold`` is set).
        window: ``"count"`` (the last ``window_size`` calls) or ``"time"`` (the last
            ``window_duration`` seconds in ``window_buckets`` buckets).
        window_size: calls in a count window, in [1, 1e6].
        window_duration: seconds of a time window, in (0, 1e6].
        window_buckets: buckets of a time window, in [1, 1000].
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

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a plain dict."""
        return asdict(self)

    def replace(self, **changes: Any) -> Breaker:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


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
        elif isinstance(exc, BaseException):
            self._finish(self._breaker._result_of(exc))
        else:  # pragma: no cover - Python always passes the instance
            self._finish(_FAILURE)


class _BackgroundDelivery:
    """Delivers transitions on one thread, in submission order, each exactly once.

    The thread starts on the first transition and exits after ``_IDLE_EXIT_S`` idle (so an
    abandoned breaker leaves no thread behind). The queue holds at most ``max_queued``
    transitions; a caller that finds it full waits for room, at most ``_QUEUE_WAIT_S``, then drops
    the transition with an error log (only a listener stuck for that long can cause it).
    """

    def __init__(self, deliver: Callable[[Transition], None], name: str, max_queued: int) -> None:
        self._deliver = deliver
        self._name = name
        self._max_queued = max_queued
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[Transition] = collections.deque()
        self._thread: threading.Thread | None = None
        self._busy = False  # the thread is delivering one transition, outside the lock
        self._closed = False
        self.dropped = 0

    def submit(self, t: Transition) -> None:
        with self._cond:
            if self._closed and self._thread is None:
                inline = True
            else:
                inline = False
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name=f"breaker-listeners-{self._name}", daemon=True
                    )
                    self._thread.start()
                elif threading.current_thread() is not self._thread:
                    # The delivery thread itself never waits here: it is the one making room.
                    end = time.monotonic() + _QUEUE_WAIT_S
                    while len(self._queue) >= self._max_queued and self._thread is not None:
                        left = end - time.monotonic()
                        if left <= 0:
                            self.dropped += 1
                            _log.error(
                                "circuit breaker %r: listener queue full for %.0f s, dropped %s",
                                self._name, _QUEUE_WAIT_S, t,
                            )
                            return
                        self._cond.wait(left)
                self._queue.append(t)
                self._cond.notify_all()
        if inline:
            self._deliver(t)

    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
                while not self._queue:
                    if self._closed or (not self._cond.wait(_IDLE_EXIT_S) and not self._queue):
                        if self._thread is me:
                            self._thread = None
                        self._cond.notify_all()
                        return
                t = self._queue.popleft()
                self._busy = True
                self._cond.notify_all()
            self._deliver(t)

    def flush(self, timeout: float) -> bool:
        """Waits until every transition submitted so far has been delivered."""
        if threading.current_thread() is self._thread:
            return not self._queue
        end = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float) -> bool:
        """Stops the thread once the queue is drained; later transitions are delivered inline."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            if threading.current_thread() is self._thread:
                return False
            end = time.monotonic() + timeout
            while self._thread is not None:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True


class CircuitBreaker(_core.CircuitBreaker):
    """A circuit breaker guarding Python callables (closed / open / half-open).

    Args:
        config: a :class:`Breaker`; keyword ``overrides`` replace its fields.
        name: used in errors, listeners and metrics.
        clock: time source; a :class:`~reliability_lab.clock.ManualClock` makes tests instant.
        exclude: exception types that count as neither success nor failure (in addition to
            cancellations, deadlines and local rejections, see ``CANCELLATION_TYPES``); this
            overrides the outcome table.
        listeners: callables taking a :class:`Transition`.
        listener_delivery: ``"caller"`` (default) runs listeners on the thread whose call caused
            the transition, before that call returns; ``"background"`` hands transitions to a
            delivery thread of this breaker, so a slow listener never delays a guarded call.
            Either way each transition reaches each listener exactly once, in transition order.
            Use :meth:`flush_listeners` to wait for delivery and :meth:`close_listeners` to stop
            the thread (a daemon: transitions still queued at interpreter exit are lost).
    """

    def __init__(
        self,
        config: Breaker | None = None,
        *,
        name: str = "breaker",
        clock: Clock | None = None,
        exclude: Iterable[type[BaseException]] = (),
        listeners: Iterable[Callable[[Transition], object]] = (),
        listener_delivery: ListenerDelivery = "caller",
        **overrides: Any,
    ) -> None:
        cfg = config if config is not None else Breaker()
        if overrides:
            cfg = replace(cfg, **overrides)
        excluded = tuple(exclude)
        for t in excluded:
            if not (isinstance(t, type) and issubclass(t, BaseException)):
                raise ValueError(f"exclude must hold exception types, got {t!r}")
        _checks.string("name", name)
        if listener_delivery not in ("caller", "background"):
            error = ValueError if isinstance(listener_delivery, str) else _core.ConfigTypeError
            raise error(
                "listener_delivery must be 'caller' or 'background', got "
                f"{listener_delivery!r}"
            )
        self._config = cfg
        self._listeners: list[Callable[[Transition], object]] = list(listeners)
        self._delivery: _BackgroundDelivery | None = None
        if listener_delivery == "background":
            self._delivery = _BackgroundDelivery(self._deliver, name, MAX_QUEUED_TRANSITIONS)
        super().__init__(
            clock if clock is not None else default_clock(), name, _schema.values(cfg), excluded
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

    @property
    def listener_delivery(self) -> ListenerDelivery:
        """``"caller"`` or ``"background"`` (see the class docs)."""
        return "caller" if self._delivery is None else "background"

    def flush_listeners(self, timeout: float = 5.0) -> bool:
        """Waits (at most ``timeout`` seconds) until every transition so far has reached the
        listeners; True if it has. Always True with caller-thread delivery."""
        return True if self._delivery is None else self._delivery.flush(timeout)

    def close_listeners(self, timeout: float = 5.0) -> bool:
        """Stops background delivery: waits (at most ``timeout`` seconds) for queued transitions
        to be delivered and the thread to exit; True if it did. Later transitions are delivered
        on the caller's thread, still after every earlier one. Idempotent."""
        return True if self._delivery is None else self._delivery.close(timeout)

    def _dispatch(self, from_state: str, to_state: str, at: float, generation: int) -> None:
        # Called by the native breaker after its lock is released.
        t = Transition(self.name, from_state, to_state, at, generation)  # type: ignore[arg-type]
        if self._delivery is not None:
            self._delivery.submit(t)
        else:
            self._deliver(t)

    def _deliver(self, t: Transition) -> None:
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
    "MAX_QUEUED_TRANSITIONS",
    "Breaker",
    "CircuitBreaker",
    "ListenerDelivery",
    "Permit",
    "Transition",
]
