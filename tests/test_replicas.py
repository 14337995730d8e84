"""Replicas, load balancing and outlier ejection for a dependency (issue #14): validation,
conservation, the slow-replica ordering of the balancers, ejection and the panic threshold, the
supermarket model's queue-length tail for power of two choices against random, and agreement of
the live engine with the simulated one on scripted pools. Fixed seeds, statistical tolerances."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import reliability_lab as rl
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_lab import (
    Capacity,
    Constant,
    Dependency,
    Exponential,
    Faults,
    OutlierDetection,
    Poisson,
    ReplicaOverride,
    Replicas,
    Scenario,
    simulate,
)


def _scenario(
    dep: Dependency, *, rate: float = 200.0, duration: float = 30.0, seed: int = 7, **kw: object
) -> Scenario:
    # Plenty of workers: an order's latency is its dependency call, not the intake queue.
    args: dict[str, object] = dict(
        arrivals=Poisson(rate),
        workers=1000,
        queue_capacity=100_000,
        duration=duration,
        seed=seed,
        dependencies=(dep,),
    )
    args.update(kw)
    return Scenario(**args)  # type: ignore[arg-type]


# -- the schema ------------------------------------------------------------------------------------


def test_validation_names_the_dotted_path() -> None:
    sc = _scenario(Dependency("payment", replicas=Replicas(count=4)))
    with pytest.raises(ValueError, match=r"^payment\.replicas\.count must be an integer in "
                                         r"\[1, 1000\], got 0"):
        sc.replace({"payment.replicas.count": 0})
    with pytest.raises(ValueError, match=r"^payment\.replicas\.balancer must be one of"):
        sc.replace({"payment.replicas.balancer": "fastest"})
    raw = sc.replace({"payment.replicas.overrides": (ReplicaOverride(3),)}).to_dict()
    raw["dependencies"][0]["replicas"]["overrides"][0]["index"] = 4
    with pytest.raises(ValueError, match=r"^payment\.replicas\.overrides\[0\]\.index must be an "
                                         r"integer in \[0, 3\], got 4"):
        Scenario.from_dict(raw)
    with pytest.raises(ValueError, match=r"overrides\[1\]\.index must be unique, got 1 twice"):
        Replicas(count=3, overrides=(ReplicaOverride(1), ReplicaOverride(1)))
    with pytest.raises(ValueError, match=r"max_ejection_time must be in \[base_ejection_time"):
        OutlierDetection(base_ejection_time=30, max_ejection_time=10)


def test_the_native_validator_checks_replicas_too() -> None:
    raw = _scenario(Dependency("payment", replicas=Replicas(count=4))).to_dict()
    raw["dependencies"][0]["replicas"]["count"] = 1001
    with pytest.raises(ValueError, match=r"payment\.replicas\.count must be"):
        rl._core.validate_scenario(raw)
    raw = _scenario(
        Dependency("payment", replicas=Replicas(outlier=OutlierDetection()))
    ).to_dict()
    raw["dependencies"][0]["replicas"]["outlier"]["max_ejection_percent"] = 101.0
    with pytest.raises(ValueError, match=r"payment\.replicas\.outlier\.max_ejection_percent"):
        rl._core.validate_scenario(raw)


def test_a_pool_of_one_default_replica_changes_no_outcome() -> None:
    """One replica running the dependency's own model: the same orders as without a pool (the
    balancer's draws come from a stream of their own, so no other draw moves)."""
    faults = Faults(failure_rate=0.2, latency=Exponential(0.01), capacity=Capacity(2))
    plain = simulate(_scenario(Dependency("payment", faults=faults), rate=100))
    pooled = simulate(
        _scenario(Dependency("payment", faults=faults, replicas=Replicas(count=1)), rate=100)
    )
    assert plain.orders is not None and pooled.orders is not None
    pd.testing.assert_frame_equal(plain.orders, pooled.orders)


