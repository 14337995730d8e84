"""Service graphs (issue #14): the schema of ``rl.Service`` and ``Dependency(service=...)``, the
validation of the graph as a whole, and the simulated engine running it."""

from __future__ import annotations

import math

import pytest
import reliability_lab as rl
from hypothesis import given, settings
from hypothesis import strategies as st

D = rl.Dependency


def _svc(name: str, *calls: str) -> rl.Service:
    deps = tuple(D(f"to_{c}", service=c) for c in calls) or (D("leaf"),)
    return rl.Service(name=name, dependencies=deps)


def test_single_service_scenario_is_unchanged() -> None:
    sc = rl.Scenario()
    assert sc.services == ()
    assert "services" in sc.to_dict() and sc.to_dict()["services"] == []
    # A dict written before service graphs (no "services", no "service") still reads.
    d = sc.to_dict()
    del d["services"]
    for dep in d["dependencies"]:
        del dep["service"]
    assert rl.Scenario.from_dict(d) == sc


def test_graph_round_trips_and_paths_name_services() -> None:
    sc = rl.Scenario(
        dependencies=(D("inv", service="inventory"),),
        services=(_svc("inventory", "db"), _svc("db")),
    )
    assert rl.Scenario.from_dict(sc.to_dict()) == sc
    assert rl.Scenario.from_json(sc.to_json()) == sc
    assert sc.get("services[inventory].dependencies[to_db].service") == "db"
    assert "services[db].dependencies[leaf].retry" in sc.paths()
    sc2 = sc.replace(
        {"services[db].workers": 3, "services[db].dependencies[leaf].attempt_timeout": 1}
    )
    assert sc2.get("services[db].workers") == 3
    assert sc2.services[1].dependencies[0].attempt_timeout == 1.0


