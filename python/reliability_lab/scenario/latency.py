"""Latency distributions: service times and think times, in seconds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from reliability_lab import _schema


@dataclass(frozen=True)
class Constant(_schema.Checked):
    """A fixed duration.

    Attributes:
        value: seconds, in [0, 1e6].
    """

    value: float


@dataclass(frozen=True)
class Exponential(_schema.Checked):
    """Exponentially distributed durations.

    Attributes:
        mean: seconds, in [0, 1e6].
    """

    mean: float


@dataclass(frozen=True)
class LogNormal(_schema.Checked):
    """Log-normal durations: ``median * exp(sigma * Z)``, Z standard normal.

    Attributes:
        median: seconds, in [0, 1e6].
        sigma: the spread of the log, in [0, 10] (0 is a constant).
    """

    median: float
    sigma: float


@dataclass(frozen=True)
class Uniform(_schema.Checked):
    """Durations uniform on ``[low, high]``.

    Attributes:
        low, high: seconds, in [0, 1e6], low <= high.
    """

    low: float
    high: float


SimpleLatency: TypeAlias = Constant | Exponential | LogNormal | Uniform
"""A latency distribution that is not a mixture (a mixture's components)."""


@dataclass(frozen=True)
class Mixture(_schema.Checked):
    """A mixture of simple distributions: component ``i`` is drawn with probability
    ``weights[i] / sum(weights)``. Bimodal tails: ``Mixture.of((0.99, Exponential(0.05)),
    (0.01, Constant(2.0)))``.

    Attributes:
        weights: positive, finite relative weights, one per component.
        components: non-empty; no component may itself be a mixture.
    """

    weights: Sequence[float]
    components: Sequence[SimpleLatency]

    @classmethod
    def of(cls, *pairs: tuple[float, SimpleLatency]) -> Mixture:
        """A mixture from ``(weight, distribution)`` pairs."""
        return cls(tuple(w for w, _ in pairs), tuple(d for _, d in pairs))


Latency: TypeAlias = Constant | Exponential | LogNormal | Uniform | Mixture
"""Any latency distribution."""


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
