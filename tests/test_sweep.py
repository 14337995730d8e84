"""Sweeps: grid and random points, every (point, seed) run, determinism, executors, reductions."""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest
import reliability_lab as rl
from reliability_lab.sweep import Range, pareto_front, summarize, sweep, t_quantile


def base() -> rl.Scenario:
    return rl.Scenario(
        arrivals=rl.Poisson(rate=100),
        duration=10,
        workers=8,
        queue_capacity=64,
        seed=1,
        dependencies=(
            rl.Dependency(
                "payment",
                faults=rl.Faults(
                    failure_rate=0.3,
                    latency=rl.Exponential(mean=0.02),
                    phases=(rl.Outage(start=4, end=6),),
                ),
                retry=rl.RetryConfig(
                    max_attempts=3, backoff=rl.Backoff(initial=0.01, max_delay=0.1)
                ),
                breaker=rl.Breaker(consecutive_failures=5, open_for=1.0),
            ),
        ),
    )


GRID = {
    "payment.breaker.consecutive_failures": [2, 5, 10],
    "payment.faults.failure_rate": [0.1, 0.4],
}


def test_grid_is_the_cartesian_product_times_seeds_in_order() -> None:
    df = sweep(base(), GRID, seeds=[3, 4], progress=False)
    assert len(df) == 3 * 2 * 2
    assert list(df.columns[:4]) == [
        "point",
        "payment.breaker.consecutive_failures",
        "payment.faults.failure_rate",
        "seed",
    ]
    assert list(df["point"]) == [p for p in range(6) for _ in range(2)]
    assert list(df["seed"]) == [3, 4] * 6
    assert list(df["payment.breaker.consecutive_failures"]) == [2] * 4 + [5] * 4 + [10] * 4
    assert list(df["payment.faults.failure_rate"]) == [0.1, 0.1, 0.4, 0.4] * 3
    for col in ("success_rate", "payment.calls_per_order", "payment.trips", "latency_p99"):
        assert col in df.columns
    assert df["arrived"].gt(0).all()


def test_each_row_is_the_run_of_its_point_and_seed() -> None:
    sc = base()
    df = sweep(sc, GRID, seeds=[7, 8], progress=False)
    rows = df.to_dict("records")
    for row in (rows[0], rows[5], rows[11]):
        point = {k: row[k] for k in GRID}
        s = rl.simulate(sc.replace(point).replace(seed=int(row["seed"]))).summary
        for key in ("arrived", "completed", "success_rate", "payment.calls", "latency_p99"):
            assert row[key] == s[key], key


def test_deterministic_whatever_the_parallelism_and_chunking() -> None:
    serial = sweep(base(), GRID, seeds=range(3), max_workers=1, progress=False)
    threaded = sweep(base(), GRID, seeds=range(3), max_workers=2, chunksize=1, progress=False)
    chunky = sweep(base(), GRID, seeds=range(3), max_workers=2, chunksize=5, progress=False)
    pd.testing.assert_frame_equal(serial, threaded)
    pd.testing.assert_frame_equal(serial, chunky)
    # Different seeds give different runs.
    assert not serial[serial["seed"] == 0]["completed"].equals(
        serial[serial["seed"] == 1]["completed"]
    )


def test_the_failure_rate_axis_changes_the_outcome() -> None:
    df = sweep(base(), {"payment.faults.failure_rate": [0.0, 0.6]}, seeds=range(2), progress=False)
    low = df[df["payment.faults.failure_rate"] == 0.0]
    high = df[df["payment.faults.failure_rate"] == 0.6]
    assert high["success_rate"].mean() < low["success_rate"].mean()
    assert high["payment.trips"].mean() > low["payment.trips"].mean()


def test_numpy_values_work_as_grid_values() -> None:
    df = sweep(base(), {"payment.breaker.consecutive_failures": np.arange(2, 4),
                        "payment.faults.failure_rate": np.linspace(0.1, 0.2, 2)},
               progress=False)
    assert list(df["payment.breaker.consecutive_failures"]) == [2, 2, 3, 3]


def test_empty_grid_runs_the_scenario_itself() -> None:
    df = sweep(base(), {}, seeds=[1], progress=False)
    assert len(df) == 1
    assert df.loc[0, "completed"] == rl.simulate(base()).summary["completed"]


