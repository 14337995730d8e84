"""A dependency served by a pool of replicas, behind a client-side load balancer with optional
outlier ejection (issue #14).

The shape, and why: a pool is written as *one* fault model (the dependency's ``faults``, which
every replica runs, capacity included: each replica has its own server line) plus the few
replicas that differ (``overrides``). A pool of 100 identical replicas is then
``Replicas(count=100)``, and the experiment everyone wants, "one replica is slow", is one
override::

    Dependency(
        "payment",
        faults=Faults(latency=Exponential(mean=0.02), capacity=Capacity(max_in_service=4)),
        replicas=Replicas(
            count=10,
            balancer="p2c",
            outlier=OutlierDetection(consecutive_errors=5),
            overrides=[ReplicaOverride(3, Faults(latency=Exponential(mean=0.2)))],
        ),
    )

A list of ``count`` fault models would make the common case (a homogeneous pool) long, hide
the one odd replica in the list, and tie the list's length to ``count`` (a sweep over ``count``
would have to rewrite the list). A mapping ``{index: Faults}`` says the same as ``overrides``
but does not survive JSON (keys become strings) nor the dotted paths of
:meth:`Scenario.replace` (``payment.replicas.overrides[0].faults.failure_rate`` works as every
other list element does).

Every attempt (every copy of a hedged or fanned-out call) goes to the replica the balancer
picks among those not ejected, is served by that replica's fault model and capacity line, and
reports its outcome and latency to the balancer (outstanding calls, Peak EWMA) and to the
outlier detector (successes and 4xx as ok; 5xx, 408, 429, timeouts and resets as errors; an
attempt the caller gave up on is not reported). With every replica ejected and a panic
threshold of 0, an attempt fails at once with HTTP 503 (Envoy's "no healthy upstream").

The dependency's breaker, retry, budget, bulkhead, throttle and hedging stay shared by the
whole pool (a client-side breaker in front of a balancer). Per replica there are two guards,
independent of each other:

* outlier ejection (Envoy's view of a per-replica breaker): ejected replicas leave the
  balancer's choice, unless too few are left (``panic_threshold``);
* ``breaker``: each replica gets its own :class:`~reliability_lab.breaker.Breaker` built from
  this config, fed with that replica's attempt outcomes (the shared breaker's classification:
  5xx, 408, 429, timeouts and resets fail; 4xx succeed; a cancelled hedge copy, the order's
  deadline or a shutdown are ignored and free a half-open probe slot). The balancer picks only
  among replicas whose breaker admits a call (closed, or half-open with a probe slot free), as
  Finagle's and Envoy's balancers pick among available hosts; panic never brings back a
  replica whose breaker refuses. When no replica's breaker admits, the attempt is rejected
  locally as ``breaker_open``, exactly as the shared breaker's rejection is (no call, counted
  in ``rejected_breaker``; what follows is the retry policy's business).

With both a dependency ``breaker`` and per-replica breakers, the shared one is asked first (in
the order flow); a replica breaker is asked only for an attempt the shared one admitted. An
ejected replica's breaker keeps its state (it hears nothing while ejected), and a replica is
never ejected because its breaker opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reliability_lab import _schema
from reliability_lab.breaker import Breaker
from reliability_lab.scenario.faults import Faults

BalancerKind = Literal["round_robin", "random", "least_outstanding", "p2c", "peak_ewma"]
_BALANCERS = ("round_robin", "random", "least_outstanding", "p2c", "peak_ewma")
_MAX_REPLICAS = 1000  # the core's kMaxReplicas: bounds the `replica` metric label


@dataclass(frozen=True)
class OutlierDetection(_schema.Checked):
    """Envoy's outlier detection over a dependency's replicas (defaults: Envoy's).

    A replica is ejected when ``consecutive_errors`` of its attempts in a row fail, or (with
    ``success_rate``) when, at an ``interval`` tick, its success rate over the interval is below
    ``mean - success_rate_stdev_factor * stdev`` of the replicas with at least
    ``success_rate_request_volume`` results (when at least ``success_rate_minimum_hosts`` have
    them). An ejection lasts ``base_ejection_time * k`` (k counts recent ejections), at most
    ``max_ejection_time``; replicas return at interval ticks. No ejection may leave more than
    ``max_ejection_percent`` of the pool ejected; below the pool's ``panic_threshold`` the
    balancer ignores ejections. The cap counts the ejection being decided and is strict (as
    the lab's :class:`~reliability_lab.OutlierDetector`; newer Envoy may eject one host past
    it): with the default 10 %, no replica of a pool smaller than 10 is ever ejected.

    Attributes:
        consecutive_errors: errors in a row that eject, in [0, 1000000]; 0 turns it off.
        interval: seconds between ticks (success-rate checks and returns), in (0, 1e6].
        base_ejection_time: the first ejection's length, seconds in (0, 1e6].
        max_ejection_time: the cap on an ejection's length, seconds in
            [base_ejection_time, 1e6].
        max_ejection_percent: the largest share of the pool ejected at once, in [0, 100].
        success_rate: whether the success-rate check runs.
        success_rate_minimum_hosts: replicas with enough volume needed, in [1, 100000].
        success_rate_request_volume: results in an interval for a replica to count, in
            [1, 1e9].
        success_rate_stdev_factor: the threshold's factor, in [0, 100].
    """

    consecutive_errors: int = 5
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_time: float = 300.0
    max_ejection_percent: float = 10.0
    success_rate: bool = True
    success_rate_minimum_hosts: int = 5
    success_rate_request_volume: int = 100
    success_rate_stdev_factor: float = 1.9


@dataclass(frozen=True)
class ReplicaOverride(_schema.Checked):
    """One replica whose fault model differs from the dependency's.

    Attributes:
        index: the replica, in [0, count) of its :class:`Replicas`; unique among the overrides.
        faults: its whole fault model (latency, failures, phases, capacity) in place of the
            dependency's.
    """

    index: int = 0
    faults: Faults = Faults()  # noqa: RUF009 (frozen: immutable, from another module)


@dataclass(frozen=True)
class Replicas(_schema.Checked):
    """A dependency served by ``count`` replicas (see the module docstring for the model).

    Attributes:
        count: replicas in the pool, in [1, 1000].
        balancer: ``"round_robin"``, ``"random"``, ``"least_outstanding"``, ``"p2c"`` (power of
            two choices) or ``"peak_ewma"`` (see :class:`~reliability_lab.LoadBalancer`).
        decay: Peak EWMA's time constant, seconds in (0, 1e6].
        panic_threshold: below this share (percent, in [0, 100]) of replicas not ejected, the
            balancer ignores ejections (Envoy's healthy_panic_threshold).
        outlier: an :class:`OutlierDetection`, or None (no ejection).
        overrides: the replicas whose fault model differs (:class:`ReplicaOverride`); the others
            run the dependency's ``faults``.
        breaker: a :class:`~reliability_lab.breaker.Breaker` each replica gets its own copy of
            (see the module docstring), or None (no per-replica breakers).
    """

    count: int = 2
    balancer: BalancerKind = "round_robin"
    decay: float = 10.0
    panic_threshold: float = 50.0
    outlier: OutlierDetection | None = None
    overrides: tuple[ReplicaOverride, ...] = ()
    breaker: Breaker | None = None


__all__ = ["BalancerKind", "OutlierDetection", "ReplicaOverride", "Replicas"]
