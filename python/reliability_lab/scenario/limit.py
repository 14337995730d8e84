"""Concurrency and rate limits inside a scenario: :class:`Limit`, at ``intake.limit`` (server
side) and ``<dependency>.limit`` (client side), and :class:`RateLimit`, at
``intake.rate_limit`` and ``<dependency>.rate_limit``.

The algorithms are the native policies of :mod:`reliability_lab.concurrency_limit` (Netflix
concurrency-limits' AIMD, Vegas and Gradient2; Envoy's adaptive-concurrency gradient
controller), described here flat so that every knob is a dotted path a sweep can move
(``{"intake.limit.kind": ["static", "aimd", "gradient2"]}``, ``{"payment.limit.initial": ...}``).

- Client side (``Dependency.limit``): every attempt takes a permit; a refused attempt is a local
  rejection (``rejected_limit``; the order fails with reason ``"limited"``, not retried, as a
  full bulkhead); releasing the permit samples the attempt's RTT, as a *drop* when the
  dependency signalled overload (timeout, connection reset, HTTP 429/502/503/504) and not at
  all when the caller gave up (its own deadline, a shutdown).
- Server side (``Intake.limit``): admitted orders not yet terminal (queued + processing) are
  capped, as Netflix's server-side limiters count a request from the moment it enters the
  server; an order over the limit is rejected at once (status ``"rejected"``, reason
  ``"limited"``). The order's end samples its time in the system, as a drop when it ran out of
  time (``"expired"``, or failed with reason ``"deadline"``).

The limit bounds admissions: a limit that shrinks below the permits held only stops new ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reliability_lab import _schema

LimitKind = Literal["static", "aimd", "vegas", "gradient2", "envoy"]


@dataclass(frozen=True)
class Limit(_schema.Checked):
    """A concurrency limit in a scenario; each ``kind`` reads its own knobs.

    Attributes:
        kind: ``"static"`` (Netflix ``FixedLimit``: stays at ``initial``), ``"aimd"``,
            ``"vegas"``, ``"gradient2"`` or ``"envoy"`` (see :mod:`~reliability_lab.
            concurrency_limit` for each algorithm's rule).
        initial: the limit at the start, in [min, max]; the fixed limit of ``"static"``
            (``"envoy"`` starts at ``min``).
        min: the lowest limit (aimd, gradient2; Envoy's ``min_concurrency``), in [1, max].
        max: the highest limit, in [1, 1e6].
        backoff_ratio: aimd: the factor applied on a drop, in [0.5, 1).
        timeout: aimd: an RTT above it (seconds, in (0, 1e6]) counts as a drop.
        smoothing: vegas, gradient2: in (0, 1]; None uses the algorithm's default (vegas 1.0,
            gradient2 0.2).
        alpha_factor: vegas: an integer in [0, beta_factor].
        beta_factor, threshold_factor: vegas: integers in [0, 1000].
        probe_multiplier: vegas: re-probe the no-load RTT every about ``probe_multiplier *
            limit`` samples, in [1, 1e6].
        queue_size: gradient2: the growth allowance per update, in [0, 1e6].
        long_window: gradient2: samples of the long-term RTT average, in [1, 1e6].
        rtt_tolerance: gradient2: how far above the long RTT the RTT may rise, in [1, 100].
        sample_interval: envoy: seconds between limit updates, in (0, 1e6].
        min_rtt_interval: envoy: seconds between min-RTT measurements, in (0, 1e6].
        jitter: envoy: fraction of ``min_rtt_interval`` added at random, in [0, 1].
        request_count: envoy: samples per min-RTT measurement, in [1, 1e6].
        buffer: envoy: tolerated latency above min RTT, as a fraction, in [0, 10].
        percentile: envoy: the quantile of a window's RTTs taken as its RTT, in (0, 1].
        window: aimd, vegas, gradient2: 0 updates the limit on every sample; > 0 (seconds, at
            most 1e6) once per window of this length (Netflix ``WindowedLimit``), which keeps
            the many samples of one RTT from reacting to the same queue. Must be 0 for envoy.
        window_size: a window needs more than this many samples, in [1, 1e6].
    """

    kind: LimitKind = "gradient2"
    initial: int = 20
    min: int = 1
    max: int = 200
    backoff_ratio: float = 0.9
    timeout: float = 5.0
    smoothing: float | None = None
    alpha_factor: int = 3
    beta_factor: int = 6
    threshold_factor: int = 1
    probe_multiplier: int = 30
    queue_size: int = 4
    long_window: int = 600
    rtt_tolerance: float = 1.5
    sample_interval: float = 0.1
    min_rtt_interval: float = 60.0
    jitter: float = 0.15
    request_count: int = 50
    buffer: float = 0.25
    percentile: float = 0.5
    window: float = 0.0
    window_size: int = 10


RateLimitMode = Literal["smooth", "bursty"]


@dataclass(frozen=True)
class RateLimit(_schema.Checked):
    """A rate limit, on the native policy of :mod:`reliability_lab.rate_limit` (as
    Resilience4j, Polly and failsafe-go ship it): in a scenario, and the configuration of a
    standalone :class:`~reliability_lab.RateLimiter`.

    At ``intake.rate_limit`` it admits arriving orders (before ``intake.limit``): an order
    whose permit is due within ``max_wait`` (and before its deadline) waits for it, admitted
    but not yet queued, then goes on through the other gates; any other is rejected at once
    with reason ``"rate_limited"``. Both engines wait; :class:`~reliability_lab.Lab` parks the
    order off the submitter's thread (``submit()`` returns at once, the order ``pending``
    until its permit), and a shutdown serves or cancels parked orders as queued ones.

    At ``<dependency>.rate_limit`` it paces the dependency's calls (a hedged round is one
    call): a permit due within ``max_wait`` (and before the order's deadline) delays the call,
    any other refuses it and the dependency fails with reason ``"rate_limited"`` (a fallback
    still applies).

    Attributes:
        rate: permits per second, in (0, 1e7].
        burst: ``"smooth"``: permits saved up while idle (GCRA, one permit every 1 / rate);
            ``"bursty"``: permits given at the start of every ``burst / rate`` seconds, unused
            ones not carried over. In [1, 1e9].
        mode: ``"smooth"`` or ``"bursty"``.
        max_wait: seconds an order (intake) or a call (dependency) may wait for its permit,
            in [0, 1e6]; 0 never waits.
        per_key: one rate per order key (``Scenario.num_keys`` keys: a tenant, say).
        max_keys: keys kept when ``per_key`` (the least recently used is evicted and comes back
            with a fresh allowance), in [1, 1e7].
    """

    rate: float = 100.0
    burst: int = 1
    mode: RateLimitMode = "smooth"
    max_wait: float = 0.0
    per_key: bool = False
    max_keys: int = 10_000


__all__ = ["Limit", "LimitKind", "RateLimit", "RateLimitMode"]
