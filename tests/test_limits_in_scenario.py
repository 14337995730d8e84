"""Adaptive concurrency limits inside the scenario (issue 13, overload control): ``intake.limit``
(server side) and ``<dependency>.limit`` (client side), in both engines.

Convergence against a capacity-limited dependency, bounded tails at 2x overload, limits never
exceeded at admission, conservation, and per-order agreement of the two engines (fixed seeds,
tolerances argued next to each assertion; no timed assertions)."""

from __future__ import annotations

import numpy as np
import pytest
import reliability_lab as rl
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_lab import (
    Capacity,
    Constant,
    Dependency,
    Exponential,
    Faults,
    Intake,
    Limit,
    Poisson,
    Scenario,
    simulate,
)

# A dependency that serves at most C calls at once, exponential service of mean S: its
# capacity is C / S calls per second and its knee (Little's law: throughput x min RTT) is C.
C = 10
S = 0.01
CAPACITY = C / S


def _capacity_dep(limit: Limit | None, **kw: object) -> Dependency:
    return Dependency(
        faults=Faults(latency=Exponential(S), capacity=Capacity(max_in_service=C)),
        limit=limit,
        **kw,  # type: ignore[arg-type]
    )


def _client(limit: Limit | None, *, load: float = 2.0, duration: float = 20.0) -> Scenario:
    # Plenty of workers and queue: the only bottleneck is the dependency's capacity.
    return Scenario(
        arrivals=Poisson(load * CAPACITY),
        workers=2000,
        queue_capacity=100_000,
        duration=duration,
        seed=11,
        sample_every=0.1,
        dependencies=(_capacity_dep(limit),),
    )


# -- schema ------------------------------------------------------------------------------------


def test_limits_are_addressable_and_sweepable_by_path() -> None:
    sc = Scenario(intake=Intake(limit=Limit()), dependencies=(Dependency(limit=Limit()),))
    assert sc.get("intake.limit.kind") == "gradient2"
    moved = sc.replace({"intake.limit.kind": "aimd", "payment.limit.initial": 5})
    assert moved.intake.limit is not None and moved.intake.limit.kind == "aimd"
    assert moved.get("payment.limit.initial") == 5
    assert Scenario.from_json(moved.to_json()) == moved
    assert "intake.limit.window" in sc.paths()
    table = rl.sweep(
        sc.replace(duration=1.0, arrivals=Poisson(50.0)),
        {"intake.limit.kind": ["static", "aimd", "vegas", "gradient2", "envoy"]},
        seeds=[1],
        progress=False,
    )
    assert len(table) == 5


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"intake.limit": Limit(), "intake.limit.initial": 0}, "intake.limit.initial"),
        ({"payment.limit": Limit(), "payment.limit.min": 500}, "payment.limit.min"),
        ({"payment.limit": Limit(), "payment.limit.kind": "cubic"}, "payment.limit.kind"),
        ({"intake.limit": Limit(kind="envoy"), "intake.limit.window": 1.0}, "intake.limit.window"),
    ],
)
def test_bad_limits_name_their_path(changes: dict[str, object], path: str) -> None:
    with pytest.raises(ValueError, match=path.replace(".", r"\.")):
        Scenario().replace(changes)


# -- client side: convergence and tails ----------------------------------------------------------


def _tail_mean(ts: object, column: str) -> float:
    import pandas as pd

    assert isinstance(ts, pd.DataFrame)
    half = ts[ts["t"] >= ts["t"].max() / 2]
    return float(half[column].mean())


