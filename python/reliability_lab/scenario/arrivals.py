"""Arrival processes: where a scenario's orders come from (open loop or closed loop)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from reliability_lab import _checks, _schema
from reliability_lab.scenario.latency import Constant, Latency


@dataclass(frozen=True)
class Poisson(_schema.Checked):
    """Open-loop Poisson arrivals: exponential gaps between orders.

    Attributes:
        rate: orders per second, in (0, 1e7].
    """

    rate: float


@dataclass(frozen=True)
class ConstantRate(_schema.Checked):
    """Open-loop arrivals evenly spaced in time.

    Attributes:
        rate: orders per second, in (0, 1e7].
    """

    rate: float


@dataclass(frozen=True)
class RateSegment(_schema.Checked):
    """A piece of a rate schedule: over ``[start, end)`` the rate moves linearly from
    ``rate_start`` to ``rate_end`` orders per second (equal rates give a step).

    Attributes:
        start, end: seconds from the start of the run, in [0, 1e6], start < end.
        rate_start, rate_end: orders per second at ``start`` and just before ``end``, in
            [0, 1e7].
    """

    start: float
    end: float
    rate_start: float
    rate_end: float


def _segments(pieces: Iterable[tuple[float, float, float, float]]) -> tuple[RateSegment, ...]:
    out = []
    for i, p in enumerate(pieces):
        with _checks.at(f"segments[{i}]"):
            out.append(RateSegment(*p))
    return tuple(out)


@dataclass(frozen=True)
class Schedule:
    """Poisson arrivals whose rate follows a schedule: a sequence of :class:`RateSegment`,
    sorted and non-overlapping; the rate is 0 outside them. Some segment must have a positive
    rate. Segments may also be given as ``(start, end, rate)`` or
    ``(start, end, rate_start, rate_end)`` tuples.

    Helpers: :meth:`steps`, :meth:`spike`, :meth:`ramp`.

    Attributes:
        segments: the :class:`RateSegment` pieces, sorted, not overlapping, at least one.
    """

    segments: Sequence[RateSegment]

    def __post_init__(self) -> None:
        # Python-only: a segment may be given as a (start, end, rate[, rate_end]) tuple.
        segments = list(_schema.items("segments", self.segments))
        for i, s in enumerate(segments):
            if isinstance(s, tuple) and len(s) in (3, 4):
                with _checks.at(f"segments[{i}]"):
                    segments[i] = RateSegment(s[0], s[1], s[2], s[-1])
        object.__setattr__(self, "segments", tuple(segments))
        # The field table beside ArrivalConfig's schedule (cpp/rlab/model/scenario.cc) and its
        # rules (some segment, sorted, not overlapping, some rate positive).
        _schema.check(self)

    @classmethod
    def steps(cls, steps: Iterable[tuple[float, float]], end: float) -> Schedule:
        """Piecewise-constant rates: ``[(t0, r0), (t1, r1), ...]`` holds ``r_i`` from ``t_i``
        to ``t_{i+1}``, and the last rate until ``end``."""
        points = list(steps)
        bounds = [t for t, _ in points[1:]] + [end]
        return cls(_segments((t, e, r, r) for (t, r), e in zip(points, bounds, strict=True)))

    @classmethod
    def spike(cls, base: float, peak: float, start: float, end: float, duration: float) -> Schedule:
        """``base`` orders per second from 0 to ``duration``, with ``peak`` during
        ``[start, end)``."""
        pieces = [(0.0, start, base), (start, end, peak), (end, duration, base)]
        return cls(_segments((a, b, r, r) for a, b, r in pieces if b > a))

    @classmethod
    def ramp(
        cls,
        from_rate: float,
        to_rate: float,
        start: float,
        end: float,
        duration: float | None = None,
    ) -> Schedule:
        """``from_rate`` until ``start``, a linear ramp to ``to_rate`` at ``end``, then
        ``to_rate`` until ``duration`` (default: stop at ``end``)."""
        pieces = [(0.0, start, from_rate, from_rate), (start, end, from_rate, to_rate)]
        if duration is not None:
            pieces.append((end, duration, to_rate, to_rate))
        return cls(_segments(p for p in pieces if p[1] > p[0]))


@dataclass(frozen=True)
class Trace(_schema.Checked):
    """Orders arrive at the given times. Any iterable of numbers is accepted (a NumPy array, a
    pandas column) and stored as a tuple.

    Attributes:
        times: arrival times in seconds, each in [0, 1e6], ascending (equal times are a burst);
            at least one.
    """

    times: Sequence[float]


@dataclass(frozen=True)
class ClosedLoop(_schema.Checked):
    """Closed-loop load: a fixed population of customers, each submitting its next order when
    the previous one ends plus a think time.

    Attributes:
        clients: the customers, in [1, 1e6].
        think_time: the pause between an order's end and the customer's next order (a latency
            distribution).
    """

    clients: int = 10
    think_time: Latency = Constant(0.0)  # noqa: RUF009 (frozen: immutable, from another module)


Arrivals: TypeAlias = Poisson | ConstantRate | Schedule | Trace | ClosedLoop
"""Any arrival process."""

_ARRIVALS = (Poisson, ConstantRate, Schedule, Trace, ClosedLoop)
