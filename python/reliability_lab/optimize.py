"""Optimisation over a parameter space, with constraints, by Optuna.

``optimize(scenario, space, objective, constraints=...)`` asks an Optuna sampler for points of
``space``, runs the scenario at each point with the same seeds (common random numbers: the trials
differ only by their parameters), averages each metric over the seeds and reports them back::

    res = rl.optimize(
        sc,
        {"payment.breaker.consecutive_failures": rl.Range(1, 20, integer=True),
         "payment.retry.max_attempts": [1, 2, 3, 4]},
        objective="minimize latency_p99",
        constraints=["success_rate >= 0.995", "calls_per_order <= 1.3"],
        n_trials=60, seeds=range(3),
    )
    res.best          # the best feasible trial (a row of res.trials)
    res.trials        # one row per trial: params, metric means, feasible

A list of objectives (``["minimize latency_p99", "maximize goodput"]``) is a multi-objective
study: ``res.pareto`` is then its feasible Pareto front (Optuna's ``study.best_trials``).

Constraints reach the sampler through ``Trial.set_constraint`` (Optuna >= 5; the older
``constraints_func`` argument is deprecated there): the default samplers — TPE for one objective,
NSGA-II for several — use them (c-TPE, Watanabe & Hutter 2023; constrained domination, Deb et al.
2002). A constraint ``m >= t`` is reported as ``t - m``, ``m <= t`` as ``m - t`` (feasible when
<= 0); a NaN metric (e.g. no completed order to take a quantile of) is infeasible, and a NaN
objective marks the trial failed.

Optuna is an optional dependency: ``pip install reliability-lab[optimize]``.
"""

from __future__ import annotations

import importlib
import math
import numbers
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from reliability_lab.scenario import Scenario
from reliability_lab.sweep import Range, _native, _resolve_executor, sweep

_DIRECTIONS = {
    "min": "minimize", "minimize": "minimize", "minimise": "minimize",
    "max": "maximize", "maximize": "maximize", "maximise": "maximize",
}
_CONSTRAINT = re.compile(r"^\s*(\S+?)\s*(<=|>=)\s*(\S+)\s*$")
_SAMPLERS = ("tpe", "nsga2", "random")


@dataclass(frozen=True)
class Objective:
    """A metric (a summary column name) to minimise or maximise."""

    metric: str
    direction: str  # "minimize" or "maximize"

    def __str__(self) -> str:
        return f"{self.direction} {self.metric}"


@dataclass(frozen=True)
class Constraint:
    """``metric <op> bound``, op ``"<="`` or ``">="``, on the metric's mean over the seeds."""

    metric: str
    op: str
    bound: float

    def violation(self, value: float) -> float:
        """Optuna's constraint value: <= 0 when satisfied, the distance to the bound when not;
        infinite for a NaN metric."""
        if math.isnan(value):
            return math.inf
        return value - self.bound if self.op == "<=" else self.bound - value

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


@dataclass(frozen=True)
class OptimizationResult:
    """What :func:`optimize` found.

    Attributes:
        trials: one row per trial: ``trial``, one column per path of the space, the mean over
            the seeds of each metric (objectives, constrained metrics, ``metrics=``), one
            ``violation[i]`` column per constraint (<= 0: satisfied), ``feasible`` and
            ``state`` (Optuna's: ``COMPLETE``, or ``FAIL`` for a NaN objective).
        objectives, constraints: as parsed.
        study: the ``optuna.Study`` (for Optuna's own plots and analyses).
    """

    trials: pd.DataFrame
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]
    study: Any = field(repr=False)

    @property
    def best(self) -> pd.Series:
        """The best feasible trial's row (one objective only; ties: the first trial)."""
        if len(self.objectives) != 1:
            raise ValueError("best is for one objective: a multi-objective study has a pareto")
        ok = self.trials[self.trials["feasible"] & (self.trials["state"] == "COMPLETE")]
        if ok.empty:
            raise ValueError("no trial met every constraint: there is no best trial")
        obj = self.objectives[0]
        col = ok[obj.metric]
        idx = col.idxmin() if obj.direction == "minimize" else col.idxmax()
        row: pd.Series = self.trials.loc[idx]
        return row

    @property
    def pareto(self) -> pd.DataFrame:
        """The feasible trials no other feasible trial dominates (Optuna's
        ``study.best_trials``), sorted by trial number; for one objective, the best trial(s)."""
        numbers_ = sorted(t.number for t in self.study.best_trials)
        front: pd.DataFrame = self.trials[self.trials["trial"].isin(numbers_)]
        return front


