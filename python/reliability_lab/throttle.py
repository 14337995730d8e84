"""Adaptive client-side throttling (Google SRE book, "Handling Overload").

Each client tracks, over a sliding window, how many requests it attempted and how many the backend
*accepted*, and rejects new requests locally with probability::

    p = max(0, (requests - k * accepts) / (requests + 1))

so that once the backend refuses more than ``1 - 1/k`` of the traffic, the excess is shed before it
leaves the client. Locally rejected requests count as requests, as in the book::

    throttle = AdaptiveThrottle(k=2.0, window=120.0, name="payment")
    throttle.call(charge, order)      # raises errors.Throttled when rejected locally
    if throttle.allow():              # ... or in two steps
        throttle.record(accepted=...)

"Accepted" means the backend did not refuse the request for overload. Successes and ordinary
errors (a 404, a validation error, a generic exception) are accepted: the backend did the work.
Refusals and overload symptoms are not: HTTP 429/502/503/504, timeouts, connection errors, a
missed deadline, and local rejections further down (breaker, bulkhead, an inner throttle).
Caller cancellation (KeyboardInterrupt, ...) is no evidence against the backend and counts as
accepted. :func:`is_overload` is the default classifier for exceptions; pass your own to
``AdaptiveThrottle(is_overload=...)``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from reliability_lab import _checks, _core, _deprecated, _schema
from reliability_lab.clock import Clock, default_clock
from reliability_lab.errors import DeadlineExceeded, Rejected, RetryError, Throttled

P = ParamSpec("P")
R = TypeVar("R")

#: HTTP statuses that mean "not accepted": throttled, unavailable, or a gateway that could not
#: reach the backend or timed out waiting for it.
OVERLOAD_STATUSES = frozenset({429, 502, 503, 504})

_OVERLOAD_TYPES: tuple[type[BaseException], ...] = (
    TimeoutError,
    asyncio.TimeoutError,
    concurrent.futures.TimeoutError,
    ConnectionError,  # resets, refusals, broken pipes
    DeadlineExceeded,
    Rejected,
)


def _status_of(exc: BaseException) -> object:
    for holder in (exc, getattr(exc, "response", None)):
        if holder is None:
            continue
        for attr in ("status_code", "status"):
            value = getattr(holder, attr, None)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


def is_overload(exc: BaseException) -> bool:
    """Whether an exception means the backend did *not* accept the request (for overload).

    True for timeouts, connection errors, :class:`~reliability_lab.errors.DeadlineExceeded`,
    local rejections (:class:`~reliability_lab.errors.Rejected`), and exceptions carrying an
    HTTP status (``status_code`` or ``status``, on the exception or on its ``response``) in
    ``OVERLOAD_STATUSES``. A :class:`~reliability_lab.errors.RetryError` is judged by its
    ``__cause__``, the last attempt's exception. Everything else counts as accepted.
    """
    if isinstance(exc, _OVERLOAD_TYPES):
        return True
    if isinstance(exc, RetryError) and exc.__cause__ is not None:
        return is_overload(exc.__cause__)
    return _status_of(exc) in OVERLOAD_STATUSES


def is_accepted_outcome(kind: str, http_status: int = 0) -> bool:
    """The native classifier on an outcome name (``"success"``, ``"timeout"``, ``"http_status"``
    with ``http_status``, ...): whether the throttle counts it as accepted."""
    return _core.is_accepted_by_backend(kind, http_status)


@dataclass(frozen=True)
class Throttle(_schema.Checked):
    """Configuration of an :class:`AdaptiveThrottle` (validated on construction); a scenario's
    ``<dependency>.throttle``. Formerly ``ThrottleConfig`` (a deprecated alias for one release).

    Attributes:
        k: the accepts multiplier K, in [1, 1000]. The backend may refuse up to ``1 - 1/k`` of
            the requests before anything is shed; the SRE book suggests 2, lower is stricter.
        window: the sliding window in seconds, in (0, 1e6]; the book uses two minutes.
        buckets: buckets of the window, in [1, 1000] (window / buckets is the resolution).
        max_reject_probability: the highest probability of refusing a request, in [0, 1], so
            that some requests still reach a backend that may have recovered (Envoy's admission
            control caps it at 0.8 by default); 1 keeps the book's formula uncapped.
    """

    k: float = 2.0
    window: float = 120.0
    buckets: int = 120
    max_reject_probability: float = 1.0

    def _native(self) -> _core.AdaptiveThrottle:
        return _core.AdaptiveThrottle(_schema.values(self))


@dataclass(frozen=True)
class ThrottleSnapshot:
    """The throttle's window at one instant."""

    requests: int
    """Requests in the window, locally rejected ones included."""
    accepts: int
    """Requests the backend accepted, in the window."""
    reject_probability: float
    """The probability that the next request is rejected locally."""
    local_rejections: int
    """Lifetime count of requests rejected locally."""


