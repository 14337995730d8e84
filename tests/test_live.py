"""The live engine from Python: handles, shutdown on every exit path, metrics, logs.

Every test here runs in well under 5 s of wall time and asserts nothing about durations: the
machine may be loaded, so only outcomes (states, counts, parsed metrics) are checked.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import reliability_lab as rl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from reliability_lab.live import TERMINAL_STATES, Lab, LabClosedError, OrderHandle


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
        retry=rl.RetryConfig(max_attempts=3, backoff=rl.Backoff(initial=0.0005, max_delay=0.001)),
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
        retry=rl.RetryConfig(max_attempts=3, backoff=rl.Backoff(initial=0.001, max_delay=0.004)),
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


# --- metrics completeness --------------------------------------------------------------------


def test_metric_families_cover_the_issue_and_use_fixed_labels() -> None:
    dep = rl.Dependency(
        "payment",
        faults=rl.Faults(failure_rate=0.5, latency=rl.Constant(0.0005)),
        retry=rl.RetryConfig(max_attempts=2, backoff=rl.Backoff(initial=0.0005, max_delay=0.001)),
        breaker=rl.Breaker(consecutive_failures=50),
        bulkhead=rl.BulkheadConfig(max_concurrent=2),
    )
    with Lab(scenario(dependency=dep)) as lab:
        for h in lab.submit_many(30):
            h.wait(timeout=10)
        families = {f.name: f for f in text_string_to_metric_families(lab.metrics_text())}
    retry_results = {
        s.labels["result"] for s in families["rlab_retry_attempts"].samples if "result" in s.labels
    }
    assert retry_results == {
        "retried",
        "succeeded",
        "exhausted",
        "permanent_failure",
        "deadline",
        "budget_exhausted",
    }
    changes = families["rlab_breaker_transitions"].samples
    assert {(s.labels["from"], s.labels["to"]) for s in changes} >= {
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    }
    state = {s.labels["state"]: s.value for s in families["rlab_breaker_state"].samples}
    assert state == {"closed": 1.0, "open": 0.0, "half_open": 0.0}
    policies = {s.labels["policy"] for s in families["rlab_policy_rejections"].samples}
    assert "bulkhead" in policies
    assert "rlab_dependency_failure_outcomes" in families
    assert families["rlab_busy_workers"].samples[0].value == 0.0
    statuses = {s.labels["status"] for s in families["rlab_worker_jobs"].samples}
    assert statuses == set(TERMINAL_STATES)
    # Every label value comes from a fixed set: nothing carries an order id or a free string.
    for fam in families.values():
        for s in fam.samples:
            for name, value in s.labels.items():
                if name in ("le", "dependency"):
                    continue
                assert not any(ch.isdigit() for ch in value), (fam.name, name, value)


def test_retries_given_up_are_logged_as_json(caplog: pytest.LogCaptureFixture) -> None:
    dep = rl.Dependency(
        "payment",
        faults=rl.Faults(failure_rate=1.0, latency=rl.Constant(0.0005)),
        retry=rl.RetryConfig(max_attempts=2, backoff=rl.Backoff(initial=0.0005, max_delay=0.001)),
    )
    caplog.set_level(logging.INFO, logger="reliability_lab")
    with Lab(scenario(dependency=dep)) as lab:
        assert all(h.wait(timeout=10) for h in lab.submit_many(5))
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "reliability_lab"]
    given_up = [e for e in events if e["event"] == "retries_given_up"]
    assert sum(e["count"] for e in given_up if e["result"] == "exhausted") == 5


# --- service hooks ---------------------------------------------------------------------------


def charging(idempotency_keys: bool = True) -> rl.Scenario:
    dep = rl.Dependency(
        "payment",
        faults=rl.Faults(latency=rl.Constant(0.0005)),
        charges=True,
        idempotency_keys=idempotency_keys,
    )
    return scenario(dependency=dep, queue_capacity=256)


def run_keys(lab: Lab, keys: list[str]) -> list[OrderHandle]:
    handles = [lab.submit(idempotency_key=k) for k in keys]
    assert all(h.wait(timeout=10) for h in handles)
    return handles


def test_idempotency_keys_deduplicate_charges_in_memory() -> None:
    with Lab(charging()) as lab:
        handles = run_keys(lab, ["a", "a", "b"])
        applied = [h.view().applied_charges for h in handles]
        assert sorted(applied[:2]) == [0, 1] and applied[2] == 1  # the two "a" orders race
        with pytest.raises(ValueError, match="idempotency_key"):
            lab.submit(idempotency_key="has space")
        with pytest.raises(ValueError, match="idempotency_key"):
            lab.submit(idempotency_key="")
        with pytest.raises(TypeError, match="idempotency_key"):
            lab.submit(idempotency_key=5)  # type: ignore[arg-type]
    assert lab.result.summary["arrived"] == 3


@pytest.mark.parametrize("idempotency_keys", [True, False])
def test_durable_ledger_across_restarts(tmp_path: Path, idempotency_keys: bool) -> None:
    ledger = tmp_path / "payments.ledger"
    keys = [f"order-{i}" for i in range(10)]
    for _run in range(2):  # the second run re-drives every order, as after a kill -9
        with Lab(charging(idempotency_keys), ledger_path=ledger) as lab:
            run_keys(lab, keys)
            info = lab.internals()["ledger"]
            assert info["path"] == str(ledger)
    lines = ledger.read_text().splitlines()
    counts = Counter(lines)
    assert set(counts) == {f"payment\t{k}" for k in keys}
    if idempotency_keys:
        assert all(n == 1 for n in counts.values())  # nothing charged twice
        assert lab.result.summary["applied_charges"] == 0
    else:
        assert all(n == 2 for n in counts.values())  # the check can fail: double charges
        assert info["double_charged"] == 10


def test_malformed_ledger_is_a_clear_error(tmp_path: Path) -> None:
    ledger = tmp_path / "bad.ledger"
    ledger.write_text("payment\tk1\nnot a ledger line\n")
    with pytest.raises(ValueError, match="line 2 is malformed"):
        Lab(charging(), ledger_path=ledger)


def test_order_events_trace_each_order() -> None:
    with Lab(charging(), order_events=True) as lab:
        handles = lab.submit_many(10)
        assert all(h.wait(timeout=10) for h in handles)
        events = lab.take_order_events()
        assert lab.take_order_events() == []
    by_order: dict[int, list[str]] = {}
    for oid, status, reason, t, attempts, charges, degraded in events:
        by_order.setdefault(oid, []).append(status)
        assert t >= 0.0
        assert degraded is False
        if status == "completed":
            assert (reason, attempts, charges) == ("", 1, 1)
    assert by_order == {h.id: ["queued", "processing", "completed"] for h in handles}
    with Lab(charging()) as lab:
        lab.submit().wait(timeout=10)
        assert lab.take_order_events() == []


def test_set_faults_switches_outcomes_while_running() -> None:
    with Lab(charging()) as lab:
        assert all(h.wait(timeout=10) for h in lab.submit_many(5))
        lab.set_faults("payment", rl.Faults(failure_rate=1.0, latency=rl.Constant(0.0005)))
        down = lab.submit_many(5)
        assert all(h.wait(timeout=10) for h in down)
        assert {h.status for h in down} == {"failed"}
        assert lab.internals()["dependencies"]["payment"]["faults_version"] == 1
        lab.set_faults("payment", rl.Faults(latency=rl.Constant(0.0005)))
        up = lab.submit_many(5)
        assert all(h.wait(timeout=10) for h in up)
        assert {h.status for h in up} == {"completed"}
        with pytest.raises(KeyError, match="inventory"):
            lab.set_faults("inventory", rl.Faults())
        with pytest.raises(TypeError, match="Faults"):
            lab.set_faults("payment", {"failure_rate": 0.5})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="failure_rate"):
            lab.set_faults("payment", rl.Faults(failure_rate=1.5))


def test_internals_snapshot() -> None:
    dep = rl.Dependency(
        "payment", faults=rl.Faults(latency=rl.Constant(0.0005)), breaker=rl.Breaker()
    )
    with Lab(scenario(dependency=dep, workers=3, queue_capacity=32)) as lab:
        info = lab.internals()
    assert info["running"] is True
    assert (info["queue_capacity"], info["workers"], info["queue_depth"]) == (32, 3, 0)
    assert info["dependencies"]["payment"]["breaker_state"] == "closed"
    assert info["dependencies"]["payment"]["in_flight_calls"] == 0
    assert info["ledger"]["path"] is None
    assert lab.internals()["running"] is False


def test_submit_many_handles_are_a_lazy_sequence() -> None:
    with Lab(scenario(queue_capacity=256)) as lab:
        batch = lab.submit_many(30)
        assert len(batch) == 30 and list(batch.ids) == list(range(30))
        assert batch.wait(timeout=10)
        assert [h.id for h in batch[5:8]] == [5, 6, 7]
        assert batch[-1].id == 29 and batch[0].status == "completed"
        assert all(h.done() for h in batch)
        assert len(lab.submit_many(0)) == 0


# --- the native submit and OrderHandle ---------------------------------------------------------


def test_submit_validates_its_arguments_natively() -> None:
    with Lab(scenario(queue_capacity=256)) as lab:
        for key in (-1, 2**31, 2**70, -(2**70), True, 1.5, "3", [1]):
            with pytest.raises(ValueError, match=r"key must be None or an integer in \[0, "):
                lab.submit(key=key)  # type: ignore[arg-type]
        for bad in ("", "has space", "tab\t", "é", "\ud800", "x" * 201, "\x7f"):
            with pytest.raises(ValueError, match="idempotency_key"):
                lab.submit(idempotency_key=bad)
        for wrong in (5, b"abc", ["k"]):
            with pytest.raises(TypeError, match="idempotency_key must be None or a str"):
                lab.submit(idempotency_key=wrong)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="at most 2 arguments"):
            lab.submit(1, "k", 3)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
            lab.submit(nope=1)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="multiple values for argument 'key'"):
            lab.submit(1, key=2)  # type: ignore[misc]
        assert lab.arrived == 0  # nothing invalid was submitted
        good = [
            lab.submit(),
            lab.submit(None, None),
            lab.submit(0),
            lab.submit(2**31 - 1, "k-1"),
            lab.submit(key=7, idempotency_key="x" * 200),
            lab.submit(idempotency_key="~!"),
        ]
        assert [h.id for h in good] == list(range(6))
        assert all(isinstance(h, OrderHandle) for h in good)
        assert all(h.wait(timeout=10) for h in good)
    with pytest.raises(ValueError, match="key"):
        lab.submit(key=-1)  # arguments are checked before the lab's state
    with pytest.raises(LabClosedError, match="no new orders"):
        lab.submit(3, "k-2")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    args=st.lists(
        st.one_of(
            st.none(),
            st.integers(),
            st.booleans(),
            st.floats(allow_nan=True),
            st.text(max_size=250),
            st.binary(max_size=5),
        ),
        max_size=3,
    )
)
def test_submit_never_crashes_on_any_input(args: list[object]) -> None:
    with Lab(scenario(queue_capacity=8), shutdown_timeout=0) as lab:
        try:
            handle = lab.submit(*args)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            assert lab.arrived == 0
        else:
            assert isinstance(handle, OrderHandle) and handle.id == 0
    assert lab.handle(0).done() if lab.arrived else True


def test_order_handle_methods() -> None:
    slow = rl.Dependency("payment", faults=rl.Faults(latency=rl.Constant(30.0)))
    lab = Lab(scenario(dependency=slow, workers=1, queue_capacity=4), shutdown_timeout=0)
    with lab:
        first = lab.submit()
        second = lab.submit(key=2)
        assert first.id == 0 and second.id == 1
        assert first.wait(timeout=0) is False and second.wait(0.01) is False
        assert second.status == "queued" and second.reason == "" and not second.done()
        assert repr(second) == "OrderHandle(id=1, status='queued')"
        with pytest.raises(AttributeError):
            first.id = 5  # type: ignore[misc]
        for bad in (-1.0, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="timeout must be None or a finite number >= 0"):
                first.wait(bad)
        with pytest.raises(TypeError):
            first.wait("1")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            first.wait(1, 2)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="unexpected keyword argument"):
            first.wait(seconds=1)  # type: ignore[call-arg]
        view = second.view()
        assert view.id == 1 and view.status == "queued" and view.attempts == 0
    assert first.status == "cancelled" and first.reason == "shutdown" and first.done()
    assert first.wait() and first.wait(timeout=None)
    assert first.view() == lab.handle(0).view()
    assert [h.id for h in lab.handles] == [0, 1]
    assert all(type(h) is OrderHandle for h in (*lab.handles, lab.handle(1)))
    engine = lab._engine
    assert OrderHandle(engine, 1).status == "cancelled"
    assert OrderHandle(engine=engine, order_id=0).id == 0
    for order_id in (-1, 2, 2**40):
        with pytest.raises(KeyError, match="no order with id"):
            OrderHandle(engine, order_id)
    with pytest.raises(TypeError, match="engine must be a LiveEngine"):
        OrderHandle(object(), 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        OrderHandle(engine, "0")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        type("Sub", (OrderHandle,), {})


def test_a_handle_keeps_its_engine_alive() -> None:
    with Lab(scenario()) as lab:
        handle = lab.submit()
    del lab
    import gc

    gc.collect()
    assert handle.wait(timeout=10) and handle.status == "completed"


@pytest.mark.usefixtures("default_sigint")
def test_ctrl_c_interrupts_a_handle_wait() -> None:
    import _thread
    import threading

    slow = rl.Dependency("payment", faults=rl.Faults(latency=rl.Constant(30.0)))
    with Lab(scenario(dependency=slow, workers=1), shutdown_timeout=0) as lab:
        handle = lab.submit()
        timer = threading.Timer(0.2, _thread.interrupt_main)
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                handle.wait()  # no limit: only the interrupt ends it
        finally:
            timer.cancel()
    assert handle.status == "cancelled"


def test_a_fallback_never_absorbs_the_orders_deadline_live() -> None:
    # A 1 s dependency, a 0.1 s deadline, a default fallback: a few orders, each failed with
    # reason "deadline" at its deadline, none degraded, no fallback counted.
    dep = rl.Dependency(
        "payment", faults=rl.Faults(latency=rl.Constant(1.0)), fallback=rl.Fallback("default")
    )
    with Lab(scenario(dependency=dep, order_deadline=0.1)) as lab:
        handles = lab.submit_many(3)
        assert all(h.wait(timeout=10) for h in handles)
        views = [h.view() for h in handles]
    all_terminal(lab)
    assert [(v.status, v.reason, v.degraded) for v in views] == [("failed", "deadline", False)] * 3
    s = lab.result.summary
    assert s["failed_deadline"] == 3 and s["completed"] == 0
    assert s["payment.fallbacks"] == 0 and s["degraded_fraction"] == 0


def test_a_hung_call_without_timeout_or_deadline_lasts_faults_hang_live() -> None:
    # No attempt timeout, no deadline: a hung call ends after Faults.hang (0.2 s), not never.
    dep = rl.Dependency(
        "payment",
        faults=rl.Faults(failure_rate=1.0, mix=rl.FailureMix(http503=0, timeout=1), hang=0.2),
    )
    with Lab(scenario(dependency=dep)) as lab:
        handles = lab.submit_many(2)
        assert all(h.wait(timeout=10) for h in handles)
        views = [h.view() for h in handles]
    all_terminal(lab)
    assert [v.status for v in views] == ["failed", "failed"]
    # A lower bound only (no upper bound on a loaded machine): the caller did wait the hang out.
    assert all(v.end - v.start >= 0.2 - 1e-3 for v in views)
