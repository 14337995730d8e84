"""A service's own intake (``Service.intake``, issue #14): the rate limit, the queue discipline
and the adaptive concurrency limit at a service's job queue, in both engines. Counts and ratios
of simulated runs (fixed seeds), never wall-clock durations."""

from __future__ import annotations

from typing import Any

import pytest
import reliability_lab as rl

D = rl.Dependency


def _one_service(
    intake: rl.Intake,
    *,
    rate: float = 260.0,
    workers: int = 2,
    caller: dict[str, Any] | None = None,
    latency: rl.Latency | None = None,
    duration: float = 20.0,
) -> rl.Scenario:
    """root → b → leaf; b has ``workers`` workers, a deep queue and ``intake``; the leaf takes
    10 ms on average (b serves ~100 requests/s per worker)."""
    return rl.Scenario(
        arrivals=rl.Poisson(rate),
        duration=duration,
        seed=5,
        workers=256,
        queue_capacity=100_000,
        sample_every=0.0,
        dependencies=(D("to_b", service="b", **(caller or {})),),
        services=(
            rl.Service(
                name="b",
                workers=workers,
                queue_capacity=100_000,
                intake=intake,
                dependencies=(
                    D("leaf", faults=rl.Faults(latency=latency or rl.Exponential(0.01))),
                ),
            ),
        ),
    )


def _discipline(kind: str, **kw: float) -> rl.Intake:
    return rl.Intake(discipline=rl.QueueDiscipline(kind=kind, **kw))  # type: ignore[arg-type]


def _dep(r: rl.Result, name: str) -> dict[str, Any]:
    return next(d for d in r.totals["dependencies"] if d["name"] == name)


def test_default_intake_changes_nothing() -> None:
    """A service given the default intake explicitly runs bit-identically to one without it."""
    a = rl.simulate(_one_service(rl.Intake()))
    b = rl.simulate(_one_service(rl.Intake()).replace({"services[b].intake": rl.Intake()}))
    assert a.totals == b.totals


@pytest.mark.parametrize("kind", ["lifo", "adaptive_lifo"])
def test_lifo_at_an_overloaded_service_serves_fresh_requests(kind: str) -> None:
    """Overload (1.3x capacity) with callers that give up after 200 ms: FIFO serves requests
    that already waited nearly that long (their answers often come too late: wasted work);
    (adaptive) LIFO serves the freshest first (B. Maurer, "Fail at Scale", 2015): the served
    requests' waits stay short, the stale ones are dropped unstarted, and no fewer orders
    complete."""
    caller = {"attempt_timeout": 0.2}
    fifo = rl.simulate(_one_service(rl.Intake(), caller=caller))
    lifo = rl.simulate(_one_service(_discipline(kind, lifo_threshold=0.005), caller=caller))
    f, li = fifo.services.loc["b"], lifo.services.loc["b"]
    assert f["latency_p50"] > 0.1  # FIFO: a standing queue of ~the callers' patience
    assert li["latency_p50"] < 0.25 * f["latency_p50"]
    assert f["wasted"] > 500
    assert li["wasted"] < 0.05 * f["wasted"]
    assert li["dropped_unstarted"] > 500 and f["dropped_unstarted"] == 0
    assert lifo.summary["completed"] >= fifo.summary["completed"]
    assert lifo.summary["latency_p50"] < 0.25 * fifo.summary["latency_p50"]


def test_codel_at_a_service_drops_under_a_standing_queue_and_not_when_idle() -> None:
    """CoDel (RFC 8289) at b: under overload its queue stands above target and requests are
    dropped at dequeue (rejected, reason queue_delay, a 503 to the caller); at 10% load none."""
    codel = _discipline("codel", codel_target=0.005, codel_interval=0.1)
    busy = rl.simulate(_one_service(codel))
    b = busy.services.loc["b"]
    assert b["failed_queue_delay"] > 100
    assert b["rejected"] == b["failed_queue_delay"]
    assert b["arrivals"] == b["completed"] + b["rejected"]
    # The callers heard a failure (no retry: each drop fails its order).
    assert busy.summary["failed"] == b["failed_queue_delay"]
    # It keeps b's served requests' waits near target, unlike FIFO's standing queue.
    fifo = rl.simulate(_one_service(rl.Intake()))
    assert b["latency_p99"] < 0.5 * fifo.services.loc["b", "latency_p99"]
    idle = rl.simulate(_one_service(codel, rate=20.0))
    assert idle.services.loc["b", "rejected"] == 0
    assert idle.summary["completed"] == idle.summary["arrived"]


