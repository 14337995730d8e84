"""Rate limiting: admit at most ``rate`` calls per second, optionally per key (tenant).

::

    api = RateLimiter(RateLimit(rate=100, burst=10, mode="smooth"), name="search")
    api.call(search, query)                    # raises RateLimited when no permit is free
    limiter = RateLimiter(RateLimit(rate=5, max_wait=0.5))
    limiter.call(send, msg)                    # waits up to 0.5 s for a permit, then RateLimited
    per_tenant = RateLimiter(RateLimit(rate=10, per_key=True, max_keys=10_000))
    per_tenant.call_for(tenant_id, handle, request)

The configuration is :class:`~reliability_lab.scenario.RateLimit`, the same one a scenario's
``intake.rate_limit`` and ``<dependency>.rate_limit`` take. Two modes, as the common libraries
ship them:

- ``"smooth"``: permits evenly spaced, one every ``1 / rate`` seconds (failsafe-go's
  SmoothRateLimiter), with up to ``burst`` of them saved up while idle (a token bucket; GCRA).
- ``"bursty"``: ``burst`` permits available at the start of every ``burst / rate`` seconds,
  unused ones not carried over (Resilience4j's RateLimiter, failsafe-go's BurstyRateLimiter).

The native policy counts whole nanoseconds: the spacing (smooth) or period (bursty) is converted
once, at construction, by the function that converts a scenario's rate limit for the engines
(``ToRateLimiterParams``, ``cpp/rlab/model/limits.cc``): rounded to the nearest nanosecond, at
least one per permit, at most 1e6 s. The deprecated ``RateLimitConfig(permits=2, period=1e-8)``
(rate 2e8) is refused, above ``RateLimit``'s 1e7 per second; ``RateLimitConfig(permits=6,
period=1.0)`` spaces permits 166,666,667 ns apart where the old limiter floored ``period /
permits`` to 166,666,666 (at most 1 ns per permit, and none when ``permits`` divides the period
in nanoseconds; bursty periods are kept exactly).

A wait (``max_wait > 0``) reserves a future permit and sleeps until it is due, outside every lock
and with the GIL released (through the limiter's clock); a wait that would exceed ``max_wait`` is
refused at once and reserves nothing. Setting ``cancel`` (a :class:`threading.Event`) ends a wait
early with :class:`~reliability_lab.errors.Cancelled`; the reserved permit is then forfeited
(counted as ``forfeited``), because giving it back would let later callers overtake the schedule.

Per-key limiting keeps one rate per key for at most ``max_keys`` keys and evicts the least
recently used key to make room: memory is bounded, and an evicted key comes back with a fresh
allowance (``evictions`` counts them; size ``max_keys`` above the number of active tenants).
The state machines are native (``_core.RateLimiter`` / ``_core.KeyedRateLimiter``): pure,
thread-safe, called without the GIL.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, ParamSpec, Protocol, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reliability_lab import _checks, _core, _deprecated, _schema
from reliability_lab.clock import Clock, default_clock
from reliability_lab.errors import Cancelled, Rejected
from reliability_lab.metrics import PREFIX
from reliability_lab.scenario.limit import RateLimit, RateLimitMode

P = ParamSpec("P")
R = TypeVar("R")

class CancelToken(Protocol):
    """What ``cancel`` accepts: a :class:`threading.Event` or anything shaped like one."""

    def is_set(self) -> bool:
        """Whether cancellation was requested."""

    def wait(self, timeout: float | None = None) -> bool:
        """Waits up to ``timeout`` seconds for cancellation; True if it was requested."""


class RateLimited(Rejected):
    """A rate limiter refused a call: no permit within the allowed wait."""

    def __init__(self, name: str, key: str | None = None) -> None:
        super().__init__(name, key)

    @property
    def name(self) -> str:
        """The limiter's name."""
        return str(self.args[0])

    @property
    def key(self) -> str | None:
        """The key (tenant) refused, for a per-key limiter."""
        key = self.args[1]
        return None if key is None else str(key)

    def __str__(self) -> str:
        who = "" if self.key is None else f" for key {self.key!r}"
        return f"rate limiter {self.name!r} has no permit{who}"


def _max_wait(name: str, value: float) -> float:
    return float(_checks.in_range(name, value, 0, _checks.MAX_S, seconds=True))