# -- conservation ----------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    count=st.integers(1, 8),
    balancer=st.sampled_from(rl.LB_KINDS),
    hedge=st.booleans(),
    capacity=st.integers(0, 3),
    outlier=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_conservation(
    count: int, balancer: str, hedge: bool, capacity: int, outlier: bool, seed: int
) -> None:
    """Calls per replica sum to the dependency's calls (hedge copies included), every order
    ends in one terminal state, nothing is outstanding at the end."""
    dep = Dependency(
        "payment",
        faults=Faults(
            failure_rate=0.2,
            latency=Exponential(0.02),
            capacity=Capacity(max_in_service=capacity, max_queue=5 if capacity else -1),
        ),
        retry=rl.RetryConfig(max_attempts=3, backoff=rl.Backoff(initial=0.005)),
        attempt_timeout=0.1,
        hedge=rl.Hedge(delay=0.02, budget_ratio=None) if hedge and capacity == 0 else None,
        replicas=Replicas(
            count=count,
            balancer=balancer,  # type: ignore[arg-type]
            outlier=OutlierDetection(
                consecutive_errors=2, interval=0.5, base_ejection_time=0.5,
                max_ejection_percent=50,
            )
            if outlier
            else None,
            overrides=(ReplicaOverride(0, Faults(failure_rate=0.9, latency=Exponential(0.1))),),
        ),
    )
    r = simulate(_scenario(dep, rate=150, duration=4, seed=seed, order_deadline=0.5))
    totals = r.totals["dependencies"][0]
    reps = r.replicas
    assert len(reps) == count
    assert reps["calls"].sum() == totals["calls"]
    assert (reps["outstanding"] == 0).all()
    assert (reps["failures"] + reps["abandoned"] <= reps["calls"]).all()
    s = r.summary
    terminal = s["completed"] + s["failed"] + s["rejected"] + s["expired"] + s["cancelled"]
    assert terminal == s["arrived"]
    assert r.orders is not None and len(r.orders) == s["arrived"]
    if outlier:
        ev = r.events[r.events["kind"].isin(["ejection", "return"])]
        assert (ev["kind"] == "ejection").sum() == reps["ejections"].sum()


def test_metrics_carry_a_bounded_replica_label() -> None:
    r = simulate(_scenario(Dependency("payment", replicas=Replicas(count=3)), duration=2))
    text = r.metrics_text()
    for i in range(3):
        assert f'rlab_replica_calls_total{{dependency="payment",replica="{i}"}}' in text
    assert 'replica="3"' not in text


# -- a slow replica --------------------------------------------------------------------------------


def _slow_pool(balancer: str, outlier: OutlierDetection | None = None) -> rl.Result:
    """Ten capacity-1 replicas, replica 0 ten times slower. 80 orders/s: replica 0 at 80 % load
    when it gets a tenth of the calls, the others at 8 %."""
    one = Capacity(max_in_service=1)
    dep = Dependency(
        "svc",
        faults=Faults(latency=Exponential(0.01), capacity=one),
        replicas=Replicas(
            count=10,
            balancer=balancer,  # type: ignore[arg-type]
            outlier=outlier,
            overrides=(ReplicaOverride(0, Faults(latency=Exponential(0.1), capacity=one)),),
        ),
    )
    return simulate(_scenario(dep, rate=80, duration=300, seed=11, sample_every=0))


