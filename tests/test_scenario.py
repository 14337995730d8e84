"""The Scenario API: defaults, validation with dotted paths, replace/get, dict and JSON round trips,
and agreement with the native converter and validator the engines use."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
import pickle
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_lab import _core as _native_core
from reliability_lab import scenario as rs
from reliability_lab.backoff import Backoff
from reliability_lab.breaker import Breaker
from reliability_lab.budget import RatioBudgetConfig, TokenBucketConfig
from reliability_lab.bulkhead import BulkheadConfig
from reliability_lab.retry import RetryConfig
from reliability_lab.throttle import Throttle

_core: Any = _native_core  # validate_scenario / scenario_config_dump are not in the stub yet
NATIVE = hasattr(_core, "validate_scenario")
native = pytest.mark.skipif(not NATIVE, reason="_core.validate_scenario is not registered")


def rich() -> rs.Scenario:
    """A scenario using most of the schema."""
    return rs.Scenario(
        arrivals=rs.Poisson(rate=200),
        duration=60,
        workers=16,
        queue_capacity=256,
        seed=42,
        order_deadline=2.0,
        dependencies=[
            rs.Dependency(
                "pricing",
                faults=rs.Faults(latency=rs.LogNormal(median=0.02, sigma=0.5)),
                bulkhead=BulkheadConfig(max_concurrent=4, max_waiting=2, max_wait=0.1),
                fallback=rs.Fallback(kind="cache_or_default", cache_capacity=100, cache_ttl=5),
            ),
            rs.Dependency(
                "payment",
                faults=rs.Faults(
                    failure_rate=0.3,
                    mix=rs.FailureMix(http503=2, http429=1, timeout=1, retry_after=0.5),
                    latency=rs.Mixture.of((0.9, rs.Exponential(0.05)), (0.1, rs.Constant(1.0))),
                    phases=[rs.Outage(20, 35), rs.Recovery(35, 45)],
                    capacity=rs.Capacity(max_in_service=32, max_queue=100, load_slope=0.05),
                    ambiguous_rate=0.01,
                ),
                retry=RetryConfig(max_attempts=4, backoff=Backoff(initial=0.1, max_delay=2)),
                breaker=Breaker(consecutive_failures=5, open_for=5),
                budget=TokenBucketConfig(max_tokens=10, token_ratio=0.1),
                throttle=Throttle(k=2, window=60, buckets=60),
                attempt_timeout=0.5,
                charges=True,
            ),
        ],
    )


# ------------------------------------------------------------------------------------------------
# Construction and defaults


def test_defaults() -> None:
    sc = rs.Scenario()
    assert sc.arrivals == rs.Poisson(100.0)
    assert (sc.workers, sc.queue_capacity, sc.duration, sc.seed) == (8, 64, 60.0, 0)
    assert sc.dependencies == (rs.Dependency("payment"),)
    assert (sc.order_deadline, sc.release_worker_during_backoff, sc.num_keys) == (0.0, False, 1000)
    assert (sc.sample_every, sc.record_orders, sc.record_events) == (1.0, True, True)
    dep = sc.dependency("payment")
    assert dep.faults == rs.Faults()
    assert dep.faults.latency == rs.Constant(0.01)
    assert dep.faults.mix == rs.FailureMix(http503=1.0)
    assert dep.faults.hang == 30.0
    assert dep.faults.capacity == rs.Capacity(0, -1, 0.0, 0, False)
    assert (dep.retry, dep.breaker, dep.budget, dep.bulkhead, dep.throttle) == (None,) * 5
    assert dep.composition == "retry_outside_breaker"
    assert dep.fallback == rs.Fallback("none", 1000, 60.0)
    assert (dep.attempt_timeout, dep.idempotency_keys, dep.charges) == (0.0, True, False)
    assert rs.Dependency() == rs.Dependency("payment")


def test_phase_constructors() -> None:
    assert rs.Outage(1, 2) == rs.Phase("outage", 1, 2, failure_rate=1.0)
    assert rs.Brownout(1, 2) == rs.Phase("brownout", 1, 2, 0.5, latency_multiplier=5.0)
    assert rs.Recovery(1, 2) == rs.Phase("recovery", 1, 2, None, latency_multiplier=2.0)
    hang = rs.Outage(1, 2, mix=rs.FailureMix(http503=0, timeout=1), name="hang")
    assert hang.name == "hang" and hang.mix is not None and hang.mix.timeout == 1.0


def test_numbers_are_normalised_to_float_and_lists_to_tuples() -> None:
    f = rs.Faults(failure_rate=1, phases=[rs.Outage(1, 2)])
    assert type(f.failure_rate) is float and type(f.phases) is tuple
    m = rs.Mixture([1, 2], [rs.Constant(0), rs.Exponential(1)])
    assert m.weights == (1.0, 2.0) and type(m.components) is tuple
    t = rs.Trace(np.array([0.0, 0.5, 0.5, 2.0]))  # type: ignore[arg-type]
    assert t.times == (0.0, 0.5, 0.5, 2.0) and all(type(x) is float for x in t.times)
    assert rs.Scenario(seed=np.uint64(2**64 - 1)).seed == 2**64 - 1


def test_frozen_and_hashable() -> None:
    sc = rich()
    with pytest.raises(dataclasses.FrozenInstanceError):
        sc.workers = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        sc.dependencies[0].faults.failure_rate = 0.5  # type: ignore[misc]
    assert hash(sc) == hash(rich())
    assert sc == rich() and len({sc, rich()}) == 1


def test_dependencies_compare_retry_settings_not_identity() -> None:
    a = rs.Dependency(retry=RetryConfig(max_attempts=3))
    b = rs.Dependency(retry=RetryConfig(max_attempts=3, retry_on="default"))
    assert a == b and hash(a) == hash(b)
    assert a != rs.Dependency(retry=RetryConfig(max_attempts=4))
    assert a != rs.Dependency()


def test_mixture_helpers_and_mean() -> None:
    m = rs.Mixture.of((3, rs.Constant(1.0)), (1, rs.Uniform(0, 2)))
    assert m.weights == (3.0, 1.0)
    assert rs.mean_of(m) == pytest.approx(1.0)
    assert rs.mean_of(rs.LogNormal(1.0, 0.0)) == 1.0
    assert rs.mean_of(rs.Exponential(0.2)) == 0.2


# ------------------------------------------------------------------------------------------------
# Validation of each class: the field, its range, no NaN / inf / bools / clamping

BAD_VALUES: list[tuple[Any, dict[str, Any], str]] = [
    (rs.Constant, {"value": -1}, "value must be a finite number in [0, 1e+06], got -1"),
    (rs.Constant, {"value": math.nan}, "value must be a finite number in [0, 1e+06], got nan"),
    (rs.Exponential, {"mean": math.inf}, "mean must be a finite number in [0, 1e+06], got inf"),
    (rs.Exponential, {"mean": True}, "mean must be a finite number in [0, 1e+06], got True"),
    (rs.LogNormal, {"median": 1, "sigma": 11}, "sigma must be a finite number in [0, 10], got 11"),
    (rs.Uniform, {"low": 2, "high": 1}, "high must be >= low (2), got 1"),
    (rs.Mixture, {"weights": [], "components": []}, "components must not be empty"),
    (
        rs.Mixture,
        {"weights": [1], "components": [rs.Constant(1), rs.Constant(2)]},
        "weights must have one entry per component (2), got 1",
    ),
    (
        rs.Mixture,
        {"weights": [0], "components": [rs.Constant(1)]},
        "weights[0] must be a finite number in (0, inf], got 0",
    ),
    (rs.FailureMix, {"http500": -1}, "http500 must be a finite number in [0, inf], got -1"),
    (rs.FailureMix, {"timeout": math.inf}, "timeout must be a finite number in [0, inf], got inf"),
    (
        rs.FailureMix,
        {"retry_after": 2e6},
        "retry_after must be a finite number in [0, 1e+06], got 2e+06",
    ),
    (rs.Phase, {"name": "x", "start": 5, "end": 5}, "end must be greater than start (5), got 5"),
    (
        rs.Phase,
        {"name": "x", "start": -1, "end": 5},
        "start must be a finite number in [0, 1e+06], got -1",
    ),
    (rs.Phase, {"name": "a.b", "start": 0, "end": 5}, "name must be letters, digits"),
    (rs.Phase, {"name": "12", "start": 0, "end": 5}, "name must be letters, digits"),
    (
        rs.Phase,
        {"name": "x", "start": 0, "end": 5, "failure_rate": 1.5},
        "failure_rate must be a finite number in [0, 1], got 1.5",
    ),
    (
        rs.Phase,
        {"name": "x", "start": 0, "end": 5, "latency_multiplier": 0},
        "latency_multiplier must be a finite number in (0, 1e+06], got 0",
    ),
    (rs.Capacity, {"max_in_service": -1}, "max_in_service must be an integer in [0, 1000000]"),
    (rs.Capacity, {"max_queue": 1.0}, "max_queue must be an integer in [-1, 10000000], got 1.0"),
    (rs.Capacity, {"load_knee": True}, "load_knee must be an integer in [0, 10000000], got True"),
    (rs.Capacity, {"drop_abandoned": 1}, "drop_abandoned must be True or False, got 1"),
    (rs.Faults, {"failure_rate": 1.01}, "failure_rate must be a finite number in [0, 1], got 1.01"),
    (
        rs.Faults,
        {"failure_rate": 0.1, "mix": rs.FailureMix(http503=0)},
        "mix must have a positive, finite total weight when failure_rate > 0, got total 0",
    ),
    (rs.Faults, {"hang": 0}, "hang must be a finite number in (0, 1e+06], got 0"),
    (rs.Faults, {"latency": 0.1}, "latency must be a Constant, Exponential"),
    (rs.Faults, {"ambiguous_rate": -0.1}, "ambiguous_rate must be a finite number in [0, 1]"),
    (rs.Fallback, {"kind": "stale"}, "kind must be one of 'none', 'cache', 'default'"),
    (rs.Fallback, {"cache_capacity": 0}, "cache_capacity must be an integer in [1, 10000000]"),
    (rs.Fallback, {"cache_ttl": 0}, "cache_ttl must be a finite number in (0, 1e+06], got 0"),
    (rs.Poisson, {"rate": 0}, "rate must be a finite number in (0, 1e+07], got 0"),
    (rs.ConstantRate, {"rate": math.nan}, "rate must be a finite number in (0, 1e+07], got nan"),
    (
        rs.RateSegment,
        {"start": 0, "end": 1, "rate_start": -1, "rate_end": 0},
        "rate_start must be a finite number in [0, 1e+07], got -1",
    ),
    (rs.Schedule, {"segments": []}, "segments must have at least one segment"),
    (
        rs.Schedule,
        {"segments": [(0, 1, 0), (1, 2, 0)]},
        "segments must have a positive rate somewhere",
    ),
    (
        rs.Schedule,
        {"segments": [(0, 2, 1), (1, 3, 1)]},
        "segments[1].start must be >= segments[0].end (2), got 1",
    ),
    (rs.Schedule, {"segments": [(0, 0, 1)]}, "segments[0].end must be greater than start (0)"),
    (rs.Trace, {"times": []}, "times must have at least one arrival time"),
    (rs.Trace, {"times": [0, 2, 1]}, "times must be in ascending order, got times[2] = 1 after"),
    (rs.Trace, {"times": [0, -1]}, "times[1] must be a finite number in [0, 1e+06], got -1"),
    (rs.Trace, {"times": "0,1"}, "times must be a sequence"),
    (rs.ClosedLoop, {"clients": 0}, "clients must be an integer in [1, 1000000], got 0"),
    (rs.ClosedLoop, {"think_time": None}, "think_time must be a Constant"),
    (rs.Dependency, {"name": "pay-ment"}, "name must contain only letters, digits and underscores"),
    (
        rs.Dependency,
        {"attempt_timeout": -1},
        "attempt_timeout must be a finite number in [0, 1e+06], got -1",
    ),
    (rs.Dependency, {"composition": "nested"}, "composition must be one of"),
    (rs.Dependency, {"budget": RatioBudgetConfig, "charges": False}, "budget must be a Token"),
    (rs.Dependency, {"breaker": Backoff()}, "breaker must be a Breaker or None"),
    (rs.Dependency, {"retry": object()}, "retry must be a RetryConfig or None"),
    (rs.Dependency, {"charges": "yes"}, "charges must be True or False, got 'yes'"),
    (rs.Scenario, {"workers": 0}, "workers must be an integer in [1, 100000], got 0"),
    (rs.Scenario, {"queue_capacity": -1}, "queue_capacity must be an integer in [0, 10000000]"),
    (rs.Scenario, {"duration": 0}, "duration must be a finite number in (0, 1e+06], got 0"),
    (rs.Scenario, {"seed": -1}, "seed must be an integer in [0, 2**64 - 1], got -1"),
    (rs.Scenario, {"seed": 2**64}, "seed must be an integer in [0, 2**64 - 1]"),
    (rs.Scenario, {"num_keys": 0}, "num_keys must be an integer in [1, 1000000000], got 0"),
    (rs.Scenario, {"sample_every": -1}, "sample_every must be a finite number in [0, 1e+06]"),
    (rs.Scenario, {"record_orders": None}, "record_orders must be True or False, got None"),
    (rs.Scenario, {"arrivals": rs.Constant(1)}, "arrivals must be a Poisson, ConstantRate"),
    (rs.Scenario, {"dependencies": []}, "dependencies must have between 1 and 16 entries, got 0"),
    (
        rs.Scenario,
        {"dependencies": [rs.Dependency(f"d{i}") for i in range(17)]},
        "dependencies must have between 1 and 16 entries, got 17",
    ),
    (
        rs.Scenario,
        {"dependencies": [rs.Dependency("a"), rs.Dependency("a")]},
        'dependencies[1].name "a" is already used by dependencies[0]',
    ),
    (
        rs.Scenario,
        {"dependencies": [rs.Dependency("workers")]},
        'dependencies[0].name must not be "workers": it is a scenario field',
    ),
    (  # a run option (held beside the model's table) is a scenario field too
        rs.Scenario,
        {"dependencies": [rs.Dependency("sample_every")]},
        'dependencies[0].name must not be "sample_every": it is a scenario field',
    ),
]


@pytest.mark.parametrize(("cls", "kwargs", "message"), BAD_VALUES)
def test_each_class_names_the_field_and_range(
    cls: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as info:
        cls(**kwargs)
    assert str(info.value).startswith(message), str(info.value)


def test_phases_must_not_overlap_and_must_have_a_usable_mix() -> None:
    # Reported in the order given, as the native validator does.
    with pytest.raises(
        ValueError,
        match=r"^phases\[b\] \[30, 40\) overlaps phases\[outage\] "
        r"\[20, 35\): phases must not overlap",
    ):
        rs.Faults(phases=[rs.Brownout(30, 40, name="b"), rs.Outage(20, 35)])
    with pytest.raises(ValueError, match=r"^phases\[0\] \[0, 2\) overlaps phases\[1\]"):
        rs.Faults(phases=[rs.Outage(0, 2), rs.Outage(1, 3)])
    # An outage fails with the model's mix, which must then be usable even if the base rate is 0.
    with pytest.raises(
        ValueError,
        match=r"^mix must have a positive, finite total weight when "
        r"phases\[outage\]\.failure_rate > 0",
    ):
        rs.Faults(mix=rs.FailureMix(http503=0), phases=[rs.Outage(0, 1)])
    ok = rs.Faults(mix=rs.FailureMix(http503=0), phases=[rs.Outage(0, 1, mix=rs.FailureMix())])
    assert ok.phases[0].mix == rs.FailureMix()


def test_nested_mixtures_are_rejected() -> None:
    inner = rs.Mixture.of((1, rs.Constant(1)))
    with pytest.raises(ValueError, match=r"^components\[0\] must not itself be a mixture"):
        rs.Mixture([1], [inner])  # type: ignore[list-item]


def test_no_silent_clamping() -> None:
    for value in (1.0000001, -1e-12):
        with pytest.raises(ValueError):
            rs.Faults(failure_rate=value)
    assert rs.Faults(failure_rate=1.0).failure_rate == 1.0


# ------------------------------------------------------------------------------------------------
# Arrivals


def test_schedule_helpers() -> None:
    s = rs.Schedule.steps([(0, 100), (10, 300), (20, 50)], end=30)
    assert s.segments == (
        rs.RateSegment(0, 10, 100, 100),
        rs.RateSegment(10, 20, 300, 300),
        rs.RateSegment(20, 30, 50, 50),
    )
    spike = rs.Schedule.spike(base=100, peak=1000, start=10, end=12, duration=60)
    assert [(x.start, x.end, x.rate_start) for x in spike.segments] == [
        (0, 10, 100),
        (10, 12, 1000),
        (12, 60, 100),
    ]
    assert len(rs.Schedule.spike(100, 1000, 0, 60, 60).segments) == 1
    ramp = rs.Schedule.ramp(10, 100, 5, 15, duration=20)
    assert ramp.segments == (
        rs.RateSegment(0, 5, 10, 10),
        rs.RateSegment(5, 15, 10, 100),
        rs.RateSegment(15, 20, 100, 100),
    )
    assert rs.Schedule.ramp(10, 100, 0, 15).segments == (rs.RateSegment(0, 15, 10, 100),)
    tuples = rs.Schedule([(0, 1, 5), (1, 2, 5, 7)])  # type: ignore[list-item]
    assert tuples.segments[1] == rs.RateSegment(1, 2, 5, 7)
    with pytest.raises(ValueError, match=r"^segments\[0\]\.end must be greater than start \(10\)"):
        rs.Schedule.steps([(10, 100)], end=5)


def test_closed_loop_and_trace_round_trip() -> None:
    for arrivals in (
        rs.ClosedLoop(clients=5, think_time=rs.Uniform(0.1, 0.2)),
        rs.Trace([0, 0, 0.25, 1e6]),
        rs.ConstantRate(50),
        rs.Schedule.spike(10, 20, 1, 2, 3),
    ):
        sc = rs.Scenario(arrivals=arrivals)
        assert rs.Scenario.from_dict(sc.to_dict()) == sc


# ------------------------------------------------------------------------------------------------
# replace and get


def test_get() -> None:
    sc = rich()
    assert sc.get("workers") == 16
    assert sc.get("arrivals.rate") == 200.0
    assert sc.get("payment.breaker.open_for") == 5.0
    assert sc.get("payment.retry.backoff.max_delay") == 2.0
    assert sc.get("payment.faults.phases[outage].end") == 35.0
    assert sc.get("payment.faults.phases[1]") == rs.Recovery(35, 45)
    assert sc.get("payment.faults.latency.components[1].value") == 1.0
    assert sc.get("payment.faults.latency.weights") == (0.9, 0.1)
    assert sc.get("pricing.fallback.kind") == "cache_or_default"
    assert sc.get("pricing") is sc.dependencies[0]
    assert sc.get("dependencies[payment].charges") is True
    assert sc.get("pricing.retry") is None
    with pytest.raises(ValueError, match=r"^pricing\.retry is None: cannot read"):
        sc.get("pricing.retry.max_attempts")
    with pytest.raises(ValueError, match=r"did you mean payment\.breaker\.open_for"):
        sc.get("payment.breaker.open_fr")
    with pytest.raises(ValueError, match=r"has no entry named 'brownout'"):
        sc.get("payment.faults.phases[brownout]")
    with pytest.raises(ValueError, match=r"out of range"):
        sc.get("payment.faults.phases[7]")
    with pytest.raises(ValueError, match="not a valid path"):
        sc.get("payment..breaker")


def test_replace_nested_values() -> None:
    sc = rich()
    new = sc.replace(
        {"payment.breaker.open_for": 10.0, "workers": 32, "payment.faults.failure_rate": 0.5}
    )
    assert new.get("payment.breaker.open_for") == 10.0
    assert new.workers == 32
    assert new.get("payment.faults.failure_rate") == 0.5
    assert sc.get("payment.breaker.open_for") == 5.0  # the original is untouched
    # Everything else is shared or equal.
    assert new.dependencies[0] is sc.dependencies[0]
    assert (
        new.replace(
            {"payment.breaker.open_for": 5.0, "workers": 16, "payment.faults.failure_rate": 0.3}
        )
        == sc
    )
    assert sc.replace(seed=7).seed == 7
    assert sc.replace({"payment.retry.max_attempts": 6}).get("payment.retry.max_attempts") == 6
    assert (
        sc.replace({"payment.retry.backoff.jitter": "equal"}).get("payment.retry.backoff.jitter")
        == "equal"
    )


def test_replace_applies_changes_to_one_object_together() -> None:
    sc = rs.Scenario().replace({"payment.faults.latency": rs.Uniform(1, 2)})
    # One at a time, low=3 first would be invalid (3 > high=2); together they are fine.
    new = sc.replace({"payment.faults.latency.low": 3, "payment.faults.latency.high": 4})
    assert new.get("payment.faults.latency") == rs.Uniform(3, 4)
    # Moving two adjacent phases together.
    r = rich().replace(
        {"payment.faults.phases[recovery].start": 30, "payment.faults.phases[outage].end": 30}
    )
    assert r.get("payment.faults.phases[0]") == rs.Outage(20, 30)


def test_replace_policies() -> None:
    sc = rs.Scenario()
    with pytest.raises(
        ValueError,
        match=r"^payment\.breaker is None: set 'payment\.breaker' to a "
        r"whole config object",
    ):
        sc.replace({"payment.breaker.open_for": 5.0})
    with_breaker = sc.replace({"payment.breaker": Breaker(open_for=2)})
    assert with_breaker.get("payment.breaker") == Breaker(open_for=2)
    # A whole object and a field under it, in one call.
    both = sc.replace({"payment.breaker": Breaker(), "payment.breaker.open_for": 9})
    assert both.get("payment.breaker.open_for") == 9
    # Dicts in to_dict() form work for whole objects; unions need their type tag.
    assert sc.replace({"payment.budget": {"type": "ratio", "ratio": 0.2}}).get(
        "payment.budget"
    ) == RatioBudgetConfig(ratio=0.2)
    assert sc.replace({"payment.faults.latency": {"type": "exponential", "mean": 0.1}}).get(
        "payment.faults.latency"
    ) == rs.Exponential(0.1)
    assert sc.replace({"payment.bulkhead": {"max_concurrent": 3}}).get(
        "payment.bulkhead"
    ) == BulkheadConfig(max_concurrent=3)
    with pytest.raises(
        ValueError,
        match=r"^payment\.budget\.type must be one of 'token_bucket', "
        r"'ratio'; it is missing",
    ):
        sc.replace({"payment.budget": {"ratio": 0.2}})
    # And a policy can be removed.
    assert with_breaker.replace({"payment.breaker": None}) == sc
    # A union member has only its own fields.
    with pytest.raises(
        ValueError,
        match=r"payment\.faults\.latency \(Constant\) has no field "
        r"'mean'",
    ):
        sc.replace({"payment.faults.latency.mean": 0.1})


def test_replace_errors_name_the_dotted_path() -> None:
    sc = rich()
    cases = {
        "payment.breaker.open_for": (
            0,
            "payment.breaker.open_for must be a finite number in (0, 1e+06], got 0",
        ),
        "arrivals.rate": (-1, "arrivals.rate must be a finite number in (0, 1e+07], got -1"),
        "payment.faults.failure_rate": (
            2,
            "payment.faults.failure_rate must be a finite number in [0, 1], got 2",
        ),
        "payment.faults.phases[outage].start": (
            40,
            "payment.faults.phases[outage].end must be greater than start (40), got 35",
        ),
        "payment.faults.latency.components[0].mean": (
            -1,
            "payment.faults.latency.components[0].mean must be a finite number",
        ),
        "payment.retry.backoff.max_delay": (
            0.01,
            "payment.retry.backoff.max_delay must be a finite number in [0.1, 1e+06]",
        ),
        "payment.retry.max_attempts": (0, "payment.retry.max_attempts must be an integer"),
        "payment.budget.token_ratio": (2000, "payment.budget.token_ratio must be a finite number"),
        "pricing.bulkhead.max_concurrent": (0, "pricing.bulkhead.max_concurrent must be"),
        "payment.throttle.k": (0.5, "payment.throttle.k must be a finite number in [1, 1000]"),
        "pricing.fallback.cache_ttl": (0, "pricing.fallback.cache_ttl must be a finite number"),
        "payment.faults.capacity.max_queue": (
            -2,
            "payment.faults.capacity.max_queue must be an integer in [-1, 10000000], got -2",
        ),
        "payment.faults.mix.http503": (math.nan, "payment.faults.mix.http503 must be a finite"),
        "workers": (2.5, "workers must be an integer in [1, 100000], got 2.5"),
        "pricing.name": (
            "payment",
            'dependencies[1].name "payment" is already used by dependencies[0]',
        ),
        "payment.fallback": (
            rs.Fallback("default"),
            'payment.fallback must be "none" on a dependency that charges',
        ),
        "payment.fallback.kind": (
            "cache",
            'payment.fallback must be "none" on a dependency that charges',
        ),
    }
    for path, (value, message) in cases.items():
        with pytest.raises(ValueError) as info:
            sc.replace({path: value})
        assert str(info.value).startswith(message), (path, str(info.value))


def test_unknown_paths_list_close_matches() -> None:
    sc = rich()
    with pytest.raises(ValueError) as info:
        sc.replace({"payment.retry.initial": 1.0})
    assert "unknown path 'payment.retry.initial'" in str(info.value)
    assert "payment.retry.backoff.initial" in str(info.value)
    with pytest.raises(ValueError, match=r"did you mean payment\.faults\.failure_rate"):
        sc.replace({"paymnt.faults.failure_rate": 0.1})
    with pytest.raises(ValueError, match="did you mean workers"):
        sc.replace({"worker": 3})
    with pytest.raises(ValueError, match="cannot index"):
        sc.replace({"workers[0]": 3})


def test_paths_are_all_gettable() -> None:
    sc = rich()
    paths = sc.paths()
    assert "payment.breaker.open_for" in paths
    assert "payment.faults.phases[outage].failure_rate" in paths
    assert "payment.retry.backoff.jitter" in paths
    for p in paths:
        sc.get(p)
    # Setting any leaf to its own value gives an equal scenario.
    for p in paths:
        if p.startswith("dependencies") or "." not in p:
            continue
        assert sc.replace({p: sc.get(p)}) == sc, p


# ------------------------------------------------------------------------------------------------
# Dicts, JSON, pickle


def test_to_dict_shape() -> None:
    d = rich().to_dict()
    assert d["version"] == 1
    assert d["arrivals"] == {"type": "poisson", "rate": 200.0}
    pay = d["dependencies"][1]
    assert pay["name"] == "payment"
    assert pay["faults"]["latency"]["type"] == "mixture"
    assert pay["faults"]["latency"]["components"][0] == {"type": "exponential", "mean": 0.05}
    assert pay["faults"]["phases"][0]["type"] == "phase"
    assert pay["budget"] == {"type": "token_bucket", "max_tokens": 10, "token_ratio": 0.1}
    assert pay["retry"] == {
        "max_attempts": 4,
        "backoff": {
            "initial": 0.1,
            "multiplier": 2.0,
            "max_delay": 2,
            "jitter": "full",
            "jitter_factor": 0.5,
        },
        "retry_on": ["timeout", "connection_reset", "429", "500", "502", "503", "504"],
        "max_retry_after": 60.0,
    }
    assert d["dependencies"][0]["bulkhead"] == {
        "max_concurrent": 4,
        "max_waiting": 2,
        "max_wait": 0.1,
    }
    assert d["dependencies"][0]["retry"] is None
    json.dumps(d, allow_nan=False)


def test_round_trips() -> None:
    sc = rich()
    assert rs.Scenario.from_dict(sc.to_dict()) == sc
    assert rs.Scenario.from_json(sc.to_json()) == sc
    assert rs.Scenario.from_json(sc.to_json(indent=None)) == sc
    assert pickle.loads(pickle.dumps(sc)) == sc
    assert copy.deepcopy(sc) == sc
    dep = sc.dependency("payment")
    assert rs.Dependency.from_dict(dep.to_dict()) == dep
    assert pickle.loads(pickle.dumps(dep)) == dep


def test_pickles_name_the_defining_module_and_old_pickles_still_load() -> None:
    # The classes live in submodules of the reliability_lab.scenario package (pickles name those);
    # pickles written when they lived in the reliability_lab.scenario module itself still load.
    for name in rs.__all__:
        obj = getattr(rs, name)
        if isinstance(obj, type):
            assert pickle.loads(pickle.dumps(obj)) is obj
    sc = rich()
    for value in (sc, sc.dependency("payment"), sc.dependency("payment").faults, sc.arrivals):
        text = pickle.dumps(value, protocol=0)  # module names as plain text lines
        assert b"reliability_lab.scenario." in text
        old = text.replace(b"reliability_lab.scenario.model\n", b"reliability_lab.scenario\n")
        for sub in (b"latency", b"faults", b"arrivals", b"dependency", b"queue_discipline"):
            old = old.replace(
                b"reliability_lab.scenario." + sub + b"\n", b"reliability_lab.scenario\n"
            )
        assert b"reliability_lab.scenario." not in old
        assert pickle.loads(old) == value


def test_from_dict_fills_defaults_and_names_paths() -> None:
    assert rs.Scenario.from_dict({}) == rs.Scenario()
    sc = rs.Scenario.from_dict({"dependencies": [{"name": "db", "breaker": {"open_for": 2}}]})
    assert sc.get("db.breaker") == Breaker(open_for=2)
    bad: list[tuple[dict[str, Any], str]] = [
        (
            {"dependencies": [{"name": "payment", "breaker": {"open_for": 0}}]},
            "payment.breaker.open_for must be a finite number in (0, 1e+06], got 0",
        ),
        (
            {"dependencies": [{"breaker": {"open_fr": 1}}]},
            "payment.breaker.open_fr is not a field of Breaker",
        ),
        (
            {"arrivals": {"type": "poisson", "rate": 0}},
            "arrivals.rate must be a finite number in (0, 1e+07], got 0",
        ),
        ({"arrivals": {"rate": 5}}, "arrivals.type must be one of 'poisson'"),
        ({"arrivals": {"type": "burst"}}, "arrivals.type must be one of"),
        (
            {
                "dependencies": [
                    {
                        "faults": {
                            "phases": [{"type": "phase", "name": "outage", "start": 5, "end": 1}]
                        }
                    }
                ]
            },
            "payment.faults.phases[outage].end must be greater than start (5), got 1",
        ),
        (
            {"dependencies": [{"faults": {"phases": [{"type": "outage"}]}}]},
            "payment.faults.phases[0].type must be 'phase' here, got 'outage'",
        ),
        (
            {
                "dependencies": [
                    {
                        "faults": {
                            "latency": {
                                "type": "mixture",
                                "weights": [1],
                                "components": [{"type": "constant", "value": -2}],
                            }
                        }
                    }
                ]
            },
            "payment.faults.latency.components[0].value must be a finite number",
        ),
        ({"dependencies": [{"name": "a b"}]}, "dependencies[0].name must contain only"),
        (
            {"dependencies": [{"retry": {"backoff": {"jitter": "wild"}}}]},
            "payment.retry.backoff.jitter must be one of",
        ),
        (
            {"dependencies": [{"retry": {"max_attempts": 0}}]},
            "payment.retry.max_attempts must be an integer in [1, 1000000], got 0",
        ),
        (
            {"dependencies": [{"budget": {"type": "ratio", "buckets": 0}}]},
            "payment.budget.buckets must be an integer in [1, 1000], got 0",
        ),
        (
            {"dependencies": [{"throttle": {"window": 0}}]},
            "payment.throttle.window must be a finite number in (0, 1e+06], got 0",
        ),
        (
            {"dependencies": [{"faults": {"capacity": {"load_slope": -1}}}]},
            "payment.faults.capacity.load_slope must be a finite number in [0, inf], got -1",
        ),
        ({"dependencies": [{"faults": "none"}]}, "payment.faults must be a Faults, got 'none'"),
        ({"workrs": 3}, "workrs is not a field of Scenario"),
        ({"version": 2}, "version must be 1, got 2"),
    ]
    for d, message in bad:
        with pytest.raises(ValueError) as info:
            rs.Scenario.from_dict(d)
        assert str(info.value).startswith(message), (d, str(info.value))


# ------------------------------------------------------------------------------------------------
# Hypothesis: random valid scenarios

durations = st.floats(0, 1e6, allow_nan=False)
small = st.floats(0, 100, allow_nan=False)
names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: n not in {f.name for f in dataclasses.fields(rs.Scenario)}
)

simple_latency = st.one_of(
    st.builds(rs.Constant, small),
    st.builds(rs.Exponential, small),
    st.builds(rs.LogNormal, small, st.floats(0, 10)),
    st.tuples(small, small).map(lambda t: rs.Uniform(min(t), max(t))),
)
latency = st.one_of(
    simple_latency,
    st.lists(st.tuples(st.floats(1e-3, 1e3), simple_latency), min_size=1, max_size=3).map(
        lambda pairs: rs.Mixture.of(*pairs)
    ),
)
mixes = st.builds(
    rs.FailureMix,
    http500=small,
    http503=st.floats(0.1, 10),
    http429=small,
    timeout=small,
    connection_reset=small,
    retry_after=small,
)


@st.composite
def phases(draw: st.DrawFn) -> tuple[rs.Phase, ...]:
    # Distinct at nanosecond resolution, as the core compares them.
    ms = sorted(draw(st.lists(st.integers(0, 10**7), max_size=6, unique=True)))
    points = [p / 1000 for p in ms]
    out = []
    for i in range(0, len(points) - 1, 2):
        out.append(
            rs.Phase(
                draw(st.sampled_from(["outage", "brownout", "p"])),
                points[i],
                points[i + 1],
                failure_rate=draw(st.none() | st.floats(0, 1)),
                mix=draw(st.none() | mixes),
                latency=draw(st.none() | latency),
                latency_multiplier=draw(st.floats(0.01, 100)),
            )
        )
    return tuple(draw(st.permutations(out)))


faults = st.builds(
    rs.Faults,
    failure_rate=st.floats(0, 1),
    mix=mixes,
    latency=latency,
    phases=phases(),
    capacity=st.builds(
        rs.Capacity,
        max_in_service=st.integers(0, 100),
        max_queue=st.integers(-1, 100),
        load_slope=small,
        load_knee=st.integers(0, 100),
        drop_abandoned=st.booleans(),
    ),
    ambiguous_rate=st.floats(0, 1),
    hang=st.floats(0.001, 1e6),
)
retries = st.builds(
    RetryConfig,
    max_attempts=st.integers(1, 10),
    backoff=st.builds(
        Backoff,
        initial=st.floats(0, 1),
        multiplier=st.floats(1, 4),
        max_delay=st.floats(1, 100),
        jitter=st.sampled_from(["none", "full", "equal", "decorrelated", "proportional"]),
        jitter_factor=st.floats(0, 1),
    ),
    retry_on=st.lists(
        st.sampled_from(["timeout", "connection_reset", "429", "503", "5xx"]),
        min_size=0,
        max_size=3,
        unique=True,
    ),
    max_retry_after=st.floats(0, 100),
)
breakers = st.builds(
    Breaker,
    consecutive_failures=st.integers(1, 20),
    failure_rate_threshold=st.sampled_from([0.0, 0.5, 1.0]),
    window=st.sampled_from(["count", "time"]),
    open_for=st.floats(0.001, 100),
    half_open_max_calls=st.integers(1, 5),
)
budgets = st.one_of(
    st.builds(TokenBucketConfig, max_tokens=st.floats(1, 1000), token_ratio=st.floats(0.01, 1)),
    st.builds(
        RatioBudgetConfig,
        ratio=st.floats(0, 10),
        window=st.floats(0.1, 100),
        min_retries_per_second=st.floats(0, 100),
        buckets=st.integers(1, 100),
    ),
)


@st.composite
def dependencies(draw: st.DrawFn, name: str) -> rs.Dependency:
    fallback = draw(
        st.builds(
            rs.Fallback,
            kind=st.sampled_from(["none", "cache", "default", "cache_or_default"]),
            cache_capacity=st.integers(1, 10**6),
            cache_ttl=st.floats(0.001, 1e6),
        )
    )
    return rs.Dependency(
        name,
        faults=draw(faults),
        retry=draw(st.none() | retries),
        breaker=draw(st.none() | breakers),
        budget=draw(st.none() | budgets),
        bulkhead=draw(
            st.none()
            | st.builds(
                BulkheadConfig,
                max_concurrent=st.integers(1, 100),
                max_waiting=st.integers(0, 100),
                max_wait=st.none() | st.floats(0, 10),
            )
        ),
        throttle=draw(
            st.none()
            | st.builds(
                Throttle,
                k=st.floats(1, 10),
                window=st.floats(1, 100),
                buckets=st.integers(1, 10),
            )
        ),
        attempt_timeout=draw(st.floats(0, 10)),
        composition=draw(st.sampled_from(["retry_outside_breaker", "breaker_outside_retry"])),
        fallback=fallback,
        idempotency_keys=draw(st.booleans()),
        # A dependency that charges cannot have a fallback (a validation error of its own).
        charges=draw(st.booleans()) if fallback.kind == "none" else False,
    )


@st.composite
def schedules(draw: st.DrawFn) -> rs.Schedule:
    ms = sorted(draw(st.lists(st.integers(0, 10**8), min_size=2, max_size=8, unique=True)))
    points = [p / 1000 for p in ms]
    segs = [
        rs.RateSegment(a, b, draw(st.floats(0, 1e4)), draw(st.floats(1, 1e4)))
        for a, b in itertools.pairwise(points)
    ]
    return rs.Schedule(segs)


arrivals = st.one_of(
    st.builds(rs.Poisson, st.floats(0.001, 1e7)),
    st.builds(rs.ConstantRate, st.floats(0.001, 1e7)),
    schedules(),
    st.lists(durations, min_size=1, max_size=20).map(lambda ts: rs.Trace(sorted(ts))),
    st.builds(rs.ClosedLoop, st.integers(1, 1000), latency),
)


@st.composite
def scenarios(draw: st.DrawFn) -> rs.Scenario:
    dep_names = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    return rs.Scenario(
        arrivals=draw(arrivals),
        workers=draw(st.integers(1, 100_000)),
        queue_capacity=draw(st.integers(0, 10_000_000)),
        duration=draw(st.floats(0.001, 1e6)),
        seed=draw(st.integers(0, 2**64 - 1)),
        dependencies=[draw(dependencies(n)) for n in dep_names],
        order_deadline=draw(st.floats(0, 1e6)),
        release_worker_during_backoff=draw(st.booleans()),
        num_keys=draw(st.integers(1, 10**9)),
        sample_every=draw(st.floats(0, 100)),
        record_orders=draw(st.booleans()),
        record_events=draw(st.booleans()),
    )


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_dict_and_json_round_trip(sc: rs.Scenario) -> None:
    d = sc.to_dict()
    assert rs.Scenario.from_dict(d) == sc
    assert rs.Scenario.from_json(sc.to_json()) == sc
    assert rs.Scenario.from_dict(json.loads(json.dumps(d))).to_dict() == d
    assert hash(rs.Scenario.from_dict(d)) == hash(sc)


@settings(max_examples=60, deadline=None)
@given(scenarios(), st.data())
def test_replace_then_get(sc: rs.Scenario, data: st.DataObject) -> None:
    dep = data.draw(st.sampled_from(sc.dependencies))
    rate = data.draw(st.floats(0, 1))
    new = sc.replace({f"{dep.name}.faults.ambiguous_rate": rate})
    assert new.get(f"{dep.name}.faults.ambiguous_rate") == rate
    assert new.replace({f"{dep.name}.faults.ambiguous_rate": dep.faults.ambiguous_rate}) == sc


# ------------------------------------------------------------------------------------------------
# The native converter and validator


@native
@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_native_accepts_every_valid_scenario_and_converts_units(sc: rs.Scenario) -> None:
    _core.validate_scenario(sc.to_dict())
    dump = _core.scenario_config_dump(sc.to_dict())
    assert dump["workers"] == sc.workers and dump["seed"] == sc.seed
    assert dump["duration_ns"] == ns(sc.duration)
    assert dump["order_deadline_ns"] == ns(sc.order_deadline)
    for py_dep, c_dep in zip(sc.dependencies, dump["dependencies"], strict=True):
        assert c_dep["name"] == py_dep.name
        assert c_dep["faults"]["hang_ns"] == ns(py_dep.faults.hang)
        assert [p["name"] for p in c_dep["faults"]["phases"]] == [
            p.name for p in py_dep.faults.phases
        ]
        assert (c_dep["retry"] is None) == (py_dep.retry is None)
        budget = py_dep.budget
        assert (c_dep["budget"] is None) == (budget is None)
        if isinstance(budget, TokenBucketConfig):
            assert "max_tokens" in c_dep["budget"]
        elif isinstance(budget, RatioBudgetConfig):
            assert "ratio" in c_dep["budget"]
        if py_dep.bulkhead is not None and py_dep.bulkhead.max_wait is None:
            assert c_dep["bulkhead"]["max_wait_ns"] == -1


@native
def test_native_dump_of_the_rich_scenario() -> None:
    dump = _core.scenario_config_dump(rich().to_dict())
    pay = dump["dependencies"][1]
    assert pay["breaker"]["open_for_ns"] == 5_000_000_000
    backoff = pay["retry"]["backoff"]  # the generic writer's nanoseconds form
    assert backoff["initial_ns"] == 100_000_000 and backoff["max_delay_ns"] == 2 * 10**9
    assert pay["retry"]["retry_on"] == [
        "timeout",
        "connection_reset",
        "429",
        "500",
        "502",
        "503",
        "504",
    ]
    assert pay["attempt_timeout_ns"] == 500_000_000
    assert pay["faults"]["phases"][0]["failure_rate"] == 1.0
    assert pay["faults"]["phases"][1]["failure_rate"] is None
    assert pay["faults"]["latency"]["type"] == "mixture"
    assert pay["composition"] == "retry_outside_breaker"
    assert dump["dependencies"][0]["fallback"]["kind"] == "cache_or_default"
    assert dump["sample_every_ns"] == 10**9


def ns(seconds: float) -> int:
    """Seconds to nanoseconds as the core rounds (half away from zero)."""
    return math.floor(seconds * 1e9 + 0.5)


def _tamper(d: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    d = copy.deepcopy(d)
    target = d
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return d


# (where in the dict, bad value, the message both sides start with)
TAMPERED: list[tuple[list[Any], Any, str]] = [
    (["workers"], 0, "workers must be an integer in [1, 100000], got 0"),
    (["duration"], 0, "duration must be a finite number in (0, 1e+06], got 0"),
    (["arrivals", "rate"], 0, "arrivals.rate must be a finite number in (0, 1e+07], got 0"),
    (
        ["dependencies", 1, "breaker", "open_for"],
        0,
        "payment.breaker.open_for must be a finite number in (0, 1e+06], got 0",
    ),
    (
        ["dependencies", 1, "faults", "failure_rate"],
        1.5,
        "payment.faults.failure_rate must be a finite number in [0, 1], got 1.5",
    ),
    (
        ["dependencies", 1, "faults", "hang"],
        0,
        "payment.faults.hang must be a finite number in (0, 1e+06], got 0",
    ),
    (
        ["dependencies", 1, "faults", "phases", 0, "failure_rate"],
        2,
        "payment.faults.phases[outage].failure_rate must be a finite number in [0, 1], got 2",
    ),
    (
        ["dependencies", 1, "faults", "latency", "weights", 0],
        0,
        "payment.faults.latency.weights[0] must be a finite number in (0, inf], got 0",
    ),
    (
        ["dependencies", 1, "faults", "capacity", "max_in_service"],
        -1,
        "payment.faults.capacity.max_in_service must be an integer in [0, 1000000], got -1",
    ),
    (["dependencies", 1, "retry", "max_attempts"], 0, "payment.retry.max_attempts must be"),
    (
        ["dependencies", 1, "retry", "backoff", "multiplier"],
        0.5,
        "payment.retry.backoff.multiplier must be",
    ),
    (
        ["dependencies", 1, "budget", "max_tokens"],
        0,
        "payment.budget.max_tokens must be a finite number in (0, 1000], got 0",
    ),
    (
        ["dependencies", 1, "throttle", "buckets"],
        0,
        "payment.throttle.buckets must be an integer in [1, 1000], got 0",
    ),
    (
        ["dependencies", 0, "bulkhead", "max_concurrent"],
        0,
        "pricing.bulkhead.max_concurrent must be an integer in [1, 1000000], got 0",
    ),
    (
        ["dependencies", 0, "attempt_timeout"],
        -1,
        "pricing.attempt_timeout must be a finite number in [0, 1e+06], got -1",
    ),
    (
        ["dependencies", 0, "fallback", "cache_capacity"],
        0,
        "pricing.fallback.cache_capacity must be an integer in [1, 10000000], got 0",
    ),
    (
        ["dependencies", 0, "name"],
        "payment",
        'dependencies[1].name "payment" is already used by dependencies[0]',
    ),
    (
        ["dependencies", 0, "name"],
        "seed",
        'dependencies[0].name must not be "seed": it is a scenario field',
    ),
    (
        ["dependencies", 1, "fallback", "kind"],
        "default",
        'payment.fallback must be "none" on a dependency that charges (a failed charge cannot '
        "be served from a fallback: the order would complete without being charged), got "
        '"default"',
    ),
]


@native
@pytest.mark.parametrize(("where", "value", "message"), TAMPERED)
def test_native_validator_agrees_with_python(where: list[Any], value: Any, message: str) -> None:
    bad = _tamper(rich().to_dict(), where, value)
    with pytest.raises(ValueError) as py_error:
        rs.Scenario.from_dict(bad)
    with pytest.raises(ValueError) as native_error:
        _core.validate_scenario(bad)
    assert str(py_error.value).startswith(message), str(py_error.value)
    assert str(native_error.value).startswith(message), str(native_error.value)


@native
def test_native_reader_is_strict_about_the_schema() -> None:
    d = rich().to_dict()
    cases: list[tuple[list[Any], Any, str]] = [
        (["dependencies", 1, "faults", "hang"], KeyError, "payment.faults: missing key 'hang'"),
        (
            ["dependencies", 1, "breaker", "extra"],
            1,
            "payment.breaker.extra is not a field of the scenario schema",
        ),
        (["arrivals", "type"], "burst", "arrivals.type must be one of 'poisson'"),
        (["dependencies", 1, "budget", "type"], "leaky", "payment.budget.type must be one of"),
        (  # a nested mixture: the Mixture rule (once the inner one is itself valid)
            ["dependencies", 1, "faults", "latency", "components", 0],
            {"type": "mixture", "weights": [1], "components": [{"type": "constant", "value": 1}]},
            "payment.faults.latency.components[0] must not itself be a mixture",
        ),
        (  # an invalid nested mixture: its own first error, by its path
            ["dependencies", 1, "faults", "latency", "components", 0],
            {"type": "mixture", "weights": [], "components": []},
            "payment.faults.latency.components[0].components must not be empty",
        ),
        (["dependencies", 1, "composition"], "nested", "payment.composition must be one of"),
        (
            ["dependencies", 1, "faults", "phases", 0, "start"],
            math.nan,
            "payment.faults.phases[outage].start must be a finite number in [0, 1e+06], got nan",
        ),
        (
            ["dependencies", 1, "faults", "phases", 0, "end"],
            "soon",
            "payment.faults.phases[outage].end must be a finite number in [0, 1e+06], got 'soon'",
        ),
        (["dependencies", 1, "retry", "retry_on"], ["timeout", "teapot"], "payment.retry.retry_on"),
        (
            ["dependencies", 1, "retry", "backoff", "jitter"],
            "wild",
            "payment.retry.backoff.jitter must be one of",
        ),
        (["dependencies", 1, "charges"], 1, "payment.charges must be True or False, got 1"),
        (["workers"], True, "workers must be an integer"),
        # Read by the scenario's table: the allowed range itself, not the C++ int's.
        (["workers"], 2**40, "workers must be an integer in [1, 100000], got 1099511627776"),
        (["seed"], -1, "seed must be an integer in [0, 2**64 - 1], got -1"),
        (["version"], 2, "version must be 1, got 2"),
        (["dependencies", 0], [], "dependencies[0] must be a dict, got []"),
    ]
    for where, value, message in cases:
        with pytest.raises(ValueError) as info:
            _core.validate_scenario(_tamper(d, where, value))
        assert str(info.value).startswith(message) or message in str(info.value), (
            where,
            str(info.value),
        )


def test_a_charging_dependency_cannot_have_a_fallback() -> None:
    # A fallback on a write would complete the order as paid with nothing charged.
    # Refused by the Dependency itself (a rule of its table), so named relative to it.
    message = r'^fallback must be "none" on a dependency that charges'
    for kind in ("cache", "default", "cache_or_default"):
        with pytest.raises(ValueError, match=message):
            rs.Scenario(
                dependencies=[rs.Dependency("payment", charges=True, fallback=rs.Fallback(kind))]
            )
    # Each half alone is fine.
    rs.Scenario(dependencies=[rs.Dependency("payment", charges=True)])
    rs.Scenario(dependencies=[rs.Dependency("payment", fallback=rs.Fallback("default"))])


def test_a_services_own_dependency_is_found_by_its_label() -> None:
    leaf = rs.Dependency("leaf", breaker=Breaker(open_for=3.0))
    sc = rs.Scenario(
        dependencies=[rs.Dependency("to_b", service="b"), rs.Dependency("payment")],
        services=[rs.Service(name="b", dependencies=(leaf,))],
    )
    assert sc.dependency_labels() == ["to_b", "payment", "b.leaf"]
    assert sc.dependency("b.leaf") == leaf
    assert sc.dependency_path("b.leaf") == "services[b].dependencies[leaf]"
    assert sc.dependency_path("payment") == "payment"
    path = sc.dependency_path("b.leaf")
    assert sc.replace({f"{path}.breaker.open_for": 9.0}).dependency("b.leaf").breaker == Breaker(
        open_for=9.0
    )
    for unknown in ("nope", "b.nope", "c.leaf", "leaf"):
        with pytest.raises(KeyError):
            sc.dependency(unknown)
        with pytest.raises(KeyError):
            sc.dependency_path(unknown)


def test_a_run_takes_the_compiled_scenario_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Scenario is read and validated once, when it is built (``compile_scenario``); a run
    (simulate, Lab) hands the engines that compiled config and neither re-reads nor re-validates
    it (issue #11: validated once, crosses once)."""
    import reliability_lab as rl

    sc = rs.Scenario(arrivals=rs.Poisson(50.0), duration=0.2, sample_every=0.0)
    assert isinstance(sc.compiled(), _native_core.CompiledScenario)
    checks: list[str] = []
    for name in ("compile_scenario", "validate_scenario", "check_config"):
        monkeypatch.setattr(_native_core, name, lambda *a, _n=name: checks.append(_n))
    seen: list[object] = []
    native_simulate = _native_core.simulate
    native_live = _native_core.LiveEngine

    def simulate(scenario: object, **kw: Any) -> Any:
        seen.append(scenario)
        return native_simulate(scenario, **kw)

    def live(scenario: object, **kw: Any) -> Any:
        seen.append(scenario)
        return native_live(scenario, **kw)

    monkeypatch.setattr(_native_core, "simulate", simulate)
    monkeypatch.setattr(_native_core, "LiveEngine", live)
    assert rl.simulate(sc).summary["arrived"] > 0
    with rl.Lab(sc) as lab:
        lab.submit_many(3).wait(30.0)
    assert checks == []
    assert seen == [sc.compiled(), sc.compiled()]
    # A dict still works (and is read and validated then), naming the path of a bad value.
    monkeypatch.undo()
    bad = sc.to_dict()
    bad["workers"] = 0
    with pytest.raises(ValueError, match="workers"):
        _native_core.simulate(bad, latency_bounds=[1.0])
    with pytest.raises(TypeError, match="CompiledScenario"):
        _native_core.simulate([1, 2], latency_bounds=[1.0])


def test_the_compiled_config_lives_and_dies_with_its_scenario() -> None:
    """The compiled config is kept beside the Scenario, not in its fields or ``__dict__``
    (``Scenario(**vars(sc))`` still works), and is dropped when the Scenario is collected."""
    import gc

    from reliability_lab.scenario import model

    sc = rs.Scenario(workers=3)
    assert "_compiled" not in vars(sc)
    assert rs.Scenario(**vars(sc)) == sc
    before = len(model._COMPILED)
    for _ in range(50):
        rs.Scenario(workers=4)
    gc.collect()
    assert len(model._COMPILED) <= before
    assert sc.compiled() is sc.compiled()
