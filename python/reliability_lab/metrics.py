"""Prometheus metric families: one set of names for both engines.

The simulated engine builds these families from a run's totals; the live engine exports the same
families from its native registry while it runs. Label values always come from fixed sets
(statuses, reasons, dependency names from the scenario, breaker states), never from request data,
so cardinality is bounded by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from reliability_lab.shedding_results import origin_families

PREFIX = "rlab"

#: Upper bounds (seconds) of the order latency histogram, shared by both engines.
LATENCY_BOUNDS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)

#: Retry results, as the seed lab labels them.
RETRY_RESULTS = ("retried", "succeeded", "exhausted", "permanent_failure", "budget_exhausted",
                 "deadline")

BREAKER_STATES = ("closed", "open", "half_open")


def _replica_families(totals: Mapping[str, Any]) -> list[Metric]:
    """Per-replica families, only when a dependency has replicas. The ``replica`` label is the
    replica's index, bounded by ``Replicas.count`` (at most 1000)."""
    pools = [d for d in totals["dependencies"] if d.get("replicas") is not None]
    if not pools:
        return []
    labels = ["dependency", "replica"]
    calls = CounterMetricFamily(
        f"{PREFIX}_replica_calls", "Attempts sent to a replica.", labels=labels
    )
    failures = CounterMetricFamily(
        f"{PREFIX}_replica_failures", "Attempts a replica failed (dependency faults).",
        labels=labels,
    )
    ejections = CounterMetricFamily(
        f"{PREFIX}_replica_ejections", "Outlier ejections of a replica.", labels=labels
    )
    for dep in pools:
        reps = dep["replicas"]
        for i, (c, f, e) in enumerate(
            zip(reps["calls"], reps["failures"], reps["ejections"], strict=True)
        ):
            key = [dep["name"], str(i)]
            calls.add_metric(key, float(c))
            failures.add_metric(key, float(f))
            ejections.add_metric(key, float(e))
    out: list[Metric] = [calls, failures, ejections]
    with_breakers = [d for d in pools if "breaker_state" in d["replicas"]]
    if with_breakers:  # per-replica breakers (Replicas.breaker)
        trips = CounterMetricFamily(
            f"{PREFIX}_replica_breaker_trips",
            "Transitions of a replica's own breaker into open.",
            labels=labels,
        )
        state = GaugeMetricFamily(
            f"{PREFIX}_replica_breaker_state",
            "1 for the replica breaker's current state, 0 for the others.",
            labels=[*labels, "state"],
        )
        for dep in with_breakers:
            reps = dep["replicas"]
            for i, (st, n) in enumerate(
                zip(reps["breaker_state"], reps["breaker_opened"], strict=True)
            ):
                trips.add_metric([dep["name"], str(i)], float(n))
                for s in BREAKER_STATES:
                    state.add_metric([dep["name"], str(i), s], 1.0 if st == s else 0.0)
        out.extend([trips, state])
    return out


#: The outcomes of ``rlab_service_requests``: a service-graph request's terminal statuses.
SERVICE_OUTCOMES = ("completed", "failed", "rejected", "expired")


def _service_families(totals: Mapping[str, Any]) -> list[Metric]:
    """Service graphs only: per service, its ended requests by outcome and
    the latency of its completed ones. The ``service`` label is ``root`` (the scenario itself:
    its requests are the orders) or a declared ``Scenario.services`` name, so it is bounded by
    the scenario."""
    rows = totals.get("services") or []
    if not rows:
        return []
    requests = CounterMetricFamily(
        f"{PREFIX}_service_requests",
        "Requests a service ended, by outcome (rejected: refused by its queue or intake).",
        labels=["service", "outcome"],
    )
    latency = HistogramMetricFamily(
        f"{PREFIX}_service_latency_seconds",
        "Arrival to end of a service's completed requests.",
        labels=["service"],
    )
    bounds: Sequence[float] = totals["latency_bounds"]
    for s in rows:
        for outcome in SERVICE_OUTCOMES:
            requests.add_metric([s["name"], outcome], float(s["statuses"][outcome]))
        buckets = [(_le(b), float(n)) for b, n in zip(bounds, s["latency_buckets"], strict=True)]
        buckets.append(("+Inf", float(s["latency"]["count"])))
        latency.add_metric([s["name"]], buckets, sum_value=float(s["latency_sum"]))
    return [requests, latency]