def _parse_objective(spec: Any, where: str) -> Objective:
    if isinstance(spec, Objective):
        return spec
    if isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(x, str) for x in spec):
        metric, direction = spec
        if direction in _DIRECTIONS:
            return Objective(metric, _DIRECTIONS[direction])
        if metric in _DIRECTIONS:  # ("minimize", "latency_p99")
            return Objective(direction, _DIRECTIONS[metric])
    if isinstance(spec, str):
        parts = spec.split()
        if len(parts) == 2 and parts[0].lower() in _DIRECTIONS:
            return Objective(parts[1], _DIRECTIONS[parts[0].lower()])
    raise ValueError(
        f"{where} must be 'minimize <metric>' or 'maximize <metric>' (or a (metric, "
        f"direction) tuple), got {spec!r}"
    )


def _parse_constraint(spec: Any, where: str) -> Constraint:
    if isinstance(spec, Constraint):
        return spec
    if isinstance(spec, str):
        m = _CONSTRAINT.match(spec)
        if m:
            try:
                bound = float(m.group(3))
            except ValueError:
                bound = math.nan
            if math.isfinite(bound):
                return Constraint(m.group(1), m.group(2), bound)
    elif (
        isinstance(spec, tuple)
        and len(spec) == 3
        and isinstance(spec[0], str)
        and spec[1] in ("<=", ">=")
        and isinstance(spec[2], numbers.Real)
        and not isinstance(spec[2], bool)
        and math.isfinite(spec[2])
    ):
        return Constraint(spec[0], spec[1], float(spec[2]))
    raise ValueError(
        f"{where} must be '<metric> >= <number>', '<metric> <= <number>' or a (metric, op, "
        f"number) tuple, got {spec!r}"
    )


def _suggester(path: str, spec: Any) -> Any:
    """A function trial -> value for one path of the space."""
    if isinstance(spec, tuple) and len(spec) == 2 and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) for v in spec
    ):
        try:
            spec = Range(float(spec[0]), float(spec[1]))
        except ValueError as e:
            raise ValueError(f"space[{path!r}]: {e}") from None
    if isinstance(spec, Range):
        r = spec
        if r.integer:
            return lambda t: t.suggest_int(path, int(r.low), int(r.high), log=r.log)
        return lambda t: t.suggest_float(path, r.low, r.high, log=r.log)
    if isinstance(spec, (list, range)) and len(spec) > 0:
        choices = [_native(v) for v in spec]
        bad = [c for c in choices if c is not None and not isinstance(c, (bool, int, float, str))]
        if bad:
            raise ValueError(
                f"space[{path!r}]: choices must be numbers, strings, booleans or None, got "
                f"{bad[0]!r}"
            )
        return lambda t: t.suggest_categorical(path, choices)
    raise ValueError(
        f"space[{path!r}] must be a Range, a (low, high) tuple or a non-empty list of choices, "
        f"got {spec!r}"
    )


