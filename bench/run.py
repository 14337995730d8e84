#!/usr/bin/env python3
"""reliability-lab benchmarks against the peer tools: one command, one process, ratios printed.

    python bench/run.py [--quick] [--only NAME[,NAME...]] [--json PATH] [--cpp-binary PATH]

NAME is a group: cpp, breaker, retry, sim (= mmc, retrying, memory), graph, scale, live,
live_memory, sweep, service, or one of mmc, retrying, memory.
Prints a table per group (ours, the peer, the ratio, the target, PASS/MISS) and writes every
figure with its method details to bench/results.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TOP = HERE.parent
sys.path.insert(0, str(HERE))

import cpp_bench  # noqa: E402
import py_policies  # noqa: E402
import sim_vs_simpy  # noqa: E402
from harness import Row, best_of, judge_max, judge_ratio, print_table  # noqa: E402

GROUPS = {
    "cpp": ["cpp"],
    "breaker": ["breaker"],
    "retry": ["retry"],
    "sim": ["mmc", "retrying", "memory"],
    "graph": ["graph"],
    "scale": ["scale"],
    "live": ["live"],
    "live_memory": ["live_memory"],
    "sweep": ["sweep"],
    "service": ["service"],
    "dashboard": ["dashboard"],
}
ALL = [
    "cpp",
    "breaker",
    "retry",
    "mmc",
    "retrying",
    "memory",
    "graph",
    "scale",
    "live",
    "live_memory",
    "sweep",
    "service",
    "dashboard",
]
# Benchmarks that live in their own module, each exposing ``rows(quick: bool) -> list[Row]``.
MODULES = {
    "graph": "graph_vs_simpy",
    "scale": "graph_scale",
    "live": "live_bench",
    "live_memory": "memory_bench",
    "sweep": "sweep_bench",
    "service": "service_bench",
    "dashboard": "dashboard_bench",
}
TITLES = {
    "cpp": "C++ policies (Google Benchmark; best of repeats, ns per operation)",
    "breaker": "Circuit breaker guarding a Python function (ns per call; ratio = peer / ours)",
    "retry": "Retry wrapper on a succeeding Python function (ns per call; ratio = peer / ours)",
    "mmc": "Simulated engine vs SimPy and vs the bare C++ loop: M/M/c (orders per wall-clock s)",
    "retrying": "Simulated engine vs SimPy and vs the bare C++ loop: retrying client (orders/s)",
    "memory": "Simulated engine memory (M/M/c; bytes per order)",
    "graph": "Simulated engine, 3-tier service graph: vs SimPy (orders/s), memory per order",
    "scale": "Simulated engine, generated 100-service graph: calls per wall-clock s, memory/call",
    "live": "Live engine: no-op orders through the queue and the workers (orders per second)",
    "live_memory": "Live memory over a steady 1,000 orders/s run: RSS growth (rl.Lab and serve)",
    "sweep": "Breaker-threshold sweep: 1,000 configurations x 60 s at 200 orders/s (12 M orders)",
    "service": "HTTP order service on loopback: accepted orders/s and accept latency",
    "dashboard": "The control room's cost: the service with one dashboard client / without",
}


def _selected(only: str | None) -> list[str]:
    if not only:
        return list(ALL)
    out: list[str] = []
    for name in only.split(","):
        name = name.strip()
        if name in GROUPS:
            out += GROUPS[name]
        elif name in ALL:
            out.append(name)
        else:
            raise SystemExit(
                f"--only: unknown benchmark {name!r}; choose from {sorted(set(GROUPS) | set(ALL))}"
            )
    return [n for n in ALL if n in out]


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(TOP), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _rl_info() -> dict[str, Any]:
    import reliability_lab as rl

    return {"version": rl.__version__, "module": os.path.dirname(rl.__file__)}


# ------------------------------------------------------------------------------------------------
# The simulated engine against SimPy


def _sim_available() -> str | None:
    """None if our simulate() can run, else why not."""
    try:
        from reliability_lab import _core
        from reliability_lab.sim import simulate  # noqa: F401
    except Exception as e:  # the simulator is an in-progress part of the package
        return f"reliability_lab.sim not importable: {e!r}"
    if not hasattr(_core, "simulate"):
        return "reliability_lab._core has no simulate() yet (native engine not bound)"
    return None


def _sim_rate_rows(kind: str, quick: bool) -> list[Row]:
    label = {"mmc": "M/M/c, c=20, 180/s", "retrying": "retrying client, c=29, 180/s"}[kind]
    target = {"mmc": 40.0, "retrying": 30.0}[kind]
    model = "mmc" if kind == "mmc" else "retry"
    ours_h = 2_000.0 if quick else sim_vs_simpy.FULL_HORIZON
    peer_h = 300.0 if quick else 2_000.0
    peer_n = 1 if quick else 3  # ours runs twice per SimPy run, around it
    ours_n = 2 * peer_n
    peer_name = f"SimPy {sim_vs_simpy.versions()['simpy']}"
    why = _sim_available()
    infos: dict[str, list[dict[str, Any]]] = {"ours": [], "peer": []}

    def peer_run() -> float:
        r, info = sim_vs_simpy.simpy_rate(model, peer_h)
        infos["peer"].append(info)
        return r

    if why is not None:
        peer_best, peer_all = best_of(peer_run, peer_n)
        return [
            Row(
                kind,
                label,
                "orders/s",
                None,
                peer_best,
                peer_name,
                None,
                f">= {target:g}x",
                "SKIP",
                f"ours not run: {why}",
                {"peer_horizon_s": peer_h, "peer_rates": peer_all, "peer_runs": infos["peer"]},
            )
        ]

    def ours_run() -> float:
        r, info = sim_vs_simpy.ours_rate(model, ours_h)
        infos["ours"].append(info)
        return r

    floor_bin = sim_vs_simpy.floor_binary()
    floor_all: list[float] = []
    floor_infos: list[dict[str, Any]] = []

    def floor_run() -> None:
        if floor_bin.exists():
            r, info = sim_vs_simpy.floor_rate(model, ours_h, floor_bin)
            floor_all.append(r)
            floor_infos.append(info)

    ours_run()  # warm-up (first import of pandas paths, allocator)
    infos["ours"].clear()
    # Interleaved (ours, floor, SimPy, ours, floor, ...) so that background load hits every side
    # alike; the floor runs right after each of our runs, over the same horizon.
    ours_all: list[float] = []
    peer_all = []
    for _ in range(peer_n):
        ours_all.append(ours_run())
        floor_run()
        peer_all.append(peer_run())
        ours_all.append(ours_run())
        floor_run()
    ours_best, peer_best = max(ours_all), max(peer_all)
    ratio = ours_best / peer_best
    o, p = infos["ours"][0], infos["peer"][0]
    note = (
        f"horizons: ours {ours_h:,.0f} s ({o['arrived']:,} orders, best of {ours_n}), SimPy "
        f"{peer_h:,.0f} s ({p['arrived']:,} orders, best of {peer_n}); rates compared. "
        f"Models {sim_vs_simpy.agreement(o, ours_h, p, peer_h)[1]}"
    )
    return [
        Row(
            kind,
            f"{label}: engine vs {peer_name}",
            "orders/s",
            ours_best,
            peer_best,
            peer_name,
            ratio,
            f">= {target:g}x",
            judge_ratio(ratio, target),
            note,
            {
                "ours_horizon_s": ours_h,
                "peer_horizon_s": peer_h,
                "ours_rates": ours_all,
                "peer_rates": peer_all,
                "ratio_of_medians": statistics.median(ours_all) / statistics.median(peer_all),
                "ours_runs": infos["ours"],
                "peer_runs": infos["peer"],
            },
        ),
        _floor_row(kind, label, ours_all, floor_all, floor_infos, floor_bin, o),
    ]


def _floor_row(
    kind: str,
    label: str,
    ours_all: list[float],
    floor_all: list[float],
    floor_infos: list[dict[str, Any]],
    binary: Path,
    ours_info: dict[str, Any],
) -> Row:
    """Our engine against the bare C++ loop of the same model (issue 11), measured interleaved
    with our runs in this same process run."""
    target = sim_vs_simpy.FLOOR_TARGET
    name = f"{label}: engine vs bare C++ loop"
    peer_name = "C++ floor (bench/cpp/sim_floor)"
    load = f"load average {os.getloadavg()[0]:.2f}"
    if not floor_all:
        note = (
            f"{binary} is not built: bash .ci/lab bench builds it (or cmake "
            "-DRLAB_BUILD_BENCH=ON ... --target sim_floor; RLAB_SIM_FLOOR names another)"
        )
        return Row(
            kind,
            name,
            "orders/s",
            max(ours_all),
            None,
            peer_name,
            None,
            f">= {target:g}x",
            "SKIP",
            note,
        )
    ours_best, floor_best = max(ours_all), max(floor_all)
    ratio = ours_best / floor_best
    f = floor_infos[0]
    note = (
        f"best of {len(ours_all)} engine runs vs best of {len(floor_all)} floor runs, same "
        f"horizon ({f['horizon_s']:,.0f} s, {f['arrived']:,} orders), interleaved; models "
        f"{sim_vs_simpy.agreement(ours_info, f['horizon_s'], f, f['horizon_s'])[1]}; {load}"
    )
    return Row(
        kind,
        name,
        "orders/s",
        ours_best,
        floor_best,
        peer_name,
        ratio,
        f">= {target:g}x",
        judge_ratio(ratio, target),
        note,
        {
            "floor_binary": str(binary),
            "ours_rates": ours_all,
            "floor_rates": floor_all,
            "ratio_of_medians": statistics.median(ours_all) / statistics.median(floor_all),
            "floor_runs": floor_infos,
            "load_average": os.getloadavg(),
        },
    )


def _memory_rows(quick: bool) -> list[Row]:
    why = _sim_available()
    if why is not None:
        return [
            Row(
                "memory",
                "bytes/order, per-order records",
                "bytes/order",
                None,
                target="<= 64 B",
                status="SKIP",
                note=f"not run: {why}",
            )
        ]
    h1, h2 = (500.0, 2_000.0) if quick else (2_000.0, sim_vs_simpy.FULL_HORIZON)
    rows = []
    for records in (True, False):
        a = sim_vs_simpy.run_memory_probe(h1, records)
        b = sim_vs_simpy.run_memory_probe(h2, records)
        da = max(0, a["rss_peak"] - a["rss_before"])
        db = max(0, b["rss_peak"] - b["rss_before"])
        slope = (db - da) / (b["arrived"] - a["arrived"])
        details = {"short": a, "long": b, "peak_delta_short": da, "peak_delta_long": db}
        if records:
            frame = b["orders_frame_bytes"] / b["arrived"]
            rows.append(
                Row(
                    "memory",
                    "per-order records: peak RSS slope",
                    "bytes/order",
                    slope,
                    target="<= 64 B",
                    status=judge_max(slope, 64.0),
                    note=(
                        f"peak RSS growth {da / 2**20:,.1f} MiB at {a['arrived']:,} orders -> "
                        f"{db / 2**20:,.1f} MiB at {b['arrived']:,}; counts everything alive at "
                        "the peak (the engine's records, the NumPy columns built from them, the "
                        "pandas DataFrame)"
                    ),
                    details={**details, "orders_frame_bytes_per_order": frame},
                )
            )
            rows.append(
                Row(
                    "memory",
                    "per-order records: kept by the Result",
                    "bytes/order",
                    frame,
                    status="INFO",
                    note="Result.orders.memory_usage(deep=True) / orders, after the run",
                    details={"orders_frame_bytes": b["orders_frame_bytes"], "orders": b["arrived"]},
                )
            )
        else:
            rows.append(
                Row(
                    "memory",
                    "summary only: peak RSS slope",
                    "bytes/order",
                    slope,
                    target="flat (< 1 B)",
                    status=judge_max(slope, 1.0),
                    note=(
                        f"peak RSS growth {da / 2**20:,.2f} MiB at {a['arrived']:,} orders, "
                        f"{db / 2**20:,.2f} MiB at {b['arrived']:,}"
                    ),
                    details=details,
                )
            )
    return rows


# ------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="short repeats and horizons (smoke test)")
    ap.add_argument(
        "--only",
        help="comma-separated groups or benchmarks: " + ", ".join(dict.fromkeys([*GROUPS, *ALL])),
    )
    ap.add_argument(
        "--json", type=Path, default=HERE / "results.json", help="where to write results"
    )
    ap.add_argument("--cpp-binary", type=Path, default=cpp_bench.DEFAULT_BINARY)
    args = ap.parse_args()
    selected = _selected(args.only)
    quick = args.quick
    min_time, repeats = (0.05, 3) if quick else (0.2, 7)

    t_start = time.time()
    print(f"reliability-lab benchmarks ({'quick' if quick else 'full'}): {', '.join(selected)}")
    print(f"reliability_lab from {_rl_info()['module']}")
    print(
        f"python {platform.python_version()} ({sys.executable}), {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )

    runners: dict[str, Callable[[], list[Row]]] = {
        "cpp": lambda: _cpp_rows(args.cpp_binary, quick),
        "breaker": lambda: py_policies.run_breaker(min_time, repeats),
        "retry": lambda: py_policies.run_retry(min_time, repeats),
        "mmc": lambda: _sim_rate_rows("mmc", quick),
        "retrying": lambda: _sim_rate_rows("retrying", quick),
        "memory": lambda: _memory_rows(quick),
        **{name: _module_runner(name, quick) for name in MODULES},
    }
    rows: list[Row] = []
    for name in selected:
        try:
            got = runners[name]()
        except Exception as e:  # one broken benchmark must not lose the others' figures
            got = [Row(name, name, "", None, status="ERROR", note=f"{type(e).__name__}: {e}")]
        print_table(TITLES[name], got)
        sys.stdout.flush()
        rows += got

    judged = [r for r in rows if r.status in ("PASS", "MISS")]
    misses = [r for r in judged if r.status == "MISS"]
    skipped = [r for r in rows if r.status == "SKIP"]
    errors = [r for r in rows if r.status == "ERROR"]
    print(
        f"\n{len(judged) - len(misses)}/{len(judged)} targets met"
        + (f"; MISS: {', '.join(f'{r.group}: {r.name}' for r in misses)}" if misses else "")
        + (f"; {len(skipped)} skipped" if skipped else "")
        + (f"; ERROR in {', '.join(r.group for r in errors)}" if errors else "")
    )

    meta = {
        "command": " ".join([os.path.relpath(sys.executable, TOP), *sys.argv]),
        "pythonpath": os.environ.get("PYTHONPATH", ""),
        "quick": quick,
        "selected": selected,
        "started": datetime.datetime.fromtimestamp(t_start, datetime.timezone.utc).isoformat(),
        "wall_s": time.time() - t_start,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "git_commit": _git_commit(),
        "reliability_lab": _rl_info(),
        "peers": {**py_policies.versions(), **sim_vs_simpy.versions()},
        "python_timing": {
            "method": "timeit, best of interleaved repeats, gc off",
            "min_time_per_repeat_s": min_time,
            "repeats": repeats,
        },
        "cpp_context": _CPP_CONTEXT,
    }
    args.json.write_text(
        json.dumps({"meta": meta, "results": [r.to_dict() for r in rows]}, indent=2) + "\n"
    )
    print(f"wrote {os.path.relpath(args.json)}")
    return 1 if errors else 0


_CPP_CONTEXT: dict[str, Any] = {}


def _module_runner(name: str, quick: bool) -> Callable[[], list[Row]]:
    """Runs bench/<module>.py's rows(quick); a module that cannot be imported is a SKIP row."""

    def run() -> list[Row]:
        try:
            module = importlib.import_module(MODULES[name])
        except ImportError as e:
            return [Row(name, name, "", None, status="SKIP", note=f"not run: {e}")]
        got: list[Row] = module.rows(quick)
        return got

    return run


def _cpp_rows(binary: Path, quick: bool) -> list[Row]:
    rows, context = cpp_bench.run(binary, quick=quick, repeats=1 if quick else 5)
    _CPP_CONTEXT.update(context)
    return rows


if __name__ == "__main__":
    sys.exit(main())
