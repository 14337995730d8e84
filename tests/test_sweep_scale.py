"""Sweeps at scale: the on-disk run cache (extend, resume) and Dask clusters as executors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import reliability_lab as rl
from reliability_lab import _core
from reliability_lab.cache import RunCache, scenario_key
from reliability_lab.sweep import sweep


def base() -> rl.Scenario:
    return rl.Scenario(
        arrivals=rl.Poisson(rate=100),
        duration=5,
        workers=8,
        queue_capacity=64,
        seed=1,
        dependencies=(
            rl.Dependency(
                "payment",
                faults=rl.Faults(
                    failure_rate=0.3,
                    latency=rl.Exponential(mean=0.02),
                    phases=(rl.Outage(start=2, end=3),),
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
METRICS = ["success_rate", "payment.calls_per_order", "payment.outage.time_to_detect"]


class EngineRuns:
    """Counts the native engine's runs; optionally fails the run numbered ``fail_at``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_at: int | None = None) -> None:
        self.count = 0
        self.fail_at = fail_at
        real = _core.simulate

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            if self.fail_at is not None and self.count == self.fail_at:
                raise RuntimeError("interrupted")
            return real(*args, **kwargs)

        monkeypatch.setattr(_core, "simulate", counted)


def test_a_second_sweep_with_more_seeds_runs_only_the_new_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = sweep(base(), GRID, seeds=[0, 1, 2], metrics=METRICS, progress=False)
    path = tmp_path / "runs.sqlite"
    runs = EngineRuns(monkeypatch)
    first = sweep(base(), GRID, seeds=[0, 1], metrics=METRICS, cache=path, progress=False)
    assert runs.count == 6 * 2
    pd.testing.assert_frame_equal(first, expected[expected["seed"] < 2].reset_index(drop=True))
    runs.count = 0
    extended = sweep(base(), GRID, seeds=[0, 1, 2], metrics=METRICS, cache=path, progress=False)
    assert runs.count == 6  # only seed 2
    pd.testing.assert_frame_equal(extended, expected)
    # Other summary columns come from the same stored runs (time to detect keeps the events).
    runs.count = 0
    other = sweep(base(), GRID, seeds=[0, 1, 2], cache=path, progress=False,
                  metrics=["payment.outage.time_to_recover", "latency_p99"])
    assert runs.count == 0
    plain = sweep(base(), GRID, seeds=[0, 1, 2], progress=False,
                  metrics=["payment.outage.time_to_recover", "latency_p99"])
    pd.testing.assert_frame_equal(other, plain)
    # A changed scenario is a new key: everything runs again.
    runs.count = 0
    sweep(base().replace(duration=6.0), GRID, seeds=[0], metrics=METRICS, cache=path,
          progress=False)
    assert runs.count == 6


@pytest.mark.parametrize("max_workers", [1, 2])
def test_an_interrupted_sweep_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_workers: int
) -> None:
    expected = sweep(base(), GRID, seeds=[0, 1], metrics=METRICS, progress=False)
    path = tmp_path / "runs.sqlite"
    runs = EngineRuns(monkeypatch, fail_at=7)
    with pytest.raises(RuntimeError, match="interrupted"):
        sweep(base(), GRID, seeds=[0, 1], metrics=METRICS, cache=path, chunksize=2,
              max_workers=max_workers, progress=False)
    with RunCache(path) as store:
        kept = len(store)
    if max_workers == 1:
        assert kept == 6  # the three chunks before the failed run
    assert 0 < kept < 12
    runs.fail_at, runs.count = None, 0
    resumed = sweep(base(), GRID, seeds=[0, 1], metrics=METRICS, cache=path,
                    max_workers=max_workers, progress=False)
    assert runs.count == 12 - kept
    pd.testing.assert_frame_equal(resumed, expected)


def calls_and_success(result: rl.Result) -> dict[str, float]:
    return {"calls": float(result.summary["payment.calls"]), "n": float(len(result.orders))}


def test_cache_with_a_metrics_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f.sqlite"
    expected = sweep(base(), GRID, seeds=[0], metrics=calls_and_success, progress=False)
    runs = EngineRuns(monkeypatch)
    a = sweep(base(), GRID, seeds=[0], metrics=calls_and_success, cache=path, progress=False)
    b = sweep(base(), GRID, seeds=[0], metrics=calls_and_success, cache=path, progress=False)
    assert runs.count == 6
    pd.testing.assert_frame_equal(a, expected)
    pd.testing.assert_frame_equal(b, expected)
    with pytest.raises(ValueError, match="module-level function"):
        sweep(base(), GRID, metrics=lambda r: {"x": 1.0}, cache=path, progress=False)


def test_cache_progress_starts_at_the_cached_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.sqlite"
    sweep(base(), {"workers": [2, 4]}, seeds=[0], cache=path, progress=False)
    sweep(base(), {"workers": [2, 4]}, seeds=[0, 1], cache=path, progress=True)
    err = capsys.readouterr().err
    assert "2/4" in err  # the bar starts at the two runs the file holds


