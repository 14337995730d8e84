"""A three-tier service graph in the simulated engine against SimPy (issue 14), same interpreter,
same run; and the engine's memory per order on that graph against a single-service model.

The graph, written once as a reliability_lab Scenario (``services=``) and once as an idiomatic
SimPy model (a ``simpy.Resource`` per worker pool and per replica, Python's ``random``):

* root: Poisson arrivals at 200/s, 64 workers; an order holds a worker while it calls ``mid_a``
  then ``mid_b`` (in sequence; a failed call fails the order and ``mid_b`` is not called);
* ``mid_a`` and ``mid_b``: 8 workers each, a FIFO queue; a request holds a worker while it
  calls its leaf ``db``, retried up to 3 attempts with full-jitter backoff U(0, 0.01·2^(k-1)) s
  (the worker is held during the backoff, the engine's default);
* each ``db`` is a pool of 4 replicas picked round robin per attempt, each replica serving one
  call at a time (a FIFO line in front of it); service time Exponential(mean 10 ms), and an
  attempt fails (503, after its service time) with probability 0.05.

A mid request that exhausts its attempts answers 503 to the root, which does not retry. The
SimPy model runs a service request inline in the caller's process (``yield from``): the
cheapest way SimPy can express it, and the same system here since no caller times out.

Both sides stop arrivals at the horizon and run until every order has finished, and keep
counters only (ours: ``record_orders=False``, no time series, no events). Our time is the whole
``rl.simulate`` call. The figure is orders per wall-clock second, best of interleaved runs; the
issue's target is >= 25x. The two models are checked to agree (``sim_vs_simpy.agreement``:
arrival throughput, the root's mean sojourn, calls per order = service calls plus leaf attempts).

Memory (``--memory``; target: per order within 2x of the single-service model). Each probe is
a fresh process (tracemalloc does not see the engine's native memory): it warms up, resets the
kernel's peak-RSS mark (``/proc/self/clear_refs``), runs one horizon and reads the peak RSS
(``VmHWM``) while the Result is alive. The figure is the slope of peak RSS growth between two
horizons, in bytes per order. The single-service model is the same arrivals and root workers
calling two leaf dependencies, each the same 4-replica pool with the same retry, directly (the
graph with its mid tiers removed). Two conditions: per-order records kept (``record_orders=True``:
memory proportional to orders by design) and summary only (memory should not grow with orders).

    python bench/graph_vs_simpy.py [--quick] [--memory]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _simpy_models import run_poisson_orders, timed
from harness import Row, judge_max, judge_ratio, run_probe
from sim_vs_simpy import (
    _peak_rss_bytes,
    _reset_peak_rss,
    _rss_bytes,
    agreement,
    versions,
)

LAMBDA = 200.0
ROOT_WORKERS = 64
MID_WORKERS = 8
MIDS = ("mid_a", "mid_b")
REPLICAS = 4
LEAF_MEAN = 0.01
FAIL_P = 0.05
MAX_ATTEMPTS = 3
BACKOFF_INITIAL = 0.01
SEED = 12345
TARGET = 25.0
MEMORY_TARGET = 2.0
QUEUE = 10_000_000  # the largest allowed: nothing is refused, as SimPy's unbounded queues


@dataclass
class Stats:
    arrived: int = 0
    completed: int = 0
    failed: int = 0
    calls: int = 0  # root -> mid calls plus db attempts
    sojourn_sum: float = 0.0


def simpy_graph(horizon: float, seed: int = SEED) -> Stats:
    import simpy

    rng = random.Random(seed)
    env = simpy.Environment()
    root = simpy.Resource(env, capacity=ROOT_WORKERS)
    mids = {m: simpy.Resource(env, capacity=MID_WORKERS) for m in MIDS}
    pools = {m: [simpy.Resource(env, capacity=1) for _ in range(REPLICAS)] for m in MIDS}
    next_replica = dict.fromkeys(MIDS, 0)
    stats = Stats()

    def db_call(mid: str) -> Any:
        """The mid tier's retried call to its replica pool; returns whether it succeeded."""
        pool = pools[mid]
        for attempt in range(1, MAX_ATTEMPTS + 1):
            i = next_replica[mid]  # round robin per attempt
            next_replica[mid] = (i + 1) % REPLICAS
            with pool[i].request() as req:
                yield req
                yield env.timeout(rng.expovariate(1.0 / LEAF_MEAN))
            stats.calls += 1
            if rng.random() >= FAIL_P:
                return True
            if attempt == MAX_ATTEMPTS:
                return False
            yield env.timeout(rng.uniform(0.0, BACKOFF_INITIAL * 2.0 ** (attempt - 1)))
        return False

    def mid_request(mid: str) -> Any:
        with mids[mid].request() as req:
            yield req
            ok = yield from db_call(mid)
        return ok

    def order(env: Any) -> Any:
        arrival = env.now
        with root.request() as req:
            yield req
            ok = True
            for mid in MIDS:
                stats.calls += 1
                ok = yield from mid_request(mid)
                if not ok:
                    break
        if ok:
            stats.completed += 1
        else:
            stats.failed += 1
        stats.sojourn_sum += env.now - arrival

    stats.arrived = run_poisson_orders(env, rng, LAMBDA, horizon, order)
    return stats


