"""Hedging and fan-out with a quorum (issue 13, request patterns): validation, conservation, the
hedge budget, and agreement with closed-form order statistics (fixed seeds, tolerances)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reliability_lab as rl
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_lab import (
    Capacity,
    Constant,
    Dependency,
    Exponential,
    FanOut,
    Faults,
    Hedge,
    Mixture,
    Poisson,
    Scenario,
    simulate,
)


def _scenario(dep: Dependency, *, rate: float = 200.0, duration: float = 50.0) -> Scenario:
    # Plenty of workers: an order's latency is its dependency call, never a queue.
    return Scenario(
        arrivals=Poisson(rate),
        workers=500,
        queue_capacity=1000,
        duration=duration,
        seed=7,
        dependencies=(dep,),
    )


def _call_latency(result: rl.Result) -> np.ndarray:
    orders = result.orders
    assert orders is not None
    return (orders["end"] - orders["start"]).to_numpy()


# -- validation -----------------------------------------------------------------------------------


def test_hedge_fields_are_checked() -> None:
    with pytest.raises(ValueError, match=r"max_hedges must be an integer in \[1, 31\], got 0"):
        Hedge(max_hedges=0)
    with pytest.raises(ValueError, match=r"quantile must be a finite number in \(0, 1\)"):
        Hedge(quantile=1.0)
    with pytest.raises(ValueError, match=r"delay must be a finite number in \(0, 1e\+06\]"):
        Hedge(delay=0.0)
    with pytest.raises(ValueError, match=r"quorum must be an integer in \[1, 3\], got 4"):
        FanOut(copies=3, quorum=4)


def test_hedging_a_write_needs_idempotency_keys() -> None:
    write = Dependency(charges=True, idempotency_keys=False)
    # Refused by the Dependency itself (a rule of its table): named relative to it.
    with pytest.raises(ValueError, match=r"^hedge must be None on a dependency that "):
        _scenario(Dependency(charges=True, idempotency_keys=False, hedge=Hedge()))
    with pytest.raises(ValueError, match=r"^fanout must be None on a dependency that "):
        _scenario(Dependency(charges=True, idempotency_keys=False, fanout=FanOut()))
    sc = _scenario(write)
    with pytest.raises(ValueError, match=r"payment\.hedge must be None"):
        sc.replace({"payment.hedge": Hedge()})
    # With idempotency keys a hedged write is allowed: the ledger applies it once.
    ok = _scenario(Dependency(charges=True, hedge=Hedge()))
    # The native validator words it the same way.
    raw = ok.to_dict()
    raw["dependencies"][0]["idempotency_keys"] = False
    with pytest.raises(ValueError) as native:
        rl._core.validate_scenario(raw)
    with pytest.raises(ValueError) as python:
        Scenario.from_dict(raw)
    assert str(native.value) == str(python.value)


def test_hedge_and_fanout_are_exclusive() -> None:
    with pytest.raises(ValueError, match=r"^hedge must be None when fanout is set"):
        _scenario(Dependency(hedge=Hedge(), fanout=FanOut()))


def test_dotted_paths_dicts_and_the_native_validator() -> None:
    sc = _scenario(Dependency(hedge=Hedge(delay=0.02)))
    assert sc.get("payment.hedge.delay") == 0.02
    assert "payment.hedge.delay" in sc.paths()
    swept = sc.replace({"payment.hedge.delay": 0.01, "payment.hedge.max_hedges": 2})
    assert swept.get("payment.hedge.max_hedges") == 2
    assert Scenario.from_dict(swept.to_dict()) == swept
    d = sc.to_dict()
    d["dependencies"][0]["hedge"]["delay"] = -1
    with pytest.raises(ValueError, match=r"payment\.hedge\.delay must be"):
        Scenario.from_dict(d)
    # The native codec names the path too, and accepts a dict without the new keys.
    raw = sc.to_dict()
    raw["dependencies"][0]["hedge"]["max_hedges"] = 99
    with pytest.raises(ValueError, match=r"payment\.hedge\.max_hedges must be an integer"):
        rl._core.validate_scenario(raw)
    raw = sc.to_dict()
    del raw["dependencies"][0]["hedge"]
    del raw["dependencies"][0]["fanout"]
    rl._core.validate_scenario(raw)


def test_the_live_engine_refuses_a_round_on_a_capacity_limited_dependency() -> None:
    limited = Faults(capacity=Capacity(max_in_service=4))
    for dep in (
        Dependency(faults=limited, hedge=Hedge()),
        Dependency(faults=limited, fanout=FanOut()),
    ):
        which = "hedge" if dep.hedge else "fanout"
        with pytest.raises(
            ValueError, match=rf"^payment\.{which} with a capacity limit .* is simulator-only"
        ):
            rl.Lab(_scenario(dep))


def _outcomes(orders: object) -> list[tuple[str, str, int]]:
    import pandas as pd

    assert isinstance(orders, pd.DataFrame)
    return sorted(
        zip(
            orders["status"].astype(str),
            orders["reason"].astype(str),
            orders["attempts"].astype(int),
            strict=True,
        )
    )


@pytest.mark.parametrize(
    "dep",
    [
        # The first copy always wins (20 ms against a hedge sent at 5 ms): 2 attempts each.
        Dependency(
            faults=Faults(latency=Constant(0.02)), hedge=Hedge(delay=0.005, budget_ratio=None)
        ),
        # Every copy times out; the round fails when the last one does, then one retry round.
        Dependency(
            faults=Faults(latency=Constant(0.05)),
            attempt_timeout=0.015,
            retry=rl.RetryConfig(max_attempts=2, backoff=rl.Backoff(initial=0.001, jitter="none")),
            hedge=Hedge(delay=0.005, max_hedges=2, budget_ratio=None),
        ),
        # A hedge budget of one token: the first order hedges, the others cannot.
        Dependency(
            faults=Faults(latency=Constant(0.01)),
            hedge=Hedge(delay=0.002, budget_ratio=0.0, budget_burst=1.0),
        ),
        # Fan-out: four copies answer at once; the first three make the quorum, the fourth is
        # cancelled (answers at the same instant are taken in launch order by both engines).
        Dependency(faults=Faults(latency=Constant(0.01)), fanout=FanOut(4, 3)),
    ],
)
def test_both_engines_give_the_same_per_order_outcomes(dep: Dependency) -> None:
    n = 12
    sc = Scenario(
        arrivals=rl.Trace(tuple(0.03 * i for i in range(n))),
        workers=2,
        queue_capacity=100,
        duration=0.03 * n,
        seed=3,
        dependencies=(dep,),
    )
    sim = simulate(sc)
    with rl.Lab(sc, shutdown_timeout=30.0) as lab:
        handles = lab.submit_many(n)
        assert all(h.wait(timeout=30) for h in handles)
    live = lab.result
    assert _outcomes(live.orders) == _outcomes(sim.orders)
    for key in ("calls", "successes", "failures", "cancelled", "hedges", "hedges_won"):
        assert live.totals["dependencies"][0][key] == sim.totals["dependencies"][0][key], key


# -- conservation and the budget ------------------------------------------------------------------


def test_conservation_with_faults_retries_and_a_breaker() -> None:
    dep = Dependency(
        faults=Faults(
            failure_rate=0.2,
            latency=Mixture((0.9, 0.1), (Exponential(0.02), Constant(0.5))),
        ),
        retry=rl.RetryConfig(max_attempts=3),
        breaker=rl.Breaker(consecutive_failures=20),
        attempt_timeout=0.3,
        hedge=Hedge(delay=0.03, max_hedges=2, budget_ratio=0.2),
    )
    r = simulate(_scenario(dep, duration=20.0).replace(order_deadline=1.0))
    s = r.summary
    terminal = s["completed"] + s["failed"] + s["rejected"] + s["expired"] + s["cancelled"]
    assert terminal == s["arrived"]
    assert s["in_flight"] == 0
    raw = r.totals["dependencies"][0]
    assert raw["calls"] == raw["successes"] + raw["failures"] + raw["cancelled"]
    assert raw["hedges"] > 0 and raw["cancelled"] > 0
    orders = r.orders
    assert orders is not None
    assert orders["attempts"].sum() == raw["calls"] + raw["rejected_breaker"]
    # The time series adds up to the totals.
    ts = r.timeseries
    assert ts["payment.hedges"].sum() == raw["hedges"]
    assert ts["payment.cancelled"].sum() == raw["cancelled"]
    assert ts["payment.wasted_attempt_seconds"].sum() == pytest.approx(
        raw["wasted_attempt_seconds"]
    )
    assert s["payment.wasted_attempt_seconds"] == raw["wasted_attempt_seconds"] > 0
    # Same seed, same run.
    again = simulate(_scenario(dep, duration=20.0).replace(order_deadline=1.0))
    assert again.summary.equals(s)


@pytest.mark.parametrize(("ratio", "burst"), [(0.05, 10.0), (0.0, 1.0), (0.5, 3.0)])
def test_the_hedge_budget_is_never_exceeded(ratio: float, burst: float) -> None:
    # Every call is slow enough to be hedged: without a budget, hedges = calls.
    dep = Dependency(
        faults=Faults(latency=Exponential(0.05)),
        hedge=Hedge(delay=0.001, max_hedges=3, budget_ratio=ratio, budget_burst=burst),
    )
    r = simulate(_scenario(dep, duration=10.0))
    raw = r.totals["dependencies"][0]
    rounds = raw["calls"] - raw["hedges"]  # no breaker or throttle: one first copy per round
    assert rounds == r.summary["arrived"]
    assert raw["hedges"] <= burst + ratio * rounds + 1e-9
    assert raw["hedges"] >= math.floor(ratio * rounds) - 1  # the budget is used, not hoarded
    assert raw["hedges_denied"] > 0


def test_hedging_cuts_the_tail_at_the_price_of_extra_calls() -> None:
    # The Tail at Scale: 2% of calls take a second. A hedge after 50 ms avoids almost all of
    # them (both copies slow: 0.02² = 0.04%) for about 1 + P(first copy > 50 ms) calls per order.
    slow = Faults(latency=Mixture((0.98, 0.02), (Exponential(0.01), Constant(1.0))))
    plain = simulate(_scenario(Dependency(faults=slow)))
    hedged = simulate(
        _scenario(Dependency(faults=slow, hedge=Hedge(delay=0.05, budget_ratio=None)))
    )
    p99_plain = np.quantile(_call_latency(plain), 0.99)
    p99_hedged = np.quantile(_call_latency(hedged), 0.99)
    assert p99_plain == pytest.approx(1.0)
    assert p99_hedged < 0.1
    extra = hedged.summary["payment.calls_per_order"] - 1.0
    p_hedge = 0.98 * math.exp(-0.05 / 0.01) + 0.02  # P(first copy still out at 50 ms)
    assert extra == pytest.approx(p_hedge, rel=0.2)
    assert hedged.summary["payment.hedges_won"] > 0


def test_a_quantile_delay_hedges_about_the_slowest_fraction() -> None:
    # Hedge after the p90 of recent latencies: about 10% of calls are hedged.
    dep = Dependency(
        faults=Faults(latency=Exponential(0.02)),
        hedge=Hedge(delay=1.0, quantile=0.9, window=200, budget_ratio=None),
    )
    r = simulate(_scenario(dep))
    raw = r.totals["dependencies"][0]
    assert raw["hedges"] / r.summary["arrived"] == pytest.approx(0.1, abs=0.02)


# -- fan-out and order statistics -----------------------------------------------------------------


@pytest.mark.parametrize(("k", "m"), [(1, 1), (3, 1), (5, 3), (4, 4)])
def test_fanout_latency_is_the_mth_order_statistic_of_exponentials(k: int, m: int) -> None:
    mean = 0.01
    lam = 1.0 / mean
    expected = sum(1.0 / ((k - i) * lam) for i in range(m))
    r = simulate(
        _scenario(Dependency(faults=Faults(latency=Exponential(mean)), fanout=FanOut(k, m)))
    )
    lat = _call_latency(r)
    assert len(lat) > 5000
    assert lat.mean() == pytest.approx(expected, rel=0.04)
    raw = r.totals["dependencies"][0]
    assert raw["calls"] == k * r.summary["arrived"]
    assert raw["cancelled"] == (k - m) * r.summary["arrived"]


def test_fanout_of_constant_latencies_is_the_constant() -> None:
    r = simulate(_scenario(Dependency(faults=Faults(latency=Constant(0.025)), fanout=FanOut(7, 4))))
    assert np.allclose(_call_latency(r), 0.025)


@pytest.mark.parametrize("k", [1, 5, 20])
def test_at_least_one_of_k_calls_is_slow(k: int) -> None:
    # A fan-out-join waits for its slowest copy: it is slow when any copy is,
    # P = 1 - (1 - p)^k; hedging at once (quorum 1) is slow only when every copy is, p^k.
    p = 0.05
    faults = Faults(latency=Mixture((1 - p, p), (Constant(0.001), Constant(0.2))))
    join = simulate(_scenario(Dependency(faults=faults, fanout=FanOut(k, k)), duration=30.0))
    frac = float((_call_latency(join) > 0.1).mean())
    expected = 1 - (1 - p) ** k
    n = len(_call_latency(join))
    assert frac == pytest.approx(expected, abs=4 * math.sqrt(expected * (1 - expected) / n) + 1e-9)
    first = simulate(_scenario(Dependency(faults=faults, fanout=FanOut(k, 1)), duration=30.0))
    frac1 = float((_call_latency(first) > 0.1).mean())
    expected1 = p**k
    assert frac1 == pytest.approx(
        expected1, abs=4 * math.sqrt(expected1 * (1 - expected1) / n) + 1e-4
    )


def test_fanout_fails_once_the_quorum_is_out_of_reach() -> None:
    # Each copy fails with probability q: a 3-of-5 call fails when at least 3 copies fail.
    q = 0.3
    r = simulate(
        _scenario(Dependency(faults=Faults(failure_rate=q), fanout=FanOut(5, 3)), duration=20.0)
    )
    p_fail = sum(math.comb(5, j) * q**j * (1 - q) ** (5 - j) for j in range(3, 6))
    n = r.summary["arrived"]
    assert r.summary["failed"] / n == pytest.approx(p_fail, abs=4 * math.sqrt(p_fail / n))
    raw = r.totals["dependencies"][0]
    assert raw["calls"] == raw["successes"] + raw["failures"] + raw["cancelled"]


# -- property: any hedge or fan-out configuration -------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(["hedge", "fanout"]),
    copies=st.integers(1, 6),
    quorum_frac=st.floats(0.0, 1.0),
    delay=st.floats(0.001, 0.1),
    ratio=st.one_of(st.none(), st.floats(0.0, 2.0)),
    burst=st.floats(1.0, 20.0),
    failure_rate=st.floats(0.0, 0.5),
    timeout=st.sampled_from([0.0, 0.03]),
    retries=st.integers(1, 3),
    breaker=st.booleans(),
    deadline=st.sampled_from([0.0, 0.05, 1.0]),
)
def test_every_order_ends_once_and_the_counts_add_up(
    kind: str,
    copies: int,
    quorum_frac: float,
    delay: float,
    ratio: float | None,
    burst: float,
    failure_rate: float,
    timeout: float,
    retries: int,
    breaker: bool,
    deadline: float,
) -> None:
    pattern: dict[str, object] = (
        {"hedge": Hedge(delay=delay, max_hedges=copies, budget_ratio=ratio, budget_burst=burst)}
        if kind == "hedge"
        else {"fanout": FanOut(copies, max(1, round(quorum_frac * copies)))}
    )
    dep = Dependency(
        faults=Faults(failure_rate=failure_rate, latency=Exponential(0.02)),
        retry=rl.RetryConfig(max_attempts=retries, backoff=rl.Backoff(initial=0.001)),
        breaker=rl.Breaker(consecutive_failures=5, open_for=0.05) if breaker else None,
        attempt_timeout=timeout,
        **pattern,  # type: ignore[arg-type]
    )
    sc = Scenario(
        arrivals=Poisson(300.0),
        workers=8,
        queue_capacity=50,
        duration=1.0,
        seed=11,
        order_deadline=deadline,
        dependencies=(dep,),
    )
    r = simulate(sc)
    s = r.summary
    terminal = s["completed"] + s["failed"] + s["rejected"] + s["expired"] + s["cancelled"]
    assert terminal == s["arrived"] and s["in_flight"] == 0
    d = r.totals["dependencies"][0]
    assert d["calls"] == d["successes"] + d["failures"] + d["cancelled"]
    if kind == "hedge" and ratio is not None:
        rounds = d["calls"] - d["hedges"] + d["rejected_breaker"]  # an upper bound on calls
        assert d["hedges"] <= burst + ratio * rounds + 1e-9
    orders = r.orders
    assert orders is not None
    assert bool((orders["end"] >= orders["arrival"]).all())


# -- a call decided by a hedge, followed at once by the next dependency's call ---------------------

_BIMODAL = Faults(latency=Mixture((0.7, 0.3), (Constant(0.001), Constant(0.05))))


def _two_hedged(rate: float, duration: float) -> Scenario:
    deps = tuple(
        Dependency(name=n, faults=_BIMODAL, hedge=Hedge(delay=0.005, budget_ratio=None))
        for n in ("a", "b")
    )
    return Scenario(
        arrivals=Poisson(rate),
        workers=200,
        queue_capacity=1000,
        duration=duration,
        seed=5,
        dependencies=deps,
    )


def _check_each_dependency_cancelled_its_losers(raws: list[dict[str, float]]) -> None:
    for raw in raws:
        assert raw["calls"] == raw["successes"] + raw["failures"] + raw["cancelled"]
        # 30% of first copies are slow; the hedge (70% fast) then wins and the slow first copy is
        # cancelled, on the first dependency as on the last.
        assert raw["cancelled"] > 0 and raw["wasted_attempt_seconds"] > 0
    a, b = raws
    assert a["cancelled"] == pytest.approx(b["cancelled"], rel=0.25)
    assert a["wasted_attempt_seconds"] == pytest.approx(b["wasted_attempt_seconds"], rel=0.25)


def test_the_losers_of_a_decided_call_are_cancelled_before_the_next_call_simulated() -> None:
    # Regression: the flow goes straight from a call a hedge decided to the next dependency's
    # call, whose copy 0 it already counts as outstanding; the engine kept the old call's copy 0
    # (its answer could end the new call, and its server time was not counted as wasted).
    r = simulate(_two_hedged(rate=200.0, duration=20.0))
    _check_each_dependency_cancelled_its_losers(r.totals["dependencies"])
    assert r.summary["in_flight"] == 0
    orders = r.orders
    assert orders is not None
    # Each call ends by 5 ms + the hedge's latency (at most 55 ms): an order never waits for a
    # slow loser.
    assert (orders["end"] - orders["start"]).max() < 2 * 0.056


def test_the_losers_of_a_decided_call_are_cancelled_before_the_next_call_live() -> None:
    sc = _two_hedged(rate=100.0, duration=3.0)
    with rl.Lab(sc, shutdown_timeout=30.0) as lab:
        handles = lab.submit_many(200)
        assert all(h.wait(timeout=30) for h in handles)
    _check_each_dependency_cancelled_its_losers(lab.result.totals["dependencies"])
