"""The simulated engine: run a :class:`~reliability_lab.scenario.Scenario` in virtual time.

``simulate(scenario)`` runs the native discrete-event engine with the GIL released and returns a
:class:`Result` with pandas views of what happened. The same seed gives identical results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from prometheus_client.core import Metric

from reliability_lab import _core
from reliability_lab.metrics import LATENCY_BOUNDS, exposition, families_from_totals
from reliability_lab.scenario import Scenario
from reliability_lab.service_results import service_frame
from reliability_lab.shedding_results import (
    order_origin_columns,
    origin_summary,
    origin_tables,
)

#: The default cap on events processed by one run.
DEFAULT_MAX_EVENTS = 4_000_000_000


@dataclass
class Result:
    """What one simulated run produced.

    Attributes:
        scenario: the scenario that was run.
        summary: headline numbers (success rate, goodput, latency quantiles, load amplification,
            breaker trips, time to detect / recover per fault phase, double charges, ...).
        orders: one row per order (``None`` when the scenario keeps no per-order records).
        timeseries: one row per ``sample_every`` virtual seconds (past the first 1000 of the
            drain, at doubling intervals: see ``Scenario.sample_every``); flows are per
            interval (the row's ``t`` minus the previous row's), gauges (queue depth, busy
            workers, breaker state) are levels at the sample time. With service graphs,
            each declared service's ``service.<name>.*`` columns come last (arrivals and
            ended requests by status per interval; ``queue_depth``, ``busy_workers``,
            ``in_flight`` at the sample).
        events: breaker transitions, fault phase edges and replica ejections / returns
            (``kind`` ``"ejection"`` or ``"return"``, ``from`` ``"replica <i>"``, ``to`` the
            reason), per-replica breaker transitions (``kind`` ``"replica_breaker"``, ``from``
            ``"replica <i>"``, ``to`` the new state; at most 4096 per dependency), the hedge
            budget's edges (``kind`` ``"hedge_budget_dry"``: hedges started
            being denied, ``"hedge_budget_refill"``: a whole token again), in
            time order.
        totals: the raw counters the native engine returned.
        classes: with ``intake.shedding``, one row per criticality class (arrived, admitted,
            shed, queue_full, completed, other_end, success_rate, goodput, latency quantiles
            of completed orders); None otherwise.
        tenants: likewise, one row per tenant.
    """

    scenario: Scenario
    summary: pd.Series
    orders: pd.DataFrame | None
    timeseries: pd.DataFrame
    events: pd.DataFrame
    totals: dict[str, Any] = field(repr=False)
    classes: pd.DataFrame | None = field(default=None, repr=False)
    tenants: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def metrics(self) -> list[Metric]:
        """The run's totals as Prometheus metric families (the live engine's names)."""
        return families_from_totals(self.totals)

    @property
    def replicas(self) -> pd.DataFrame:
        """One row per replica of every dependency with ``replicas``: ``dependency``,
        ``replica``, ``calls`` (attempts sent to it), ``failures`` (dependency faults),
        ``abandoned`` (attempts the caller gave up on: cancelled copies, deadlines),
        ``ejections``, ``outstanding`` (attempts not ended: 0 after a drained run) and
        ``mean_latency`` (seconds, over answered attempts); with per-replica breakers
        (``Replicas.breaker``) also ``breaker_state`` (``"closed"``, ``"open"`` or
        ``"half_open"`` after its last call), ``breaker_opened`` (times it opened) and
        ``breaker_probes`` (half-open probe slots taken: 0 after a drained run), NaN for the
        dependencies without. Empty without replicas."""
        return replica_frame(self.totals)

    @property
    def services(self) -> pd.DataFrame:
        """Service graphs: one row per service, the root first (arrivals, completed, failed,
        rejected, expired, amplification = calls per user order, latency mean / p50 / p99,
        wasted work); see :func:`reliability_lab.service_results.service_frame`. Empty for a
        single-service scenario. Per-service dependency rows are in ``totals["dependencies"]``
        (named ``"<service>.<dependency>"``, with a ``service`` key)."""
        return service_frame(self.totals)

    @property
    def replica_load(self) -> pd.DataFrame:
        """The share of the run each replica spent with k attempts outstanding (waiting in its
        line or in service, as its caller sees it): one row per (``dependency``, ``replica``),
        columns k = 0 .. 15 (the last: 15 or more). ``1 - cumsum`` along a row is the
        queue-length tail P(Q >= k) of the supermarket model."""
        rows, index = [], []
        for dep in self.totals["dependencies"]:
            reps = dep.get("replicas")
            if reps is None:
                continue
            for i, times in enumerate(reps["load_time"]):
                total = sum(times)
                rows.append([t / total if total > 0 else math.nan for t in times])
                index.append((dep["name"], i))
        out: pd.DataFrame = pd.DataFrame(
            rows,
            index=pd.MultiIndex.from_tuples(index, names=["dependency", "replica"]),
            columns=range(16),
        )
        return out

    def metrics_text(self) -> str:
        """The metric families in Prometheus text exposition format."""
        return exposition(self.metrics)

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"Result(arrived={int(s['arrived'])}, success_rate={s['success_rate']:.4f}, "
            f"p99={s['latency_p99']:.4f}s, calls_per_order={s['calls_per_order']:.3f})"
        )


def simulate(
    scenario: Scenario, *, until: float | None = None, max_events: int = DEFAULT_MAX_EVENTS
) -> Result:
    """Runs ``scenario`` in virtual time and returns its :class:`Result`.

    Args:
        scenario: what to run.
        until: stop at this virtual time even if orders are still in flight (they are then
            reported as in flight); by default arrivals stop at ``scenario.duration`` and the
            run continues until every order is terminal.
        max_events: a run needing more events stops with ``RuntimeError`` instead of hanging.
    """
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario must be a Scenario, got {type(scenario).__name__}")
    if until is not None and not (math.isfinite(until) and until >= 0):
        raise ValueError(f"until must be a finite number >= 0, got {until!r}")
    if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 1:
        raise ValueError(f"max_events must be an integer >= 1, got {max_events!r}")
    raw = _core.simulate(
        scenario.compiled(),
        sample_every=float(scenario.sample_every) if scenario.sample_every else 0.0,
        record_orders=bool(scenario.record_orders),
        record_events=bool(scenario.record_events),
        until=-1.0 if until is None else float(until),
        max_events=max_events,
        latency_bounds=list(LATENCY_BOUNDS),
    )
    return _build_result(scenario, raw)


def _build_result(scenario: Scenario, raw: dict[str, Any]) -> Result:
    status_names: list[str] = raw.pop("status_names")
    reason_names: list[str] = raw.pop("reason_names")
    orders = None
    if raw.get("orders") is not None:
        cols = raw.pop("orders")
        statuses, reasons = pd.Index(status_names), pd.Index(reason_names)
        orders = pd.DataFrame(
            {
                "arrival": cols["arrival"],
                "start": cols["start"],
                "end": cols["end"],
                "status": pd.Categorical.from_codes(cols["status"], categories=statuses),
                "reason": pd.Categorical.from_codes(cols["reason"], categories=reasons),
                "attempts": cols["attempts"],
                "degraded": cols["degraded"],
                "charges": cols["charges"],
                "applied_charges": cols["applied_charges"],
            },
            copy=False,  # the native columns are fresh: adopt them instead of copying
        )
        shedding = scenario.intake.shedding
        tenant_names = shedding.tenant_names() if shedding is not None else [""]
        for name, column in order_origin_columns(cols, tenant_names).items():
            orders[name] = column
        orders["latency"] = orders["end"] - orders["arrival"]
        orders["queue_wait"] = orders["start"] - orders["arrival"]
        orders.index.name = "order"
    else:
        raw.pop("orders", None)
    timeseries = pd.DataFrame(raw.pop("timeseries"))
    event_rows = raw.pop("events")
    events = pd.DataFrame(event_rows, columns=["t", "dependency", "kind", "from", "to"])
    summary = pd.Series(
        _summary_values({"workers": scenario.workers}, {**raw, "events": event_rows}),
        dtype=float,
        name="summary",
    )
    classes, tenants = origin_tables(raw)
    return Result(scenario, summary, orders, timeseries, events, raw, classes, tenants)


_REPLICA_COLUMNS = ("calls", "failures", "abandoned", "ejections", "outstanding", "mean_latency")
_REPLICA_BREAKER_COLUMNS = ("breaker_state", "breaker_opened", "breaker_probes")


def replica_frame(totals: Mapping[str, Any]) -> pd.DataFrame:
    """The per-replica table of :attr:`Result.replicas`, from an engine's raw totals."""
    frames = []
    for dep in totals["dependencies"]:
        reps = dep.get("replicas")
        if reps is None:
            continue
        n = len(reps["calls"])
        frame = pd.DataFrame({"dependency": [dep["name"]] * n, "replica": range(n)})
        for col in _REPLICA_COLUMNS:
            frame[col] = reps[col]
        for col in _REPLICA_BREAKER_COLUMNS:  # per-replica breakers only
            if col in reps:
                frame[col] = reps[col]
        frames.append(frame)
    out: pd.DataFrame = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["dependency", "replica", *_REPLICA_COLUMNS])
    )
    return out


