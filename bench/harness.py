"""Shared pieces of the benchmark suite: result rows, timeit-style timing, the printed tables."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import timeit
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Row:
    """One benchmark's outcome: ours against a peer (or against an absolute target).

    ``ratio`` is always "how many times better ours is": peer/ours for costs (ns/op, bytes),
    ours/peer for rates (orders/s). ``status`` is PASS, MISS, INFO (no target) or SKIP.
    """

    group: str
    name: str
    unit: str
    ours: float | None
    peer: float | None = None
    peer_name: str = ""
    ratio: float | None = None
    target: str = ""
    status: str = "INFO"
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("ours", "peer", "ratio"):
            v = d[k]
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None
        return d


def judge_ratio(ratio: float | None, minimum: float) -> str:
    if ratio is None or not math.isfinite(ratio):
        return "SKIP"
    return "PASS" if ratio >= minimum else "MISS"


def judge_max(value: float | None, maximum: float) -> str:
    if value is None or not math.isfinite(value):
        return "SKIP"
    return "PASS" if value <= maximum else "MISS"


# ------------------------------------------------------------------------------------------------
# Timing (the timeit method: a statement in a compiled loop, best of N repeats)


@dataclass
class Timing:
    """Seconds per execution of a statement: the best repeat (timeit's convention: the least
    disturbed one) and the median, with the loop count of each repeat."""

    best: float
    median: float
    number: int
    repeats: int
    all_s_per_op: list[float]

    def as_details(self, prefix: str) -> dict[str, Any]:
        return {
            f"{prefix}_best_ns": self.best * 1e9,
            f"{prefix}_median_ns": self.median * 1e9,
            f"{prefix}_number": self.number,
            f"{prefix}_repeats": self.repeats,
        }


def _calibrate(timer: timeit.Timer, min_time: float, max_number: int | None) -> int:
    """The loop count that makes one repeat last about ``min_time`` seconds."""
    number = 10
    while True:
        t = timer.timeit(number)
        if t >= min_time / 4 or (max_number is not None and number >= max_number):
            break
        number *= 10
    number = max(1, int(number * min_time / max(t, 1e-9)))
    if max_number is not None:
        number = min(number, max_number)
    return number


def time_pair(
    ours: str,
    peer: str,
    namespace: dict[str, Any],
    *,
    setup_ours: str = "pass",
    setup_peer: str = "pass",
    min_time: float,
    repeats: int,
    max_number: int | None = None,
) -> tuple[Timing, Timing]:
    """Times two statements in the same process, their repeats interleaved (ours, peer, ours,
    ...) so that a burst of background load hits both. ``setup_*`` runs before each repeat,
    outside the timed loop. As in timeit, the garbage collector is off while timing."""
    t_ours = timeit.Timer(ours, setup_ours, globals=namespace)
    t_peer = timeit.Timer(peer, setup_peer, globals=namespace)
    n_ours = _calibrate(t_ours, min_time, max_number)
    n_peer = _calibrate(t_peer, min_time, max_number)
    ours_s: list[float] = []
    peer_s: list[float] = []
    for _ in range(repeats):
        ours_s.append(t_ours.timeit(n_ours) / n_ours)
        peer_s.append(t_peer.timeit(n_peer) / n_peer)
    return _timing(ours_s, n_ours), _timing(peer_s, n_peer)


def _timing(per_op: list[float], number: int) -> Timing:
    return Timing(min(per_op), statistics.median(per_op), number, len(per_op), per_op)


def best_of(fn: Callable[[], float], repeats: int) -> tuple[float, list[float]]:
    """Calls ``fn`` (which returns a measured rate) ``repeats`` times; the best and all values."""
    values = [fn() for _ in range(repeats)]
    return max(values), values


# ------------------------------------------------------------------------------------------------
# Output


def fmt(value: float | None, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if unit in ("ns/op", "ns"):
        if value >= 1e4:
            return f"{value / 1e3:,.1f} us"
        return f"{value:,.1f} ns"
    if unit == "orders/s":
        if value >= 1e6:
            return f"{value / 1e6:,.2f} M/s"
        return f"{value / 1e3:,.1f} k/s"
    if unit == "bytes/order":
        return f"{value:,.1f} B"
    return f"{value:,.4g} {unit}"


def print_table(title: str, rows: Iterable[Row]) -> None:
    rows = list(rows)
    if not rows:
        return
    names = list(dict.fromkeys(r.peer_name for r in rows if r.peer_name))
    # Rows against different peers (e.g. SimPy and the C++ floor) share a neutral header; each
    # such row names its peer.
    peer_name = names[0] if len(names) == 1 else ("peer" if names else "")
    head = ["benchmark", "ours", peer_name, "ratio", "target", "result"]
    body = []
    for r in rows:
        ratio = "-"
        if r.ratio is not None and math.isfinite(r.ratio):
            # Two decimals below 10x: ratios against a floor (target 0.85x) need them.
            ratio = f"{r.ratio:,.2f}x" if r.ratio < 10 else f"{r.ratio:,.1f}x"
        body.append(
            [r.name, fmt(r.ours, r.unit), fmt(r.peer, r.unit), ratio, r.target or "-", r.status]
        )
    if not peer_name:  # an absolute benchmark (C++, memory): no peer or ratio columns
        head = [h for i, h in enumerate(head) if i not in (2, 3)]
        body = [[c for i, c in enumerate(b) if i not in (2, 3)] for b in body]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}")
    print(line)
    for cells in (head, None, *body):
        if cells is None:
            print(line)
            continue
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
        )
    print(line)
    for r in rows:
        if r.note:
            print(f"  * {r.name}: {r.note}")


def run_probe(script: str, *args: str) -> dict[str, Any]:
    """Runs ``script --memory-probe ARGS`` in a fresh interpreter and returns the JSON object on
    its last line of output: a memory probe must not see the parent's heap."""
    cmd = [sys.executable, script, "--memory-probe", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=os.environ.copy())
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe failed:\n{proc.stderr}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out
