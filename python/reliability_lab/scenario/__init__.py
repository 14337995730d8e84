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
            retry=RetryConfig(max_attempts=4, backoff=Backoff(initial=0.1, max_delay=2)),
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

The package is split by concern: ``latency``, ``faults``, ``arrivals``, ``dependency`` and
``model`` (the Scenario, its dict form and its paths), over the field tables (``_schema``);
import from ``reliability_lab.scenario`` itself.
"""

from __future__ import annotations

from reliability_lab.scenario.arrivals import (
    Arrivals,
    ClosedLoop,
    ConstantRate,
    Poisson,
    RateSegment,
    Schedule,
    Trace,
)
from reliability_lab.scenario.aws_retry_config import AwsRetryConfig
from reliability_lab.scenario.dependency import (
    Budget,
    Composition,
    Dependency,
    Fallback,
    FallbackKind,
)
from reliability_lab.scenario.faults import (
    Brownout,
    Capacity,
    FailureMix,
    Faults,
    Outage,
    Phase,
    Recovery,
)
from reliability_lab.scenario.hedge import FanOut, Hedge
from reliability_lab.scenario.intake import Intake
from reliability_lab.scenario.latency import (
    Constant,
    Exponential,
    Latency,
    LogNormal,
    Mixture,
    SimpleLatency,
    Uniform,
    mean_of,
)
from reliability_lab.scenario.limit import Limit, RateLimit

# The private names re-exported here are the codec's tables, read by reliability_lab.files.
from reliability_lab.scenario.model import _CONFIG_CLASSES as _CONFIG_CLASSES
from reliability_lab.scenario.model import _SCENARIO_FIELDS as _SCENARIO_FIELDS
from reliability_lab.scenario.model import SCHEMA_VERSION, Scenario
from reliability_lab.scenario.model import _field_hints as _field_hints
from reliability_lab.scenario.model import _tag as _tag
from reliability_lab.scenario.queue_discipline import QueueDiscipline, QueueDisciplineKind
from reliability_lab.scenario.replicas import (
    BalancerKind,
    OutlierDetection,
    ReplicaOverride,
    Replicas,
)
from reliability_lab.scenario.service import Service
from reliability_lab.scenario.shedding import ShedClass, Shedding, Tenant

__all__ = [
    "SCHEMA_VERSION",
    "Arrivals",
    "AwsRetryConfig",
    "BalancerKind",
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
    "FanOut",
    "Faults",
    "Hedge",
    "Intake",
    "Latency",
    "Limit",
    "LogNormal",
    "Mixture",
    "Outage",
    "OutlierDetection",
    "Phase",
    "Poisson",
    "QueueDiscipline",
    "QueueDisciplineKind",
    "RateLimit",
    "RateSegment",
    "Recovery",
    "ReplicaOverride",
    "Replicas",
    "Scenario",
    "Schedule",
    "Service",
    "ShedClass",
    "Shedding",
    "SimpleLatency",
    "Tenant",
    "Trace",
    "Uniform",
    "mean_of",
]
