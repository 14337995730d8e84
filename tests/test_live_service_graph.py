"""Service graphs in the live engine (issue #14): a worker pool and a bounded queue per service on
real threads, the same rules as the simulator (deadline propagation, outcome mapping, counting),
the same result table, time-series columns and Prometheus families, and a shutdown that ends
every request. Counts are asserted, not durations (a noisy machine): a duration enters only as a
lower bound (a sleep never ends early) or as a share compared with a wide margin."""

from __future__ import annotations

import math
from typing import Any

import pytest
import reliability_lab as rl
from hypothesis import given, settings
from hypothesis import strategies as st
from test_service_graph import _graphs

D = rl.Dependency
FAST = rl.Constant(0.002)


def _two_services(p_fail: float, **scenario: object) -> rl.Scenario:
    """root → a (a fast leaf) then → b (a leaf failing with probability p_fail); the root retries
    its call to b up to 3 attempts (b's failure answers 503, retryable)."""
    retry = rl.RetryConfig(max_attempts=3, backoff=rl.Backoff(initial=0.001, max_delay=0.001))
    return rl.Scenario(
        dependencies=(D("to_a", service="a"), D("to_b", service="b", retry=retry)),
        services=(
            rl.Service(
                name="a",
                workers=4,
                queue_capacity=1000,
                dependencies=(D("leaf", faults=rl.Faults(latency=FAST)),),
            ),
            rl.Service(
                name="b",
                workers=4,
                queue_capacity=1000,
                dependencies=(D("leaf", faults=rl.Faults(failure_rate=p_fail, latency=FAST)),),
            ),
        ),
        **scenario,  # type: ignore[arg-type]
    )


def _run_live(sc: rl.Scenario, n: int, shutdown: float = 10.0) -> rl.Lab:
    with rl.Lab(sc, shutdown_timeout=shutdown) as lab:
        handles = lab.submit_many(n)
        assert handles.wait(60.0)
    return lab


def test_sim_and_live_agree_on_a_small_graph() -> None:
    """The same graph in both engines: per-order calls at each service (amplification), the
    success rate, and b's failure share agree with each other and with the closed forms:
    b requests per order = 1 + p + p^2, success = 1 - p^3."""
    p = 0.3
    n = 400
    sc = _two_services(
        p, arrivals=rl.Poisson(100.0), duration=n / 100.0, seed=11, workers=8, queue_capacity=1000
    )
    sim = rl.simulate(sc)
    live = _run_live(sc, n).result
    expected_b = 1 + p + p * p
    expected_success = 1 - p**3
    for name, r in (("sim", sim), ("live", live)):
        s = r.services
        orders = s.loc["root", "arrivals"]
        assert orders > 300, name
        assert s.loc["a", "amplification"] == 1.0, name
        assert s.loc["b", "amplification"] == pytest.approx(expected_b, abs=0.12), name
        assert r.summary["completed"] / orders == pytest.approx(expected_success, abs=0.04), name
        assert s.loc["b", "failed"] / s.loc["b", "arrivals"] == pytest.approx(p, abs=0.07), name
        assert (s["in_flight"] == 0).all() and (s["rejected"] == 0).all(), name
        assert (s["arrivals"] == s["completed"] + s["failed"] + s["expired"]).all(), name
    ls, ss = live.services, sim.services
    assert ls.loc["b", "amplification"] == pytest.approx(ss.loc["b", "amplification"], abs=0.15)
    live_rate = live.summary["completed"] / ls.loc["root", "arrivals"]
    sim_rate = sim.summary["completed"] / ss.loc["root", "arrivals"]
    assert live_rate == pytest.approx(sim_rate, abs=0.05)
    # The same labels for the services' own dependencies, and the same series columns.
    names = {d["name"] for d in live.totals["dependencies"]}
    assert names == {d["name"] for d in sim.totals["dependencies"]} >= {"a.leaf", "b.leaf"}
    live_cols = [c for c in live.timeseries.columns if c.startswith("service.")]
    sim_cols = [c for c in sim.timeseries.columns if c.startswith("service.")]
    assert live_cols == sim_cols and len(live_cols) == 16
    # Per interval the arrivals add up to the totals.
    assert live.timeseries["service.b.arrivals"].sum() == ls.loc["b", "arrivals"]