def test_cache_key_and_bad_paths(tmp_path: Path) -> None:
    d = base().to_dict()
    k = scenario_key(d, "summary")
    assert k == scenario_key({**d, "seed": 99}, "summary")  # the seed is the key's other half
    assert k != scenario_key(d, "other")
    assert k != scenario_key(base().replace(workers=9).to_dict(), "summary")
    with pytest.raises(TypeError, match="cache must be a file path"):
        sweep(base(), {}, cache=3, progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="directory"):
        sweep(base(), {}, cache=tmp_path, progress=False)
    with pytest.raises(ValueError, match="does not exist"):
        sweep(base(), {}, cache=tmp_path / "no" / "x.sqlite", progress=False)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(ValueError, match="not a reliability-lab cache"):
        sweep(base(), {}, cache=junk, progress=False)


def test_cache_round_trips_nan_and_large_seeds(tmp_path: Path) -> None:
    with RunCache(tmp_path / "c.sqlite") as store:
        store.put_many([("k", 2**64 - 1, {"a": float("nan"), "b": 0.1, "c": float("inf")})])
        got = store.get_many([("k", 2**64 - 1), ("k", 0)])
    assert list(got) == [("k", 2**64 - 1)]
    v = got[("k", 2**64 - 1)]
    assert v["a"] != v["a"] and v["b"] == 0.1 and v["c"] == float("inf")


# ------------------------------------------------------------------------------------------------
# Dask


@pytest.fixture(scope="module")
def cluster() -> Any:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as c:
        yield c


def test_dask_cluster_gives_the_local_dataframe(cluster: Any, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    grid = {**GRID, "payment.breaker.open_for": [0.5, 2.0]}
    local = sweep(base(), grid, seeds=[0, 1], progress=False)
    with distributed.Client(cluster) as client:
        by_client = sweep(base(), grid, seeds=[0, 1], executor=client, progress=False)
        by_default = sweep(base(), grid, seeds=[0, 1], executor="dask", progress=False)
        assert client.status == "running"  # a given client is left open
    by_address = sweep(base(), grid, seeds=[0, 1], executor=cluster.scheduler_address,
                       progress=False)
    for got in (by_client, by_default, by_address):
        pd.testing.assert_frame_equal(got, local)
    # With a cache, the cluster's results are stored by the collecting process.
    path = tmp_path / "d.sqlite"
    cached = sweep(base(), grid, seeds=[0, 1], executor=cluster.scheduler_address,
                   cache=path, progress=False)
    pd.testing.assert_frame_equal(cached, local)
    with RunCache(path) as store:
        assert len(store) == len(local)


def test_optimize_on_a_dask_cluster_gives_the_local_trials(cluster: Any) -> None:
    pytest.importorskip("optuna")
    kw: dict[str, Any] = dict(
        space={"payment.breaker.consecutive_failures": [2, 5, 10]},
        objective="maximize success_rate", constraints=["payment.calls_per_order <= 2"],
        n_trials=3, seeds=[0, 1], progress=False,
    )
    local = rl.optimize(base(), **kw)
    remote = rl.optimize(base(), executor=cluster.scheduler_address, **kw)
    pd.testing.assert_frame_equal(local.trials, remote.trials)


def test_bad_executors_are_named() -> None:
    pytest.importorskip("distributed")
    with pytest.raises(ValueError, match=r"executor='dask'.*none"):
        sweep(base(), {}, executor="dask", progress=False)
    with pytest.raises(TypeError, match="executor must be"):
        sweep(base(), {}, executor=3, progress=False)


# ------------------------------------------------------------------------------------------------
# The per-point encoding of summary sweeps


def test_a_summary_sweep_hands_the_engine_each_points_compiled_scenario_with_its_seed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The summary path reads nothing again: every run gets its point's CompiledScenario (built
    once per point and chunk) and the task's seed, and its numbers equal simulate() of that
    point and seed."""
    seen: list[tuple[Any, int]] = []
    native = _core.simulate

    def spy(scenario: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((scenario, kwargs["seed"]))
        return native(scenario, *args, **kwargs)

    monkeypatch.setattr(_core, "simulate", spy)
    grid = {"payment.breaker.open_for": [0.5, 2.0], "payment.faults.failure_rate": [0.1, 0.4]}
    df = sweep(base(), grid, seeds=range(3), max_workers=1, progress=False)
    monkeypatch.undo()
    assert len(seen) == 12
    assert all(isinstance(c, _core.CompiledScenario) for c, _ in seen)
    assert sorted({s for _, s in seen}) == sorted(set(df["seed"]))
    for _, row in df.iterrows():
        point = base().replace(
            {
                "payment.breaker.open_for": row["payment.breaker.open_for"],
                "payment.faults.failure_rate": row["payment.faults.failure_rate"],
                "seed": int(row["seed"]),
            }
        )
        summary = rl.simulate(point).summary
        for name in ("completed", "failed", "latency_p99", "utilization", "payment.retries"):
            assert row[name] == pytest.approx(summary[name], nan_ok=True), name


@pytest.mark.parametrize(
    ("n", "workers", "cap"), [(1000, 2, 16), (7, 2, 16), (300, 4, 64), (1, 1, 16)]
)
def test_guided_chunks_cover_every_run_and_shrink(n: int, workers: int, cap: int) -> None:
    from reliability_lab.sweep import _guided_chunks

    todo = list(range(0, 2 * n, 2))
    chunks = _guided_chunks(todo, workers, cap)
    assert [i for c in chunks for i in c] == todo
    sizes = [len(c) for c in chunks]
    assert max(sizes) <= cap and min(sizes) >= 1
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[-1] == 1
