"""Parameter sweeps: run a scenario over a grid (or random samples) of parameters and seeds.

``sweep(scenario, grid, seeds)`` simulates every (point, seed) pair and returns a tidy
DataFrame, one row per run::

    df = rl.sweep(sc, {"payment.breaker.consecutive_failures": range(1, 21),
                       "payment.faults.failure_rate": [0.1, 0.3, 0.5]},
                  seeds=range(5))
    rl.summarize(df, by=["payment.breaker.consecutive_failures"], metric="success_rate")

**Grid search** (``n=None``): ``grid`` maps dotted paths (as :meth:`Scenario.replace
<reliability_lab.scenario.Scenario.replace>` takes them) to sequences of values; the points are
their cartesian product, the first path varying slowest.

**Random search** (``n`` given): ``n`` points are drawn; each path's value is a :class:`Range`
(uniform, log-uniform, or integer), a ``(low, high)`` tuple (a uniform :class:`Range` of
floats), or a list of values (one picked uniformly). The draws come from ``random_state``, so the
same call gives the same points.

**Parallelism.** The native engine releases the GIL, so by default the runs go to a
``ThreadPoolExecutor`` with one thread per core. ``executor=`` takes any
:class:`concurrent.futures.Executor` instead (a ``ProcessPoolExecutor``...), or a Dask cluster
to spread a sweep over many machines: a ``distributed.Client``, ``"dask"`` (the current
client) or the scheduler's address; the DataFrame is the same as a local run's::

    df = rl.sweep(sc, grid, seeds=range(20), executor="tcp://scheduler:8786")

**Cache.** ``cache="study.sqlite"`` keeps every run's numbers on disk by (scenario hash, seed)
(:mod:`reliability_lab.cache`): a sweep that was interrupted, or is extended with more seeds or
points, runs only the runs the file does not hold.

Scenarios pickle (through their dict form), so any executor can ship them. Runs are grouped in
chunks (``chunksize``) to amortise the per-task cost of remote executors.

**Determinism.** Each run's randomness comes from its scenario's ``seed`` (set to each value of
``seeds``); the rows are in (point, seed) order whatever order the runs finish in, so the same
call gives the same DataFrame.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import math
import numbers
import os
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from reliability_lab import _core
from reliability_lab.cache import RunCache, scenario_key
from reliability_lab.metrics import LATENCY_BOUNDS
from reliability_lab.scenario import Scenario
from reliability_lab.scenario.model import _encode as _encode_value
from reliability_lab.sim import DEFAULT_MAX_EVENTS, Result, _summary_values, simulate

#: What ``metrics=`` accepts: None (every summary column), a list of summary column names, or a
#: function of the :class:`~reliability_lab.sim.Result` returning named numbers.
Metrics: TypeAlias = Sequence[str] | Callable[[Result], Mapping[str, float]] | None


@dataclass(frozen=True)
class Range:
    """A range to sample from in a random search.

    Attributes:
        low, high: finite bounds, ``low < high``.
        log: sample log-uniformly (``low`` must then be > 0).
        integer: sample integers in ``[low, high]`` (both bounds included); with ``log``, the
            integers are drawn log-uniformly.
    """

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if not self.low < self.high:
            raise ValueError(f"high must be greater than low ({self.low:g}), got {self.high:g}")
        if self.log and not self.low > 0:
            raise ValueError(f"low must be > 0 when log is True, got {self.low:g}")
        if self.integer and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError(
                f"low and high must be whole numbers when integer is True, "
                f"got {self.low:g} and {self.high:g}"
            )

    def sample(self, rng: random.Random) -> float | int:
        """One draw from this range."""
        if self.integer:
            if self.log:
                x = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
                return int(min(math.floor(x), self.high))
            return rng.randint(int(self.low), int(self.high))
        if self.log:
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.uniform(self.low, self.high)


# ------------------------------------------------------------------------------------------------
# The points


def _grid_points(grid: Mapping[str, Any]) -> list[dict[str, Any]]:
    axes = []
    for path, values in grid.items():
        if isinstance(values, Range):
            raise ValueError(f"grid[{path!r}] is a Range: give n=... for a random search")
        if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
            raise ValueError(
                f"grid[{path!r}] must be a sequence of values, got {values!r} "
                f"(a single value: [{values!r}])"
            )
        vals = [_native(v) for v in values]
        if not vals:
            raise ValueError(f"grid[{path!r}] must have at least one value")
        axes.append(vals)
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*axes)]


def _native(value: Any) -> Any:
    """NumPy scalars (from np.arange, np.linspace, a pandas column) as Python numbers: the
    scenario's integer fields take Python ints only."""
    return value.item() if isinstance(value, np.generic) else value


