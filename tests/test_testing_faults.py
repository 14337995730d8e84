"""reliability_lab.testing.FaultInjector: the lab's fault models applied to plain callables,
httpx clients and requests sessions; third-party retry/breaker code (tenacity, pybreaker) and
the lab's own policies tested against the same models the simulated engine runs."""

from __future__ import annotations

import math

import httpx
import pybreaker
import pytest
import reliability_lab as rl
import requests
import tenacity
from reliability_lab.testing import (
    FaultInjector,
    InjectedConnectionReset,
    InjectedHTTPError,
    InjectedTimeout,
    inject,
)

ONLY_TIMEOUTS = rl.FailureMix(http503=0, timeout=1)


def _ok() -> str:
    return "ok"


def _binomial_tolerance(p: float, n: int, sds: float = 4.0) -> float:
    return sds * math.sqrt(p * (1 - p) / n)


def test_failure_fraction_matches_the_model() -> None:
    clock = rl.ManualClock()
    inj = FaultInjector(rl.Faults(failure_rate=0.2), clock=clock, seed=3)
    n, failed = 4000, 0
    for _ in range(n):
        try:
            inj.call(_ok)
        except InjectedHTTPError as e:
            assert e.status_code == 503  # the default mix
            failed += 1
    assert abs(failed / n - 0.2) <= _binomial_tolerance(0.2, n)
    assert inj.stats.calls == n and inj.stats.failed == failed
    assert inj.stats.passed == n - failed


def test_the_mix_decides_the_kind() -> None:
    mix = rl.FailureMix(http500=1, http503=1, http429=1, timeout=1, connection_reset=1)
    inj = FaultInjector(rl.Faults(failure_rate=1.0, mix=mix, hang=0.5), clock=rl.ManualClock(),
                        seed=1)
    kinds: dict[str, int] = {}
    for _ in range(2000):
        with pytest.raises((InjectedHTTPError, InjectedTimeout, InjectedConnectionReset)) as info:
            inj.call(_ok)
        kind = type(info.value).__name__ + str(getattr(info.value, "status_code", ""))
        kinds[kind] = kinds.get(kind, 0) + 1
    assert len(kinds) == 5
    for count in kinds.values():
        assert abs(count / 2000 - 0.2) <= _binomial_tolerance(0.2, 2000)


def test_same_seed_same_faults_and_seeds_differ() -> None:
    def fates(seed: int) -> list[object]:
        inj = FaultInjector(rl.Faults(failure_rate=0.5, latency=rl.Exponential(0.01)),
                            clock=rl.ManualClock(), seed=seed)
        return [(d.fault, d.delay) for d in (inj.decide() for _ in range(50))]

    assert fates(7) == fates(7)
    assert fates(7) != fates(8)


def test_phases_follow_the_clock_from_start() -> None:
    clock = rl.ManualClock(100.0)
    inj = FaultInjector(rl.Faults(phases=[rl.Outage(10, 20)]), clock=clock, seed=0)
    clock.advance(5)
    assert inj.call(_ok) == "ok"
    clock.advance(5)  # t = 10 since the injector was made: the outage
    with pytest.raises(InjectedHTTPError):
        inj.call(_ok)
    assert inj.decide().phase == "outage"
    clock.advance(10)
    assert inj.call(_ok) == "ok"
    inj.start()  # the timeline restarts: 10 s later, the outage again
    clock.advance(10)
    assert inj.decide().phase == "outage"


def test_latency_and_brownouts_advance_a_manual_clock() -> None:
    clock = rl.ManualClock()
    faults = rl.Faults(latency=rl.Constant(0.05),
                       phases=[rl.Brownout(1.0, 2.0, failure_rate=0.0, latency_multiplier=4.0)])
    inj = FaultInjector(faults, clock=clock)
    inj.call(_ok)
    assert clock.now() == pytest.approx(0.05)
    clock.advance_to(1.0)
    inj.call(_ok)
    assert clock.now() == pytest.approx(1.2)


def test_hangs_are_bounded_by_the_model_or_the_caller() -> None:
    clock = rl.ManualClock()
    inj = FaultInjector(rl.Faults(failure_rate=1.0, mix=ONLY_TIMEOUTS, hang=5.0), clock=clock)
    with pytest.raises(InjectedTimeout, match="hang"):
        inj.call(_ok)
    assert clock.now() == pytest.approx(5.0)
    with pytest.raises(TimeoutError):
        inj.call_within(1.0, _ok)
    assert clock.now() == pytest.approx(6.0)
    # A slow success cut by the caller's timeout is a timeout too, and the call is not made.
    slow = FaultInjector(rl.Faults(latency=rl.Constant(3.0)), clock=clock)
    calls: list[int] = []
    with pytest.raises(InjectedTimeout, match="slow call"):
        slow.call_within(1.0, calls.append, 1)
    assert calls == []


def test_ambiguous_calls_take_effect_and_lose_the_answer() -> None:
    inj = FaultInjector(rl.Faults(ambiguous_rate=1.0), clock=rl.ManualClock())
    effects: list[int] = []
    with pytest.raises(InjectedTimeout) as info:
        inj.call(effects.append, 1)
    assert effects == [1] and info.value.ambiguous
    assert inj.stats.ambiguous == 1


