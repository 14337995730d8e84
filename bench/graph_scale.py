"""Scale of the simulated engine on a generated service graph (issue 14): 100 services in four
tiers, every leaf dependency a pool of 10 replicas, a few fan-outs, retries at two tiers.

The graph (``generate``: deterministic for a given seed, Python's ``random.Random(seed)``):

* the root (the scenario: Poisson arrivals, 256 workers) calls 3 tier-1 services;
* tiers 1..4 hold 3, 9, 27 and 61 services (100 in all); every service of tiers 1..3 calls 1 to
  3 distinct services of the next tier (each of those is called by at least one: every service
  is reachable), in sequence; a tier-4 service calls 1 to 2 leaves, and one service in four
  of tiers 1..3 also calls a leaf (a cache) first;
* every leaf is a pool of 10 replicas behind a power-of-two-choices balancer, each replica
  serving up to 8 calls at once, Exponential(mean 2 ms) service time, 5 % failures (503);
* retries at two tiers: every leaf call is retried (up to 3 attempts, full-jitter backoff from
  1 ms), and every tier-1 service retries its calls into tier 2 (up to 2 attempts);
* fan-outs: 4 service-to-service calls of tiers 2..3 send 2 copies and need 1 answer
  (``rl.FanOut(copies=2, quorum=1)``: fan-out is supported on a service dependency, the
  copies' losers are dropped unstarted or counted as wasted);
* every service: 64 workers and a bounded queue (1,000); no deadlines.

Calls per wall-clock second: the calls counted over every dependency of the result
(``totals["dependencies"][*]["calls"]``: service calls, leaf attempts, fan-out copies), divided
by the time of the ``rl.simulate`` call only (the scenario is built before; summary only:
``record_orders=False``, no time series, no events). Best of interleaved repeats, one core (the
engine is single-threaded). The issue's target is >= 1 M calls/s.

Memory (``--memory``): the method of ``graph_vs_simpy.py``. Each probe is a fresh process: it
warms up, resets the kernel's peak-RSS mark, runs one horizon and reads the peak RSS while the
Result is alive. The figure is the slope of peak RSS growth between two horizons in bytes per
call; with a summary only it should be ~0 (memory proportional to calls in flight, not to calls
made).

    python bench/graph_scale.py [--quick] [--memory] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import reliability_lab as rl

TIERS = (3, 9, 27, 61)  # 100 services
REPLICAS = 10
LEAF_MEAN = 0.002
FAIL_P = 0.05
LAMBDA = 100.0
ROOT_WORKERS = 256
WORKERS = 64
QUEUE = 1_000
FANOUTS = 4
SEED = 2026
TARGET = 1e6  # calls per wall-clock second
MEMORY_TARGET = 1.0  # bytes per call (flat)


def _leaf(name: str) -> rl.Dependency:
    return rl.Dependency(
        name,
        faults=rl.Faults(
            failure_rate=FAIL_P,
            latency=rl.Exponential(LEAF_MEAN),
            capacity=rl.Capacity(max_in_service=8),
        ),
        replicas=rl.Replicas(count=REPLICAS, balancer="p2c"),
        retry=rl.RetryConfig(
            max_attempts=3,
            backoff=rl.Backoff(initial=0.001, multiplier=2.0, max_delay=1.0, jitter="full"),
        ),
    )


def generate(
    tiers: tuple[int, ...] = TIERS,
    *,
    seed: int = SEED,
    fanouts: int = FANOUTS,
    horizon: float = 60.0,
    rate: float = LAMBDA,
    sim_seed: int = 0,
) -> rl.Scenario:
    """A layered service graph: ``tiers[i]`` services in tier ``i + 1``, the root calling every
    tier-1 service; deterministic for a given ``seed`` (see the module docstring). ``horizon``,
    ``rate`` and ``sim_seed`` are the scenario's duration, Poisson rate and seed."""
    if len(tiers) < 2 or min(tiers) < 1 or tiers[0] > 16:
        raise ValueError(f"tiers must hold >= 2 tiers of >= 1 service, <= 16 in tier 1: {tiers}")
    rng = random.Random(seed)
    names = [[f"t{t + 1}_{i}" for i in range(n)] for t, n in enumerate(tiers)]
    # Children per service of tiers 1..n-1: a round robin makes every service reachable; then
    # each parent gets up to a random 1..3 children (never more than the next tier holds).
    children: dict[str, list[str]] = {}
    for t in range(len(tiers) - 1):
        parents, kids = names[t], names[t + 1]
        for p in parents:
            children[p] = []
        for i, k in enumerate(kids):
            children[parents[i % len(parents)]].append(k)
        for p in parents:
            want = min(rng.randint(1, 3), len(kids))
            while len(children[p]) < want:
                k = rng.choice(kids)
                if k not in children[p]:
                    children[p].append(k)
    if max(len(c) for c in children.values()) > 16:
        raise ValueError(f"tiers {tiers}: a service would call more than 16 services")
    # Fan-out edges: a few calls of tiers 2..n-1 (tier 1 retries instead).
    edges = [(p, k) for t in range(1, len(tiers) - 1) for p in names[t] for k in children[p]]
    fanned = set(rng.sample(edges, min(fanouts, len(edges))))
    services: list[rl.Service] = []
    for t, tier in enumerate(names):
        for name in tier:
            deps: list[rl.Dependency] = []
            if t < len(tiers) - 1:
                if rng.random() < 0.25:
                    deps.append(_leaf("cache"))
                for k in children[name]:
                    deps.append(
                        rl.Dependency(
                            f"to_{k}",
                            service=k,
                            retry=rl.RetryConfig(
                                max_attempts=2,
                                backoff=rl.Backoff(initial=0.001, jitter="full"),
                            )
                            if t == 0
                            else None,
                            fanout=rl.FanOut(copies=2, quorum=1) if (name, k) in fanned else None,
                        )
                    )
            else:
                deps += [_leaf(f"db{j}") for j in range(rng.randint(1, 2))]
            services.append(
                rl.Service(name=name, workers=WORKERS, queue_capacity=QUEUE, dependencies=deps)
            )
    return rl.Scenario(
        arrivals=rl.Poisson(rate),
        duration=horizon,
        workers=ROOT_WORKERS,
        queue_capacity=QUEUE,
        seed=sim_seed,
        dependencies=tuple(rl.Dependency(f"to_{k}", service=k) for k in names[0]),
        services=tuple(services),
        sample_every=0.0,
        record_orders=False,
        record_events=False,
    )


