"""reliability_lab.testing.strategies: valid by construction, codec round trips, fixable bounds,
shrinking towards simple values."""

from __future__ import annotations

import math

import pytest
import reliability_lab as rl
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from reliability_lab import _core
from reliability_lab.scenario import Dependency, Scenario
from reliability_lab.testing import scenario_diff
from reliability_lab.testing import strategies as rst

_FIND = settings(database=None, suppress_health_check=[HealthCheck.too_slow])
_FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FAST
@given(rst.st_scenario())
def test_every_scenario_passes_the_native_validator_and_round_trips(sc: Scenario) -> None:
    _core.validate_scenario(sc.to_dict())  # the validator the engines use, called directly
    assert Scenario.from_dict(sc.to_dict()) == sc
    assert Scenario.from_json(sc.to_json()) == sc
    # The dotted-path diff the assertions print rebuilds the scenario exactly.
    assert Scenario().replace(scenario_diff(sc)) == sc


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rst.st_scenario(duration=st.floats(1.0, 3.0), arrivals=rst.st_arrivals(max_rate=50,
                                                                          horizon=3.0)))
def test_generated_scenarios_run_in_the_simulated_engine(sc: Scenario) -> None:
    res = rl.simulate(sc.replace(record_orders=False))
    s = res.summary
    assert s["in_flight"] == 0
    assert s["completed"] + s["failed"] + s["rejected"] + s["expired"] + s["cancelled"] == (
        s["arrived"]
    )


@_FAST
@given(
    rst.st_faults(),
    rst.st_retry(),
    rst.st_breaker(),
    rst.st_budget(),
    rst.st_bulkhead(),
    rst.st_throttle(),
    rst.st_fallback(),
    rst.st_latency(),
)
def test_every_policy_config_is_accepted_by_its_live_object_and_a_dependency(
    faults: rl.Faults,
    retry: rl.RetryConfig,
    breaker: rl.Breaker,
    budget: rl.TokenBucketConfig | rl.RatioBudgetConfig,
    bulkhead: rl.BulkheadConfig,
    throttle: rl.Throttle,
    fallback: rl.Fallback,
    latency: rl.Exponential,
) -> None:
    rl.CircuitBreaker(breaker, clock=rl.ManualClock())
    budget.build()
    bulkhead.build()
    rl.AdaptiveThrottle.from_config(throttle)
    rl.Retry.from_config(retry, clock=rl.ManualClock())
    dep = Dependency("svc", faults=faults, retry=retry, breaker=breaker, budget=budget,
                     bulkhead=bulkhead, throttle=throttle, fallback=fallback)
    assert Dependency.from_dict(dep.to_dict()) == dep
    assert math.isfinite(rl.scenario.mean_of(latency))


def test_fixed_arguments_and_bounds_are_respected() -> None:
    mine = rl.Breaker(consecutive_failures=3, open_for=2.0)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(rst.st_scenario(failure_rate=st.floats(0, 0.4), breaker=mine, retry=None,
                           workers=4, duration=5.0))
    def check(sc: Scenario) -> None:
        dep = sc.dependency("payment")
        assert dep.breaker == mine
        assert dep.retry is None
        assert 0 <= dep.faults.failure_rate <= 0.4
        assert sc.workers == 4 and sc.duration == 5.0
        for p in dep.faults.phases:
            assert 0 <= p.start < p.end <= 5.0

    check()


def test_dependencies_replace_the_default_dependency() -> None:
    deps = st.just((Dependency("a"), Dependency("b")))
    sc = find(rst.st_scenario(dependencies=deps), lambda s: True, settings=_FIND)
    assert [d.name for d in sc.dependencies] == ["a", "b"]
    with pytest.raises(TypeError, match="dependencies and breaker"):
        rst.st_scenario(dependencies=deps, breaker=rl.Breaker())


def test_shrinks_to_the_simplest_scenario() -> None:
    sc = find(rst.st_scenario(), lambda s: True, settings=_FIND)
    dep = sc.dependency("payment")
    assert isinstance(sc.arrivals, rl.Poisson)
    assert (dep.retry, dep.breaker, dep.budget, dep.bulkhead, dep.throttle) == (None,) * 5
    assert dep.faults.phases == () and dep.faults.failure_rate == 0
    assert dep.faults.mix == rl.FailureMix() and isinstance(dep.faults.latency, rl.Constant)
    assert sc.seed == 0 and sc.order_deadline == 0


def test_a_failing_property_shrinks_to_a_minimal_breaker() -> None:
    # The default breaker is the simplest; "more than 5 failures in a row" (more than the
    # default) shrinks to exactly 6 with the other trip policies off.
    assert find(rst.st_breaker(), lambda b: True, settings=_FIND) == rl.Breaker()
    b = find(rst.st_breaker(), lambda b: b.consecutive_failures > 5, settings=_FIND)
    assert b.consecutive_failures == 6
    assert b.failure_rate_threshold == 0 and b.slow_call_rate_threshold == 0


def test_phases_shrink_to_one_window() -> None:
    ph = find(rst.st_phases(horizon=10.0), lambda ps: len(ps) >= 1, settings=_FIND)
    assert len(ph) == 1
    assert ph[0].start < ph[0].end


def test_faults_and_failure_rate_together_are_refused() -> None:
    with pytest.raises(TypeError, match="faults or failure_rate"):
        rst.st_dependency(faults=rl.Faults(), failure_rate=0.1)