@pytest.mark.parametrize("limit", [1, 4])
def test_a_limit_at_a_service_caps_its_requests_in_flight(limit: int) -> None:
    """A static concurrency limit at a 16-worker service: at most ``limit`` of its requests in
    flight (its leaf never sees more calls at once); the rest are refused at once (reason
    limited). Without the limit the same load runs more at once."""
    intake = rl.Intake(limit=rl.Limit(kind="static", initial=limit))
    r = rl.simulate(_one_service(intake, workers=16, rate=150.0 * limit))
    b = r.services.loc["b"]
    assert _dep(r, "b.leaf")["max_load"] <= limit
    assert b["failed_limited"] > 50
    assert b["rejected"] == b["failed_limited"]
    assert r.summary["failed"] == b["failed_limited"]
    free = rl.simulate(_one_service(rl.Intake(), workers=16, rate=150.0 * limit))
    assert _dep(free, "b.leaf")["max_load"] > limit
    assert free.services.loc["b", "rejected"] == 0


def test_refusals_at_a_service_are_503s_the_callers_retry_sees() -> None:
    """b's limit refusals answer HTTP 503: a caller retrying on 503 retries them (and rescues
    orders); one retrying only on 500 does not."""
    intake = rl.Intake(limit=rl.Limit(kind="static", initial=2))
    backoff = rl.Backoff(initial=0.01, max_delay=0.05)

    def run(retry_on: tuple[str, ...]) -> rl.Result:
        retry = rl.RetryConfig(max_attempts=4, backoff=backoff, retry_on=retry_on)
        return rl.simulate(_one_service(intake, workers=8, rate=250.0, caller={"retry": retry}))

    on_503, on_500 = run(("503",)), run(("500",))
    b = on_503.services.loc["b"]
    assert b["failed_limited"] > 50
    assert _dep(on_503, "to_b")["retries"] > 50
    # Every attempt reached b: the orders' first calls plus the retries.
    assert b["arrivals"] == on_503.summary["arrived"] + _dep(on_503, "to_b")["retries"]
    assert _dep(on_500, "to_b")["retries"] == 0
    assert on_503.summary["completed"] > on_500.summary["completed"]


def test_an_adaptive_limit_at_a_service_learns_from_its_requests() -> None:
    """b (4 workers, 1.5x overloaded, a 50 ms deadline per request) behind a limit of 40: fixed
    at 40 (static), its queue lets waits exceed the deadline and about a third of the requests
    fail on it; AIMD starting at 40 learns from those drops (failed on the deadline: a drop, as
    at the root) and backs off, refusing at once instead: half as many deadline failures."""
    sc = _one_service(rl.Intake(), workers=4, rate=600.0)
    sc = sc.replace({"services[b].deadline": 0.05, "services[b].queue_capacity": 10_000})
    aimd = rl.Limit(kind="aimd", initial=40, min=1, max=40, backoff_ratio=0.9, timeout=0.05)
    learned = rl.simulate(sc.replace({"services[b].intake.limit": aimd}))
    fixed = rl.simulate(
        sc.replace({"services[b].intake.limit": rl.Limit(kind="static", initial=40)})
    )
    lb, fb = learned.services.loc["b"], fixed.services.loc["b"]
    assert fb["failed_deadline"] > 0.25 * fb["arrivals"]
    assert lb["failed_deadline"] < 0.7 * fb["failed_deadline"]
    assert lb["failed_limited"] > 5 * fb["failed_limited"]
    # Refusing early costs no goodput: b's capacity is the bound either way.
    assert learned.summary["completed"] == pytest.approx(fixed.summary["completed"], rel=0.03)