def test_live_metrics_have_the_simulators_service_families() -> None:
    sc = _two_services(0.5, workers=4, queue_capacity=1000)
    lab = _run_live(sc, 60)
    r = lab.result
    fams = {m.name: m for m in lab.metrics()}
    sim_fams = {m.name: m for m in rl.simulate(sc.replace({"duration": 1.0})).metrics}
    for name in ("rlab_service_requests", "rlab_service_latency_seconds"):
        assert name in fams and name in sim_fams
        assert {tuple(sorted(s.labels)) for s in fams[name].samples} == {
            tuple(sorted(s.labels)) for s in sim_fams[name].samples
        }
    got = {
        (s.labels["service"], s.labels["outcome"]): s.value
        for s in fams["rlab_service_requests"].samples
    }
    s = r.services
    for svc in ("root", "a", "b"):
        for outcome in ("completed", "failed", "rejected", "expired"):
            assert got[(svc, outcome)] == s.loc[svc, outcome], (svc, outcome)
    count = {
        s.labels["service"]: s.value
        for s in fams["rlab_service_latency_seconds"].samples
        if s.name.endswith("_count")
    }
    assert count == {svc: s.loc[svc, "completed"] for svc in ("root", "a", "b")}


def test_deadline_propagates_across_two_tiers() -> None:
    """root → mid → back → a 2 s leaf, with only the root's attempt timeout (0.2 s) set: the
    remaining time travels down both calls, so back's leaf call is cut at that deadline and back
    fails on it (without propagation it would complete after 2 s), then mid does, and the order
    fails; nothing ends after its deadline."""
    sc = rl.Scenario(
        workers=4,
        dependencies=(D("to_mid", service="mid", attempt_timeout=0.2),),
        services=(
            rl.Service(name="mid", workers=4, dependencies=(D("to_back", service="back"),)),
            rl.Service(
                name="back",
                workers=4,
                dependencies=(D("leaf", faults=rl.Faults(latency=rl.Constant(2.0))),),
            ),
        ),
    )
    r = _run_live(sc, 4).result
    s = r.services
    assert r.summary["failed"] == 4 and r.summary["completed"] == 0
    for tier in ("mid", "back"):
        assert s.loc[tier, "arrivals"] == 4, tier
        assert s.loc[tier, "completed"] == 0, tier
        assert s.loc[tier, "in_flight"] == 0, tier
        # Failed on the propagated deadline (or dropped at it): never completed late.
        assert s.loc[tier, "failed"] + s.loc[tier, "expired"] == 4, tier
    assert s.loc["back", "failed_deadline"] + s.loc["back", "expired"] == 4
    assert all(row["overran"] == 0 for row in r.totals["services"])


def test_a_full_callee_queue_fails_the_caller() -> None:
    """A one-worker service without a queue: calls that find its worker busy are refused at once
    (503) and their orders fail (no retry); the others complete."""
    sc = rl.Scenario(
        workers=6,
        dependencies=(D("to_s", service="s"),),
        services=(
            rl.Service(
                name="s",
                workers=1,
                queue_capacity=0,
                dependencies=(D("slow", faults=rl.Faults(latency=rl.Constant(0.3))),),
            ),
        ),
    )
    r = _run_live(sc, 6).result
    s = r.services
    assert s.loc["s", "rejected"] >= 1
    assert s.loc["s", "failed_queue_full"] == s.loc["s", "rejected"]
    assert r.summary["failed"] == s.loc["s", "rejected"]
    assert r.summary["completed"] == s.loc["s", "completed"] >= 1
    assert s.loc["s", "arrivals"] == 6