@pytest.mark.parametrize(
    "limit",
    [
        Limit(kind="vegas", initial=20, max=200, window=0.05),
        Limit(kind="gradient2", initial=20, min=1, max=200, rtt_tolerance=1.0),
        Limit(kind="envoy", min=3, max=200),
    ],
    ids=["vegas", "gradient2", "envoy"],
)
def test_client_limit_settles_near_the_knee_and_bounds_the_tail(limit: Limit) -> None:
    r = simulate(_client(limit))
    limit_mean = _tail_mean(r.timeseries, "payment.limit")
    # The knee is C = 10 (capacity x min RTT, Little's law). Each algorithm stops a little
    # above it by design: Vegas keeps its estimated queue (limit x (1 - rtt_noload / rtt))
    # near alpha = 3 (measured 12.7); Gradient2 with rtt_tolerance = 1 shrinks as soon as the
    # RTT exceeds its long-term average and adds queue_size = 4 per update (11.7); Envoy lets
    # the RTT reach min RTT x (1 + buffer 0.25) plus its sqrt(limit) headroom (14.5). Hence
    # [0.8 C, 2 C]: an unlimited client's concurrency at 2x overload grows without bound
    # (below), and Gradient2 with its default rtt_tolerance = 1.5 settles at about 3 C.
    assert 0.8 * C <= limit_mean <= 2 * C, limit_mean
    s = r.summary
    # The dependency is kept busy: goodput at least 90% of its capacity.
    assert s["goodput"] >= 0.9 * CAPACITY, s["goodput"]
    # Bounded tail: completed orders wait a few service times in the server's line (measured
    # 47-49 ms against 19.7 s unlimited).
    assert s["latency_p99"] < 10 * S, s["latency_p99"]
    # The excess is refused locally and fast, counted as "limited".
    assert s["failed_limited"] == s["payment.rejected_limit"] > 0.3 * s["arrived"]


def test_an_unlimited_client_tail_grows_at_2x_overload() -> None:
    short = simulate(_client(None, duration=5.0)).summary
    long = simulate(_client(None, duration=10.0)).summary
    limited = simulate(_client(Limit(kind="gradient2", window=0.05), duration=10.0)).summary
    # The server's line grows at (2 - 1) x capacity per second: p99 grows with the run.
    assert long["latency_p99"] > 1.5 * short["latency_p99"]
    assert long["latency_p99"] > 20 * limited["latency_p99"]


# -- server side ---------------------------------------------------------------------------------

WORKERS = 8
SERVER_CAPACITY = WORKERS / S  # 800 orders per second


def _server(limit: Limit | None, *, load: float = 2.0, duration: float = 20.0) -> Scenario:
    return Scenario(
        arrivals=Poisson(load * SERVER_CAPACITY),
        workers=WORKERS,
        queue_capacity=100_000,
        duration=duration,
        seed=5,
        order_deadline=0.5,
        sample_every=0.1,
        intake=Intake(limit=limit),
        dependencies=(Dependency(faults=Faults(latency=Exponential(S))),),
    )


def test_server_side_aimd_keeps_goodput_near_capacity_at_2x_overload() -> None:
    aimd = Limit(kind="aimd", initial=20, min=8, max=500, timeout=0.05, backoff_ratio=0.9)
    limited = simulate(_server(aimd)).summary
    unlimited = simulate(_server(None)).summary
    # Goodput within 10% of the workers' capacity (Poisson service keeps them a little idle).
    assert limited["goodput"] >= 0.9 * SERVER_CAPACITY, limited["goodput"]
    # The limit turns the excess away at once instead of letting it queue to its deadline.
    assert limited["failed_limited"] > 0.3 * limited["arrived"]
    # Unlimited, orders queue until they start just before their 0.5 s deadline and about
    # half fail on it; limited, none does and p99 stays near 0.1 s.
    assert limited["latency_p99"] < 0.2 < unlimited["latency_p99"]
    assert limited["failed_deadline"] < 0.01 * limited["arrived"]
    assert unlimited["failed_deadline"] > 0.3 * unlimited["arrived"]


# -- never exceeded, conservation ------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    intake_limit=st.integers(1, 30),
    dep_limit=st.integers(1, 30),
    rate=st.floats(50.0, 3000.0),
    seed=st.integers(0, 2**32),
)
def test_static_limits_are_never_exceeded_and_no_order_is_lost(
    intake_limit: int, dep_limit: int, rate: float, seed: int
) -> None:
    sc = Scenario(
        arrivals=Poisson(rate),
        workers=16,
        queue_capacity=50,
        duration=1.0,
        seed=seed,
        sample_every=0.01,
        order_deadline=0.2,
        intake=Intake(limit=Limit(kind="static", initial=intake_limit, max=30)),
        dependencies=(_capacity_dep(Limit(kind="static", initial=dep_limit, max=30)),),
    )
    r = simulate(sc)
    ts = r.timeseries
    assert (ts["intake.inflight"] <= ts["intake.limit"]).all()
    assert (ts["intake.limit"] == intake_limit).all()
    assert (ts["payment.limit_inflight"] <= dep_limit).all()
    # Admitted orders in the system (queued + processing) never exceed the intake limit.
    assert (ts["in_system"] <= intake_limit).all()
    s = r.summary
    terminal = s["completed"] + s["failed"] + s["rejected"] + s["expired"] + s["cancelled"]
    assert terminal == s["arrived"] and s["in_flight"] == 0
    assert ts["intake.rejected"].sum() + ts["payment.rejected_limit"].sum() == s["failed_limited"]
    raw = r.totals["dependencies"][0]
    assert raw["rejected_limit"] == ts["payment.rejected_limit"].sum()
    orders = r.orders
    assert orders is not None
    limited = orders[orders["reason"] == "limited"]
    assert set(limited["status"].astype(str)) <= {"rejected", "failed"}


