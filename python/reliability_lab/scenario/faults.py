"""The fault model of a dependency: failure kinds, phases (outages, brownouts, recoveries),
limited capacity, and :class:`Faults` that holds them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reliability_lab import _schema
from reliability_lab._checks import NAME as _NAME
from reliability_lab.errors import ConfigTypeError
from reliability_lab.scenario.latency import Constant, Latency
from reliability_lab.scenario.queue_discipline import QueueDiscipline

# ------------------------------------------------------------------------------------------------
# The fault model


@dataclass(frozen=True)
class FailureMix(_schema.Checked):
    """The kinds of failure a dependency produces, as relative weights (each finite, >= 0).

    Attributes:
        http500, http503, http429: HTTP error answers; 429 comes with a Retry-After hint.
        timeout: the call hangs past the caller's attempt timeout (or ``Faults.hang``).
        connection_reset: the connection breaks.
        retry_after: the Retry-After hint of a 429, seconds in [0, 1e6].
    """

    http500: float = 0.0
    http503: float = 1.0
    http429: float = 0.0
    timeout: float = 0.0
    connection_reset: float = 0.0
    retry_after: float = 1.0

    @property
    def total(self) -> float:
        """The sum of the weights."""
        return self.http500 + self.http503 + self.http429 + self.timeout + self.connection_reset


@dataclass(frozen=True)
class Phase:
    """A time window ``[start, end)`` that overrides parts of the fault model.

    Attributes:
        name: letters, digits and underscores, not all digits (e.g. ``"outage"``); used in
            summaries and in paths (``phases[outage]``) when unique among the phases.
        start, end: seconds from the start of the run, 0 <= start < end <= 1e6.
        failure_rate: the failure probability in force, in [0, 1]; None keeps the model's.
        mix: the failure kinds in force; None keeps the model's.
        latency: the service time distribution in force; None keeps the model's.
        latency_multiplier: multiplies whichever latency is in force, in (0, 1e6].
    """

    name: str
    start: float
    end: float
    failure_rate: float | None = None
    mix: FailureMix | None = None
    latency: Latency | None = None
    latency_multiplier: float = 1.0

    def __post_init__(self) -> None:
        # Only Python names phases in paths (`phases[outage]`); the C++ engines take any name.
        if not isinstance(self.name, str) or not _NAME.match(self.name) or self.name.isdigit():
            error = ValueError if isinstance(self.name, str) else ConfigTypeError
            raise error(
                f"name must be letters, digits and underscores (not all digits), got {self.name!r}"
            )
        # The field table beside FaultPhase (cpp/rlab/model/faults.cc) and its rule (end after
        # start) check the other fields.
        _schema.check(self)


def Outage(
    start: float,
    end: float,
    *,
    mix: FailureMix | None = None,
    latency: Latency | None = None,
    latency_multiplier: float = 1.0,
    name: str = "outage",
) -> Phase:
    """A phase in which every call fails (failure_rate 1), with the model's failure mix unless
    ``mix`` is given (e.g. ``FailureMix(http503=0, timeout=1)`` for a dependency that hangs)."""
    return Phase(name, start, end, 1.0, mix, latency, latency_multiplier)


def Brownout(
    start: float,
    end: float,
    failure_rate: float = 0.5,
    latency_multiplier: float = 5.0,
    *,
    mix: FailureMix | None = None,
    latency: Latency | None = None,
    name: str = "brownout",
) -> Phase:
    """A degraded phase: half the calls fail and every call is 5x slower, by default."""
    return Phase(name, start, end, failure_rate, mix, latency, latency_multiplier)


def Recovery(
    start: float,
    end: float,
    failure_rate: float | None = None,
    latency_multiplier: float = 2.0,
    *,
    mix: FailureMix | None = None,
    latency: Latency | None = None,
    name: str = "recovery",
) -> Phase:
    """The dependency is back but cold (empty caches, refilling pools): by default the model's
    own failure rate, with every call 2x slower."""
    return Phase(name, start, end, failure_rate, mix, latency, latency_multiplier)


def _phase_labels(names: Sequence[object]) -> list[str]:
    """How phases are named in paths: by name when unique, by index otherwise (as the core)."""
    labels = []
    for i, name in enumerate(names):
        unique = isinstance(name, str) and name != "" and names.count(name) == 1
        labels.append(f"phases[{name}]" if unique else f"phases[{i}]")
    return labels


@dataclass(frozen=True)
class Capacity(_schema.Checked):
    """How much work a dependency can take at once (the default: unlimited).

    Attributes:
        max_in_service: calls served at once, in [0, 1e6]; 0 is unlimited.
        max_queue: calls allowed to wait for service, in [-1, 1e7]; beyond it a call fails at
            once with 503; -1 is unbounded.
        load_slope: service time is multiplied by ``1 + load_slope * max(0, load - load_knee)``
            where load counts the calls in service (this one included; without
            ``max_in_service``, every call in flight); finite, >= 0.
        load_knee: the load above which service slows down, in [0, 1e7].
        drop_abandoned: whether the server drops a waiting call whose caller gave up. Real
            servers usually do not, and that wasted work keeps a metastable failure going.
        discipline: the order in which the server takes waiting calls, the same
            :class:`~reliability_lab.QueueDiscipline` as ``intake.discipline``; a call CoDel
            drops fails at once with 503 (the dependency's ``dropped_by_queue``).
    """

    max_in_service: int = 0
    max_queue: int = -1
    load_slope: float = 0.0
    load_knee: int = 0
    drop_abandoned: bool = False
    discipline: QueueDiscipline = QueueDiscipline()  # noqa: RUF009 (frozen: immutable)


@dataclass(frozen=True)
class Faults(_schema.Checked):
    """A dependency's behaviour: what fails, how long calls take, and when.

    Attributes:
        failure_rate: probability that an attempt fails, in [0, 1].
        mix: the kinds of failure (needs a positive total weight when anything can fail).
        latency: the service time of every attempt (default: a constant 10 ms).
        phases: windows overriding the above (outages, brownouts, recoveries); must not overlap.
        capacity: limited concurrency and load-dependent latency.
        ambiguous_rate: probability that a successful attempt commits its effect but loses the
            response (the caller sees a timeout), in [0, 1].
        hang: how long a hung call lasts when the caller has no attempt timeout and no deadline,
            seconds in (0, 1e6].
    """

    failure_rate: float = 0.0
    mix: FailureMix = FailureMix()
    latency: Latency = Constant(0.01)  # noqa: RUF009 (frozen: immutable, from another module)
    phases: Sequence[Phase] = ()
    capacity: Capacity = Capacity()
    ambiguous_rate: float = 0.0
    hang: float = 30.0