def test_wrap_and_inject_decorate() -> None:
    clock = rl.ManualClock()

    @inject(rl.Faults(failure_rate=1.0), clock=clock)
    def charge(amount: int) -> int:
        return amount

    with pytest.raises(InjectedHTTPError):
        charge(3)
    assert charge.__name__ == "charge"
    assert FaultInjector(rl.Faults(), clock=clock).wrap(charge.__wrapped__)(4) == 4  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="faults must be a Faults"):
        FaultInjector({"failure_rate": 0.1})  # type: ignore[arg-type]


def test_lab_retry_honours_an_injected_retry_after() -> None:
    clock = rl.ManualClock()
    mix = rl.FailureMix(http503=0, http429=1, retry_after=2.0)
    inj = FaultInjector(rl.Faults(phases=[rl.Phase("limited", 0.0, 1.0, failure_rate=1.0,
                                                   mix=mix)]), clock=clock)
    retry = rl.Retry(max_attempts=3, backoff=rl.Backoff(initial=0.01), clock=clock, seed=0)
    assert retry.call(inj.wrap(_ok)) == "ok"
    assert clock.now() >= 2.0  # waited the hint, not the 10 ms backoff
    assert inj.stats.faults == {"http429": 1}


# --- Third-party and lab policies against the model the simulated engine runs ------------------

P_FAIL = 0.3
ATTEMPTS = 3


def _simulated_failure_fraction(faults: rl.Faults) -> tuple[float, int]:
    sc = rl.Scenario(
        arrivals=rl.Poisson(200.0), duration=10.0, workers=64, queue_capacity=10_000, seed=5,
        dependencies=[rl.Dependency("payment", faults=faults, retry=rl.RetryConfig(
            max_attempts=ATTEMPTS, backoff=rl.Backoff(initial=0.001, max_delay=0.01)))])
    s = rl.simulate(sc.replace(record_orders=False)).summary
    return 1.0 - float(s["success_rate"]), int(s["arrived"])


def test_tenacity_and_rl_retry_fail_as_often_as_the_simulated_engine_predicts() -> None:
    faults = rl.Faults(failure_rate=P_FAIL,
                       mix=rl.FailureMix(http500=1, http503=1, timeout=1, connection_reset=1),
                       hang=0.5)
    expected = P_FAIL**ATTEMPTS  # every attempt independent: all three fail
    n = 3000
    tol = _binomial_tolerance(expected, n)

    clock = rl.ManualClock()
    inj = FaultInjector(faults, clock=clock, seed=11)

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(ATTEMPTS),
        wait=tenacity.wait_exponential(multiplier=0.001, max=0.01),
        retry=tenacity.retry_if_exception_type((InjectedHTTPError, TimeoutError,
                                                ConnectionError)),
        sleep=clock.sleep,
        reraise=True,
    )
    def user_call() -> str:
        return inj.call(_ok)

    def fraction(fn: object) -> float:
        failed = 0
        for _ in range(n):
            try:
                fn()  # type: ignore[operator]
            except Exception:
                failed += 1
        return failed / n

    tenacity_failed = fraction(user_call)
    lab_retry = rl.Retry(max_attempts=ATTEMPTS, backoff=rl.Backoff(initial=0.001,
                                                                   max_delay=0.01),
                         clock=clock, seed=1)
    rl_failed = fraction(lambda: lab_retry.call(inj.wrap(_ok)))
    simulated, arrived = _simulated_failure_fraction(faults)
    assert arrived > 1500
    assert abs(tenacity_failed - expected) <= tol
    assert abs(rl_failed - expected) <= tol
    assert abs(simulated - expected) <= _binomial_tolerance(expected, arrived)


def test_pybreaker_and_rl_breaker_cut_an_outage_as_the_simulated_breaker_does() -> None:
    outage = rl.Faults(phases=[rl.Outage(10.0, 20.0)])
    step = 0.1

    def drive(call: object, clock: rl.ManualClock) -> list[tuple[float, str]]:
        out = []
        while clock.now() < 30.0:
            try:
                call()  # type: ignore[operator]
                out.append((clock.now(), "ok"))
            except (pybreaker.CircuitBreakerError, rl.BreakerOpen):
                out.append((clock.now(), "rejected"))
            except InjectedHTTPError:
                out.append((clock.now(), "failed"))
            clock.advance(step)
        return out

    # pybreaker (its reset timeout reads the real clock: a minute never passes in this test).
    clock = rl.ManualClock()
    inj = FaultInjector(outage, clock=clock, seed=0)
    pb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60, throw_new_error_on_trip=False)
    log = drive(lambda: pb.call(inj.wrap(_ok)), clock)
    in_outage = [r for t, r in log if 10.0 <= t < 20.0]
    assert in_outage[:5] == ["failed"] * 5 and set(in_outage[5:]) == {"rejected"}
    assert inj.stats.failed == 5  # the dependency saw 5 calls of the outage, then none

    # The lab's breaker on the same timeline, with a 2 s open period.
    breaker = rl.Breaker(consecutive_failures=5, open_for=2.0)
    clock = rl.ManualClock()
    inj = FaultInjector(outage, clock=clock, seed=0)
    cb = rl.CircuitBreaker(breaker, clock=clock, name="payment")
    log = drive(lambda: cb.call(inj.wrap(_ok)), clock)
    first_ok_after = next(t for t, r in log if t >= 20.0 and r == "ok")
    live_recover = first_ok_after - 20.0
    assert 4 <= inj.stats.failed - 5 <= 6  # a probe every 2 s over the remaining ~9.5 s
    sim = rl.simulate(rl.Scenario(
        arrivals=rl.ConstantRate(1 / step), duration=30.0, record_orders=False,
        dependencies=[rl.Dependency("payment", faults=outage, breaker=breaker)]))
    sim_recover = float(sim.summary["payment.outage.time_to_recover"])
    # Both close at the first probe after the outage: within one open period of its end.
    assert 0 <= live_recover <= breaker.open_for + step
    assert 0 <= sim_recover <= breaker.open_for + step
    assert float(sim.summary["payment.trips"]) == pytest.approx(inj.stats.failed - 5 + 1, abs=1)


