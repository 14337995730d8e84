"""reliability-lab: reproduce production reliability problems, measure the patterns that fix them.

The policies (``CircuitBreaker``, ``Retry``, ``Backoff``, ``TokenBucket``, ``RatioBudget``,
``Bulkhead``, ``AdaptiveThrottle``, ``ConcurrencyLimiter``, ``RateLimiter``) are usable on their
own around any Python callable; the ``Scenario`` tree and ``simulate`` run the whole order
pipeline in virtual time, and ``Lab`` runs it live on real threads. ``presets`` holds each seed
article's settings by name.
"""

from typing import TYPE_CHECKING

from reliability_lab import _deprecated, presets
from reliability_lab.aws_retry import AwsRetry, AwsRetryStats, SendRateLimited
from reliability_lab.backoff import JITTER_MODES, Backoff
from reliability_lab.balancer import LB_KINDS, LoadBalancer, OutlierDetector
from reliability_lab.breaker import Breaker, CircuitBreaker, Permit, Transition
from reliability_lab.budget import RatioBudget, RatioBudgetConfig, TokenBucket, TokenBucketConfig
from reliability_lab.bulkhead import Bulkhead, BulkheadConfig
from reliability_lab.clock import Clock, ManualClock, SteadyClock, default_clock
from reliability_lab.concurrency_limit import (
    Aimd,
    ConcurrencyLimiter,
    EnvoyGradient,
    Gradient2,
    LimitExceeded,
    SampleWindow,
    Vegas,
)
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
from reliability_lab.files import (
    ScenarioFileError,
    Study,
    load_scenario,
    load_study,
    scenario_json_schema,
)
from reliability_lab.hedging import HedgeContext, Hedging, HedgingStats
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
from reliability_lab.rate_limit import RateLimitConfig as RateLimitConfig  # deprecated
from reliability_lab.rate_limit import RateLimited, RateLimiter, RateLimitStats
from reliability_lab.results_io import ResultsMetadata, load_results, save_results
from reliability_lab.retry import Retry, RetryConfig, RetryContext, RetryStats, retry
from reliability_lab.scenario import (
    AwsRetryConfig,
    Brownout,
    Capacity,
    ClosedLoop,
    Constant,
    ConstantRate,
    Dependency,
    Exponential,
    FailureMix,
    Fallback,
    FanOut,
    Faults,
    Hedge,
    Intake,
    Limit,
    LogNormal,
    Mixture,
    Outage,
    OutlierDetection,
    Phase,
    Poisson,
    QueueDiscipline,
    RateLimit,
    RateSegment,
    Recovery,
    ReplicaOverride,
    Replicas,
    Scenario,
    Schedule,
    Service,
    ShedClass,
    Shedding,
    Tenant,
    Trace,
    Uniform,
)
from reliability_lab.sim import Result, simulate
from reliability_lab.stats import (
    BatchMeans,
    Comparison,
    Metastability,
    Replication,
    Selection,
    Warmup,
    batch_means,
    compare,
    kn_select,
    metastability,
    replicate,
    select_best,
    steady_values,
    warmup,
    warmup_mser,
)
from reliability_lab.sweep import Range, pareto_front, summarize, sweep
from reliability_lab.throttle import AdaptiveThrottle, Throttle

__version__ = "0.1.0"

__all__ = [
    "JITTER_MODES",
    "LB_KINDS",
    "TERMINAL_STATES",
    "AdaptiveThrottle",
    "Aimd",
    "AwsRetry",
    "AwsRetryConfig",
    "AwsRetryStats",
    "Backoff",
    "BatchMeans",
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
    "Comparison",
    "ConcurrencyLimiter",
    "Constant",
    "ConstantRate",
    "Constraint",
    "DeadlineExceeded",
    "Dependency",
    "EnvoyGradient",
    "Exponential",
    "FailureMix",
    "Fallback",
    "FanOut",
    "Faults",
    "Gradient2",
    "Hedge",
    "HedgeContext",
    "Hedging",
    "HedgingStats",
    "Intake",
    "Lab",
    "LabClosedError",
    "Limit",
    "LimitExceeded",
    "LoadBalancer",
    "LogNormal",
    "ManualClock",
    "Metastability",
    "Mixture",
    "Objective",
    "OptimizationResult",
    "OrderHandle",
    "OrderHandles",
    "OrderView",
    "Outage",
    "OutlierDetection",
    "OutlierDetector",
    "Permit",
    "Phase",
    "Poisson",
    "QueueDiscipline",
    "Range",
    "RateLimit",
    "RateLimitStats",
    "RateLimited",
    "RateLimiter",
    "RateSegment",
    "RatioBudget",
    "RatioBudgetConfig",
    "Recovery",
    "Rejected",
    "ReliabilityLabError",
    "ReplicaOverride",
    "Replicas",
    "Replication",
    "Result",
    "ResultsMetadata",
    "Retry",
    "RetryBudgetExhausted",
    "RetryConfig",
    "RetryContext",
    "RetryError",
    "RetryExhausted",
    "RetryStats",
    "SampleWindow",
    "Scenario",
    "ScenarioFileError",
    "Schedule",
    "Selection",
    "SendRateLimited",
    "Service",
    "ShedClass",
    "Shedding",
    "ShutdownReport",
    "SteadyClock",
    "Study",
    "Tenant",
    "Throttle",
    "Throttled",
    "TokenBucket",
    "TokenBucketConfig",
    "Trace",
    "Transition",
    "Uniform",
    "Vegas",
    "Warmup",
    "batch_means",
    "compare",
    "default_clock",
    "kn_select",
    "load_results",
    "load_scenario",
    "load_study",
    "metastability",
    "optimize",
    "pareto_front",
    "presets",
    "replicate",
    "retry",
    "save_results",
    "scenario_json_schema",
    "select_best",
    "simulate",
    "steady_values",
    "summarize",
    "sweep",
    "warmup",
    "warmup_mser",
]

if TYPE_CHECKING:
    ThrottleConfig = Throttle  # deprecated: use Throttle
else:
    # Old names kept for one release; each access warns (DeprecationWarning) naming the new one.
    __getattr__ = _deprecated.module_getattr(
        __name__, {"ThrottleConfig": ("reliability_lab.Throttle", lambda: Throttle)}
    )