def _chooser(choices: list[Any]) -> Callable[[random.Random], Any]:
    return lambda rng: choices[rng.randrange(len(choices))]


def _random_points(grid: Mapping[str, Any], n: int, random_state: int) -> list[dict[str, Any]]:
    samplers: list[Callable[[random.Random], Any]] = []
    for path, spec in grid.items():
        if isinstance(spec, tuple) and len(spec) == 2 and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in spec
        ):
            try:
                spec = Range(float(spec[0]), float(spec[1]))
            except ValueError as e:
                raise ValueError(f"grid[{path!r}]: {e}") from None
        if isinstance(spec, Range):
            samplers.append(spec.sample)
        elif isinstance(spec, (list, range, np.ndarray, pd.Series)) and len(spec) > 0:
            samplers.append(_chooser([_native(v) for v in spec]))
        else:
            raise ValueError(
                f"grid[{path!r}] must be a Range, a (low, high) tuple or a non-empty list of "
                f"values in a random search, got {spec!r}"
            )
    rng = random.Random(random_state)
    return [
        {path: s(rng) for path, s in zip(grid, samplers, strict=True)} for _ in range(n)
    ]


# ------------------------------------------------------------------------------------------------
# The runs (module level: executors in other processes import them by name)


def _run_chunk(
    scenario: Scenario,
    tasks: list[tuple[int, int]],
    points: Mapping[int, dict[str, Any]],
    metrics: Metrics,
) -> list[tuple[int, dict[str, float]]]:
    """Runs ``tasks`` ((point number, seed) pairs); ``points`` holds the chunk's points by
    number. Returns (task number in the chunk, metrics) pairs."""
    out = []
    cache: dict[int, Scenario] = {}
    for k, (p, seed) in enumerate(tasks):
        base = cache.get(p)
        if base is None:
            base = cache[p] = _at_point(scenario, p, points[p])
        result = simulate(base.replace(seed=seed))
        out.append((k, _metrics_of(result, metrics)))
    return out


def _at_point(scenario: Scenario, p: int, point: dict[str, Any]) -> Scenario:
    """The scenario at grid point ``p``; a ValueError names the point and the path."""
    if not point:
        return scenario
    try:
        return scenario.replace(point)
    except ValueError as e:
        raise ValueError(f"grid point {p} {point!r}: {e}") from None


def _run_summary_chunk(
    scenario: Scenario,
    tasks: list[tuple[int, int]],
    points: Mapping[int, dict[str, Any]],
    names: list[str] | None,
    record_events: bool,
    encoder: _PointEncoder | None = None,
) -> list[tuple[int, dict[str, float]]]:
    """The summary-only path: each run is the native engine on the point's scenario (as a
    dict) with the task's seed, without per-order records or time series, and its summary
    numbers are computed without pandas (the same numbers as ``simulate(...).summary``;
    tests/test_sweep.py checks that they agree). Each point is built where it is first run,
    so that this Python work (GIL held) interleaves with the other threads' native runs."""
    out = []
    bounds = list(LATENCY_BOUNDS)
    dicts: dict[int, dict[str, Any]] = {}
    if encoder is None:
        encoder = _PointEncoder(scenario)
    for k, (p, seed) in enumerate(tasks):
        d = dicts.get(p)
        if d is None:
            d = dicts[p] = encoder.to_dict(_at_point(scenario, p, points[p]))
        d["seed"] = seed
        raw = _core.simulate(
            d,
            sample_every=0.0,
            record_orders=False,
            record_events=record_events,
            until=-1.0,
            max_events=DEFAULT_MAX_EVENTS,
            latency_bounds=bounds,
        )
        values = _summary_values(d, raw)
        if names is not None:
            values = {name: values.get(name, math.nan) for name in names}
        out.append((k, values))
    return out