def test_sim_and_live_agree_on_a_limited_service() -> None:
    """Scripted: 10 orders at once, 8 root workers, b limited to 2 requests in flight, its leaf
    taking 0.3 s. Both engines: 2 complete, b refuses the other 8 at once (limited, 503) and
    their orders fail."""
    sc = rl.Scenario(
        arrivals=rl.Trace(times=(0.0,) * 10),
        workers=8,
        sample_every=0.0,
        dependencies=(D("to_b", service="b"),),
        services=(
            rl.Service(
                name="b",
                workers=8,
                intake=rl.Intake(limit=rl.Limit(kind="static", initial=2)),
                dependencies=(D("leaf", faults=rl.Faults(latency=rl.Constant(0.3))),),
            ),
        ),
    )
    sim = rl.simulate(sc)
    with rl.Lab(sc, shutdown_timeout=10.0) as lab:
        assert lab.submit_many(10).wait(60.0)
    live = lab.result
    for name, r in (("sim", sim), ("live", live)):
        b = r.services.loc["b"]
        assert r.summary["completed"] == 2, name
        assert r.summary["failed"] == 8, name
        assert b["arrivals"] == 10 and b["completed"] == 2, name
        assert b["rejected"] == b["failed_limited"] == 8, name
        assert _dep(r, "b.leaf")["max_load"] <= 2, name


def test_sim_and_live_agree_on_codel_at_a_service() -> None:
    """CoDel at a one-worker service (20 ms a request) under 70 orders/s for 3 s, both engines
    on the scenario's own arrivals (the live load generator draws the same ones): CoDel drops
    about the excess, (70 - 50) / 70 of b's arrivals, in both (statistical tolerance: the live
    run is on the wall clock); every drop a 503 to its caller; conservation per service."""
    codel = _discipline("codel", codel_target=0.01, codel_interval=0.1)
    sc = _one_service(codel, workers=1, rate=70.0, duration=3.0, latency=rl.Constant(0.02))
    sc = sc.replace({"workers": 64})
    sim = rl.simulate(sc)
    with rl.Lab(sc, shutdown_timeout=30.0) as lab:
        lab.start_load()
        assert lab.wait_idle(120.0)
    live = lab.result
    shares = {}
    for name, r in (("sim", sim), ("live", live)):
        b = r.services.loc["b"]
        assert b["rejected"] == b["failed_queue_delay"] > 0, name
        assert r.summary["failed"] == b["failed_queue_delay"], name  # no retry: each fails
        assert b["arrivals"] == b["completed"] + b["rejected"] + b["expired"], name
        assert b["in_flight"] == 0, name
        shares[name] = b["failed_queue_delay"] / b["arrivals"]
    # Live, a loaded machine stretches the 20 ms sleeps (a sleep never ends early), so the
    # standing queue and the drops can only grow: a wider bound above than below.
    assert shares["sim"] == pytest.approx(20 / 70, abs=0.1)
    assert 20 / 70 - 0.1 <= shares["live"] <= 20 / 70 + 0.2, shares
    assert shares["live"] >= shares["sim"] - 0.1, shares


def test_service_intake_paths_and_refusals() -> None:
    """``services[b].intake.*`` paths read, replace and validate (rate_limit's fields with their
    path); shedding is refused at a service with the path."""
    sc = _one_service(rl.Intake())
    assert sc.get("services[b].intake.discipline.kind") == "fifo"
    lifo = sc.replace({"services[b].intake.discipline.kind": "lifo"})
    assert lifo.services[0].intake.discipline.kind == "lifo"
    assert "services[b].intake.limit" in sc.paths()
    with pytest.raises(ValueError, match=r"services\[b\]\.intake\.discipline\.codel_target"):
        sc.replace({"services[b].intake.discipline.codel_target": -1.0})
    with pytest.raises(ValueError, match=r"services\[b\]\.intake\.shedding"):
        sc.replace({"services[b].intake.shedding": rl.Shedding()})
    # Built directly as well (the scenario's rules refuse it, naming the service).
    with pytest.raises(ValueError, match=r"^services\[b\]\.intake\.shedding must be None"):
        _one_service(rl.Intake(shedding=rl.Shedding()))
    limited = sc.replace({"services[b].intake.rate_limit": rl.RateLimit(rate=5.0)})
    assert limited.get("services[b].intake.rate_limit.rate") == 5.0
    with pytest.raises(ValueError, match=r"services\[b\]\.intake\.rate_limit\.rate"):
        limited.replace({"services[b].intake.rate_limit.rate": -1.0})


