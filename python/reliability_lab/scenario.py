"""Scenarios: the whole description of an experiment, as a tree of frozen, validated dataclasses.

A :class:`Scenario` says where orders come from (``arrivals``), how the pipeline takes them in
(``workers``, ``queue_capacity``, ``order_deadline``) and which :class:`Dependency` objects each
order calls in sequence, each with its fault model (:class:`Faults`) and its policy stack
(retry, breaker, retry budget, bulkhead, throttle, attempt timeout, fallback)::

    sc = Scenario(
        arrivals=Poisson(rate=200), duration=60, workers=16, queue_capacity=256, seed=42,
        dependencies=[Dependency(
            "payment",
            faults=Faults(failure_rate=0.3, latency=Exponential(mean=0.05),
                          phases=[Outage(start=20, end=35)]),
            retry=Retry(max_attempts=4, backoff=Backoff(initial=0.1, max_delay=2)),
            breaker=Breaker(consecutive_failures=5, open_for=5))])
    sc2 = sc.replace({"payment.breaker.open_for": 10.0, "workers": 32})
    sc.get("payment.faults.phases[outage].end")          # 35.0

Times are in seconds. Every class validates its own fields on construction (``ValueError`` naming
the field and its allowed range; NaN, infinities and bools-as-numbers are rejected; nothing is
clamped). A ``Scenario`` also validates the whole tree with the native validator the engines use,
and errors raised while building from a dict or replacing a path name the *dotted path* inside the
scenario, e.g. ``"payment.breaker.open_for must be a finite number in (0, 1e+06], got 0"``.
Dependencies are addressed by name; phases by name (when unique) or index: ``phases[outage]``,
``phases[0]``.

``to_dict()`` gives a plain JSON-able dict (union-valued fields carry a ``"type"`` tag) that
``from_dict()`` inverts exactly and that the native engines read; ``to_json()`` / ``from_json()``
wrap it.

Collections given as lists are stored as tuples, so every object is immutable and hashable.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import numbers
import re
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, Union, get_args, get_origin, get_type_hints

from reliability_lab import _core
from reliability_lab.backoff import Backoff
from reliability_lab.breaker import Breaker
from reliability_lab.budget import RatioBudgetConfig, TokenBucketConfig
from reliability_lab.bulkhead import BulkheadConfig
from reliability_lab.retry import DEFAULT_RETRY_ON, Retry
from reliability_lab.throttle import ThrottleConfig

#: The version of the dict / JSON schema written by :meth:`Scenario.to_dict`.
SCHEMA_VERSION = 1

# Limits, shared with the native validator (cpp/rlab/model/scenario.cc and faults.cc).
_MAX_DURATION = 1e6  # seconds: the core's kMaxDurationS
_MAX_RATE = 1e7  # orders per second
_MAX_WORKERS = 100_000
_MAX_QUEUE_CAPACITY = 10_000_000
_MAX_CLIENTS = 1_000_000
_MAX_NUM_KEYS = 1_000_000_000
_MAX_CACHE_CAPACITY = 10_000_000
_MAX_DEPENDENCIES = 16
_MAX_IN_SERVICE = 1_000_000
_MAX_SERVER_QUEUE = 10_000_000
_MAX_SIGMA = 10.0
_MAX_LATENCY_MULTIPLIER = 1e6
_MAX_SEED = 2**64 - 1
_INF = math.inf
_NAME = re.compile(r"^[A-Za-z0-9_]+$")

# ------------------------------------------------------------------------------------------------
# Field checks. Messages follow the core's format (rlab/core/validate.cc) so that Python and the
# native validator word the same error the same way.


def _bound(x: float) -> str:
    return ("inf" if x > 0 else "-inf") if math.isinf(x) else f"{x:g}"


def _real(
    name: str,
    value: object,
    lo: float,
    hi: float,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """A real number (int or float, not bool) that is finite and in the interval; as a float."""
    interval = f"{'(' if lo_open else '['}{_bound(lo)}, {_bound(hi)}{')' if hi_open else ']'}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    try:
        x = float(value)
    except OverflowError:  # an int too large for a float
        x = _INF if str(value)[0] != "-" else -_INF
    below = not (x > lo) if lo_open else not (x >= lo)
    above = not (x < hi) if hi_open else not (x <= hi)
    if not math.isfinite(x) or below or above:
        raise ValueError(f"{name} must be a finite number in {interval}, got {x:g}")
    return x


def _duration(name: str, value: object, *, allow_zero: bool) -> float:
    """Seconds in [0, 1e6] (or (0, 1e6])."""
    return _real(name, value, 0.0, _MAX_DURATION, lo_open=not allow_zero)


def _int(name: str, value: object, lo: int, hi: int) -> int:
    """An integer (not bool) in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    v = int(value)
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {v}")
    return v


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def _choice(name: str, value: object, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {shown}, got {value!r}")
    return value


def _items(name: str, value: object) -> tuple[Any, ...]:
    """A sequence given as any iterable (not a string or mapping), stored as a tuple."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a sequence, got {value!r}")
    return tuple(value)


def _instance(name: str, value: object, types_: tuple[type, ...], what: str) -> None:
    if not isinstance(value, types_):
        raise ValueError(f"{name} must be {what}, got {value!r}")


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def _ns(seconds: float) -> int:
    """Seconds (validated, >= 0) as the core's nanoseconds: time comparisons agree with it."""
    return math.floor(seconds * 1e9 + 0.5)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


@contextmanager
def _at(path: str) -> Iterator[None]:
    """Re-raises a ValueError (or TypeError) from inside as a ValueError under ``path``."""
    if not path:
        yield
        return
    try:
        yield
    except ValueError as e:
        raise ValueError(_join(path, str(e))) from None
    except TypeError as e:
        raise ValueError(f"{path}: {e}") from None


# ------------------------------------------------------------------------------------------------
# Latency distributions


@dataclass(frozen=True)
class Constant:
    """A fixed duration of ``value`` seconds, in [0, 1e6]."""

    value: float

    def __post_init__(self) -> None:
        _set(self, "value", _duration("value", self.value, allow_zero=True))


@dataclass(frozen=True)
class Exponential:
    """Exponentially distributed durations with the given ``mean`` (seconds, in [0, 1e6])."""

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
    """Durations uniform on [low, high] seconds, 0 <= low <= high <= 1e6."""

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


# ------------------------------------------------------------------------------------------------
# The fault model


@dataclass(frozen=True)
class FailureMix:
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

    def __post_init__(self) -> None:
        for name in ("http500", "http503", "http429", "timeout", "connection_reset"):
            _set(self, name, _real(name, getattr(self, name), 0.0, _INF))
        _set(self, "retry_after", _duration("retry_after", self.retry_after, allow_zero=True))

    @property
    def total(self) -> float:
        """The sum of the weights."""
        return self.http500 + self.http503 + self.http429 + self.timeout + self.connection_reset


def _check_mix_usable(mix_name: str, mix: FailureMix, rate_name: str, rate: float) -> None:
    total = mix.total
    if rate > 0 and not (total > 0 and math.isfinite(total)):
        raise ValueError(
            f"{mix_name} must have a positive, finite total weight when {rate_name} > 0, "
            f"got total {total:g}"
        )


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
        if not isinstance(self.name, str) or not _NAME.match(self.name) or self.name.isdigit():
            raise ValueError(
                f"name must be letters, digits and underscores (not all digits), got {self.name!r}"
            )
        start = _duration("start", self.start, allow_zero=True)
        end = _duration("end", self.end, allow_zero=True)
        if not _ns(end) > _ns(start):
            raise ValueError(f"end must be greater than start ({start:g}), got {end:g}")
        _set(self, "start", start)
        _set(self, "end", end)
        if self.failure_rate is not None:
            _set(self, "failure_rate", _real("failure_rate", self.failure_rate, 0.0, 1.0))
        if self.mix is not None:
            _instance("mix", self.mix, (FailureMix,), "a FailureMix or None")
        if self.latency is not None:
            _instance("latency", self.latency, _LATENCY, _LATENCY_WHAT + " or None")
        _set(
            self,
            "latency_multiplier",
            _real(
                "latency_multiplier",
                self.latency_multiplier,
                0.0,
                _MAX_LATENCY_MULTIPLIER,
                lo_open=True,
            ),
        )


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
class Capacity:
    """How much work a dependency can take at once (the default: unlimited).

    Attributes:
        max_in_service: calls served at once, in [0, 1e6]; 0 is unlimited.
        max_queue: calls allowed to wait for service, in [-1, 1e7]; beyond it a call fails at
            once with 503; -1 is unbounded.
        load_slope, load_knee: service time is multiplied by
            ``1 + load_slope * max(0, load - load_knee)`` where load counts the calls in service
            (this one included; without ``max_in_service``, every call in flight);
            load_slope finite >= 0, load_knee in [0, 1e7].
        drop_abandoned: whether the server drops a waiting call whose caller gave up. Real
            servers usually do not, and that wasted work keeps a metastable failure going.
    """

    max_in_service: int = 0
    max_queue: int = -1
    load_slope: float = 0.0
    load_knee: int = 0
    drop_abandoned: bool = False

    def __post_init__(self) -> None:
        _set(
            self, "max_in_service", _int("max_in_service", self.max_in_service, 0, _MAX_IN_SERVICE)
        )
        _set(self, "max_queue", _int("max_queue", self.max_queue, -1, _MAX_SERVER_QUEUE))
        _set(self, "load_slope", _real("load_slope", self.load_slope, 0.0, _INF))
        _set(self, "load_knee", _int("load_knee", self.load_knee, 0, _MAX_SERVER_QUEUE))
        _bool("drop_abandoned", self.drop_abandoned)


@dataclass(frozen=True)
class Faults:
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
    latency: Latency = Constant(0.01)
    phases: Sequence[Phase] = ()
    capacity: Capacity = Capacity()
    ambiguous_rate: float = 0.0
    hang: float = 30.0

    def __post_init__(self) -> None:
        rate = _real("failure_rate", self.failure_rate, 0.0, 1.0)
        _set(self, "failure_rate", rate)
        _instance("mix", self.mix, (FailureMix,), "a FailureMix")
        _check_mix_usable("mix", self.mix, "failure_rate", rate)
        _instance("latency", self.latency, _LATENCY, _LATENCY_WHAT)
        phases = _items("phases", self.phases)
        labels = _phase_labels([getattr(p, "name", None) for p in phases])
        for label, p in zip(labels, phases, strict=True):
            _instance(label, p, (Phase,), "a Phase")
            if p.failure_rate is not None:
                prate, rate_name = p.failure_rate, f"{label}.failure_rate"
            else:
                prate, rate_name = rate, "failure_rate"
            if p.mix is not None:
                _check_mix_usable(f"{label}.mix", p.mix, rate_name, prate)
            else:
                _check_mix_usable("mix", self.mix, rate_name, prate)
        order = sorted(range(len(phases)), key=lambda i: _ns(phases[i].start))
        for k in range(1, len(order)):
            a, b = order[k - 1], order[k]
            if _ns(phases[b].start) < _ns(phases[a].end):
                a, b = min(a, b), max(a, b)
                pa, pb = phases[a], phases[b]
                raise ValueError(
                    f"{labels[a]} [{pa.start:g}, {pa.end:g}) overlaps {labels[b]} "
                    f"[{pb.start:g}, {pb.end:g}): phases must not overlap"
                )
        _set(self, "phases", phases)
        _instance("capacity", self.capacity, (Capacity,), "a Capacity")
        _set(self, "ambiguous_rate", _real("ambiguous_rate", self.ambiguous_rate, 0.0, 1.0))
        _set(self, "hang", _duration("hang", self.hang, allow_zero=False))


FallbackKind = Literal["none", "cache", "default", "cache_or_default"]
_FALLBACK_KINDS = ("none", "cache", "default", "cache_or_default")


@dataclass(frozen=True)
class Fallback:
    """What a non-critical dependency falls back to when its call fails; with a fallback the
    order continues, marked degraded.

    A fallback stands in for an unhealthy dependency only: when the order's deadline has passed
    (or its retry loop gave up because of it) or the order is cancelled, the order fails with
    reason ``"deadline"`` (or ``"shutdown"``) and is not counted as degraded. A dependency that
    ``charges`` cannot have a fallback (a :class:`Scenario` with one raises ValueError naming
    ``"<dependency>.fallback"``): a failed write served from a default would complete the order
    without charging it.

    Attributes:
        kind: ``"none"`` (a failure fails the order), ``"cache"`` (the last good value for the
            order's key, if cached and fresh), ``"default"`` (a default value), or
            ``"cache_or_default"``.
        cache_capacity: LRU entries (one per order key), in [1, 1e7].
        cache_ttl: a cached value older than this is not served, seconds in (0, 1e6].
    """

    kind: FallbackKind = "none"
    cache_capacity: int = 1000
    cache_ttl: float = 60.0

    def __post_init__(self) -> None:
        _choice("kind", self.kind, _FALLBACK_KINDS)
        _set(
            self,
            "cache_capacity",
            _int("cache_capacity", self.cache_capacity, 1, _MAX_CACHE_CAPACITY),
        )
        _set(self, "cache_ttl", _duration("cache_ttl", self.cache_ttl, allow_zero=False))


# ------------------------------------------------------------------------------------------------
# Dependencies

Budget: TypeAlias = TokenBucketConfig | RatioBudgetConfig
"""A retry budget configuration."""

Composition = Literal["retry_outside_breaker", "breaker_outside_retry"]
_COMPOSITIONS = ("retry_outside_breaker", "breaker_outside_retry")

# Retry fields that belong to a live Retry only; in a scenario they must keep their defaults.
_RETRY_LIVE_FIELDS = (
    ("budget", "use Dependency.budget"),
    ("clock", "the engine owns time"),
    ("seed", "the scenario's seed drives every draw"),
    ("timeout", "use Dependency.attempt_timeout or Scenario.order_deadline"),
    ("on_retry", "the engines record retries themselves"),
)
_RETRY_FIELDS = ("max_attempts", "backoff", "retry_on", "max_retry_after")


def _retry_names(retry_on: object) -> tuple[str, ...]:
    """``retry_on`` as a tuple of unique outcome names, ``"default"`` expanded."""
    items: Iterable[object] = (
        (retry_on,) if isinstance(retry_on, (str, type)) else (_items("retry.retry_on", retry_on))
    )
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"retry.retry_on must hold outcome names in a scenario, got {item!r}")
        for name in DEFAULT_RETRY_ON if item == "default" else (item,):
            if name not in names:
                names.append(name)
    return tuple(names)


