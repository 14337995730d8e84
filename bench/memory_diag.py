#!/usr/bin/env python3
"""Where the service's RSS goes: ``serve`` under the memory benchmark's load, with its memory
mappings sampled from ``/proc/PID/smaps`` and grouped by kind.

    python bench/memory_diag.py [--minutes M] [--rate R] [--every S] [--json PATH]

Kinds: ``heap`` (the brk heap: glibc's main arena), ``stack`` (the main thread's), ``thread
stacks`` (anonymous read-write mappings just above a guard page: what pthread_create maps),
``arenas`` (anonymous mappings inside 64 MiB-aligned reservations: glibc's per-thread arenas),
``anon`` (other anonymous mappings: large mallocs, Python's arenas, ...), ``shm`` (shared file
mappings such as SQLite's -shm WAL index) and ``file`` (private file mappings: code and data of
libraries). Each sample also carries ``/debug/internals`` and ``/debug/pprof/heap`` (the service
runs with an admin token). A diagnostic, not a benchmark: nothing is judged.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TOKEN = "token-123456"
ARENA_ALIGN = 64 << 20  # glibc's HEAP_MAX_SIZE on 64-bit


def smaps_by_kind(pid: int) -> dict[str, float]:
    """RSS in bytes per kind of mapping (see the module docstring), plus counts."""
    maps: list[tuple[int, int, str, str, int]] = []
    try:
        with open(f"/proc/{pid}/smaps") as f:
            cur: list[Any] | None = None
            for line in f:
                first = line.split(None, 1)[0]
                if "-" in first and not first.endswith(":"):
                    parts = line.split()
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    name = parts[5] if len(parts) > 5 else ""
                    cur = [lo, hi, parts[1], name, 0]
                    maps.append(cur)  # type: ignore[arg-type]
                elif first == "Rss:" and cur is not None:
                    cur[4] = int(line.split()[1]) * 1024
    except OSError:
        return {}
    out: dict[str, float] = {}
    counts: dict[str, int] = {}
    for i, (lo, hi, perms, name, rss) in enumerate(maps):
        if name == "[heap]":
            kind = "heap"
        elif name == "[stack]":
            kind = "stack"
        elif name.startswith("["):
            kind = "other"
        elif name:
            kind = "shm" if perms[3] == "s" else "file"
        else:
            prev = maps[i - 1] if i > 0 else None
            nxt = maps[i + 1] if i + 1 < len(maps) else None
            guard_below = prev is not None and prev[1] == lo and prev[2].startswith("---")
            arena = lo % ARENA_ALIGN == 0 and (
                hi - lo == ARENA_ALIGN
                or (nxt is not None and nxt[0] == hi and nxt[2].startswith("---") and not nxt[3])
            )
            if perms.startswith("---"):
                kind = "reserved"
            elif arena:
                kind = "arenas"
            elif guard_below and 1 << 20 <= hi - lo <= 16 << 20:
                kind = "thread stacks"
            else:
                kind = "anon"
        out[kind] = out.get(kind, 0.0) + rss
        counts[kind] = counts.get(kind, 0) + 1
    for k, n in counts.items():
        out[f"n {k}"] = float(n)
    return out


def top_anon(pid: int, n: int = 12) -> list[tuple[str, int, int]]:
    """The largest mappings by RSS: (range + perms + name, size, rss)."""
    rows: list[tuple[str, int, int]] = []
    with open(f"/proc/{pid}/smaps") as f:
        head = ""
        size = 0
        for line in f:
            first = line.split(None, 1)[0]
            if "-" in first and not first.endswith(":"):
                head = " ".join(line.split()[:2] + line.split()[5:6])
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                size = hi - lo
            elif first == "Rss:":
                rows.append((head, size, int(line.split()[1]) * 1024))
    rows.sort(key=lambda r: -r[2])
    return rows[:n]


def _get(url: str) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())
    except Exception as e:  # a diagnostic keeps going
        return {"error": str(e)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--every", type=float, default=15.0)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for the service")
    a = p.parse_args()

    import service_bench
    from reliability_lab.service.harness import ServiceProcess

    seconds = a.minutes * 60
    tmp = Path(tempfile.mkdtemp(prefix="rlab-mem-diag-"))
    samples: list[dict[str, Any]] = []
    try:
        db = tmp / "orders.sqlite3"
        scenario = service_bench._bench_scenario(tmp / "scenario.json")
        env = {"RLAB_ADMIN_TOKEN": TOKEN}
        env.update(dict(kv.split("=", 1) for kv in a.env))
        svc = ServiceProcess(
            database=str(db),
            workdir=tmp,
            env=env,
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
        assert svc.proc is not None
        pid = svc.proc.pid
        stop = threading.Event()

        def loop() -> None:
            t0 = time.monotonic()
            while True:
                t = time.monotonic() - t0
                row: dict[str, Any] = {"t": round(t, 1), "smaps": smaps_by_kind(pid)}
                row["internals"] = _get(svc.url + "/debug/internals")
                row["heap"] = _get(svc.url + "/debug/pprof/heap")
                samples.append(row)
                s = row["smaps"]
                mib = {k: round(v / 2**20, 1) for k, v in s.items() if not k.startswith("n ")}
                cnt = {k: int(v) for k, v in s.items() if k.startswith("n ")}
                eng = row["internals"].get("engine", {})
                extra = {
                    "ledger": eng.get("ledger", {}).get("tracked"),
                    "sqlite": (row["heap"].get("sqlite") or {}).get("memory_used_bytes"),
                    "malloc": row["heap"].get("malloc"),
                    "rss": row["heap"].get("process", {}).get("rss_bytes"),
                }
                print(f"{t:6.0f}s {mib} {cnt} {extra}", flush=True)
                if stop.wait(a.every):
                    return

        th = threading.Thread(target=loop, daemon=True)
        th.start()
        try:
            load = service_bench.run_python_client(
                svc.url, 32, seconds, f"d{time.time_ns()}", a.rate
            )
            print("load", {k: load[k] for k in ("accepted", "rejected", "seconds")}, flush=True)
            for row in top_anon(pid, 25):
                print("top", row, flush=True)
            samples.append({"t": "end", "internals": _get(svc.url + "/debug/internals")})
        finally:
            stop.set()
            th.join()
            svc.stop(timeout=60)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        a.json.write_text(json.dumps(samples, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
