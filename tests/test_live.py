"""The live engine from Python: handles, shutdown on every exit path, metrics, logs.

Every test here runs in well under 5 s of wall time and asserts nothing about durations: the
machine may be loaded, so only outcomes (states, counts, parsed metrics) are checked.
"""

from __future__ import annotations

import json
import logging
import urllib.request

import pytest
import reliability_lab as rl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from reliability_lab.live import TERMINAL_STATES, Lab, LabClosedError


def scenario(**kw: object) -> rl.Scenario:
    """A small, fast scenario: 1 ms calls, four workers, no faults unless asked."""
    fast = rl.Dependency("payment", faults=rl.Faults(latency=rl.Constant(0.001)))
    dep = kw.pop("dependency", fast)
    base: dict[str, object] = {
        "arrivals": rl.Poisson(rate=200.0),
        "workers": 4,
        "queue_capacity": 64,
        "duration": 0.2,
        "seed": 3,
        "sample_every": 0.05,
        "dependencies": [dep],
    }
    base.update(kw)
    return rl.Scenario(**base)  # type: ignore[arg-type]


def all_terminal(lab: Lab) -> None:
    statuses = [h.status for h in lab.handles]
    assert all(s in TERMINAL_STATES for s in statuses), statuses
    s = lab.result.summary
    assert s["arrived"] == lab.arrived == len(statuses)
    assert s["in_flight"] == 0
    total = sum(s[k] for k in ("completed", "failed", "rejected", "expired", "cancelled"))
    assert total == s["arrived"]


def test_submit_wait_and_result_shape() -> None:
    with Lab(scenario()) as lab:
        handles = lab.submit_many(20)
        one = lab.submit()
        assert all(h.wait(timeout=10) for h in [*handles, one])
        assert lab.wait_idle(timeout=10)
        view = one.view()
        assert view.status == "completed" and view.attempts == 1
        assert view.end >= view.arrival
    all_terminal(lab)
    res = lab.result
    assert res.summary["completed"] == 21
    assert res.orders is not None and len(res.orders) == 21
    assert set(res.orders["status"]) == {"completed"}
    assert "queue_depth" in res.timeseries.columns
    assert "payment.calls" in res.timeseries.columns


def test_submit_after_shutdown_raises_a_clear_error() -> None:
    lab = Lab(scenario())
    with pytest.raises(LabClosedError, match="not started"):
        lab.submit()
    with lab:
        lab.submit()
    with pytest.raises(LabClosedError, match="no new orders"):
        lab.submit()
    with pytest.raises(LabClosedError):
        lab.submit_many(3)
    assert lab.shutdown() == lab.shutdown()  # idempotent


def test_exception_in_block_still_shuts_down() -> None:
    slow = rl.Dependency("payment", faults=rl.Faults(latency=rl.Constant(30.0)))
    lab = Lab(scenario(dependency=slow), shutdown_timeout=0.05)
    with pytest.raises(ZeroDivisionError), lab:
        lab.submit_many(10)
        1 / 0  # noqa: B018
    assert not lab.running
    all_terminal(lab)
    assert lab.result.summary["cancelled"] == 10


def test_keyboard_interrupt_cancels_without_grace() -> None:
    slow = rl.Dependency("payment", faults=rl.Faults(latency=rl.Constant(30.0)))
    lab = Lab(scenario(dependency=slow), shutdown_timeout=60.0)
    with pytest.raises(KeyboardInterrupt), lab:
        lab.submit_many(5)
        raise KeyboardInterrupt
    all_terminal(lab)
    assert lab.result.summary["cancelled"] == 5


def test_full_queue_rejects_at_once() -> None:
    slow = rl.Dependency("payment", faults=rl.Faults(latency=rl.Constant(30.0)))
    with Lab(scenario(dependency=slow, workers=1, queue_capacity=2), shutdown_timeout=0) as lab:
        handles = lab.submit_many(10)
        rejected = [h for h in handles if h.status == "rejected"]
        assert len(rejected) >= 7
        assert {h.reason for h in rejected} == {"queue_full"}
    all_terminal(lab)


def test_load_generator_and_closed_loop() -> None:
    closed = rl.ClosedLoop(clients=3, think_time=rl.Constant(0.002))
    for arrivals in (rl.Poisson(rate=300.0), closed):
        with Lab(scenario(arrivals=arrivals, duration=0.15)) as lab:
            lab.start_load()
            assert lab.wait_idle(timeout=10)
            assert not lab.load_running
        all_terminal(lab)
        assert lab.result.summary["arrived"] > 0


