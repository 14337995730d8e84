#!/usr/bin/env python3
"""Breaker-threshold sweep benchmark (issue 5): 1,000 configurations of a 60 s scenario at
200 orders/s (about 12 M orders), through ``rl.sweep`` with the progress bar off and summary
numbers only (no per-order records, no time series).

    python bench/sweep_bench.py [--quick]

The scenario: Poisson arrivals at 200 orders/s for 60 s, 16 workers, a job queue of 256, and a
``payment`` dependency (exponential latency, mean 50 ms) with up to 4 attempts (full-jitter
backoff from 100 ms, capped at 2 s) outside a consecutive-failures breaker, and an outage from
20 s to 35 s. The grid: the breaker's threshold (1..20 consecutive failures) x its open duration
(10 values, 0.5..30 s) x the dependency's failure rate outside the outage (5 values, 5%..40%),
one seed: 20 x 10 x 5 = 1,000 runs. Each run keeps the success rate, calls per order, trips,
and the outage's time to detect and to recover (so breaker transitions are recorded).

Figures, all from one process and the same grid:

* wall time of the sweep with the default pool (one thread per CPU), best of the repeats;
* the speed-up from ``max_workers=1`` to ``max_workers=2``: 1-thread and 2-thread sweeps are
  interleaved (1, 2, 1, 2, ...) so that a burst of background load hits both; best of each;
* process CPU time with each wall time: CPU time per run does not depend on other work on the
  machine (a load-independent check), and CPU time / wall time of the 2-thread sweep shows how
  much parallelism it actually got (2.0: both cores);
* the native engine alone on the same scenarios (dicts built up front, no Python between runs),
  1 and 2 threads, interleaved with the sweeps: the speed-up this machine allows at all, and
  by difference of CPU times the Python work the sweep adds per run (held under the GIL);
* the 1-thread and 2-thread DataFrames are checked to be identical.

The machine's load average is recorded before, after and at each round: the development machine
is shared, and a loaded machine lowers the speed-up without any change in the code.

``rows(quick)`` returns the figures as bench/harness.py rows (bench/run.py's ``sweep`` group).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Row, judge_max, judge_ratio, print_table

WALL_TARGET_S = 10.0
SPEEDUP_TARGET = 1.9
THRESHOLDS = list(range(1, 21))
OPEN_FOR = [0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0]
FAILURE_RATES = [0.05, 0.1, 0.2, 0.3, 0.4]
METRICS = [
    "arrived",
    "success_rate",
    "payment.calls_per_order",
    "payment.trips",
    "payment.outage.time_to_detect",
    "payment.outage.time_to_recover",
]


def scenario() -> Any:
    import reliability_lab as rl

    return rl.Scenario(
        arrivals=rl.Poisson(rate=200),
        duration=60,
        workers=16,
        queue_capacity=256,
        seed=0,
        dependencies=[
            rl.Dependency(
                "payment",
                faults=rl.Faults(
                    failure_rate=0.1,
                    latency=rl.Exponential(mean=0.05),
                    phases=[rl.Outage(start=20, end=35)],
                ),
                retry=rl.RetryConfig(
                    max_attempts=4, backoff=rl.Backoff(initial=0.1, max_delay=2.0, jitter="full")
                ),
                breaker=rl.Breaker(consecutive_failures=5, open_for=5.0),
            )
        ],
    )


def grid(quick: bool) -> dict[str, list[Any]]:
    return {
        "payment.breaker.consecutive_failures": THRESHOLDS,
        "payment.breaker.open_for": OPEN_FOR[::2] if quick else OPEN_FOR,
        "payment.faults.failure_rate": FAILURE_RATES[2:3] if quick else FAILURE_RATES,
    }


def _timed_sweep(max_workers: int | None, quick: bool) -> tuple[float, float, Any]:
    """(wall s, process CPU s, DataFrame) of one sweep."""
    import reliability_lab as rl

    sc, g = scenario(), grid(quick)
    cpu0, t0 = time.process_time(), time.perf_counter()
    df = rl.sweep(sc, g, seeds=[0], progress=False, metrics=METRICS, max_workers=max_workers)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return wall, cpu, df


def _engine_dicts(quick: bool) -> list[dict[str, Any]]:
    """The grid's scenarios as dicts, built up front (for the engine-only runs)."""
    sc = scenario().replace({"record_orders": False, "sample_every": 0.0})
    g = grid(quick)
    return [
        sc.replace(dict(zip(g, combo, strict=True))).to_dict()
        for combo in itertools.product(*g.values())
    ]