@settings(max_examples=15, deadline=None)
@given(kind=st.sampled_from(["aimd", "vegas", "gradient2", "envoy"]), seed=st.integers(0, 2**32))
def test_adaptive_limits_admit_only_under_the_limit(kind: str, seed: int) -> None:
    # The limiter admits while in flight < limit; a limit that shrinks later only stops new
    # admissions, so in flight never exceeds the highest limit reached so far, and the limit
    # stays within [min, max]. Samples see the limit only at sample times: a peak between two
    # samples is invisible, so the sampled check allows the rare sample right after one.
    limit = Limit(kind=kind, initial=5, min=2, max=40)  # type: ignore[arg-type]
    sc = _client(limit, load=1.5, duration=3.0).replace(seed=seed, sample_every=0.01)
    r = simulate(sc)
    ts = r.timeseries
    inflight = ts["payment.limit_inflight"].to_numpy()
    highest = np.maximum.accumulate(ts["payment.limit"].to_numpy())
    assert (inflight <= 40).all()
    assert np.mean(inflight <= highest) >= 0.98
    assert ts["payment.limit"].between(2, 40).all()
    s = r.summary
    assert s["completed"] + s["failed"] + s["rejected"] + s["expired"] == s["arrived"]


# -- the two engines agree -------------------------------------------------------------------------


def _outcomes(orders: object) -> list[tuple[str, str, int]]:
    import pandas as pd

    assert isinstance(orders, pd.DataFrame)
    return sorted(
        zip(
            orders["status"].astype(str),
            orders["reason"].astype(str),
            orders["attempts"].astype(int),
            strict=True,
        )
    )


@pytest.mark.parametrize(
    ("intake", "dep_limit", "expected"),
    [
        # Three admitted at once, the other nine over the server-side limit.
        (Intake(limit=Limit(kind="static", initial=3)), None, {"completed": 3, "limited": 9}),
        # Four workers start four orders; two get a permit, every other attempt is refused.
        (Intake(), Limit(kind="static", initial=2), {"completed": 2, "limited": 10}),
    ],
    ids=["intake", "client"],
)
def test_both_engines_give_the_same_per_order_outcomes(
    intake: Intake, dep_limit: Limit | None, expected: dict[str, int]
) -> None:
    # Every order arrives at once and a call takes 0.5 s: which orders get a permit is decided
    # before the first call ends, in both engines.
    n = 12
    sc = Scenario(
        arrivals=rl.Trace(tuple(0.0 for _ in range(n))),
        workers=4,
        queue_capacity=100,
        duration=0.1,
        seed=3,
        intake=intake,
        dependencies=(Dependency(faults=Faults(latency=Constant(0.5)), limit=dep_limit),),
    )
    sim = simulate(sc)
    with rl.Lab(sc, shutdown_timeout=30.0) as lab:
        handles = lab.submit_many(n)
        assert all(h.wait(timeout=30) for h in handles)
    live = lab.result
    assert _outcomes(live.orders) == _outcomes(sim.orders)
    got = sim.summary
    assert got["completed"] == expected["completed"]
    assert got["failed_limited"] == expected["limited"]


# -- rate limits -----------------------------------------------------------------------------------