class AdaptiveThrottle:
    """Client-side adaptive throttling for Python callables (thread-safe).

    Args:
        k, window, buckets: see :class:`Throttle`.
        clock: the time source; a :class:`~reliability_lab.clock.ManualClock` makes tests instant.
        seed: seeds the random draws (a 64-bit unsigned integer) for reproducible runs; None
            draws a fresh seed.
        name: used in errors and metrics.
        is_overload: classifies an exception raised by a guarded call; True means the backend
            did not accept the request. Defaults to :func:`is_overload`.
        config: the whole :class:`Throttle` (every field, ``max_reject_probability`` too), in
            place of ``k``, ``window`` and ``buckets`` (which must then keep their defaults);
            :meth:`from_config` passes it.
    """

    def __init__(
        self,
        k: float = 2.0,
        window: float = 120.0,
        buckets: int = 120,
        clock: Clock | None = None,
        seed: int | None = None,
        name: str = "throttle",
        *,
        is_overload: Callable[[BaseException], bool] = is_overload,
        config: Throttle | None = None,
    ) -> None:
        if config is None:
            config = Throttle(k, window, buckets)
        elif not isinstance(config, Throttle):
            raise TypeError(f"config must be a Throttle, got {type(config).__name__}")
        elif (k, window, buckets) != (2.0, 120.0, 120):
            raise ValueError("pass either config or k / window / buckets, not both")
        self._config = config
        self._native = self._config._native()
        self._clock = clock if clock is not None else default_clock()
        seed = _checks.seed("seed", seed)
        self._seed = seed
        self._rng = _core.RandomStream(seed)
        # A random stream has one owner at a time; the lock keeps draws ordered without the GIL.
        self._rng_lock = threading.Lock()
        self._name = _checks.string("name", name)
        self._is_overload = is_overload

    @classmethod
    def from_config(
        cls,
        config: Throttle,
        clock: Clock | None = None,
        seed: int | None = None,
        name: str = "throttle",
    ) -> AdaptiveThrottle:
        """A new throttle with ``config``."""
        return cls(clock=clock, seed=seed, name=name, config=config)

    @property
    def config(self) -> Throttle:
        """The configuration this throttle was built with."""
        return self._config

    @property
    def native(self) -> _core.AdaptiveThrottle:
        """The native throttle, for engines that share it with C++ workers."""
        return self._native

    @property
    def name(self) -> str:
        """The throttle's name."""
        return self._name

    @property
    def seed(self) -> int:
        """The seed of this throttle's random draws."""
        return self._seed

    def _now(self, now: float | None) -> float:
        if now is None:
            return self._clock.now()
        if not isinstance(now, (int, float)) or not math.isfinite(now):
            raise ValueError(f"now must be a finite number of seconds, got {now!r}")
        return float(now)

    def allow(self, now: float | None = None) -> bool:
        """Decides one request: False rejects it locally. Counts it as a request either way."""
        with self._rng_lock:
            u = self._rng.uniform01()
        return self._native.allow(self._now(now), u)

    def record(self, accepted: bool, now: float | None = None) -> None:
        """Reports how an allowed request ended: ``accepted`` unless refused for overload."""
        if accepted:
            self._native.record_accepted(self._now(now))

    def record_outcome(self, kind: str, http_status: int = 0, now: float | None = None) -> None:
        """Reports an outcome by name (see :func:`is_accepted_outcome`)."""
        self._native.record_outcome(self._now(now), kind, http_status)

    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Runs ``fn(*args, **kwargs)`` unless rejected locally (raises Throttled).

        A return counts as accepted; an exception is classified by ``is_overload`` and
        re-raised.
        """
        now = self._clock.now()
        with self._rng_lock:
            u = self._rng.uniform01()
        p = self._native.reject_probability(now)
        if not self._native.allow(now, u):
            raise Throttled(self._name, p)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            if not self._is_overload(exc):
                self._native.record_accepted(self._clock.now())
            raise
        self._native.record_accepted(self._clock.now())
        return result

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorates ``fn`` so that every call goes through the throttle."""

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            return self.call(fn, *args, **kwargs)

        return guarded

    def snapshot(self, now: float | None = None) -> ThrottleSnapshot:
        """The window's counts at ``now`` (default: the clock's now)."""
        s = self._native.snapshot(self._now(now))
        return ThrottleSnapshot(s.requests, s.accepts, s.reject_probability, s.local_rejections)

    @property
    def rejection_probability(self) -> float:
        """The probability that a request now is rejected locally."""
        return self._native.reject_probability(self._clock.now())

    @property
    def requests(self) -> int:
        """Requests in the window now."""
        return self.snapshot().requests

    @property
    def accepts(self) -> int:
        """Accepted requests in the window now."""
        return self.snapshot().accepts

    @property
    def local_rejections(self) -> int:
        """Lifetime count of local rejections."""
        return self.snapshot().local_rejections

    @staticmethod
    def probability(k: float, requests: int, accepts: int) -> float:
        """The SRE formula on raw counts: ``max(0, (requests - k * accepts) / (requests + 1))``."""
        return _core.AdaptiveThrottle.probability(k, requests, accepts)

    def __repr__(self) -> str:
        return (
            f"AdaptiveThrottle(name={self._name!r}, k={self._config.k:g},"
            f" window={self._config.window:g}, p_reject={self.rejection_probability:.3f})"
        )


__all__ = [
    "OVERLOAD_STATUSES",
    "AdaptiveThrottle",
    "Throttle",
    "ThrottleSnapshot",
    "is_accepted_outcome",
    "is_overload",
]

if TYPE_CHECKING:
    ThrottleConfig = Throttle  # deprecated: use Throttle
else:
    __getattr__ = _deprecated.module_getattr(
        __name__, {"ThrottleConfig": ("reliability_lab.Throttle", lambda: Throttle)}
    )