def test_random_search_samples_ranges_tuples_and_choices() -> None:
    grid: dict[str, Any] = {
        "payment.breaker.open_for": Range(0.1, 10.0, log=True),
        "payment.faults.failure_rate": (0.05, 0.5),
        "payment.breaker.consecutive_failures": Range(1, 20, integer=True),
        "workers": [4, 8, 16],
    }
    df = sweep(base(), grid, seeds=[0, 1], n=12, progress=False)
    assert len(df) == 24
    points = df.drop_duplicates("point")
    assert len(points) == 12
    assert points["payment.breaker.open_for"].between(0.1, 10.0).all()
    assert points["payment.faults.failure_rate"].between(0.05, 0.5).all()
    cf = points["payment.breaker.consecutive_failures"]
    assert cf.between(1, 20).all()
    assert (cf == cf.round()).all()
    assert set(points["workers"]) <= {4, 8, 16}
    assert points["payment.faults.failure_rate"].nunique() == 12
    again = sweep(base(), grid, seeds=[0, 1], n=12, progress=False)
    pd.testing.assert_frame_equal(df, again)
    other = sweep(base(), grid, seeds=[0], n=12, random_state=1, progress=False)
    assert not other["payment.faults.failure_rate"].equals(
        points["payment.faults.failure_rate"].reset_index(drop=True)
    )


def test_range_draws_cover_their_interval() -> None:
    import random

    rng = random.Random(0)
    ints = [Range(1, 3, integer=True).sample(rng) for _ in range(300)]
    assert set(ints) == {1, 2, 3}
    logs = [Range(1, 1000, log=True).sample(rng) for _ in range(2000)]
    # Log-uniform: about a third of the draws in each decade.
    assert 0.25 < np.mean(np.array(logs) < 10) < 0.42
    log_ints = [Range(1, 4, log=True, integer=True).sample(rng) for _ in range(500)]
    assert set(log_ints) == {1, 2, 3, 4}


def test_metrics_as_names_and_as_a_function() -> None:
    df = sweep(base(), GRID, seeds=[0], metrics=["success_rate", "payment.trips"],
               progress=False)
    assert list(df.columns) == [
        "point", *GRID, "seed", "success_rate", "payment.trips",
    ]
    fn = sweep(base(), {"workers": [2, 8]}, seeds=[0], metrics=_late_completions, progress=False)
    assert list(fn.columns) == ["point", "workers", "seed", "late_completed", "orders"]
    assert (fn["late_completed"] > 0).all()


def _late_completions(r: rl.Result) -> dict[str, float]:
    # A function sees the whole result, time series and orders included.
    ts = r.timeseries
    assert r.orders is not None
    return {"late_completed": float(ts[ts["t"] > 6]["completed"].sum()),
            "orders": float(len(r.orders))}


def test_bad_arguments_raise_value_errors_naming_them() -> None:
    sc = base()
    with pytest.raises(ValueError, match=r"grid point 0 .*payment.breaker.open_for"):
        sweep(sc, {"payment.breaker.open_for": [0.0]}, progress=False)
    with pytest.raises(ValueError, match="unknown path"):
        sweep(sc, {"payment.breaker.nonsense": [1]}, progress=False)
    with pytest.raises(ValueError, match="seeds="):
        sweep(sc, {"seed": [1, 2]}, progress=False)
    with pytest.raises(ValueError, match=r"n=\.\.\."):
        sweep(sc, {"workers": Range(1, 5)}, progress=False)
    with pytest.raises(ValueError, match="at least one value"):
        sweep(sc, {"workers": []}, progress=False)
    with pytest.raises(ValueError, match="sequence of values"):
        sweep(sc, {"workers": 4}, progress=False)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        sweep(sc, {"workers": [1]}, n=0, progress=False)
    with pytest.raises(ValueError, match="max_workers must be an integer >= 1"):
        sweep(sc, {"workers": [1]}, max_workers=0, progress=False)
    with pytest.raises(ValueError, match="seeds must have at least one seed"):
        sweep(sc, {"workers": [1]}, seeds=[], progress=False)
    with pytest.raises(ValueError, match=r"grid\['workers'\]: high must be greater"):
        sweep(sc, {"workers": (5, 1)}, n=3, progress=False)
    with pytest.raises(ValueError, match="a Range, a"):
        sweep(sc, {"workers": 3}, n=3, progress=False)
    with pytest.raises(ValueError, match="low must be > 0 when log"):
        Range(0, 1, log=True)
    with pytest.raises(ValueError, match="high must be greater"):
        Range(1, 1)
    with pytest.raises(ValueError, match="whole numbers"):
        Range(0.5, 3, integer=True)
    with pytest.raises(ValueError, match="low must be a finite number"):
        Range(math.nan, 1)


