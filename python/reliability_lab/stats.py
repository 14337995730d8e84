"""Experiments that decide: warm-up deletion, precision-driven replications, batch means, paired
comparisons with common random numbers, ranking and selection, and a metastability verdict.

* :func:`warmup_mser` / :func:`warmup` find the initial transient of a steady-state run with
  MSER-5 and say where it ends, per run.
* :func:`replicate` runs seeds until the confidence interval of a metric is as narrow as asked
  (or a maximum number of runs is reached, which it says); :func:`batch_means` is the
  alternative for one long run.
* :func:`compare` runs two settings on the same seeds and gives a paired-t interval of the
  difference (common random numbers, below).
* :func:`select_best` picks the best of several settings with a guaranteed probability of correct
  selection (the Kim-Nelson procedure; :func:`kn_select` is the procedure on any sampler).
* :func:`metastability` classifies a run with a trigger as recovered, recovering or metastable.

**Common random numbers.** The simulated engine draws from independent named streams of one seed:
the arrivals (times and keys, and closed-loop think times) and each dependency's faults (its
failures and latencies) have their own streams, derived from the seed and the stream's name. Two
scenarios that differ in policies (breaker, retry, budget, bulkhead, throttle, timeouts) and run
with the same seed therefore see the same arrivals at the same times, and a dependency's fault
stream produces the same sequence of draws (the k-th call to it gets the k-th draw); a policy
that changes how many calls are made shifts which call gets which draw, so the runs are strongly
but not perfectly synchronised. That is what :func:`compare` and :func:`select_best` rely on:
they run every setting with the same seeds, and the variance of a paired difference is then
smaller than with independent seeds (tests/test_stats.py checks it on two breaker settings: the
mean latency's paired difference has about 1/20 of the independent variance).

The guarantee is about the draws, not about every metric: a metric decided by a few discrete
events whose timing the settings change (how many times a breaker trips, whether a half-open
probe lands just after an outage ends) can be uncorrelated, or even negatively correlated,
between the settings; on the same two breaker settings the success rate's paired variance was
about twice the independent one. :class:`Comparison` reports both variances, so the saving (or
its absence) is visible.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import numbers
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd

from reliability_lab.scenario import Scenario
from reliability_lab.sim import Result, simulate
from reliability_lab.sweep import t_quantile

#: A metric: a column of ``Result.summary`` by name, or a function of the run's Result.
Metric: TypeAlias = str | Callable[[Result], float]

# ------------------------------------------------------------------------------------------------
# Argument checks (messages name the argument, its allowed range and the value)


def _real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    return float(value)


def _positive(name: str, value: object) -> float:
    v = _real(name, value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def _open_unit(name: str, value: object) -> float:
    v = _real(name, value)
    if not 0 < v < 1:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return v


def _integer(name: str, value: object, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        allowed = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")
    return v


def _series(name: str, values: object) -> np.ndarray:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}")
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{name} must hold finite numbers, got {arr[bad]!r} at index {bad}")
    return arr


def _seed_iter(seeds: Iterable[int] | None) -> Iterator[int]:
    if seeds is None:
        return iter(range(2**63))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise TypeError(f"seeds must be an iterable of integers, got {type(seeds).__name__}")

    def checked() -> Iterator[int]:
        for s in seeds:
            yield _integer("seeds[]", s, 0, 2**64 - 1)

    return checked()


# ------------------------------------------------------------------------------------------------
# Warm-up: MSER-5


@dataclass(frozen=True)
class Warmup:
    """Where a run's initial transient ends, by MSER-5.

    Attributes:
        index: the number of leading observations to delete (a multiple of ``batch``).
        time: the virtual time where the kept data starts.
        n: the number of observations examined.
        batch: the batch size (5 for MSER-5).
        mser: the MSER statistic at the chosen truncation.
        reliable: False when the minimum fell on the last truncation examined (half the series):
            the run is too short to show a steady state, lengthen it.
    """

    index: int
    time: float
    n: int
    batch: int
    mser: float
    reliable: bool


def _mser(values: np.ndarray, batch: int) -> tuple[int, float, bool]:
    """(truncation in observations, MSER at it, reliable) for a series."""
    m = len(values) // batch
    if m < 2:
        raise ValueError(
            f"values must hold at least {2 * batch} observations (two batches of {batch}), "
            f"got {len(values)}"
        )
    # Batch means of the first m*batch observations; a partial batch at the end is left out.
    z = values[: m * batch].reshape(m, batch).mean(axis=1)
    z = z - z.mean()  # centring keeps the running sums below well-conditioned
    # Suffix sums: for a truncation of d batches the kept batches are z[d:].
    s1 = np.cumsum(z[::-1])[::-1]
    s2 = np.cumsum((z * z)[::-1])[::-1]
    kept = m - np.arange(m)
    sse = np.maximum(s2 - s1 * s1 / kept, 0.0)
    stat = sse / (kept * kept)
    # Truncations over the first half of the series only (White, Cobb & Spratt 2000).
    last = (m - 1) // 2
    d = int(np.argmin(stat[: last + 1]))
    return d * batch, float(stat[d]), d < last or last == 0


def warmup_mser(values: Iterable[float], batch: int = 5) -> int:
    """The number of leading observations to delete from ``values`` as the initial transient, by
    MSER-5 (MSER with batch means of 5 observations; ``batch`` changes the 5).

    MSER (the Marginal Standard Error Rule; K. P. White, "An effective truncation heuristic for
    bias reduction in simulation output", Simulation 69(6), 1997; MSER-5: K. P. White, M. J.
    Cobb and S. C. Spratt, "A comparison of five steady-state truncation heuristics for
    simulation", Winter Simulation Conference 2000) averages the series in non-overlapping
    batches Z_1..Z_m and picks the truncation d (in batches) that minimises

        MSER(d) = sum_{j>d} (Z_j - mean(Z_{d+1..m}))^2 / (m - d)^2,

    the squared standard error of the mean of what is kept, over d in the first half of the
    series. The answer is ``d * batch`` observations. :func:`warmup` applies it to a run and
    says whether the minimum is trustworthy.

    Raises:
        ValueError: fewer than two batches of observations, a non-finite value, or a batch < 1.
    """
    b = _integer("batch", batch, 1)
    return _mser(_series("values", values), b)[0]


def _ordered_values(
    result: Result | pd.DataFrame, column: str
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(times, values, per order) of a per-order or time-series column, in time order."""
    if isinstance(result, pd.DataFrame):
        frames = [("the DataFrame", result, "t" if "t" in result.columns else None)]
    elif isinstance(result, Result):
        frames = [("the time series", result.timeseries, "t")]
        if result.orders is not None:
            frames.insert(0, ("the orders", result.orders, "arrival"))
    else:
        raise TypeError(f"result must be a Result or a DataFrame, got {type(result).__name__}")
    for _, df, tcol in frames:
        if column in df.columns and column != tcol:
            if tcol is None:
                times = np.arange(1, len(df) + 1, dtype=float)
                vals = df[column].to_numpy(dtype=float)
            else:
                sub = df[[tcol, column]].sort_values(tcol, kind="stable")
                times = sub[tcol].to_numpy(dtype=float)
                vals = sub[column].to_numpy(dtype=float)
            keep = np.isfinite(vals)  # e.g. latencies of orders still in flight
            return times[keep], vals[keep], tcol == "arrival"
    where = " or ".join(w for w, _, _ in frames)
    cols = sorted({str(c) for _, df, _ in frames for c in df.columns})
    raise ValueError(f"column must be a column of {where} ({', '.join(cols)}), got {column!r}")


def warmup(result: Result | pd.DataFrame, column: str, *, batch: int = 5) -> Warmup:
    """MSER-5 (see :func:`warmup_mser`) on one run's ``column``, with the truncation as a time.

    Args:
        result: a run. ``column`` is looked up in its per-order table first (``latency``,
            ``queue_wait``, ``attempts``..., in arrival order; orders still in flight left out)
            and then in its time series (``completed``, ``queue_depth``, ...). A DataFrame is
            taken as a time series (its ``t`` column as the times of the samples, if it has
            one; else the row numbers 1, 2, ...).
        column: the output to examine.
        batch: the batch size, >= 1 (5 for MSER-5).

    Returns:
        A :class:`Warmup`: the number of observations to delete and the virtual time where the
        kept data starts (the arrival of the first kept order; for a time series, whose rows
        close their intervals, the end of the last deleted interval).
    """
    if not isinstance(column, str):
        raise TypeError(f"column must be a column name (str), got {type(column).__name__}")
    b = _integer("batch", batch, 1)
    times, vals, per_order = _ordered_values(result, column)
    index, stat, reliable = _mser(vals, b)
    if per_order:
        start = float(times[index])
    elif index > 0:
        start = float(times[index - 1])
    else:
        start = float(times[0] - (times[1] - times[0]))
    return Warmup(index, start, len(vals), b, stat, reliable)


def steady_values(result: Result | pd.DataFrame, column: str, *, batch: int = 5
                  ) -> tuple[Warmup, np.ndarray]:
    """``column`` of one run with its MSER-5 warm-up deleted: (the :class:`Warmup`, the kept
    values in time order). Feed the values to :func:`batch_means` for an interval from one long
    run."""
    w = warmup(result, column, batch=batch)
    _, vals, _ = _ordered_values(result, column)
    return w, vals[w.index :]


# ------------------------------------------------------------------------------------------------
# Batch means


@dataclass(frozen=True)
class BatchMeans:
    """A confidence interval of a steady-state mean from one long run, by non-overlapping batch
    means.

    Attributes:
        mean, half_width, confidence: the interval is ``mean ± half_width`` at ``confidence``.
        n_batches, batch_size: the batches (observations past ``n_batches * batch_size`` are
            left out).
        lag1: the lag-1 autocorrelation of the batch means.
        independent: whether ``lag1`` is below ``2 / sqrt(n_batches)`` (about the 97.5%
            point of its sampling distribution under independence); when False the batches are
            too short for the interval to be trusted: use fewer, larger batches or a longer run.
        message: a plain sentence on the check.
    """

    mean: float
    half_width: float
    confidence: float
    n_batches: int
    batch_size: int
    lag1: float
    independent: bool
    message: str

    @property
    def ci_low(self) -> float:
        return self.mean - self.half_width

    @property
    def ci_high(self) -> float:
        return self.mean + self.half_width


def batch_means(values: Iterable[float], n_batches: int = 20, *, confidence: float = 0.95
                ) -> BatchMeans:
    """The batch-means interval of the mean of one long (warm-up deleted) series.

    The series is cut into ``n_batches`` batches of equal size; their means are treated as
    independent and normal, giving a Student t interval with ``n_batches - 1`` degrees of
    freedom. The lag-1 autocorrelation of the batch means is reported as a check of that.

    Args:
        values: the observations, in time order (e.g. from :func:`steady_values`).
        n_batches: in [2, len(values)]; 10 to 30 is usual.
        confidence: in (0, 1).
    """
    arr = _series("values", values)
    k = _integer("n_batches", n_batches, 2, max(2, len(arr)))
    conf = _open_unit("confidence", confidence)
    size = len(arr) // k
    if size < 1:
        raise ValueError(f"values must hold at least n_batches ({k}) observations, got {len(arr)}")
    z = arr[: k * size].reshape(k, size).mean(axis=1)
    mean = float(z.mean())
    sd = float(z.std(ddof=1))
    half = t_quantile(0.5 + conf / 2, k - 1) * sd / math.sqrt(k)
    c = z - mean
    denom = float(np.dot(c, c))
    lag1 = float(np.dot(c[:-1], c[1:]) / denom) if denom > 0 else 0.0
    bound = 2 / math.sqrt(k)
    ok = lag1 < bound
    msg = (
        f"lag-1 autocorrelation of the batch means {lag1:.3f} < {bound:.3f}: "
        "consistent with independent batches"
        if ok
        else f"lag-1 autocorrelation of the batch means {lag1:.3f} >= {bound:.3f}: the batches "
        "are correlated and the interval is too narrow; use fewer, larger batches or a longer run"
    )
    return BatchMeans(mean, half, conf, k, size, lag1, ok, msg)


# ------------------------------------------------------------------------------------------------
# Running a metric over seeds


def _check_metric(metric: object) -> None:
    if not (isinstance(metric, str) or callable(metric)):
        raise TypeError(
            f"metric must be a summary column name or a function Result -> float, got "
            f"{type(metric).__name__} {metric!r}"
        )


def _prepare(scenario: Scenario, metric: Metric, name: str = "scenario") -> Scenario:
    """The scenario as it will be run: a summary metric needs no per-order records or time
    series (the summary comes from the engine's totals either way)."""
    if not isinstance(scenario, Scenario):
        raise TypeError(f"{name} must be a Scenario, got {type(scenario).__name__}")
    if isinstance(metric, str):
        return scenario.replace({"record_orders": False, "sample_every": 0.0})
    return scenario


def _evaluate(scenario: Scenario, metric: Metric, seed: int) -> float:
    result = simulate(scenario.replace(seed=seed))
    if isinstance(metric, str):
        if metric not in result.summary.index:
            cols = ", ".join(str(c) for c in result.summary.index)
            raise ValueError(f"metric must be a column of Result.summary ({cols}), got {metric!r}")
        return float(result.summary[metric])
    value = metric(result)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"metric(result) must return a number, got {type(value).__name__}")
    return float(value)