class _PointEncoder:
    """``Scenario.to_dict()`` of the points of one base scenario, re-encoding only the objects
    a point replaced. ``Scenario.replace`` keeps every unchanged sub-object (the same Python
    object), so their encodings are taken from the base's dict; this halves the GIL-held
    Python work per point of a summary sweep (tests/test_sweep_scale.py checks the dicts
    equal ``to_dict()``). Top-level dicts are fresh (the caller sets ``seed``); nested ones
    may be shared with the base and must not be mutated."""

    def __init__(self, base: Scenario) -> None:
        self.base = base
        self.base_dict = base.to_dict()

    def to_dict(self, sc: Scenario) -> dict[str, Any]:
        d = self._encode(sc, self.base, self.base_dict)
        return dict(d)

    def _encode(self, value: Any, base: Any, base_enc: Any) -> Any:
        if value is base:
            return base_enc
        if (
            type(value) is type(base)
            and isinstance(base_enc, dict)
            and dataclasses.is_dataclass(value)
            and not isinstance(value, type)
        ):
            out = dict(base_enc)
            for f in dataclasses.fields(value):
                v, bv = getattr(value, f.name), getattr(base, f.name)
                if v is bv:
                    continue
                if f.name not in base_enc:  # encoded under other keys: whole
                    return _encode_value(value)
                out[f.name] = self._encode(v, bv, base_enc[f.name])
            return out
        if (
            isinstance(value, (tuple, list))
            and isinstance(base, (tuple, list))
            and isinstance(base_enc, list)
            and len(value) == len(base) == len(base_enc)
        ):
            return [self._encode(v, b, e) for v, b, e in zip(value, base, base_enc, strict=True)]
        return _encode_value(value)


def _metrics_of(result: Result, metrics: Metrics) -> dict[str, float]:
    s = result.summary
    if metrics is None:
        return {str(k): float(v) for k, v in s.items()}
    if callable(metrics):
        values = metrics(result)
        if not isinstance(values, Mapping):
            raise TypeError(f"metrics(result) must return a mapping, got {type(values).__name__}")
        return {str(k): v for k, v in values.items()}
    return {name: float(s[name]) if name in s.index else math.nan for name in metrics}