def _from_permits(
    permits: int,
    period: float,
    mode: RateLimitMode,
    burst: int,
    max_wait: float,
    per_key: bool,
    max_keys: int,
) -> RateLimit:
    """The RateLimit equivalent to the old permits-per-period settings, checked as before."""
    if mode not in ("smooth", "bursty"):
        raise ValueError(f"rate.mode must be 'smooth' or 'bursty', got {mode!r}")
    in_range, at_most = _checks.in_range, 1_000_000_000
    permits = in_range("rate.permits", permits, 1, at_most)
    period = in_range("rate.period", period, 0, _checks.MAX_S, seconds=True, lo_open=True)
    burst = in_range("rate.burst", burst, 1, at_most)
    max_keys = in_range("rate.max_keys", max_keys, 1, 10_000_000)
    period_ns = _checks.ns(period)
    if period_ns < permits:  # the old limiter spaced permits period / permits ns apart
        raise ValueError(
            f"rate.permits must be at most rate.period in nanoseconds ({period_ns}), "
            f"got {permits}"
        )
    if not isinstance(per_key, bool):
        raise ValueError(f"rate.per_key must be a bool, got {per_key!r}")
    return RateLimit(
        rate=permits / period,
        burst=permits if mode == "bursty" else burst,
        mode=mode,
        max_wait=_max_wait("rate.max_wait", max_wait),
        per_key=per_key,
        max_keys=max_keys,
    )


def RateLimitConfig(
    permits: int = 10,
    period: float = 1.0,
    mode: RateLimitMode = "smooth",
    burst: int = 1,
    max_wait: float = 0.0,
    per_key: bool = False,
    max_keys: int = 10_000,
) -> RateLimit:
    """Deprecated: use :class:`~reliability_lab.scenario.RateLimit`. Warns, and returns the
    equivalent RateLimit: ``rate = permits / period``; bursty: ``burst = permits``; smooth:
    ``burst`` as given. A rate above the RateLimit's 1e7 per second is refused."""
    _deprecated.warn(
        "reliability_lab.RateLimitConfig", "reliability_lab.RateLimit (rate = permits / period)"
    )
    return _from_permits(permits, period, mode, burst, max_wait, per_key, max_keys)


@dataclass(frozen=True)
class RateLimitStats:
    """Lifetime counters of a rate limiter."""

    granted: int
    """Permits given at once."""
    waited: int
    """Permits given after a wait."""
    rejected: int
    """Calls refused (no permit within the allowed wait)."""
    forfeited: int
    """Reserved permits whose wait was cancelled."""
    keys: int
    """Keys held now (per-key limiters)."""
    evictions: int
    """Keys evicted to stay within ``max_keys``."""


