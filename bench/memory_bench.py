#!/usr/bin/env python3
"""Memory of long live runs: RSS sampled over a steady run, for ``rl.Lab`` and for ``serve``.

    python bench/memory_bench.py [--minutes M] [--rate R] [--part lab,serve] [--sample S]
                                 [--quick] [--json PATH]

Lab part: two runs side by side, each in its own process (sampled from outside through
/proc/PID/status): ``plain``, the scenario's C++ open-loop load generator (Poisson, ``--rate``
orders/s) against a payment dependency with 5 ms mean latency, 5% failures, retries and a
breaker, charging without caller keys; and ``keys``, the same lab driven from a Python thread
that submits each order with its own idempotency key (a fresh string per order) at ``--rate``,
with a durable ledger file (what the service does). Both run with ``record_orders=False`` and
the default history sizes (``retain_orders`` 100,000, ``idempotency_window`` 100,000): the
configuration of a long run with bounded memory.

Serve part: ``python -m reliability_lab.service`` on SQLite (as bench/service_bench.py starts
it), driven over HTTP by an open-loop asyncio client in its own process (32 keep-alive
connections, ``--rate`` orders/s, so at most 32 requests outstanding); the server's RSS and the
database and -wal file sizes are sampled.

Reported per run: RSS growth between minute 2 and minute M (the target: < 5%), in percent; the
slope in bytes per order over the same span; and the RSS at both ends. ``--quick`` runs 40 s
per part and compares 20% of the run with its end (figures INFO, not judged: the retained
history is not full yet); so does a run shorter than 3 minutes.

``rows(quick)`` returns the result rows for bench/run.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import Row, judge_max, print_table  # noqa: E402

TARGET_GROWTH_PCT = 5.0
DEFAULT_RATE = 1000.0


def rss_bytes(pid: int) -> int | None:
    """The process's resident set size, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class Sampler:
    """Samples a process's RSS (and optionally file sizes) every ``every`` seconds."""

    def __init__(self, pid: int, every: float, files: dict[str, Path] | None = None) -> None:
        self.pid = pid
        self.every = every
        self.files = files or {}
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> Sampler:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def _loop(self) -> None:
        while True:
            rss = rss_bytes(self.pid)
            if rss is None:
                return
            row: dict[str, float] = {"t": time.monotonic() - self._t0, "rss": float(rss)}
            for name, path in self.files.items():
                try:
                    row[name] = float(path.stat().st_size)
                except OSError:
                    row[name] = 0.0
            self.samples.append(row)
            if self._stop.wait(self.every):
                return

    def stop(self) -> list[dict[str, float]]:
        self._stop.set()
        self._thread.join()
        return self.samples


def growth(samples: list[dict[str, float]], t_from: float, orders_per_s: float) -> dict[str, Any]:
    """RSS growth from the first sample at or after ``t_from`` to the last sample."""
    later = [s for s in samples if s["t"] >= t_from]
    if len(later) < 2:
        return {"ok": False, "why": f"fewer than 2 samples after {t_from:g} s"}
    a, b = later[0], later[-1]
    span = b["t"] - a["t"]
    return {
        "ok": True,
        "from_s": a["t"],
        "to_s": b["t"],
        "rss_from": a["rss"],
        "rss_to": b["rss"],
        "rss_first": samples[0]["rss"],
        "rss_max": max(s["rss"] for s in later),
        "growth_pct": 100.0 * (b["rss"] - a["rss"]) / a["rss"],
        "bytes_per_order": (b["rss"] - a["rss"]) / max(1.0, orders_per_s * span),
    }


# ------------------------------------------------------------------------------------------------
# rl.Lab