def _check_int(name: str, value: object, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def sweep(
    scenario: Scenario,
    grid: Mapping[str, Any],
    seeds: Iterable[int] = range(1),
    *,
    n: int | None = None,
    executor: Executor | str | Any | None = None,
    max_workers: int | None = None,
    progress: bool = True,
    metrics: Metrics = None,
    chunksize: int | None = None,
    random_state: int = 0,
    cache: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Simulates ``scenario`` at every point of ``grid`` with every seed; one row per run.

    Args:
        scenario: the base scenario; each point replaces some of its dotted paths.
        grid: dotted path -> values. Without ``n``: sequences of values, swept as a cartesian
            product (the first path varies slowest). With ``n``: a :class:`Range`, a
            ``(low, high)`` tuple or a list of choices per path. An empty grid runs the scenario
            itself.
        seeds: the scenario seeds to run every point with (integers in [0, 2**64 - 1]).
        n: the number of random points (random search), >= 1; None for a grid.
        executor: where to run; default: a ThreadPoolExecutor of ``max_workers`` threads,
            closed on return. A given :class:`concurrent.futures.Executor` is used as is and left
            open. Dask (``pip install "dask[distributed]"``): a
            ``distributed.Client`` (its executor; the client is left open), ``"dask"`` (the
            current default client), or a scheduler address such as ``"tcp://host:8786"`` (a
            client is connected for the call and closed on return).
        max_workers: threads of the default pool, >= 1 (default: ``os.cpu_count()``); 1 runs
            everything in the calling thread.
        progress: show a tqdm progress bar.
        metrics: which numbers to keep per run: None (every column of ``Result.summary``), a
            list of summary column names, or a function ``Result -> {name: number}`` (it must
            pickle for executors in other processes: a module-level function). Unless it is a
            function, runs switch off per-order records and time series
            (``record_orders=False``, ``sample_every=0``), which the summary does not use, and
            no :class:`~reliability_lab.sim.Result` is built: the summary's numbers come
            straight from the engine's totals (and breaker transitions are recorded only when
            a ``time_to_detect``/``time_to_recover`` column is asked for).
        chunksize: runs per executor task, >= 1 (default: chunks of a quarter of the runs
            left per worker, at most 16 runs in the default thread pool and 64 in a given
            executor, down to single runs at the end).
        random_state: seeds the draws of a random search.
        cache: a file (SQLite, created if missing) holding every run's numbers by (scenario
            hash, seed), see :mod:`reliability_lab.cache`: runs found there are not run again,
            and each finished chunk is written at once, so an interrupted or extended sweep
            (more seeds, more points) runs only what is missing. With a metrics function, the
            key holds the function's module and name, not its code: use a new file (or name)
            when the function changes. Summary runs are stored whole, so a later sweep asking
            for other summary columns reuses them.

    Returns:
        A DataFrame with columns ``point`` (the point's number), one column per grid path (its
        value), ``seed``, then the metrics; rows in (point, seed) order. The same with or
        without a cache and whatever the executor.

    Raises:
        ValueError: a bad argument (before anything runs: unknown paths are found with the
            first point), or a point that is not a valid scenario (named with its path, when
            its runs come up; the sweep then stops).
    """
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario must be a Scenario, got {type(scenario).__name__}")
    if not isinstance(grid, Mapping):
        raise ValueError(f"grid must be a mapping of dotted paths to values, got {grid!r}")
    if "seed" in grid:
        raise ValueError("grid must not contain 'seed': pass seeds=... instead")
    seed_list = [_check_int("seeds[]", s, 0) for s in seeds]
    if not seed_list:
        raise ValueError("seeds must have at least one seed")
    if n is None:
        points = _grid_points(grid)
    else:
        points = _random_points(grid, _check_int("n", n, 1), random_state)
    if max_workers is not None:
        max_workers = _check_int("max_workers", max_workers, 1)
    if chunksize is not None:
        chunksize = _check_int("chunksize", chunksize, 1)
    if metrics is not None and not callable(metrics):
        if isinstance(metrics, str) or not all(isinstance(m, str) for m in metrics):
            raise ValueError(f"metrics must be a list of summary column names, got {metrics!r}")
        metrics = list(metrics)
    if cache is not None and not isinstance(cache, (str, os.PathLike)):
        raise TypeError(f"cache must be a file path or None, got {type(cache).__name__}")
    summary_only = not callable(metrics)
    if summary_only:
        scenario = scenario.replace({"record_orders": False, "sample_every": 0.0})
    # Fail fast on what every run shares: the paths (checked with the first point) and the
    # seeds. Each point is then validated where it runs (building 1,000 scenarios up front
    # would be a serial prefix no thread can share); the first invalid one stops the sweep.
    if points:
        _at_point(scenario, 0, points[0])
    for seed in dict.fromkeys(seed_list):
        try:
            scenario.replace(seed=seed)
        except ValueError as e:
            raise ValueError(f"seeds[]: {e}") from None
    names = None if metrics is None or callable(metrics) else list(metrics)
    # Breaker transitions are only needed for the phases' time to detect / recover.
    record_events = names is None or any(".time_to_" in name for name in names)

    tasks = [(p, s) for p in range(len(points)) for s in seed_list]
    rows: list[dict[str, float] | None] = [None] * len(tasks)
    store: RunCache | None = None
    keys: list[str] = []
    if cache is not None:
        spec = _metrics_spec(metrics, record_events)
        store = RunCache(cache)
    try:
        if store is not None:
            # Hashing needs every point's scenario here (a serial prefix the cache pays for).
            keys = [
                scenario_key(_at_point(scenario, p, pt).to_dict(), spec)
                for p, pt in enumerate(points)
            ]
            held = store.get_many((keys[p], s) for p, s in tasks)
            for i, (p, s) in enumerate(tasks):
                got = held.get((keys[p], s))
                if got is not None:
                    rows[i] = _select(got, names)
        todo = [i for i, r in enumerate(rows) if r is None]
        _run_tasks(
            scenario, points, tasks, todo, rows, metrics, names, record_events, summary_only,
            executor, max_workers, chunksize, progress, store, keys,
        )
    finally:
        if store is not None:
            store.close()

    records = []
    for (p, seed), values in zip(tasks, rows, strict=True):
        assert values is not None
        records.append({"point": p, **points[p], "seed": seed, **values})
    df: pd.DataFrame = pd.DataFrame.from_records(records)
    return df


def _metrics_spec(metrics: Metrics, record_events: bool) -> str:
    """What a cached run's numbers are, as part of its key."""
    if callable(metrics):
        module = getattr(metrics, "__module__", None)
        qualname = getattr(metrics, "__qualname__", None)
        if not module or not qualname or "<" in qualname:
            raise ValueError(
                "cache with a metrics function needs a module-level function (its module and "
                f"name are the cache key), got {metrics!r}"
            )
        return f"function:{module}:{qualname}"
    return f"summary:events={int(record_events)}"