def test_shutdown_with_requests_in_flight_at_a_callee_ends_every_order() -> None:
    """The back tier hangs (600 s): a short grace time cancels the orders, every request at
    every tier ends, and nothing waits forever."""
    sc = rl.Scenario(
        workers=4,
        dependencies=(D("to_mid", service="mid"),),
        services=(
            rl.Service(
                name="mid",
                workers=2,
                queue_capacity=10,
                dependencies=(D("to_back", service="back"),),
            ),
            rl.Service(
                name="back",
                workers=1,
                queue_capacity=10,
                dependencies=(D("hang", faults=rl.Faults(latency=rl.Constant(600.0))),),
            ),
        ),
    )
    lab = rl.Lab(sc)
    lab.start()
    lab.submit_many(12)
    report = lab.shutdown(timeout=0.1)
    assert report.timed_out and report.cancelled >= 1
    r = lab.result
    assert r.summary["in_flight"] == 0
    terminal = sum(
        r.summary[k] for k in ("completed", "failed", "rejected", "expired", "cancelled")
    )
    assert terminal == r.summary["arrived"] == 12
    s = r.services
    assert (s["in_flight"] == 0).all()
    assert s.loc["back", "arrivals"] >= 1


def test_caller_timeout_while_the_callee_still_works() -> None:
    """The caller gives up after 30 ms while the service's 200 ms call runs: the caller fails on
    its timeout, the service's request ends at the same propagated deadline, answering nobody
    (wasted) or the caller's timeout, never completing."""
    sc = rl.Scenario(
        workers=2,
        dependencies=(D("to_s", service="s", attempt_timeout=0.03),),
        services=(
            rl.Service(
                name="s",
                workers=2,
                dependencies=(D("slow", faults=rl.Faults(latency=rl.Constant(0.2))),),
            ),
        ),
    )
    r = _run_live(sc, 6).result
    s = r.services
    assert r.summary["failed"] == 6
    assert s.loc["s", "completed"] == 0 and s.loc["s", "in_flight"] == 0
    assert s.loc["s", "failed"] + s.loc["s", "expired"] == s.loc["s", "arrivals"] == 6
    dep = next(d for d in r.totals["dependencies"] if d["name"] == "to_s")
    assert dep["failures"] == 6
    started = s.loc["s", "arrivals"] - s.loc["s", "dropped_unstarted"]
    assert s.loc["s", "wasted"] <= started
    assert not math.isnan(s.loc["s", "wasted_seconds"])


def _tail_service(hedge: rl.Hedge | None, tail: float) -> rl.Scenario:
    """root → s, whose leaf answers in 2 ms, or in 80 ms with probability ``tail``; enough
    workers at both tiers that nothing queues. ``hedge``: on the root's call to s."""
    slow_tail = rl.Faults(
        latency=rl.Mixture.of((1.0 - tail, rl.Constant(0.002)), (tail, rl.Constant(0.08)))
    )
    return rl.Scenario(
        dependencies=(D("to_s", service="s", hedge=hedge),),
        services=(
            rl.Service(
                name="s",
                workers=64,
                queue_capacity=1000,
                dependencies=(D("leaf", faults=slow_tail),),
            ),
        ),
        arrivals=rl.Poisson(100.0),
        duration=4.0,
        seed=5,
        workers=32,
        queue_capacity=1000,
    )


def _dep(r: rl.Result, name: str) -> dict[str, Any]:
    return next(d for d in r.totals["dependencies"] if d["name"] == name)


def _slow_share(r: rl.Result, seconds: float) -> float:
    """The share of orders whose processing (start to end) took at least ``seconds``."""
    o = r.orders
    assert o is not None
    return float(((o["end"] - o["start"]) >= seconds).mean())


