"""rl.optimize: constrained search with a known answer, Pareto fronts, determinism, arguments."""

from __future__ import annotations

import itertools
import math

import matplotlib
import pandas as pd
import pytest
import reliability_lab as rl
from reliability_lab import plots
from reliability_lab.optimize import Constraint, Objective, optimize

pytest.importorskip("optuna")
matplotlib.use("Agg")

ATTEMPTS = "payment.retry.max_attempts"
INITIAL = "payment.retry.backoff.initial"


def base(failure_rate: float = 0.25) -> rl.Scenario:
    # Enough workers that nothing queues: each extra attempt adds failure_rate**k calls per
    # order and removes that much failure, so the answers below are known in closed form.
    return rl.Scenario(
        arrivals=rl.Poisson(rate=100),
        duration=20,
        workers=32,
        queue_capacity=256,
        seed=0,
        dependencies=[
            rl.Dependency(
                "payment",
                faults=rl.Faults(failure_rate=failure_rate, latency=rl.Exponential(mean=0.01)),
                retry=rl.RetryConfig(
                    max_attempts=3, backoff=rl.Backoff(initial=0.01, max_delay=0.05)
                ),
            )
        ],
    )


SPACE = {ATTEMPTS: [1, 2, 3, 4, 5, 6], INITIAL: rl.Range(0.001, 0.02, log=True)}


def test_the_constraint_excludes_the_unconstrained_optimum() -> None:
    # Calls per order with k attempts: 1 + 0.25 + ... + 0.25**(k-1) = 1, 1.25, 1.31, 1.33, ...;
    # success rate 1 - 0.25**k. Under calls_per_order <= 1.28 the best is k = 2 (~93.75%),
    # while more attempts (infeasible) succeed more often.
    res = optimize(
        base(), SPACE, "maximize success_rate", constraints=["calls_per_order <= 1.28"],
        n_trials=16, seeds=[0, 1], progress=False,
    )
    t = res.trials
    assert len(t) == 16
    assert list(t.columns[:3]) == ["trial", ATTEMPTS, INITIAL]
    for col in ("success_rate", "calls_per_order", "violation[0]", "feasible", "state"):
        assert col in t.columns
    assert (t["feasible"] == (t["calls_per_order"] <= 1.28)).all()
    assert (t["violation[0]"] == t["calls_per_order"] - 1.28).all()
    best = res.best
    assert best[ATTEMPTS] == 2
    assert bool(best["feasible"])
    assert best["success_rate"] == pytest.approx(1 - 0.25**2, abs=0.01)
    infeasible = t[~t["feasible"]]
    assert not infeasible.empty, "the search should have tried more attempts"
    assert (infeasible["success_rate"] > best["success_rate"]).all()
    # Without the constraint, the optimum moves to the most attempts.
    free = optimize(base(), {ATTEMPTS: [1, 2, 3, 4, 5, 6]}, "maximize success_rate",
                    n_trials=12, seeds=[0, 1], progress=False)
    assert free.best[ATTEMPTS] >= 5
    assert free.trials["feasible"].all()


def test_each_trial_is_the_mean_over_the_same_seeds() -> None:
    res = optimize(base(), {ATTEMPTS: [1, 2, 3]}, ("success_rate", "maximize"),
                   constraints=[("success_rate", ">=", 0.9)], metrics=["latency_p99"],
                   n_trials=3, seeds=[4, 5, 6], progress=False)
    row = res.trials.iloc[0]
    df = rl.sweep(base(), {ATTEMPTS: [int(row[ATTEMPTS])]}, seeds=[4, 5, 6], progress=False)
    for m in ("success_rate", "latency_p99"):
        assert row[m] == pytest.approx(df[m].mean(), rel=1e-12)
    assert row["violation[0]"] == pytest.approx(0.9 - row["success_rate"])


def test_multi_objective_front_is_non_dominated_and_feasible() -> None:
    res = optimize(
        base(), SPACE, ["minimize calls_per_order", "maximize success_rate"],
        constraints=["success_rate >= 0.9"], n_trials=20, seeds=[0], progress=False,
    )
    assert res.objectives == (Objective("calls_per_order", "minimize"),
                              Objective("success_rate", "maximize"))
    front = res.pareto
    assert not front.empty and front["feasible"].all()
    feasible = res.trials[res.trials["feasible"]]
    for (_, a), (_, b) in itertools.product(front.iterrows(), feasible.iterrows()):
        dominates = (
            b["calls_per_order"] <= a["calls_per_order"]
            and b["success_rate"] >= a["success_rate"]
            and (b["calls_per_order"] < a["calls_per_order"]
                 or b["success_rate"] > a["success_rate"])
        )
        assert not dominates, (a.to_dict(), b.to_dict())
    # Every feasible trial not on the front is dominated by one on it.
    rest = feasible[~feasible["trial"].isin(front["trial"])]
    for _, b in rest.iterrows():
        assert any(
            a["calls_per_order"] <= b["calls_per_order"]
            and a["success_rate"] >= b["success_rate"]
            for _, a in front.iterrows()
        )
    with pytest.raises(ValueError, match="best is for one objective"):
        _ = res.best
    ax = plots.pareto(res)
    assert ax.get_xlabel() == "calls_per_order"
    matplotlib.pyplot.close("all")