def _select(values: dict[str, float], names: list[str] | None) -> dict[str, float]:
    if names is None:
        return values
    return {name: values.get(name, math.nan) for name in names}


def _resolve_executor(executor: Any) -> tuple[Executor | None, Any, int | None]:
    """(executor, a Dask client to close on return or None, its worker threads or None)."""
    if executor is None or isinstance(executor, Executor):
        return executor, None, None
    if isinstance(executor, str):
        try:
            distributed = importlib.import_module("distributed")
        except ImportError:
            raise ValueError(
                f"executor={executor!r} needs dask.distributed (pip install 'dask[distributed]')"
            ) from None
        if executor == "dask":
            try:
                client = distributed.default_client()
            except ValueError:
                raise ValueError(
                    "executor='dask' uses the current dask.distributed client, and there is "
                    "none: create a distributed.Client first, or pass a scheduler address"
                ) from None
            return client.get_executor(), None, _dask_threads(client)
        try:
            client = distributed.Client(executor, set_as_default=False, timeout=30)
        except (OSError, ValueError, TypeError) as e:
            raise ValueError(
                f"executor={executor!r}: cannot connect to a Dask scheduler there ({e})"
            ) from None
        return client.get_executor(), client, _dask_threads(client)
    if callable(getattr(executor, "get_executor", None)):  # a distributed.Client
        return executor.get_executor(), None, _dask_threads(executor)
    raise TypeError(
        "executor must be a concurrent.futures.Executor, a distributed.Client, 'dask' or a "
        f"Dask scheduler address, got {type(executor).__name__}"
    )


def _dask_threads(client: Any) -> int | None:
    try:
        return int(sum(client.nthreads().values())) or None
    except Exception:  # the count only sizes chunks
        return None