def test_sim_and_live_agree_on_a_hedged_call_to_a_slow_tail_service() -> None:
    """A hedge (10 ms, no hedge budget) on the root's call to a service with a 5 % tail of 80 ms:
    each hedge copy is a request of its own to the service, in both engines. About one call in
    twenty hedges, and the hedge wins (the original is slow, the copy fast with probability 0.95);
    the loser's request runs on for nobody (wasted) or is dropped unstarted; the tail of the
    orders' processing time is cut. Counts and shares are compared with tolerances; live, the
    durations enter only as a lower bound (a sleep never ends early) and a share with a wide
    margin."""
    n = 400
    tail = 0.05
    plain = _tail_service(None, tail)
    hedged = _tail_service(rl.Hedge(delay=0.01, budget_ratio=None), tail)
    sim_plain, sim = rl.simulate(plain), rl.simulate(hedged)
    live_plain = _run_live(plain, n).result
    live = _run_live(hedged, n).result
    for name, r in (("sim", sim), ("live", live)):
        d = _dep(r, "to_s")
        orders = r.summary["arrived"]
        s = r.services
        assert r.summary["completed"] == orders > 300, name
        # Every slow original is hedged, and beaten by its fast hedge (live, a fast original
        # delayed past 10 ms by a busy machine is hedged too, and may win or lose).
        assert tail / 2 <= d["hedges"] / orders <= (tail + 0.03 if name == "sim" else 0.5), name
        assert d["hedges_won"] / orders >= tail / 2, name
        # Every copy is a call and a request to s: the originals and the hedges.
        assert s.loc["s", "arrivals"] == orders + d["hedges"] == d["calls"], name
        assert s.loc["s", "in_flight"] == 0, name
        # A decided call's other copy is abandoned: wasted if it ran, else dropped unstarted.
        abandoned = s.loc["s", "wasted"] + s.loc["s", "dropped_unstarted"]
        assert abandoned == d["cancelled"] == d["hedges"], name
    # The p99 falls from the slow mode (80 ms) to about the hedge delay plus a fast answer.
    assert sim_plain.summary["latency_p99"] >= 0.075  # a histogram bucket
    assert sim.summary["latency_p99"] < 0.03
    assert _slow_share(sim, 0.075) < _slow_share(sim_plain, 0.075) / 2
    plain_share, hedged_share = _slow_share(live_plain, 0.075), _slow_share(live, 0.075)
    assert plain_share >= tail / 3  # a lower bound: a sleep never ends early
    # Live, a loaded machine may delay a fast answer past 75 ms now and then (measured quiet:
    # 7.5 % slow without the hedge, 0.75 % with it): the bound keeps a wide margin.
    assert hedged_share < plain_share * 0.7, (hedged_share, plain_share)


@pytest.mark.parametrize(("copies", "quorum"), [(2, 2), (3, 2), (3, 1)])
def test_sim_and_live_agree_on_a_fan_out_to_a_service(copies: int, quorum: int) -> None:
    """A fan-out of ``copies`` requests to a service whose leaf fails with probability p (no
    retry), joined on all of them or on a quorum: in both engines every copy reaches the
    service, the call succeeds with the binomial probability P(at least ``quorum`` of
    ``copies`` succeed), and every copy is answered or cancelled."""
    p = 0.3
    n = 300
    sc = rl.Scenario(
        dependencies=(D("to_s", service="s", fanout=rl.FanOut(copies=copies, quorum=quorum)),),
        services=(
            rl.Service(
                name="s",
                workers=16,
                queue_capacity=1000,
                dependencies=(D("leaf", faults=rl.Faults(failure_rate=p, latency=FAST)),),
            ),
        ),
        arrivals=rl.Poisson(100.0),
        duration=n / 100.0,
        seed=9,
        workers=8,
        queue_capacity=1000,
    )
    success = sum(
        math.comb(copies, k) * (1 - p) ** k * p ** (copies - k) for k in range(quorum, copies + 1)
    )
    sim = rl.simulate(sc)
    live = _run_live(sc, n).result
    for name, r in (("sim", sim), ("live", live)):
        orders = r.summary["arrived"]
        s = r.services
        d = _dep(r, "to_s")
        assert orders > 200, name
        assert r.summary["completed"] / orders == pytest.approx(success, abs=0.08), name
        assert s.loc["s", "arrivals"] == copies * orders == d["calls"], name
        assert s.loc["s", "in_flight"] == 0 and s.loc["s", "rejected"] == 0, name
        assert d["successes"] + d["failures"] + d["cancelled"] == d["calls"], name
    rates = [r.summary["completed"] / r.summary["arrived"] for r in (sim, live)]
    assert rates[1] == pytest.approx(rates[0], abs=0.1)


