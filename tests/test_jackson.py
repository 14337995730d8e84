"""A tandem of queues agrees with Jackson's product form.

Orders call dependency ``a`` (one server: M/M/1), then ``b`` (three servers: M/M/3), then ``c``
(M/M/1), each a capacity-limited dependency with exponential service; the worker pool is large
enough never to queue. By Burke's theorem the departures of a stable M/M/c queue are Poisson, so
the tandem is a Jackson network (Jackson 1957) whose stations behave as independent M/M/c queues:
the mean sojourn is the sum of each station's ``Wq + 1/mu``, with ``Wq`` from Erlang C.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from reliability_lab import Capacity, Dependency, Exponential, Faults, Poisson, Scenario, simulate


def _erlang_c(c: int, a: float) -> float:
    s = sum(a**k / math.factorial(k) for k in range(c))
    top = a**c / math.factorial(c) / (1 - a / c)
    return top / (s + top)


def _sojourn(lam: float, mu: float, c: int) -> float:
    """Mean time in an M/M/c station (waiting plus service)."""
    return _erlang_c(c, lam / mu) / (c * mu - lam) + 1 / mu


def _station(name: str, mu: float, c: int) -> Dependency:
    return Dependency(
        name, faults=Faults(latency=Exponential(mean=1 / mu), capacity=Capacity(max_in_service=c))
    )


def _tandem(lam: float, stations: list[tuple[str, float, int]], seed: int) -> Scenario:
    return Scenario(
        arrivals=Poisson(rate=lam),
        workers=10_000,  # never a wait at the intake: the stations are the only queues
        queue_capacity=0,
        duration=6000.0,
        seed=seed,
        dependencies=tuple(_station(n, mu, c) for n, mu, c in stations),
        sample_every=0.0,
        record_events=False,
    )


def _mean_latency(sc: Scenario) -> float:
    r = simulate(sc)
    assert r.orders is not None
    assert r.summary["completed"] == r.summary["arrived"]  # nothing refused or lost
    # Drop the first 5% of orders: the network starts empty.
    o = r.orders.sort_values("arrival").iloc[len(r.orders) // 20 :]
    return float(np.mean(o["end"] - o["arrival"]))


def test_each_station_alone_is_its_mmc_queue() -> None:
    lam = 6.0
    assert _mean_latency(_tandem(lam, [("a", 10.0, 1)], seed=1)) == pytest.approx(
        _sojourn(lam, 10.0, 1), rel=0.06
    )
    assert _mean_latency(_tandem(lam, [("b", 3.0, 3)], seed=2)) == pytest.approx(
        _sojourn(lam, 3.0, 3), rel=0.06
    )


@pytest.mark.parametrize("seed", [3, 4])
def test_tandem_mean_sojourn_is_the_product_form_sum(seed: int) -> None:
    lam = 6.0
    stations = [("a", 10.0, 1), ("b", 3.0, 3), ("c", 15.0, 1)]
    expected = sum(_sojourn(lam, mu, c) for _, mu, c in stations)
    got = _mean_latency(_tandem(lam, stations, seed=seed))
    assert got == pytest.approx(expected, rel=0.06)
    # The same stations, not summed, would be far off: the test can tell the difference.
    assert abs(got - _sojourn(lam, 10.0, 1)) > 0.3 * expected