def total_calls(res: Any) -> int:
    """Calls over every dependency of the result (service calls, leaf attempts, copies)."""
    return sum(int(d["calls"]) for d in res.totals["dependencies"])


def run_once(horizon: float) -> dict[str, Any]:
    sc = generate(horizon=horizon)
    t0 = time.perf_counter()
    res = rl.simulate(sc)
    wall = time.perf_counter() - t0
    calls = total_calls(res)
    s = res.summary
    return {
        "horizon_s": horizon,
        "wall_s": wall,
        "calls": calls,
        "calls_per_s": calls / wall,
        "orders": int(s["arrived"]),
        "orders_per_s": int(s["arrived"]) / wall,
        "calls_per_order": calls / max(1, int(s["arrived"])),
        "success_rate": float(s["completed"]) / max(1, int(s["arrived"])),
        "services": len(sc.services),
        "dependencies": len(res.totals["dependencies"]),
    }


def rate(quick: bool) -> dict[str, Any]:
    horizon, repeats = (100.0, 1) if quick else (300.0, 3)
    run_once(5.0)  # warm-up
    runs = [run_once(horizon) for _ in range(repeats)]
    best = max(runs, key=lambda r: r["calls_per_s"])
    return {
        **best,
        "runs_calls_per_s": [r["calls_per_s"] for r in runs],
        "load_average": os.getloadavg()[0],
    }


# ------------------------------------------------------------------------------------------------
# Memory (a fresh process per probe, as graph_vs_simpy.py)


def memory_probe(horizon: float) -> dict[str, Any]:
    import gc

    from sim_vs_simpy import _peak_rss_bytes, _reset_peak_rss, _rss_bytes

    rl.simulate(generate(horizon=5.0))
    sc = generate(horizon=horizon)
    gc.collect()
    reset = _reset_peak_rss()
    before = _rss_bytes()
    res = rl.simulate(sc)
    peak = _peak_rss_bytes()
    return {
        "horizon": horizon,
        "calls": total_calls(res),
        "orders": int(res.summary["arrived"]),
        "rss_before": before,
        "rss_peak": peak,
        "peak_reset": reset,
    }


