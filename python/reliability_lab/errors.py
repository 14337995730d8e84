"""The exception hierarchy of reliability-lab.

Every error the lab raises on purpose derives from :class:`ReliabilityLabError`. Local rejections
(the dependency was never called) derive from :class:`Rejected`; a retry loop that gave up raises a
:class:`RetryError` subclass whose ``__cause__`` is the last attempt's exception. Invalid parameters
raise the built-in :class:`ValueError`, naming the parameter and its allowed range; a value of the
wrong type raises :class:`ConfigTypeError`, which is both a :class:`TypeError` and a
:class:`ValueError`.

The classes are defined by the native core (``reliability_lab._core``), which raises them
directly; this module re-exports them, so ``reliability_lab.errors.BreakerOpen`` is the same
class everywhere.

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

# The classes are created by the native module, which raises them without importing this one;
# they keep this module as their __module__, so tracebacks and pickles name it.
from reliability_lab._core import (
    CANCELLED_TYPES,
    TIMEOUT_TYPES,
    BreakerHalfOpenFull,
    BreakerOpen,
    BulkheadClosed,
    BulkheadFull,
    Cancelled,
    ConfigTypeError,
    DeadlineExceeded,
    Rejected,
    ReliabilityLabError,
    RetryBudgetExhausted,
    RetryError,
    RetryExhausted,
    Throttled,
)

# CANCELLED_TYPES: the exceptions that mean the caller gave up (outcome ``cancelled``), never
# retried, never counted by a breaker: KeyboardInterrupt, SystemExit, GeneratorExit,
# asyncio.CancelledError, concurrent.futures.CancelledError and Cancelled. TIMEOUT_TYPES: those
# that mean an attempt timed out (outcome ``timeout``): TimeoutError and its asyncio and
# concurrent.futures aliases (one type since Python 3.11).

__all__ = [
    "CANCELLED_TYPES",
    "TIMEOUT_TYPES",
    "BreakerHalfOpenFull",
    "BreakerOpen",
    "BulkheadClosed",
    "BulkheadFull",
    "Cancelled",
    "ConfigTypeError",
    "DeadlineExceeded",
    "Rejected",
    "ReliabilityLabError",
    "RetryBudgetExhausted",
    "RetryError",
    "RetryExhausted",
    "Throttled",
]
