"""The exception hierarchy of reliability-lab.

Every error the lab raises on purpose derives from :class:`ReliabilityLabError`. Local rejections
(the dependency was never called) derive from :class:`Rejected`; a retry loop that gave up raises a
:class:`RetryError` subclass whose ``__cause__`` is the last attempt's exception. Invalid parameters
raise the built-in :class:`ValueError`, naming the parameter and its allowed range.

How the policies read an exception raised by a guarded callable (one mapping, implemented natively
and shared by :class:`~reliability_lab.CircuitBreaker` and :class:`~reliability_lab.Retry`; the
outcome's class then comes from the same table the engines use):

============================================================  =================  ==================
exception                                                     outcome            class
============================================================  =================  ==================
:class:`Rejected` and subclasses                              local rejection    local_rejection
``CANCELLED_TYPES`` (incl. :class:`Cancelled`)                ``cancelled``      caller_gave_up
:class:`DeadlineExceeded`                                     deadline_exceeded  caller_gave_up
``TIMEOUT_TYPES``                                             ``timeout``        dependency_fault
``ConnectionError`` (reset, refused, aborted, broken pipe)    connection_reset   dependency_fault
int ``status_code`` / ``status`` in [300, 599] on the         that status        408, 429, 5xx:
exception or on its ``response`` (httpx, requests, aiohttp)                      dependency_fault;
                                                                                 others:
                                                                                 caller_fault
anything else                                                 ``error``          dependency_fault
============================================================  =================  ==================

A breaker counts dependency faults as failures, caller faults as successes (the dependency
answered) and ignores the rest; a retry never retries the caller giving up or a local rejection.
"""

from __future__ import annotations

import asyncio
import concurrent.futures


class ReliabilityLabError(Exception):
    """Base class of every error raised by reliability-lab's policies and engines."""


class Rejected(ReliabilityLabError):
    """A policy refused the call locally: the guarded function was not called.

    Retry loops treat every rejection as permanent: retrying cannot help until the policy's state
    changes, and hammering it only burns the backoff budget.
    """


class BreakerOpen(Rejected):
    """The circuit breaker is open: calls fail fast until ``retry_in`` seconds have passed.

    Raised from native code on the hot path, so the fields live in ``args`` and the message is
    built only when printed.
    """

    def __init__(self, name: str, retry_in: float) -> None:
        super().__init__(name, retry_in)

    @property
    def name(self) -> str:
        """The breaker's name."""
        return str(self.args[0])

    @property
    def retry_in(self) -> float:
        """Seconds until the breaker admits a half-open probe."""
        return float(self.args[1])

    def __str__(self) -> str:
        return f"circuit breaker {self.name!r} is open (half-open in {self.retry_in:.3f} s)"


class BreakerHalfOpenFull(Rejected):
    """The breaker is half-open and every probe slot is taken: the second rejection type.

    Code that only checks for :class:`BreakerOpen` misses this one during recovery; catch
    :class:`Rejected` (or both) instead.
    """

    def __init__(self, name: str, max_calls: int) -> None:
        super().__init__(name, max_calls)

    @property
    def name(self) -> str:
        """The breaker's name."""
        return str(self.args[0])

    @property
    def max_calls(self) -> int:
        """The breaker's ``half_open_max_calls``."""
        return int(self.args[1])

    def __str__(self) -> str:
        return (
            f"circuit breaker {self.name!r} is half-open and all {self.max_calls} probe slot(s)"
            " are taken"
        )


class BulkheadFull(Rejected):
    """The bulkhead has no free slot and no room (or no time left) to wait for one."""

    def __init__(self, name: str, max_concurrent: int, max_waiting: int) -> None:
        super().__init__(name, max_concurrent, max_waiting)

    @property
    def name(self) -> str:
        """The bulkhead's name."""
        return str(self.args[0])

    @property
    def max_concurrent(self) -> int:
        """Calls allowed to run at once."""
        return int(self.args[1])

    @property
    def max_waiting(self) -> int:
        """Calls allowed to wait for a slot."""
        return int(self.args[2])

    def __str__(self) -> str:
        return (
            f"bulkhead {self.name!r} is full ({self.max_concurrent} running,"
            f" {self.max_waiting} may wait)"
        )


class BulkheadClosed(Rejected):
    """The bulkhead was closed: waiters were released and every later acquisition fails."""

    def __init__(self, name: str) -> None:
        super().__init__(name)

    @property
    def name(self) -> str:
        """The bulkhead's name."""
        return str(self.args[0])

    def __str__(self) -> str:
        return f"bulkhead {self.name!r} is closed"


class Throttled(Rejected):
    """The adaptive throttle rejected the call locally (client-side load shedding)."""

    def __init__(self, name: str, probability: float) -> None:
        super().__init__(name, probability)

    @property
    def name(self) -> str:
        """The throttle's name."""
        return str(self.args[0])

    @property
    def probability(self) -> float:
        """The rejection probability at the time of the call."""
        return float(self.args[1])

    def __str__(self) -> str:
        return f"throttle {self.name!r} rejected the call (p_reject = {self.probability:.3f})"


class Cancelled(ReliabilityLabError):
    """The caller cancelled the call (e.g. a retry's ``cancel`` event was set during a backoff).

    Like every cancellation it is neither a success nor a failure for a circuit breaker, and it is
    never retried. ``__cause__`` is the last attempt's exception, if an attempt had run.

    Attributes:
        attempts: attempts made before the cancellation, the first call included.
    """

    def __init__(self, message: str = "cancelled", attempts: int = 0) -> None:
        super().__init__(message)
        self.attempts = attempts


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


#: Exceptions that mean the caller gave up (outcome ``cancelled``): never retried, never counted
#: by a breaker.
CANCELLED_TYPES: tuple[type[BaseException], ...] = (
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
    asyncio.CancelledError,
    concurrent.futures.CancelledError,
    Cancelled,
)

#: Exceptions that mean an attempt timed out (outcome ``timeout``); one type since Python 3.11.
TIMEOUT_TYPES: tuple[type[BaseException], ...] = tuple(
    dict.fromkeys((TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError))
)


__all__ = [
    "CANCELLED_TYPES",
    "TIMEOUT_TYPES",
    "BreakerHalfOpenFull",
    "BreakerOpen",
    "BulkheadClosed",
    "BulkheadFull",
    "Cancelled",
    "DeadlineExceeded",
    "Rejected",
    "ReliabilityLabError",
    "RetryBudgetExhausted",
    "RetryError",
    "RetryExhausted",
    "Throttled",
]