def test_a_failing_run_propagates() -> None:
    with pytest.raises(ValueError, match="metrics must be a list"):
        sweep(base(), {}, metrics="success_rate", progress=False)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        sweep(base(), {}, metrics=_boom, progress=False)


def _boom(r: rl.Result) -> dict[str, float]:
    raise RuntimeError("boom")


def test_progress_bar_reports_runs(capsys: pytest.CaptureFixture[str]) -> None:
    sweep(base(), {"workers": [2, 4]}, seeds=[0, 1], progress=True)
    err = capsys.readouterr().err
    assert "sweep" in err and "/4 " in err
    sweep(base(), {"workers": [2, 4]}, seeds=[0, 1], progress=False)
    assert capsys.readouterr().err == ""


def test_any_executor_a_given_one_is_left_open() -> None:
    expected = sweep(base(), GRID, seeds=[0, 1], max_workers=1, progress=False)
    with ThreadPoolExecutor(2) as ex:
        got = sweep(base(), GRID, seeds=[0, 1], executor=ex, progress=False)
        pd.testing.assert_frame_equal(expected, got)
        assert ex.submit(lambda: 1).result() == 1  # still usable


def test_process_pool_executor() -> None:
    # Scenarios, points and the metrics function pickle into other processes.
    expected = sweep(base(), GRID, seeds=[0, 1], max_workers=1, progress=False)
    with ProcessPoolExecutor(2) as ex:
        got = sweep(base(), GRID, seeds=[0, 1], executor=ex, progress=False)
    pd.testing.assert_frame_equal(expected, got)


@pytest.mark.parametrize("processes", [False, True])
def test_dask_distributed_executor(processes: bool) -> None:
    distributed = pytest.importorskip("distributed")
    expected = sweep(base(), GRID, seeds=[0, 1], max_workers=1, progress=False)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=processes, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        got = sweep(base(), GRID, seeds=[0, 1], executor=client.get_executor(), progress=False)
    pd.testing.assert_frame_equal(expected, got)


# ------------------------------------------------------------------------------------------------
# Reductions


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [(0.975, 1, 12.7062), (0.975, 4, 2.7764), (0.975, 30, 2.0423), (0.95, 10, 1.8125),
     (0.995, 2, 9.9248), (0.975, 100_000, 1.9600), (0.025, 4, -2.7764)],
)
def test_t_quantile_matches_tables(p: float, df: int, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-4)


def test_summarize_mean_and_t_interval() -> None:
    df = pd.DataFrame({"a": [1, 1, 1, 2, 2, 3], "m": [1.0, 2.0, 3.0, 5.0, math.nan, 7.0]})
    s = summarize(df, "a", "m")
    assert list(s["a"]) == [1, 2, 3]
    assert list(s["n"]) == [3, 1, 1]
    assert s.loc[0, "mean"] == 2.0
    half = 4.302653 * 1.0 / math.sqrt(3)  # t(0.975, 2) x s / sqrt(n)
    assert s.loc[0, "ci_low"] == pytest.approx(2.0 - half, rel=1e-5)
    assert s.loc[0, "ci_high"] == pytest.approx(2.0 + half, rel=1e-5)
    assert math.isnan(s.loc[1, "ci_low"])  # one value: no interval
    s90 = summarize(df, ["a"], "m", confidence=0.9)
    assert s90.loc[0, "ci_high"] < s.loc[0, "ci_high"]
    with pytest.raises(ValueError, match="not in the DataFrame"):
        summarize(df, "b", "m")
    with pytest.raises(ValueError, match=r"confidence must be a number in \(0, 1\)"):
        summarize(df, "a", "m", confidence=1.5)


def test_summarize_a_sweep() -> None:
    df = sweep(base(), GRID, seeds=range(3), progress=False)
    s = summarize(df, list(GRID), "success_rate")
    assert len(s) == 6
    assert (s["n"] == 3).all()
    assert (s["ci_low"] <= s["mean"]).all() and (s["mean"] <= s["ci_high"]).all()


