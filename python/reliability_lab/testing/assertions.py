"""Assertions that explain: service-level objectives judged on confidence intervals, and recovery
after a trigger, with failure messages that can be pasted back to rerun the failing case.

::

    assert_slo(scenario, success_rate=">= 0.99", p99="<= 0.5", calls_per_order="<= 1.5")
    assert_recovers(scenario, within=10.0)

Given a :class:`~reliability_lab.scenario.Scenario`, :func:`assert_slo` runs ``replications``
seeds (the scenario's own seed and the next ones) and judges every figure on its Student t
interval at ``confidence`` (:func:`reliability_lab.stats.replicate`): an objective is met when the
*whole* interval satisfies it, so a pass says "met, with that confidence", and a figure whose
interval straddles the bound fails (more replications narrow it). Given a
:class:`~reliability_lab.sim.Result`, the one run's figure is judged as it is.

A failure raises :class:`SLOError` (an ``AssertionError``) whose message names the figure, its
mean and interval, each seed's value, the scenario's differences from the default ``Scenario()``
as dotted paths, and a line of Python that reruns the worst seed.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from reliability_lab._schema import encode
from reliability_lab.scenario import Scenario
from reliability_lab.sim import Result, simulate
from reliability_lab.stats import Metastability, metastability, replicate


class SLOError(AssertionError):
    """An objective was not met; the message says by how much, where, and how to rerun it."""


#: Short names for the summary columns most objectives are about.
ALIASES: dict[str, str] = {
    "p50": "latency_p50",
    "p95": "latency_p95",
    "p99": "latency_p99",
    "mean_latency": "latency_mean",
    "max_latency": "latency_max",
}

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_ANY_WIDTH = 1e300
_BOUND = re.compile(r"^\s*(<=|>=|<|>)\s*([-+0-9.eE]+|inf|-inf)\s*$")


@dataclass(frozen=True)
class Objective:
    """One objective: a summary column, a comparison and a bound (``"success_rate >= 0.99"``)."""

    name: str
    column: str
    op: str
    bound: float

    @classmethod
    def parse(cls, name: str, spec: object) -> Objective:
        """From a keyword (an alias or a summary column) and a bound such as ``">= 0.99"``."""
        if not isinstance(spec, str):
            raise TypeError(f"{name} must be a bound such as '>= 0.99' or '<= 0.5', got {spec!r}")
        m = _BOUND.match(spec)
        if m is None:
            raise ValueError(
                f"{name} must be a bound: one of <=, >=, <, > and a number (e.g. '>= 0.99'), "
                f"got {spec!r}"
            )
        try:
            bound = float(m.group(2))
        except ValueError:
            raise ValueError(f"{name} must end with a number, got {spec!r}") from None
        if math.isnan(bound):
            raise ValueError(f"{name} must not compare with NaN, got {spec!r}")
        return cls(name, ALIASES.get(name, name), m.group(1), bound)

    def holds(self, value: float) -> bool:
        """Whether one value meets the objective (NaN never does)."""
        return not math.isnan(value) and _OPS[self.op](value, self.bound)

    @property
    def text(self) -> str:
        shown = self.name if self.column == self.name else f"{self.name} ({self.column})"
        return f"{shown} {self.op} {self.bound:g}"


# ------------------------------------------------------------------------------------------------
# Scenario differences, as dotted paths


def _diff(default: Any, value: Any, path: str, out: dict[str, Any]) -> None:
    if default == value:
        return
    if (
        isinstance(default, dict)
        and isinstance(value, dict)
        and default.get("type") == value.get("type")
        and set(default) == set(value)
    ):
        for k in value:
            if k != "type":
                _diff(default[k], value[k], f"{path}.{k}" if path else k, out)
        return
    if (
        isinstance(default, list)
        and isinstance(value, list)
        and len(default) == len(value)
        and path.endswith("phases")
        and [d.get("name") for d in default] == [v.get("name") for v in value]
    ):
        names = [v.get("name") for v in value]
        for i, (d, v) in enumerate(zip(default, value, strict=True)):
            label = names[i] if names.count(names[i]) == 1 else str(i)
            _diff(d, v, f"{path}[{label}]", out)
        return
    out[path] = value


def _compact(value: Any) -> Any:
    """A config object in ``to_dict()`` form with the fields at their defaults left out (the
    decoder fills them in again): what a reader needs to see."""
    if isinstance(value, (tuple, list)):
        return [_compact(v) for v in value]
    if not (dataclasses.is_dataclass(value) and not isinstance(value, type)):
        return encode(value)
    full = encode(value)
    if not isinstance(full, dict):
        return full
    defaults: dict[str, Any] = {}
    for f in dataclasses.fields(value):
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            defaults[f.name] = f.default_factory()
    out: dict[str, Any] = {}
    for key, encoded in full.items():
        if key == "type":
            out[key] = encoded
            continue
        if key in defaults and encode(defaults[key]) == encoded:
            continue
        out[key] = _compact(getattr(value, key))
    return out


def scenario_diff(scenario: Scenario, base: Scenario | None = None) -> dict[str, Any]:
    """The scenario's differences from ``base`` (default: ``Scenario()``) as ``{dotted path:
    value}``, values in ``to_dict()`` form, such that ``base.replace(diff) == scenario``.

    Dependencies are addressed by name (``"payment.breaker.open_for"``); a dependency list whose
    names differ from the base's is given whole (``"dependencies"``).
    """
    base = Scenario() if base is None else base
    a, b = base.to_dict(), scenario.to_dict()
    out: dict[str, Any] = {}
    for key in b:
        if key == "dependencies":
            da, db = a[key], b[key]
            if [d["name"] for d in da] == [d["name"] for d in db]:
                for x, y in zip(da, db, strict=True):
                    for field in y:
                        _diff(x[field], y[field], f"{y['name']}.{field}", out)
            else:
                out["dependencies"] = db
        elif key != "version":
            _diff(a.get(key), b[key], key, out)
    for path, value in out.items():
        if isinstance(value, (dict, list)):
            out[path] = _compact(scenario.get(path))
    return out


def rerun_code(scenario: Scenario, seed: int | None = None) -> str:
    """One line of Python that rebuilds ``scenario`` (with ``seed``) and simulates it."""
    diff = scenario_diff(scenario)
    if seed is not None:
        diff.pop("seed", None)
    body = "{" + ", ".join(f"{k!r}: {v!r}" for k, v in diff.items()) + "}"
    extra = f", seed={seed}" if seed is not None and seed != 0 else ""
    return f"rl.simulate(rl.Scenario().replace({body}{extra}))"


def describe(scenario: Scenario, seed: int | None = None) -> str:
    """The scenario's dotted-path differences from the default and a line to rerun it."""
    diff = scenario_diff(scenario)
    lines = ["scenario (differences from the default Scenario()):"]
    lines += [f"  {k} = {v!r}" for k, v in diff.items()] or ["  (none)"]
    lines.append("rerun (import reliability_lab as rl):")
    lines.append(f"  {rerun_code(scenario, seed)}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# assert_slo


def _objectives(
    figures: Mapping[str, object], where: Mapping[str, object] | None
) -> list[Objective]:
    objs = [Objective.parse(k, v) for k, v in figures.items()]
    objs += [Objective.parse(k, v) for k, v in (where or {}).items()]
    if not objs:
        raise TypeError("assert_slo needs at least one objective, e.g. success_rate='>= 0.99'")
    return objs


def _check_column(summary: pd.Series, obj: Objective) -> None:
    if obj.column not in summary.index:
        cols = ", ".join(str(c) for c in summary.index)
        raise ValueError(
            f"{obj.name} is not a figure of the run: give an alias ({', '.join(ALIASES)}) or a "
            f"column of Result.summary ({cols})"
        )


def _seeds(scenario: Scenario, seeds: Iterable[int] | None, replications: int) -> list[int]:
    if seeds is not None:
        out = list(dict.fromkeys(int(s) for s in seeds))  # a seed run twice adds nothing
    else:
        if isinstance(replications, bool) or not isinstance(replications, int) or replications < 2:
            raise ValueError(f"replications must be an integer >= 2, got {replications!r}")
        out = [(scenario.seed + i) % 2**64 for i in range(replications)]
    if len(out) < 2:
        raise ValueError(f"seeds must give at least 2 seeds, got {len(out)}")
    return out


def assert_slo(
    target: Scenario | Result,
    *,
    confidence: float = 0.95,
    replications: int = 5,
    seeds: Sequence[int] | None = None,
    where: Mapping[str, str] | None = None,
    **figures: str,
) -> dict[str, tuple[float, float, float]]:
    """Asserts service-level objectives on a scenario (over replications) or one run.

    Args:
        target: a Scenario (run with ``seeds``, by default its own seed and the
            ``replications - 1`` next ones) or a Result (judged on its own figures).
        confidence: the level of each figure's t interval, in (0, 1).
        replications: runs when ``seeds`` is not given, >= 2.
        seeds: the seeds to run.
        where: more objectives keyed by summary column, for names that are not identifiers
            (``{"payment.trips": "<= 3"}``).
        figures: objectives as ``name=bound``: ``success_rate=">= 0.99"``, ``p99="<= 0.5"``,
            ``calls_per_order="<= 1.5"``; a name is an alias (``p50``, ``p95``, ``p99``,
            ``mean_latency``, ``max_latency``) or any column of ``Result.summary``.

    Returns:
        ``{name: (mean, low, high)}`` for every objective (low == high == the value for a Result).

    Raises:
        SLOError: some objective not met, with the figures, intervals, seeds and the scenario's
            differences from the default in the message.
    """
    objs = _objectives(figures, where)
    if isinstance(target, Result):
        return _judge_result(target, objs)
    if not isinstance(target, Scenario):
        raise TypeError(f"target must be a Scenario or a Result, got {type(target).__name__}")
    run_seeds = _seeds(target, seeds, replications)
    sc = target.replace({"record_orders": False, "sample_every": 0.0})
    summaries: dict[int, pd.Series] = {}

    def summary(seed: int) -> pd.Series:
        if seed not in summaries:
            summaries[seed] = simulate(sc.replace(seed=seed)).summary
        return summaries[seed]

    figures_out: dict[str, tuple[float, float, float]] = {}
    failures: list[str] = []
    worst_seed: int | None = None  # of the first objective missed: the one to rerun
    for obj in objs:
        _check_column(summary(run_seeds[0]), obj)
        values = {s: float(summary(s)[obj.column]) for s in run_seeds}
        shown = ", ".join(f"{s}: {v:.6g}" for s, v in values.items())
        if any(math.isnan(v) for v in values.values()):
            figures_out[obj.name] = (math.nan, math.nan, math.nan)
            failures.append(f"{obj.text}: undefined (NaN) on some seeds; per seed {{{shown}}}")
            continue
        rep = replicate(
            values.__getitem__,
            half_width=_ANY_WIDTH,  # exactly these runs: the interval is what it is
            confidence=confidence,
            n_min=len(run_seeds),
            n_max=len(run_seeds),
            seeds=run_seeds,
            progress=False,
        )
        low, high = rep.ci_low, rep.ci_high
        figures_out[obj.name] = (rep.mean, low, high)
        if not (obj.holds(low) and obj.holds(high)):
            lower = obj.op in (">=", ">")  # a floor: the low end decides, the high end is best
            outside = not obj.holds(high if lower else low)
            worst = min(values, key=lambda s: values[s] if lower else -values[s])
            failures.append(
                f"{obj.text}: measured {rep.mean:.6g}, {confidence:.0%} interval "
                f"[{low:.6g}, {high:.6g}] over {rep.n} runs"
                + (" (entirely outside the bound)" if outside
                   else " (straddles the bound: more replications may settle it)")
                + f"; per seed {{{shown}}}; worst seed {worst}"
            )
            if worst_seed is None:
                worst_seed = worst
    if failures:
        raise SLOError(
            "SLO not met:\n  "
            + "\n  ".join(failures)
            + f"\nseeds: {run_seeds}\n"
            + describe(target, run_seeds[0] if worst_seed is None else worst_seed)
        )
    return figures_out


def _judge_result(result: Result, objs: list[Objective]) -> dict[str, tuple[float, float, float]]:
    out: dict[str, tuple[float, float, float]] = {}
    failures = []
    for obj in objs:
        _check_column(result.summary, obj)
        v = float(result.summary[obj.column])
        out[obj.name] = (v, v, v)
        if not obj.holds(v):
            failures.append(f"{obj.text}: measured {v:.6g} in one run (no interval: pass a "
                            "Scenario to judge over replications)")
    if failures:
        seed = result.scenario.seed
        raise SLOError(
            "SLO not met:\n  " + "\n  ".join(failures) + f"\nseed: {seed}\n"
            + describe(result.scenario, seed)
        )
    return out


# ------------------------------------------------------------------------------------------------
# assert_recovers


def _last_phase(scenario: Scenario, dependency: str | None) -> tuple[str, float, float]:
    found: list[tuple[float, float, str]] = []
    for d in scenario.dependencies:
        if dependency is not None and d.name != dependency:
            continue
        found += [(p.end, p.start, f"{d.name}.{p.name}") for p in d.faults.phases]
    if not found:
        what = f"dependency {dependency!r}" if dependency else "the scenario"
        raise ValueError(f"{what} has no fault phase to recover from: give trigger=(start, end)")
    end, start, name = max(found)
    return name, start, end


def assert_recovers(
    target: Scenario | Result,
    *,
    within: float | None = None,
    trigger: tuple[float, float] | None = None,
    dependency: str | None = None,
    replications: int = 3,
    seeds: Sequence[int] | None = None,
    threshold: float = 0.9,
    window: float = 5.0,
) -> list[Metastability]:
    """Asserts that goodput comes back after the trigger (by default the scenario's last fault
    phase) on every seed, within ``within`` seconds of the trigger's end if given.

    The verdict is :func:`reliability_lab.stats.metastability`'s: goodput back to ``threshold``
    x the pre-trigger baseline for good, observed until the scenario's ``duration`` (leave at
    least two ``window`` after the trigger). A "recovering" or "metastable" verdict on any seed
    fails, with every seed's verdict, the scenario's differences and the rerun line.

    Returns:
        The verdict of each run.
    """
    if within is not None and not (isinstance(within, (int, float)) and within >= 0):
        raise ValueError(f"within must be a number of seconds >= 0, got {within!r}")
    if isinstance(target, Result):
        runs = [target]
        scenario = target.scenario
    elif isinstance(target, Scenario):
        scenario = target
        run_seeds = _seeds(target, seeds, replications)
        sc = target if target.sample_every else target.replace(sample_every=1.0)
        runs = [simulate(sc.replace(seed=s, record_orders=False)) for s in run_seeds]
    else:
        raise TypeError(f"target must be a Scenario or a Result, got {type(target).__name__}")
    if trigger is None:
        what, start, end = _last_phase(scenario, dependency)
    else:
        start, end = float(trigger[0]), float(trigger[1])
        what = f"trigger [{start:g}, {end:g})"
    verdicts = [
        metastability(r, end, trigger_start=start, threshold=threshold, window=window)
        for r in runs
    ]
    bad = [
        (r, v)
        for r, v in zip(runs, verdicts, strict=True)
        if v.verdict != "recovered" or (within is not None and v.time_to_recover > within)
    ]
    if bad:
        lines = [
            f"seed {r.scenario.seed}: {v.message}"
            for r, v in zip(runs, verdicts, strict=True)
        ]
        goal = "" if within is None else f" within {within:g} s"
        raise SLOError(
            f"no recovery{goal} after {what} (ended at {end:g} s) on {len(bad)} of "
            f"{len(runs)} runs:\n  " + "\n  ".join(lines) + "\n"
            + describe(scenario, bad[0][0].scenario.seed)
        )
    return verdicts


__all__ = [
    "ALIASES",
    "Objective",
    "SLOError",
    "assert_recovers",
    "assert_slo",
    "describe",
    "rerun_code",
    "scenario_diff",
]
