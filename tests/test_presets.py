"""Seed presets: each preset carries its article's numbers, its difference table is true, and each
preset's scenario runs with every order ending in exactly one terminal state."""

from __future__ import annotations

import pytest
import reliability_lab as rl
from reliability_lab import presets
from reliability_lab.bulkhead import BulkheadConfig


def test_go_lab_matches_seeds_000_and_001() -> None:
    # The payment call fails 30% of the time; 4 attempts (one call, three retries); the breaker
    # opens after 5 consecutive failures and probes with one request.
    dep = presets.go_lab_scenario().dependency("payment")
    assert dep.faults.failure_rate == 0.3
    assert dep.retry is not None and dep.retry.max_attempts == 4
    assert set(dep.retry.retry_on) == {"timeout", "connection_reset", "error", "4xx", "5xx"}
    assert dep.breaker == rl.Breaker(consecutive_failures=5, half_open_max_calls=1,
                                     success_threshold=1)
    assert dep.composition == "retry_outside_breaker"  # a breaker rejection stops the loop
    assert dep.charges and dep.fallback.kind == "none"


def test_microservices_matches_seed_002() -> None:
    sc = presets.microservices_scenario()
    assert sc.order_deadline == 2.0
    dep = sc.dependency("user_service")
    assert dep.retry is not None
    assert dep.retry.max_attempts == 3
    assert dep.retry.backoff == rl.Backoff(initial=0.1, multiplier=2.0, max_delay=5.0,
                                           jitter="proportional", jitter_factor=0.5)
    assert set(dep.retry.retry_on) == {
        "timeout", "connection_reset", "408", "425", "429", "500", "502", "503", "504",
    }
    assert dep.breaker == rl.Breaker(consecutive_failures=5, success_threshold=2, open_for=10.0,
                                     half_open_max_calls=1)
    assert dep.bulkhead == BulkheadConfig(max_concurrent=20, max_waiting=20, max_wait=None)
    assert dep.attempt_timeout == 0.5
    assert dep.composition == "breaker_outside_retry"


def test_pricing_matches_seed_003() -> None:
    sc = presets.pricing_scenario()
    assert sc.order_deadline == 5.0
    pricing, inventory = sc.dependencies
    assert (pricing.name, inventory.name) == ("pricing", "inventory")
    assert pricing.retry is not None
    assert pricing.retry.max_attempts == 5
    assert pricing.retry.backoff == rl.Backoff(initial=0.1, multiplier=2.0, max_delay=30.0,
                                               jitter="proportional", jitter_factor=0.5)
    assert set(pricing.retry.retry_on) == {"timeout", "connection_reset", "error", "5xx"}
    assert pricing.breaker == rl.Breaker(consecutive_failures=5, open_for=30.0,
                                         half_open_max_calls=1, success_threshold=2)
    assert pricing.attempt_timeout == 0.5 and pricing.fallback.kind == "default"
    assert inventory.attempt_timeout == 0.2 and inventory.fallback.kind == "none"
    assert inventory.retry is None and inventory.breaker is None


def test_the_standalone_policies_are_the_scenarios() -> None:
    for p in presets.PRESETS.values():
        sc = p.scenario()
        dep = sc.dependencies[0]
        assert dep.breaker == p.breaker()
        retry = p.retry()
        assert dep.retry is not None
        assert (dep.retry.max_attempts, dep.retry.backoff) == (retry.max_attempts, retry.backoff)
        assert set(dep.retry.retry_on) == set(retry.retry_on)  # type: ignore[arg-type]


def _lab_defaults(sc: rl.Scenario) -> rl.Scenario:
    """The same dependencies with every policy the preset sets at the lab's default."""
    deps = [
        rl.Dependency(
            d.name,
            retry=rl.RetryConfig() if d.retry is not None else None,
            breaker=rl.Breaker() if d.breaker is not None else None,
            bulkhead=BulkheadConfig() if d.bulkhead is not None else None,
        )
        for d in sc.dependencies
    ]
    return rl.Scenario(dependencies=deps)


def _norm(v: object) -> object:
    return frozenset(v) if isinstance(v, tuple) else v


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_difference_tables_are_true(name: str) -> None:
    p = presets.PRESETS[name]
    sc = p.scenario()
    defaults = _lab_defaults(sc)
    assert p.differences
    for d in p.differences:
        assert _norm(sc.get(d.path)) == _norm(d.article), d
        assert _norm(defaults.get(d.path)) == _norm(d.lab_default), d
        assert _norm(d.article) != _norm(d.lab_default), d


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_each_preset_simulates_and_conserves_orders(name: str) -> None:
    sc = presets.PRESETS[name].scenario(duration=10.0, seed=7)
    # Some trouble for the policies to act on: the first dependency fails 30% of the time.
    first = sc.dependencies[0].name
    s = rl.simulate(sc.replace({f"{first}.faults.failure_rate": 0.3})).summary
    assert s["arrived"] > 0
    assert s["in_flight"] == 0
    terminal = sum(s[k] for k in ("completed", "failed", "rejected", "expired", "cancelled"))
    assert terminal == s["arrived"]


def test_preset_lookup_by_name_and_seed_number() -> None:
    assert presets.preset("go_lab") is presets.preset("000") is presets.preset("001")
    assert presets.preset("002").name == "microservices"
    assert presets.preset("003").name == "pricing"
    with pytest.raises(ValueError, match="preset must be one of 'go_lab'"):
        presets.preset("004")
    assert rl.presets is presets


def test_live_retry_takes_a_clock_and_a_seed() -> None:
    clock = rl.ManualClock()
    retry = presets.go_lab_retry(clock=clock, seed=1)
    calls = []

    def flaky() -> str:
        calls.append(clock.now())
        if len(calls) < 4:
            raise ConnectionError("reset")
        return "ok"

    assert retry.call(flaky) == "ok"
    assert len(calls) == 4
