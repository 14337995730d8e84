"""The exception hierarchy of reliability-lab.

Every error the lab raises on purpose derives from :class:`ReliabilityLabError`. Local rejections
(the dependency was never called) derive from :class:`Rejected`; a retry loop that gave up raises a
:class:`RetryError` subclass whose ``__cause__`` is the last attempt's exception. Invalid parameters
raise the built-in :class:`ValueError`, naming the parameter and its allowed range.
"""

from __future__ import annotations


class ReliabilityLabError(Exception):
    """Base class of every error raised by reliability-lab's policies and engines."""


class Rejected(ReliabilityLabError):
    """A policy refused the call locally: the guarded function was not called.

    Retry loops treat every rejection as permanent: retrying cannot help until the policy's state
    changes, and hammering it only burns the backoff budget.
    """


class BreakerOpen(Rejected):
    """The circuit breaker is open: calls fail fast until ``retry_in`` seconds have passed."""

    def __init__(self, name: str, retry_in: float) -> None:
        super().__init__(f"circuit breaker {name!r} is open (half-open in {retry_in:.3f} s)")
        self.name = name
        self.retry_in = retry_in


class BreakerHalfOpenFull(Rejected):
    """The breaker is half-open and every probe slot is taken: the second rejection type.

    Code that only checks for :class:`BreakerOpen` misses this one during recovery; catch
    :class:`Rejected` (or both) instead.
    """

    def __init__(self, name: str, max_calls: int) -> None:
        super().__init__(
            f"circuit breaker {name!r} is half-open and all {max_calls} probe slot(s) are taken"
        )
        self.name = name
        self.max_calls = max_calls


class BulkheadFull(Rejected):
    """The bulkhead has no free slot and no room (or no time left) to wait for one."""

    def __init__(self, name: str, max_concurrent: int, max_waiting: int) -> None:
        super().__init__(
            f"bulkhead {name!r} is full ({max_concurrent} running, {max_waiting} may wait)"
        )
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_waiting = max_waiting


class Throttled(Rejected):
    """The adaptive throttle rejected the call locally (client-side load shedding)."""

    def __init__(self, name: str, probability: float) -> None:
        super().__init__(f"throttle {name!r} rejected the call (p_reject = {probability:.3f})")
        self.name = name
        self.probability = probability


class RetryError(ReliabilityLabError):
    """A retry loop ended without success; ``__cause__`` holds the last attempt's exception.

    Attributes:
        attempts: attempts made, the first call included.
        reason: ``"exhausted"``, ``"deadline"`` or ``"budget"``.
    """

    reason = "error"

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class RetryExhausted(RetryError):
    """Every one of ``max_attempts`` attempts failed with a retryable outcome."""

    reason = "exhausted"


class DeadlineExceeded(RetryError):
    """The caller's deadline passed, or the next backoff sleep would have ended after it."""

    reason = "deadline"


class RetryBudgetExhausted(RetryError):
    """The retry budget refused the next retry (retry storms are capped by design)."""

    reason = "budget"


__all__ = [
    "BreakerHalfOpenFull",
    "BreakerOpen",
    "BulkheadFull",
    "DeadlineExceeded",
    "Rejected",
    "ReliabilityLabError",
    "RetryBudgetExhausted",
    "RetryError",
    "RetryExhausted",
    "Throttled",
]