def test_a_hedge_to_a_full_service_is_refused_at_once() -> None:
    """A one-worker service without a queue, hedged at 5 ms while its worker is busy for 50 ms:
    the hedge copy finds no room and is answered 503 at once (counted rejected at the service);
    the original still completes."""
    sc = rl.Scenario(
        workers=1,
        dependencies=(D("to_s", service="s", hedge=rl.Hedge(delay=0.005)),),
        services=(
            rl.Service(
                name="s",
                workers=1,
                queue_capacity=0,
                dependencies=(D("slow", faults=rl.Faults(latency=rl.Constant(0.05))),),
            ),
        ),
    )
    r = _run_live(sc, 3).result
    s = r.services
    d = _dep(r, "to_s")
    assert r.summary["completed"] == 3
    assert d["hedges"] == 3 and d["hedges_won"] == 0
    assert s.loc["s", "rejected"] == 3 == s.loc["s", "failed_queue_full"]
    assert s.loc["s", "completed"] == 3 and s.loc["s", "arrivals"] == 6


@pytest.mark.parametrize(
    "kw", [{"hedge": rl.Hedge(delay=0.005, max_hedges=2)}, {"fanout": rl.FanOut(copies=3)}]
)
def test_shutdown_wakes_a_round_waiting_for_a_hanging_service(kw: dict[str, Any]) -> None:
    """Hedged and fanned-out calls to a service that hangs (600 s): a short grace time cancels
    the orders; every copy's request ends and nothing waits forever."""
    sc = rl.Scenario(
        workers=4,
        dependencies=(D("to_s", service="s", **kw),),
        services=(
            rl.Service(
                name="s",
                workers=2,
                queue_capacity=10,
                dependencies=(D("hang", faults=rl.Faults(latency=rl.Constant(600.0))),),
            ),
        ),
    )
    lab = rl.Lab(sc)
    lab.start()
    lab.submit_many(6)
    report = lab.shutdown(timeout=0.1)
    assert report.timed_out and report.cancelled >= 1
    r = lab.result
    assert r.summary["in_flight"] == 0
    assert r.summary["cancelled"] + r.summary["failed"] == 6
    s = r.services
    assert s.loc["s", "in_flight"] == 0 and s.loc["s", "arrivals"] >= 2


@st.composite
def _live_graphs(draw: st.DrawFn) -> rl.Scenario:
    """The simulator's random graphs (hedged calls to services included), with fan-outs drawn
    on some of the unhedged calls to services, without what the live engine refuses
    (releasing the worker during a backoff)."""
    d = draw(_graphs()).to_dict()
    d["release_worker_during_backoff"] = False
    for dep in [*d["dependencies"], *(x for s in d["services"] for x in s["dependencies"])]:
        if dep["service"] is not None and dep["hedge"] is None and draw(st.booleans()):
            copies = draw(st.integers(2, 3))
            dep["fanout"] = {"copies": copies, "quorum": draw(st.integers(1, copies))}
    return rl.Scenario.from_dict(d)