def _pool_map(
    fn: Callable[[Any], float], items: list[Any], max_workers: int | None, bar: Any = None
) -> list[float]:
    """``fn`` over ``items`` in order; on threads when there are several (the engine releases
    the GIL). ``bar``: a tqdm bar advanced by one per finished item (or None)."""

    def one(x: Any) -> float:
        v = fn(x)
        if bar is not None:
            bar.update(1)
        return v

    workers = min(len(items), max_workers or os.cpu_count() or 1)
    if workers <= 1:
        return [one(x) for x in items]
    with ThreadPoolExecutor(workers) as ex:
        return list(ex.map(one, items))


def _progress(desc: str, total: int | None, enabled: bool) -> Any:
    """A tqdm progress bar counting runs (None when disabled); the caller closes it."""
    if not enabled:
        return None
    tqdm = importlib.import_module("tqdm").tqdm  # untyped: no stubs needed
    return tqdm(total=total, desc=desc, unit="run", leave=False)


# ------------------------------------------------------------------------------------------------
# Precision-driven replications


@dataclass(frozen=True)
class Replication:
    """The outcome of :func:`replicate`.

    Attributes:
        metric: the metric's name (a function's ``__name__``).
        mean, half_width, confidence: the Student t interval ``mean ± half_width`` of the
            metric's mean over the runs, at ``confidence``.
        n: the number of runs.
        seeds: their seeds, in the order run.
        values: one row per run: ``seed``, ``value`` (and the warm-up deleted, with
            ``delete_warmup``).
        target: the half width asked for (absolute; a relative target times ``|mean|``).
        reached: whether ``half_width <= target``.
        message: a plain sentence: reached in n runs, or the maximum hit and what it gave.
    """

    metric: str
    mean: float
    half_width: float
    confidence: float
    n: int
    seeds: tuple[int, ...]
    values: pd.DataFrame = field(repr=False)
    target: float
    reached: bool
    message: str

    @property
    def ci_low(self) -> float:
        return self.mean - self.half_width

    @property
    def ci_high(self) -> float:
        return self.mean + self.half_width


