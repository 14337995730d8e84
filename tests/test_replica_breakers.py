"""Per-replica circuit breakers (``Replicas.breaker``, issue #14): validation, a failing replica
cut off by its own breaker, the breaker_open rejection when no replica admits, agreement of the
live engine with the simulated one on scripted pools, and no half-open probe slot left taken
under hedging and timeouts. Fixed seeds, statistical tolerances."""

from __future__ import annotations

import dataclasses
import itertools

import pandas as pd
import pytest
import reliability_lab as rl
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_lab import (
    Breaker,
    Constant,
    Dependency,
    Exponential,
    Faults,
    ReplicaOverride,
    Replicas,
    Scenario,
    simulate,
)


def _scenario(
    dep: Dependency, *, rate: float = 200.0, duration: float = 30.0, seed: int = 7, **kw: object
) -> Scenario:
    args: dict[str, object] = dict(
        arrivals=rl.Poisson(rate),
        workers=1000,
        queue_capacity=100_000,
        duration=duration,
        seed=seed,
        dependencies=(dep,),
    )
    args.update(kw)
    return Scenario(**args)  # type: ignore[arg-type]


def test_validation_names_the_dotted_path() -> None:
    with pytest.raises((TypeError, ValueError), match="breaker must be a Breaker or None"):
        Replicas(count=2, breaker="closed")  # type: ignore[arg-type]
    sc = _scenario(Dependency("payment", replicas=Replicas(count=2, breaker=Breaker())))
    with pytest.raises(ValueError, match=r"payment\.replicas\.breaker\.open_for"):
        sc.replace({"payment.replicas.breaker.open_for": -1.0})


_FAILING = Faults(failure_rate=1.0, latency=Exponential(0.01))


def _one_bad_of_four(breaker: Breaker | None) -> rl.Result:
    dep = Dependency(
        "svc",
        faults=Faults(latency=Exponential(0.01)),
        replicas=Replicas(count=4, overrides=(ReplicaOverride(2, _FAILING),), breaker=breaker),
    )
    return simulate(_scenario(dep, rate=200, duration=30))


def test_a_failing_replica_s_breaker_cuts_its_share_and_recovers_goodput() -> None:
    blind = _one_bad_of_four(None)
    guarded = _one_bad_of_four(Breaker(consecutive_failures=5, open_for=5.0))
    # No retry: a quarter of the orders land on the failing replica without breakers.
    assert blind.summary["success_rate"] == pytest.approx(0.75, abs=0.01)
    assert guarded.summary["success_rate"] > 0.995
    assert guarded.summary["goodput"] > blind.summary["goodput"] * 1.25
    reps = guarded.replicas
    # 5 failures to open, then one failing probe every 5 s: ~10 calls of ~6000.
    assert reps.loc[2, "calls"] <= 12
    assert reps.loc[2, "calls"] / reps["calls"].sum() < 0.005
    assert reps.loc[2, "breaker_opened"] >= 5
    assert reps.loc[2, "breaker_state"] in ("open", "half_open")
    assert (reps.drop(index=2)["breaker_opened"] == 0).all()
    assert (reps["breaker_probes"] == 0).all()
    ev = guarded.events[guarded.events["kind"] == "replica_breaker"]
    assert set(ev["from"]) == {"replica 2"}
    assert (ev["to"] == "open").sum() == reps.loc[2, "breaker_opened"]
    # Only the replica failed; the dependency's calls are its replicas' calls.
    assert guarded.totals["dependencies"][0]["calls"] == reps["calls"].sum()
    text = guarded.metrics_text()
    assert 'rlab_replica_breaker_state{dependency="svc",replica="2",state="closed"} 0.0' in text
    assert 'rlab_replica_breaker_trips_total{dependency="svc",replica="0"} 0.0' in text
    assert "rlab_replica_breaker" not in blind.metrics_text()


