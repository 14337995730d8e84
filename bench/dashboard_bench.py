#!/usr/bin/env python3
"""What one control-room client costs the order service.

    python bench/dashboard_bench.py [--quick] [--duration S] [--rounds N]

Starts ``python -m reliability_lab.service`` on SQLite (the scenario of service_bench.py) and
measures it with and without one client on ``GET /dashboard/stream`` (the Server-Sent Events the
page reads, 2 Hz), the two conditions interleaved ``--rounds`` times:

* at 1,000 orders/s offered (open loop, the asyncio client of service_bench.py in its own
  process, 32 connections): orders accepted per second, and the server's CPU time per accepted
  order (``/proc/PID/stat``);
* at the peak (wrk, 32 keep-alive connections, closed loop): orders accepted per second.

The figure is the throughput with the client over the throughput without (best round of each;
target >= 0.95, i.e. the dashboard costs < 5%). The client reads the stream from a thread of
this process, as a browser would from its own machine.

``rows(quick)`` returns the result rows for bench/run.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import Row, judge_ratio, print_table  # noqa: E402
from service_bench import _bench_scenario, run_python_client, run_wrk  # noqa: E402

RATE = 1000.0
TARGET_RATIO = 0.95  # the dashboard may cost at most 5% of the throughput


class StreamClient:
    """Reads ``/dashboard/stream`` from a thread until stopped; counts the snapshots."""

    def __init__(self, url: str) -> None:
        self.url = url + "/dashboard/stream"
        self.snapshots = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import httpx

        with httpx.stream("GET", self.url, timeout=30) as r:
            for line in r.iter_lines():
                if line.startswith("event: snapshot"):
                    self.snapshots += 1
                if self._stop.is_set():
                    return

    def __enter__(self) -> StreamClient:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(duration: float, rounds: int, warmup: float) -> dict[str, Any]:
    from reliability_lab.service.harness import ServiceProcess

    tmp = Path(tempfile.mkdtemp(prefix="rlab-dash-bench-"))
    runs: list[dict[str, Any]] = []
    try:
        svc = ServiceProcess(
            database=str(tmp / "orders.sqlite3"),
            workdir=tmp,
            args=[
                "--scenario",
                str(_bench_scenario(tmp / "scenario.json")),
                "--log-level",
                "warning",
                "--ledger",
                str(tmp / "ledger"),
                "--shutdown-budget",
                "2",
            ],
        ).start()
        try:
            assert svc.proc is not None
            pid = svc.proc.pid
            tag = f"d{time.time_ns()}"
            run_python_client(svc.url, 16, warmup, tag + "w", RATE)
            for i in range(rounds):
                for watched in (False, True) if i % 2 == 0 else (True, False):
                    client = StreamClient(svc.url) if watched else None
                    if client is not None:
                        client.__enter__()
                        time.sleep(1.0)  # connected and receiving
                    try:
                        cpu0 = _cpu_s(pid)
                        name = f"{tag}p{i}{watched}"
                        paced = run_python_client(svc.url, 32, duration, name, RATE)
                        cpu = _cpu_s(pid) - cpu0
                        peak = run_wrk(svc.url, 32, duration, f"{tag}k{i}{watched}")
                    finally:
                        if client is not None:
                            client.__exit__()
                    runs.append(
                        {
                            "dashboard_client": watched,
                            "paced_accepted_per_s": paced["accepted"] / paced["seconds"],
                            "paced_p99_ms": paced["p99_ms"],
                            "cpu_ms_per_order": 1e3 * cpu / max(1, paced["accepted"]),
                            "peak_accepted_per_s": peak["accepted"] / peak["seconds"],
                            "snapshots_received": None if client is None else client.snapshots,
                        }
                    )
        finally:
            rc = svc.stop(timeout=60)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"runs": runs, "exit_code": rc, "duration_s": duration, "rounds": rounds}


def rows(quick: bool, duration: float | None = None, rounds: int | None = None) -> list[Row]:
    """Throughput with one dashboard client over throughput without, at 1,000 orders/s offered
    and at the peak; the server's CPU per order, with and without."""
    if shutil.which("wrk") is None:
        return [Row("dashboard", "service throughput", "ratio", None, status="SKIP",
                    note="wrk is not installed")]  # fmt: skip
    duration = duration if duration is not None else (4.0 if quick else 8.0)
    rounds = rounds if rounds is not None else (1 if quick else 2)
    r = measure(duration, rounds, warmup=1.0 if quick else 2.0)
    runs = r["runs"]

    def best(key: str, watched: bool, low: bool = False) -> float:
        vals = [x[key] for x in runs if x["dashboard_client"] is watched]
        return min(vals) if low else max(vals)

    out = []
    for key, what in (("paced_accepted_per_s", f"at {RATE:,.0f}/s offered"),
                      ("peak_accepted_per_s", "at the peak (wrk, closed loop)")):  # fmt: skip
        without, with_ = best(key, False), best(key, True)
        ratio = with_ / without
        out.append(
            Row(
                "dashboard",
                f"accepted orders/s {what}, with one dashboard client / without",
                "ratio",
                ratio,
                target=f">= {TARGET_RATIO:g}",
                status=judge_ratio(ratio, TARGET_RATIO),
                note=f"{with_:,.0f}/s with, {without:,.0f}/s without; best of {rounds} rounds "
                f"of {duration:g} s, interleaved",
                details=r,
            )
        )
    cpu_without = best("cpu_ms_per_order", False, low=True)
    cpu_with = best("cpu_ms_per_order", True, low=True)
    out.append(
        Row(
            "dashboard",
            f"server CPU per accepted order at {RATE:,.0f}/s, with one client / without",
            "ratio",
            cpu_with / cpu_without,
            status="INFO",
            note=f"{cpu_with:.3f} ms with, {cpu_without:.3f} ms without (lower of the rounds)",
        )
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--duration", type=float, default=None, help="seconds per run (default 8)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 2)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    a = p.parse_args(argv)
    got = rows(a.quick, a.duration, a.rounds)
    print_table("The control room's cost: the service with one dashboard client / without", got)
    for row in got:
        if row.ours is not None:
            print(f"{row.name}: {row.ours:.3f}")
    if a.json:
        a.json.write_text(json.dumps([r.to_dict() for r in got], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