def lab_scenario(rate: float, seconds: float) -> Any:
    import reliability_lab as rl

    payment = rl.Dependency(
        "payment",
        faults=rl.Faults(latency=rl.Exponential(0.005), failure_rate=0.05),
        retry=rl.RetryConfig(max_attempts=3, backoff=rl.Backoff(initial=0.01, max_delay=0.1)),
        breaker=rl.Breaker(consecutive_failures=0, failure_rate_threshold=0.5, open_for=5.0),
        attempt_timeout=0.5,
        charges=True,
        idempotency_keys=True,
    )
    return rl.Scenario(
        arrivals=rl.Poisson(rate=rate),
        workers=32,
        queue_capacity=4096,
        duration=seconds,
        seed=7,
        sample_every=1.0,
        record_orders=False,
        dependencies=[payment],
    )


def lab_child(mode: str, rate: float, seconds: float) -> int:
    """One Lab run (in this process); prints its outcome as one JSON line."""
    from reliability_lab.live import Lab

    tmp = Path(tempfile.mkdtemp(prefix="rlab-mem-"))
    kwargs: dict[str, Any] = {"shutdown_timeout": 10.0}
    if mode == "keys":
        kwargs["ledger_path"] = tmp / "ledger"
    try:
        with Lab(lab_scenario(rate, seconds), **kwargs) as lab:
            if mode == "plain":
                lab.start_load()
                while lab.load_running:
                    time.sleep(0.5)
            else:
                # Paced in 10 ms steps: each step submits what the schedule owes (open loop).
                t0 = time.monotonic()
                n = 0
                while True:
                    now = time.monotonic() - t0
                    if now >= seconds:
                        break
                    due = int(now * rate)
                    while n < due:
                        lab.submit(idempotency_key=f"order-{n}-{os.getpid()}")
                        n += 1
                    time.sleep(0.01)
            internals = lab.internals()
        s = lab.result.summary
        out = {
            "mode": mode,
            "arrived": int(s["arrived"]),
            "completed": int(s["completed"]),
            "failed": int(s["failed"]),
            "rejected": int(s["rejected"]),
            "memory": internals["memory"],
            "ledger": internals["ledger"],
            "ledger_file_bytes": (tmp / "ledger").stat().st_size if mode == "keys" else 0,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out))
    return 0