def _summary_values(d: Mapping[str, Any], raw: Mapping[str, Any]) -> dict[str, float]:
    """``Result.summary`` as a plain dict of floats, from the native engine's raw totals and the
    scenario as a dict (``workers`` is read from it). Shared by simulate() and the summary-only
    path of sweep(), which skips pandas."""
    nan = math.nan
    counts = raw["counts"]
    arrived = counts["arrived"]
    end = raw["end"]
    lat = raw["latency_completed"]
    has_lat = bool(lat["count"])
    qw = raw["queue_wait"]
    s: dict[str, float] = {
        "arrived": arrived,
        "completed": counts["completed"],
        "failed": counts["failed"],
        "rejected": counts["rejected"],
        "expired": counts["expired"],
        "cancelled": counts["cancelled"],
        "in_flight": raw["in_flight"],
        "success_rate": counts["completed"] / arrived if arrived else nan,
        "goodput": counts["completed"] / end if end > 0 else nan,
        "latency_mean": lat["mean"] if has_lat else nan,
        "latency_p50": lat["p50"] if has_lat else nan,
        "latency_p95": lat["p95"] if has_lat else nan,
        "latency_p99": lat["p99"] if has_lat else nan,
        "latency_max": lat["max"] if has_lat else nan,
        "queue_wait_mean": qw["mean"] if qw["count"] else nan,
        "degraded_fraction": raw["degraded"] / arrived if arrived else nan,
        "double_charged_orders": raw["double_charged_orders"],
        "charges": raw["charges"],
        "applied_charges": raw["applied_charges"],
        "utilization": raw["busy_integral"] / (d["workers"] * end) if end > 0 else nan,
        "mean_in_system": raw["in_system_integral"] / end if end > 0 else nan,
        "mean_sojourn": raw["sojourn_sum"] / arrived if arrived else nan,
        "end_time": end,
        "events_processed": raw["events_processed"],
    }
    for reason, n in raw["reasons"].items():
        s[f"failed_{reason}"] = n
    events = raw.get("events") or []
    total_calls = 0
    for dep in raw["dependencies"]:
        name = dep["name"]
        total_calls += dep["calls"]
        s[f"{name}.calls"] = dep["calls"]
        s[f"{name}.calls_per_order"] = dep["calls"] / arrived if arrived else nan
        s[f"{name}.retries"] = dep["retries"]
        s[f"{name}.trips"] = dep["trips"]
        s[f"{name}.rejected_breaker"] = dep["rejected_breaker"]
        s[f"{name}.fallbacks"] = dep["fallbacks"]
        s[f"{name}.wasted_service"] = dep["wasted_service"]
        if "hedges" in dep:  # a hedged or fanned-out dependency
            s[f"{name}.hedges"] = dep["hedges"]
            s[f"{name}.hedges_won"] = dep["hedges_won"]
            s[f"{name}.hedges_denied"] = dep["hedges_denied"]
            s[f"{name}.cancelled"] = dep["cancelled"]
            s[f"{name}.wasted_attempt_seconds"] = dep["wasted_attempt_seconds"]
        if "replicas" in dep:  # a pool of replicas
            s[f"{name}.ejections"] = sum(dep["replicas"]["ejections"])
            s[f"{name}.panic_picks"] = dep["panic_picks"]
        if "rejected_limit" in dep:  # a dependency with a concurrency limit
            s[f"{name}.rejected_limit"] = dep["rejected_limit"]
        if "rejected_rate_limit" in dep:  # a dependency with a rate limit
            s[f"{name}.rejected_rate_limit"] = dep["rejected_rate_limit"]
            s[f"{name}.rate_limit_waits"] = dep["rate_limit_waits"]
        if dep["phases"]:
            transitions = [(e[0], e[4]) for e in events if e[1] == name and e[2] == "breaker"]
            for phase, start, stop in dep["phases"]:
                detect, recover = _detect_recover(transitions, start, stop)
                s[f"{name}.{phase}.time_to_detect"] = detect
                s[f"{name}.{phase}.time_to_recover"] = recover
    s["calls_per_order"] = total_calls / arrived if arrived else nan
    s.update(origin_summary(raw))
    return {k: float(v) for k, v in s.items()}


def _detect_recover(
    transitions: list[tuple[float, str]], start: float, stop: float
) -> tuple[float, float]:
    """From a phase's start to the breaker's first opening inside it, and from its end to the
    breaker closing again (0 if closed at the end); NaN where it never did. ``transitions``:
    (time, new state) of one dependency's breaker, in time order."""
    if not transitions:
        return math.nan, math.nan
    detect = next((t - start for t, to in transitions if start <= t < stop and to == "open"),
                  math.nan)
    state_at_end = "closed"
    for t, to in transitions:
        if t > stop:
            break
        state_at_end = to
    if state_at_end == "closed":
        return detect, 0.0
    recover = next((t - stop for t, to in transitions if t > stop and to == "closed"), math.nan)
    return detect, recover


def littles_law(result: Result) -> tuple[float, float]:
    """(L, λ·W) measured on the run: mean number in system, and arrival rate x mean sojourn."""
    s = result.summary
    lam = s["arrived"] / s["end_time"]
    return float(s["mean_in_system"]), float(lam * s["mean_sojourn"])


__all__ = ["DEFAULT_MAX_EVENTS", "Result", "littles_law", "simulate"]