def _run_probe(horizon: float) -> dict[str, Any]:
    from harness import run_probe

    return run_probe(str(Path(__file__).resolve()), "--horizon", str(horizon))


def memory(quick: bool) -> dict[str, Any]:
    """Peak-RSS slope (bytes per call) between two horizons, summary only."""
    h1, h2 = (20.0, 100.0) if quick else (30.0, 300.0)
    a, b = _run_probe(h1), _run_probe(h2)
    growth = (b["rss_peak"] - b["rss_before"]) - (a["rss_peak"] - a["rss_before"])
    return {
        "horizons_s": [h1, h2],
        "bytes_per_call": growth / (b["calls"] - a["calls"]),
        "probes": [a, b],
    }


# ------------------------------------------------------------------------------------------------
# Rows for bench/run.py, and the command line


def rows(quick: bool) -> list[Any]:
    from harness import Row, judge_max

    r = rate(quick)
    status = "PASS" if r["calls_per_s"] >= TARGET else "MISS"
    out = [
        Row(
            "scale",
            f"sim, generated graph: {r['services']} services, 10 replicas per leaf, fan-outs, "
            "retries at 2 tiers",
            "calls/s",
            r["calls_per_s"],
            target=f">= {TARGET / 1e6:g} M",
            status=status,
            note=(
                f"{r['calls']:,} calls ({r['calls_per_order']:.1f} per order) in "
                f"{r['wall_s']:.2f} s (simulate only), {r['orders_per_s'] / 1e3:.1f} k orders/s; "
                f"load average {r['load_average']:.1f}"
            ),
            details=r,
        )
    ]
    m = memory(quick)
    a, b = m["probes"]
    out.append(
        Row(
            "scale",
            "memory per call, summary only: peak RSS slope",
            "bytes/call",
            m["bytes_per_call"],
            target=f"flat (< {MEMORY_TARGET:g} B)",
            status=judge_max(m["bytes_per_call"], MEMORY_TARGET),
            note=(
                f"peak RSS growth {(a['rss_peak'] - a['rss_before']) / 2**20:.1f} MiB at "
                f"{a['calls']:,} calls, {(b['rss_peak'] - b['rss_before']) / 2**20:.1f} MiB at "
                f"{b['calls']:,}"
            ),
            details=m,
        )
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--memory", action="store_true", help="also measure memory per call")
    p.add_argument("--profile", action="store_true", help="perf-friendly: one long run, no more")
    p.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--horizon", type=float, default=0.0, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.memory_probe:
        print(json.dumps(memory_probe(a.horizon)))
        return
    if a.profile:
        print(run_once(a.horizon or 300.0))
        return
    r = rate(a.quick)
    verdict = "PASS" if r["calls_per_s"] >= TARGET else "MISS"
    print(
        f"graph: {r['services']} services, {r['dependencies']} dependencies; "
        f"{r['orders']:,} orders, {r['calls']:,} calls ({r['calls_per_order']:.1f} per order), "
        f"success rate {r['success_rate']:.4f}"
    )
    print(
        f"rate: {r['calls_per_s'] / 1e6:.2f} M calls/s (target >= {TARGET / 1e6:g} M) {verdict}; "
        f"{r['orders_per_s'] / 1e3:.1f} k orders/s; simulate {r['wall_s']:.2f} s; "
        f"runs {', '.join(f'{x / 1e6:.2f}' for x in r['runs_calls_per_s'])} M/s "
        f"(load average {r['load_average']:.1f})"
    )
    if a.memory:
        m = memory(a.quick)
        over = "  ".join(
            f"{q['calls']:,} calls: peak {(q['rss_peak'] - q['rss_before']) / 2**20:.1f} MiB"
            for q in m["probes"]
        )
        verdict = "PASS" if m["bytes_per_call"] <= MEMORY_TARGET else "MISS"
        print(
            f"memory: {m['bytes_per_call']:.3f} B/call (peak RSS slope, summary only; target "
            f"< {MEMORY_TARGET:g} B) {verdict}; {over}"
        )


if __name__ == "__main__":
    main()
