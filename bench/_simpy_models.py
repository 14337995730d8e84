"""What the SimPy models of the benchmarks share (bench/sim_vs_simpy.py, bench/hedge_vs_simpy.py).

Each model is an idiomatic SimPy program: Poisson arrivals start one generator process per order,
arrivals stop at the horizon, and the environment runs until every order has finished. The
models differ only in what an order does; this module holds the rest, and the timing of one run.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable, Generator
from typing import Any, TypeVar

T = TypeVar("T")


def run_poisson_orders(
    env: Any,
    rng: random.Random,
    rate: float,
    horizon: float,
    order: Callable[[Any], Generator[Any, Any, Any]],
) -> int:
    """Starts ``order(env)`` as a process at each arrival of a Poisson process of ``rate`` per
    second (inter-arrival times drawn from ``rng``, the stream the orders draw from too) until
    ``horizon``, then runs ``env`` until every order has finished. Returns the orders started."""
    arrived = 0

    def source(env: Any) -> Generator[Any, Any, None]:
        nonlocal arrived
        while True:
            yield env.timeout(rng.expovariate(rate))
            if env.now >= horizon:
                return
            arrived += 1
            env.process(order(env))

    env.process(source(env))
    env.run()
    return arrived


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """Runs ``fn()`` after a garbage collection; returns its result and the wall-clock seconds."""
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0
