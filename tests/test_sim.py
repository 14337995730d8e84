"""The simulated engine against theory, scripted scenarios and properties (fixed seeds)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from reliability_lab.backoff import Backoff
from reliability_lab.breaker import Breaker
from reliability_lab.budget import TokenBucketConfig
from reliability_lab.retry import RetryConfig
from reliability_lab.scenario import (
    ClosedLoop,
    Constant,
    ConstantRate,
    Dependency,
    Exponential,
    Faults,
    Outage,
    Poisson,
    Scenario,
    Trace,
)
from reliability_lab.sim import Result, littles_law, simulate

TERMINAL = {"completed", "failed", "rejected", "expired", "cancelled"}


def mmc(
    lam: float, c: int, mean_service: float, queue: int, duration: float, seed: int
) -> Scenario:
    return Scenario(
        arrivals=Poisson(rate=lam),
        workers=c,
        queue_capacity=queue,
        duration=duration,
        seed=seed,
        dependencies=(Dependency("server", faults=Faults(latency=Exponential(mean=mean_service))),),
    )


def erlang_c(c: int, a: float) -> float:
    """P(an arrival waits) in M/M/c with offered load a = λ/μ."""
    s = sum(a**k / math.factorial(k) for k in range(c))
    top = a**c / math.factorial(c) / (1 - a / c)
    return top / (s + top)


def mmck_blocking(c: int, k: int, a: float) -> float:
    """P(an arrival finds K in the system) in M/M/c/K."""
    p = [a**n / math.factorial(n) if n <= c else a**n / (math.factorial(c) * c ** (n - c))
         for n in range(k + 1)]
    return p[k] / sum(p)


def test_same_seed_same_result_other_seed_different() -> None:
    sc = mmc(50, 4, 0.05, 20, 100, seed=3).replace(
        {"server.faults.failure_rate": 0.3, "server.retry": RetryConfig(max_attempts=3)}
    )
    a, b = simulate(sc), simulate(sc)
    assert a.orders is not None and b.orders is not None
    pd.testing.assert_frame_equal(a.orders, b.orders)
    pd.testing.assert_frame_equal(a.timeseries, b.timeseries)
    pd.testing.assert_series_equal(a.summary, b.summary)
    c = simulate(sc.replace({"seed": 4}))
    assert c.orders is not None
    assert len(c.orders) != len(a.orders) or not c.orders["end"].equals(a.orders["end"])


def test_conservation_every_order_terminal_exactly_once() -> None:
    sc = mmc(100, 2, 0.05, 30, 60, seed=9).replace(
        {"order_deadline": 0.3, "server.faults.failure_rate": 0.3,
         "server.retry": RetryConfig(max_attempts=4)}
    )
    r = simulate(sc)
    s = r.summary
    assert r.orders is not None
    assert len(r.orders) == s["arrived"]
    assert set(r.orders["status"].astype(str)) <= TERMINAL
    terminal = s["completed"] + s["failed"] + s["rejected"] + s["expired"] + s["cancelled"]
    assert terminal == s["arrived"]
    assert (r.orders["end"] >= r.orders["arrival"]).all()
    # Per interval flows add up to the totals.
    ts = r.timeseries
    assert ts["arrivals"].sum() == s["arrived"]
    assert ts["completed"].sum() == s["completed"]


def test_stopping_early_leaves_orders_in_flight_and_conserves() -> None:
    sc = mmc(200, 2, 0.05, 100, 60, seed=1)
    r = simulate(sc, until=10.0)
    s = r.summary
    terminal = s["completed"] + s["failed"] + s["rejected"] + s["expired"] + s["cancelled"]
    assert s["in_flight"] > 0
    assert terminal + s["in_flight"] == s["arrived"]
    assert r.orders is not None
    assert r.orders["end"].isna().sum() == s["in_flight"]


def test_littles_law_on_the_output() -> None:
    r = simulate(mmc(30, 3, 0.08, 50, 2000, seed=5))
    assert r.orders is not None
    L, lam_w = littles_law(r)
    assert pytest.approx(lam_w, rel=0.01) == L
    # Independently: λ from the records and W from the records against the sampled L.
    o = r.orders
    end = r.summary["end_time"]
    lam = len(o) / end
    w = float((o["end"] - o["arrival"]).mean())
    sampled_l = float(r.timeseries["in_system"].mean())
    assert sampled_l == pytest.approx(lam * w, rel=0.02)


def test_mmc_agrees_with_erlang_c() -> None:
    lam, mu, c = 180.0, 10.0, 20
    r = simulate(mmc(lam, c, 1 / mu, 10_000_000, 3000, seed=11).replace({"record_events": False}))
    assert r.orders is not None
    wait = (r.orders["start"] - r.orders["arrival"]).to_numpy()
    pw = erlang_c(c, lam / mu)
    wq = pw / (c * mu - lam)
    assert float(np.mean(wait > 0)) == pytest.approx(pw, abs=0.03)
    assert float(np.mean(wait)) == pytest.approx(wq, rel=0.08)
    assert r.summary["utilization"] == pytest.approx(lam / (c * mu), abs=0.01)


def test_mmck_blocking_probability() -> None:
    lam, mu, c, queue = 25.0, 10.0, 2, 3
    r = simulate(mmc(lam, c, 1 / mu, queue, 4000, seed=2))
    blocked = r.summary["rejected"] / r.summary["arrived"]
    assert blocked == pytest.approx(mmck_blocking(c, c + queue, lam / mu), abs=0.01)


@pytest.mark.parametrize("attempts", [1, 2, 4])
def test_retry_arithmetic(attempts: int) -> None:
    p = 0.3
    sc = Scenario(
        arrivals=Poisson(rate=200),
        workers=64,
        queue_capacity=1000,
        duration=300,
        seed=21 + attempts,
        dependencies=(
            Dependency(
                "payment",
                faults=Faults(failure_rate=p, latency=Constant(0.001)),
                retry=RetryConfig(max_attempts=attempts,
                            backoff=Backoff(initial=0.01, max_delay=0.1, jitter="full")),
            ),
        ),
    )
    r = simulate(sc)
    assert r.orders is not None
    n = len(r.orders)
    p_success = 1 - p**attempts
    se = math.sqrt(p_success * (1 - p_success) / n)
    assert r.summary["success_rate"] == pytest.approx(p_success, abs=5 * se + 1e-9)
    expected_attempts = (1 - p**attempts) / (1 - p)
    assert r.orders["attempts"].mean() == pytest.approx(expected_attempts, rel=0.01)
    assert r.summary["calls_per_order"] == pytest.approx(expected_attempts, rel=0.01)


def test_breaker_opens_in_an_outage_and_recovers_at_exact_times() -> None:
    sc = Scenario(
        arrivals=ConstantRate(rate=10),
        workers=1,
        queue_capacity=100,
        duration=40,
        dependencies=(
            Dependency(
                "payment",
                faults=Faults(latency=Constant(0.001), phases=(Outage(start=10, end=20),)),
                retry=RetryConfig(max_attempts=3,
                            backoff=Backoff(initial=0.001, max_delay=0.01, jitter="none")),
                breaker=Breaker(consecutive_failures=5, open_for=5.0),
            ),
        ),
    )
    r = simulate(sc)
    b = r.events[r.events["kind"] == "breaker"].reset_index(drop=True)
    # Orders arrive every 0.1 s; in the outage each attempt takes 1 ms and backoff is 1 ms then
    # 2 ms: the first outage order makes 3 attempts, the second fails twice more -> 5 in a row.
    assert b.loc[0, "to"] == "open"
    assert b.loc[0, "t"] == pytest.approx(10.1 + 0.001 + 0.001 + 0.001, abs=1e-6)
    assert b.loc[1, "to"] == "half_open"
    assert b.loc[2, "to"] == "open"  # the probe during the outage fails
    assert b.iloc[-1]["to"] == "closed"
    assert 20.0 <= b.iloc[-1]["t"] <= 25.2
    s = r.summary
    assert s["payment.trips"] >= 2
    assert s["payment.outage.time_to_detect"] == pytest.approx(0.103, abs=1e-6)
    assert 0 <= s["payment.outage.time_to_recover"] <= 5.2
    assert r.orders is not None
    rejected = r.orders[r.orders["reason"] == "breaker_open"]
    assert len(rejected) > 50
    # A breaker rejection is permanent: it stopped the retry loop at its first attempt.
    assert (rejected["attempts"] == 1).all() or (rejected["attempts"] <= 3).all()
    mid = rejected[(rejected["arrival"] > 11) & (rejected["arrival"] < 14)]
    assert (mid["attempts"] == 1).all()


def test_token_bucket_budget_caps_retries_in_an_outage() -> None:
    base = Scenario(
        arrivals=ConstantRate(rate=50),
        workers=8,
        duration=30,
        dependencies=(
            Dependency(
                "payment",
                faults=Faults(latency=Constant(0.001), phases=(Outage(start=10, end=20),)),
                retry=RetryConfig(max_attempts=4, backoff=Backoff(initial=0.001, max_delay=0.01)),
            ),
        ),
    )
    free = simulate(base).summary
    capped = simulate(
        base.replace({"payment.budget": TokenBucketConfig(max_tokens=10, token_ratio=0.1)})
    ).summary
    # Without a budget every outage order makes 4 attempts; with one, retries stop as soon as
    # the bucket is at or below half (5 failures), and orders fail with reason "budget".
    assert capped["payment.retries"] < free["payment.retries"] / 10
    assert capped["failed_budget"] > 0
    assert free["failed_exhausted"] == pytest.approx(10 * 50, abs=2)


def test_deadline_drops_work_nobody_waits_for() -> None:
    sc = Scenario(
        arrivals=Trace(times=tuple([0.0] * 100)),
        workers=1,
        queue_capacity=1000,
        duration=10,
        order_deadline=1.0,
        dependencies=(Dependency("payment", faults=Faults(latency=Constant(0.1))),),
    )
    r = simulate(sc)
    s = r.summary
    assert s["completed"] == 10
    assert s["expired"] == 90
    assert s["payment.calls"] == 10


def test_summary_only_mode_matches_full_mode() -> None:
    sc = mmc(80, 4, 0.04, 10, 200, seed=8)
    full = simulate(sc)
    lean = simulate(sc.replace({"record_orders": False}))
    assert lean.orders is None
    for key in ("arrived", "completed", "rejected", "latency_p99", "calls_per_order"):
        assert lean.summary[key] == full.summary[key]


def test_sampling_does_not_change_the_end_time_or_time_averages() -> None:
    # The time series' ticks are bookkeeping: a drained run ends at its last real event with or
    # without them, so goodput and the time averages do not depend on sample_every.
    sc = mmc(80, 4, 0.04, 10, 50.3, seed=9)
    plain = simulate(sc.replace({"sample_every": 0.0}))
    for every in (0.7, 1.0, 5.0):
        sampled = simulate(sc.replace({"sample_every": every}))
        for key in ("end_time", "goodput", "utilization", "mean_in_system"):
            assert sampled.summary[key] == plain.summary[key], (every, key)
        # The time series ends at the run's end too (its last row closes a partial interval).
        assert sampled.timeseries["t"].iloc[-1] == pytest.approx(plain.summary["end_time"])


def test_closed_loop_clients_keep_at_most_n_in_flight() -> None:
    sc = Scenario(
        arrivals=ClosedLoop(clients=5, think_time=Constant(0.1)),
        workers=10,
        duration=50,
        dependencies=(Dependency("payment", faults=Faults(latency=Constant(0.1))),),
    )
    r = simulate(sc)
    assert r.timeseries["in_system"].max() <= 5
    # Each client cycles every 0.2 s: about 5 x 50 / 0.2 orders.
    assert r.summary["arrived"] == pytest.approx(1250, abs=10)


def test_max_events_stops_with_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="max_events"):
        simulate(mmc(100, 4, 0.01, 10, 100, seed=1), max_events=1000)


def test_a_loop_that_never_advances_virtual_time_stops_with_a_clear_error() -> None:
    # Found by the strategies' property test: clients that resubmit at once, and an outage whose
    # failures answer in zero time, kept the clock at one instant (the run spun towards
    # max_events for minutes). It now stops after 20 M events at one instant and says why.
    sc = Scenario(
        arrivals=ClosedLoop(clients=2, think_time=Constant(0.0)),
        duration=5,
        dependencies=(Dependency("payment", faults=Faults(latency=Constant(0.0))),),
    )
    with pytest.raises(RuntimeError, match=r"made no progress.*think time"):
        simulate(sc)


def test_metrics_parse_with_prometheus_client() -> None:
    r = simulate(mmc(50, 4, 0.05, 20, 30, seed=3).replace(
        {"server.faults.failure_rate": 0.2, "server.breaker": Breaker()}))
    families = {f.name: f for f in text_string_to_metric_families(r.metrics_text())}
    assert "rlab_worker_jobs" in families
    completed = [s for s in families["rlab_worker_jobs"].samples
                 if s.labels.get("status") == "completed" and s.name.endswith("_total")]
    assert completed[0].value == r.summary["completed"]
    assert "rlab_order_latency_seconds" in families
    assert "rlab_breaker_state" in families


def _result_is_sane(r: Result) -> None:
    s = r.summary
    assert r.orders is not None
    assert len(r.orders) == s["arrived"]
    assert s["in_flight"] == 0
    assert set(r.orders["status"].astype(str)) <= TERMINAL
    assert r.orders.index.is_unique


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rate=st.floats(1, 300),
    workers=st.integers(1, 16),
    queue=st.integers(0, 50),
    failure_rate=st.floats(0, 1),
    attempts=st.integers(1, 5),
    deadline=st.sampled_from([0.0, 0.05, 0.5]),
    timeout=st.sampled_from([0.0, 0.02, 0.2]),
    release=st.booleans(),
    breaker=st.booleans(),
    budget=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_property_no_order_lost_or_duplicated(
    rate: float, workers: int, queue: int, failure_rate: float, attempts: int, deadline: float,
    timeout: float, release: bool, breaker: bool, budget: bool, seed: int,
) -> None:
    sc = Scenario(
        arrivals=Poisson(rate=rate),
        workers=workers,
        queue_capacity=queue,
        duration=5.0,
        seed=seed,
        order_deadline=deadline,
        release_worker_during_backoff=release,
        dependencies=(
            Dependency(
                "payment",
                faults=Faults(failure_rate=failure_rate, latency=Exponential(mean=0.02)),
                retry=RetryConfig(
                    max_attempts=attempts, backoff=Backoff(initial=0.01, max_delay=0.1)
                ),
                breaker=Breaker(consecutive_failures=3, open_for=0.5) if breaker else None,
                budget=TokenBucketConfig() if budget else None,
                attempt_timeout=timeout,
            ),
        ),
    )
    _result_is_sane(simulate(sc))
