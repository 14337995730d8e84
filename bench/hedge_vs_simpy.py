"""The simulated engine with hedging against SimPy (issue 13), same interpreter, same run.

One pipeline, written once as a reliability_lab Scenario and once as an idiomatic SimPy model
(a ``simpy.Resource`` for the workers, one generator process per order, ``env.any_of`` for the
race between the copies, Python's ``random`` for the draws):

Poisson arrivals at 180/s, c = 20 workers; an order holds a worker for its payment call, whose
copies take Exponential(mean 0.05 s). The call is hedged: if the first copy has not answered
after 0.1 s, a second copy is sent, if the hedge budget (a token bucket of 10 tokens, +0.1 per
call, -1 per hedge) allows; the first answer wins and the loser is abandoned (its server time is
wasted work, counted on both sides).

Both sides stop arrivals at the horizon and run until every order has finished, and keep
counters only (ours: ``record_orders=False``, no time series, no events). The figure is orders
simulated per wall-clock second, best of the interleaved runs; the issue's target is >= 30x.

    python bench/hedge_vs_simpy.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import random
from dataclasses import dataclass
from typing import Any

from _simpy_models import run_poisson_orders, timed

LAMBDA = 180.0
WORKERS = 20
COPY_MEAN = 0.05
HEDGE_DELAY = 0.1
BUDGET_RATIO = 0.1
BUDGET_BURST = 10.0
SEED = 12345
TARGET = 30.0


@dataclass
class Stats:
    arrived: int = 0
    calls: int = 0
    hedges: int = 0
    hedges_won: int = 0
    wasted: float = 0.0
    sojourn_sum: float = 0.0


def simpy_hedged(horizon: float, seed: int = SEED) -> Stats:
    import simpy

    rng = random.Random(seed)
    env = simpy.Environment()
    workers = simpy.Resource(env, capacity=WORKERS)
    stats = Stats()
    tokens = [BUDGET_BURST]

    def order(env: simpy.Environment) -> Any:
        arrival = env.now
        with workers.request() as req:
            yield req
            tokens[0] = min(BUDGET_BURST, tokens[0] + BUDGET_RATIO)
            d0 = rng.expovariate(1.0 / COPY_MEAN)
            first = env.timeout(d0)
            stats.calls += 1
            yield env.any_of([first, env.timeout(HEDGE_DELAY)])
            # (A Timeout is "triggered" as soon as it is scheduled: `processed` means it fired.)
            if not first.processed:
                if tokens[0] >= 1.0:
                    tokens[0] -= 1.0
                    d1 = rng.expovariate(1.0 / COPY_MEAN)
                    hedge = env.timeout(d1)
                    stats.calls += 1
                    stats.hedges += 1
                    yield env.any_of([first, hedge])
                    # The loser keeps the server busy for its whole service: wasted work.
                    if first.processed:
                        stats.wasted += d1
                    else:
                        stats.hedges_won += 1
                        stats.wasted += d0
                else:
                    yield first
        stats.sojourn_sum += env.now - arrival

    stats.arrived = run_poisson_orders(env, rng, LAMBDA, horizon, order)
    return stats


def scenario(horizon: float, seed: int = SEED) -> Any:
    from reliability_lab.scenario import Dependency, Exponential, Faults, Hedge, Poisson, Scenario

    dep = Dependency(
        "payment",
        faults=Faults(latency=Exponential(COPY_MEAN)),
        hedge=Hedge(
            delay=HEDGE_DELAY,
            max_hedges=1,
            budget_ratio=BUDGET_RATIO,
            budget_burst=BUDGET_BURST,
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
    r, wall = timed(lambda: simulate(sc))
    s = r.summary
    arrived = s["arrived"]
    return arrived / wall, {
        "arrived": arrived,
        "calls_per_order": s["payment.calls_per_order"],
        "hedges_per_order": s["payment.hedges"] / arrived,
        "won_per_hedge": s["payment.hedges_won"] / max(1.0, s["payment.hedges"]),
        "wasted_per_order": s["payment.wasted_attempt_seconds"] / arrived,
        "mean_sojourn": s["mean_sojourn"],
    }


def simpy(horizon: float) -> tuple[float, dict[str, float]]:
    st, wall = timed(lambda: simpy_hedged(horizon))
    n = st.arrived
    return n / wall, {
        "arrived": n,
        "calls_per_order": st.calls / n,
        "hedges_per_order": st.hedges / n,
        "won_per_hedge": st.hedges_won / max(1, st.hedges),
        "wasted_per_order": st.wasted / n,
        "mean_sojourn": st.sojourn_sum / n,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    ours_horizon, simpy_horizon, repeats = (500.0, 100.0, 1) if a.quick else (5000.0, 500.0, 3)
    ours(10.0)  # warm-up
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
        f"hedged  ours {best_ours / 1e6:.2f} M orders/s  SimPy {best_simpy / 1e3:.1f} k/s  "
        f"ratio {ratio:.1f}x (target >= {TARGET:g}x) {verdict}"
    )
    assert math.isfinite(ratio)


if __name__ == "__main__":
    main()