def _normal_retry(retry: Retry) -> Retry:
    for attr, why in _RETRY_LIVE_FIELDS:
        value = getattr(retry, attr)
        if value is not None:
            raise ValueError(f"retry.{attr} must be None in a scenario ({why}), got {value!r}")
    if isinstance(retry.max_attempts, bool):
        raise ValueError(f"retry.max_attempts must be an integer, got {retry.max_attempts!r}")
    names = _retry_names(retry.retry_on)
    if retry.retry_on != names:
        with _at("retry"):
            retry = dataclasses.replace(retry, retry_on=names)
    return retry


def _retry_key(retry: Retry | None) -> object:
    if retry is None:
        return None
    return (
        retry.max_attempts,
        retry.backoff,
        tuple(sorted(_retry_names(retry.retry_on))),
        retry.max_retry_after,
    )


@dataclass(frozen=True, eq=False)
class Dependency:
    """One named dependency with its fault model and its policy stack; any policy may be None.

    Attributes:
        name: letters, digits and underscores; unique in the scenario; its paths start with it
            (``"payment.breaker.open_for"``).
        faults: the fault model.
        retry: a :class:`~reliability_lab.retry.Retry` (only its ``max_attempts``, ``backoff``,
            ``retry_on`` and ``max_retry_after`` matter here; its budget, clock, seed, timeout and
            on_retry must be None); None makes one attempt.
        breaker: a :class:`~reliability_lab.breaker.Breaker`, or None.
        budget: a :class:`~reliability_lab.budget.TokenBucketConfig` or
            :class:`~reliability_lab.budget.RatioBudgetConfig` shared by every order's retries
            (no effect without ``retry``), or None.
        bulkhead: a :class:`~reliability_lab.bulkhead.BulkheadConfig`, or None.
        throttle: a :class:`~reliability_lab.throttle.ThrottleConfig` (adaptive client-side
            throttling), or None.
        attempt_timeout: seconds per attempt, in [0, 1e6]; 0 is none (the order deadline still
            caps each attempt).
        composition: ``"retry_outside_breaker"`` (a breaker rejection is permanent and stops the
            retry loop) or ``"breaker_outside_retry"`` (the breaker admits the whole retry loop
            once and records its final result).
        fallback: what a failed call falls back to (default: none, the order fails); must be
            none when ``charges``.
        idempotency_keys: whether charges carry the order's idempotency key (a retried charge
            is then applied once). Only meaningful with ``charges``.
        charges: this dependency takes money: the ledger counts its committed calls.
    """

    name: str = "payment"
    faults: Faults = Faults()
    retry: Retry | None = None
    breaker: Breaker | None = None
    budget: Budget | None = None
    bulkhead: BulkheadConfig | None = None
    throttle: ThrottleConfig | None = None
    attempt_timeout: float = 0.0
    composition: Composition = "retry_outside_breaker"
    fallback: Fallback = Fallback()
    idempotency_keys: bool = True
    charges: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"name must contain only letters, digits and underscores, got {self.name!r}"
            )
        _instance("faults", self.faults, (Faults,), "a Faults")
        if self.retry is not None:
            _instance("retry", self.retry, (Retry,), "a Retry or None")
            _set(self, "retry", _normal_retry(self.retry))
        if self.breaker is not None:
            _instance("breaker", self.breaker, (Breaker,), "a Breaker or None")
        if self.budget is not None:
            _instance(
                "budget",
                self.budget,
                (TokenBucketConfig, RatioBudgetConfig),
                "a TokenBucketConfig, a RatioBudgetConfig or None",
            )
        if self.bulkhead is not None:
            _instance("bulkhead", self.bulkhead, (BulkheadConfig,), "a BulkheadConfig or None")
        if self.throttle is not None:
            _instance("throttle", self.throttle, (ThrottleConfig,), "a ThrottleConfig or None")
        _set(
            self,
            "attempt_timeout",
            _duration("attempt_timeout", self.attempt_timeout, allow_zero=True),
        )
        _choice("composition", self.composition, _COMPOSITIONS)
        _instance("fallback", self.fallback, (Fallback,), "a Fallback")
        _bool("idempotency_keys", self.idempotency_keys)
        _bool("charges", self.charges)

    # A Retry compares by identity (it is a live object); dependencies compare its settings.
    def _key(self) -> tuple[object, ...]:
        return tuple(
            _retry_key(self.retry) if f.name == "retry" else getattr(self, f.name)
            for f in dataclasses.fields(self)
        )

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Dependency)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def to_dict(self) -> dict[str, Any]:
        """This dependency as a plain JSON-able dict (see :meth:`Scenario.to_dict`)."""
        return _encode_dependency(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Dependency:
        """The inverse of :meth:`to_dict`; errors name the dotted path from the dependency."""
        name = d.get("name", "payment") if isinstance(d, Mapping) else "payment"
        result: Dependency = _decode_config(cls, d, name if isinstance(name, str) else "")
        return result

    def __reduce__(self) -> tuple[Callable[..., Dependency], tuple[Any, ...]]:
        return (Dependency.from_dict, (self.to_dict(),))


# ------------------------------------------------------------------------------------------------
# Arrivals


@dataclass(frozen=True)
class Poisson:
    """Open-loop Poisson arrivals at ``rate`` orders per second, in (0, 1e7]."""

    rate: float

    def __post_init__(self) -> None:
        _set(self, "rate", _real("rate", self.rate, 0.0, _MAX_RATE, lo_open=True))


@dataclass(frozen=True)
class ConstantRate:
    """Open-loop arrivals evenly spaced at ``rate`` orders per second, in (0, 1e7]."""

    rate: float

    def __post_init__(self) -> None:
        _set(self, "rate", _real("rate", self.rate, 0.0, _MAX_RATE, lo_open=True))


@dataclass(frozen=True)
class RateSegment:
    """A piece of a rate schedule: over ``[start, end)`` the rate moves linearly from
    ``rate_start`` to ``rate_end`` orders per second (equal rates give a step).

    Times in [0, 1e6] with start < end; rates in [0, 1e7].
    """

    start: float
    end: float
    rate_start: float
    rate_end: float

    def __post_init__(self) -> None:
        start = _duration("start", self.start, allow_zero=True)
        end = _duration("end", self.end, allow_zero=True)
        if not _ns(end) > _ns(start):
            raise ValueError(f"end must be greater than start ({start:g}), got {end:g}")
        _set(self, "start", start)
        _set(self, "end", end)
        _set(self, "rate_start", _real("rate_start", self.rate_start, 0.0, _MAX_RATE))
        _set(self, "rate_end", _real("rate_end", self.rate_end, 0.0, _MAX_RATE))


def _segments(pieces: Iterable[tuple[float, float, float, float]]) -> tuple[RateSegment, ...]:
    out = []
    for i, p in enumerate(pieces):
        with _at(f"segments[{i}]"):
            out.append(RateSegment(*p))
    return tuple(out)


@dataclass(frozen=True)
class Schedule:
    """Poisson arrivals whose rate follows a schedule: a sequence of :class:`RateSegment`,
    sorted and non-overlapping; the rate is 0 outside them. Some segment must have a positive
    rate. Segments may also be given as ``(start, end, rate)`` or
    ``(start, end, rate_start, rate_end)`` tuples.

    Helpers: :meth:`steps`, :meth:`spike`, :meth:`ramp`.
    """

    segments: Sequence[RateSegment]

    def __post_init__(self) -> None:
        raw = _items("segments", self.segments)
        if not raw:
            raise ValueError("segments must have at least one segment")
        segments: list[RateSegment] = []
        for i, s in enumerate(raw):
            with _at(f"segments[{i}]"):
                if isinstance(s, tuple) and len(s) in (3, 4):
                    s = RateSegment(s[0], s[1], s[2], s[-1])
            _instance(f"segments[{i}]", s, (RateSegment,), "a RateSegment")
            if i > 0 and _ns(s.start) < _ns(segments[-1].end):
                raise ValueError(
                    f"segments[{i}].start must be >= segments[{i - 1}].end "
                    f"({segments[-1].end:g}), got {s.start:g}: segments must be sorted and "
                    "must not overlap"
                )
            segments.append(s)
        if not any(s.rate_start > 0 or s.rate_end > 0 for s in segments):
            raise ValueError("segments must have a positive rate somewhere")
        _set(self, "segments", tuple(segments))

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
class Trace:
    """Orders arrive at the given times (seconds, ascending; equal times are a burst). Any
    iterable of numbers is accepted (a NumPy array, a pandas column) and stored as a tuple."""

    times: Sequence[float]

    def __post_init__(self) -> None:
        raw = _items("times", self.times)
        if not raw:
            raise ValueError("times must have at least one arrival time")
        times = tuple(_duration(f"times[{i}]", t, allow_zero=True) for i, t in enumerate(raw))
        for i in range(1, len(times)):
            if times[i] < times[i - 1]:
                raise ValueError(
                    f"times must be in ascending order, got times[{i}] = {times[i]:g} after "
                    f"times[{i - 1}] = {times[i - 1]:g}"
                )
        _set(self, "times", times)


@dataclass(frozen=True)
class ClosedLoop:
    """Closed-loop load: ``clients`` customers (in [1, 1e6]), each submitting its next order
    when the previous one ends plus a ``think_time`` drawn from a latency distribution."""

    clients: int = 10
    think_time: Latency = Constant(0.0)

    def __post_init__(self) -> None:
        _set(self, "clients", _int("clients", self.clients, 1, _MAX_CLIENTS))
        _instance("think_time", self.think_time, _LATENCY, _LATENCY_WHAT)


Arrivals: TypeAlias = Poisson | ConstantRate | Schedule | Trace | ClosedLoop
"""Any arrival process."""

_ARRIVALS = (Poisson, ConstantRate, Schedule, Trace, ClosedLoop)


# ------------------------------------------------------------------------------------------------
# The scenario


@dataclass(frozen=True)
class Scenario:
    """The experiment: load, intake, workers, and the dependencies each order calls in sequence.

    Attributes:
        arrivals: where orders come from (:class:`Poisson`, :class:`ConstantRate`,
            :class:`Schedule`, :class:`Trace`, :class:`ClosedLoop`).
        workers: the worker pool, in [1, 100000].
        queue_capacity: the bounded job queue, in [0, 1e7]; a full queue rejects the order.
        duration: arrivals stop here (seconds, in (0, 1e6]); in-flight orders then drain.
        seed: seeds every random draw, in [0, 2**64 - 1]; the same seed gives the same run.
        dependencies: 1 to 16 dependencies with unique names, called in order.
        order_deadline: seconds from arrival to each order's absolute deadline, in [0, 1e6];
            0 is none.
        release_worker_during_backoff: False, the worker sleeps through backoff (the seed lab);
            True parks the order in a delay queue and serves others meanwhile.
        num_keys: orders carry a key in [0, num_keys) (what fallback caches are keyed by), in
            [1, 1e9].
        sample_every: the simulated engine samples time series every this many virtual seconds,
            in [0, 1e6]; 0 samples nothing.
        record_orders: keep one record per order (the ``orders`` table).
        record_events: keep breaker transitions and phase edges (the ``events`` table).
    """

    arrivals: Arrivals = Poisson(100.0)
    workers: int = 8
    queue_capacity: int = 64
    duration: float = 60.0
    seed: int = 0
    dependencies: Sequence[Dependency] = (Dependency("payment"),)
    order_deadline: float = 0.0
    release_worker_during_backoff: bool = False
    num_keys: int = 1000
    sample_every: float = 1.0
    record_orders: bool = True
    record_events: bool = True

    def __post_init__(self) -> None:
        _instance(
            "arrivals",
            self.arrivals,
            _ARRIVALS,
            "a Poisson, ConstantRate, Schedule, Trace or ClosedLoop",
        )
        _set(self, "workers", _int("workers", self.workers, 1, _MAX_WORKERS))
        _set(
            self,
            "queue_capacity",
            _int("queue_capacity", self.queue_capacity, 0, _MAX_QUEUE_CAPACITY),
        )
        _set(self, "duration", _duration("duration", self.duration, allow_zero=False))
        _set(self, "seed", _int("seed", self.seed, 0, _MAX_SEED))
        _set(
            self,
            "order_deadline",
            _duration("order_deadline", self.order_deadline, allow_zero=True),
        )
        _bool("release_worker_during_backoff", self.release_worker_during_backoff)
        _set(self, "num_keys", _int("num_keys", self.num_keys, 1, _MAX_NUM_KEYS))
        _set(self, "sample_every", _duration("sample_every", self.sample_every, allow_zero=True))
        _bool("record_orders", self.record_orders)
        _bool("record_events", self.record_events)
        deps = _items("dependencies", self.dependencies)
        if not 1 <= len(deps) <= _MAX_DEPENDENCIES:
            raise ValueError(
                f"dependencies must have between 1 and {_MAX_DEPENDENCIES} entries, got {len(deps)}"
            )
        for i, d in enumerate(deps):
            _instance(f"dependencies[{i}]", d, (Dependency,), "a Dependency")
            if d.name in _SCENARIO_FIELDS:
                raise ValueError(
                    f'dependencies[{i}].name must not be "{d.name}": it is a scenario field, '
                    "and paths would be ambiguous"
                )
            for j in range(i):
                if deps[j].name == d.name:
                    raise ValueError(
                        f'dependencies[{i}].name "{d.name}" is already used by dependencies[{j}]'
                    )
            if d.charges and d.fallback.kind != "none":
                # A write cannot be replaced by a cached or default answer: the order would
                # complete as paid while nothing was charged (seed 002: degradation does not
                # work for writes). Worded as the native validator words it.
                raise ValueError(
                    f'{d.name}.fallback must be "none" on a dependency that charges (a failed '
                    "charge cannot be served from a fallback: the order would complete without "
                    f'being charged), got "{d.fallback.kind}"'
                )
        _set(self, "dependencies", deps)
        # The whole tree, through the validator the engines use (one source of truth).
        validate = getattr(_core, "validate_scenario", None)
        if validate is not None:
            validate(self.to_dict())

    # -- access by path ----------------------------------------------------------------------

    def dependency(self, name: str) -> Dependency:
        """The dependency called ``name`` (KeyError if there is none)."""
        for d in self.dependencies:
            if d.name == name:
                return d
        raise KeyError(name)

    def get(self, path: str) -> Any:
        """The value at a dotted path, e.g. ``"payment.breaker.open_for"``, ``"workers"``,
        ``"payment.faults.phases[outage].end"``, ``"arrivals.rate"``."""
        obj: Any = self
        done = ""
        for name, index in self._steps(path):
            obj, done = _child(self, obj, name, index, done, path)
        return obj

    def replace(self, changes: Mapping[str, Any] | None = None, /, **fields: Any) -> Scenario:
        """A new, validated scenario with the values at some dotted paths replaced.

        ``changes`` maps paths to values (``{"payment.breaker.open_for": 5.0, "workers": 32}``);
        keyword arguments replace top-level fields. Changes to one object are applied together,
        so ``{"...latency.low": 3, "...latency.high": 4}`` works whatever the order. A path
        under a policy that is None (``"payment.breaker.open_for"`` with no breaker) is an
        error: set the policy to a whole config object first (``"payment.breaker": Breaker()``;
        a dict in ``to_dict()`` form works too). Unknown paths raise ValueError listing close
        matches; invalid values raise ValueError naming the path.
        """
        items = list((changes or {}).items()) + list(fields.items())
        parsed = []
        for path, value in items:
            steps = self._steps(path)
            if steps[0][0] not in _SCENARIO_FIELDS:
                # A dependency by name: its steps live under "dependencies[name]".
                self._dependency_or_fail(steps[0], path)
                steps = [("dependencies", steps[0][0]), *steps[1:]]
            parsed.append((steps, value, path))
        result: Scenario = _apply(self, self, Scenario, parsed, "")
        return result

    def paths(self) -> list[str]:
        """Every path :meth:`get` and :meth:`replace` accept for this scenario (elements of
        numeric lists such as trace times excluded)."""
        out: list[str] = []
        for f in dataclasses.fields(self):
            if f.name == "dependencies":
                out.append("dependencies")
                for d in self.dependencies:
                    out.append(d.name)
                    _collect_paths(d, d.name, out)
            else:
                out.append(f.name)
                _collect_paths(getattr(self, f.name), f.name, out)
        return out

    def _steps(self, path: object) -> list[tuple[str, str | None]]:
        if not isinstance(path, str) or not path:
            raise ValueError(f"a path must be a non-empty dotted string, got {path!r}")
        steps: list[tuple[str, str | None]] = []
        for part in path.split("."):
            m = _STEP.match(part)
            if m is None:
                raise ValueError(f"{path!r} is not a valid path: bad component {part!r}")
            steps.append((m.group(1), m.group(2)))
        return steps

    def _dependency_or_fail(self, step: tuple[str, str | None], path: str) -> Dependency:
        name, index = step
        for d in self.dependencies:
            if d.name == name:
                if index is not None:
                    raise ValueError(f"{name!r} is a dependency, not a list: cannot index it")
                return d
        raise ValueError(_unknown(self, path, name, "the scenario has no field or dependency"))

    # -- dicts and JSON ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The scenario as a plain JSON-able dict.

        Keys are the field names at every level, plus ``"version"`` at the top and a ``"type"``
        tag in every union-valued object: arrivals (``poisson``, ``constant_rate``,
        ``schedule``, ``trace``, ``closed_loop``), latencies (``constant``, ``exponential``,
        ``lognormal``, ``uniform``, ``mixture``), phases (``phase``) and budgets
        (``token_bucket``, ``ratio``). Absent policies are None.
        """
        d: dict[str, Any] = {"version": SCHEMA_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "dependencies":
                d[f.name] = [_encode_dependency(dep) for dep in value]
            else:
                d[f.name] = _encode(value)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Scenario:
        """The inverse of :meth:`to_dict`. Missing keys take their defaults; unknown keys,
        wrong types and invalid values raise ValueError naming the dotted path."""
        if not isinstance(d, Mapping):
            raise ValueError(f"a scenario dict must be a mapping, got {d!r}")
        body = dict(d)
        version = body.pop("version", SCHEMA_VERSION)
        if isinstance(version, bool) or version != SCHEMA_VERSION:
            raise ValueError(f"version must be {SCHEMA_VERSION}, got {version!r}")
        result: Scenario = _decode_config(cls, body, "")
        return result

    def to_json(self, indent: int | None = 2) -> str:
        """The scenario as JSON text (:meth:`to_dict`)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Scenario:
        """The inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def __reduce__(self) -> tuple[Callable[..., Scenario], tuple[Any, ...]]:
        # Through the dict: a Retry holds native state that does not pickle.
        return (Scenario.from_dict, (self.to_dict(),))


_SCENARIO_FIELDS = frozenset(f.name for f in dataclasses.fields(Scenario))
_STEP = re.compile(r"^([A-Za-z0-9_]+)(?:\[([^\[\]]+)\])?$")

# ------------------------------------------------------------------------------------------------
# Encoding and decoding

_TAGS: dict[type, str] = {
    Constant: "constant",
    Exponential: "exponential",
    LogNormal: "lognormal",
    Uniform: "uniform",
    Mixture: "mixture",
    Poisson: "poisson",
    ConstantRate: "constant_rate",
    Schedule: "schedule",
    Trace: "trace",
    ClosedLoop: "closed_loop",
    Phase: "phase",
    TokenBucketConfig: "token_bucket",
    RatioBudgetConfig: "ratio",
}

_CONFIG_CLASSES: frozenset[type] = frozenset(
    {
        Constant,
        Exponential,
        LogNormal,
        Uniform,
        Mixture,
        FailureMix,
        Phase,
        Capacity,
        Faults,
        Fallback,
        Dependency,
        Poisson,
        ConstantRate,
        RateSegment,
        Schedule,
        Trace,
        ClosedLoop,
        Scenario,
        Breaker,
        Retry,
        Backoff,
        TokenBucketConfig,
        RatioBudgetConfig,
        BulkheadConfig,
        ThrottleConfig,
    }
)


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Retry):
        return {
            "max_attempts": value.max_attempts,
            "backoff": _encode(value.backoff),
            "retry_on": list(_retry_names(value.retry_on)),
            "max_retry_after": value.max_retry_after,
        }
    if isinstance(value, Dependency):
        return _encode_dependency(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        d: dict[str, Any] = {}
        tag = _TAGS.get(type(value))
        if tag is not None:
            d["type"] = tag
        for f in dataclasses.fields(value):
            if f.init:
                d[f.name] = _encode(getattr(value, f.name))
        return d
    if isinstance(value, (tuple, list)):
        return [_encode(v) for v in value]
    raise TypeError(f"cannot encode {value!r}")


def _encode_dependency(dep: Dependency) -> dict[str, Any]:
    return {f.name: _encode(getattr(dep, f.name)) for f in dataclasses.fields(dep)}


_HINTS: dict[type, dict[str, Any]] = {}


def _field_hints(cls: type) -> dict[str, Any]:
    """The init fields of a config class and their type hints."""
    cached = _HINTS.get(cls)
    if cached is None:
        cached = _HINTS[cls] = _compute_field_hints(cls)
    return cached


def _compute_field_hints(cls: type) -> dict[str, Any]:
    if cls is Retry:
        return {
            "max_attempts": int,
            "backoff": Backoff,
            "retry_on": Sequence[str],
            "max_retry_after": float,
        }
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _is_union(hint: Any) -> bool:
    return get_origin(hint) in (Union, types.UnionType)


def _config_classes(hint: Any) -> list[type]:
    """The config classes a field's hint admits."""
    args = get_args(hint) if _is_union(hint) else (hint,)
    return [a for a in args if isinstance(a, type) and a in _CONFIG_CLASSES]


def _sequence_element(hint: Any) -> Any | None:
    """The element hint of a Sequence[...] / tuple[..., ...] hint, else None."""
    if get_origin(hint) in (Sequence, tuple):
        args = get_args(hint)
        return args[0] if args else Any
    return None


def _decode(value: Any, hint: Any, path: str) -> Any:
    """Turns dicts (and lists of dicts) into config objects as ``hint`` says; anything else is
    returned as it is, for the owning class to validate."""
    if value is None:
        return None
    element = _sequence_element(hint)
    if element is Dependency:
        return _decode_dependencies(value)
    if element is not None:
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            return value
        items = list(value)
        if element is Phase:
            names = [
                i.get("name") if isinstance(i, Mapping) else getattr(i, "name", None) for i in items
            ]
            labels = _phase_labels(names)
        else:
            labels = [f"{path.rsplit('.', 1)[-1]}[{i}]" for i in range(len(items))]
        parent = path.rsplit(".", 1)[0] if "." in path else ""
        return tuple(
            _decode(v, element, _join(parent, label))
            for v, label in zip(items, labels, strict=True)
        )
    if isinstance(value, Mapping):
        classes = _config_classes(hint)
        if classes:
            return _decode_config(_pick_class(classes, value, path), value, path)
    return value


def _pick_class(classes: list[type], d: Mapping[str, Any], path: str) -> type:
    tags = {_TAGS[c]: c for c in classes if c in _TAGS}
    tag = d.get("type")
    if len(classes) == 1:
        cls = classes[0]
        if tag is not None and tag != _TAGS.get(cls):
            raise ValueError(f"{_join(path, 'type')} must be {_TAGS.get(cls)!r} here, got {tag!r}")
        return cls
    if tag not in tags:
        shown = ", ".join(repr(t) for t in tags)
        what = "is missing" if tag is None else f"is {tag!r}"
        raise ValueError(f"{_join(path, 'type')} must be one of {shown}; it {what}")
    return tags[tag]


def _decode_config(cls: type, d: Any, path: str) -> Any:
    if not isinstance(d, Mapping):
        raise ValueError(f"{path or 'scenario'} must be a dict, got {d!r}")
    hints = _field_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        if key == "type" and cls in _TAGS:
            if value != _TAGS[cls]:
                raise ValueError(f"{_join(path, 'type')} must be {_TAGS[cls]!r}, got {value!r}")
            continue
        if key not in hints:
            close = difflib.get_close_matches(str(key), list(hints), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(
                f"{_join(path, str(key))} is not a field of {cls.__name__} "
                f"(fields: {', '.join(hints)}){hint}"
            )
        if cls is Scenario and key == "dependencies":
            kwargs[key] = _decode_dependencies(value)
        else:
            kwargs[key] = _decode(value, hints[key], _join(path, key))
    with _at(path):
        return cls(**kwargs)


def _decode_dependencies(value: Any) -> Any:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        return value
    out = []
    for i, item in enumerate(value):
        if isinstance(item, Mapping):
            name = item.get("name", "payment")
            path = name if isinstance(name, str) and _NAME.match(name) else f"dependencies[{i}]"
            out.append(_decode_config(Dependency, item, path))
        else:
            out.append(item)
    return tuple(out)


# ------------------------------------------------------------------------------------------------
# Paths: get, replace, suggestions


def _fields_of(obj: Any) -> list[str] | None:
    """The addressable fields of a config object, or None if it is not one."""
    if type(obj) in _CONFIG_CLASSES:
        return list(_field_hints(type(obj)))
    return None


def _collect_paths(obj: Any, path: str, out: list[str]) -> None:
    names = _fields_of(obj)
    if names is None:
        return
    for name in names:
        value = getattr(obj, name)
        p = f"{path}.{name}"
        out.append(p)
        if isinstance(value, tuple) and value and type(value[0]) in _CONFIG_CLASSES:
            labels = (
                _phase_labels([v.name for v in value])
                if isinstance(value[0], Phase)
                else [f"{name}[{i}]" for i in range(len(value))]
            )
            for label, v in zip(labels, value, strict=True):
                out.append(f"{path}.{label}")
                _collect_paths(v, f"{path}.{label}", out)
        else:
            _collect_paths(value, p, out)


def _unknown(sc: Scenario, path: str, name: str, what: str) -> str:
    known = sc.paths()
    close = [
        p
        for p in known
        if p.endswith("." + path.rsplit(".", 1)[-1]) and p.split(".")[0] == path.split(".")[0]
    ]
    close += difflib.get_close_matches(path, known, n=5, cutoff=0.6)
    close = list(dict.fromkeys(close))[:5]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown path {path!r}: {what} {name!r}{hint}"


def _resolve_index(seq: tuple[Any, ...], index: str, where: str) -> int:
    if index.isdigit():
        i = int(index)
        if i >= len(seq):
            raise ValueError(f"{where}[{index}] is out of range: {where} has {len(seq)} entries")
        return i
    matches = [i for i, v in enumerate(seq) if getattr(v, "name", None) == index]
    if len(matches) != 1:
        why = "no entry" if not matches else "more than one entry"
        raise ValueError(f"{where}[{index}]: {where} has {why} named {index!r}; use an index")
    return matches[0]


def _element_path(parent: str, name: str, seq: tuple[Any, ...], i: int) -> str:
    if name == "dependencies" and not parent:
        return str(seq[i].name)
    if name == "phases":
        return _join(parent, _phase_labels([p.name for p in seq])[i])
    return _join(parent, f"{name}[{i}]")


def _child(
    sc: Scenario, obj: Any, name: str, index: str | None, done: str, path: str
) -> tuple[Any, str]:
    """One step of a path: the value and the path walked so far."""
    if obj is sc and name not in _SCENARIO_FIELDS:
        return sc._dependency_or_fail((name, index), path), name
    if obj is None:
        raise ValueError(f"{done} is None: cannot read {path!r}")
    fields = _fields_of(obj)
    if fields is None:
        raise ValueError(f"{done} is a {type(obj).__name__}, which has no field {name!r}")
    if name not in fields:
        raise ValueError(_unknown(sc, path, name, f"{done or 'the scenario'} has no field"))
    value = getattr(obj, name)
    here = _join(done, name)
    if index is None:
        return value, here
    if not isinstance(value, tuple):
        raise ValueError(f"{here} is not a list: cannot index it with [{index}]")
    i = _resolve_index(value, index, here)
    return value[i], _element_path(done, name, value, i)


_Change = tuple[list[tuple[str, str | None]], Any, str]


def _apply(sc: Scenario, obj: Any, hint: Any, changes: list[_Change], path: str) -> Any:
    """``obj`` with ``changes`` (relative steps, value, full path) applied, each object's
    changes in one dataclasses.replace."""
    whole = [c for c in changes if not c[0]]
    rest = [c for c in changes if c[0]]
    if whole:
        obj = _decode(whole[-1][1], hint, path)
    if not rest:
        return obj
    full = rest[0][2]
    if obj is None:
        raise ValueError(
            f"{path} is None: set {path!r} to a whole config object before setting {full!r}"
        )
    fields = _fields_of(obj)
    if fields is None:
        raise ValueError(
            f"{path} is a {type(obj).__name__}, which has no field {rest[0][0][0][0]!r} "
            f"(setting {full!r})"
        )
    hints = _field_hints(type(obj))
    by_field: dict[str, list[_Change]] = {}
    for steps, value, p in rest:
        name = steps[0][0]
        if name not in fields:
            raise ValueError(
                _unknown(
                    sc, p, name, f"{path or 'the scenario'} ({type(obj).__name__}) has no field"
                )
            )
        by_field.setdefault(name, []).append((steps, value, p))
    new: dict[str, Any] = {}
    for name, entries in by_field.items():
        fpath = _join(path, name)
        value = getattr(obj, name)
        plain = [(s[1:], v, p) for s, v, p in entries if s[0][1] is None]
        indexed = [(s, v, p) for s, v, p in entries if s[0][1] is not None]
        if plain:
            value = _apply(sc, value, hints[name], plain, fpath)
        if indexed:
            if not isinstance(value, tuple):
                raise ValueError(f"{fpath} is not a list: cannot index it ({indexed[0][2]!r})")
            element = _sequence_element(hints[name])
            items = list(value)
            by_index: dict[int, list[_Change]] = {}
            for s, v, p in indexed:
                index = s[0][1]
                assert index is not None
                i = _resolve_index(value, index, fpath)
                by_index.setdefault(i, []).append((s[1:], v, p))
            for i, sub in by_index.items():
                items[i] = _apply(sc, items[i], element, sub, _element_path(path, name, value, i))
            value = tuple(items)
        new[name] = value
    with _at(path):
        return dataclasses.replace(obj, **new)


__all__ = [
    "SCHEMA_VERSION",
    "Arrivals",
    "Brownout",
    "Budget",
    "Capacity",
    "ClosedLoop",
    "Composition",
    "Constant",
    "ConstantRate",
    "Dependency",
    "Exponential",
    "FailureMix",
    "Fallback",
    "FallbackKind",
    "Faults",
    "Latency",
    "LogNormal",
    "Mixture",
    "Outage",
    "Phase",
    "Poisson",
    "RateSegment",
    "Recovery",
    "Scenario",
    "Schedule",
    "SimpleLatency",
    "Trace",
    "Uniform",
    "mean_of",
]
