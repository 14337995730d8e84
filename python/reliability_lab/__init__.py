"""reliability-lab: reproduce production reliability problems, measure the patterns that fix them.

The policies (``CircuitBreaker``, ``Retry``, ``Backoff``, ``TokenBucket``, ``RatioBudget``,
``Bulkhead``, ``AdaptiveThrottle``) are usable on their own around any Python callable; the
``Scenario`` tree and ``simulate`` run the whole order pipeline in virtual time, and ``Lab``
runs it live on real threads. ``presets`` holds each seed article's settings by name.
"""

from reliability_lab import presets
from reliability_lab.backoff import JITTER_MODES, Backoff
from reliability_lab.breaker import Breaker, CircuitBreaker, Permit, Transition
from reliability_lab.budget import RatioBudget, RatioBudgetConfig, TokenBucket, TokenBucketConfig
from reliability_lab.bulkhead import Bulkhead, BulkheadConfig
from reliability_lab.clock import Clock, ManualClock, SteadyClock, default_clock
from reliability_lab.errors import (
    BreakerHalfOpenFull,
    BreakerOpen,
    BulkheadClosed,
    BulkheadFull,
    Cancelled,
    DeadlineExceeded,
    Rejected,
    ReliabilityLabError,
    RetryBudgetExhausted,
    RetryError,
    RetryExhausted,
    Throttled,
)
from reliability_lab.live import (
    TERMINAL_STATES,
    Lab,
    LabClosedError,
    OrderHandle,
    OrderHandles,
    OrderView,
    ShutdownReport,
)
from reliability_lab.optimize import Constraint, Objective, OptimizationResult, optimize
from reliability_lab.retry import Retry, RetryContext, RetryStats, retry
from reliability_lab.scenario import (
    Brownout,
    Capacity,
    ClosedLoop,
    Constant,
    ConstantRate,
    Dependency,
    Exponential,
    FailureMix,
    Fallback,
    Faults,
    LogNormal,
    Mixture,
    Outage,
    Phase,
    Poisson,
    RateSegment,
    Recovery,
    Scenario,
    Schedule,
    Trace,
    Uniform,
)
from reliability_lab.sim import Result, simulate
from reliability_lab.sweep import Range, pareto_front, summarize, sweep
from reliability_lab.throttle import AdaptiveThrottle, ThrottleConfig

__version__ = "0.1.0"

__all__ = [
    "JITTER_MODES",
    "TERMINAL_STATES",
    "AdaptiveThrottle",
    "Backoff",
    "Breaker",
    "BreakerHalfOpenFull",
    "BreakerOpen",
    "Brownout",
    "Bulkhead",
    "BulkheadClosed",
    "BulkheadConfig",
    "BulkheadFull",
    "Cancelled",
    "Capacity",
    "CircuitBreaker",
    "Clock",
    "ClosedLoop",
    "Constant",
    "ConstantRate",
    "Constraint",
    "DeadlineExceeded",
    "Dependency",
    "Exponential",
    "FailureMix",
    "Fallback",
    "Faults",
    "Lab",
    "LabClosedError",
    "LogNormal",
    "ManualClock",
    "Mixture",
    "Objective",
    "OptimizationResult",
    "OrderHandle",
    "OrderHandles",
    "OrderView",
    "Outage",
    "Permit",
    "Phase",
    "Poisson",
    "Range",
    "RateSegment",
    "RatioBudget",
    "RatioBudgetConfig",
    "Recovery",
    "Rejected",
    "ReliabilityLabError",
    "Result",
    "Retry",
    "RetryBudgetExhausted",
    "RetryContext",
    "RetryError",
    "RetryExhausted",
    "RetryStats",
    "Scenario",
    "Schedule",
    "ShutdownReport",
    "SteadyClock",
    "ThrottleConfig",
    "Throttled",
    "TokenBucket",
    "TokenBucketConfig",
    "Trace",
    "Transition",
    "Uniform",
    "default_clock",
    "optimize",
    "pareto_front",
    "presets",
    "retry",
    "simulate",
    "summarize",
    "sweep",
]