def _metric_name(metric: object) -> str:
    return metric if isinstance(metric, str) else str(getattr(metric, "__name__", "metric"))


def _t_half_width(x: np.ndarray, confidence: float) -> float:
    return t_quantile(0.5 + confidence / 2, len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))


def replicate(
    scenario: Scenario | Callable[[int], float],
    metric: Metric | None = None,
    *,
    half_width: float | None = None,
    relative: float | None = None,
    confidence: float = 0.95,
    n_min: int = 5,
    n_max: int = 100,
    seeds: Iterable[int] | None = None,
    delete_warmup: bool = False,
    max_workers: int | None = None,
    progress: bool = True,
) -> Replication:
    """Runs seeds until the t interval of ``metric``'s mean is as narrow as asked.

    After ``n_min`` runs the interval's half width h(n) is compared with the target; while it is
    wider, the number of runs needed is estimated as ``n * (h(n) / target)^2`` (the half width
    shrinks as 1/sqrt(n)) and the runs up to that number are made (at least one more, at most
    doubling n per round, in parallel threads), up to ``n_max`` runs. This is a batched variant
    of the sequential procedure for a specified precision in Law & Kelton (Simulation Modeling
    and Analysis, section 9.4.1), which adds one run at a time; stopping on a random n makes the
    coverage slightly below the nominal level when ``n_min`` is small, so keep ``n_min`` >= 5.

    Args:
        scenario: what to run (each run with one of ``seeds``), or a function ``seed -> value``
            (then ``metric`` is None).
        metric: a column of ``Result.summary`` (``"success_rate"``, ``"latency_p99"``,
            ``"payment.calls_per_order"``...) or a function ``Result -> float``; with
            ``delete_warmup``, a per-order or time-series column.
        half_width: the absolute half width wanted, > 0.
        relative: or a half width relative to the mean, in (0, 1): ``half_width <= relative *
            |mean|``. Exactly one of ``half_width`` and ``relative`` must be given.
        confidence: the interval's level, in (0, 1).
        n_min: the first batch of runs, >= 2.
        n_max: the most runs, >= n_min. Hitting it is not an error: ``reached`` is False and
            ``message`` says so.
        seeds: the seeds to use, in order (default 0, 1, 2, ...); running out of them is like
            hitting ``n_max``.
        delete_warmup: take as each run's value the steady-state mean of ``metric``, a
            per-order column (``"latency"``, ``"queue_wait"``...) or a time-series column
            (``"queue_depth"``...), after deleting the run's warm-up found by MSER-5
            (:func:`warmup`); ``values`` then reports each run's truncation (``warmup_index``,
            ``warmup_time``, ``warmup_reliable``).
        max_workers: threads for the runs (default: one per core; 1 for a function, which is
            called from these threads when several are asked for).
        progress: show a tqdm progress bar of the runs (out of ``n_max``).
    """
    if not isinstance(delete_warmup, bool):
        raise TypeError(
            f"delete_warmup must be a bool, got {type(delete_warmup).__name__} {delete_warmup!r}"
        )
    warm: dict[int, Warmup] = {}
    sample: Callable[[int], float]
    if isinstance(scenario, Scenario) and delete_warmup:
        if not isinstance(metric, str):
            raise TypeError(
                "metric must be a per-order or time-series column name when delete_warmup is "
                f"True, got {type(metric).__name__} {metric!r}"
            )
        column = metric

        def steady_mean(seed: int) -> float:
            w, kept = steady_values(simulate(scenario.replace(seed=seed)), column)
            warm[seed] = w
            return float(kept.mean())

        sample = steady_mean
        name = metric
    elif isinstance(scenario, Scenario):
        _check_metric(metric)
        assert metric is not None
        sc = _prepare(scenario, metric)
        m = metric

        def run_seed(seed: int) -> float:
            return _evaluate(sc, m, seed)

        sample = run_seed
        name = _metric_name(metric)
    elif callable(scenario):
        if metric is not None:
            raise TypeError("metric must be None when scenario is a function seed -> value")
        if delete_warmup:
            raise TypeError("delete_warmup needs a Scenario, not a function seed -> value")
        sample = scenario
        name = _metric_name(scenario)
        if max_workers is None:
            max_workers = 1  # a Python function gains nothing from threads, and may not be safe
    else:
        raise TypeError(
            f"scenario must be a Scenario or a function seed -> value, got "
            f"{type(scenario).__name__}"
        )
    if (half_width is None) == (relative is None):
        raise ValueError(
            f"exactly one of half_width and relative must be given, got half_width="
            f"{half_width!r} and relative={relative!r}"
        )
    target_abs = _positive("half_width", half_width) if half_width is not None else None
    target_rel = _open_unit("relative", relative) if relative is not None else None
    conf = _open_unit("confidence", confidence)
    lo = _integer("n_min", n_min, 2)
    hi = _integer("n_max", n_max, lo)
    seed_it = _seed_iter(seeds)
    used: list[int] = []
    values: list[float] = []

    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {type(progress).__name__} {progress!r}")
    bar = _progress("replicate", hi, progress)

    def run(count: int) -> bool:
        batch = [s for _, s in zip(range(count), seed_it, strict=False)]
        values.extend(_pool_map(sample, batch, max_workers, bar))
        used.extend(batch)
        return len(batch) == count

    try:
        more = run(lo)
        while True:
            x = np.asarray(values, dtype=float)
            if len(x) < 2:
                raise ValueError(f"seeds must give at least 2 seeds, got {len(x)}")
            if not np.all(np.isfinite(x)):
                bad = int(np.flatnonzero(~np.isfinite(x))[0])
                raise ValueError(
                    f"metric {name!r} is {x[bad]!r} for seed {used[bad]}: it must be finite on "
                    "every run"
                )
            mean = float(x.mean())
            h = _t_half_width(x, conf)
            target = target_abs if target_abs is not None else float(target_rel or 0) * abs(mean)
            if h <= target:
                reached = True
                break
            if len(x) >= hi or not more:
                reached = False
                break
            # The runs the current estimate says are needed, at most doubling the count per round
            # (a variance estimated from few runs is itself noisy).
            need = math.ceil(len(x) * (h / target) ** 2) if target > 0 else hi
            more = run(max(1, min(need, 2 * len(x), hi) - len(x)))
    finally:
        if bar is not None:
            bar.close()
    goal = f"±{target:.4g}" + (f" ({target_rel:.1%} of the mean)" if target_rel else "")
    if reached:
        msg = f"reached: {name} = {mean:.6g} ± {h:.4g} ({conf:.0%}) in {len(x)} runs"
    else:
        why = f"the maximum of {hi} runs" if len(x) >= hi else "the end of the seeds"
        msg = (
            f"not reached: {why} was hit with {name} = {mean:.6g} ± {h:.4g} ({conf:.0%}), "
            f"wider than the {goal} asked"
        )
        if target > 0:
            msg += f"; about {math.ceil(len(x) * (h / target) ** 2)} runs would be needed"
    df = pd.DataFrame({"seed": used, "value": x})
    if delete_warmup:
        ws = [warm[sd] for sd in used]
        df["warmup_index"] = [w.index for w in ws]
        df["warmup_time"] = [w.time for w in ws]
        df["warmup_reliable"] = [w.reliable for w in ws]
        short = sum(not w.reliable for w in ws)
        if short:
            msg += (f"; in {short} of the runs MSER-5 found no steady state within the first "
                    "half (lengthen the runs)")
    return Replication(name, mean, h, conf, len(x), tuple(used), df, float(target), reached, msg)


