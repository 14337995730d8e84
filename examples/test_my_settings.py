"""Testing your settings: the lab in your own test suite.

A real test file (CI runs it; ``pytest examples/test_my_settings.py`` with the package installed,
or add ``-p reliability_lab.testing.plugin`` from a source tree). It pins down reliability
settings with property tests over scenarios, checks a recovery, and tests retry code of your own
(tenacity here) against the same fault model the lab simulates, through the ``rl_*`` fixtures of
the pytest plugin the package installs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import httpx
import pytest
import reliability_lab as rl
import tenacity
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from reliability_lab.service.harness import ServiceProcess
from reliability_lab.testing import (
    FaultInjector,
    InjectedHTTPError,
    SLOError,
    assert_recovers,
    assert_slo,
)
from reliability_lab.testing.strategies import st_faults, st_scenario

# The settings under test.
MY_RETRY = rl.RetryConfig(max_attempts=3, backoff=rl.Backoff(initial=0.01, max_delay=0.1))
MY_BREAKER = rl.Breaker(consecutive_failures=5, open_for=2.0)
# A deliberately wrong one: a breaker that never trips.
NEVER_TRIPS = rl.Breaker(consecutive_failures=1_000_000)


def outage_scenarios(breaker: rl.Breaker) -> st.SearchStrategy[rl.Scenario]:
    """Any seed, any background failure rate up to 10%, and a 6 s outage in a 10 s run."""
    return st_scenario(
        arrivals=rl.Poisson(20.0), duration=10.0, workers=16, queue_capacity=256,
        order_deadline=0.0, seed=st.integers(0, 1000),
        faults=st_faults(failure_rate=st.floats(0.0, 0.1), phases=[rl.Outage(2.0, 8.0)],
                         mix=rl.FailureMix(), latency=rl.Constant(0.01),
                         capacity=rl.Capacity(), ambiguous_rate=0.0),
        retry=MY_RETRY, breaker=breaker, budget=None, bulkhead=None, throttle=None,
        attempt_timeout=0.0, fallback=rl.Fallback(), charges=False,
    )


# Few examples, and no "explain" phase (which reruns a failure ~100 times): keeps CI quick.
FEW = settings(max_examples=8, deadline=None, phases=[Phase.generate, Phase.shrink],
               suppress_health_check=[HealthCheck.too_slow])


@FEW
@given(outage_scenarios(MY_BREAKER))
def test_my_breaker_keeps_retries_from_multiplying_the_load(sc: rl.Scenario) -> None:
    # Judged on the 95% interval over 3 seeds: the whole interval must be <= 1.5.
    assert_slo(sc, calls_per_order="<= 1.5", replications=3)


@pytest.mark.xfail(raises=SLOError, strict=True,
                   reason="deliberately wrong: retries behind a breaker that never trips "
                          "triple the calls during the outage")
@FEW
@given(outage_scenarios(NEVER_TRIPS))
def test_a_breaker_that_never_trips_fails_the_same_objective(sc: rl.Scenario) -> None:
    assert_slo(sc, calls_per_order="<= 1.5", replications=3)


def test_my_breaker_recovers_soon_after_the_outage() -> None:
    sc = rl.Scenario(
        arrivals=rl.Poisson(50.0), duration=30.0, workers=16,
        dependencies=[rl.Dependency("payment", faults=rl.Faults(phases=[rl.Outage(5.0, 10.0)]),
                                    retry=MY_RETRY, breaker=MY_BREAKER)])
    # Goodput back to 90% of the pre-outage level, and staying there, on every seed.
    assert_recovers(sc, within=5.0, replications=3)


def test_no_double_charge_with_idempotency_keys(
    rl_simulate: Callable[..., rl.Result],
) -> None:
    # rl_simulate: on failure, the report lists the seed and a line that reruns it.
    sc = rl.Scenario(
        duration=10.0, seed=3,
        dependencies=[rl.Dependency(
            "payment", charges=True, idempotency_keys=True, retry=MY_RETRY,
            faults=rl.Faults(failure_rate=0.2, ambiguous_rate=0.1))])
    res = rl_simulate(sc)
    assert res.summary["double_charged_orders"] == 0


# --- Your own code against the same fault model ----------------------------------------------

PAYMENT_FAULTS = rl.Faults(failure_rate=0.2, latency=rl.Constant(0.01))


def charge(order_id: int) -> dict[str, object]:
    """Stands for your real client call."""
    return {"order": order_id, "status": "paid"}


def test_my_tenacity_retry_fails_as_often_as_the_lab_predicts(
    rl_clock: rl.ManualClock, rl_inject: Callable[..., FaultInjector]
) -> None:
    injector = rl_inject(PAYMENT_FAULTS, seed=3)  # on rl_clock: tenacity's sleeps advance it

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_exponential(multiplier=0.01, max=0.1),
        retry=tenacity.retry_if_exception_type((InjectedHTTPError, TimeoutError,
                                                ConnectionError)),
        sleep=rl_clock.sleep,
        reraise=True,
    )
    def my_charge(order_id: int) -> dict[str, object]:
        return injector.call(charge, order_id)

    n = 2000
    failed = 0
    for i in range(n):
        try:
            my_charge(i)
        except InjectedHTTPError:
            failed += 1
    # The lab's prediction for the same faults and the same retry settings.
    predicted = 1 - rl.simulate(rl.Scenario(
        arrivals=rl.Poisson(200.0), duration=10.0, workers=64, queue_capacity=10_000,
        dependencies=[rl.Dependency("payment", faults=PAYMENT_FAULTS, retry=MY_RETRY)],
    )).summary["success_rate"]
    # Both are estimates of 0.2**3 from about n orders: 4 standard errors of their difference.
    tolerance = 4 * math.sqrt(2 * 0.2**3 * (1 - 0.2**3) / n)
    assert abs(failed / n - predicted) <= tolerance


def test_my_http_client_against_the_service_with_injected_faults(
    rl_service: Callable[..., ServiceProcess],
) -> None:
    # The lab's own service on a temporary SQLite database, with 30% of the client's requests
    # answered 503 (or 429 with Retry-After) before they reach it; the client retries them.
    svc = rl_service(rl.Scenario(workers=2))
    mix = rl.FailureMix(http503=1, http429=1, retry_after=0.0)
    injector = FaultInjector(rl.Faults(failure_rate=0.3, mix=mix, latency=rl.Constant(0.0)),
                             seed=1)
    transport = injector.httpx_transport(httpx.HTTPTransport())
    with httpx.Client(transport=transport, base_url=svc.url, timeout=30) as client:

        @tenacity.retry(stop=tenacity.stop_after_attempt(10), wait=tenacity.wait_none(),
                        retry=tenacity.retry_if_result(lambda r: r.status_code in (429, 503)))
        def place(key: str) -> httpx.Response:
            return client.post("/orders", headers={"Idempotency-Key": key},
                               json={"customer_id": "a", "amount_cents": 100,
                                     "currency": "EUR"})

        answers = [place(f"order-{i}") for i in range(20)]
    assert all(r.status_code in (200, 201, 202) for r in answers)
    assert len({r.json()["id"] for r in answers}) == 20
    assert injector.stats.failed > 0  # the faults did happen
