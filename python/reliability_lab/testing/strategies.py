"""Hypothesis strategies for every configuration object of the lab.

Every strategy builds values that pass the real validators (the dataclasses' own checks and, for a
:class:`~reliability_lab.scenario.Scenario`, the native validator the engines use), and shrinks
towards simple values: no policy (None) before a policy, the default failure mix, a constant
latency, no phases, Poisson arrivals. The default bounds keep a generated scenario cheap to
simulate (seconds of virtual time, tens of orders per second); every bound can be fixed by the
caller, and every argument takes either a strategy or a plain value (used as it is)::

    from hypothesis import given, strategies as st
    from reliability_lab.testing.strategies import st_scenario

    @given(st_scenario(failure_rate=st.floats(0, 0.4), breaker=Breaker(consecutive_failures=3)))
    def test_my_settings(sc): ...

Policy arguments (``retry``, ``breaker``, ``budget``, ``bulkhead``, ``throttle``) accept None to
leave the policy out. Needs the ``hypothesis`` package (the ``testing`` extra).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from reliability_lab.backoff import JITTER_MODES, Backoff
from reliability_lab.breaker import Breaker
from reliability_lab.budget import RatioBudgetConfig, TokenBucketConfig
from reliability_lab.bulkhead import BulkheadConfig
from reliability_lab.retry import DEFAULT_RETRY_ON, RetryConfig
from reliability_lab.scenario import (
    Arrivals,
    Budget,
    Capacity,
    ClosedLoop,
    Constant,
    ConstantRate,
    Dependency,
    Exponential,
    FailureMix,
    Fallback,
    Faults,
    Latency,
    LogNormal,
    Mixture,
    Phase,
    Poisson,
    RateSegment,
    Scenario,
    Schedule,
    SimpleLatency,
    Trace,
    Uniform,
)
from reliability_lab.scenario.latency import mean_of
from reliability_lab.throttle import Throttle

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def _cached(fn: F) -> F:
    """Memoises a strategy factory: strategies are immutable, and building (and validating)
    them anew inside every draw would make generation several times slower. Calls with an
    unhashable argument (a list of phases...) are not memoised."""
    memo = functools.cache(fn)

    @functools.wraps(fn)
    def factory(*args: Any, **kwargs: Any) -> Any:
        try:
            hash((args, tuple(kwargs.items())))
        except TypeError:
            return fn(*args, **kwargs)
        return memo(*args, **kwargs)

    return cast(F, factory)


class _Default:
    """The marker of an argument left to the strategy's own default."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Any = _Default()
"""Passed explicitly, an argument keeps its default strategy (the same as leaving it out)."""


def _s(
    value: Any, default: SearchStrategy[T] | Callable[[], SearchStrategy[T]]
) -> SearchStrategy[T]:
    """``value`` as a strategy: the default when left out, itself when a strategy, else fixed."""
    if value is DEFAULT:
        return default() if callable(default) else default
    if isinstance(value, SearchStrategy):
        return value
    return st.just(value)


def _floats(lo: float, hi: float) -> SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def _zero_or(lo: float, hi: float) -> SearchStrategy[float]:
    """0.0 (what shrinks first) or a float in [lo, hi]."""
    return st.just(0.0) | _floats(lo, hi)


def _opt(value: Any, make: Callable[[], SearchStrategy[T]]) -> SearchStrategy[T | None]:
    """An optional policy: None first (it shrinks to none), else the policy's strategy."""
    if value is DEFAULT:
        return st.none() | make()
    return _s(value, make)


# ------------------------------------------------------------------------------------------------
# Latency


@_cached
def st_simple_latency(max_seconds: float = 0.1) -> SearchStrategy[SimpleLatency]:
    """A :class:`Constant`, :class:`Exponential`, :class:`LogNormal` or :class:`Uniform` latency
    whose mean stays within ``max_seconds`` (log-normal medians; sigma in [0, 1.5])."""
    x = _floats(0.0, max_seconds)
    return st.one_of(
        x.map(Constant),
        x.map(Exponential),
        st.builds(LogNormal, x, _floats(0.0, 1.5)),
        st.tuples(x, x).map(lambda p: Uniform(min(p), max(p))),
    )


