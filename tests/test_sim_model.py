"""The pipeline model in the simulated engine: arrivals, compositions, fallbacks, capacity,
ambiguous charges, Retry-After, bulkheads and throttling, each in a scripted scenario."""

from __future__ import annotations

import dataclasses

import pytest
import reliability_lab as rl
from reliability_lab.bulkhead import BulkheadConfig
from reliability_lab.throttle import Throttle

FAST = rl.Constant(0.001)


def one_dep(**dep: object) -> rl.Dependency:
    return rl.Dependency("payment", **dep)  # type: ignore[arg-type]


def test_rate_schedule_follows_its_steps() -> None:
    sc = rl.Scenario(
        arrivals=rl.Schedule.steps([(0.0, 50.0), (100.0, 200.0)], end=200.0),
        duration=200.0,
        workers=64,
        seed=1,
        dependencies=(one_dep(faults=rl.Faults(latency=FAST)),),
    )
    r = rl.simulate(sc)
    assert r.orders is not None
    first = (r.orders["arrival"] < 100).sum()
    second = (r.orders["arrival"] >= 100).sum()
    assert first == pytest.approx(50 * 100, rel=0.05)
    assert second == pytest.approx(200 * 100, rel=0.05)


def test_breaker_outside_retry_admits_the_whole_loop_once() -> None:
    base = rl.Scenario(
        arrivals=rl.ConstantRate(rate=10),
        workers=1,
        duration=30,
        dependencies=(
            one_dep(
                faults=rl.Faults(latency=FAST, phases=(rl.Outage(start=10, end=20),)),
                retry=rl.RetryConfig(
                    max_attempts=3,
                    backoff=rl.Backoff(initial=0.001, max_delay=0.01, jitter="none"),
                ),
                breaker=rl.Breaker(consecutive_failures=2, open_for=5.0),
            ),
        ),
    )
    inside = rl.simulate(base)
    outside = rl.simulate(base.replace({"payment.composition": "breaker_outside_retry"}))
    # Inside: it opens on the first order's second failed attempt (1 ms, 1 ms sleep, 1 ms).
    # Outside: it counts one failure per exhausted loop (3 attempts and sleeps of 1 and 2 ms,
    # 6 ms), so it opens when the second order's loop ends.
    b_in = inside.events[inside.events["kind"] == "breaker"]
    b_out = outside.events[outside.events["kind"] == "breaker"]
    assert b_in.iloc[0]["t"] == pytest.approx(10.0 + 0.003, abs=1e-6)
    assert b_out.iloc[0]["t"] == pytest.approx(10.1 + 0.006, abs=1e-6)
    assert outside.orders is not None
    # Each order the open breaker refused never made an attempt.
    refused = outside.orders[outside.orders["reason"] == "breaker_open"]
    assert len(refused) > 0
    assert (refused["attempts"] == 0).all()


def test_non_critical_dependency_degrades_with_a_fallback() -> None:
    pricing = rl.Dependency(
        "pricing",
        faults=rl.Faults(latency=FAST, phases=(rl.Outage(start=10, end=20),)),
        fallback=rl.Fallback(kind="cache", cache_ttl=60.0),
    )
    payment = rl.Dependency("payment", faults=rl.Faults(latency=FAST))
    sc = rl.Scenario(
        arrivals=rl.Poisson(rate=50), duration=30, workers=8, num_keys=20, seed=3,
        dependencies=(pricing, payment),
    )
    r = rl.simulate(sc)
    assert r.orders is not None
    in_outage = r.orders[(r.orders["arrival"] >= 10) & (r.orders["arrival"] < 20)]
    # Every key was priced before the outage, so the cache serves every order, degraded.
    assert (in_outage["status"] == "completed").all()
    assert in_outage["degraded"].all()
    assert not r.orders[r.orders["arrival"] < 10]["degraded"].any()
    # Without a fallback the same outage fails the orders.
    hard = rl.simulate(sc.replace({"pricing.fallback": rl.Fallback()}))
    assert hard.summary["failed"] == pytest.approx(len(in_outage), rel=0.1)


