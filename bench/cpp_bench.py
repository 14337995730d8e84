"""The C++ policy benchmarks (Google Benchmark), run as a subprocess and read back as JSON."""

from __future__ import annotations

import json
import statistics
import subprocess
from pathlib import Path
from typing import Any

from harness import Row, judge_max

DEFAULT_BINARY = Path(__file__).resolve().parent.parent / "build/bench/bench/cpp/policy_bench"

# Benchmarks with a target (issue 2): name -> max ns per operation.
TARGETS_NS = {"BM_BreakerAllowRecordClosed": 30.0}

# Readable names for the table.
LABELS = {
    "BM_BreakerAllowRecordClosed": "breaker Allow+Record, closed, uncontended",
    "BM_BreakerAllowRecordRateWindow/time_window:0": "breaker Allow+Record, count window",
    "BM_BreakerAllowRecordRateWindow/time_window:1": "breaker Allow+Record, time window",
    "BM_BreakerRejectOpen": "breaker Allow, open (rejection)",
    "BM_BreakerAllowRecordContended/threads:1": "breaker Allow+Record, shared, 1 thread",
    "BM_BreakerAllowRecordContended/threads:2": "breaker Allow+Record, shared, 2 threads",
    "BM_SteadyClockNow": "steady clock NowNs",
    "BM_RandomUniform": "RandomStream Uniform01",
    "BM_TokenBucketTryAcquireRetry": "token bucket TryAcquireRetry",
    "BM_TokenBucketOnOutcome": "token bucket OnOutcome",
    "BM_TokenBucketFailureThenAcquire": "token bucket OnOutcome (+TryAcquire per failure)",
}
_JITTER = ["none", "full", "equal", "decorrelated", "proportional"]
for _i, _j in enumerate(_JITTER):
    LABELS[f"BM_BackoffDelayNs/jitter:{_i}"] = f"BackoffDelayNs, jitter={_j}"
    LABELS[f"BM_BackoffNextDelayWithDraw/jitter:{_i}"] = f"Backoff::NextDelayNs + draw, jitter={_j}"
_LB_KINDS = ["round_robin", "random", "least_outstanding", "p2c", "peak_ewma"]
for _i, _k in enumerate(_LB_KINDS):
    LABELS[f"BM_LoadBalancerPickStartEnd/kind:{_i}"] = f"load balancer pick+start+end, {_k}, 10"
LABELS["BM_LoadBalancerWithOutlierDetector"] = "load balancer p2c + outlier detector, 10"


def _run(binary: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), "--benchmark_format=json", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def run(binary: Path, *, quick: bool, repeats: int) -> tuple[list[Row], dict[str, Any]]:
    """Runs every benchmark of ``binary``; each is repeated ``repeats`` times and reported by its
    best repeat (as the Python side), with the median in the details."""
    if not binary.exists():
        note = (
            f"{binary} is not built: bash .ci/lab bench builds it "
            "(or cmake -DRLAB_BUILD_BENCH=ON ... --target policy_bench)"
        )
        return [Row("cpp", "C++ policy benchmarks", "ns", None, status="SKIP", note=note)], {}
    args = [f"--benchmark_repetitions={repeats}"]
    min_time = "0.05" if quick else "0.2"
    proc = _run(binary, [*args, f"--benchmark_min_time={min_time}"])
    if proc.returncode != 0 and "min_time" in proc.stderr:  # newer releases want "0.2s"
        proc = _run(binary, [*args, f"--benchmark_min_time={min_time}s"])
    if proc.returncode != 0:
        raise RuntimeError(f"{binary} failed ({proc.returncode}):\n{proc.stderr}")
    data = json.loads(proc.stdout)
    per_name: dict[str, list[float]] = {}
    order: list[str] = []
    for b in data["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        name = b.get("run_name", b["name"])
        scale = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
        if name not in per_name:
            per_name[name] = []
            order.append(name)
        per_name[name].append(float(b["real_time"]) * scale)
    rows = []
    for name in order:
        times = per_name[name]
        best = min(times)
        target = TARGETS_NS.get(name)
        rows.append(
            Row(
                group="cpp",
                name=LABELS.get(name, name),
                unit="ns",
                ours=best,
                target=f"<= {target:g} ns" if target is not None else "",
                status=judge_max(best, target) if target is not None else "INFO",
                details={
                    "benchmark": name,
                    "best_ns": best,
                    "median_ns": statistics.median(times),
                    "repeats": len(times),
                },
            )
        )
    return rows, data.get("context", {})