def test_a_slow_replica_drags_the_tail_of_the_blind_balancers() -> None:
    """Round robin and random send a tenth of the calls to the slow replica whatever its queue,
    so more than 1 % of the orders wait there: p99 is set by an M/M/1 (random: Poisson arrivals)
    or E_10/M/1 (round robin: regular arrivals, less waiting) queue at 80 % load. Least
    outstanding, P2C and Peak EWMA look at the load and send it less (Peak EWMA least: it sees
    the latency itself)."""
    p99 = {b: _slow_pool(b).summary["latency_p99"] for b in rl.LB_KINDS}
    blind = min(p99["round_robin"], p99["random"])
    aware = max(p99["least_outstanding"], p99["p2c"], p99["peak_ewma"])
    assert blind > 3 * aware, p99
    # An M/M/1 at 80 % load with a mean service of 0.1 s: sojourn ~ Exp(mean 0.5 s); a tenth of
    # the orders go there, so p99 is its 90th percentile, 0.5 * ln(10) = 1.15 s.
    assert p99["random"] == pytest.approx(0.5 * math.log(10), rel=0.25)
    assert p99["round_robin"] < p99["random"]
    calls = {b: _slow_pool(b).replicas["calls"] for b in ("p2c", "peak_ewma")}
    for b, c in calls.items():
        assert c[0] < 0.7 * c[1:].mean(), b


def test_outlier_ejection_of_a_failing_replica_recovers_goodput() -> None:
    failing = Faults(failure_rate=1.0, latency=Exponential(0.01))
    dep = Dependency(
        "svc",
        faults=Faults(latency=Exponential(0.01)),
        replicas=Replicas(count=5, overrides=(ReplicaOverride(2, failing),)),
    )
    blind = simulate(_scenario(dep, rate=200, duration=30))
    assert dep.replicas is not None
    ejecting = simulate(
        _scenario(
            dataclasses.replace(
                dep,
                replicas=dataclasses.replace(
                    # One of five is 20 %: Envoy's default cap (10 %) would refuse it here.
                    dep.replicas,
                    outlier=OutlierDetection(consecutive_errors=5, max_ejection_percent=20),
                ),
            ),
            rate=200,
            duration=30,
        )
    )
    assert blind.summary["success_rate"] == pytest.approx(0.8, abs=0.01)
    assert ejecting.summary["success_rate"] > 0.995
    reps = ejecting.replicas
    assert reps.loc[2, "ejections"] >= 1
    assert reps.loc[2, "calls"] < 50  # ejected after 5 errors, back for 5 more every 30 s...
    ev = ejecting.events
    assert ((ev["kind"] == "ejection") & (ev["from"] == "replica 2")).any()


def _mostly_failing(panic_threshold: float) -> rl.Result:
    failing = Faults(failure_rate=1.0, latency=Exponential(0.01))
    dep = Dependency(
        "svc",
        faults=Faults(latency=Exponential(0.01)),
        replicas=Replicas(
            count=4,
            panic_threshold=panic_threshold,
            outlier=OutlierDetection(consecutive_errors=3, max_ejection_percent=100),
            overrides=tuple(ReplicaOverride(i, failing) for i in (0, 1, 2)),
        ),
    )
    return simulate(_scenario(dep, rate=200, duration=20))


def test_the_panic_threshold_stops_ejection_when_most_replicas_fail() -> None:
    """Three of four replicas fail. With Envoy's panic threshold (50 %), ejecting them would
    leave 25 % of the pool: the balancer ignores the ejections and spreads the load over all
    four (a quarter succeeds). With no panic threshold, the healthy replica takes everything."""
    panic = _mostly_failing(50.0)
    assert panic.summary["svc.panic_picks"] > 0.9 * panic.summary["arrived"]
    assert panic.summary["success_rate"] == pytest.approx(0.25, abs=0.03)
    no_panic = _mostly_failing(0.0)
    assert no_panic.summary["svc.panic_picks"] == 0
    assert no_panic.summary["success_rate"] > 0.99


def test_no_replica_left_fails_the_attempt_at_once_with_503() -> None:
    """Every replica ejected and no panic threshold: the attempt is answered 503 without a
    replica being called (Envoy's "no healthy upstream")."""
    dep = Dependency(
        "svc",
        faults=Faults(failure_rate=1.0, latency=Constant(0.01)),
        replicas=Replicas(
            count=2, panic_threshold=0.0,
            outlier=OutlierDetection(consecutive_errors=1, max_ejection_percent=100),
        ),
    )
    r = simulate(_scenario(dep, rate=50, duration=5))
    assert r.replicas["calls"].sum() < r.totals["dependencies"][0]["calls"]
    assert r.summary["success_rate"] == 0.0