def test_ambiguous_failures_double_charge_without_idempotency_keys() -> None:
    base = rl.Scenario(
        arrivals=rl.Poisson(rate=100), duration=60, workers=32, seed=4,
        dependencies=(
            one_dep(
                faults=rl.Faults(latency=FAST, ambiguous_rate=0.2),
                retry=rl.RetryConfig(
                    max_attempts=3, backoff=rl.Backoff(initial=0.01, max_delay=0.05)
                ),
                attempt_timeout=0.1,
                charges=True,
            ),
        ),
    )
    keyed = rl.simulate(base).summary
    unkeyed = rl.simulate(base.replace({"payment.idempotency_keys": False})).summary
    assert keyed["double_charged_orders"] == 0
    assert keyed["charges"] > keyed["applied_charges"]  # the retries did commit again...
    # ... but only the keyless run applied them: about P(first ambiguous) x P(retry commits).
    assert unkeyed["double_charged_orders"] > 0
    assert unkeyed["double_charged_orders"] / unkeyed["arrived"] == pytest.approx(0.2, abs=0.03)


def test_retry_after_hint_is_honoured() -> None:
    mix = rl.FailureMix(http503=0, http429=1, retry_after=2.0)
    sc = rl.Scenario(
        arrivals=rl.Trace(times=(0.0,)), duration=10, workers=1,
        dependencies=(
            one_dep(
                faults=rl.Faults(latency=FAST, failure_rate=1.0, mix=mix),
                retry=rl.RetryConfig(
                    max_attempts=3, backoff=rl.Backoff(initial=0.01, max_delay=0.05)
                ),
            ),
        ),
    )
    r = rl.simulate(sc)
    assert r.orders is not None
    # Three attempts of 1 ms with two sleeps of at least the 2 s hint between them.
    assert r.orders.loc[0, "end"] == pytest.approx(2 * 2.0 + 3 * 0.001, abs=0.06)
    assert r.orders.loc[0, "reason"] == "exhausted"


def test_limited_capacity_and_retries_make_a_metastable_failure() -> None:
    """A dependency at 70% load (10 servers, 10 ms each, 700 calls/s) slows 4x for 2 s. Its line
    grows past the callers' 0.2 s timeout; it keeps serving calls whose callers gave up. Without
    retries it drains and recovers; with 5 attempts per order the timed-out calls come back and
    keep the line long after the trigger ended: it stays down."""
    faults = rl.Faults(
        latency=rl.Exponential(mean=0.01),
        capacity=rl.Capacity(max_in_service=10),
        phases=(rl.Brownout(start=20, end=22, failure_rate=0.0, latency_multiplier=4.0),),
    )
    base = rl.Scenario(
        arrivals=rl.Poisson(rate=700), duration=60, workers=400, queue_capacity=1000, seed=5,
        order_deadline=1.0, record_orders=False,
        dependencies=(one_dep(faults=faults, attempt_timeout=0.2),),
    )
    calm = rl.simulate(base)
    storm = rl.simulate(
        base.replace({"payment.retry": rl.RetryConfig(max_attempts=5, backoff=rl.Backoff(
            initial=0.01, max_delay=0.05))})
    )
    def late(r: rl.Result) -> float:
        ts = r.timeseries
        return float(ts[ts["t"] > 40]["completed"].sum())

    def early(r: rl.Result) -> float:
        ts = r.timeseries
        return float(ts[ts["t"] <= 20]["completed"].sum())

    assert early(calm) == early(storm)  # identical until the trigger
    assert late(calm) > 0.95 * 700 * 20  # recovered
    assert late(storm) < 0.01 * late(calm)  # still down 20 s after the trigger ended
    assert storm.summary["payment.wasted_service"] > 10 * calm.summary["payment.wasted_service"]


def test_bulkhead_limits_a_slow_dependency() -> None:
    slow = rl.Dependency("inventory", faults=rl.Faults(latency=rl.Constant(1.0)),
                         bulkhead=BulkheadConfig(max_concurrent=2, max_waiting=0))
    sc = rl.Scenario(
        arrivals=rl.ConstantRate(rate=10), duration=10, workers=8,
        dependencies=(slow,),
    )
    r = rl.simulate(sc)
    # Two calls in flight at any time: about 2 completions per second, the rest refused.
    assert r.summary["completed"] == pytest.approx(20, abs=3)
    assert r.summary["failed_permanent"] > 50
    assert r.timeseries["inventory.in_flight"].max() <= 2