@settings(max_examples=20, deadline=None)
@given(_live_graphs(), st.sampled_from([0.0, 0.02, 5.0]))
def test_live_random_graphs_end_every_order_and_request(sc: rl.Scenario, grace: float) -> None:
    """On random graphs (hedged and fanned-out calls to services included), live, with a
    shutdown grace time that may cut the run short: every order ends in exactly one terminal
    state, every request at every service ends, and a service receives at most the calls sent
    to it (each copy of a hedge or fan-out is a call and a request)."""
    lab = rl.Lab(sc)
    lab.start()
    lab.submit_many(20)
    report = lab.shutdown(timeout=grace)
    r = lab.result
    if not report.timed_out:
        assert r.summary["cancelled"] == 0
    assert r.summary["in_flight"] == 0
    ended = sum(r.summary[k] for k in ("completed", "failed", "rejected", "expired", "cancelled"))
    assert ended == r.summary["arrived"] == 20
    s = r.services
    assert (s["in_flight"] == 0).all()
    rows = r.totals["services"]
    for row in rows[1:]:
        assert row["arrived"] == sum(row["statuses"].values()), row["name"]
        # Not asserted live: ``overran`` (completed after its deadline) is measured on the wall
        # clock, where a thread woken late finishes a call the model ended in time (the
        # simulator's property test checks that the rules send no work past a deadline).
    calls: dict[str, int] = {}
    sent = {d.name: d for d in sc.dependencies}
    for svc in sc.services:
        sent.update({f"{svc.name}.{x.name}": x for x in svc.dependencies})
    for d in r.totals["dependencies"]:
        target = sent[d["name"]].service
        if target is not None:
            calls[target] = calls.get(target, 0) + d["calls"]
    for name, n in calls.items():
        assert s.loc[name, "arrivals"] <= n


def test_a_services_own_hedged_dependency_hedges_live() -> None:
    """A service's worker runs its request's flow in the root's loop (LiveWorkerPool::RunFlow),
    so a hedge on the service's own dependency sends its copies live too, as in the simulator
    (a slow leaf: the hedge timer fires before the first answer)."""
    slow = rl.Faults(latency=rl.Constant(0.02))
    sc = rl.Scenario(
        dependencies=(D("to_s", service="s"),),
        services=(
            rl.Service(
                name="s",
                workers=4,
                queue_capacity=1000,
                dependencies=(D("leaf", faults=slow, hedge=rl.Hedge(delay=0.005)),),
            ),
        ),
        arrivals=rl.Poisson(100.0),
        duration=1.0,
        seed=3,
        workers=4,
        queue_capacity=1000,
    )
    sim = rl.simulate(sc)
    live = _run_live(sc, 50).result
    for name, r in (("sim", sim), ("live", live)):
        leaf = next(d for d in r.totals["dependencies"] if d["name"] == "s.leaf")
        assert leaf["hedges"] > 0, name
        assert leaf["calls"] == r.services.loc["s", "arrivals"] + leaf["hedges"], name
    assert live.summary["completed"] == 50


def test_the_control_knobs_reach_a_services_own_dependency() -> None:
    """set_faults / set_breaker name a service's dependency "<service>.<dependency>", as the
    results do: b's leaf made to fail everything fails every call to b from then on, and b's
    leaf breaker is changed in place."""
    sc = _two_services(0.0, workers=4, queue_capacity=1000)
    sc = sc.replace({"services[b].dependencies[leaf].breaker": rl.Breaker()})
    with rl.Lab(sc, shutdown_timeout=10.0) as lab:
        with pytest.raises(KeyError, match=r"b\.leaf"):
            lab.set_faults("b.nope", rl.Faults())
        assert lab.faults("b.leaf").failure_rate == 0.0
        assert lab.submit_many(20).wait(60.0)
        lab.set_faults("b.leaf", rl.Faults(failure_rate=1.0, latency=FAST))
        assert lab.faults("b.leaf").failure_rate == 1.0
        assert lab.breaker("b.leaf") == rl.Breaker()
        changed = lab.set_breaker("b.leaf", {"consecutive_failures": 1000})
        assert changed.consecutive_failures == 1000 == lab.breaker("b.leaf").consecutive_failures
        path = r"services\[b\]\.dependencies\[leaf\]\.breaker\.open_for"
        with pytest.raises(ValueError, match=path):
            lab.set_breaker("b.leaf", {"open_for": -1.0})
        with pytest.raises(ValueError, match="breaker is None"):
            lab.set_breaker("a.leaf", {"consecutive_failures": 3})
        assert lab.submit_many(20).wait(60.0)
    s = lab.result.services
    # The first 20 orders all succeed; after the switch every call to b fails (3 attempts each).
    assert lab.result.summary["completed"] == 20
    assert s.loc["b", "failed"] == 60
