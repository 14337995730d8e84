"""The simulated engine against SimPy (issue 3), same interpreter, same run.

Two pipelines, each written once as a reliability_lab Scenario and once as an idiomatic SimPy
model (a ``simpy.Resource`` with capacity c for the workers, one generator process per order,
Python's ``random`` for the draws):

* M/M/c: Poisson arrivals at 180/s, c = 20 workers, exponential service of mean 0.1 s.
* A retrying client: the same arrivals and service per attempt; each attempt fails with p = 0.3;
  at most 4 attempts; before attempt k+1 a full-jitter backoff U(0, 0.1 * 2^(k-1)) s during which
  the worker is released (the order queues for a worker again afterwards); c = 29. A free
  worker serves an order back from backoff before a new order, FIFO within each class: the
  simulated engine's rule (``SimEngine::DispatchWork`` takes its ``ready_`` queue of orders woken
  from a backoff before its ``job_queue_`` of new ones). The SimPy model reproduces it with a
  ``simpy.PriorityResource``: priority 0 for a request made on return from backoff, 1 for a first
  attempt; PriorityResource orders by (priority, request time), so each class stays FIFO.

Both sides stop arrivals at the horizon and run until every order has finished, and both keep
counters only (no per-order records: our side runs with ``record_orders=False``, no time-series
sampling). The figure is orders simulated per wall-clock second (best of N runs).

The floor (issue 11): ``bench/cpp/sim_floor.cc`` runs the same two models as a bare C++
discrete-event loop (a 4-ary heap of (time, seq) events, FIFO queues, the engine's xoshiro
streams, no policies). :func:`floor_rate` runs it; the engine's rate over the floor's, measured
interleaved in one run, is the ratio with the 0.85 target. ``python bench/sim_vs_simpy.py
--floor [--quick]`` prints just that comparison.

Memory is measured in fresh subprocesses (``python bench/sim_vs_simpy.py --memory-probe ...``):
see :func:`memory_probe`.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import resource
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from _simpy_models import run_poisson_orders, timed
from harness import run_probe

LAMBDA = 180.0  # orders per second
SERVICE_MEAN = 0.1  # seconds
MMC_WORKERS = 20
RETRY_WORKERS = 29
FAIL_P = 0.3
MAX_ATTEMPTS = 4
BACKOFF_INITIAL = 0.1
FULL_HORIZON = 10_000.0  # virtual seconds (about 1.8 M orders)
SEED = 12345
FLOOR_TARGET = 0.85  # issue 11: the engine's rate >= 0.85x the bare C++ loop's
# The two models must describe the same system for their rates to be comparable: arrival
# throughput within 4 standard errors of a Poisson count, and mean sojourn and calls per order
# within these relative tolerances at a 2,000 s horizon of the shorter side, widened by
# sqrt(2000 / horizon) for shorter runs (the standard error of a time average shrinks as
# 1/sqrt(horizon)). Printed beside every engine-vs-SimPy and engine-vs-floor ratio.
SOJOURN_TOL = 0.02
CALLS_TOL = 0.01
# The floor program, built by `bash .ci/lab bench` (RLAB_BUILD_BENCH); RLAB_SIM_FLOOR overrides.
DEFAULT_FLOOR_BINARY = Path(__file__).resolve().parent.parent / "build/bench/bench/cpp/sim_floor"

# ------------------------------------------------------------------------------------------------
# SimPy models (idiomatic: a Resource for the workers, a generator process per order)


@dataclass
class SimpyStats:
    arrived: int = 0
    completed: int = 0
    failed: int = 0
    attempts: int = 0
    sojourn_sum: float = 0.0


def simpy_mmc(horizon: float, seed: int = SEED) -> SimpyStats:
    import simpy

    rng = random.Random(seed)
    env = simpy.Environment()
    workers = simpy.Resource(env, capacity=MMC_WORKERS)
    stats = SimpyStats()

    def order(env: simpy.Environment) -> Any:
        arrival = env.now
        with workers.request() as req:
            yield req
            yield env.timeout(rng.expovariate(1.0 / SERVICE_MEAN))
        stats.completed += 1
        stats.sojourn_sum += env.now - arrival

    # Arrivals stop at the horizon; runs until every order has finished.
    stats.arrived = run_poisson_orders(env, rng, LAMBDA, horizon, order)
    return stats


def simpy_retry(horizon: float, seed: int = SEED) -> SimpyStats:
    import simpy

    rng = random.Random(seed)
    env = simpy.Environment()
    # Orders back from backoff first (priority 0), then new orders (1); FIFO within each.
    workers = simpy.PriorityResource(env, capacity=RETRY_WORKERS)
    stats = SimpyStats()

    def order(env: simpy.Environment) -> Any:
        arrival = env.now
        for attempt in range(1, MAX_ATTEMPTS + 1):
            with workers.request(priority=0 if attempt > 1 else 1) as req:
                yield req
                yield env.timeout(rng.expovariate(1.0 / SERVICE_MEAN))
            stats.attempts += 1
            if rng.random() >= FAIL_P:
                stats.completed += 1
                break
            if attempt == MAX_ATTEMPTS:
                stats.failed += 1
                break
            # Full jitter; the worker was released at the end of the with block.
            yield env.timeout(rng.uniform(0.0, BACKOFF_INITIAL * 2.0 ** (attempt - 1)))
        stats.sojourn_sum += env.now - arrival

    stats.arrived = run_poisson_orders(env, rng, LAMBDA, horizon, order)
    return stats


# ------------------------------------------------------------------------------------------------
# Our scenarios


def scenario(kind: str, horizon: float, *, record_orders: bool = False, seed: int = SEED) -> Any:
    from reliability_lab.backoff import Backoff
    from reliability_lab.retry import RetryConfig
    from reliability_lab.scenario import Dependency, Exponential, Faults, Poisson, Scenario

    if kind == "mmc":
        dep = Dependency(
            "payment", faults=Faults(failure_rate=0.0, latency=Exponential(SERVICE_MEAN))
        )
        workers, release = MMC_WORKERS, False
    elif kind == "retry":
        dep = Dependency(
            "payment",
            faults=Faults(failure_rate=FAIL_P, latency=Exponential(SERVICE_MEAN)),
            retry=RetryConfig(
                max_attempts=MAX_ATTEMPTS,
                backoff=Backoff(
                    initial=BACKOFF_INITIAL, multiplier=2.0, max_delay=30.0, jitter="full"
                ),
            ),
        )
        workers, release = RETRY_WORKERS, True
    else:
        raise ValueError(kind)
    return Scenario(
        arrivals=Poisson(LAMBDA),
        duration=horizon,
        workers=workers,
        queue_capacity=10_000_000,  # the largest allowed: effectively the unbounded M/M/c queue
        seed=seed,
        dependencies=[dep],
        release_worker_during_backoff=release,
        sample_every=0.0,
        record_orders=record_orders,
        record_events=False,
    )


def ours_rate(
    kind: str, horizon: float, *, record_orders: bool = False
) -> tuple[float, dict[str, Any]]:
    from reliability_lab.sim import simulate

    sc = scenario(kind, horizon, record_orders=record_orders)
    res, wall = timed(lambda: simulate(sc))
    s = res.summary
    arrived = int(s["arrived"])
    info = {
        "arrived": arrived,
        "completed": int(s["completed"]),
        "failed": int(s["failed"]),
        "wall_s": wall,
        "mean_sojourn": float(s["mean_sojourn"]),
        "calls_per_order": float(s["calls_per_order"]),
        "in_flight": int(s["in_flight"]),
    }
    return arrived / wall, info


def simpy_rate(kind: str, horizon: float) -> tuple[float, dict[str, Any]]:
    fn = simpy_mmc if kind == "mmc" else simpy_retry
    st, wall = timed(lambda: fn(horizon))
    info = {
        "arrived": st.arrived,
        "completed": st.completed,
        "failed": st.failed,
        "wall_s": wall,
        "mean_sojourn": st.sojourn_sum / st.arrived if st.arrived else float("nan"),
        "calls_per_order": (st.attempts / st.arrived) if kind == "retry" else 1.0,
    }
    return st.arrived / wall, info


def floor_binary() -> Path:
    return Path(os.environ.get("RLAB_SIM_FLOOR", DEFAULT_FLOOR_BINARY))


def floor_rate(
    kind: str, horizon: float, binary: Path | None = None
) -> tuple[float, dict[str, Any]]:
    """One run of the bare C++ loop (bench/cpp/sim_floor.cc) for ``kind`` ("mmc" or "retry"):
    orders per wall-clock second as the program times its own loop (process start excluded)."""
    binary = binary or floor_binary()
    cmd = [str(binary), f"--model={kind}", f"--horizon={horizon}", "--repeats=1", f"--seed={SEED}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{binary} failed ({proc.returncode}):\n{proc.stderr}")
    info: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return float(info["orders_per_s"]), info


def agreement(
    ours: dict[str, Any], ours_h: float, peer: dict[str, Any], peer_h: float
) -> tuple[bool, str]:
    """Whether two runs of the same model (``*_rate`` infos, horizons in virtual seconds)
    agree within statistical tolerance: arrival throughput (orders per virtual second), mean
    sojourn and calls per order. Returns the verdict and a one-line account of it."""
    widen = math.sqrt(2_000.0 / min(ours_h, peer_h, 2_000.0))
    tput_o, tput_p = ours["arrived"] / ours_h, peer["arrived"] / peer_h
    # Poisson counts: the variance of arrived / h is rate / h.
    tput_se = math.sqrt(tput_o / ours_h + tput_p / peer_h)
    soj = abs(ours["mean_sojourn"] / peer["mean_sojourn"] - 1.0)
    calls = abs(ours["calls_per_order"] / peer["calls_per_order"] - 1.0)
    ok_tput = abs(tput_o - tput_p) <= 4.0 * tput_se
    ok_soj = soj <= SOJOURN_TOL * widen
    ok_calls = calls <= CALLS_TOL * widen
    ok = ok_tput and ok_soj and ok_calls
    text = (
        f"{'agree' if ok else 'DISAGREE'}: throughput {tput_o:.2f} vs {tput_p:.2f} orders/s "
        f"(|diff| {abs(tput_o - tput_p):.2f} {'<=' if ok_tput else '>'} 4 SE {4 * tput_se:.2f}), "
        f"mean sojourn {ours['mean_sojourn']:.4f} vs {peer['mean_sojourn']:.4f} s ({soj:.1%} "
        f"{'<=' if ok_soj else '>'} {SOJOURN_TOL * widen:.1%}), calls/order "
        f"{ours['calls_per_order']:.3f} vs {peer['calls_per_order']:.3f} ({calls:.1%} "
        f"{'<=' if ok_calls else '>'} {CALLS_TOL * widen:.1%})"
    )
    return ok, text


def versions() -> dict[str, str]:
    try:
        return {"simpy": metadata.version("simpy")}
    except metadata.PackageNotFoundError:
        return {"simpy": "not installed"}


# ------------------------------------------------------------------------------------------------
# Memory


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss() -> bool:
    """Resets the kernel's high-water mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    """VmHWM: the peak RSS since the last reset (or since the start)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_probe(horizon: float, record_orders: bool) -> dict[str, Any]:
    """Runs in a fresh process: imports everything and warms up with a 10 s run, reads the current
    RSS and resets the kernel's peak-RSS mark, runs the M/M/c scenario for ``horizon`` seconds and
    reads the peak RSS while the Result is still alive. Also reports the size of the orders table
    the Result retains."""
    from reliability_lab.sim import simulate

    simulate(scenario("mmc", 10.0, record_orders=record_orders))
    gc.collect()
    reset = _reset_peak_rss()
    before = _rss_bytes()
    res = simulate(scenario("mmc", horizon, record_orders=record_orders))
    peak = _peak_rss_bytes()
    after = _rss_bytes()
    orders_bytes = 0
    if res.orders is not None:
        orders_bytes = int(res.orders.memory_usage(deep=True, index=True).sum())
    return {
        "horizon": horizon,
        "record_orders": record_orders,
        "arrived": int(res.summary["arrived"]),
        "rss_before": before,
        "rss_peak": peak,
        "rss_after": after,
        "peak_reset": reset,
        "orders_frame_bytes": orders_bytes,
    }