def _run_tasks(
    scenario: Scenario,
    points: list[dict[str, Any]],
    tasks: list[tuple[int, int]],
    todo: list[int],
    rows: list[dict[str, float] | None],
    metrics: Metrics,
    names: list[str] | None,
    record_events: bool,
    summary_only: bool,
    executor: Any,
    max_workers: int | None,
    chunksize: int | None,
    progress: bool,
    store: RunCache | None,
    keys: list[str],
) -> None:
    """Runs the tasks numbered ``todo`` and fills their ``rows`` (and the cache)."""
    # With a cache, summary runs come back whole (stored so), then the names are picked here.
    worker_names = None if store is not None else names

    def submit_args(chunk: list[int]) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        pairs = [tasks[i] for i in chunk]
        sub = {p: points[p] for p, _ in pairs}
        if summary_only:
            return _run_summary_chunk, (
                scenario, pairs, sub, worker_names, record_events, shared_encoder,
            )
        return _run_chunk, (scenario, pairs, sub, metrics)

    def collect(chunk: list[int], results: list[tuple[int, dict[str, float]]]) -> None:
        if store is not None:
            store.put_many([(keys[tasks[chunk[k]][0]], tasks[chunk[k]][1], v) for k, v in results])
        for k, values in results:
            rows[chunk[k]] = _select(values, names) if store is not None else values
        if bar is not None:
            bar.update(len(results))

    if not todo:
        bar = _progress_bar(len(tasks), len(tasks), progress)
        if bar is not None:
            bar.close()
        return
    ex, own_client, dask_threads = _resolve_executor(executor)
    # In-process threads share one encoder (read-only once built); other executors build
    # theirs per chunk rather than receive the base's dict with every task.
    shared_encoder = _PointEncoder(scenario) if summary_only and ex is None else None
    try:
        workers = max_workers or dask_threads or os.cpu_count() or 1
        if chunksize is None:
            # In-process threads: small chunks (a task costs microseconds). Other executors:
            # fewer, larger tasks. Either way the chunks shrink towards the end (guided
            # scheduling), so that the workers finish close together.
            chunks = _guided_chunks(todo, workers, 16 if ex is None else 64)
        else:
            chunks = [todo[i : i + chunksize] for i in range(0, len(todo), chunksize)]
        bar = _progress_bar(len(tasks), len(tasks) - len(todo), progress)
        try:
            if ex is None and workers == 1:
                for chunk in chunks:
                    fn, args = submit_args(chunk)
                    collect(chunk, fn(*args))
            else:
                own = ex is None
                pool = ex if ex is not None else ThreadPoolExecutor(workers)
                try:
                    futures: dict[Future[list[tuple[int, dict[str, float]]]], list[int]] = {}
                    for chunk in chunks:
                        fn, args = submit_args(chunk)
                        futures[pool.submit(fn, *args)] = chunk
                    try:
                        for fut in as_completed(futures):
                            collect(futures[fut], fut.result())
                    except BaseException:
                        for fut in futures:  # a failed run (or Ctrl-C) stops the sweep
                            fut.cancel()
                        raise
                finally:
                    if own:
                        pool.shutdown(wait=True, cancel_futures=True)
        finally:
            if bar is not None:
                bar.close()
    finally:
        if own_client is not None:
            own_client.close()


