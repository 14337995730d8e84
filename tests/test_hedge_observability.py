"""Hedge observability: the live engine's hedge time-series columns and Prometheus families
match the simulator's columns and the run's totals."""

from __future__ import annotations

import dataclasses
import re

import pytest
import reliability_lab as rl
from reliability_lab import Constant, Dependency, Faults, Hedge, Mixture, Poisson, Scenario

_ROUND_COLUMNS = ("hedges", "hedges_won", "cancelled", "wasted_attempt_seconds", "hedges_denied")


def _hedged(duration: float) -> Scenario:
    # 30% of calls are slow (50 ms): a hedge after 5 ms usually wins; a small budget refuses some.
    faults = Faults(latency=Mixture((0.7, 0.3), (Constant(0.001), Constant(0.05))))
    return Scenario(
        arrivals=Poisson(100.0),
        workers=100,
        queue_capacity=1000,
        duration=duration,
        seed=11,
        sample_every=0.5,
        dependencies=(
            Dependency(
                name="payment",
                faults=faults,
                hedge=Hedge(delay=0.005, budget_ratio=0.1, budget_burst=2.0),
            ),
        ),
    )


def _check_series_add_up(result: rl.Result, *, timing_free: bool = True) -> dict[str, float]:
    raw = result.totals["dependencies"][0]
    ts = result.timeseries
    for column in _ROUND_COLUMNS:
        assert f"payment.{column}" in ts.columns
    # The hedge columns come last, in the same order in both engines.
    assert list(ts.columns[-len(_ROUND_COLUMNS) :]) == [f"payment.{c}" for c in _ROUND_COLUMNS]
    for column in ("hedges", "hedges_won", "cancelled", "hedges_denied"):
        assert ts[f"payment.{column}"].sum() == raw[column], column
    assert abs(ts["payment.wasted_attempt_seconds"].sum() - raw["wasted_attempt_seconds"]) < 1e-6
    assert raw["hedges"] > 0
    if timing_free:
        # Virtual time: which hedges win is fixed by the seed. On real threads a loaded machine
        # can make every fast call late, so that no hedge wins; the sums above still hold.
        assert raw["hedges_won"] > 0 and raw["hedges_denied"] > 0
    return raw


def test_the_simulator_has_the_hedge_columns_including_denied() -> None:
    _check_series_add_up(rl.simulate(_hedged(duration=10.0)))


def test_the_simulators_metrics_have_the_live_engines_hedge_families() -> None:
    r = rl.simulate(_hedged(duration=10.0))
    raw = r.totals["dependencies"][0]
    text = r.metrics_text()
    assert _sample(text, "rlab_dependency_hedges_total") == raw["hedges"] > 0
    assert _sample(text, "rlab_dependency_hedges_won_total") == raw["hedges_won"]
    assert _sample(text, "rlab_dependency_hedges_denied_total") == raw["hedges_denied"]
    assert _sample(text, "rlab_dependency_copies_cancelled_total") == raw["cancelled"]
    assert _sample(text, "rlab_dependency_wasted_attempt_seconds") == pytest.approx(
        raw["wasted_attempt_seconds"]
    )
    assert _sample(text, "rlab_hedge_budget_tokens") == pytest.approx(raw["hedge_tokens"])


def _families(text: str) -> set[str]:
    # Counter TYPE lines name the family with or without "_total" depending on the writer.
    return {
        line.split()[2].removesuffix("_total")
        for line in text.splitlines()
        if line.startswith("# TYPE")
    }


def test_both_engines_export_the_same_hedge_family_names() -> None:
    sc = _hedged(duration=1.0)
    with rl.Lab(sc, shutdown_timeout=30.0) as lab:
        assert all(h.wait(timeout=30) for h in lab.submit_many(20))
        live = {f for f in _families(lab.metrics_text()) if "hedge" in f or "copies" in f}
    sim = {f for f in _families(rl.simulate(sc).metrics_text()) if "hedge" in f or "copies" in f}
    assert live == sim == {
        "rlab_dependency_hedges", "rlab_dependency_hedges_won", "rlab_dependency_hedges_denied",
        "rlab_dependency_copies_cancelled", "rlab_hedge_budget_tokens",
    }


def _sample(text: str, family: str) -> float:
    m = re.search(rf'^{family}{{dependency="payment"}} (\S+)$', text, re.MULTILINE)
    assert m is not None, family
    return float(m.group(1))


def test_the_live_engine_exposes_hedges_as_series_and_metrics() -> None:
    with rl.Lab(_hedged(duration=3.0), shutdown_timeout=30.0) as lab:
        handles = lab.submit_many(300)
        assert all(h.wait(timeout=30) for h in handles)
        assert lab.wait_idle(timeout=30)
        text = lab.metrics_text()
    raw = _check_series_add_up(lab.result, timing_free=False)
    # Every order is terminal and published: the counters equal the run's totals.
    assert _sample(text, "rlab_dependency_hedges_total") == raw["hedges"]
    assert _sample(text, "rlab_dependency_hedges_won_total") == raw["hedges_won"]
    assert _sample(text, "rlab_dependency_hedges_denied_total") == raw["hedges_denied"]
    assert _sample(text, "rlab_dependency_copies_cancelled_total") == raw["cancelled"]
    wasted = _sample(text, "rlab_dependency_wasted_attempt_seconds")
    assert abs(wasted - raw["wasted_attempt_seconds"]) < 1e-6
    assert 0.0 <= _sample(text, "rlab_hedge_budget_tokens") <= 2.0


def test_no_hedge_families_without_rounds() -> None:
    sc = _hedged(duration=1.0)
    plain = sc.replace(dependencies=(dataclasses.replace(sc.dependencies[0], hedge=None),))
    with rl.Lab(plain) as lab:
        assert all(h.wait(timeout=30) for h in lab.submit_many(5))
        text = lab.metrics_text()
    assert "rlab_dependency_hedges" not in text
    assert not any(c.endswith(".hedges") for c in lab.result.timeseries.columns)