def test_deterministic_for_a_sampler_seed() -> None:
    kw = dict(constraints=["calls_per_order <= 1.28"], n_trials=8, seeds=[0], progress=False)
    a = optimize(base(), SPACE, "maximize success_rate", random_state=7, **kw)  # type: ignore[arg-type]
    b = optimize(base(), SPACE, "maximize success_rate", random_state=7, **kw)  # type: ignore[arg-type]
    c = optimize(base(), SPACE, "maximize success_rate", random_state=8, **kw)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(a.trials, b.trials)
    assert not a.trials[INITIAL].equals(c.trials[INITIAL])


def test_samplers_by_name_and_instance() -> None:
    import optuna

    for sampler in ("random", "nsga2", optuna.samplers.RandomSampler(seed=1)):
        res = optimize(base(), {ATTEMPTS: [1, 2]}, "min calls_per_order", n_trials=3,
                       seeds=[0], sampler=sampler, progress=False)
        assert len(res.trials) == 3


def test_a_nan_constraint_metric_is_infeasible() -> None:
    # No phases: no time to detect. A NaN metric can meet no bound.
    c = Constraint("x", "<=", 1.0)
    assert c.violation(math.nan) == math.inf
    assert c.violation(0.5) == -0.5
    assert Constraint("x", ">=", 1.0).violation(0.5) == 0.5


def test_history_plot_and_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    res = optimize(base(), {ATTEMPTS: [1, 2, 3]}, "maximize success_rate",
                   constraints="calls_per_order <= 1.28", n_trials=4, seeds=[0], progress=True)
    assert "optimize" in capsys.readouterr().err
    ax = plots.optimization_history(res)
    assert ax.get_xlabel() == "trial"
    with pytest.raises(ValueError, match="pareto needs x and y"):
        plots.pareto(res)
    matplotlib.pyplot.close("all")


def test_bad_arguments_raise_errors_naming_them() -> None:
    sc = base()
    good = {ATTEMPTS: [1, 2]}
    cases: list[tuple[dict[str, object], str]] = [
        ({"objective": "success_rate"}, "objective must be 'minimize <metric>'"),
        ({"objective": ["min calls_per_order", "upwards x"]}, r"objective\[1\]"),
        ({"objective": []}, "objective must name at least one metric"),
        ({"objective": "minimize no_such_metric"}, "'no_such_metric' is not a summary column"),
        ({"constraints": ["success_rate > 0.9"]}, r"constraints\[0\] must be"),
        ({"constraints": ["success_rate >= high"]}, r"constraints\[0\] must be"),
        ({"constraints": [("success_rate", ">=", math.inf)]}, r"constraints\[0\] must be"),
        ({"constraints": ["nope <= 1"]}, "constraint nope <= 1: 'nope' is not a summary"),
        ({"n_trials": 0}, "n_trials must be an integer >= 1"),
        ({"seeds": []}, "seeds must have at least one seed"),
        ({"seeds": [-1]}, r"seeds\[\] must be an integer >= 0"),
        ({"space": {}}, "space must be a non-empty mapping"),
        ({"space": {"seed": [1, 2]}}, "space must not contain 'seed'"),
        ({"space": {ATTEMPTS: 3}}, r"space\['payment.retry.max_attempts'\] must be a Range"),
        ({"space": {ATTEMPTS: (5, 1)}}, r"space\['payment.retry.max_attempts'\]: high must"),
        ({"space": {"payment.retry.nope": [1]}}, "space: .*nope"),
        ({"space": {ATTEMPTS: [object()]}}, "choices must be numbers"),
        ({"sampler": "cmaes"}, "sampler must be one of"),
        ({"metrics": "latency_p99"}, "metrics must be a list"),
    ]
    for extra, match in cases:
        kwargs: dict[str, object] = {
            "space": good, "objective": "maximize success_rate", "n_trials": 1, "seeds": [0],
            "progress": False, **extra,
        }
        with pytest.raises(ValueError, match=match):
            optimize(sc, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="scenario must be a Scenario"):
        optimize("sc", good, "maximize success_rate")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sampler must be one of"):
        optimize(sc, good, "maximize success_rate", sampler=3, n_trials=1, progress=False)
    # An invalid point met during the study is named.
    with pytest.raises(ValueError, match="max_attempts"):
        optimize(sc, {ATTEMPTS: [1, 0]}, "maximize success_rate", n_trials=10, seeds=[0],
                 sampler="random", progress=False)


def test_exports() -> None:
    assert rl.optimize is optimize
    assert rl.OptimizationResult.__name__ == "OptimizationResult"