def test_a_hedge_copy_meets_the_services_limit_in_both_engines() -> None:
    """Scripted: one order whose call to b hedges after 50 ms; b admits 1 request at a time and
    its leaf takes 0.3 s. The hedge copy is a request of its own, so b's limit refuses it
    (limited, 503), and the first copy completes the order. Both engines."""
    sc = rl.Scenario(
        arrivals=rl.Trace(times=(0.0,)),
        workers=2,
        sample_every=0.0,
        dependencies=(D("to_b", service="b", hedge=rl.Hedge(delay=0.05, budget_ratio=None)),),
        services=(
            rl.Service(
                name="b",
                workers=4,
                intake=rl.Intake(limit=rl.Limit(kind="static", initial=1)),
                dependencies=(D("leaf", faults=rl.Faults(latency=rl.Constant(0.3))),),
            ),
        ),
    )
    sim = rl.simulate(sc)
    with rl.Lab(sc, shutdown_timeout=10.0) as lab:
        assert lab.submit_many(1).wait(60.0)
    live = lab.result
    for name, r in (("sim", sim), ("live", live)):
        b = r.services.loc["b"]
        assert r.summary["completed"] == 1, name
        assert b["arrivals"] == 2 and b["completed"] == 1, name
        assert b["rejected"] == b["failed_limited"] == 1, name
        assert _dep(r, "b.leaf")["max_load"] == 1, name


def _rate(rate: float, burst: int = 1, max_wait: float = 0.0, **kw: Any) -> rl.Intake:
    return rl.Intake(rate_limit=rl.RateLimit(rate=rate, burst=burst, max_wait=max_wait, **kw))


@pytest.mark.parametrize("mode", ["smooth", "bursty"])
def test_a_rate_limit_at_a_service_caps_its_admitted_rate(mode: str) -> None:
    """b limited to 50 requests/s (burst 5) under 200 orders/s for 20 s: b admits about
    rate x duration + burst of them (its time series counts them per 1 s window too: at most
    rate + burst in any one); the rest are refused at once (rate_limited, a 503 that fails
    their orders). Without the limit b admits them all."""
    sc = _one_service(_rate(50.0, burst=5, mode=mode), workers=16, rate=200.0)
    r = rl.simulate(sc.replace({"sample_every": 1.0}))
    b = r.services.loc["b"]
    admitted = b["arrivals"] - b["failed_rate_limited"]
    assert 50 * 20 * 0.97 <= admitted <= 50 * 20 + 5 + 1
    assert b["rejected"] == b["failed_rate_limited"]
    assert b["completed"] == admitted
    assert r.summary["failed"] == b["failed_rate_limited"]
    ts = r.timeseries
    per_window = ts["service.b.arrivals"] - ts["service.b.rejected"]
    assert per_window.max() <= 50 + 5 + 1
    assert per_window.iloc[2:19].min() >= 40  # about the rate in every full window
    free = rl.simulate(_one_service(rl.Intake(), workers=16, rate=200.0))
    assert free.services.loc["b", "rejected"] == 0


def test_rate_limit_refusals_at_a_service_are_503s_the_callers_retry_sees() -> None:
    """b's rate-limit refusals answer HTTP 503: a caller retrying on 503 retries them (every
    retry reaches b), and rescues orders; one retrying only on 500 does not."""
    backoff = rl.Backoff(initial=0.02, max_delay=0.1)

    def run(retry_on: tuple[str, ...]) -> rl.Result:
        retry = rl.RetryConfig(max_attempts=4, backoff=backoff, retry_on=retry_on)
        sc = _one_service(_rate(100.0), workers=8, rate=80.0, caller={"retry": retry})
        return rl.simulate(sc)

    on_503, on_500 = run(("503",)), run(("500",))
    b = on_503.services.loc["b"]
    assert b["failed_rate_limited"] > 50
    assert _dep(on_503, "to_b")["retries"] > 50
    assert b["arrivals"] == on_503.summary["arrived"] + _dep(on_503, "to_b")["retries"]
    assert _dep(on_500, "to_b")["retries"] == 0
    assert on_500.summary["failed"] == on_500.services.loc["b", "failed_rate_limited"] > 50
    assert on_503.summary["completed"] > on_500.summary["completed"]