def _guided_chunks(todo: list[int], workers: int, cap: int) -> list[list[int]]:
    """``todo`` in chunks of at most ``cap`` runs, each about a quarter of what is left per
    worker (at least 1): the last chunks are single runs."""
    chunks = []
    i = 0
    while i < len(todo):
        size = max(1, min(cap, (len(todo) - i) // (4 * workers)))
        chunks.append(todo[i : i + size])
        i += size
    return chunks


def _progress_bar(total: int, done: int, enabled: bool) -> Any:
    if not enabled:
        return None
    tqdm = importlib.import_module("tqdm").tqdm  # untyped: no stubs needed
    return tqdm(total=total, initial=done, desc="sweep", unit="run", leave=False)


# ------------------------------------------------------------------------------------------------
# Reductions


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t distribution with ``df`` degrees of freedom
    (``scipy.stats.t.ppf``). ``p`` in (0, 1), ``df`` >= 1."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    df = _check_int("df", df, 1)
    # Imported here (scipy.stats takes a noticeable time to import; untyped: no stubs needed).
    stats = importlib.import_module("scipy.stats")
    return float(stats.t.ppf(p, df))


def summarize(
    df: pd.DataFrame, by: str | Sequence[str], metric: str, *, confidence: float = 0.95
) -> pd.DataFrame:
    """Mean and confidence interval of ``metric`` across the runs of each group (usually: the
    seeds of each point).

    Args:
        df: a sweep's DataFrame (any DataFrame with the columns named).
        by: the column(s) to group by, e.g. the grid's paths.
        metric: the column to reduce. NaN values (e.g. a time to detect where the breaker never
            opened) are left out; ``n`` counts the others.
        confidence: the interval's level, in (0, 1).

    Returns:
        One row per group, sorted by ``by``: the ``by`` columns, then ``mean``, ``std``, ``n``,
        ``ci_low``, ``ci_high`` (Student's t interval of the mean; NaN where ``n`` < 2).
    """
    by_cols = [by] if isinstance(by, str) else list(by)
    if not by_cols:
        raise ValueError("by must name at least one column")
    missing = [c for c in [*by_cols, metric] if c not in df.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the DataFrame")
    if not (isinstance(confidence, float) and 0 < confidence < 1):
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}")
    g = df.groupby(by_cols, sort=True, dropna=False)[metric]
    out = g.agg(["mean", "std", "count"]).rename(columns={"count": "n"}).reset_index()
    half = []
    for std, count in zip(out["std"], out["n"], strict=True):
        if count < 2 or not math.isfinite(std):
            half.append(math.nan)
        else:
            half.append(t_quantile(0.5 + confidence / 2, int(count) - 1) * std / math.sqrt(count))
    out["ci_low"] = out["mean"] - np.asarray(half)
    out["ci_high"] = out["mean"] + np.asarray(half)
    out["n"] = out["n"].astype(int)
    result: pd.DataFrame = out
    return result


def pareto_front(
    df: pd.DataFrame, x: str, y: str, maximize: bool | tuple[bool, bool] = (False, True)
) -> pd.DataFrame:
    """The rows of ``df`` not dominated in (``x``, ``y``): no other row is at least as good in
    both and strictly better in one.

    Args:
        df: e.g. a sweep's DataFrame, or :func:`summarize`-like means per point.
        x, y: the two metric columns.
        maximize: whether larger is better, for both (a bool) or per column (``(x, y)``); the
            default minimises ``x`` and maximises ``y`` (e.g. dependency load vs. success rate).

    Returns:
        The non-dominated rows (rows with NaN in x or y left out; of identical points, the
        first), sorted by ``x`` ascending.
    """
    for c in (x, y):
        if c not in df.columns:
            raise ValueError(f"column {c!r} is not in the DataFrame")
    mx, my = (maximize, maximize) if isinstance(maximize, bool) else maximize
    d = df[df[x].notna() & df[y].notna()]
    xs = d[x].to_numpy(dtype=float) * (-1 if mx else 1)
    ys = d[y].to_numpy(dtype=float) * (-1 if my else 1)
    order = np.lexsort((ys, xs))  # by x, then y, both "smaller is better"
    keep = []
    best = math.inf
    for i in order:
        if ys[i] < best:
            keep.append(i)
            best = ys[i]
    front: pd.DataFrame = d.iloc[keep].sort_values(x, kind="stable")
    return front


__all__ = ["Metrics", "Range", "pareto_front", "summarize", "sweep", "t_quantile"]