class RateLimiter:
    """A rate limiter around Python callables (thread-safe).

    Args:
        config: the rate (:class:`~reliability_lab.scenario.RateLimit`: ``rate``, ``burst``,
            ``mode``, ``max_wait``, ``per_key``, ``max_keys``); ``RateLimit()`` if None.
        clock: the time source; waits sleep through ``clock.sleep`` (a
            :class:`~reliability_lab.clock.ManualClock` advances at once).
        name: used in errors and metrics.
        legacy: the old keywords (``permits``, ``period``, ``mode``, ``burst``, ``max_wait``,
            ``per_key``, ``max_keys``), deprecated: they warn and are converted as
            :func:`RateLimitConfig` converts them.
    """

    def __init__(
        self,
        config: RateLimit | None = None,
        *,
        clock: Clock | None = None,
        name: str = "rate_limiter",
        **legacy: Any,
    ) -> None:
        if legacy:
            if config is not None:
                raise TypeError("pass a RateLimit or the deprecated keywords, not both")
            unknown = sorted(set(legacy) - set(_LEGACY_DEFAULTS))
            if unknown:
                raise TypeError(f"RateLimiter() got an unexpected keyword argument {unknown[0]!r}")
            _deprecated.warn(
                "RateLimiter(permits=..., period=..., ...)",
                "RateLimiter(reliability_lab.RateLimit(rate=permits / period, ...))",
            )
            config = _from_permits(**{**_LEGACY_DEFAULTS, **legacy})
        elif config is None:
            config = RateLimit()
        elif not isinstance(config, RateLimit):
            raise TypeError(
                "config must be a RateLimit (rl.RateLimit(rate=..., ...)), got "
                f"{_checks.short_repr(config)}"
            )
        self._config = config
        # The native side converts the config once, as the engines do (ToRateLimiterParams).
        native = _schema.values(config)
        self._single = None if config.per_key else _core.RateLimiter(native)
        self._keyed = _core.KeyedRateLimiter(native) if config.per_key else None
        self._clock = clock if clock is not None else default_clock()
        self._name = str(name)
        self._forfeit_lock = threading.Lock()
        self._forfeited = 0

    @property
    def config(self) -> RateLimit:
        """The configuration this limiter was built with."""
        return self._config

    @property
    def name(self) -> str:
        """The limiter's name."""
        return self._name

    def _key(self, key: str | None) -> str | None:
        if self._keyed is not None:
            if not isinstance(key, str):
                raise TypeError(f"a per-key rate limiter needs a str key, got {key!r}")
        elif key is not None:
            raise TypeError("this rate limiter is not per-key (per_key=False): pass no key")
        return key

    def _reserve(self, key: str | None, max_wait: float) -> float | None:
        now = self._clock.now()
        if self._keyed is not None:
            assert key is not None
            return self._keyed.reserve(key, now, max_wait)
        assert self._single is not None
        return self._single.reserve(now, max_wait)

    def try_acquire(self, key: str | None = None) -> bool:
        """A permit now, if one is free (never waits)."""
        return self._reserve(self._key(key), 0.0) is not None

    def reserve(self, max_wait: float, key: str | None = None) -> float | None:
        """Reserves a permit and returns how long to wait for it (<= ``max_wait`` seconds), or
        None when none is due in time (nothing reserved). The caller waits."""
        return self._reserve(self._key(key), _max_wait("max_wait", max_wait))

    def acquire(
        self, key: str | None = None, *, max_wait: float | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        """Takes a permit, waiting up to ``max_wait`` (default: the configured one); raises
        :class:`RateLimited` when none is due in time, :class:`Cancelled` if ``cancel`` is set
        during the wait."""
        key = self._key(key)
        bound = self._config.max_wait if max_wait is None else _max_wait("max_wait", max_wait)
        wait = self._reserve(key, bound)
        if wait is None:
            raise RateLimited(self._name, key)
        if wait <= 0:
            return
        # The wait happens with no lock held: the permit is already ours.
        if cancel is None:
            self._clock.sleep(wait)
        elif isinstance(self._clock, _core.SteadyClock):
            if cancel.wait(wait):
                self._forfeit()
        else:
            self._clock.sleep(wait)
            if cancel.is_set():
                self._forfeit()

    def _forfeit(self) -> NoReturn:
        with self._forfeit_lock:
            self._forfeited += 1
        raise Cancelled("rate limiter wait cancelled")

    def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Runs ``fn(*args, **kwargs)`` once a permit is taken (see :meth:`acquire`)."""
        self.acquire()
        return fn(*args, **kwargs)

    def call_for(self, key: str, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Runs ``fn(*args, **kwargs)`` under ``key``'s rate (per-key limiters)."""
        self.acquire(key)
        return fn(*args, **kwargs)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorates ``fn`` so that every call takes a permit first (single-rate limiters)."""

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            return self.call(fn, *args, **kwargs)

        return guarded

    def available(self, key: str | None = None) -> int:
        """Permits free now without waiting (negative: reserved ahead, bursty mode)."""
        key = self._key(key)
        now = self._clock.now()
        if self._keyed is not None:
            assert key is not None
            return self._keyed.available(key, now)
        assert self._single is not None
        return self._single.available(now)

    def stats(self) -> RateLimitStats:
        """Lifetime counters."""
        native = self._keyed if self._keyed is not None else self._single
        assert native is not None
        s = native.stats()
        with self._forfeit_lock:
            forfeited = self._forfeited
        return RateLimitStats(s.granted, s.reserved, s.rejected, forfeited, s.keys, s.evictions)

    def metrics(self) -> list[Metric]:
        """Prometheus families, labelled ``limiter=<name>`` (keys never become labels)."""
        s = self.stats()
        calls = CounterMetricFamily(
            f"{PREFIX}_rate_limit_calls", "Calls by result.", labels=["limiter", "result"]
        )
        for result, n in (
            ("granted", s.granted), ("waited", s.waited), ("rejected", s.rejected),
            ("forfeited", s.forfeited),
        ):
            calls.add_metric([self._name, result], float(n))
        keys = GaugeMetricFamily(
            f"{PREFIX}_rate_limit_keys", "Keys held by a per-key limiter.", labels=["limiter"]
        )
        keys.add_metric([self._name], float(s.keys))
        evictions = CounterMetricFamily(
            f"{PREFIX}_rate_limit_evictions", "Keys evicted to stay within max_keys.",
            labels=["limiter"],
        )
        evictions.add_metric([self._name], float(s.evictions))
        return [calls, keys, evictions]

    def collector(self) -> Collector:
        """A prometheus_client collector reading this limiter at each scrape."""
        limiter = self

        class _RateCollector(Collector):
            def collect(self) -> Iterator[Metric]:
                return iter(limiter.metrics())

        return _RateCollector()

    def __repr__(self) -> str:
        c = self._config
        return (
            f"RateLimiter(name={self._name!r}, {c.rate:g}/s, mode={c.mode!r},"
            f" burst={c.burst}, per_key={c.per_key})"
        )


# The old constructor's defaults, for its deprecated keywords.
_LEGACY_DEFAULTS: dict[str, Any] = {
    "permits": 10,
    "period": 1.0,
    "mode": "smooth",
    "burst": 1,
    "max_wait": 0.0,
    "per_key": False,
    "max_keys": 10_000,
}

__all__ = ["RateLimit", "RateLimitStats", "RateLimited", "RateLimiter"]