# -- the supermarket model -------------------------------------------------------------------------


@pytest.mark.parametrize("balancer", ["random", "p2c"])
def test_queue_length_tail_matches_the_supermarket_fixed_point(balancer: str) -> None:
    """N = 100 identical capacity-1 replicas with exponential service (mean 1 s), Poisson
    arrivals at 0.8 per replica per second. The time-average share of replicas with at least i
    calls is, as N grows (Mitzenmacher 2001, Vvedenskaya et al. 1996), 0.8^(2^i - 1) for two
    choices and 0.8^i for a random choice (M/M/1). Measured over [0, 5000 s] (stopping at the
    end, without the drain), i = 1..4; the finite pool sits slightly above the limit in the far
    tail."""
    lam, n = 0.8, 100
    dep = Dependency(
        "svc",
        faults=Faults(latency=Exponential(1.0), capacity=Capacity(max_in_service=1)),
        replicas=Replicas(count=n, balancer=balancer),  # type: ignore[arg-type]
    )
    sc = _scenario(
        dep, rate=lam * n, duration=5000, seed=3, workers=5000, sample_every=0,
        record_orders=False,
    )
    r = simulate(sc, until=5000)
    share = r.replica_load.mean(axis=0).to_numpy()
    tail = np.concatenate([[1.0], 1.0 - np.cumsum(share)[:-1]])
    for i in range(1, 5):
        expected = lam ** (2**i - 1) if balancer == "p2c" else lam**i
        assert tail[i] == pytest.approx(expected, rel=0.1, abs=0.004), (i, tail[:6])


# -- the live engine agrees with the simulated one -------------------------------------------------


def _outcomes(orders: object) -> list[tuple[str, str, int]]:
    assert isinstance(orders, pd.DataFrame)
    return sorted(
        zip(
            orders["status"].astype(str),
            orders["reason"].astype(str),
            orders["attempts"].astype(int),
            strict=True,
        )
    )


_ALWAYS_FAILS = Faults(failure_rate=1.0, latency=Constant(0.01))


@pytest.mark.parametrize(
    "replicas, capacity",
    [
        # Round robin over three replicas, the second always failing: every third call fails
        # and its retry goes to the next replica.
        (Replicas(count=3, overrides=(ReplicaOverride(1, _ALWAYS_FAILS),)), 0),
        (
            Replicas(
                count=3,
                overrides=(
                    ReplicaOverride(
                        1, Faults(failure_rate=1.0, latency=Constant(0.01), capacity=Capacity(1))
                    ),
                ),
            ),
            1,
        ),
        # The failing replica is ejected at its first error and never comes back in the run.
        (
            Replicas(
                count=3,
                outlier=OutlierDetection(consecutive_errors=1, max_ejection_percent=50),
                overrides=(ReplicaOverride(1, _ALWAYS_FAILS),),
            ),
            0,
        ),
    ],
)
def test_both_engines_give_the_same_per_order_outcomes(replicas: Replicas, capacity: int) -> None:
    n = 16
    sc = Scenario(
        arrivals=rl.Trace(tuple(0.03 * i for i in range(n))),
        workers=1,  # one caller: the balancer sees the calls in the same order in both engines
        queue_capacity=100,
        duration=0.03 * n,
        seed=3,
        dependencies=(
            Dependency(
                "payment",
                faults=Faults(latency=Constant(0.01), capacity=Capacity(capacity)),
                retry=rl.RetryConfig(
                    max_attempts=2, backoff=rl.Backoff(initial=0.001, jitter="none")
                ),
                replicas=replicas,
            ),
        ),
    )
    sim = simulate(sc)
    with rl.Lab(sc, shutdown_timeout=30.0) as lab:
        handles = lab.submit_many(n)
        assert all(h.wait(timeout=30) for h in handles)
    live = lab.result
    assert _outcomes(live.orders) == _outcomes(sim.orders)
    cols = ["calls", "failures", "ejections", "outstanding"]
    assert live.replicas[cols].to_numpy().tolist() == sim.replicas[cols].to_numpy().tolist()
    assert (live.events["kind"] == "ejection").sum() == (sim.events["kind"] == "ejection").sum()