def _rate_scenario(
    *, intake_rate: rl.RateLimit | None = None, dep_rate: rl.RateLimit | None = None,
    rate: float = 200.0, duration: float = 10.0, **kw: object,
) -> Scenario:
    return Scenario(
        arrivals=rl.ConstantRate(rate),
        workers=64,
        queue_capacity=10_000,
        duration=duration,
        seed=2,
        sample_every=1.0,
        intake=Intake(rate_limit=intake_rate),
        dependencies=(Dependency(faults=Faults(latency=Constant(0.001)), rate_limit=dep_rate),),
        **kw,  # type: ignore[arg-type]
    )


def test_intake_rate_limit_admits_at_its_rate() -> None:
    # Smooth, burst 1: one permit every 10 ms against an order every 5 ms: every other order.
    s = simulate(_rate_scenario(intake_rate=rl.RateLimit(rate=100.0))).summary
    assert s["arrived"] == pytest.approx(2000, abs=1)
    assert s["completed"] == pytest.approx(s["arrived"] / 2, abs=1)
    assert s["failed_rate_limited"] == s["rejected"] == s["arrived"] - s["completed"]
    # Bursty: 10 permits at the start of every 0.1 s, unused ones lost: the same 100/s.
    s = simulate(
        _rate_scenario(intake_rate=rl.RateLimit(rate=100.0, burst=10, mode="bursty"))
    ).summary
    assert s["completed"] == pytest.approx(1000, abs=10)


def test_intake_rate_limit_per_key_gives_each_key_its_rate() -> None:
    # Four keys, 20 permits per second each and 5 saved up: 4 x (20 x 10 s + 5) = 820 in all.
    # Keys are drawn at random, so a key's arrivals bunch up and a few permits go unused (the
    # burst absorbs most of it: 3% tolerance, measured 815).
    sc = _rate_scenario(intake_rate=rl.RateLimit(rate=20.0, burst=5, per_key=True), num_keys=4)
    s = simulate(sc).summary
    assert s["completed"] == pytest.approx(820, rel=0.03)
    single = simulate(_rate_scenario(intake_rate=rl.RateLimit(rate=20.0), num_keys=4)).summary
    assert single["completed"] == pytest.approx(200, abs=1)


def test_intake_rate_limit_waits_up_to_max_wait_in_both_engines() -> None:
    # 200/s offered, 100/s allowed, up to 50 ms of wait: the queue of reservations fills to
    # 50 ms (5 permits ahead), then every other order is refused; the admitted ones wait.
    sc = _rate_scenario(intake_rate=rl.RateLimit(rate=100.0, max_wait=0.05))
    r = simulate(sc)
    s = r.summary
    assert s["completed"] == pytest.approx(1000, abs=10)
    assert s["failed_rate_limited"] == pytest.approx(1000, abs=10)
    # Waits are bounded by max_wait: an order's latency is its wait plus the 1 ms call.
    assert 0.04 < s["latency_max"] <= 0.05 + 0.001 + 1e-6
    terminal = s["completed"] + s["failed"] + s["rejected"] + s["expired"]
    assert terminal == s["arrived"] and s["in_flight"] == 0
    # The live engine waits too (tests/test_live_rate_wait.py): the submitter does not block,
    # the order waits for its permit off the caller's thread and is served after it. Permits
    # 0.25 s apart: the second and third orders wait whatever the machine's timing.
    slow = sc.replace({"intake.rate_limit": rl.RateLimit(rate=4.0, max_wait=1.0)})
    with rl.Lab(slow, shutdown_timeout=10.0) as lab:
        handles = lab.submit_many(3)
        assert all(h.wait(timeout=10) for h in handles)
    live = lab.result.summary
    assert live["completed"] == 3 and live["in_flight"] == 0
    assert lab.result.timeseries["intake.rate_limit_waits"].sum() == 2


def test_dependency_rate_limit_paces_calls_and_waits_up_to_max_wait() -> None:
    dep_rate = rl.RateLimit(rate=100.0, burst=5, max_wait=0.02)
    r = simulate(_rate_scenario(dep_rate=dep_rate))
    s = r.summary
    ts = r.timeseries
    # Never more calls per second than the rate allows (plus the burst saved up at the start).
    assert (ts["payment.calls"] <= 100 + 5).all()
    assert s["payment.calls"] == pytest.approx(1000, abs=10)
    assert s["payment.rate_limit_waits"] > 0
    assert s["payment.rejected_rate_limit"] == s["failed_rate_limited"] > 0
    assert s["completed"] + s["failed"] == s["arrived"]
    # A wait never exceeds max_wait: an order's latency is its wait plus the 1 ms call.
    assert s["latency_max"] <= 0.02 + 0.001 + 1e-6


