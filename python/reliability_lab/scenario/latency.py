"""Latency distributions: service times and think times, in seconds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from reliability_lab.scenario._validate import (
    _INF,
    _MAX_SIGMA,
    _duration,
    _instance,
    _items,
    _real,
    _set,
)


@dataclass(frozen=True)
class Constant:
    """A fixed duration.

    Attributes:
        value: seconds, in [0, 1e6].
    """

    value: float

    def __post_init__(self) -> None:
        _set(self, "value", _duration("value", self.value, allow_zero=True))


@dataclass(frozen=True)
class Exponential:
    """Exponentially distributed durations.

    Attributes:
        mean: seconds, in [0, 1e6].
    """

    mean: float

    def __post_init__(self) -> None:
        _set(self, "mean", _duration("mean", self.mean, allow_zero=True))


@dataclass(frozen=True)
class LogNormal:
    """Log-normal durations: ``median * exp(sigma * Z)``, Z standard normal.

    Attributes:
        median: seconds, in [0, 1e6].
        sigma: the spread of the log, in [0, 10] (0 is a constant).
    """

    median: float
    sigma: float

    def __post_init__(self) -> None:
        _set(self, "median", _duration("median", self.median, allow_zero=True))
        _set(self, "sigma", _real("sigma", self.sigma, 0.0, _MAX_SIGMA))


@dataclass(frozen=True)
class Uniform:
    """Durations uniform on ``[low, high]``.

    Attributes:
        low, high: seconds, in [0, 1e6], low <= high.
    """

    low: float
    high: float

    def __post_init__(self) -> None:
        low = _duration("low", self.low, allow_zero=True)
        high = _duration("high", self.high, allow_zero=True)
        if high < low:
            raise ValueError(f"high must be >= low ({low:g}), got {high:g}")
        _set(self, "low", low)
        _set(self, "high", high)


SimpleLatency: TypeAlias = Constant | Exponential | LogNormal | Uniform
"""A latency distribution that is not a mixture (a mixture's components)."""

_SIMPLE_LATENCY = (Constant, Exponential, LogNormal, Uniform)


@dataclass(frozen=True)
class Mixture:
    """A mixture of simple distributions: component ``i`` is drawn with probability
    ``weights[i] / sum(weights)``. Bimodal tails: ``Mixture.of((0.99, Exponential(0.05)),
    (0.01, Constant(2.0)))``.

    Attributes:
        weights: positive, finite relative weights, one per component.
        components: non-empty; no component may itself be a mixture.
    """

    weights: Sequence[float]
    components: Sequence[SimpleLatency]

    def __post_init__(self) -> None:
        weights = _items("weights", self.weights)
        components = _items("components", self.components)
        if not components:
            raise ValueError("components must not be empty")
        if len(weights) != len(components):
            raise ValueError(
                f"weights must have one entry per component ({len(components)}), got {len(weights)}"
            )
        ws = tuple(
            _real(f"weights[{i}]", w, 0.0, _INF, lo_open=True) for i, w in enumerate(weights)
        )
        if not math.isfinite(math.fsum(ws)):
            raise ValueError("weights must have a finite sum")
        for i, c in enumerate(components):
            if isinstance(c, Mixture):
                raise ValueError(f"components[{i}] must not itself be a mixture")
            _instance(
                f"components[{i}]",
                c,
                _SIMPLE_LATENCY,
                "a Constant, Exponential, LogNormal or Uniform",
            )
        _set(self, "weights", ws)
        _set(self, "components", components)

    @classmethod
    def of(cls, *pairs: tuple[float, SimpleLatency]) -> Mixture:
        """A mixture from ``(weight, distribution)`` pairs."""
        return cls(tuple(w for w, _ in pairs), tuple(d for _, d in pairs))


Latency: TypeAlias = Constant | Exponential | LogNormal | Uniform | Mixture
"""Any latency distribution."""

_LATENCY = (Constant, Exponential, LogNormal, Uniform, Mixture)
_LATENCY_WHAT = "a Constant, Exponential, LogNormal, Uniform or Mixture"


def mean_of(dist: Latency) -> float:
    """The mean of a latency distribution, in seconds."""
    if isinstance(dist, Constant):
        return dist.value
    if isinstance(dist, Exponential):
        return dist.mean
    if isinstance(dist, LogNormal):
        return dist.median * math.exp(dist.sigma**2 / 2)
    if isinstance(dist, Uniform):
        return (dist.low + dist.high) / 2
    total = math.fsum(dist.weights)
    return (
        math.fsum(w * mean_of(c) for w, c in zip(dist.weights, dist.components, strict=True))
        / total
    )