def measure_lab(
    modes: list[str], rate: float, seconds: float, every: float
) -> list[dict[str, Any]]:
    """Runs the Lab modes side by side, each in its own process, sampling their RSS."""
    procs = []
    for mode in modes:
        p = subprocess.Popen(
            [sys.executable, __file__, "--lab-child", mode, str(rate), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append((mode, p, Sampler(p.pid, every).start()))
    out = []
    for mode, p, sampler in procs:
        stdout, _ = p.communicate(timeout=seconds + 300)
        samples = sampler.stop()
        if p.returncode != 0:
            raise RuntimeError(f"lab child {mode} exited with {p.returncode}")
        child = json.loads(stdout.strip().splitlines()[-1])
        out.append({"mode": mode, "child": child, "samples": samples})
    return out


# ------------------------------------------------------------------------------------------------
# reliability-lab serve


def measure_serve(rate: float, seconds: float, every: float) -> dict[str, Any]:
    """The service on SQLite, driven open-loop over HTTP; its RSS and file sizes sampled."""
    import service_bench
    from reliability_lab.service.harness import ServiceProcess

    tmp = Path(tempfile.mkdtemp(prefix="rlab-mem-svc-"))
    try:
        db = tmp / "orders.sqlite3"
        scenario = service_bench._bench_scenario(tmp / "scenario.json")
        svc = ServiceProcess(
            database=str(db),
            workdir=tmp,
            args=[
                "--scenario",
                str(scenario),
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
            files = {"db": db, "wal": Path(str(db) + "-wal"), "ledger": tmp / "ledger"}
            sampler = Sampler(svc.proc.pid, every, files).start()
            load = service_bench.run_python_client(svc.url, 32, seconds, f"m{time.time_ns()}", rate)
            samples = sampler.stop()
        finally:
            rc = svc.stop(timeout=60)
        return {"exit_code": rc, "load": load, "samples": samples}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------------


def _mib(b: float) -> str:
    return f"{b / 2**20:,.1f} MiB"


def _growth_rows(
    name: str, g: dict[str, Any], quick: bool, note: str, details: dict[str, Any]
) -> list[Row]:
    if not g["ok"]:
        return [Row("live_memory", name, "%", None, status="SKIP", note=g["why"], details=details)]
    span = f"{g['from_s'] / 60:.1f} -> {g['to_s'] / 60:.1f} min"
    return [
        Row(
            "live_memory",
            f"{name}: RSS growth {span}",
            "%",
            g["growth_pct"],
            target=f"< {TARGET_GROWTH_PCT:g}%",
            status="INFO" if quick else judge_max(g["growth_pct"], TARGET_GROWTH_PCT),
            note=f"RSS {_mib(g['rss_from'])} -> {_mib(g['rss_to'])}; {note}",
            details={**details, "growth": g},
        ),
        Row(
            "live_memory",
            f"{name}: RSS slope {span}",
            "bytes/order",
            g["bytes_per_order"],
            status="INFO",
            note=f"first sample {_mib(g['rss_first'])}, max after warm-up {_mib(g['rss_max'])}",
        ),
    ]


def rows(
    quick: bool,
    parts: list[str] | None = None,
    minutes: float | None = None,
    rate: float = DEFAULT_RATE,
    every: float | None = None,
) -> list[Row]:
    parts = parts or ["lab", "serve"]
    seconds = 60.0 * minutes if minutes is not None else (40.0 if quick else 600.0)
    every = every if every is not None else (2.0 if quick else 5.0)
    # Minute 2 (the histories of 100,000 orders are full by then at 1,000/s), or 20% of a run
    # too short for that.
    t_from = 120.0 if not quick and seconds >= 180 else 0.2 * seconds
    out: list[Row] = []
    if "lab" in parts:
        for run in measure_lab(["plain", "keys"], rate, seconds, every):
            c = run["child"]
            g = growth(run["samples"], t_from, c["arrived"] / seconds)
            label = {
                "plain": "rl.Lab, C++ load generator, no caller keys",
                "keys": "rl.Lab, caller idempotency keys + ledger file",
            }[run["mode"]]
            note = (
                f"{c['arrived']:,} orders at {rate:g}/s ({c['completed']:,} completed, "
                f"{c['failed']:,} failed, {c['rejected']:,} rejected); memory {c['memory']}"
            )
            out += _growth_rows(label, g, quick, note, {"child": c, "samples": run["samples"]})
    if "serve" in parts:
        r = measure_serve(rate, seconds, every)
        load = r["load"]
        accepted_per_s = load["accepted"] / max(1e-9, load["seconds"])
        g = growth(r["samples"], t_from, accepted_per_s)
        last = r["samples"][-1] if r["samples"] else {}
        note = (
            f"{load['accepted']:,} accepted ({accepted_per_s:,.0f}/s, {load['rejected']:,} "
            f"non-202, p99 {load['p99_ms']:.1f} ms); at the end db {_mib(last.get('db', 0))}, "
            f"wal {_mib(last.get('wal', 0))}, ledger {_mib(last.get('ledger', 0))}"
        )
        out += _growth_rows("serve on SQLite", g, quick, note, r)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--lab-child":
        return lab_child(argv[1], float(argv[2]), float(argv[3]))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="40 s per part, figures not judged")
    p.add_argument("--minutes", type=float, default=None, help="run length (default 10)")
    p.add_argument("--rate", type=float, default=DEFAULT_RATE, help="orders/s (default 1000)")
    p.add_argument("--part", default="lab,serve", help="lab, serve or both (default)")
    p.add_argument("--sample", type=float, default=None, help="seconds between RSS samples")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    a = p.parse_args(argv)
    got = rows(
        a.quick,
        [x.strip() for x in a.part.split(",") if x.strip()],
        a.minutes,
        a.rate,
        a.sample,
    )
    print_table("Live memory over a steady run: RSS growth and slope", got)
    if a.json:
        a.json.write_text(json.dumps([r.to_dict() for r in got], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