def test_pareto_front() -> None:
    df = pd.DataFrame(
        {"load": [1.0, 2.0, 3.0, 2.0, 1.5, 4.0, math.nan, 1.0],
         "ok": [0.5, 0.8, 0.9, 0.7, 0.5, 0.9, 1.0, 0.5]}
    )
    front = pareto_front(df, "load", "ok")  # minimise load, maximise ok
    assert list(front.index) == [0, 1, 2]
    both_max = pareto_front(df, "load", "ok", maximize=True)
    assert list(both_max.index) == [5]
    both_min = pareto_front(df, "load", "ok", maximize=False)
    assert list(both_min.index) == [0]
    with pytest.raises(ValueError, match="not in the DataFrame"):
        pareto_front(df, "x", "ok")


def test_exports() -> None:
    assert rl.sweep is sweep
    assert rl.summarize is summarize
    assert rl.pareto_front is pareto_front
    assert rl.Range is Range


def _two_dependency_scenario() -> rl.Scenario:
    return rl.Scenario(
        arrivals=rl.Poisson(rate=150),
        duration=8,
        workers=6,
        queue_capacity=20,
        order_deadline=0.5,
        seed=2,
        dependencies=(
            rl.Dependency(
                "pricing",
                faults=rl.Faults(
                    failure_rate=0.2,
                    latency=rl.Exponential(mean=0.01),
                    phases=(rl.Outage(start=2, end=4),),
                ),
                fallback=rl.Fallback("cache", cache_ttl=1.0),
                bulkhead=rl.BulkheadConfig(max_concurrent=3),
            ),
            rl.Dependency(
                "payment",
                faults=rl.Faults(
                    failure_rate=0.3,
                    latency=rl.Exponential(mean=0.03),
                    phases=(rl.Brownout(start=3, end=5), rl.Outage(start=6, end=7)),
                ),
                retry=rl.RetryConfig(
                    max_attempts=3, backoff=rl.Backoff(initial=0.01, max_delay=0.1)
                ),
                breaker=rl.Breaker(consecutive_failures=3, open_for=0.5),
            ),
        ),
    )


@pytest.mark.parametrize("make", [base, _two_dependency_scenario])
def test_summary_only_runs_give_the_summary_of_simulate(make: Any) -> None:
    """The summary-only path computes Result.summary's numbers without building a Result:
    every column, same values (NaN where simulate has NaN)."""
    # (Summary runs sample no time series; with sampling, a run's end_time is the next sample
    # tick, which changes end_time, goodput, utilization and mean_in_system.)
    sc = make().replace(record_orders=False, sample_every=0.0)
    grid = {"workers": [2, 6, 12]}
    df = sweep(sc, grid, seeds=[0, 5], progress=False)
    for row in df.to_dict("records"):
        s = rl.simulate(sc.replace(workers=row["workers"]).replace(seed=int(row["seed"]))).summary
        assert set(s.index) <= set(row), set(s.index) - set(row)
        for key, value in s.items():
            got = row[key]
            assert (math.isnan(got) and math.isnan(value)) or got == value, key
    # Asking for some columns only (transitions are then not recorded unless a time to
    # detect/recover is asked for) gives the same values.
    some = sweep(sc, grid, seeds=[0, 5], progress=False,
                 metrics=["success_rate", "payment.outage.time_to_detect", "nonexistent"])
    assert list(some.columns[-3:]) == ["success_rate", "payment.outage.time_to_detect",
                                       "nonexistent"]
    assert some["success_rate"].equals(df["success_rate"])
    assert some["payment.outage.time_to_detect"].equals(df["payment.outage.time_to_detect"])
    assert some["nonexistent"].isna().all()


def test_an_invalid_later_point_stops_the_sweep_naming_it() -> None:
    grid = {"payment.breaker.open_for": [1.0, 2.0, -1.0, 3.0]}
    for workers in (1, 2):
        with pytest.raises(ValueError, match=r"grid point 2 .*payment.breaker.open_for"):
            sweep(base(), grid, progress=False, max_workers=workers, chunksize=1)
    with pytest.raises(ValueError, match=r"grid point 2 .*payment.breaker.open_for"):
        sweep(base(), grid, progress=False, metrics=_calls, max_workers=2, chunksize=1)


def _calls(r: rl.Result) -> dict[str, float]:
    return {"calls": float(r.summary["payment.calls"])}
