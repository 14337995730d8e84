"""The generated service graph of bench/graph_scale.py (issue 14): deterministic, well formed,
and a sweep over such a graph gives the same rows on a Dask cluster as in this process."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import reliability_lab as rl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from graph_scale import generate, total_calls

SMALL = (2, 4, 6, 8)  # 20 services


def test_the_generator_is_deterministic_and_has_the_issue_shape() -> None:
    sc = generate()
    assert sc == generate() and sc.to_dict() == generate().to_dict()
    assert generate(seed=1) != sc
    assert len(sc.services) == 100
    deps = [(s.name, d) for s in sc.services for d in s.dependencies]
    leaves = [d for _, d in deps if d.service is None]
    calls = [d for _, d in deps if d.service is not None]
    assert leaves and all(d.replicas is not None and d.replicas.count == 10 for d in leaves)
    assert all(
        1 <= len([d for d in s.dependencies if d.service]) <= 3
        for s in sc.services
        if not s.name.startswith("t4_")
    )
    assert len([d for d in calls if d.fanout is not None]) == 4
    # Retries at two tiers: every leaf, and tier 1's calls into tier 2.
    assert all(d.retry is not None for d in leaves)
    retried = {n.split("_")[0] for n, d in deps if d.service is not None and d.retry is not None}
    assert retried == {"t1"}


def test_every_generated_service_is_reached_and_calls_are_counted() -> None:
    sc = generate(SMALL, horizon=2.0)
    res = rl.simulate(sc)
    assert len(res.services) == 21  # the root and 20 services
    assert (res.services["arrivals"] > 0).all()
    by_dep = {d["name"]: int(d["calls"]) for d in res.totals["dependencies"]}
    assert total_calls(res) == sum(by_dep.values()) > res.summary["arrived"] > 0


def test_bad_tiers_are_refused() -> None:
    with pytest.raises(ValueError, match="tiers"):
        generate((5,))
    with pytest.raises(ValueError, match="more than 16"):
        generate((1, 40))


@pytest.fixture(scope="module")
def cluster() -> Any:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as c:
        yield c


def test_a_sweep_over_a_generated_graph_runs_on_dask_unchanged(cluster: Any) -> None:
    sc = generate(SMALL, horizon=2.0)
    service, dep = next(
        (s.name, d.name) for s in sc.services for d in s.dependencies if d.service is None
    )
    leaf = f"services[{service}].dependencies[{dep}].faults.failure_rate"
    grid = {leaf: [0.05, 0.5]}
    serial = rl.sweep(sc, grid, seeds=[0, 1], max_workers=1, progress=False)
    remote = rl.sweep(sc, grid, seeds=[0, 1], executor=cluster.scheduler_address, progress=False)
    pd.testing.assert_frame_equal(remote, serial)
    assert len(serial) == 4
    # The swept failure rate reaches the leaf: more of its calls are retries at the higher rate.
    retries = serial.groupby(leaf)[f"{service}.{dep}.retries"].sum()
    assert retries[0.5] > 3 * retries[0.05]