def _timed_engine(dicts: list[dict[str, Any]], threads: int) -> tuple[float, float]:
    """(wall s, process CPU s) of the native engine alone on ``dicts`` (no Python between
    runs but the call itself), in ``threads`` threads taking chunks of 8 runs."""
    from concurrent.futures import ThreadPoolExecutor

    from reliability_lab import _core
    from reliability_lab.metrics import LATENCY_BOUNDS
    from reliability_lab.sim import DEFAULT_MAX_EVENTS

    bounds = list(LATENCY_BOUNDS)

    def run(chunk: list[dict[str, Any]]) -> None:
        for d in chunk:
            _core.simulate(
                d, sample_every=0.0, record_orders=False, record_events=True, until=-1.0,
                max_events=DEFAULT_MAX_EVENTS, latency_bounds=bounds,
            )

    chunks = [dicts[i : i + 8] for i in range(0, len(dicts), 8)]
    cpu0, t0 = time.process_time(), time.perf_counter()
    if threads == 1:
        for c in chunks:
            run(c)
    else:
        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(run, chunks))
    return time.perf_counter() - t0, time.process_time() - cpu0


def _machine_busy_s() -> float | None:
    """CPU seconds the whole machine has spent busy (all CPUs, including time stolen by the
    hypervisor), from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _others_cpu(run: Any) -> tuple[Any, float]:
    """(what ``run()`` returned, CPU seconds the rest of the machine used meanwhile): the
    machine's busy time less this process's CPU time. Unlike the load average (which counts
    this process's own threads, over a minute), it is the interference during the round."""
    busy0, own0 = _machine_busy_s(), time.process_time()
    out = run()
    busy1, own1 = _machine_busy_s(), time.process_time()
    if busy0 is None or busy1 is None:
        return out, math.nan
    return out, max(0.0, (busy1 - busy0) - (own1 - own0))


def measure(quick: bool) -> dict[str, Any]:
    """Runs the sweeps; every figure and the context they were taken in."""
    import pandas as pd
    import reliability_lab as rl

    repeats = 1 if quick else 3
    rounds = 1 if quick else 5  # interleaved 1-/2-thread rounds: more chances of a quiet pair
    load_before = os.getloadavg()
    _timed_sweep(None, True)  # warm-up: imports, first-call paths, allocator

    default_walls, default_cpus = [], []
    df_default = None
    for _ in range(repeats):
        wall, cpu, df_default = _timed_sweep(None, quick)
        default_walls.append(wall)
        default_cpus.append(cpu)

    # 1- and 2-thread rounds interleaved (1, 2, 1, 2, ...), for the sweep and for the engine
    # alone on the same scenarios: a burst of background load hits both sides of each ratio.
    dicts = _engine_dicts(quick)
    walls: dict[int, list[float]] = {1: [], 2: []}
    cpus: dict[int, list[float]] = {1: [], 2: []}
    engine_walls: dict[int, list[float]] = {1: [], 2: []}
    engine_cpus: dict[int, list[float]] = {1: [], 2: []}
    loads: list[float] = []
    others_cpu: dict[int, list[float]] = {1: [], 2: []}
    frames: dict[int, Any] = {}
    for _ in range(rounds):
        for w in (1, 2):
            loads.append(os.getloadavg()[0])
            (wall, cpu, frames[w]), others = _others_cpu(lambda w=w: _timed_sweep(w, quick))
            others_cpu[w].append(others)
            walls[w].append(wall)
            cpus[w].append(cpu)
            ewall, ecpu = _timed_engine(dicts, w)
            engine_walls[w].append(ewall)
            engine_cpus[w].append(ecpu)
    pd.testing.assert_frame_equal(frames[1], frames[2])
    assert df_default is not None
    pd.testing.assert_frame_equal(frames[1], df_default)

    runs = len(df_default)
    orders = int(df_default["arrived"].sum())
    best = min(default_walls)
    best1, best2 = min(walls[1]), min(walls[2])
    ebest1, ebest2 = min(engine_walls[1]), min(engine_walls[2])
    return {
        "quick": quick,
        "configurations": runs,
        "orders": orders,
        "default_max_workers": os.cpu_count() or 1,
        "default_walls_s": default_walls,
        "default_cpu_s": default_cpus,
        "best_wall_s": best,
        "median_wall_s": statistics.median(default_walls),
        "orders_per_s": orders / best,
        "ms_per_run": best / runs * 1e3,
        "walls_1_thread_s": walls[1],
        "walls_2_threads_s": walls[2],
        "cpu_1_thread_s": cpus[1],
        "cpu_2_threads_s": cpus[2],
        # Process CPU time per run: independent of what else runs on the machine; a rise from
        # 1 to 2 threads is the cost of both cores working at once (shared caches, memory,
        # SMT), not time spent waiting.
        "cpu_ms_per_run_1_thread": min(cpus[1]) / runs * 1e3,
        "cpu_ms_per_run_2_threads": min(cpus[2]) / runs * 1e3,
        "speedup_best": best1 / best2,
        "speedup_median": statistics.median(walls[1]) / statistics.median(walls[2]),
        "cpu_per_wall_2_threads": [c / w for c, w in zip(cpus[2], walls[2], strict=True)],
        # The same scenarios through the native engine alone: the ceiling of the speed-up on
        # this machine, and the Python work a sweep adds per run (GIL held).
        "engine_walls_1_thread_s": engine_walls[1],
        "engine_walls_2_threads_s": engine_walls[2],
        "engine_speedup_best": ebest1 / ebest2,
        "engine_cpu_ms_per_run_1_thread": min(engine_cpus[1]) / runs * 1e3,
        "engine_cpu_ms_per_run_2_threads": min(engine_cpus[2]) / runs * 1e3,
        "python_ms_per_run": (min(cpus[1]) - min(engine_cpus[1])) / runs * 1e3,
        "load_average_before": load_before,
        "load_average_per_round": loads,
        # CPU seconds used by the rest of the machine during each sweep (/proc/stat busy time,
        # steal included, less this process's CPU time): 0 = an undisturbed round.
        "others_cpu_s_1_thread": others_cpu[1],
        "others_cpu_s_2_threads": others_cpu[2],
        "others_cpu_s_best_rounds": [
            others_cpu[1][walls[1].index(best1)], others_cpu[2][walls[2].index(best2)]
        ],
        "load_average_after": os.getloadavg(),
        "cpus": os.cpu_count(),
        "reliability_lab": os.path.dirname(rl.__file__),
        "method": (
            "rl.sweep(progress=False, metrics=[...summary columns]) on the same grid; best of "
            f"{repeats} repeat(s) (default pool), best of {rounds} interleaved rounds of 1- and "
            "2-thread sweeps and engine-only runs; "
            "results checked identical"
        ),
    }


def rows(quick: bool) -> list[Row]:
    m = measure(quick)
    n = m["configurations"]
    scale = n / 1000
    wall_target = WALL_TARGET_S * scale
    load = (
        f"load average {m['load_average_before'][0]:.2f} before, "
        f"{m['load_average_after'][0]:.2f} after, on {m['cpus']} CPUs"
    )
    size = f"{n:,} configs, {m['orders'] / 1e6:,.1f} M orders"
    cpu_par = max(m["cpu_per_wall_2_threads"])
    return [
        Row(
            "sweep",
            f"{size}: wall, {m['default_max_workers']} threads",
            "s",
            m["best_wall_s"],
            target=f"<= {wall_target:g} s",
            status=judge_max(m["best_wall_s"], wall_target),
            note=(
                f"best of {len(m['default_walls_s'])}: "
                + ", ".join(f"{w:.2f}" for w in m["default_walls_s"])
                + f" s; {m['ms_per_run']:.2f} ms per 60 s run, "
                f"{m['orders_per_s'] / 1e6:.2f} M orders/s; {load}"
                + ("; quick: target scaled to the grid size" if quick else "")
            ),
            details=m,
        ),
        Row(
            "sweep",
            f"{size}: 1 thread -> 2 threads",
            "s",
            min(m["walls_2_threads_s"]),
            peer=min(m["walls_1_thread_s"]),
            peer_name="1 thread",
            ratio=m["speedup_best"],
            target=f">= {SPEEDUP_TARGET:g}x",
            status=judge_ratio(m["speedup_best"], SPEEDUP_TARGET),
            note=(
                "walls 1 thread "
                + ", ".join(f"{w:.2f}" for w in m["walls_1_thread_s"])
                + " s; 2 threads "
                + ", ".join(f"{w:.2f}" for w in m["walls_2_threads_s"])
                + f" s; ratio of medians {m['speedup_median']:.2f}x; 2-thread CPU time / wall "
                f"up to {cpu_par:.2f} (2.0 = both cores busy with the sweep); CPU per run "
                f"{m['cpu_ms_per_run_1_thread']:.2f} ms (1 thread) -> "
                f"{m['cpu_ms_per_run_2_threads']:.2f} ms (2 threads); the engine alone on "
                f"the same scenarios {m['engine_speedup_best']:.2f}x (CPU per run "
                f"{m['engine_cpu_ms_per_run_1_thread']:.2f} -> "
                f"{m['engine_cpu_ms_per_run_2_threads']:.2f} ms); the sweep's Python per run "
                f"(CPU, 1 thread) {m['python_ms_per_run']:.3f} ms; other processes' CPU "
                "during the best 1- / 2-thread rounds "
                + " / ".join(f"{x:.2f}" for x in m["others_cpu_s_best_rounds"])
                + f" s; {load}"
            ),
            details=m,
        ),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 configurations, one repeat")
    args = ap.parse_args()
    got = rows(args.quick)
    print_table("Breaker-threshold sweep (rl.sweep, summary only)", got)
    return 0


if __name__ == "__main__":
    sys.exit(main())
