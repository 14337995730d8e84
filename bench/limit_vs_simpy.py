"""The simulated engine with an adaptive concurrency limit against SimPy (issue 13), same
interpreter, same run.

One pipeline, written once as a reliability_lab Scenario and once as an idiomatic SimPy model
(a ``simpy.Resource`` for the workers and one for the dependency's capacity, one generator
process per order, Python's ``random`` for the draws):

Poisson arrivals at 1,600/s, c = 64 workers; an order holds a worker for its payment call. The
payment service serves at most 10 calls at once (Exponential(mean 0.01 s) service: capacity
1,000 calls/s, so the load is 1.6x). In front of it, a client-side AIMD concurrency limit
(Netflix AIMDLimit: initial 10, min 1, max 100, +1 per answer while at least half the limit is
in use, x0.9 on an RTT above 30 ms): an attempt over the limit fails the order at once
("limited").

Both sides stop arrivals at the horizon and run until every order has finished, and keep
counters only (ours: ``record_orders=False``, no time series, no events). The figure is orders
simulated per wall-clock second, best of the interleaved runs; the issue's target is >= 30x.

    python bench/limit_vs_simpy.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import time
from dataclasses import dataclass
from typing import Any

LAMBDA = 1600.0
WORKERS = 64
CAPACITY = 10
SERVICE_MEAN = 0.01
INITIAL, MIN_LIMIT, MAX_LIMIT = 10, 1, 100
BACKOFF = 0.9
TIMEOUT = 0.03
SEED = 12345
TARGET = 30.0


@dataclass
class Stats:
    arrived: int = 0
    completed: int = 0
    limited: int = 0
    sojourn_sum: float = 0.0


def simpy_limited(horizon: float, seed: int = SEED) -> Stats:
    import simpy

    rng = random.Random(seed)
    env = simpy.Environment()
    workers = simpy.Resource(env, capacity=WORKERS)
    server = simpy.Resource(env, capacity=CAPACITY)
    stats = Stats()
    state = {"limit": INITIAL, "inflight": 0}

    def order(env: simpy.Environment) -> Any:
        arrival = env.now
        with workers.request() as req:
            yield req
            if state["inflight"] >= state["limit"]:
                stats.limited += 1
            else:
                state["inflight"] += 1
                admitted_with = state["inflight"]
                start = env.now
                with server.request() as call:
                    yield call
                    yield env.timeout(rng.expovariate(1.0 / SERVICE_MEAN))
                state["inflight"] -= 1
                # AIMDLimit: back off on a slow answer, grow while the limit is in use.
                limit = state["limit"]
                if env.now - start > TIMEOUT:
                    limit = int(limit * BACKOFF)
                elif admitted_with * 2 >= limit:
                    limit += 1
                state["limit"] = min(MAX_LIMIT, max(MIN_LIMIT, limit))
                stats.completed += 1
        stats.sojourn_sum += env.now - arrival

    def source(env: simpy.Environment) -> Any:
        while True:
            yield env.timeout(rng.expovariate(LAMBDA))
            if env.now >= horizon:
                return
            stats.arrived += 1
            env.process(order(env))

    env.process(source(env))
    env.run()
    return stats


def scenario(horizon: float, seed: int = SEED) -> Any:
    from reliability_lab.scenario import (
        Capacity,
        Dependency,
        Exponential,
        Faults,
        Limit,
        Poisson,
        Scenario,
    )

    dep = Dependency(
        "payment",
        faults=Faults(
            latency=Exponential(SERVICE_MEAN), capacity=Capacity(max_in_service=CAPACITY)
        ),
        limit=Limit(
            kind="aimd",
            initial=INITIAL,
            min=MIN_LIMIT,
            max=MAX_LIMIT,
            backoff_ratio=BACKOFF,
            timeout=TIMEOUT,
        ),
    )
    return Scenario(
        arrivals=Poisson(LAMBDA),
        duration=horizon,
        workers=WORKERS,
        queue_capacity=10_000_000,
        seed=seed,
        dependencies=[dep],
        sample_every=0.0,
        record_orders=False,
        record_events=False,
    )


def ours(horizon: float) -> tuple[float, dict[str, float]]:
    from reliability_lab.sim import simulate

    sc = scenario(horizon)
    gc.collect()
    t0 = time.perf_counter()
    r = simulate(sc)
    wall = time.perf_counter() - t0
    s = r.summary
    arrived = s["arrived"]
    return arrived / wall, {
        "arrived": arrived,
        "completed_fraction": s["completed"] / arrived,
        "limited_fraction": s["failed_limited"] / arrived,
        "mean_sojourn": s["mean_sojourn"],
    }


def simpy(horizon: float) -> tuple[float, dict[str, float]]:
    gc.collect()
    t0 = time.perf_counter()
    st = simpy_limited(horizon)
    wall = time.perf_counter() - t0
    n = st.arrived
    return n / wall, {
        "arrived": n,
        "completed_fraction": st.completed / n,
        "limited_fraction": st.limited / n,
        "mean_sojourn": st.sojourn_sum / n,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    ours_horizon, simpy_horizon, repeats = (100.0, 20.0, 1) if a.quick else (1000.0, 100.0, 3)
    ours(2.0)  # warm-up
    ours_rates, simpy_rates = [], []
    info_ours: dict[str, float] = {}
    info_simpy: dict[str, float] = {}
    for _ in range(repeats):
        r, info_ours = ours(ours_horizon)
        ours_rates.append(r)
        r, info_simpy = simpy(simpy_horizon)
        simpy_rates.append(r)
    best_ours, best_simpy = max(ours_rates), max(simpy_rates)
    for name, info in (("ours", info_ours), ("simpy", info_simpy)):
        shown = "  ".join(f"{k} {v:.4g}" for k, v in info.items())
        print(f"{name:5} {shown}")
    ratio = best_ours / best_simpy
    verdict = "PASS" if ratio >= TARGET else "MISS"
    print(
        f"aimd-limited  ours {best_ours / 1e6:.2f} M orders/s  SimPy {best_simpy / 1e3:.1f} k/s  "
        f"ratio {ratio:.1f}x (target >= {TARGET:g}x) {verdict}"
    )
    assert math.isfinite(ratio)


if __name__ == "__main__":
    main()