def test_dependency_rate_limit_with_a_fallback_degrades() -> None:
    dep = Dependency(
        faults=Faults(latency=Constant(0.001)),
        rate_limit=rl.RateLimit(rate=50.0),
        fallback=rl.Fallback(kind="default"),
    )
    sc = _rate_scenario().replace(dependencies=(dep,))
    s = simulate(sc).summary
    assert s["failed"] == 0
    assert s["degraded_fraction"] == pytest.approx(0.75, abs=0.01)


@pytest.mark.parametrize(
    ("intake", "dep_rate", "expected"),
    [
        # A burst of three permits at the intake, then one a second: nine refused.
        (Intake(rate_limit=rl.RateLimit(rate=1.0, burst=3)), None, 3),
        # Two calls pass the dependency's rate limit, the other ten are refused.
        (Intake(), rl.RateLimit(rate=1.0, burst=2), 2),
    ],
    ids=["intake", "client"],
)
def test_both_engines_agree_with_a_rate_limit(
    intake: Intake, dep_rate: rl.RateLimit | None, expected: int
) -> None:
    n = 12
    sc = Scenario(
        arrivals=rl.Trace(tuple(0.0 for _ in range(n))),
        workers=4,
        queue_capacity=100,
        duration=0.1,
        seed=3,
        intake=intake,
        dependencies=(Dependency(faults=Faults(latency=Constant(0.2)), rate_limit=dep_rate),),
    )
    sim = simulate(sc)
    with rl.Lab(sc, shutdown_timeout=30.0) as lab:
        handles = lab.submit_many(n)
        assert all(h.wait(timeout=30) for h in handles)
    live = lab.result
    assert _outcomes(live.orders) == _outcomes(sim.orders)
    assert sim.summary["completed"] == expected
    assert sim.summary["failed_rate_limited"] == n - expected


def test_live_engine_exports_limits_as_metrics_and_time_series() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    sc = Scenario(
        arrivals=Poisson(20.0),
        duration=0.5,
        workers=2,
        sample_every=0.1,
        intake=Intake(limit=Limit(kind="static", initial=7)),
        dependencies=(
            Dependency(
                faults=Faults(latency=Constant(0.001)), limit=Limit(kind="static", initial=3)
            ),
        ),
    )
    with rl.Lab(sc, shutdown_timeout=10.0) as lab:
        families = {f.name: f for f in text_string_to_metric_families(lab.metrics_text())}
    limits = {s.labels["limiter"]: s.value for s in families["rlab_limit"].samples}
    assert limits == {"intake": 7.0, "payment": 3.0}
    assert {s.labels["limiter"] for s in families["rlab_limit_inflight"].samples} == {
        "intake",
        "payment",
    }
    reasons = {s.labels["reason"] for s in families["rlab_order_failures"].samples}
    assert {"limited", "rate_limited"} <= reasons
    ts = lab.result.timeseries
    for column in ("intake.limit", "intake.inflight", "intake.rejected", "payment.limit",
                   "payment.limit_inflight", "payment.rejected_limit"):
        assert column in ts.columns
    assert (ts["intake.limit"] == 7).all() and (ts["payment.limit"] == 3).all()


@pytest.mark.parametrize("kind", ["envoy", "gradient2"])
def test_sampling_does_not_change_the_run(kind: str) -> None:
    # The samplers read the limiters without running their timers (Envoy's windows move on
    # time alone: a window that ended between two events would otherwise restart at the
    # sampling tick). Sparse events (200 orders/s), short Envoy windows and a tick every
    # millisecond make any such shift move samples between windows.
    limit = Limit(
        kind=kind,  # type: ignore[arg-type]
        initial=5,
        min=2,
        max=100,
        sample_interval=0.01,
        request_count=5,
        min_rtt_interval=0.5,
    )
    sc = Scenario(
        arrivals=Poisson(200.0),
        workers=500,
        queue_capacity=10_000,
        duration=5.0,
        seed=4,
        intake=Intake(limit=limit),
        dependencies=(
            Dependency(
                faults=Faults(latency=Exponential(0.02), capacity=Capacity(max_in_service=2)),
                limit=limit,
            ),
        ),
    )
    sampled = simulate(sc.replace(sample_every=0.001)).summary
    unsampled = simulate(sc.replace(sample_every=0.0)).summary
    keep = [k for k in sampled.index if k != "events_processed"]
    assert sampled[keep].equals(unsampled[keep])