def test_no_replica_admitting_rejects_as_breaker_open_like_a_shared_breaker() -> None:
    """Both replicas fail and open: later attempts call nobody, count in rejected_breaker (not
    in calls or failures), and end their orders as breaker_open."""
    dep = Dependency(
        "svc",
        faults=_FAILING,
        retry=rl.RetryConfig(max_attempts=3, backoff=rl.Backoff(initial=0.001)),
        replicas=Replicas(count=2, breaker=Breaker(consecutive_failures=2, open_for=100.0)),
    )
    r = simulate(_scenario(dep, rate=50, duration=5))
    totals = r.totals["dependencies"][0]
    reps = r.replicas
    assert reps["calls"].tolist() == [2, 2]
    assert totals["calls"] == 4
    assert totals["failures"] + totals["successes"] + totals["cancelled"] == totals["calls"]
    assert totals["rejected_breaker"] > 100
    assert r.summary["svc.rejected_breaker"] == totals["rejected_breaker"]
    assert r.orders is not None
    assert (r.orders["reason"] == "breaker_open").sum() >= r.summary["arrived"] - 2
    assert reps["breaker_state"].tolist() == ["open", "open"]


def test_with_a_shared_breaker_too_the_shared_one_is_asked_first() -> None:
    """The shared breaker opens on the pool's failures and refuses before any replica is
    picked: the replica breakers hear nothing while it is open."""
    dep = Dependency(
        "svc",
        faults=_FAILING,
        breaker=Breaker(consecutive_failures=3, open_for=100.0),
        replicas=Replicas(count=3, breaker=Breaker(consecutive_failures=2, open_for=100.0)),
    )
    r = simulate(_scenario(dep, rate=50, duration=5))
    assert r.replicas["calls"].sum() == 3  # one failure each, then the shared breaker opens
    assert (r.replicas["breaker_opened"] == 0).all()
    assert r.summary["svc.trips"] == 1