@_cached
def st_latency(max_seconds: float = 0.1, *, mixtures: bool = True) -> SearchStrategy[Latency]:
    """Any latency distribution (:func:`st_simple_latency`, or a :class:`Mixture` of 1 to 3 of
    them with weights in [0.01, 100])."""
    simple = st_simple_latency(max_seconds)
    if not mixtures:
        return simple
    mixture = st.lists(st.tuples(_floats(0.01, 100.0), simple), min_size=1, max_size=3).map(
        lambda pairs: Mixture.of(*pairs)
    )
    return st.one_of(simple, mixture)


# ------------------------------------------------------------------------------------------------
# Faults


@st.composite
def _mix(draw: st.DrawFn, retry_after: SearchStrategy[float]) -> FailureMix:
    w = _zero_or(0.01, 10.0)
    weights = {k: draw(w) for k in ("http500", "http503", "http429", "timeout", "connection_reset")}
    if sum(weights.values()) == 0:
        weights["http503"] = 1.0  # a usable mix needs a positive total
    return FailureMix(**weights, retry_after=draw(retry_after))


@_cached
def st_failure_mix(retry_after: Any = DEFAULT) -> SearchStrategy[FailureMix]:
    """A :class:`FailureMix` with a positive total weight (every weight 0 or in [0.01, 10]);
    shrinks to the default mix (all 503). ``retry_after``: seconds, default in [0, 5]."""
    return st.just(FailureMix()) | _mix(_s(retry_after, _floats(0.0, 5.0)))


_PHASE_KINDS = ("outage", "brownout", "recovery")


