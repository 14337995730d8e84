"""Intake rate-limit waits in the live engine (issue 13: ``intake.rate_limit.max_wait > 0``).

An order whose permit is due later, within ``max_wait`` (and within its deadline), is parked off
the submitter's thread, ``pending``, and goes on at its time through ``intake.limit``, the
queue's capacity and the shedder, as in the simulated engine; any other is refused
(``rate_limited``). The live engine has no injected clock: each scenario is scripted with its
orders submitted at once and permits hundreds of milliseconds apart, so that which order waits,
which is refused and how each ends does not depend on the machine's timing (no timed
assertions: only outcomes fixed by the scenario).
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
import reliability_lab as rl
from reliability_lab import Constant, Dependency, Faults, Intake, Limit, Scenario, simulate
from reliability_lab.live import TERMINAL_STATES


def _scenario(
    n: int,
    rate_limit: rl.RateLimit,
    *,
    latency: float = 0.01,
    workers: int = 4,
    queue_capacity: int = 100,
    **kw: object,
) -> Scenario:
    return Scenario(
        arrivals=rl.Trace(tuple(0.0 for _ in range(n))),
        workers=workers,
        queue_capacity=queue_capacity,
        duration=0.1,
        seed=3,
        sample_every=0.1,
        intake=Intake(rate_limit=rate_limit, **kw),  # type: ignore[arg-type]
        dependencies=(Dependency(faults=Faults(latency=Constant(latency))),),
    )


def _ends(orders: pd.DataFrame) -> list[tuple[str, str]]:
    return [(str(s), str(r)) for s, r in zip(orders["status"], orders["reason"], strict=True)]


def _sim_parked(orders: pd.DataFrame) -> list[bool]:
    # In these scenarios an order that does not wait is refused or started the moment it
    # arrives (a worker is free): any other waited for its permit.
    return [
        not (end == arrival or start == arrival)
        for arrival, start, end in zip(
            orders["arrival"], orders["start"], orders["end"], strict=True
        )
    ]


def _live_parked(orders: pd.DataFrame, events: list[tuple]) -> list[bool]:
    # An order that does not wait is queued (or refused after a "queued" event) at its arrival,
    # on the same clock reading: a parked one is queued later, or refused without being queued.
    first: dict[int, tuple[str, float]] = {}
    for eid, status, _reason, t, *_ in events:
        first.setdefault(int(eid), (str(status), float(t)))
    return [
        first[i] != ("queued", float(orders["arrival"].iloc[i])) for i in range(len(orders))
    ]


CASES = {
    # One permit every 0.5 s, up to 1.25 s of wait: the first order goes at once, the next two
    # wait 0.5 s and 1 s, the others would wait 1.5 s or more and are refused.
    "waits": (
        _scenario(6, rl.RateLimit(rate=2.0, max_wait=1.25)),
        [("completed", "")] * 3 + [("rejected", "rate_limited")] * 3,
        [False, True, True, False, False, False],
    ),
    # After its wait an order still needs an intake.limit permit: the first order holds the
    # only one for 3 s, so the two that waited are refused (limited) when their time comes.
    "then_limit": (
        _scenario(4, rl.RateLimit(rate=2.0, max_wait=1.25), latency=3.0,
                  limit=Limit(kind="static", initial=1)),
        [("completed", "")] + [("rejected", "limited")] * 2 + [("rejected", "rate_limited")],
        [False, True, True, False],
    ),
    # ... and room in the queue: one worker busy for 3 s, room for one order; the first to
    # come out of its wait takes the place, the second finds the queue full.
    "then_queue_full": (
        _scenario(4, rl.RateLimit(rate=2.0, max_wait=1.25), latency=3.0, workers=1,
                  queue_capacity=1),
        [("completed", ""), ("completed", ""), ("rejected", "queue_full"),
         ("rejected", "rate_limited")],
        [False, True, True, False],
    ),
    # A wait never runs past the order's deadline (0.7 s): the permits due at 1 s and later
    # are refused, the one due at 0.5 s is waited for.
    "deadline": (
        _scenario(4, rl.RateLimit(rate=2.0, max_wait=1.25)).replace({"order_deadline": 0.7}),
        [("completed", "")] * 2 + [("rejected", "rate_limited")] * 2,
        [False, True, False, False],
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_live_and_simulated_engines_agree_per_order(case: str) -> None:
    sc, ends, parked = CASES[case]
    sim = simulate(sc)
    assert _ends(sim.orders) == ends
    assert _sim_parked(sim.orders) == parked
    n = len(ends)
    with rl.Lab(sc, shutdown_timeout=30.0, order_events=True) as lab:
        handles = lab.submit_many(n)  # returns at once: the parked orders wait elsewhere
        assert all(h.wait(timeout=30) for h in handles)
        events = lab.take_order_events()
        text = lab.metrics_text()
    live = lab.result
    assert _ends(live.orders) == ends
    assert _live_parked(live.orders, events) == parked
    waits = sum(parked)
    # The waits count in both engines' time series, and in the live engine's counter.
    for r in (sim, live):
        assert r.timeseries["intake.rate_limit_waits"].sum() == waits
        assert r.timeseries["intake.rate_limited"].sum() == ends.count(("rejected", "rate_limited"))
    assert f'rlab_rate_limit_waits_total{{limiter="intake"}} {float(waits)}' in text
    s = live.summary
    assert s["in_flight"] == 0
    assert s["completed"] + s["failed"] + s["rejected"] + s["expired"] + s["cancelled"] == n


def _long_wait_lab(n: int, *, rate: float = 0.1) -> tuple[rl.Lab, list[rl.OrderHandle]]:
    # One permit every 10 s, up to a minute of wait: the first order goes at once, every other
    # is parked for 10 s or more (far longer than any stall of the machine).
    sc = _scenario(n, rl.RateLimit(rate=rate, max_wait=60.0))
    lab = rl.Lab(sc).start()
    handles = list(lab.submit_many(n))
    assert handles[0].wait(timeout=30)
    return lab, handles


def test_a_parked_order_is_pending_until_its_permit() -> None:
    lab, handles = _long_wait_lab(3)
    try:
        assert handles[0].status == "completed"
        for h in handles[1:]:
            assert h.status == "pending"  # admitted, not yet queued
            assert not h.done()
            v = h.view()
            assert v.status == "pending" and math.isnan(v.end)
        assert lab.in_flight == 2  # in the system while they wait (wait_idle waits for them)
        assert not lab.wait_idle(timeout=0.0)
    finally:
        lab.shutdown(0.0)


def test_immediate_shutdown_cancels_parked_orders() -> None:
    lab, handles = _long_wait_lab(4)
    report = lab.shutdown(0.0)
    assert report.timed_out
    assert report.cancelled == 3
    assert [(h.status, h.reason) for h in handles] == [("completed", "")] + [
        ("cancelled", "shutdown")
    ] * 3
    s = lab.result.summary
    assert s["in_flight"] == 0 and s["cancelled"] == 3 and s["arrived"] == 4


def test_graceful_shutdown_cancels_orders_still_parked_when_the_grace_runs_out() -> None:
    lab, handles = _long_wait_lab(2)
    report = lab.shutdown(0.2)  # the permit is 10 s away
    assert report.timed_out and report.cancelled == 1
    assert handles[1].status == "cancelled" and handles[1].reason == "shutdown"
    assert all(h.status in TERMINAL_STATES for h in handles)


def test_graceful_shutdown_lets_parked_orders_go_on_within_the_grace_time() -> None:
    # Permits every 0.1 s: the last of five is due 0.4 s after the first, well within 30 s.
    sc = _scenario(5, rl.RateLimit(rate=10.0, max_wait=1.0))
    lab = rl.Lab(sc).start()
    handles = list(lab.submit_many(5))
    report = lab.shutdown(30.0)
    assert not report.timed_out and report.cancelled == 0
    assert [h.status for h in handles] == ["completed"] * 5
    assert lab.result.timeseries["intake.rate_limit_waits"].sum() == 4


def test_the_live_engine_no_longer_refuses_max_wait() -> None:
    sc = _scenario(1, rl.RateLimit(rate=100.0, max_wait=0.05))
    with rl.Lab(sc, shutdown_timeout=10.0) as lab:
        assert lab.submit().wait(timeout=10)
    assert lab.result.summary["completed"] == 1


def test_an_order_whose_deadline_passes_after_its_wait_expires() -> None:
    # A wait is capped by the deadline (as in the simulator), so the deadline passes after it:
    # here in the queue, behind an order that holds the only worker past it. Per key: key 1's
    # second order waits 0.5 s for its permit while key 2's order, submitted after it, gets
    # one at once and queues behind key 1's first order; it holds the worker until its own
    # deadline, which is later than the parked order's (submitted later, same 0.8 s).
    sc = _scenario(
        3, rl.RateLimit(rate=2.0, max_wait=1.0, per_key=True), latency=0.7, workers=1
    ).replace({"order_deadline": 0.8, "num_keys": 4})
    with rl.Lab(sc, shutdown_timeout=30.0) as lab:
        first = lab.submit(key=1)
        parked = lab.submit(key=1)
        holder = lab.submit(key=2)
        assert parked.wait(timeout=30)
        assert all(h.wait(timeout=30) for h in (first, holder))
    assert (parked.status, parked.reason) == ("expired", "")
    assert lab.result.timeseries["intake.rate_limit_waits"].sum() == 1


def _all_gates(seed: int) -> Scenario:
    # Every intake gate at once (FIFO: the queue drops nothing itself), waits up to 0.2 s: at
    # 600 orders submitted at once, 50 go at once, 60 wait, the rest are refused, and the
    # concurrency limit and the shedder refuse some of those that waited when their time came.
    return Scenario(
        arrivals=rl.Poisson(400.0),
        workers=4,
        queue_capacity=40,
        duration=2.0,
        seed=seed,
        order_deadline=1.0,
        dependencies=(Dependency("payment", faults=Faults(latency=rl.Exponential(0.02))),),
        intake=Intake(
            shedding=rl.Shedding(
                sheddable=rl.ShedClass(traffic=0.4, max_occupancy=0.5),
                fair_share_above=0.5,
                tenants=(rl.Tenant("noisy", traffic=5.0), rl.Tenant("a"), rl.Tenant("b")),
            ),
            limit=Limit(kind="aimd", initial=30, min=5, max=60),
            rate_limit=rl.RateLimit(rate=300.0, burst=50, max_wait=0.2),
        ),
    )


def _check_per_origin(r: rl.Result) -> None:
    s = r.summary
    assert sum(s[k] for k in TERMINAL_STATES) == s["arrived"] and s["in_flight"] == 0
    for table in (r.classes, r.tenants):
        # An order that waited was admitted on arrival; a gate that refuses it after its wait
        # ends an admitted order, as any other end of one.
        assert (table["arrived"] == table["admitted"] + table["shed"] + table["queue_full"]).all()
        assert (table["admitted"] == table["completed"] + table["other_end"]).all()
        assert table["arrived"].sum() == s["arrived"]


def test_every_gate_after_a_wait_keeps_the_per_class_counts_in_both_engines() -> None:
    sim = simulate(_all_gates(seed=3))
    _check_per_origin(sim)
    assert sim.timeseries["intake.rate_limit_waits"].sum() > 0
    sc = _all_gates(seed=4)
    with rl.Lab(sc, shutdown_timeout=30.0) as lab:
        handles = lab.submit_many(600)
        assert all(h.wait(timeout=60) for h in handles)
    live = lab.result
    _check_per_origin(live)
    # 50 saved-up permits at once, then one every 1/300 s up to 0.2 s ahead: at most 60 waits
    # (fewer if the submissions took longer than a few permits' time).
    assert 0 < live.timeseries["intake.rate_limit_waits"].sum() <= 61
    assert set(live.orders["reason"].astype(str)) >= {"rate_limited", "shed"}