def _make_sampler(optuna: Any, sampler: Any, n_objectives: int, random_state: int) -> Any:
    if sampler is None:
        sampler = "tpe" if n_objectives == 1 else "nsga2"
    if isinstance(sampler, str):
        if sampler == "tpe":
            return optuna.samplers.TPESampler(seed=random_state)
        if sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=random_state)
        if sampler == "random":
            return optuna.samplers.RandomSampler(seed=random_state)
        raise ValueError(f"sampler must be one of {list(_SAMPLERS)} or an optuna sampler, "
                         f"got {sampler!r}")
    if isinstance(sampler, optuna.samplers.BaseSampler):
        return sampler
    raise TypeError(f"sampler must be one of {list(_SAMPLERS)} or an optuna sampler, "
                    f"got {type(sampler).__name__}")


def _check_int(name: str, value: object, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def optimize(
    scenario: Scenario,
    space: Mapping[str, Any],
    objective: str | tuple[str, str] | Objective | Sequence[Any],
    *,
    constraints: Iterable[Any] = (),
    n_trials: int = 50,
    seeds: Iterable[int] = range(3),
    metrics: Sequence[str] = (),
    sampler: Any = None,
    random_state: int = 0,
    executor: Executor | str | Any | None = None,
    max_workers: int | None = None,
    cache: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> OptimizationResult:
    """Searches ``space`` for the parameters that best meet ``objective`` under ``constraints``.

    Args:
        scenario: the base scenario; each trial replaces the space's dotted paths.
        space: dotted path -> a :class:`~reliability_lab.sweep.Range` (float or integer,
            uniform or log), a ``(low, high)`` tuple (floats) or a list of choices, as in a
            random :func:`~reliability_lab.sweep.sweep`.
        objective: ``"minimize <metric>"`` / ``"maximize <metric>"`` (``min``/``max`` and
            British spellings too), a ``(metric, direction)`` tuple, or a list of these for a
            multi-objective study. Metrics are ``Result.summary`` column names.
        constraints: ``"<metric> >= <number>"`` / ``"<metric> <= <number>"`` strings or
            ``(metric, op, number)`` tuples, on the mean over the seeds.
        n_trials: trials to run, >= 1.
        seeds: the seeds every trial runs with (the same for all: common random numbers).
        metrics: more summary columns to keep in ``trials``.
        sampler: ``"tpe"`` (default for one objective), ``"nsga2"`` (default for several),
            ``"random"``, or an ``optuna.samplers.BaseSampler`` used as is.
        random_state: seeds the named samplers: the same call gives the same trials.
        executor, max_workers, cache: passed to :func:`~reliability_lab.sweep.sweep`, which
            runs each trial's seeds (in parallel); a cache makes a repeated or extended study
            rerun nothing it already ran.
        progress: a tqdm progress bar over the trials.

    Returns:
        An :class:`OptimizationResult`: ``trials`` (a DataFrame), ``best`` (one objective),
        ``pareto`` (the feasible front), ``study``.

    Raises:
        ValueError / TypeError: a bad argument, named (before any trial runs; a metric name
            that is not a summary column is found with one run of the base scenario).
    """
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario must be a Scenario, got {type(scenario).__name__}")
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"space must be a non-empty mapping of dotted paths, got {space!r}")
    if "seed" in space:
        raise ValueError("space must not contain 'seed': pass seeds=... instead")
    suggesters = {path: _suggester(path, spec) for path, spec in space.items()}
    if isinstance(objective, list):
        if not objective:
            raise ValueError("objective must name at least one metric, got []")
        objectives = tuple(_parse_objective(o, f"objective[{i}]") for i, o in enumerate(objective))
    else:
        objectives = (_parse_objective(objective, "objective"),)
    if isinstance(constraints, str) or (
        isinstance(constraints, tuple) and len(constraints) == 3 and constraints[1] in ("<=", ">=")
    ):
        constraints = [constraints]  # one constraint, not a list of them
    cons = tuple(_parse_constraint(c, f"constraints[{i}]") for i, c in enumerate(constraints))
    n_trials = _check_int("n_trials", n_trials, 1)
    random_state = _check_int("random_state", random_state, 0)
    seed_list = [_check_int("seeds[]", s, 0) for s in seeds]
    if not seed_list:
        raise ValueError("seeds must have at least one seed")
    if isinstance(metrics, str) or not all(isinstance(m, str) for m in metrics):
        raise ValueError(f"metrics must be a list of summary column names, got {metrics!r}")
    names = list(dict.fromkeys(
        [o.metric for o in objectives] + [c.metric for c in cons] + list(metrics)
    ))
    optuna = _import_optuna()
    sampler_obj = _make_sampler(optuna, sampler, len(objectives), random_state)

    # Check the paths (the first point of the space) and the metric names (one run).
    try:
        scenario.replace({p: _first_value(space[p]) for p in space})
    except ValueError as e:
        raise ValueError(f"space: {e}") from None
    columns = sweep(scenario, {}, seeds=seed_list[:1], progress=False, max_workers=1).columns
    for where, metric in (
        *((f"objective {o}", o.metric) for o in objectives),
        *((f"constraint {c}", c.metric) for c in cons),
        *((f"metrics[{i}]", m) for i, m in enumerate(metrics)),
    ):
        if metric not in columns:
            summary = [c for c in columns if c not in ("point", "seed")]
            raise ValueError(f"{where}: {metric!r} is not a summary column; they are {summary}")

    records: list[dict[str, Any]] = []

    def run_trial(trial: Any) -> float | tuple[float, ...]:
        params = {path: s(trial) for path, s in suggesters.items()}
        df = sweep(
            scenario, {p: [v] for p, v in params.items()}, seeds=seed_list, metrics=names,
            executor=executor, max_workers=max_workers, cache=cache, progress=False,
        )
        means = {m: float(df[m].mean(skipna=False)) for m in names}
        violations = [c.violation(means[c.metric]) for c in cons]
        for i, v in enumerate(violations):
            trial.set_constraint(str(i), v)
        records.append({
            "trial": trial.number, **params, **means,
            **{f"violation[{i}]": v for i, v in enumerate(violations)},
            "feasible": all(v <= 0 for v in violations),
        })
        values = tuple(means[o.metric] for o in objectives)
        if any(math.isnan(v) for v in values):
            return math.nan if len(values) == 1 else values  # Optuna marks the trial failed
        return values[0] if len(values) == 1 else values

    def callback(study_: Any, trial: Any) -> None:
        if bar is not None:
            bar.update(1)

    # A scheduler address is connected to once for the study, not once per trial.
    executor, own_client, _ = _resolve_executor(executor)
    bar = _progress_bar(n_trials, progress)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a log line per trial
    try:
        study = optuna.create_study(
            sampler=sampler_obj, directions=[o.direction for o in objectives]
        )
        study.optimize(run_trial, n_trials=n_trials, callbacks=[callback], catch=())
    finally:
        optuna.logging.set_verbosity(verbosity)
        if bar is not None:
            bar.close()
        if own_client is not None:
            own_client.close()

    states = {t.number: t.state.name for t in study.get_trials(deepcopy=False)}
    trials = pd.DataFrame.from_records(records)
    trials["state"] = [states[k] for k in trials["trial"]]
    return OptimizationResult(trials, objectives, cons, study)


def _first_value(spec: Any) -> Any:
    if isinstance(spec, Range):
        return int(spec.low) if spec.integer else spec.low
    if isinstance(spec, tuple):
        return float(spec[0])
    return _native(spec[0])


def _import_optuna() -> Any:
    try:
        return importlib.import_module("optuna")
    except ImportError:
        raise ImportError(
            "optimize needs Optuna: pip install 'reliability-lab[optimize]'"
        ) from None


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    tqdm = importlib.import_module("tqdm").tqdm
    return tqdm(total=total, desc="optimize", unit="trial", leave=False)


__all__ = ["Constraint", "Objective", "OptimizationResult", "optimize"]
