"""The simulated engine's flat path (cpp/rlab/sim/flat_run.h) gives the general loop's results.

A scenario of the flat shape (open-loop arrivals, one dependency with at most a retry loop,
timeouts, a deadline, a capacity-limited server and a charge ledger) runs on a specialised loop;
``RLAB_SIM_FLAT=0`` in the environment forces the general loop. Hypothesis draws scenarios of that
shape and every part of the two results must be equal: summary, per-order records, time series,
events and the raw totals.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pandas as pd
import pytest
import reliability_lab as rl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

JITTERS = ("none", "full", "equal", "decorrelated", "proportional")


@st.composite
def latencies(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(("constant", "exponential", "lognormal", "uniform")))
    if kind == "constant":  # equal service times make events tie at one instant
        return rl.Constant(draw(st.sampled_from((0.0, 0.05, 0.1, 0.2))))
    if kind == "exponential":
        return rl.Exponential(draw(st.floats(0.001, 0.5)))
    if kind == "lognormal":
        return rl.LogNormal(draw(st.floats(0.001, 0.3)), draw(st.floats(0.1, 1.5)))
    lo = draw(st.floats(0.0, 0.1))
    return rl.Uniform(lo, lo + draw(st.floats(0.0, 0.4)))


@st.composite
def flat_scenarios(draw: st.DrawFn) -> rl.Scenario:
    duration = draw(st.sampled_from((2.0, 5.0, 12.5, 20.0)))
    arrival_kind = draw(st.sampled_from(("poisson", "constant", "trace")))
    rate = draw(st.floats(1.0, 120.0))
    arrivals: Any
    if arrival_kind == "poisson":
        arrivals = rl.Poisson(rate)
    elif arrival_kind == "constant":
        arrivals = rl.ConstantRate(rate)
    else:
        gaps = draw(st.lists(st.sampled_from((0.0, 0.01, 0.05)), min_size=1, max_size=200))
        arrivals = rl.Trace([sum(gaps[: i + 1]) for i in range(len(gaps))])
    retry = None
    if draw(st.booleans()):
        initial = draw(st.sampled_from((0.0, 0.01, 0.1)))
        retry = rl.RetryConfig(
            max_attempts=draw(st.integers(1, 6)),
            backoff=rl.Backoff(
                initial=initial,
                multiplier=draw(st.floats(1.0, 3.0)),
                max_delay=max(initial, draw(st.sampled_from((0.1, 1.0, 3.0)))),
                jitter=draw(st.sampled_from(JITTERS)),
            ),
            max_retry_after=draw(st.sampled_from((0.0, 0.5, 3.0))),
        )
    capacity = rl.Capacity()
    if draw(st.booleans()):
        capacity = rl.Capacity(
            max_in_service=draw(st.integers(1, 8)),
            max_queue=draw(st.sampled_from((-1, 0, 3, 20))),
            drop_abandoned=draw(st.booleans()),
            load_slope=draw(st.sampled_from((0.0, 0.1))),
        )
    charges = draw(st.booleans())
    dep = rl.Dependency(
        "payment",
        faults=rl.Faults(
            failure_rate=draw(st.sampled_from((0.0, 0.1, 0.5, 0.9))),
            mix=rl.FailureMix(
                http500=draw(st.floats(0.0, 1.0)),
                http503=1.0,
                http429=draw(st.floats(0.0, 1.0)),
                timeout=draw(st.sampled_from((0.0, 0.5))),
                retry_after=draw(st.sampled_from((0.0, 0.2, 2.0))),
            ),
            latency=draw(latencies()),
            capacity=capacity,
            ambiguous_rate=draw(st.sampled_from((0.0, 0.05))),
            hang=draw(st.sampled_from((0.5, 3.0))),
        ),
        retry=retry,
        attempt_timeout=draw(st.sampled_from((0.0, 0.05, 0.15, 1.0))),
        charges=charges,
        idempotency_keys=not charges or draw(st.booleans()),
    )
    return rl.Scenario(
        arrivals=arrivals,
        duration=duration,
        workers=draw(st.integers(1, 12)),
        queue_capacity=draw(st.sampled_from((0, 2, 50, 1000))),
        seed=draw(st.integers(0, 2**32)),
        dependencies=(dep,),
        order_deadline=draw(st.sampled_from((0.0, 0.2, 1.0, 3.0))),
        release_worker_during_backoff=draw(st.booleans()),
        sample_every=draw(st.sampled_from((0.0, 0.5, 1.0))),
        record_orders=draw(st.booleans()),
        record_events=draw(st.booleans()),
    )


def same(x: Any, y: Any) -> bool:
    """Equal, with NaN equal to NaN, through dicts, lists and frames."""
    if isinstance(x, pd.DataFrame | pd.Series):
        return isinstance(y, type(x)) and x.equals(y)
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
    if isinstance(x, list | tuple):
        return len(x) == len(y) and all(same(a, b) for a, b in zip(x, y, strict=True))
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x):
        return math.isnan(y)
    if hasattr(x, "tolist"):
        return same(x.tolist(), y.tolist())
    return bool(x == y)


def both(sc: rl.Scenario, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> tuple[Any, Any]:
    monkeypatch.setenv("RLAB_SIM_FLAT", "0")
    general = rl.simulate(sc, **kw)
    monkeypatch.delenv("RLAB_SIM_FLAT")
    flat = rl.simulate(sc, **kw)
    return general, flat


def assert_same(general: Any, flat: Any) -> None:
    assert same(general.summary, flat.summary), pd.concat([general.summary, flat.summary], axis=1)
    assert same(general.totals, flat.totals)
    assert same(general.timeseries, flat.timeseries)
    assert same(general.events, flat.events)
    if general.orders is None:
        assert flat.orders is None
    else:
        assert same(general.orders, flat.orders)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sc=flat_scenarios(), until=st.sampled_from((None, None, 1.0, 7.5)))
def test_flat_path_matches_the_general_loop(
    sc: rl.Scenario, until: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    general, flat = both(sc, monkeypatch, until=until)
    assert_same(general, flat)


def test_bench_retry_model_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    # bench/sim_vs_simpy.py's retrying model, short: the shape the flat path is for.
    sc = rl.Scenario(
        arrivals=rl.Poisson(180.0),
        duration=100.0,
        workers=29,
        queue_capacity=10_000_000,
        seed=12345,
        dependencies=(
            rl.Dependency(
                "payment",
                faults=rl.Faults(failure_rate=0.3, latency=rl.Exponential(0.1)),
                retry=rl.RetryConfig(
                    max_attempts=4,
                    backoff=rl.Backoff(initial=0.1, multiplier=2.0, max_delay=30.0, jitter="full"),
                ),
            ),
        ),
        release_worker_during_backoff=True,
    )
    general, flat = both(sc, monkeypatch)
    assert general.summary["arrived"] > 15_000
    assert_same(general, flat)


def test_every_scenario_field_either_leaves_the_flat_path_or_gives_the_same_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The guard for fields added later: every field reachable from rl.Scenario (the round-trip
    walker, tests/schema_walk.py), set to a legal non-default value on a flat-shaped scenario,
    either takes the scenario off the flat path (IsFlatScenario refuses it) or changes nothing
    between the two loops. A new field the flat loop ignores but the general loop obeys fails
    here until IsFlatScenario refuses it or the flat loop handles it."""
    from schema_walk import all_leaves, build_legal

    flat_leaves = 0
    mismatched = []
    for leaf in all_leaves():
        sc, _, _ = build_legal(leaf)
        with contextlib.suppress(ValueError):  # keep the runs short where the field allows
            sc = sc.replace({"duration": min(sc.duration, 3.0)})
        if not sc.compiled().flat_shape:
            continue
        flat_leaves += 1
        general, flat = both(sc, monkeypatch)
        if not (
            same(general.summary, flat.summary)
            and same(general.totals, flat.totals)
            and same(general.timeseries, flat.timeseries)
            and same(general.events, flat.events)
        ):
            mismatched.append(leaf.template())
    assert mismatched == []
    # The walker's scenarios reach the flat loop for the fields it handles (retry, backoff,
    # faults, capacity, arrivals, the run's own settings): the check above is not vacuous.
    assert flat_leaves >= 50, flat_leaves