def families_from_totals(totals: Mapping[str, Any]) -> list[Metric]:
    """Builds the metric families from an engine's totals (the raw dict a run returns)."""
    out: list[Metric] = []
    jobs = CounterMetricFamily(
        f"{PREFIX}_worker_jobs", "Orders that reached a terminal state, by status.",
        labels=["status"],
    )
    for status in ("completed", "failed", "rejected", "expired", "cancelled"):
        jobs.add_metric([status], float(totals["counts"].get(status, 0)))
    out.append(jobs)

    reasons = CounterMetricFamily(
        f"{PREFIX}_order_failures", "Orders failed or rejected, by reason.", labels=["reason"]
    )
    for reason, n in totals["reasons"].items():
        reasons.add_metric([reason], float(n))
    out.append(reasons)

    arrived = CounterMetricFamily(f"{PREFIX}_orders_arrived", "Orders submitted.")
    arrived.add_metric([], float(totals["counts"]["arrived"]))
    out.append(arrived)

    in_flight = GaugeMetricFamily(f"{PREFIX}_orders_in_flight", "Orders admitted, not terminal.")
    in_flight.add_metric([], float(totals.get("in_flight", 0)))
    out.append(in_flight)

    calls = CounterMetricFamily(
        f"{PREFIX}_dependency_calls", "Attempts sent to a dependency.", labels=["dependency"]
    )
    failures = CounterMetricFamily(
        f"{PREFIX}_dependency_failures",
        "Attempts that did not succeed, by dependency.",
        labels=["dependency"],
    )
    retries = CounterMetricFamily(
        f"{PREFIX}_retry_attempts", "Retry loop events by result.", labels=["dependency", "result"]
    )
    rejections = CounterMetricFamily(
        f"{PREFIX}_policy_rejections",
        "Calls refused locally by a policy.",
        labels=["dependency", "policy"],
    )
    trips = CounterMetricFamily(
        f"{PREFIX}_breaker_trips", "Transitions of a breaker into open.", labels=["dependency"]
    )
    state = GaugeMetricFamily(
        f"{PREFIX}_breaker_state",
        "1 for the breaker's current state, 0 for the others.",
        labels=["dependency", "state"],
    )
    for dep in totals["dependencies"]:
        name = dep["name"]
        calls.add_metric([name], float(dep["calls"]))
        failures.add_metric([name], float(dep["failures"]))
        ends = dep["retry_ends"]
        for label, value in (
            ("retried", dep["retries"]),
            ("succeeded", ends["succeeded"]),
            ("exhausted", ends["exhausted"]),
            ("permanent_failure", ends["permanent"]),
            ("budget_exhausted", ends["budget"]),
            ("deadline", ends["deadline"]),
        ):
            retries.add_metric([name, label], float(value))
        for policy, key in (
            ("breaker", "rejected_breaker"),
            ("bulkhead", "rejected_bulkhead"),
            ("throttle", "rejected_throttle"),
        ):
            rejections.add_metric([name, policy], float(dep[key]))
        trips.add_metric([name], float(dep["trips"]))
        if dep["breaker_state"] is not None:
            for s in BREAKER_STATES:
                state.add_metric([name, s], 1.0 if dep["breaker_state"] == s else 0.0)
    out.extend([calls, failures, retries, rejections, trips, state])
    out.extend(_replica_families(totals))
    out.extend(_round_families(totals["dependencies"]))

    bounds: Sequence[float] = totals["latency_bounds"]
    cumulative: Sequence[int] = totals["latency_buckets"]
    count = totals["latency_terminal"]["count"]
    latency = HistogramMetricFamily(
        f"{PREFIX}_order_latency_seconds", "Arrival to terminal state, admitted orders."
    )
    buckets = [(_le(b), float(n)) for b, n in zip(bounds, cumulative, strict=True)]
    buckets.append(("+Inf", float(count)))
    latency.add_metric([], buckets, sum_value=float(totals["latency_sum"]))
    out.append(latency)
    out.extend(origin_families(totals, PREFIX))  # intake.shedding only
    out.extend(_service_families(totals))  # service graphs only
    return out


def _round_families(deps: Sequence[Mapping[str, Any]]) -> list[Metric]:
    """Hedging / fan-out families, for the dependencies whose calls are rounds (their totals
    carry ``hedges``): the names the live engine exports (cpp/rlab/live/round_metrics.h)."""
    rounds = [d for d in deps if "hedges" in d]
    if not rounds:
        return []
    out: list[Metric] = []
    for key, family, help_text in (
        ("hedges", "dependency_hedges", "Hedge copies sent (included in the dependency's calls)."),
        ("hedges_won", "dependency_hedges_won", "Calls whose winning copy was a hedge."),
        ("hedges_denied", "dependency_hedges_denied", "Hedges the hedge budget refused."),
        ("cancelled", "dependency_copies_cancelled",
         "Hedge or fan-out copies cancelled once their call was decided without them."),
    ):
        counter = CounterMetricFamily(f"{PREFIX}_{family}", help_text, labels=["dependency"])
        for d in rounds:
            counter.add_metric([d["name"]], float(d[key]))
        out.append(counter)
    wasted = GaugeMetricFamily(
        f"{PREFIX}_dependency_wasted_attempt_seconds",
        "Server time of copies cancelled while in service (only grows), read when scraped.",
        labels=["dependency"],
    )
    for d in rounds:
        wasted.add_metric([d["name"]], float(d["wasted_attempt_seconds"]))
    out.append(wasted)
    budgeted = [d for d in rounds if d.get("hedge_tokens", -1.0) >= 0.0]
    if budgeted:
        tokens = GaugeMetricFamily(
            f"{PREFIX}_hedge_budget_tokens",
            "Tokens left in the dependency's hedge budget, read when scraped.",
            labels=["dependency"],
        )
        for d in budgeted:
            tokens.add_metric([d["name"]], float(d["hedge_tokens"]))
        out.append(tokens)
    return out


def _le(bound: float) -> str:
    return repr(float(bound))


class StaticCollector(Collector):
    """A prometheus_client collector serving a fixed list of families."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return iter(self._families)


def exposition(families: Iterable[Metric]) -> str:
    """The Prometheus text exposition of `families`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StaticCollector(families))
    return generate_latest(registry).decode()


__all__ = [
    "BREAKER_STATES",
    "LATENCY_BOUNDS",
    "PREFIX",
    "RETRY_RESULTS",
    "SERVICE_OUTCOMES",
    "StaticCollector",
    "exposition",
    "families_from_totals",
]
