"""Client-side load balancing over replicas, with Envoy-style outlier ejection.

A :class:`LoadBalancer` picks one of ``replicas`` for each call; the caller reports when the
call starts and ends. Kinds (see ``LB_KINDS``):

``round_robin``
    the next replica in order.
``random``
    a uniform choice.
``least_outstanding``
    the replica with the fewest calls in flight (ties broken at random).
``p2c``
    power of two choices: two distinct random replicas, the one with fewer calls in flight
    (Mitzenmacher 2001). Nearly as good as least outstanding, without scanning the pool.
``peak_ewma``
    two random replicas, the one with the lower ``ewma_latency * (outstanding + 1)``, the
    latency estimate jumping to peaks and decaying with time constant ``decay`` (Finagle's
    PeakEwma balancer, as in linkerd).

An :class:`OutlierDetector` ejects replicas that fail ``consecutive_errors`` times in a row or
whose success rate over an ``interval`` falls below ``mean - stdev_factor * stdev`` of the pool,
for ``base_ejection_time * k`` (k grows with repeated ejections, capped by
``max_ejection_time``), never more than ``max_ejection_percent`` of the pool at once, as Envoy
does. A balancer given a detector skips ejected replicas, unless fewer than
``panic_threshold`` percent of the pool are left, when it balances over all of them::

    detector = OutlierDetector(replicas=10, consecutive_errors=5)
    lb = LoadBalancer("p2c", replicas=10, outlier=detector, seed=1)
    result = lb.call(lambda replica: clients[replica].get("/orders"))

Both are pure state machines in C++: time comes from ``clock`` (or ``now=``) and random draws
from a seeded stream, so runs are reproducible and a ``ManualClock`` makes tests instant.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar, get_args

from reliability_lab import _checks, _core
from reliability_lab.clock import Clock, default_clock

R = TypeVar("R")

LbKind = Literal["round_robin", "random", "least_outstanding", "p2c", "peak_ewma"]
#: The load-balancer kinds, in the order of the module docstring.
LB_KINDS: tuple[str, ...] = get_args(LbKind)


def _integer(path: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{path} must be an integer in [{lo}, {hi}], got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{path} must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def _number(path: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{path} must be a number, got {value!r}")
    return _checks.number(path, value)  # an int beyond a float: named, not an OverflowError


def _flag(path: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{path} must be True or False, got {value!r}")
    return value



@dataclass(frozen=True)
class EjectionEvent:
    """An ejection (``ejected=True``) or a return of one replica."""

    time: float
    replica: int
    ejected: bool
    reason: str
    """``"consecutive_errors"`` or ``"success_rate"`` (of the ejection; returns repeat it)."""


@dataclass(frozen=True)
class ReplicaOutlierState:
    """One replica's ejection state."""

    ejected: bool
    times_ejected: int
    backoff: int
    """The multiplier k of the next ejection's length (base_ejection_time * k)."""
    consecutive_errors: int
    ejected_until: float
    """The earliest return (at the first interval tick at or after it); 0 when not ejected."""


@dataclass(frozen=True)
class ReplicaLoad:
    """One replica's counters in a load balancer."""

    outstanding: int
    picks: int
    starts: int
    ends: int
    errors: int
    ewma_latency: float
    """Peak EWMA's latency estimate (seconds) at its last observation."""