def test_the_live_engine_refuses_to_change_a_pooled_dependency_s_faults() -> None:
    sc = _scenario(Dependency("payment", replicas=Replicas(count=2)), rate=10, duration=1)
    with rl.Lab(sc, shutdown_timeout=30.0) as lab, pytest.raises(
        (ValueError, RuntimeError), match="payment has replicas"
    ):
        lab.set_faults("payment", Faults(failure_rate=0.5))


def test_both_engines_agree_on_hedge_copies_over_replicas() -> None:
    """Each copy of a hedged call picks its own replica: round robin over three, replica 1
    slow (60 ms against 10 ms, the hedge goes at 20 ms), so every call that starts on replica 1
    is won by its hedge on replica 2 and the slow copy is cancelled (abandoned, not a failure)."""
    n = 12
    sc = Scenario(
        arrivals=rl.Trace(tuple(0.1 * i for i in range(n))),
        workers=1,
        queue_capacity=100,
        duration=0.1 * n,
        seed=3,
        dependencies=(
            Dependency(
                "payment",
                faults=Faults(latency=Constant(0.01)),
                hedge=rl.Hedge(delay=0.02, budget_ratio=None),
                replicas=Replicas(
                    count=3, overrides=(ReplicaOverride(1, Faults(latency=Constant(0.06))),)
                ),
            ),
        ),
    )
    sim = simulate(sc)
    with rl.Lab(sc, shutdown_timeout=30.0) as lab:
        handles = lab.submit_many(n)
        assert all(h.wait(timeout=30) for h in handles)
    live = lab.result
    assert _outcomes(live.orders) == _outcomes(sim.orders)
    cols = ["calls", "failures", "abandoned", "outstanding"]
    assert sim.replicas[cols].to_numpy().tolist() == [[6, 0, 0, 0], [6, 0, 6, 0], [6, 0, 0, 0]]
    assert live.replicas[cols].to_numpy().tolist() == sim.replicas[cols].to_numpy().tolist()
    for key in ("calls", "hedges", "hedges_won", "cancelled"):
        assert live.totals["dependencies"][0][key] == sim.totals["dependencies"][0][key], key


def test_replica_tables_without_and_with_a_pool() -> None:
    plain = simulate(_scenario(Dependency("payment"), duration=2))
    assert plain.replicas.empty and list(plain.replicas.columns)[:2] == ["dependency", "replica"]
    assert plain.replica_load.empty
    pooled = simulate(_scenario(Dependency("payment", replicas=Replicas(count=4)), duration=2))
    load = pooled.replica_load
    assert list(load.index) == [("payment", i) for i in range(4)]
    assert np.allclose(load.sum(axis=1), 1.0)
    assert "payment.ejections" in pooled.summary and "payment.ejections" not in plain.summary


def test_the_live_engine_refuses_a_round_on_a_capacity_limited_replica() -> None:
    dep = Dependency(
        "payment",
        hedge=rl.Hedge(),
        replicas=Replicas(count=2, overrides=(ReplicaOverride(1, Faults(capacity=Capacity(1))),)),
    )
    with pytest.raises(
        ValueError,
        match=r"^payment\.hedge with a capacity limit \(payment\.replicas\.overrides\[0\]\.faults"
        r"\.capacity\.max_in_service = 1\) is simulator-only",
    ):
        rl.Lab(_scenario(dep, rate=10, duration=1))