def _burst_at_b(intake: rl.Intake, n: int) -> rl.Scenario:
    """``n`` orders at t = 0 to b (8 workers, ``intake``), whose leaf takes 10 ms."""
    return rl.Scenario(
        arrivals=rl.Trace(times=(0.0,) * n),
        workers=n,
        sample_every=0.0,
        dependencies=(D("to_b", service="b"),),
        services=(
            rl.Service(
                name="b",
                workers=8,
                intake=intake,
                dependencies=(D("leaf", faults=rl.Faults(latency=rl.Constant(0.01))),),
            ),
        ),
    )


def test_max_wait_at_a_service_delays_instead_of_refusing() -> None:
    """5 orders at once to b limited to 10/s (burst 1): with max_wait 1 s every request waits
    for its permit (0, 0.1, ..., 0.4 s of virtual time, holding no worker) and completes; with
    max_wait 0.25 s the three due within it wait and the other two are refused at once."""
    waited = rl.simulate(_burst_at_b(_rate(10.0, max_wait=1.0), 5))
    assert waited.summary["completed"] == 5
    assert waited.services.loc["b", "rejected"] == 0
    assert waited.orders is not None
    ends = sorted(waited.orders["end"] - waited.orders["arrival"])
    assert ends == pytest.approx([0.01, 0.11, 0.21, 0.31, 0.41], abs=1e-6)
    some = rl.simulate(_burst_at_b(_rate(10.0, max_wait=0.25), 5))
    assert some.summary["completed"] == 3
    assert some.services.loc["b", "failed_rate_limited"] == 2
    # A wait past the caller's own deadline is refused too (the permit would come too late).
    late = rl.simulate(_burst_at_b(_rate(10.0, max_wait=1.0), 5).replace({"order_deadline": 0.15}))
    assert late.services.loc["b", "failed_rate_limited"] == 3
    assert late.summary["completed"] == 2


@pytest.mark.parametrize(("rate", "max_wait", "completed"), [(0.5, 0.0, 2), (4.0, 2.0, 6)])
def test_sim_and_live_agree_on_a_rate_limited_service(
    rate: float, max_wait: float, completed: int
) -> None:
    """Scripted: 6 orders at once to b, its rate limit with a burst of 2. At 0.5/s without
    max_wait: exactly the burst is admitted and the other 4 are refused at once (rate_limited,
    503) in both engines (the next permit is 2 s away: far beyond a slow machine's delays); at
    4/s with max_wait 2 s: all 6 are admitted (4 park for their permits, due within 1 s) and
    complete."""
    sc = _burst_at_b(_rate(rate, burst=2, max_wait=max_wait), 6)
    sim = rl.simulate(sc)
    with rl.Lab(sc, shutdown_timeout=10.0) as lab:
        assert lab.submit_many(6).wait(60.0)
    live = lab.result
    for name, r in (("sim", sim), ("live", live)):
        b = r.services.loc["b"]
        assert r.summary["completed"] == completed, name
        assert b["arrivals"] == 6 and b["completed"] == completed, name
        assert b["rejected"] == 6 - completed, name
        if completed < 6:
            assert b["failed_rate_limited"] == 6 - completed, name
        assert b["in_flight"] == 0, name


@pytest.mark.parametrize("per_key", [False, True])
def test_shutdown_with_requests_parked_for_a_services_rate_limit_ends_every_order(
    per_key: bool,
) -> None:
    """Live: b admits one request per 100 s and lets the others wait up to 1000 s for their
    permit. A short grace time cancels the orders; the parked requests end at the shutdown
    (none reaches a worker), and nothing waits for their permits."""
    sc = _burst_at_b(_rate(0.01, max_wait=1000.0, per_key=per_key), 4)
    sc = sc.replace({"num_keys": 1})
    lab = rl.Lab(sc)
    lab.start()
    lab.submit_many(4)
    report = lab.shutdown(timeout=0.2)
    r = lab.result
    assert report.timed_out and report.cancelled >= 3
    assert r.summary["in_flight"] == 0
    ended = sum(r.summary[k] for k in ("completed", "failed", "rejected", "expired", "cancelled"))
    assert ended == r.summary["arrived"] == 4
    b = r.services.loc["b"]
    assert b["in_flight"] == 0
    assert b["arrivals"] == 4 and b["completed"] <= 1 and b["rejected"] == 0
    assert b["dropped_unstarted"] >= 3  # their callers had gone: ended without any work
    assert b["arrivals"] == sum(r.totals["services"][1]["statuses"].values())