class OutlierDetector:
    """Envoy-style outlier ejection over ``replicas`` (thread-safe).

    Args:
        replicas: pool size, in [1, 100000].
        consecutive_errors: errors in a row that eject a replica, in [0, 1000000]; 0 disables.
        interval: seconds between success-rate checks and returns, in (0, 1e6].
        base_ejection_time: the first ejection's length in seconds, in (0, 1e6].
        max_ejection_time: the cap on an ejection's length, in [base_ejection_time, 1e6].
        max_ejection_percent: the largest share of the pool ejected at once, in [0, 100].
        success_rate: whether the success-rate check runs.
        success_rate_minimum_hosts: replicas with enough volume needed for it, in [1, 100000].
        success_rate_request_volume: results in an interval for a replica to count.
        success_rate_stdev_factor: the threshold is ``mean - factor * stdev``, in [0, 100].
        clock: the time source; ticks fall every ``interval`` from its time at construction.

    Defaults are Envoy's (5, 10 s, 30 s, 300 s, 10 %, 5 hosts, 100 requests, 1.9).
    """

    def __init__(
        self,
        replicas: int,
        consecutive_errors: int = 5,
        interval: float = 10.0,
        base_ejection_time: float = 30.0,
        max_ejection_time: float = 300.0,
        max_ejection_percent: float = 10.0,
        success_rate: bool = True,
        success_rate_minimum_hosts: int = 5,
        success_rate_request_volume: int = 100,
        success_rate_stdev_factor: float = 1.9,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock if clock is not None else default_clock()
        config = {
            "consecutive_errors": consecutive_errors,
            "interval": interval,
            "base_ejection_time": base_ejection_time,
            "max_ejection_time": max_ejection_time,
            "max_ejection_percent": max_ejection_percent,
            "success_rate": success_rate,
            "success_rate_minimum_hosts": success_rate_minimum_hosts,
            "success_rate_request_volume": success_rate_request_volume,
            "success_rate_stdev_factor": success_rate_stdev_factor,
        }
        # One config dict, read and checked by the OutlierDetection field table.
        self._native = _core.OutlierDetector(
            config, _integer("outlier.replicas", replicas, 1, 100_000), self._clock.now()
        )

    @property
    def native(self) -> _core.OutlierDetector:
        """The native detector (shared with a :class:`LoadBalancer`)."""
        return self._native

    @property
    def clock(self) -> Clock:
        """The detector's time source."""
        return self._clock

    @property
    def replicas(self) -> int:
        """The pool size."""
        return self._native.replicas

    def _now(self, now: float | None) -> float:
        return _now(self._clock, now)

    def record(self, replica: int, ok: bool, now: float | None = None) -> bool:
        """Records how a call to ``replica`` ended; True when this result ejected it."""
        return self._native.record_result(replica, self._now(now), _flag("ok", ok))

    def advance(self, now: float | None = None) -> None:
        """Runs the interval ticks due up to ``now`` (returns and success-rate ejections)."""
        self._native.advance_to(self._now(now))

    def is_ejected(self, replica: int, now: float | None = None) -> bool:
        """Whether ``replica`` is ejected at ``now`` (runs due ticks first)."""
        self.advance(now)
        return self._native.is_ejected(replica)

    def ejected(self, now: float | None = None) -> list[int]:
        """The ejected replicas at ``now``."""
        self.advance(now)
        return [i for i, e in enumerate(self._native.ejected_mask()) if e]

    def state(self, replica: int) -> ReplicaOutlierState:
        """``replica``'s state as of the last call."""
        s = self._native.state(replica)
        return ReplicaOutlierState(
            s.ejected, s.times_ejected, s.backoff, s.consecutive_errors, s.ejected_until
        )

    def events(self) -> list[EjectionEvent]:
        """Ejections and returns so far, oldest first (the last 4096)."""
        return [
            EjectionEvent(e.time, e.replica, e.ejected, e.reason) for e in self._native.events()
        ]

    @property
    def overflow_count(self) -> int:
        """Ejections refused because of ``max_ejection_percent``."""
        return self._native.overflow_count

    def __repr__(self) -> str:
        return (
            f"OutlierDetector(replicas={self.replicas}, ejected={self._native.ejected_count},"
            f" consecutive_errors={self._native.consecutive_errors})"
        )


def _now(clock: Clock, now: float | None) -> float:
    if now is None:
        return clock.now()
    if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
        raise ValueError(f"now must be a finite number of seconds, got {now!r}")
    return float(now)


class LoadBalancer:
    """Picks a replica for each call (thread-safe).

    Args:
        kind: one of ``LB_KINDS``.
        replicas: pool size, in [1, 100000].
        decay: Peak EWMA's time constant in seconds, in (0, 1e6] (Finagle's default: 10).
        panic_threshold: below this percentage of replicas left (not ejected), in [0, 100],
            picks ignore ejections (Envoy's default: 50). With 0 and every replica ejected,
            :meth:`pick` returns None.
        outlier: an :class:`OutlierDetector` over the same pool; its ejections are skipped and
            :meth:`on_end` reports results to it.
        clock: the time source; with a detector, its clock (the default).
        seed: seeds the random draws, an integer in [0, 2**64); None draws a fresh seed.
    """

    def __init__(
        self,
        kind: LbKind = "p2c",
        replicas: int = 2,
        *,
        decay: float = 10.0,
        panic_threshold: float = 50.0,
        outlier: OutlierDetector | None = None,
        clock: Clock | None = None,
        seed: int | None = None,
    ) -> None:
        if not isinstance(kind, str):
            raise TypeError(f"load_balancer.kind must be one of {LB_KINDS}, got {kind!r}")
        if outlier is not None and not isinstance(outlier, OutlierDetector):
            raise TypeError(
                f"load_balancer.outlier must be an OutlierDetector or None, got {outlier!r}"
            )
        if clock is None:
            clock = outlier.clock if outlier is not None else default_clock()
        elif outlier is not None and clock is not outlier.clock:
            # Two time sources would tick the detector from two different "now"s.
            raise ValueError(
                f"load_balancer.clock must be the outlier detector's clock (or None), got {clock!r}"
            )
        self._clock = clock
        self._outlier = outlier
        config = {
            "kind": kind,
            "replicas": _integer("load_balancer.replicas", replicas, 1, 100_000),
            "decay": _number("load_balancer.decay", decay),
            "panic_threshold": _number("load_balancer.panic_threshold", panic_threshold),
        }  # read by the native field table (cpp/rlab/policy/load_balancer.cc)
        self._native = _core.LoadBalancer(config, outlier.native if outlier is not None else None)
        self._seed = _checks.seed("load_balancer.seed", seed)
        self._rng = _core.RandomStream(self._seed)
        self._rng_lock = threading.Lock()

    @property
    def native(self) -> _core.LoadBalancer:
        """The native balancer."""
        return self._native

    @property
    def kind(self) -> str:
        """The balancer's kind."""
        return self._native.kind

    @property
    def replicas(self) -> int:
        """The pool size."""
        return self._native.replicas

    @property
    def outlier(self) -> OutlierDetector | None:
        """The outlier detector, if any."""
        return self._outlier

    @property
    def seed(self) -> int:
        """The seed of the balancer's random draws."""
        return self._seed

    def pick(self, now: float | None = None) -> int | None:
        """A replica for a call at ``now``; None when no replica is available."""
        t = _now(self._clock, now)
        with self._rng_lock:
            u1 = self._rng.uniform01()
            u2 = self._rng.uniform01()
        chosen = self._native.pick(t, u1, u2)
        return None if chosen < 0 else chosen

    def on_start(self, replica: int) -> None:
        """A call to ``replica`` starts."""
        self._native.on_start(replica)

    def on_end(
        self, replica: int, latency: float, ok: bool = True, now: float | None = None
    ) -> None:
        """A call to ``replica`` ended after ``latency`` seconds; ``ok`` if it succeeded.

        An end without a matching start is ignored.
        """
        self._native.on_end(
            replica,
            _now(self._clock, now),
            _number("latency", latency),
            _flag("ok", ok),
        )

    def call(self, fn: Callable[[int], R]) -> R:
        """Picks a replica, runs ``fn(replica)`` and reports how it ended (an exception is a
        failure, re-raised). Raises LookupError when no replica is available."""
        replica = self.pick()
        if replica is None:
            raise LookupError("load balancer: no replica available (all ejected, no panic)")
        start = self._clock.now()
        self._native.on_start(replica)
        ok = False
        try:
            result = fn(replica)
            ok = True
            return result
        finally:
            end = self._clock.now()
            self._native.on_end(replica, end, max(0.0, end - start), ok)

    def set_ejected(self, replica: int, ejected: bool) -> None:
        """Ejects ``replica`` by hand (or returns it), besides the detector's ejections."""
        self._native.set_ejected(replica, _flag("ejected", ejected))

    def in_panic(self) -> bool:
        """Whether too few replicas are left, so that picks ignore ejections."""
        return self._native.in_panic()

    def cost(self, replica: int, now: float | None = None) -> float:
        """The balancer's cost of ``replica``: for Peak EWMA, the decayed latency estimate in
        seconds times (outstanding + 1) (a replica with calls in flight and no latency seen yet
        costs a huge penalty); for the other kinds, outstanding + 1."""
        return self._native.cost(replica, _now(self._clock, now))

    def load(self, replica: int) -> ReplicaLoad:
        """``replica``'s counters."""
        x = self._native.load(replica)
        return ReplicaLoad(x.outstanding, x.picks, x.starts, x.ends, x.errors, x.ewma_latency)

    @property
    def panic_picks(self) -> int:
        """Picks made in panic (ejections ignored)."""
        return self._native.panic_picks

    def __repr__(self) -> str:
        return f"LoadBalancer(kind={self.kind!r}, replicas={self.replicas})"


__all__ = [
    "LB_KINDS",
    "EjectionEvent",
    "LbKind",
    "LoadBalancer",
    "OutlierDetector",
    "ReplicaLoad",
    "ReplicaOutlierState",
]