@st.composite
def _phases(
    draw: st.DrawFn,
    horizon: float,
    max_phases: int,
    failure_rate: SearchStrategy[float],
    latency: SearchStrategy[Latency],
) -> tuple[Phase, ...]:
    # Phase edges on a millisecond grid inside [0, horizon]: distinct, so windows never touch
    # zero width, and sorted, so consecutive pairs never overlap.
    grid = max(1, int(horizon * 1000))
    n = draw(st.integers(0, min(max_phases, grid // 2)))
    if n == 0:
        return ()
    edges = sorted(draw(st.lists(st.integers(0, grid), min_size=2 * n, max_size=2 * n,
                                 unique=True)))
    kinds = [draw(st.sampled_from(_PHASE_KINDS)) for _ in range(n)]
    phases = []
    for i, kind in enumerate(kinds):
        name = kind if kinds.count(kind) == 1 else f"{kind}_{i}"
        start, end = edges[2 * i] / 1000, edges[2 * i + 1] / 1000
        if kind == "outage":
            rate: float | None = 1.0
        else:
            rate = draw(st.none() | failure_rate)
        phases.append(
            Phase(
                name,
                start,
                end,
                failure_rate=rate,
                mix=draw(st.none() | st_failure_mix()),
                latency=draw(st.none() | latency),
                latency_multiplier=draw(st.just(1.0) | _floats(0.1, 10.0)),
            )
        )
    return tuple(phases)


@_cached
def st_phases(
    horizon: float = 10.0,
    *,
    max_phases: int = 3,
    failure_rate: Any = DEFAULT,
    latency: Any = DEFAULT,
) -> SearchStrategy[tuple[Phase, ...]]:
    """0 to ``max_phases`` non-overlapping :class:`Phase` windows inside ``[0, horizon]``
    seconds (outages, brownouts, recoveries), shrinking to none."""
    return _phases(
        horizon, max_phases, _s(failure_rate, _floats(0.0, 1.0)), _s(latency, st_latency)
    )


@_cached
def st_capacity(max_in_service: int = 64) -> SearchStrategy[Capacity]:
    """A :class:`Capacity`; shrinks to the default (unlimited)."""
    return st.just(Capacity()) | st.builds(
        Capacity,
        max_in_service=st.integers(0, max_in_service),
        max_queue=st.integers(-1, 256),
        load_slope=_zero_or(0.001, 1.0),
        load_knee=st.integers(0, 64),
        drop_abandoned=st.booleans(),
    )


@st.composite
def _faults(
    draw: st.DrawFn,
    failure_rate: SearchStrategy[float],
    mix: SearchStrategy[FailureMix],
    latency: SearchStrategy[Latency],
    phases: SearchStrategy[tuple[Phase, ...]],
    capacity: SearchStrategy[Capacity],
    ambiguous_rate: SearchStrategy[float],
    hang: SearchStrategy[float],
) -> Faults:
    return Faults(
        failure_rate=draw(failure_rate),
        mix=draw(mix),
        latency=draw(latency),
        phases=draw(phases),
        capacity=draw(capacity),
        ambiguous_rate=draw(ambiguous_rate),
        hang=draw(hang),
    )


@_cached
def st_faults(
    *,
    failure_rate: Any = DEFAULT,
    mix: Any = DEFAULT,
    latency: Any = DEFAULT,
    phases: Any = DEFAULT,
    capacity: Any = DEFAULT,
    ambiguous_rate: Any = DEFAULT,
    hang: Any = DEFAULT,
    horizon: float = 10.0,
) -> SearchStrategy[Faults]:
    """A :class:`Faults` model. Defaults: failure rate in [0, 1], any mix, latency up to 0.1 s,
    up to 3 phases inside ``[0, horizon]``, default capacity first, no ambiguous commits first,
    hangs of 30 s (the default) first, else 0.1 to 10 s."""
    return _faults(
        _s(failure_rate, _floats(0.0, 1.0)),
        _s(mix, st_failure_mix),
        _s(latency, st_latency),
        _s(phases, lambda: st_phases(horizon)),
        _s(capacity, st_capacity),
        _s(ambiguous_rate, _zero_or(0.0, 0.2)),
        _s(hang, st.just(30.0) | _floats(0.1, 10.0)),
    )


# ------------------------------------------------------------------------------------------------
# Policies


@st.composite
def _backoff(draw: st.DrawFn, max_delay: float) -> Backoff:
    initial = draw(_floats(0.0, max_delay))
    return Backoff(
        initial=initial,
        multiplier=draw(_floats(1.0, 4.0)),
        max_delay=draw(_floats(initial, max_delay)),
        jitter=draw(st.sampled_from(JITTER_MODES)),
        jitter_factor=draw(_floats(0.0, 1.0)),
    )


@_cached
def st_backoff(max_delay: float = 5.0) -> SearchStrategy[Backoff]:
    """A :class:`Backoff` with delays up to ``max_delay`` seconds; shrinks to the default."""
    return st.just(Backoff(max_delay=max(0.1, max_delay))) | _backoff(max_delay)


@_cached
def st_retry(
    *,
    max_attempts: Any = DEFAULT,
    backoff: Any = DEFAULT,
    retry_on: Any = DEFAULT,
    max_retry_after: Any = DEFAULT,
) -> SearchStrategy[RetryConfig]:
    """A :class:`RetryConfig` (a scenario's ``<dependency>.retry``): 2 to 5 attempts, a subset of
    the default retryable outcomes, Retry-After capped in [0, 60]."""
    return st.builds(
        RetryConfig,
        max_attempts=_s(max_attempts, st.integers(2, 5)),
        backoff=_s(backoff, st_backoff),
        retry_on=_s(
            retry_on,
            st.just(DEFAULT_RETRY_ON)
            | st.lists(st.sampled_from(DEFAULT_RETRY_ON), min_size=1, unique=True).map(tuple),
        ),
        max_retry_after=_s(max_retry_after, _floats(0.0, 60.0)),
    )


@st.composite
def _breaker(draw: st.DrawFn, consecutive: SearchStrategy[int],
             open_for: SearchStrategy[float]) -> Breaker:
    failure_rate_threshold = draw(_zero_or(0.05, 1.0))
    slow = draw(_zero_or(0.05, 1.0))
    slow_duration = draw(_floats(0.001, 1.0)) if slow > 0 else draw(_zero_or(0.001, 1.0))
    n = draw(consecutive)
    if n == 0 and failure_rate_threshold == 0 and slow == 0:
        failure_rate_threshold = 0.5  # some trip policy must be enabled
    window: Literal["count", "time"] = draw(st.sampled_from(("count", "time")))
    base = draw(open_for)
    return Breaker(
        consecutive_failures=n,
        failure_rate_threshold=failure_rate_threshold,
        slow_call_rate_threshold=slow,
        slow_call_duration=slow_duration,
        window=window,
        window_size=draw(st.integers(1, 200)),
        window_duration=draw(_floats(0.1, 120.0)),
        window_buckets=draw(st.integers(1, 20)),
        minimum_calls=draw(st.integers(1, 50)),
        open_for=base,
        open_growth=draw(st.just(1.0) | _floats(1.0, 4.0)),
        max_open_for=draw(st.just(0.0) | _floats(base, max(base, 120.0))),
        half_open_max_calls=draw(st.integers(1, 5)),
        success_threshold=draw(st.integers(1, 5)),
    )


@_cached
def st_breaker(
    *, consecutive_failures: Any = DEFAULT, open_for: Any = DEFAULT
) -> SearchStrategy[Breaker]:
    """A :class:`Breaker` with at least one trip policy; shrinks to the default breaker.
    ``consecutive_failures`` default in [0, 20], ``open_for`` in [0.01, 30] seconds."""
    return st.just(Breaker()) | _breaker(
        _s(consecutive_failures, st.integers(0, 20)), _s(open_for, _floats(0.01, 30.0))
    )


@_cached
def st_token_bucket() -> SearchStrategy[TokenBucketConfig]:
    """A :class:`TokenBucketConfig` (gRFC A6): max_tokens in [0.01, 100], ratio in [0.01, 10]."""
    return st.just(TokenBucketConfig()) | st.builds(
        TokenBucketConfig, _floats(0.01, 100.0), _floats(0.01, 10.0)
    )


@_cached
def st_ratio_budget() -> SearchStrategy[RatioBudgetConfig]:
    """A :class:`RatioBudgetConfig` (Finagle's retry budget)."""
    return st.just(RatioBudgetConfig()) | st.builds(
        RatioBudgetConfig,
        ratio=_floats(0.0, 10.0),
        window=_floats(0.1, 60.0),
        min_retries_per_second=_floats(0.0, 100.0),
        buckets=st.integers(1, 20),
    )


@_cached
def st_budget() -> SearchStrategy[Budget]:
    """A token bucket or a ratio budget."""
    return st.one_of(st_token_bucket(), st_ratio_budget())


@_cached
def st_bulkhead(max_concurrent: int = 64) -> SearchStrategy[BulkheadConfig]:
    """A :class:`BulkheadConfig`: 1 to ``max_concurrent`` slots, a waiting room of 0 to 64,
    waits unbounded or up to 10 s."""
    return st.builds(
        BulkheadConfig,
        max_concurrent=st.integers(1, max_concurrent),
        max_waiting=st.integers(0, 64),
        max_wait=st.none() | _floats(0.0, 10.0),
    )


@_cached
def st_throttle() -> SearchStrategy[Throttle]:
    """A :class:`Throttle` (adaptive throttling): k in [1, 10], window in [0.1, 300] s."""
    return st.just(Throttle()) | st.builds(
        Throttle, k=_floats(1.0, 10.0), window=_floats(0.1, 300.0),
        buckets=st.integers(1, 120),
    )


@_cached
def st_fallback() -> SearchStrategy[Fallback]:
    """A :class:`Fallback`; shrinks to none."""
    return st.just(Fallback()) | st.builds(
        Fallback,
        kind=st.sampled_from(("cache", "default", "cache_or_default")),
        cache_capacity=st.integers(1, 1000),
        cache_ttl=_floats(0.1, 600.0),
    )


# ------------------------------------------------------------------------------------------------
# Dependencies and scenarios


@st.composite
def _dependency(draw: st.DrawFn, name: str, parts: dict[str, SearchStrategy[Any]]) -> Dependency:
    values = {k: draw(s) for k, s in parts.items()}
    if values["charges"]:
        values["fallback"] = Fallback()  # a charging dependency cannot fall back
    return Dependency(name, **values)


@_cached
def st_dependency(
    name: str = "payment",
    *,
    faults: Any = DEFAULT,
    failure_rate: Any = DEFAULT,
    retry: Any = DEFAULT,
    breaker: Any = DEFAULT,
    budget: Any = DEFAULT,
    bulkhead: Any = DEFAULT,
    throttle: Any = DEFAULT,
    attempt_timeout: Any = DEFAULT,
    composition: Any = DEFAULT,
    fallback: Any = DEFAULT,
    idempotency_keys: Any = DEFAULT,
    charges: Any = DEFAULT,
    horizon: float = 10.0,
) -> SearchStrategy[Dependency]:
    """A :class:`Dependency` called ``name``; every policy None first. ``failure_rate`` goes to
    the default fault model (ignored when ``faults`` is given); phases fall inside
    ``[0, horizon]``. A dependency that charges gets no fallback."""
    if faults is not DEFAULT and failure_rate is not DEFAULT:
        raise TypeError("give either faults or failure_rate (of the default faults), not both")
    parts: dict[str, SearchStrategy[Any]] = {
        "faults": _s(faults, lambda: st_faults(failure_rate=failure_rate, horizon=horizon)),
        "retry": _opt(retry, st_retry),
        "breaker": _opt(breaker, st_breaker),
        "budget": _opt(budget, st_budget),
        "bulkhead": _opt(bulkhead, st_bulkhead),
        "throttle": _opt(throttle, st_throttle),
        "attempt_timeout": _s(attempt_timeout, _zero_or(0.01, 5.0)),
        "composition": _s(
            composition, st.sampled_from(("retry_outside_breaker", "breaker_outside_retry"))
        ),
        "fallback": _s(fallback, st_fallback),
        "idempotency_keys": _s(idempotency_keys, st.sampled_from((True, False))),
        "charges": _s(charges, st.booleans()),
    }
    return _dependency(name, parts)


@st.composite
def _schedule(draw: st.DrawFn, horizon: float, max_rate: float) -> Schedule:
    grid = max(2, int(horizon * 1000))
    n = draw(st.integers(1, 3))
    edges = sorted(draw(st.lists(st.integers(0, grid), min_size=n + 1, max_size=n + 1,
                                 unique=True)))
    rates = [draw(_floats(0.0, max_rate)) for _ in range(2 * n)]
    rates[0] = max(rates[0], 1.0)  # some segment must have a positive rate
    return Schedule(
        [RateSegment(edges[i] / 1000, edges[i + 1] / 1000, rates[2 * i], rates[2 * i + 1])
         for i in range(n)]
    )


@_cached
def st_arrivals(
    *, max_rate: float = 100.0, horizon: float = 10.0, max_clients: int = 20
) -> SearchStrategy[Arrivals]:
    """Arrivals: Poisson (first), constant-rate, a rate schedule or a trace inside
    ``[0, horizon]``, or a closed loop of up to ``max_clients`` clients (think time with a
    positive mean); rates in [1, ``max_rate``] orders per second."""
    rate = _floats(1.0, max_rate)
    trace = st.lists(_floats(0.0, horizon), min_size=1, max_size=50).map(
        lambda ts: Trace(sorted(ts))
    )
    # A think time that is always zero, with calls that answer in zero time, is a loop that never
    # advances the virtual clock (the simulator stops it with an error): think times here have a
    # positive mean.
    closed = st.builds(
        ClosedLoop,
        clients=st.integers(1, max_clients),
        think_time=st_latency(1.0).filter(lambda d: mean_of(d) > 0),
    )
    return st.one_of(
        rate.map(Poisson), rate.map(ConstantRate), _schedule(horizon, max_rate), trace, closed
    )


@st.composite
def _scenario(draw: st.DrawFn, parts: dict[str, Any], dep: dict[str, Any]) -> Scenario:
    duration = draw(parts["duration"])
    if dep["dependencies"] is DEFAULT:
        deps: Any = (draw(st_dependency(horizon=duration, **dep["policies"])),)
    else:
        deps = draw(_s(dep["dependencies"], st.nothing))
        if isinstance(deps, Dependency):
            deps = (deps,)
    arrivals = draw(_s(dep["arrivals"], lambda: st_arrivals(horizon=duration)))
    values = {k: draw(s) for k, s in parts.items() if k != "duration"}
    return Scenario(arrivals=arrivals, duration=duration, dependencies=deps, **values)


def st_scenario(
    *,
    arrivals: Any = DEFAULT,
    duration: Any = DEFAULT,
    workers: Any = DEFAULT,
    queue_capacity: Any = DEFAULT,
    seed: Any = DEFAULT,
    dependencies: Any = DEFAULT,
    order_deadline: Any = DEFAULT,
    release_worker_during_backoff: Any = DEFAULT,
    num_keys: Any = DEFAULT,
    sample_every: Any = DEFAULT,
    record_orders: Any = DEFAULT,
    record_events: Any = DEFAULT,
    faults: Any = DEFAULT,
    failure_rate: Any = DEFAULT,
    retry: Any = DEFAULT,
    breaker: Any = DEFAULT,
    budget: Any = DEFAULT,
    bulkhead: Any = DEFAULT,
    throttle: Any = DEFAULT,
    attempt_timeout: Any = DEFAULT,
    composition: Any = DEFAULT,
    fallback: Any = DEFAULT,
    charges: Any = DEFAULT,
) -> SearchStrategy[Scenario]:
    """A :class:`Scenario`, valid by construction (the native validator agrees).

    Defaults keep runs short: 1 to 10 s of arrivals at up to 100 orders/s, 1 to 32 workers, a
    queue of 0 to 256. Fields shrink to their defaults where the default is cheap to run (seed 0,
    8 workers, a queue of 64, no deadline, records kept...), so that the dotted-path diff of a
    shrunk failing example (:func:`~reliability_lab.testing.scenario_diff`) names only what
    matters. The dependency arguments (``faults``, ``failure_rate``,
    ``retry``, ``breaker``, ``budget``, ``bulkhead``, ``throttle``, ``attempt_timeout``,
    ``composition``, ``fallback``, ``charges``) shape the one default dependency, ``payment``;
    ``dependencies`` replaces it (a strategy of a sequence of :class:`Dependency`, or one).
    """
    parts: dict[str, Any] = {
        "duration": _s(duration, _floats(1.0, 10.0)),
        "workers": _s(workers, st.just(8) | st.integers(1, 32)),
        "queue_capacity": _s(queue_capacity, st.just(64) | st.integers(0, 256)),
        "seed": _s(seed, st.integers(0, 2**32)),
        "order_deadline": _s(order_deadline, _zero_or(0.05, 10.0)),
        "release_worker_during_backoff": _s(release_worker_during_backoff, st.booleans()),
        "num_keys": _s(num_keys, st.just(1000) | st.integers(1, 1000)),
        "sample_every": _s(sample_every, st.just(1.0) | _zero_or(0.1, 5.0)),
        "record_orders": _s(record_orders, st.sampled_from((True, False))),
        "record_events": _s(record_events, st.sampled_from((True, False))),
    }
    policies = {
        "faults": faults,
        "failure_rate": failure_rate,
        "retry": retry,
        "breaker": breaker,
        "budget": budget,
        "bulkhead": bulkhead,
        "throttle": throttle,
        "attempt_timeout": attempt_timeout,
        "composition": composition,
        "fallback": fallback,
        "charges": charges,
    }
    policies = {k: v for k, v in policies.items() if v is not DEFAULT}
    if dependencies is not DEFAULT and policies:
        raise TypeError(
            f"give either dependencies or the default dependency's settings, not both "
            f"(got dependencies and {', '.join(policies)})"
        )
    dep = {"dependencies": dependencies, "arrivals": arrivals, "policies": policies}
    return _scenario(parts, dep)


__all__ = [
    "DEFAULT",
    "st_arrivals",
    "st_backoff",
    "st_breaker",
    "st_budget",
    "st_bulkhead",
    "st_capacity",
    "st_dependency",
    "st_failure_mix",
    "st_fallback",
    "st_faults",
    "st_latency",
    "st_phases",
    "st_ratio_budget",
    "st_retry",
    "st_scenario",
    "st_simple_latency",
    "st_throttle",
    "st_token_bucket",
]