def test_a_hedge_no_replica_admits_is_not_sent_and_ends_the_call_s_hedging() -> None:
    """As with a shared breaker: order 0 opens the one replica's breaker during an outage;
    order 1's call is the half-open probe, its first hedge finds no replica admitting and is
    refused (not a call, not a hedge), and no further hedge is tried for that call."""
    sc = Scenario(
        arrivals=rl.Trace((0.0, 0.2)),
        workers=4,
        queue_capacity=10,
        duration=0.5,
        seed=1,
        dependencies=(
            Dependency(
                "payment",
                faults=Faults(latency=Constant(0.05), phases=(rl.Outage(0.0, 0.1),)),
                hedge=rl.Hedge(delay=0.01, max_hedges=3, budget_ratio=None),
                replicas=Replicas(count=1, breaker=Breaker(consecutive_failures=1, open_for=0.1)),
            ),
        ),
    )
    r = simulate(sc)
    assert r.orders is not None
    assert r.orders["status"].tolist() == ["failed", "completed"]
    assert r.orders["attempts"].tolist() == [4, 2]  # order 1: the probe and one refused hedge
    d = r.totals["dependencies"][0]
    assert (d["calls"], d["hedges"], d["rejected_breaker"]) == (5, 3, 1)
    assert r.replicas["calls"].tolist() == [5]
    ev = r.events[r.events["kind"] == "replica_breaker"]
    assert ev["to"].tolist() == ["open", "half_open", "closed"]


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
    "replicas",
    [
        # Round robin over three, replica 1 always failing. Lab.submit_many submits at once, so
        # nothing may hang on the time between orders: only on the 1 ms backoff before a retry.
        # open_for 0.5 ms: replica 1's breaker opens at each failure and is half-open by the
        # retry (which goes to replica 2), so each third order probes it and it opens again.
        Replicas(
            count=3,
            overrides=(ReplicaOverride(1, _ALWAYS_FAILS),),
            breaker=Breaker(consecutive_failures=1, open_for=0.0005),
        ),
        # open_for far beyond the run: replica 1 fails once and is skipped ever after.
        Replicas(
            count=3,
            overrides=(ReplicaOverride(1, _ALWAYS_FAILS),),
            breaker=Breaker(consecutive_failures=1, open_for=100.0),
        ),
        # Both replicas always fail: the first order opens both breakers, every later order
        # is refused as breaker_open without a call.
        Replicas(
            count=2,
            overrides=(ReplicaOverride(0, _ALWAYS_FAILS), ReplicaOverride(1, _ALWAYS_FAILS)),
            breaker=Breaker(consecutive_failures=1, open_for=100.0),
        ),
    ],
)
def test_both_engines_give_the_same_per_order_outcomes(replicas: Replicas) -> None:
    n = 12
    sc = Scenario(
        arrivals=rl.Trace(tuple(0.03 * i for i in range(n))),
        workers=1,  # one caller: the balancer sees the calls in the same order in both engines
        queue_capacity=100,
        duration=0.03 * n,
        seed=3,
        dependencies=(
            Dependency(
                "payment",
                faults=Faults(latency=Constant(0.01)),
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
    cols = ["calls", "failures", "outstanding", "breaker_state", "breaker_opened", "breaker_probes"]
    assert live.replicas[cols].to_numpy().tolist() == sim.replicas[cols].to_numpy().tolist()
    for key in ("calls", "failures", "rejected_breaker"):
        assert live.totals["dependencies"][0][key] == sim.totals["dependencies"][0][key], key
    kinds = ["replica_breaker"]
    assert (
        live.events[live.events["kind"].isin(kinds)][["from", "to"]].to_numpy().tolist()
        == sim.events[sim.events["kind"].isin(kinds)][["from", "to"]].to_numpy().tolist()
    )
    assert sim.replicas["breaker_opened"].sum() >= 1


# -- no probe slot is left taken -------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    count=st.integers(1, 5),
    balancer=st.sampled_from(rl.LB_KINDS),
    half_open_max_calls=st.integers(1, 3),
    max_hedges=st.integers(1, 2),
    timeout=st.sampled_from([0.02, 0.05, 0.2]),
    seed=st.integers(0, 2**32),
)
def test_every_half_open_permit_is_released_under_hedging_and_timeouts(
    count: int,
    balancer: str,
    half_open_max_calls: int,
    max_hedges: int,
    timeout: float,
    seed: int,
) -> None:
    """Hedge copies cancelled by a winner, attempts cut by their timeout or the order's
    deadline, failing and slow replicas: after a drained run no replica breaker holds a probe
    slot, and one whose breaker is half-open still admits a call."""
    slow_failing = Faults(failure_rate=0.7, latency=Exponential(0.05))
    dep = Dependency(
        "payment",
        faults=Faults(failure_rate=0.1, latency=Exponential(0.02)),
        retry=rl.RetryConfig(max_attempts=3, backoff=rl.Backoff(initial=0.005)),
        attempt_timeout=timeout,
        hedge=rl.Hedge(delay=0.01, max_hedges=max_hedges, budget_ratio=None),
        replicas=Replicas(
            count=count,
            balancer=balancer,  # type: ignore[arg-type]
            overrides=(ReplicaOverride(0, slow_failing),),
            breaker=Breaker(
                consecutive_failures=2, open_for=0.1, half_open_max_calls=half_open_max_calls
            ),
        ),
    )
    r = simulate(_scenario(dep, rate=150, duration=4, seed=seed, order_deadline=0.3))
    reps = r.replicas
    assert (reps["outstanding"] == 0).all()
    assert (reps["breaker_probes"] == 0).all()
    assert reps.loc[0, "breaker_opened"] >= 1
    s = r.summary
    terminal = s["completed"] + s["failed"] + s["rejected"] + s["expired"] + s["cancelled"]
    assert terminal == s["arrived"]
    totals = r.totals["dependencies"][0]
    assert reps["calls"].sum() == totals["calls"]
    assert totals["successes"] + totals["failures"] + totals["cancelled"] == totals["calls"]
    # Transitions alternate per replica as a breaker's must: open -> half_open -> closed/open.
    for i in range(count):
        ev = r.events[
            (r.events["kind"] == "replica_breaker") & (r.events["from"] == f"replica {i}")
        ]
        states = ["closed", *ev["to"].tolist()]
        for a, b in itertools.pairwise(states):
            assert (a, b) in {
                ("closed", "open"),
                ("open", "half_open"),
                ("half_open", "open"),
                ("half_open", "closed"),
            }, (i, states)


def test_a_config_without_replica_breakers_has_no_breaker_columns() -> None:
    r = simulate(_scenario(Dependency("payment", replicas=Replicas(count=2)), duration=1))
    assert "breaker_state" not in r.replicas.columns
    with_breakers = dataclasses.replace(
        r.scenario.dependencies[0], replicas=Replicas(count=2, breaker=Breaker())
    )
    r2 = simulate(_scenario(with_breakers, duration=1))
    assert r2.replicas["breaker_state"].tolist() == ["closed", "closed"]


# -- the live engine's registry --------------------------------------------------------------------


def _families(text: str) -> set[str]:
    return {
        line.split()[2].removesuffix("_total")
        for line in text.splitlines()
        if line.startswith("# TYPE") and "rlab_replica_" in line
    }


def _sample(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[1])
    raise AssertionError(series)


def test_the_live_engine_exports_the_replica_families_while_it_runs() -> None:
    """Scraped from a running Lab: the simulator's rlab_replica_* families, with the bounded
    replica label, agreeing with the pool's figures."""
    sc = Scenario(
        arrivals=rl.Poisson(10.0),
        workers=1,
        queue_capacity=100,
        duration=1.0,
        seed=3,
        dependencies=(
            Dependency(
                "payment",
                faults=Faults(latency=Constant(0.001)),
                retry=rl.RetryConfig(
                    max_attempts=2, backoff=rl.Backoff(initial=0.001, jitter="none")
                ),
                replicas=Replicas(
                    count=3,
                    overrides=(ReplicaOverride(1, _ALWAYS_FAILS),),
                    breaker=Breaker(consecutive_failures=1, open_for=100.0),
                ),
            ),
        ),
    )
    with rl.Lab(sc, shutdown_timeout=30.0) as lab:
        assert all(h.wait(timeout=30) for h in lab.submit_many(10))
        assert lab.wait_idle(timeout=30)
        text = lab.metrics_text()
    sim_families = _families(simulate(sc).metrics_text())
    assert _families(text) == sim_families == {
        "rlab_replica_calls", "rlab_replica_failures", "rlab_replica_ejections",
        "rlab_replica_breaker_trips", "rlab_replica_breaker_state",
    }
    reps = lab.result.replicas
    assert reps["calls"].tolist() == [5, 1, 5]  # replica 1 fails once, then is skipped
    for i in range(3):
        key = f'dependency="payment",replica="{i}"'
        assert _sample(text, f"rlab_replica_calls_total{{{key}}}") == reps.loc[i, "calls"]
        assert _sample(text, f"rlab_replica_failures_total{{{key}}}") == reps.loc[i, "failures"]
        assert _sample(text, f"rlab_replica_breaker_trips_total{{{key}}}") == (i == 1)
        state = reps.loc[i, "breaker_state"]
        assert _sample(text, f'rlab_replica_breaker_state{{{key},state="{state}"}}') == 1.0
    assert 'replica="3"' not in text


def test_no_live_replica_families_without_replicas() -> None:
    sc = _scenario(Dependency("payment"), rate=10, duration=1)
    with rl.Lab(sc, shutdown_timeout=30.0) as lab:
        assert all(h.wait(timeout=30) for h in lab.submit_many(3))
        assert "rlab_replica_" not in lab.metrics_text()