# -- rate-limit time series and metrics ------------------------------------------------------------

_RATE_COLUMNS = (
    "payment.rate_limited",
    "payment.rate_limit_waits",
    "intake.rate_limited",
    "intake.rate_limit_waits",
)


def _rate_series_scenario() -> Scenario:
    # Both gates, plus a concurrency limit at each: the rate-limit columns come after its ones.
    return Scenario(
        arrivals=Poisson(400.0),
        duration=0.5,
        workers=8,
        queue_capacity=1000,
        sample_every=0.1,
        seed=5,
        intake=Intake(rate_limit=rl.RateLimit(rate=300.0), limit=Limit(kind="static", initial=50)),
        dependencies=(
            Dependency(
                faults=Faults(latency=Constant(0.001)),
                limit=Limit(kind="static", initial=20),
                rate_limit=rl.RateLimit(rate=150.0, burst=2, max_wait=0.01),
            ),
        ),
    )


def test_rate_limit_columns_come_last_in_the_same_order_in_both_engines() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    sc = _rate_series_scenario()
    sim = simulate(sc)
    with rl.Lab(sc, shutdown_timeout=10.0) as lab:
        families = {f.name: f for f in text_string_to_metric_families(lab.metrics_text())}
    live = lab.result
    assert list(sim.timeseries.columns) == list(live.timeseries.columns)
    assert tuple(sim.timeseries.columns[-4:]) == _RATE_COLUMNS
    assert list(sim.timeseries.columns[-7:-4]) == [
        "intake.limit", "intake.inflight", "intake.rejected"
    ]
    # Per-interval counts add up to the run's totals in both engines.
    for r in (sim, live):
        ts, s = r.timeseries, r.summary
        assert ts["payment.rate_limited"].sum() == s["payment.rejected_rate_limit"]
        assert ts["payment.rate_limit_waits"].sum() == s["payment.rate_limit_waits"]
        refused = ts["intake.rate_limited"].sum() + ts["payment.rate_limited"].sum()
        assert refused == s["failed_rate_limited"]
        assert (ts[list(_RATE_COLUMNS)] >= 0).all().all()
    assert sim.timeseries["intake.rate_limited"].sum() > 0
    assert sim.timeseries["payment.rate_limit_waits"].sum() > 0
    # The live engine exports the same counts as Prometheus counters, labelled by limiter.
    for name in ("rlab_rate_limited", "rlab_rate_limit_waits"):
        assert {s.labels["limiter"] for s in families[name].samples if s.name.endswith("_total")} \
            == {"intake", "payment"}


def test_intake_rate_limit_waits_add_up_per_interval() -> None:
    sc = _rate_scenario(intake_rate=rl.RateLimit(rate=100.0, max_wait=0.05))
    r = simulate(sc)
    ts, s = r.timeseries, r.summary
    assert ts["intake.rate_limited"].sum() == s["failed_rate_limited"] > 0
    # Every admitted order but the first few waited for its permit (one every 10 ms, 5 ms apart).
    assert s["completed"] - 10 <= ts["intake.rate_limit_waits"].sum() <= s["completed"]


def test_no_rate_limit_columns_without_rate_limits() -> None:
    sc = _rate_series_scenario()
    sc = sc.replace(
        intake=Intake(limit=Limit(kind="static", initial=50)),
        dependencies=(Dependency(faults=Faults(latency=Constant(0.001))),),
    )
    columns = list(simulate(sc).timeseries.columns)
    assert not [c for c in columns if "rate_limit" in c]
    with rl.Lab(sc, shutdown_timeout=10.0) as lab:
        text = lab.metrics_text()
    assert list(lab.result.timeseries.columns) == columns
    assert "rlab_rate_limited" not in text