@pytest.mark.parametrize(
    ("deps", "services", "message"),
    [
        (
            (D("payment"), D("inv", service="x")),
            (_svc("a"), _svc("b", "a")),
            "inv.service: unknown service 'x'; known: a, b",
        ),
        (
            (D("inv", service="a"),),
            (_svc("a", "b"), _svc("b", "zz")),
            "services[b].dependencies[to_zz].service: unknown service 'zz'; known: a, b",
        ),
        (
            (D("inv", service="a"),),
            (_svc("a", "b"), _svc("b", "c"), _svc("c", "b")),
            "services form a cycle: root → a → b → c → b",
        ),
        (
            (D("inv", service="a"),),
            (_svc("a", "a"),),
            "services form a cycle: root → a → a",
        ),
        (
            (D("inv", service="a"),),
            (_svc("a"), _svc("b")),
            "services[b] is unreachable",
        ),
        (
            (D("inv", service="a"),),
            (_svc("a"), _svc("a")),
            'services[1].name "a" is already used by services[0]',
        ),
    ],
)
def test_graph_errors_name_the_path(
    deps: tuple[rl.Dependency, ...], services: tuple[rl.Service, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        rl.Scenario(dependencies=deps, services=services)


def test_a_caller_has_no_fault_model_of_its_own() -> None:
    for bad in (
        {"faults": rl.Faults(failure_rate=0.1)},
        {"replicas": rl.Replicas(count=2)},
        {"charges": True},
    ):
        with pytest.raises(ValueError, match="must keep its default when service is set"):
            D("inv", service="a", **bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="service must be None or a service name"):
        D("inv", service="not a name")


def test_service_fields_are_checked() -> None:
    with pytest.raises(ValueError, match=r"workers must be an integer in \[1, 100000\]"):
        rl.Service(name="a", workers=0)
    with pytest.raises(ValueError, match="dependencies must have between 1 and 16"):
        rl.Service(name="a", dependencies=())
    with pytest.raises(ValueError, match=r'dependencies\[1\].name "x" is already used'):
        rl.Service(name="a", dependencies=(D("x"), D("x")))
    sc = rl.Scenario(dependencies=(D("inv", service="a"),), services=(_svc("a"),))
    with pytest.raises(ValueError, match=r"services\[a\]\.dependencies\[leaf\]\.attempt_timeout"):
        sc.replace({"services[a].dependencies[leaf].attempt_timeout": -1.0})
    d = sc.to_dict()
    d["services"][0]["deadline"] = -1.0
    with pytest.raises(ValueError, match=r"services\[a\]\.deadline"):
        rl.Scenario.from_dict(d)


def test_live_engine_accepts_services() -> None:
    """The live engine runs service graphs (tests/test_live_service_graph.py), hedged and
    fanned-out calls to a service included; it refuses what it cannot run yet, naming the path:
    a hedged leaf with a capacity limit, at a service too."""
    sc = rl.Scenario(dependencies=(D("inv", service="a"),), services=(_svc("a"),))
    rl.Lab(sc).shutdown()
    rl.Lab(sc.replace({"inv.hedge": rl.Hedge(delay=0.01)})).shutdown()
    rl.Lab(sc.replace({"inv.fanout": rl.FanOut(copies=2)})).shutdown()
    limited = sc.replace(
        {
            "services[a].dependencies[leaf].hedge": rl.Hedge(delay=0.01),
            "services[a].dependencies[leaf].faults.capacity": rl.Capacity(max_in_service=2),
        }
    )
    with pytest.raises(
        ValueError, match=r"services\[a\]\.dependencies\[leaf\]\.hedge with a capacity limit"
    ):
        rl.Lab(limited)


# ------------------------------------------------------------------------------------------------
# The simulated engine runs the graph.


def test_single_service_runs_are_bit_identical() -> None:
    """A scenario without services runs exactly as before service graphs (digests of the
    summary, orders, time series and events taken on the engine before the change)."""
    from service_digest import digest, scenarios

    expected = {
        "retry_breaker": "d7008ca4a58714e6",
        "capacity_hedge": "fe445839de070edc",
        "closed_bulkhead": "338066bf304c4c19",
    }
    for name, sc in scenarios().items():
        assert digest(rl.simulate(sc)) == expected[name], name


def _expected_attempts(f: float, n: int = 4) -> float:
    """Mean attempts of a retry loop of at most n attempts, each failing with probability f:
    1 + f + f**2 + ... + f**(n - 1)."""
    return sum(f**k for k in range(n))


@pytest.mark.parametrize("q", [0.0, 0.2])
def test_amplification_is_the_product_of_per_tier_attempts(q: float) -> None:
    """Three tiers (root → mid → low → leaf ``db``), every call retried up to 4 attempts.

    Each tier first runs a local step that fails with probability q (one attempt), then its
    downstream call; a failed request answers 503, which the caller retries. With p the leaf's
    failure rate and E(f) = 1 + f + f^2 + f^3 the mean attempts of a loop whose attempts fail
    independently with probability f:

    * db calls per low request: (1 - q) E(p); low fails with f_low = 1 - (1 - q)(1 - p^4);
    * low requests per mid request: (1 - q) E(f_low); mid fails with
      f_mid = 1 - (1 - q)(1 - f_low^4);
    * mid requests per order: (1 - q) E(f_mid).

    The calls per order at each tier are the running products (q = 0: failures at the leaf
    only).
    """
    p = 0.4
    retry = rl.RetryConfig(max_attempts=4, backoff=rl.Backoff(initial=0.0001, max_delay=0.0001))
    fast = rl.Constant(0.0001)

    def local() -> rl.Dependency:
        return D("local", faults=rl.Faults(failure_rate=q, latency=fast))

    def tier(name: str, call: rl.Dependency) -> rl.Service:
        return rl.Service(
            name=name, workers=200, queue_capacity=10_000, dependencies=(local(), call)
        )

    sc = rl.Scenario(
        arrivals=rl.Poisson(200.0),
        duration=100.0,
        seed=5,
        workers=200,
        queue_capacity=10_000,
        sample_every=0.0,
        record_events=False,
        dependencies=(local(), D("to_mid", service="mid", retry=retry)),
        services=(
            tier("mid", D("to_low", service="low", retry=retry)),
            tier("low", D("db", faults=rl.Faults(failure_rate=p, latency=fast), retry=retry)),
        ),
    )
    r = rl.simulate(sc)
    e = _expected_attempts
    f_low = 1 - (1 - q) * (1 - p**4)
    f_mid = 1 - (1 - q) * (1 - f_low**4)
    mid_per_order = (1 - q) * e(f_mid)
    low_per_order = mid_per_order * (1 - q) * e(f_low)
    db_per_order = low_per_order * (1 - q) * e(p)
    s = r.services
    orders = s.loc["root", "arrivals"]
    assert orders == r.summary["arrived"] > 15_000
    assert s.loc["mid", "amplification"] == pytest.approx(mid_per_order, rel=0.02)
    assert s.loc["low", "amplification"] == pytest.approx(low_per_order, rel=0.02)
    db = next(d for d in r.totals["dependencies"] if d["name"] == "low.db")
    assert db["service"] == "low"
    assert db["calls"] / orders == pytest.approx(db_per_order, rel=0.02)
    # Nothing was refused or lost on the way: every request ended.
    assert (s["rejected"] == 0).all() and (s["in_flight"] == 0).all()
    assert (s["arrivals"] == s["completed"] + s["failed"]).all()


def _erlang_c(c: int, a: float) -> float:
    s = sum(a**k / math.factorial(k) for k in range(c))
    top = a**c / math.factorial(c) / (1 - a / c)
    return top / (s + top)


def _sojourn(lam: float, mu: float, c: int) -> float:
    """Mean time in an M/M/c station (waiting plus service), as in tests/test_jackson.py."""
    return _erlang_c(c, lam / mu) / (c * mu - lam) + 1 / mu


def test_tandem_of_services_has_the_jackson_sojourn_per_tier() -> None:
    """The root (a pool large enough never to queue) calls service ``a`` (one worker: M/M/1)
    then ``b`` (three workers: M/M/3); each service's worker is held for one exponential leaf
    call. Departures of a stable M/M/c queue are Poisson (Burke), so the tandem is a Jackson
    network: each tier's mean sojourn is its own M/M/c ``Wq + 1/mu`` (Jackson 1957)."""
    lam = 6.0
    stations = {"a": (10.0, 1), "b": (3.0, 3)}
    sc = rl.Scenario(
        arrivals=rl.Poisson(lam),
        workers=10_000,
        queue_capacity=0,
        duration=6000.0,
        seed=3,
        sample_every=0.0,
        record_events=False,
        record_orders=False,
        dependencies=tuple(D(f"to_{n}", service=n) for n in stations),
        services=tuple(
            rl.Service(
                name=n,
                workers=c,
                queue_capacity=10_000_000,
                dependencies=(D("work", faults=rl.Faults(latency=rl.Exponential(1 / mu))),),
            )
            for n, (mu, c) in stations.items()
        ),
    )
    s = rl.simulate(sc).services
    for n, (mu, c) in stations.items():
        assert s.loc[n, "completed"] == s.loc["root", "arrivals"]
        assert s.loc[n, "latency_mean"] == pytest.approx(_sojourn(lam, mu, c), rel=0.06), n
    # The tiers differ: the test can tell one station from the other.
    assert abs(_sojourn(lam, 10.0, 1) - _sojourn(lam, 3.0, 3)) > 0.2 * _sojourn(lam, 3.0, 3)


def test_deadline_travels_with_the_call_and_late_work_is_wasted() -> None:
    """The caller's attempt timeout (50 ms) is the child's deadline: a slow tier (200 ms) never
    answers in time; each request a worker started ends at that deadline, for nobody (its
    caller timed out at the same instant): at most 50 ms of wasted worker time each."""
    sc = rl.Scenario(
        arrivals=rl.Poisson(100.0),
        duration=5.0,
        seed=2,
        dependencies=(D("to_slow", service="slow", attempt_timeout=0.05),),
        services=(
            rl.Service(
                name="slow",
                workers=2,
                queue_capacity=1000,
                dependencies=(D("work", faults=rl.Faults(latency=rl.Constant(0.2))),),
            ),
        ),
    )
    r = rl.simulate(sc)
    s = r.services
    assert r.summary["completed"] == 0
    assert s.loc["slow", "completed"] == 0
    assert s.loc["slow", "in_flight"] == 0
    assert s.loc["slow", "failed_deadline"] == s.loc["slow", "arrivals"] > 400
    started = s.loc["slow", "arrivals"] - s.loc["slow", "dropped_unstarted"]
    assert s.loc["slow", "wasted"] == started
    assert 0 < s.loc["slow", "wasted_seconds"] <= 0.05 * started + 1e-9
    assert r.totals["services"][1]["overran"] == 0


def test_a_request_whose_caller_gave_up_is_not_started() -> None:
    """A fan-out of 2 copies, quorum 1, to a one-worker service: the first copy's answer decides
    the call, and the other copy, still queued, is dropped when the worker reaches it (the
    worker takes its next request after its answer went out)."""
    sc = rl.Scenario(
        arrivals=rl.Poisson(20.0),
        duration=10.0,
        seed=4,
        dependencies=(D("to_s", service="s", fanout=rl.FanOut(copies=2, quorum=1)),),
        services=(
            rl.Service(
                name="s",
                workers=1,
                queue_capacity=1000,
                dependencies=(D("work", faults=rl.Faults(latency=rl.Constant(0.005))),),
            ),
        ),
    )
    r = rl.simulate(sc)
    s = r.services
    orders = r.summary["arrived"]
    assert r.summary["completed"] == orders > 100
    assert s.loc["s", "arrivals"] == 2 * orders
    assert s.loc["s", "completed"] == orders
    assert s.loc["s", "dropped_unstarted"] == s.loc["s", "expired"] == orders
    assert s.loc["s", "wasted"] == 0
    work = next(d for d in r.totals["dependencies"] if d["name"] == "s.work")
    assert work["calls"] == orders


@st.composite
def _graphs(draw: st.DrawFn) -> rl.Scenario:
    """A random small graph: service i may call any later service (no cycle), and service
    i + 1 is always called by service i (all reachable); random timeouts, deadlines, retries,
    queue sizes, failures, hedges and service intakes (rate limits included)."""
    n = draw(st.integers(1, 4))
    seconds = st.sampled_from([0.0, 0.002, 0.01, 0.03])
    retry = st.sampled_from([None, 2, 3])

    def dep(name: str, service: str | None) -> rl.Dependency:
        attempts = draw(retry)
        kw: dict[str, object] = {
            "attempt_timeout": draw(seconds),
            "retry": None
            if attempts is None
            else rl.RetryConfig(
                max_attempts=attempts, backoff=rl.Backoff(initial=0.001, max_delay=0.002)
            ),
        }
        if draw(st.booleans()):
            kw["bulkhead"] = rl.BulkheadConfig(max_concurrent=2, max_wait=0.005)
        if service is not None:
            if draw(st.booleans()):
                kw["hedge"] = rl.Hedge(delay=0.003, max_hedges=1)
            return D(name, service=service, **kw)  # type: ignore[arg-type]
        faults = rl.Faults(
            failure_rate=draw(st.sampled_from([0.0, 0.2, 0.6])),
            latency=rl.Exponential(draw(st.sampled_from([0.001, 0.005, 0.02]))),
        )
        return D(name, faults=faults, **kw)  # type: ignore[arg-type]

    # A service's own intake (sometimes): a queue discipline, or a concurrency limit.
    intakes = st.sampled_from(
        [
            rl.Intake(),
            rl.Intake(discipline=rl.QueueDiscipline(kind="lifo")),
            rl.Intake(discipline=rl.QueueDiscipline(kind="adaptive_lifo", lifo_threshold=0.002)),
            rl.Intake(
                discipline=rl.QueueDiscipline(
                    kind="codel", codel_target=0.001, codel_interval=0.005
                )
            ),
            rl.Intake(limit=rl.Limit(kind="static", initial=2)),
            rl.Intake(limit=rl.Limit(kind="gradient2", initial=3, min=1, max=8)),
            # A rate limit: refusing at once, or parking requests up to max_wait (per order
            # key, in front of a limit).
            rl.Intake(rate_limit=rl.RateLimit(rate=150.0, burst=2)),
            rl.Intake(
                rate_limit=rl.RateLimit(rate=200.0, max_wait=0.02, per_key=True),
                limit=rl.Limit(kind="static", initial=2),
            ),
            rl.Intake(rate_limit=rl.RateLimit(rate=100.0, mode="bursty", burst=5, max_wait=0.01)),
        ]
    )
    services = []
    for i in range(n):
        deps = []
        if i + 1 < n:
            deps.append(dep("next", f"s{i + 1}"))
        for j in range(i + 2, n):
            if draw(st.booleans()):
                deps.append(dep(f"to_s{j}", f"s{j}"))
        if not deps or draw(st.booleans()):
            deps.append(dep("leaf", None))
        services.append(
            rl.Service(
                name=f"s{i}",
                workers=draw(st.integers(1, 4)),
                queue_capacity=draw(st.integers(0, 5)),
                deadline=draw(seconds),
                dependencies=tuple(deps),
                intake=draw(intakes),
            )
        )
    return rl.Scenario(
        arrivals=rl.Poisson(300.0),
        duration=0.5,
        seed=draw(st.integers(0, 1000)),
        workers=draw(st.integers(1, 8)),
        order_deadline=draw(seconds),
        release_worker_during_backoff=draw(st.booleans()),
        sample_every=0.0,
        dependencies=(dep("to_s0", "s0"),),
        services=tuple(services),
    )


@settings(max_examples=60, deadline=None)
@given(_graphs())
def test_random_graphs_conserve_requests_and_respect_deadlines(sc: rl.Scenario) -> None:
    """On random graphs: one row per user order, every order terminal, every child request
    ended (conservation per service), and no request ran past its deadline (the caller's
    remaining time travels with the call)."""
    r = rl.simulate(sc)
    assert r.orders is not None
    assert len(r.orders) == r.summary["arrived"]
    assert r.orders["status"].isin(["completed", "failed", "rejected", "expired"]).all()
    s = r.services
    assert (s["in_flight"] == 0).all()
    ended = s["completed"] + s["failed"] + s["rejected"] + s["expired"]
    assert (s["arrivals"] == ended).all()
    assert all(x["overran"] == 0 for x in r.totals["services"][1:])
    # A service receives at most the calls its callers sent it.
    calls: dict[str, int] = {}
    for d in r.totals["dependencies"]:
        dep = (
            sc.dependency(d["name"])
            if "service" not in d
            else next(
                x
                for svc in sc.services
                if svc.name == d["service"]
                for x in svc.dependencies
                if f"{svc.name}.{x.name}" == d["name"]
            )
        )
        if dep.service is not None:
            calls[dep.service] = calls.get(dep.service, 0) + d["calls"]
    for name, n in calls.items():
        assert s.loc[name, "arrivals"] <= n
