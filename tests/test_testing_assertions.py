"""reliability_lab.testing.assert_slo / assert_recovers / scenario_diff."""

from __future__ import annotations

import math

import pytest
import reliability_lab as rl
from reliability_lab.testing import SLOError, assert_recovers, assert_slo, scenario_diff
from reliability_lab.testing.assertions import Objective, rerun_code


def _small(failure_rate: float = 0.0, breaker: rl.Breaker | None = None,
           retry: rl.RetryConfig | None = None, phases: tuple[rl.Phase, ...] = ()) -> rl.Scenario:
    return rl.Scenario(
        arrivals=rl.Poisson(50.0), duration=5.0, workers=8,
        dependencies=[rl.Dependency(
            "payment", faults=rl.Faults(failure_rate=failure_rate, phases=phases),
            breaker=breaker, retry=retry)])


def test_a_met_objective_returns_each_figure_with_its_interval() -> None:
    out = assert_slo(_small(), success_rate=">= 0.99", p99="<= 0.5", calls_per_order="<= 1.5",
                     replications=3)
    mean, low, high = out["success_rate"]
    assert low <= mean <= high and low >= 0.99
    assert out["p99"][2] <= 0.5


def test_a_missed_objective_names_the_figure_interval_seed_and_diff() -> None:
    sc = _small(failure_rate=0.2, retry=rl.RetryConfig(max_attempts=2))
    with pytest.raises(SLOError) as info:
        assert_slo(sc, success_rate=">= 0.99", calls_per_order="<= 1.5", replications=4)
    msg = str(info.value)
    assert "success_rate >= 0.99: measured 0.9" in msg
    assert "95% interval [" in msg and "over 4 runs" in msg
    assert "entirely outside the bound" in msg
    assert "seeds: [0, 1, 2, 3]" in msg
    assert "payment.faults.failure_rate = 0.2" in msg
    assert "payment.retry = {'max_attempts': 2}" in msg
    assert "calls_per_order" not in msg.split("seeds:")[0]  # 1.2 calls per order: met
    # The rerun line rebuilds the scenario: paste it and get the same run.
    line = msg.rsplit("\n", 1)[1].strip()
    worst = int(msg.split("worst seed ")[1].split()[0].rstrip(";"))
    res = eval(line, {"rl": rl})  # the message's own code
    assert res.scenario == sc.replace(seed=worst)


def test_an_interval_straddling_the_bound_fails_and_says_so() -> None:
    sc = _small(failure_rate=0.01)
    out = assert_slo(sc, success_rate=">= 0.5", replications=5)
    mean = out["success_rate"][0]
    with pytest.raises(SLOError, match="straddles the bound"):
        assert_slo(sc, success_rate=f">= {mean:.6f}", replications=5)


def test_a_result_is_judged_on_its_own_figures() -> None:
    res = rl.simulate(_small(failure_rate=0.3).replace(seed=11))
    with pytest.raises(SLOError) as info:
        assert_slo(res, success_rate=">= 0.99")
    assert "in one run (no interval" in str(info.value)
    assert "seed: 11" in str(info.value) and "seed=11" in str(info.value)
    assert assert_slo(res, success_rate="< 0.9")["success_rate"][0] < 0.9


def test_objectives_are_checked() -> None:
    with pytest.raises(ValueError, match="must be a bound"):
        assert_slo(_small(), success_rate="at least 0.99")
    with pytest.raises(TypeError, match="must be a bound"):
        assert_slo(_small(), success_rate=0.99)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="at least one objective"):
        assert_slo(_small())
    with pytest.raises(ValueError, match="not a figure of the run"):
        assert_slo(_small(), sucess_rate=">= 0.99", replications=2)
    with pytest.raises(ValueError, match="replications must be"):
        assert_slo(_small(), success_rate=">= 0.99", replications=1)
    assert Objective.parse("p99", "<= 0.5").column == "latency_p99"
    assert not Objective.parse("x", ">= 0").holds(math.nan)


def test_where_takes_dotted_columns() -> None:
    sc = _small(failure_rate=1.0, breaker=rl.Breaker(consecutive_failures=2, open_for=100.0))
    assert_slo(sc, where={"payment.trips": "<= 1"}, replications=2)
    with pytest.raises(SLOError, match=r"payment.trips >= 2"):
        assert_slo(sc, where={"payment.trips": ">= 2"}, replications=2)


def test_scenario_diff_is_empty_for_the_default_and_compact() -> None:
    assert scenario_diff(rl.Scenario()) == {}
    assert rerun_code(rl.Scenario()) == "rl.simulate(rl.Scenario().replace({}))"
    sc = rl.Scenario().replace({"payment.faults.phases": [rl.Outage(1, 2)], "workers": 3})
    d = scenario_diff(sc)
    assert d == {
        "workers": 3,
        "payment.faults.phases": [
            {"type": "phase", "name": "outage", "start": 1.0, "end": 2.0, "failure_rate": 1.0}
        ],
    }
    # Same phase names: the changed field alone, by the phase's path.
    sc2 = sc.replace({"payment.faults.phases[outage].end": 3.0})
    assert scenario_diff(sc2, base=sc) == {"payment.faults.phases[outage].end": 3.0}
    # A different set of dependencies is given whole.
    sc3 = rl.Scenario(dependencies=[rl.Dependency("stock"), rl.Dependency("payment")])
    assert list(scenario_diff(sc3)) == ["dependencies"]
    assert rl.Scenario().replace(scenario_diff(sc3)) == sc3


def _trigger(breaker: rl.Breaker | None, attempts: int = 1) -> rl.Scenario:
    return rl.Scenario(
        arrivals=rl.Poisson(50.0), duration=30.0, workers=8,
        dependencies=[rl.Dependency(
            "payment", faults=rl.Faults(phases=[rl.Outage(5.0, 10.0)]), breaker=breaker,
            retry=rl.RetryConfig(max_attempts=attempts) if attempts > 1 else None)])


def test_assert_recovers_passes_after_an_outage_and_reports_verdicts() -> None:
    verdicts = assert_recovers(_trigger(rl.Breaker(open_for=1.0)), within=5.0, replications=2)
    assert [v.verdict for v in verdicts] == ["recovered", "recovered"]
    assert all(v.time_to_recover <= 5.0 for v in verdicts)


def test_assert_recovers_fails_with_the_verdict_of_every_seed() -> None:
    # A breaker that stays open for a minute: goodput does not come back before the end.
    sc = _trigger(rl.Breaker(consecutive_failures=1, open_for=60.0))
    with pytest.raises(SLOError) as info:
        assert_recovers(sc, replications=2)
    msg = str(info.value)
    assert "no recovery after payment.outage (ended at 10 s) on 2 of 2 runs" in msg
    assert "seed 0: metastable" in msg and "seed 1: metastable" in msg
    assert "payment.breaker = {'consecutive_failures': 1, 'open_for': 60.0}" in msg


def test_assert_recovers_needs_a_trigger() -> None:
    with pytest.raises(ValueError, match="no fault phase"):
        assert_recovers(_small())
    res = rl.simulate(_small(phases=(rl.Outage(8.0, 9.0),)).replace(duration=30.0))
    assert assert_recovers(res, trigger=(8.0, 9.0))[0].verdict == "recovered"
