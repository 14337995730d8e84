"""A dependency: its fault model and its policy stack (retry, breaker, budget, bulkhead,
throttle, attempt timeout, fallback)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from reliability_lab import _deprecated, _schema
from reliability_lab.breaker import Breaker
from reliability_lab.budget import RatioBudgetConfig, TokenBucketConfig
from reliability_lab.bulkhead import BulkheadConfig
from reliability_lab.retry import Retry, RetryConfig
from reliability_lab.scenario.aws_retry_config import AwsRetryConfig
from reliability_lab.scenario.faults import Faults
from reliability_lab.scenario.hedge import FanOut, Hedge
from reliability_lab.scenario.limit import Limit, RateLimit
from reliability_lab.scenario.replicas import Replicas
from reliability_lab.throttle import Throttle

FallbackKind = Literal["none", "cache", "default", "cache_or_default"]


@dataclass(frozen=True)
class Fallback(_schema.Checked):
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


Budget: TypeAlias = TokenBucketConfig | RatioBudgetConfig
"""A retry budget configuration."""

Composition = Literal["retry_outside_breaker", "breaker_outside_retry"]

# Retry fields that belong to a live Retry only: a Retry given for a scenario's RetryConfig
# (deprecated) must keep their defaults.
_RETRY_LIVE_FIELDS = (
    ("budget", "use Dependency.budget"),
    ("clock", "the engine owns time"),
    ("seed", "the scenario's seed drives every draw"),
    ("timeout", "use Dependency.attempt_timeout or Scenario.order_deadline"),
    ("on_retry", "the engines record retries themselves"),
)


def _normal_retry(retry: Retry) -> RetryConfig:
    """A runtime Retry (deprecated here) as a RetryConfig, with a DeprecationWarning, once its
    runtime-only fields are checked to be unset."""
    _deprecated.warn("a Retry as Dependency.retry", "reliability_lab.RetryConfig", stacklevel=5)
    for attr, why in _RETRY_LIVE_FIELDS:
        value = getattr(retry, attr)
        if value is not None:
            raise ValueError(f"retry.{attr} must be None in a scenario ({why}), got {value!r}")
    if isinstance(retry.max_attempts, bool):
        raise ValueError(f"retry.max_attempts must be an integer, got {retry.max_attempts!r}")
    try:
        return retry.to_config()
    except ValueError:  # the only field a Retry may hold that a config cannot: classes
        raise ValueError(
            f"retry.retry_on must hold outcome names in a scenario, got {retry.retry_on!r}"
        ) from None


def _retry_key(retry: RetryConfig | None) -> object:
    if retry is None:
        return None
    return (
        retry.max_attempts,
        retry.backoff,
        tuple(sorted(retry.retry_on)),
        retry.max_retry_after,
    )


@dataclass(frozen=True, eq=False)
class Dependency:
    """One named dependency with its fault model and its policy stack; any policy may be None.

    Attributes:
        name: letters, digits and underscores; unique in the scenario; its paths start with it
            (``"payment.breaker.open_for"``).
        faults: the fault model.
        retry: a :class:`~reliability_lab.retry.RetryConfig`, or None (one attempt). A runtime
            :class:`~reliability_lab.retry.Retry` is still taken for one release (its budget,
            clock, seed, timeout and on_retry unset): it warns (DeprecationWarning) and is
            converted.
        breaker: a :class:`~reliability_lab.breaker.Breaker`, or None.
        budget: a :class:`~reliability_lab.budget.TokenBucketConfig` or
            :class:`~reliability_lab.budget.RatioBudgetConfig` shared by every order's retries
            (no effect without ``retry``), or None.
        bulkhead: a :class:`~reliability_lab.bulkhead.BulkheadConfig`, or None.
        throttle: a :class:`~reliability_lab.throttle.Throttle` (adaptive client-side
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
        hedge: a :class:`~reliability_lab.scenario.Hedge` (send another copy of a slow call),
            or None.
        fanout: a :class:`~reliability_lab.scenario.FanOut` (send k copies, need m answers), or
            None; not together with ``hedge``.
        replicas: a :class:`~reliability_lab.scenario.Replicas` (a pool of replicas behind a
            load balancer, with optional outlier ejection), or None: one server, as before.
            Both engines run it; the live engine refuses ``set_faults`` on such a dependency.
        aws_retry: an :class:`~reliability_lab.scenario.AwsRetryConfig` (botocore's standard or
            adaptive retry mode runs the retries: retry quota, send-rate limiter), or None; not
            together with ``retry`` or ``budget``.
        limit: a client-side adaptive concurrency limit in front of the dependency (a
            :class:`~reliability_lab.scenario.Limit`): each attempt takes a permit, a refused
            attempt fails the order with reason ``"limited"``; None for no limit. Not together
            with ``hedge`` or ``fanout`` yet.
        rate_limit: a client-side rate limit pacing the dependency's calls (a
            :class:`~reliability_lab.scenario.RateLimit`; a call waits up to its ``max_wait``
            for a permit, else fails with reason ``"rate_limited"``), or None.
        service: the name of a :class:`~reliability_lab.scenario.Service` of the scenario that
            this dependency calls (each attempt is a request to that service, answered when the
            request ends), or None: a leaf with its own ``faults``. With a service, ``faults``
            must keep its default and ``replicas`` and ``charges`` must not be set (the
            service's own dependencies carry them). Both engines run it, hedged or fanned out
            too (each copy is a request of its own to the service).
    """

    name: str = "payment"
    faults: Faults = Faults()  # noqa: RUF009 (frozen: immutable, from another module)
    retry: RetryConfig | None = None
    breaker: Breaker | None = None
    budget: Budget | None = None
    bulkhead: BulkheadConfig | None = None
    throttle: Throttle | None = None
    attempt_timeout: float = 0.0
    composition: Composition = "retry_outside_breaker"
    fallback: Fallback = Fallback()
    idempotency_keys: bool = True
    charges: bool = False
    hedge: Hedge | None = None
    fanout: FanOut | None = None
    replicas: Replicas | None = None
    aws_retry: AwsRetryConfig | None = None
    limit: Limit | None = None
    rate_limit: RateLimit | None = None
    service: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.retry, Retry):  # deprecated: converted (Python only)
            object.__setattr__(self, "retry", _normal_retry(self.retry))
        _schema.check(self)  # the table beside DependencyConfig (cpp/rlab/model/scenario.cc)

    # Dependencies compare retry_on as a set: the order of the outcome names does not matter.
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
        result: dict[str, Any] = _schema.encode(self)
        return result

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Dependency:
        """The inverse of :meth:`to_dict`; errors name the dotted path from the dependency."""
        from reliability_lab.scenario.model import _decode_config

        name = d.get("name", "payment") if isinstance(d, Mapping) else "payment"
        result: Dependency = _decode_config(cls, d, name if isinstance(name, str) else "")
        return result

    def __reduce__(self) -> tuple[Callable[..., Dependency], tuple[Any, ...]]:
        return (Dependency.from_dict, (self.to_dict(),))