def test_metrics_text_parses_and_counts() -> None:
    with Lab(scenario()) as lab:
        for h in lab.submit_many(15):
            h.wait(timeout=10)
        text = lab.metrics_text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        "rlab_worker_jobs",
        "rlab_queue_depth",
        "rlab_busy_workers",
        "rlab_dependency_failures",
        "rlab_retry_attempts",
        "rlab_policy_rejections",
        "rlab_order_latency_seconds",
    ):
        assert name in families, name
    jobs = {
        s.labels["status"]: s.value
        for s in families["rlab_worker_jobs"].samples
        if s.name == "rlab_worker_jobs_total"
    }
    assert jobs["completed"] == 15
    count = [
        s.value
        for s in families["rlab_order_latency_seconds"].samples
        if s.name == "rlab_order_latency_seconds_count"
    ]
    assert count == [15]


def test_serve_metrics_over_http() -> None:
    with Lab(scenario()) as lab:
        lab.submit_many(5)
        lab.wait_idle(timeout=10)
        server, _ = lab.serve_metrics(0)
        try:
            url = f"http://127.0.0.1:{server.server_port}/metrics"
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = resp.read().decode()
        finally:
            server.shutdown()
    names = {f.name for f in text_string_to_metric_families(body)}
    assert "rlab_worker_jobs" in names and "rlab_orders_arrived" in names


def test_outage_logs_breaker_transitions_as_json(caplog: pytest.LogCaptureFixture) -> None:
    dep = rl.Dependency(
        "payment",
        faults=rl.Faults(latency=rl.Constant(0.001), phases=[rl.Outage(start=0.0, end=0.15)]),
        breaker=rl.Breaker(consecutive_failures=3, open_for=0.03),
    )
    seen: list[tuple[str, str]] = []
    caplog.set_level(logging.INFO, logger="reliability_lab")
    lab = Lab(
        scenario(dependency=dep, arrivals=rl.ConstantRate(rate=300.0), duration=0.35),
        on_transition=lambda t, d, frm, to: seen.append((frm, to)),
    )
    with lab:
        lab.start_load()
        lab.wait_idle(timeout=10)
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "reliability_lab"]
    kinds = [e["event"] for e in events]
    assert "lab_started" in kinds and "shutdown_complete" in kinds
    opened = [e for e in events if e["event"] == "breaker_transition" and e["to"] == "open"]
    assert opened and opened[0]["dependency"] == "payment"
    assert ("closed", "open") in seen
    assert seen[-1][1] == "closed"  # recovered after the outage
    assert lab.result.summary["payment.trips"] >= 1


def test_live_agrees_with_simulation_on_a_simple_scenario() -> None:
    dep = rl.Dependency(
        "payment",
        faults=rl.Faults(failure_rate=0.3, latency=rl.Constant(0.0005)),
        retry=rl.Retry(max_attempts=3, backoff=rl.Backoff(initial=0.0005, max_delay=0.001)),
    )
    sc = scenario(dependency=dep, workers=8, queue_capacity=1000)
    with Lab(sc) as lab:
        handles = lab.submit_many(400)
        assert all(h.wait(timeout=10) for h in handles)
    live = lab.result.summary
    sim = rl.simulate(sc.replace(arrivals=rl.Poisson(rate=400.0), duration=5.0)).summary
    # Theory: success 1 - 0.3^3 = 0.973, attempts 1 + 0.3 + 0.09 = 1.39 per order.
    assert abs(live["success_rate"] - sim["success_rate"]) < 0.05
    assert abs(live["calls_per_order"] - sim["calls_per_order"]) < 0.15
    assert abs(live["calls_per_order"] - 1.39) < 0.15


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("submit"), st.integers(1, 30)),
            st.tuples(st.just("shutdown"), st.sampled_from([0.0, 0.002, 0.02])),
        ),
        min_size=1,
        max_size=6,
    ),
    workers=st.integers(1, 4),
    capacity=st.integers(1, 8),
)
def test_interleaved_submits_and_shutdowns_conserve_orders(
    ops: list[tuple[str, float]], workers: int, capacity: int
) -> None:
    dep = rl.Dependency(
        "payment",
        faults=rl.Faults(failure_rate=0.3, latency=rl.Exponential(mean=0.002)),
        retry=rl.Retry(max_attempts=3, backoff=rl.Backoff(initial=0.001, max_delay=0.004)),
    )
    lab = Lab(scenario(dependency=dep, workers=workers, queue_capacity=capacity))
    submitted: list[int] = []
    with lab:
        for op, arg in ops:
            if op == "submit":
                try:
                    submitted.extend(h.id for h in lab.submit_many(int(arg)))
                except LabClosedError:
                    assert not lab.running
            else:
                lab.shutdown(arg)
    assert len(set(submitted)) == len(submitted)
    all_terminal(lab)
    assert lab.arrived == len(submitted)