# --- HTTP clients -----------------------------------------------------------------------------


def test_httpx_transport_answers_429_with_retry_after_and_times_out_within_the_client() -> None:
    clock = rl.ManualClock()
    mix = rl.FailureMix(http503=0, http429=1, retry_after=1.5)
    inj = FaultInjector(rl.Faults(phases=[rl.Phase("limit", 0, 1, failure_rate=1.0, mix=mix),
                                          rl.Phase("hang", 1, 2, failure_rate=1.0,
                                                   mix=ONLY_TIMEOUTS),
                                          rl.Phase("reset", 2, 3, failure_rate=1.0,
                                                   mix=rl.FailureMix(http503=0,
                                                                     connection_reset=1))]),
                        clock=clock)
    seen: list[str] = []

    def backend(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(201, json={"id": 1})

    with httpx.Client(transport=inj.httpx_transport(httpx.MockTransport(backend)),
                      base_url="http://svc", timeout=0.25) as client:
        r = client.post("/orders")
        assert r.status_code == 429 and r.headers["Retry-After"] == "2"
        clock.advance_to(1.0)
        with pytest.raises(httpx.ReadTimeout):
            client.post("/orders")
        assert clock.now() == pytest.approx(1.25)  # the client's read timeout, not the hang
        clock.advance_to(2.0)
        with pytest.raises(httpx.ReadError):
            client.post("/orders")
        clock.advance_to(3.0)
        assert client.post("/orders").status_code == 201
    assert seen == ["/orders"]  # only the call that went through reached the backend
    with httpx.Client(transport=FaultInjector(rl.Faults()).httpx_transport()) as client:
        assert client.get("http://svc/").json() == {"ok": True}


def test_requests_adapter_injects_into_a_session() -> None:
    clock = rl.ManualClock()
    inj = FaultInjector(rl.Faults(failure_rate=0.5, mix=rl.FailureMix(http503=1, timeout=1),
                                  latency=rl.Constant(0.0), hang=10.0), clock=clock, seed=4)
    s = requests.Session()
    s.mount("http://", inj.requests_adapter())
    codes: dict[object, int] = {}
    for _ in range(400):
        try:
            code: object = s.get("http://svc/x", timeout=(1, 2)).status_code
        except requests.exceptions.ReadTimeout:
            code = "timeout"
        codes[code] = codes.get(code, 0) + 1
    assert set(codes) == {200, 503, "timeout"}
    assert abs(codes[200] / 400 - 0.5) <= _binomial_tolerance(0.5, 400)
    # Each hang lasted the read timeout (2 s), not the model's 10 s.
    assert clock.now() == pytest.approx(2.0 * codes["timeout"])


def test_httpx_async_transport_injects_without_blocking() -> None:
    import asyncio

    clock = rl.ManualClock()
    inj = FaultInjector(rl.Faults(latency=rl.Constant(0.5),
                                  phases=[rl.Phase("down", 1.0, 2.0, failure_rate=1.0)]),
                        clock=clock)

    async def backend(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"path": request.url.path})

    async def main() -> list[int]:
        codes = []
        transport = inj.httpx_async_transport(httpx.MockTransport(backend))
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            for _ in range(4):
                codes.append((await client.get("/x")).status_code)
        return codes

    # t = 0: 200 after 0.5 s; t = 0.5: 200; t = 1.0: the phase, 503; t = 1.5: 503.
    assert asyncio.run(main()) == [200, 200, 503, 503]
    assert clock.now() == pytest.approx(2.0)
    # The real clock: the wait is an asyncio sleep, so other tasks run meanwhile.
    real = FaultInjector(rl.Faults(latency=rl.Constant(0.05)))

    async def concurrent() -> int:
        transport = real.httpx_async_transport()
        async with httpx.AsyncClient(transport=transport) as client:
            rs = await asyncio.gather(*(client.get("http://svc/") for _ in range(5)))
        return sum(r.status_code == 200 for r in rs)

    assert asyncio.run(concurrent()) == 5