def test_adaptive_throttle_sheds_load_when_the_backend_refuses() -> None:
    sc = rl.Scenario(
        arrivals=rl.ConstantRate(rate=100), duration=60, workers=16, seed=6,
        dependencies=(
            one_dep(
                faults=rl.Faults(latency=FAST, phases=(rl.Outage(start=0, end=60),)),
                throttle=Throttle(k=2.0, window=10.0, buckets=10),
            ),
        ),
    )
    s = rl.simulate(sc).summary
    # With every request refused, p -> requests / (requests + 1): almost all are shed locally.
    assert s["payment.calls"] < 0.1 * s["arrived"]


def test_releasing_workers_during_backoff_serves_more_orders() -> None:
    base = rl.Scenario(
        arrivals=rl.Poisson(rate=150), duration=60, workers=8, queue_capacity=50, seed=7,
        dependencies=(
            one_dep(
                faults=rl.Faults(failure_rate=0.5, latency=rl.Constant(0.01)),
                retry=rl.RetryConfig(
                    max_attempts=4, backoff=rl.Backoff(initial=0.05, max_delay=0.4)
                ),
            ),
        ),
    )
    held = rl.simulate(base).summary
    released = rl.simulate(base.replace({"release_worker_during_backoff": True})).summary
    assert held["rejected"] > 0
    assert released["rejected"] < held["rejected"] / 2
    assert released["completed"] > held["completed"]


def burst(n: int, dep: rl.Dependency, **kw: object) -> rl.Scenario:
    """``n`` orders at t = 0 with a worker each, against one dependency."""
    return rl.Scenario(
        arrivals=rl.Trace([0.0] * n), workers=n, duration=1.0, seed=1,
        dependencies=(dep,), **kw,  # type: ignore[arg-type]
    )


def test_a_fallback_never_absorbs_the_orders_deadline() -> None:
    # A 1 s dependency, a 0.1 s deadline, a default fallback: each order ends at its deadline,
    # failed with reason "deadline", and is neither degraded nor counted as a fallback.
    slow = one_dep(faults=rl.Faults(latency=rl.Constant(1.0)), fallback=rl.Fallback("default"))
    r = rl.simulate(burst(6, slow, order_deadline=0.1))
    assert r.orders is not None
    assert (r.orders["status"] == "failed").all()
    assert (r.orders["reason"] == "deadline").all()
    assert not r.orders["degraded"].any()
    assert r.orders["end"].tolist() == pytest.approx([0.1] * 6)
    s = r.summary
    assert s["failed_deadline"] == 6 and s["completed"] == 0
    assert s["payment.fallbacks"] == 0 and s["degraded_fraction"] == 0
    # The same fallback still serves a failure that leaves the caller time: a 50 ms attempt
    # timeout under a 1 s deadline.
    timed = rl.simulate(burst(6, dataclasses.replace(slow, attempt_timeout=0.05),
                              order_deadline=1.0)).summary
    assert timed["completed"] == 6 and timed["payment.fallbacks"] == 6
    assert timed["degraded_fraction"] == 1.0


def test_a_hung_call_without_timeout_or_deadline_lasts_faults_hang() -> None:
    # Every call hangs; no attempt timeout, no deadline: each order fails after Faults.hang
    # (0.5 s) and the run ends there, not at the end of representable time.
    hung = one_dep(
        faults=rl.Faults(failure_rate=1.0, mix=rl.FailureMix(http503=0, timeout=1), hang=0.5)
    )
    r = rl.simulate(burst(3, hung))
    assert r.orders is not None
    assert (r.orders["status"] == "failed").all()
    assert r.orders["end"].tolist() == pytest.approx([0.5] * 3)
    assert r.summary["end_time"] == pytest.approx(0.5)
    assert r.summary["in_flight"] == 0