def _leaf(name: str) -> Any:
    import reliability_lab as rl

    return rl.Dependency(
        name,
        faults=rl.Faults(
            failure_rate=FAIL_P,
            latency=rl.Exponential(LEAF_MEAN),
            capacity=rl.Capacity(max_in_service=1),
        ),
        replicas=rl.Replicas(count=REPLICAS, balancer="round_robin"),
        retry=rl.RetryConfig(
            max_attempts=MAX_ATTEMPTS,
            backoff=rl.Backoff(
                initial=BACKOFF_INITIAL, multiplier=2.0, max_delay=30.0, jitter="full"
            ),
        ),
    )


def scenario(
    horizon: float, *, graph: bool = True, record_orders: bool = False, seed: int = SEED
) -> Any:
    """The three-tier graph, or (``graph=False``) the single-service model: the root calling
    the two replica pools directly."""
    import reliability_lab as rl

    if graph:
        deps = tuple(rl.Dependency(m, service=m) for m in MIDS)
        services = tuple(
            rl.Service(
                name=m, workers=MID_WORKERS, queue_capacity=QUEUE, dependencies=(_leaf("db"),)
            )
            for m in MIDS
        )
    else:
        deps, services = tuple(_leaf(f"db_{m}") for m in MIDS), ()
    return rl.Scenario(
        arrivals=rl.Poisson(LAMBDA),
        duration=horizon,
        workers=ROOT_WORKERS,
        queue_capacity=QUEUE,
        seed=seed,
        dependencies=deps,
        services=services,
        sample_every=0.0,
        record_orders=record_orders,
        record_events=False,
    )


def ours_rate(horizon: float, graph: bool = True) -> tuple[float, dict[str, Any]]:
    from reliability_lab.sim import simulate

    sc = scenario(horizon, graph=graph)
    res, wall = timed(lambda: simulate(sc))
    s = res.summary
    arrived = int(s["arrived"])
    return arrived / wall, {
        "arrived": arrived,
        "completed": int(s["completed"]),
        "failed": int(s["failed"]),
        "wall_s": wall,
        "mean_sojourn": float(s["mean_sojourn"]),
        "calls_per_order": float(s["calls_per_order"]),
    }


def simpy_rate(horizon: float) -> tuple[float, dict[str, Any]]:
    st, wall = timed(lambda: simpy_graph(horizon))
    n = st.arrived
    return n / wall, {
        "arrived": n,
        "completed": st.completed,
        "failed": st.failed,
        "wall_s": wall,
        "mean_sojourn": st.sojourn_sum / n,
        "calls_per_order": st.calls / n,
    }


def compare(quick: bool) -> dict[str, Any]:
    """Ours and SimPy interleaved (ours, SimPy, ...) after a warm-up of ours; best of each.
    Ours on the single-service model too (after each graph run), for what the tiers cost."""
    ours_h, simpy_h, repeats = (1_000.0, 100.0, 1) if quick else (5_000.0, 500.0, 3)
    ours_rate(10.0)
    ours_rates: list[float] = []
    simpy_rates: list[float] = []
    single_rates: list[float] = []
    info_o: dict[str, Any] = {}
    info_p: dict[str, Any] = {}
    for _ in range(repeats):
        r, info_o = ours_rate(ours_h)
        ours_rates.append(r)
        single_rates.append(ours_rate(ours_h, graph=False)[0])
        r, info_p = simpy_rate(simpy_h)
        simpy_rates.append(r)
    ok, text = agreement(info_o, ours_h, info_p, simpy_h)
    return {
        "ours": max(ours_rates),
        "simpy": max(simpy_rates),
        "ours_rates": ours_rates,
        "simpy_rates": simpy_rates,
        "single_service_rate": max(single_rates),
        "single_service_rates": single_rates,
        "ours_horizon_s": ours_h,
        "simpy_horizon_s": simpy_h,
        "ours_info": info_o,
        "simpy_info": info_p,
        "agree": ok,
        "agreement": text,
        "load_average": os.getloadavg()[0],
    }


# ------------------------------------------------------------------------------------------------
# Memory


def memory_probe(horizon: float, graph: bool, record_orders: bool) -> dict[str, Any]:
    """In a fresh process: warm up (10 s run), reset the peak-RSS mark, run ``horizon`` seconds
    and read the peak RSS while the Result is still alive."""
    import gc

    from reliability_lab.sim import simulate

    simulate(scenario(10.0, graph=graph, record_orders=record_orders))
    gc.collect()
    reset = _reset_peak_rss()
    before = _rss_bytes()
    res = simulate(scenario(horizon, graph=graph, record_orders=record_orders))
    peak = _peak_rss_bytes()
    return {
        "horizon": horizon,
        "graph": graph,
        "record_orders": record_orders,
        "arrived": int(res.summary["arrived"]),
        "rss_before": before,
        "rss_peak": peak,
        "peak_reset": reset,
    }