def run_memory_probe(horizon: float, record_orders: bool) -> dict[str, Any]:
    flags = ["--records"] if record_orders else []
    return run_probe(str(Path(__file__).resolve()), "--horizon", str(horizon), *flags)


def floor_comparison(kind: str, horizon: float, repeats: int) -> dict[str, Any]:
    """The engine and the floor, interleaved (engine, floor, engine, ...) over the same horizon
    so that background load hits both alike; best of each side and their ratio."""
    ours_rate(kind, min(horizon, 100.0))  # warm-up
    ours_all: list[float] = []
    floor_all: list[float] = []
    for _ in range(repeats):
        r, ours_info = ours_rate(kind, horizon)
        ours_all.append(r)
        r, floor_info = floor_rate(kind, horizon)
        floor_all.append(r)
    ours, floor = max(ours_all), max(floor_all)
    return {
        "agreement": agreement(ours_info, horizon, floor_info, horizon),
        "model": kind,
        "horizon_s": horizon,
        "engine_rates": ours_all,
        "floor_rates": floor_all,
        "engine": ours,
        "floor": floor,
        "ratio": ours / floor,
        "target": FLOOR_TARGET,
        "load_average": os.getloadavg(),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--memory-probe", action="store_true")
    p.add_argument("--floor", action="store_true", help="the engine vs the bare C++ loop")
    p.add_argument("--simpy", action="store_true", help="the engine vs SimPy, with agreement")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--horizon", type=float, default=1000.0)
    p.add_argument("--records", action="store_true")
    a = p.parse_args()
    if a.memory_probe:
        print(json.dumps(memory_probe(a.horizon, a.records)))
    elif a.floor:
        horizon = 2_000.0 if a.quick else FULL_HORIZON
        for kind in ("mmc", "retry"):
            c = floor_comparison(kind, horizon, 2 if a.quick else 5)
            verdict = "PASS" if c["ratio"] >= FLOOR_TARGET else "MISS"
            print(
                f"{kind:5} engine {c['engine'] / 1e6:6.2f} M orders/s  floor "
                f"{c['floor'] / 1e6:6.2f} M/s  ratio {c['ratio']:.2f}x (target >= "
                f"{FLOOR_TARGET:g}x) {verdict}  load average {c['load_average'][0]:.2f}"
            )
            print(f"      engine vs floor {c['agreement'][1]}")
    elif a.simpy:
        ours_h = 2_000.0 if a.quick else FULL_HORIZON
        peer_h = 300.0 if a.quick else 2_000.0
        for kind, target in (("mmc", 40.0), ("retry", 30.0)):
            ours_rate(kind, 100.0)  # warm-up
            ours_runs = []
            peer_runs = []
            for _ in range(1 if a.quick else 3):  # interleaved: ours, SimPy, ours
                ours_runs.append(ours_rate(kind, ours_h))
                peer_runs.append(simpy_rate(kind, peer_h))
                ours_runs.append(ours_rate(kind, ours_h))
            ours_best = max(r for r, _ in ours_runs)
            peer_best = max(r for r, _ in peer_runs)
            ratio = ours_best / peer_best
            _, text = agreement(ours_runs[0][1], ours_h, peer_runs[0][1], peer_h)
            print(
                f"{kind:5} engine {ours_best / 1e6:6.2f} M orders/s ({ours_h:,.0f} s)  SimPy "
                f"{peer_best / 1e3:6.1f} k/s ({peer_h:,.0f} s)  ratio {ratio:.1f}x (target >= "
                f"{target:g}x) {'PASS' if ratio >= target else 'MISS'}  load average "
                f"{os.getloadavg()[0]:.2f}"
            )
            print(f"      engine vs SimPy {text}")


if __name__ == "__main__":
    main()