# ------------------------------------------------------------------------------------------------
# Paired comparison with common random numbers


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare`: ``a - b`` on the same seeds.

    Attributes:
        metric: the metric's name.
        mean_a, mean_b: the metric's means.
        diff: the mean paired difference ``a - b``.
        half_width, confidence: the paired-t interval ``diff ± half_width`` at ``confidence``.
        n: the number of seeds.
        var_paired: the sample variance of the paired differences.
        var_independent: ``var(a) + var(b)``: the variance the difference would have with
            independent seeds; ``var_paired / var_independent`` is what common random numbers
            saved.
        values: one row per seed: ``seed``, ``a``, ``b``, ``diff``.
    """

    metric: str
    mean_a: float
    mean_b: float
    diff: float
    half_width: float
    confidence: float
    n: int
    var_paired: float
    var_independent: float
    values: pd.DataFrame = field(repr=False)

    @property
    def ci_low(self) -> float:
        return self.diff - self.half_width

    @property
    def ci_high(self) -> float:
        return self.diff + self.half_width

    @property
    def significant(self) -> bool:
        """Whether the interval excludes 0."""
        return self.ci_low > 0 or self.ci_high < 0


def compare(
    scenario_a: Scenario,
    scenario_b: Scenario,
    metric: Metric,
    *,
    seeds: Iterable[int] = range(10),
    confidence: float = 0.95,
    max_workers: int | None = None,
    progress: bool = True,
) -> Comparison:
    """Compares two settings on the same seeds: a paired-t interval of ``metric(a) - metric(b)``.

    Running both with the same seed gives them the same arrivals and the same fault draws
    (common random numbers, see the module's documentation), so most of the run-to-run noise
    cancels in the difference and the interval is narrower than with independent seeds for the
    same number of runs.

    Args:
        scenario_a, scenario_b: the two settings (usually ``base.replace(...)`` twice).
        metric: a column of ``Result.summary`` or a function ``Result -> float``.
        seeds: at least 2 seeds; both settings run with each.
        confidence: the interval's level, in (0, 1).
        max_workers: threads for the runs (default: one per core).
        progress: show a tqdm progress bar of the runs.
    """
    _check_metric(metric)
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {type(progress).__name__} {progress!r}")
    a = _prepare(scenario_a, metric, "scenario_a")
    b = _prepare(scenario_b, metric, "scenario_b")
    seed_list = list(_seed_iter(seeds))
    if len(seed_list) < 2:
        raise ValueError(f"seeds must have at least 2 seeds, got {len(seed_list)}")
    conf = _open_unit("confidence", confidence)
    jobs = [(a, s) for s in seed_list] + [(b, s) for s in seed_list]
    bar = _progress("compare", len(jobs), progress)
    try:
        out = _pool_map(lambda job: _evaluate(job[0], metric, job[1]), jobs, max_workers, bar)
    finally:
        if bar is not None:
            bar.close()
    xa = np.asarray(out[: len(seed_list)])
    xb = np.asarray(out[len(seed_list) :])
    d = xa - xb
    if not np.all(np.isfinite(d)):
        raise ValueError(f"metric {_metric_name(metric)!r} must be finite on every run")
    return Comparison(
        _metric_name(metric),
        float(xa.mean()),
        float(xb.mean()),
        float(d.mean()),
        _t_half_width(d, conf),
        conf,
        len(d),
        float(d.var(ddof=1)),
        float(xa.var(ddof=1) + xb.var(ddof=1)),
        pd.DataFrame({"seed": seed_list, "a": xa, "b": xb, "diff": d}),
    )


# ------------------------------------------------------------------------------------------------
# Ranking and selection: Kim & Nelson's fully sequential procedure


@dataclass(frozen=True)
class Selection:
    """The outcome of :func:`select_best` / :func:`kn_select`.

    Attributes:
        best: the chosen candidate's index.
        candidate: the chosen candidate (its changes; None from :func:`kn_select`).
        means: each candidate's sample mean over the runs it got.
        runs: the runs each candidate got (eliminated ones stop early).
        history: one row per elimination: ``stage`` (runs per survivor at the time),
            ``eliminated``, ``by`` (the candidate it fell behind), ``mean``, ``by_mean``.
        complete: True when one candidate was left; False when ``max_runs`` stopped the
            procedure (then ``best`` is the survivor with the best sample mean, without the
            guarantee) -- ``message`` says which.
        message: a plain sentence.
        delta, alpha, n0, eta, h2: the procedure's parameters and constants.
    """

    best: int
    candidate: Mapping[str, Any] | None
    means: tuple[float, ...]
    runs: tuple[int, ...]
    history: pd.DataFrame = field(repr=False)
    complete: bool
    message: str
    delta: float
    alpha: float
    n0: int
    eta: float
    h2: float


def kn_select(
    sample: Callable[[int, int], float],
    k: int,
    *,
    delta: float,
    alpha: float = 0.05,
    n0: int = 10,
    minimize: bool = False,
    seeds: Iterable[int] | None = None,
    max_runs: int = 1000,
    sample_many: Callable[[list[tuple[int, int]]], list[float]] | None = None,
) -> Selection:
    """Kim and Nelson's fully sequential indifference-zone procedure (KN) on any sampler.

    S.-H. Kim and B. L. Nelson, "A fully sequential procedure for indifference-zone selection in
    simulation", ACM Transactions on Modeling and Computer Simulation 11(3):251-273, 2001. With
    normal outputs and probability at least ``1 - alpha`` it selects the best of ``k`` systems
    whenever the best is at least ``delta`` better than the second; with common random numbers
    allowed (all systems are sampled with the same seed at each stage, and the variances used
    are those of the pairwise differences). Systems clearly worse are eliminated early, so the
    runs go to close contenders.

    Setup: ``eta = ((2 alpha / (k - 1))^(-2 / (n0 - 1)) - 1) / 2`` and ``h^2 = 2 eta (n0 - 1)``.
    Initialisation: ``n0`` observations of every system; ``S^2_il`` the sample variance of
    ``X_i - X_l``. Screening at stage r (r observations of each survivor): system i survives if
    ``mean_i(r) >= mean_l(r) - W_il(r)`` for every other survivor l, with ``W_il(r) =
    max(0, delta / (2 r) * (h^2 S^2_il / delta^2 - r))`` (the triangular continuation region of
    the partial sums). Stop when one system is left; otherwise one more observation of each
    survivor, r + 1, screen again.

    Args:
        sample: ``sample(i, seed)`` -> system i's output with that seed (i in [0, k)).
        k: the number of systems, >= 2.
        delta: the indifference zone, > 0, in the metric's units.
        alpha: 1 - the probability of correct selection, in (0, 1 - 1/k).
        n0: first-stage observations per system, >= 2.
        minimize: select the smallest mean instead of the largest.
        seeds: the seeds of the stages, in order (default 0, 1, 2, ...).
        max_runs: the most observations of one system, >= n0; reaching it stops the procedure
            (``complete`` False) with the best sample mean among the survivors.
        sample_many: optional: evaluates a list of ``(i, seed)`` at once (e.g. in parallel);
            used instead of ``sample`` when given.
    """
    kk = _integer("k", k, 2)
    dlt = _positive("delta", delta)
    a = _open_unit("alpha", alpha)
    if a >= 1 - 1 / kk:
        raise ValueError(f"alpha must be in (0, {1 - 1 / kk:.4g}) for k = {kk}, got {alpha!r}")
    first = _integer("n0", n0, 2)
    cap = _integer("max_runs", max_runs, first)
    if not isinstance(minimize, bool):
        raise TypeError(f"minimize must be a bool, got {type(minimize).__name__} {minimize!r}")
    if not callable(sample):
        raise TypeError(f"sample must be a function (i, seed) -> float, got {sample!r}")
    many = sample_many or (lambda jobs: [sample(i, s) for i, s in jobs])
    seed_it = _seed_iter(seeds)
    sign = -1.0 if minimize else 1.0

    # Setup (Kim & Nelson 2001, procedure KN).
    eta = 0.5 * ((2 * a / (kk - 1)) ** (-2 / (first - 1)) - 1)
    h2 = 2 * eta * (first - 1)
    # obs[i] holds system i's outputs, one per stage, all systems with the same stage seed.
    obs: list[list[float]] = [[] for _ in range(kk)]

    def observe(systems: list[int], count: int) -> None:
        for _ in range(count):
            seed = next(seed_it, None)
            if seed is None:
                raise ValueError("seeds ran out before the procedure stopped: give more seeds")
            got = many([(i, seed) for i in systems])
            for i, v in zip(systems, got, strict=True):
                fv = float(v)
                if not math.isfinite(fv):
                    raise ValueError(f"sample({i}, {seed}) is {fv!r}: outputs must be finite")
                obs[i].append(sign * fv)

    # Initialisation: n0 observations of each system and the variances of the differences.
    observe(list(range(kk)), first)
    x0 = np.asarray(obs, dtype=float)  # k x n0
    diffs = x0[:, None, :] - x0[None, :, :]
    s2 = diffs.var(axis=2, ddof=1)  # S^2_il
    alive = list(range(kk))
    sums = x0.sum(axis=1)
    r = first
    history: list[dict[str, float]] = []
    complete = True
    while True:
        # Screening against the survivors of the previous stage.
        means = sums / r
        old = alive
        alive = []
        for i in old:
            beaten_by = None
            for j in old:
                if j == i:
                    continue
                w = max(0.0, dlt / (2 * r) * (h2 * s2[i, j] / (dlt * dlt) - r))
                if means[i] < means[j] - w:
                    beaten_by = j
                    break
            if beaten_by is None:
                alive.append(i)
            else:
                history.append({"stage": r, "eliminated": i, "by": beaten_by,
                                "mean": sign * means[i], "by_mean": sign * means[beaten_by]})
        if len(alive) == 1:
            break
        if not alive:  # exact ties eliminating each other cannot happen (>= with W >= 0)
            raise AssertionError("KN screening eliminated every system")
        # Past every N_il = floor(h^2 S^2_il / delta^2) the region is closed (W = 0): only
        # exact ties survive together; take the first of them.
        if r > max(h2 * s2[i, j] / (dlt * dlt) for i in alive for j in alive if i != j):
            alive = [max(alive, key=lambda i: (means[i], -i))]
            break
        if r >= cap:
            complete = False
            break
        observe(alive, 1)
        for i in alive:
            sums[i] += obs[i][-1]
        r += 1
    runs = tuple(len(o) for o in obs)
    final = tuple(sign * float(np.mean(o)) for o in obs)
    best = max(alive, key=lambda i: (sign * final[i], -i))
    total = sum(runs)
    if complete:
        msg = (f"candidate {best} selected after {total} runs (P(correct selection) >= "
               f"{100 * (1 - a):g}% if it is at least {dlt:g} better than the others)")
    else:
        msg = (f"max_runs ({cap}) reached with {len(alive)} candidates still in contention "
               f"({', '.join(map(str, alive))}): candidate {best} has the best sample mean, "
               "without the guarantee; they may be within delta of each other")
    hist = pd.DataFrame(history, columns=["stage", "eliminated", "by", "mean", "by_mean"])
    return Selection(best, None, final, runs, hist, complete, msg, dlt, a, first, eta, h2)


def select_best(
    scenario: Scenario,
    candidates: Sequence[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]],
    metric: Metric,
    *,
    delta: float,
    alpha: float = 0.05,
    n0: int = 10,
    minimize: bool = False,
    seeds: Iterable[int] | None = None,
    max_runs: int = 200,
    max_workers: int | None = None,
    progress: bool = True,
) -> Selection:
    """Picks the best of several settings of ``scenario`` with probability at least ``1 -
    alpha`` of being right when the best is at least ``delta`` better than the rest (the
    Kim-Nelson procedure, :func:`kn_select`), with common random numbers: at each stage every
    surviving setting runs with the same seed.

    Args:
        scenario: the base scenario.
        candidates: the settings, each a mapping of dotted paths to values (as
            :meth:`Scenario.replace` takes them), in a list or by name in a dict; at least 2.
        metric: a column of ``Result.summary`` or a function ``Result -> float``.
        delta: the indifference zone, > 0, in the metric's units: differences smaller than it
            do not matter.
        alpha: 1 - the probability of correct selection, in (0, 1 - 1/k).
        n0: first-stage runs per setting, >= 2 (10 is the usual choice).
        minimize: select the smallest metric (e.g. a latency) instead of the largest.
        seeds: the stages' seeds, in order (default 0, 1, 2, ...).
        max_runs: the most runs of one setting, >= n0.
        max_workers: threads for the runs of a stage (default: one per core).
        progress: show a tqdm progress bar of the runs (out of the most the procedure can
            spend, ``len(candidates) * max_runs``; eliminations end it early).

    Returns:
        A :class:`Selection`; ``candidate`` is the chosen setting's changes and ``history``
        says which setting was eliminated at which stage (by index into the candidates; with a
        dict, in its order).
    """
    _check_metric(metric)
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {type(progress).__name__} {progress!r}")
    if isinstance(candidates, Mapping):
        items = list(candidates.values())
    elif isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence):
        raise TypeError(
            f"candidates must be a list of mappings of dotted paths to values, got "
            f"{type(candidates).__name__}"
        )
    else:
        items = list(candidates)
    if len(items) < 2:
        raise ValueError(f"candidates must have at least 2 settings, got {len(items)}")
    base = _prepare(scenario, metric)
    scenarios = []
    for i, c in enumerate(items):
        if not isinstance(c, Mapping):
            raise TypeError(
                f"candidates[{i}] must be a mapping of dotted paths to values, got {c!r}"
            )
        try:
            scenarios.append(base.replace(c))
        except ValueError as e:
            raise ValueError(f"candidates[{i}]: {e}") from None

    # kn_select validates max_runs; until then it only sizes the bar.
    total = len(items) * max_runs if type(max_runs) is int and max_runs > 0 else None
    bar = _progress("select_best", total, progress)

    def many(jobs: list[tuple[int, int]]) -> list[float]:
        return _pool_map(lambda job: _evaluate(scenarios[job[0]], metric, job[1]), jobs,
                         max_workers, bar)

    try:
        sel = kn_select(
            lambda i, s: _evaluate(scenarios[i], metric, s), len(items), delta=delta,
            alpha=alpha, n0=n0, minimize=minimize, seeds=seeds, max_runs=max_runs,
            sample_many=many,
        )
    finally:
        if bar is not None:
            bar.close()
    return dataclasses.replace(sel, candidate=items[sel.best])


# ------------------------------------------------------------------------------------------------
# Metastability verdict

Verdict: TypeAlias = Literal["recovered", "recovering", "metastable"]


@dataclass(frozen=True)
class Metastability:
    """The verdict of :func:`metastability`.

    Attributes:
        verdict: ``"recovered"``, ``"recovering"`` or ``"metastable"``.
        time_to_recover: seconds from the trigger's end until goodput was back to ``threshold``
            x the baseline for good (NaN unless recovered).
        baseline: goodput before the trigger (completed orders per second).
        final: goodput over the last ``window`` seconds observed.
        previous: goodput over the ``window`` seconds before those.
        message: a plain sentence.
        goodput: the goodput per sample (``t``, ``goodput``) over the observed span.
    """

    verdict: Verdict
    time_to_recover: float
    baseline: float
    final: float
    previous: float
    message: str
    goodput: pd.DataFrame = field(repr=False)


def metastability(
    result: Result | pd.DataFrame,
    trigger_end: float,
    *,
    trigger_start: float | None = None,
    baseline: float | None = None,
    until: float | None = None,
    threshold: float = 0.9,
    window: float = 5.0,
    column: str = "completed",
) -> Metastability:
    """Classifies a run with a trigger (a brownout, an outage, a load spike) by what its goodput
    did after the trigger was gone.

    Huang et al. ("Metastable Failures in the Wild", OSDI 2022) describe a system as *stable*,
    *vulnerable* (fine, but a trigger can tip it over) or in a *metastable failure state*: a
    trigger pushed it into a bad state that a sustaining effect (retries, timed-out work still
    being served, cache misses...) keeps going after the trigger is removed, so that goodput
    stays low until someone intervenes. Over one observed run:

    * ``recovered``: goodput came back to at least ``threshold`` x the pre-trigger baseline and
      stayed there (every later ``window``-second average) until the end of the observation;
      ``time_to_recover`` says how long after the trigger's end. The trigger left the system
      stable or vulnerable, not failed.
    * ``recovering``: goodput is still below ``threshold`` x the baseline at the end, but its
      last ``window`` seconds are clearly better than the ``window`` seconds before (by more
      than 5% of the baseline and more than twice the standard error of the difference, from
      the samples' spread): degraded but improving on its own; observe longer to decide.
    * ``metastable``: below the threshold at the end and not improving, with the trigger gone
      for the whole span: the sustaining effect is holding the system down.

    The verdict is about the span observed: a run that stayed down for a while can still escape
    by chance later (in the lab's notebook 05 setting, at 500 orders/s with 2 attempts, one seed
    sat at zero goodput for 15 s after the trigger and then recovered), so observe well past
    the trigger, or use :func:`replicate` on a "recovered" indicator over seeds.

    Args:
        result: a run (its time series) or a time-series DataFrame with ``t`` (the end of each
            sample interval) and ``column``.
        trigger_end: when the trigger stopped (virtual seconds).
        trigger_start: when it began; the baseline is the mean goodput of the samples before
            it. Give this or ``baseline``.
        baseline: the goodput to return to, in orders per second, > 0 (instead of measuring it
            before ``trigger_start``).
        until: the end of the observation (default: the scenario's duration for a Result, when
            arrivals stop and the drain starts; else the last sample).
        threshold: the fraction of the baseline that counts as recovered, in (0, 1].
        window: seconds averaged for the sustained-recovery and trend checks, > 0 (at least one
            sample interval).
        column: the time-series column counting useful completions per interval.
    """
    if isinstance(result, Result):
        ts = result.timeseries
        horizon = float(result.scenario.duration) if until is None else None
    elif isinstance(result, pd.DataFrame):
        ts = result
        horizon = None
    else:
        raise TypeError(f"result must be a Result or a DataFrame, got {type(result).__name__}")
    for c in ("t", column):
        if c not in ts.columns:
            raise ValueError(f"column must be a time-series column, got {c!r} (no such column)")
    end = _real("trigger_end", trigger_end)
    if not (math.isfinite(end) and end >= 0):
        raise ValueError(f"trigger_end must be a finite number >= 0, got {trigger_end!r}")
    thr = _real("threshold", threshold)
    if not 0 < thr <= 1:
        raise ValueError(f"threshold must be a number in (0, 1], got {threshold!r}")
    win = _positive("window", window)
    t = ts["t"].to_numpy(dtype=float)
    if len(t) < 2:
        raise ValueError(f"result must have at least 2 time-series samples, got {len(t)}")
    dt = float(np.median(np.diff(t)))
    rate = ts[column].to_numpy(dtype=float) / dt
    if until is not None:
        horizon = _positive("until", until)
    if horizon is None:
        horizon = float(t[-1])
    if not horizon > end:
        raise ValueError(f"until must be after trigger_end ({end:g}), got {horizon!r}")
    if win < dt:
        raise ValueError(f"window must be at least one sample interval ({dt:g} s), got {window!r}")
    if baseline is not None:
        base = _positive("baseline", baseline)
    else:
        if trigger_start is None:
            raise ValueError("give trigger_start (to measure the baseline before it) or baseline")
        start = _real("trigger_start", trigger_start)
        if not 0 <= start <= end:
            raise ValueError(f"trigger_start must be in [0, {end:g}], got {trigger_start!r}")
        pre = rate[t <= start + 1e-9]
        if len(pre) == 0:
            raise ValueError(
                f"trigger_start must leave at least one sample before it (the first ends at "
                f"{t[0]:g}), got {trigger_start!r}"
            )
        base = float(pre.mean())
        if not base > 0:
            raise ValueError(f"the goodput before trigger_start ({start:g}) is 0: give baseline")
    after = (t > end + 1e-9) & (t <= horizon + 1e-9)
    ta, ra = t[after], rate[after]
    per = max(1, round(win / dt))
    if len(ra) < 2 * per:
        raise ValueError(
            f"until must leave at least 2 windows ({2 * win:g} s) after trigger_end ({end:g}), "
            f"got {horizon:g}"
        )
    # Rolling means over the window; recovered from the first sample after which every window
    # average stays at or above the threshold.
    roll = pd.Series(ra).rolling(per).mean().to_numpy()
    ok = roll[per - 1 :] >= thr * base
    final = float(ra[-per:].mean())
    previous = float(ra[-2 * per : -per].mean())
    good = pd.DataFrame({"t": ta, "goodput": ra})
    if ok[-1]:
        bad = np.flatnonzero(~ok)
        first_ok = 0 if len(bad) == 0 else int(bad[-1]) + 1
        # The window ending at sample first_ok + per - 1 starts at sample first_ok.
        recovered_at = float(ta[first_ok] - dt)
        ttr = max(0.0, recovered_at - end)
        return Metastability(
            "recovered", ttr, base, final, previous,
            f"recovered: goodput back to >= {thr:.0%} of the baseline ({base:.4g}/s) "
            f"{ttr:g} s after the trigger ended, and stayed there until {horizon:g} s",
            good,
        )
    spread = 0.0
    if per > 1:
        spread = 2 * math.sqrt(
            (float(ra[-per:].var(ddof=1)) + float(ra[-2 * per : -per].var(ddof=1))) / per
        )
    if final - previous > max(0.05 * base, spread):
        return Metastability(
            "recovering", math.nan, base, final, previous,
            f"recovering: goodput {final:.4g}/s at the end ({final / base:.0%} of the baseline), "
            f"up from {previous:.4g}/s over the {win:g} s before; observe longer to decide",
            good,
        )
    return Metastability(
        "metastable", math.nan, base, final, previous,
        f"metastable: goodput {final:.4g}/s ({final / base:.0%} of the baseline {base:.4g}/s) "
        f"{horizon - end:g} s after the trigger ended, and not improving",
        good,
    )


__all__ = [
    "BatchMeans",
    "Comparison",
    "Metastability",
    "Metric",
    "Replication",
    "Selection",
    "Warmup",
    "batch_means",
    "compare",
    "kn_select",
    "metastability",
    "replicate",
    "select_best",
    "steady_values",
    "warmup",
    "warmup_mser",
]