def _run_probe(horizon: float, graph: bool, record_orders: bool) -> dict[str, Any]:
    flags = [*(["--graph"] if graph else []), *(["--records"] if record_orders else [])]
    return run_probe(str(Path(__file__).resolve()), "--horizon", str(horizon), *flags)


def memory(quick: bool) -> dict[str, Any]:
    """Peak-RSS slope (bytes per order) between two horizons, graph and single-service."""
    h1, h2 = (500.0, 2_000.0) if quick else (2_000.0, 10_000.0)
    out: dict[str, Any] = {"horizons_s": [h1, h2]}
    for records in (True, False):
        for graph in (True, False):
            a = _run_probe(h1, graph, records)
            b = _run_probe(h2, graph, records)
            growth = (b["rss_peak"] - b["rss_before"]) - (a["rss_peak"] - a["rss_before"])
            slope = growth / (b["arrived"] - a["arrived"])
            key = f"{'graph' if graph else 'single'}_{'records' if records else 'summary'}"
            out[key] = {"bytes_per_order": slope, "probes": [a, b]}
    return out


# ------------------------------------------------------------------------------------------------
# Rows for bench/run.py, and the command line


def rows(quick: bool) -> list[Row]:
    c = compare(quick)
    ratio = c["ours"] / c["simpy"]
    note = f"Models {c['agreement']}; load average {c['load_average']:.1f}"
    out = [
        Row(
            "graph",
            "sim 3-tier graph (root -> 2 mid services -> 4 replicas each) vs SimPy",
            "orders/s",
            c["ours"],
            c["simpy"],
            f"SimPy {versions()['simpy']}",
            ratio,
            f">= {TARGET:g}x",
            judge_ratio(ratio, TARGET) if c["agree"] else "MISS",
            note,
            details={k: v for k, v in c.items() if k not in ("ours", "simpy")},
        )
    ]
    m = memory(quick)
    rec_ratio = m["graph_records"]["bytes_per_order"] / m["single_records"]["bytes_per_order"]
    out.append(
        Row(
            "graph",
            "memory per order, per-order records: graph / single-service (peak RSS slopes)",
            "x",
            rec_ratio,
            target=f"<= {MEMORY_TARGET:g}x",
            status=judge_max(rec_ratio, MEMORY_TARGET),
            note=(
                f"graph {m['graph_records']['bytes_per_order']:.1f} B/order, single-service "
                f"{m['single_records']['bytes_per_order']:.1f} B/order; summary only: graph "
                f"{m['graph_summary']['bytes_per_order']:.1f}, single "
                f"{m['single_summary']['bytes_per_order']:.1f} B/order"
            ),
            details=m,
        )
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--memory", action="store_true", help="also measure memory per order")
    p.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--horizon", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--graph", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--records", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.memory_probe:
        print(json.dumps(memory_probe(a.horizon, a.graph, a.records)))
        return
    c = compare(a.quick)
    for name, info in (("ours", c["ours_info"]), ("simpy", c["simpy_info"])):
        shown = "  ".join(f"{k} {v:.4g}" for k, v in info.items())
        print(f"{name:5} {shown}")
    print(f"models {c['agreement']}")
    print(
        f"single-service model (the same pools called by the root directly): ours "
        f"{c['single_service_rate'] / 1e6:.2f} M orders/s"
    )
    ratio = c["ours"] / c["simpy"]
    verdict = "PASS" if ratio >= TARGET and c["agree"] else "MISS"
    print(
        f"3-tier graph  ours {c['ours'] / 1e6:.2f} M orders/s  SimPy {c['simpy'] / 1e3:.1f} k/s  "
        f"ratio {ratio:.1f}x (target >= {TARGET:g}x) {verdict}  "
        f"(load average {c['load_average']:.1f})"
    )
    assert math.isfinite(ratio)
    if a.memory:
        m = memory(a.quick)
        for key in ("graph_records", "single_records", "graph_summary", "single_summary"):
            over = "  ".join(
                f"{p['arrived']:,} orders: peak {(p['rss_peak'] - p['rss_before']) / 2**20:.1f} MiB"
                for p in m[key]["probes"]
            )
            print(
                f"memory {key:15} {m[key]['bytes_per_order']:6.1f} B/order (peak RSS slope; "
                f"peak over the baseline: {over})"
            )
        r = m["graph_records"]["bytes_per_order"] / m["single_records"]["bytes_per_order"]
        verdict = "PASS" if r <= MEMORY_TARGET else "MISS"
        print(
            f"memory per order with records, graph / single-service: {r:.2f}x "
            f"(target <= {MEMORY_TARGET:g}x) {verdict}"
        )


if __name__ == "__main__":
    main()
