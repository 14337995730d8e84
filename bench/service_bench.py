#!/usr/bin/env python3
"""The HTTP order service on loopback: accepted orders per second and accept latency.

    python bench/service_bench.py [--quick] [--db sqlite,postgresql] [--connections N] [--rate R]
                                  [--duration S] [--client wrk|python]

For each store (SQLite in a temp file; PostgreSQL started in a temp dir with fsync and
synchronous_commit on), starts ``python -m reliability_lab.service`` on a free loopback port and
drives ``POST /orders`` (each with a fresh Idempotency-Key) from a separate process: wrk (Debian's
``wrk``, with a small Lua script) when installed, else a minimal asyncio HTTP/1.1 client. The load
is closed-loop: N keep-alive connections, each sending its next order when the previous answer
arrives. A POST is answered 202 only once the order's row is committed, so the latency measured is
the durable accept latency. Targets: >= 1,000 accepted orders/s with p99 <= 50 ms.

``rows(quick)`` returns the result rows for bench/run.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import Row, judge_max, judge_ratio, print_table  # noqa: E402

TARGET_RATE = 1000.0  # accepted orders per second
TARGET_P99_MS = 50.0
BODY = b'{"customer_id":"bench","amount_cents":1250,"currency":"EUR"}'

_LUA = r"""
-- POST /orders with a fresh Idempotency-Key per request (unique per wrk thread and run).
local counter = 0
local prefix = ""
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  prefix = string.format("%s-%d-", args[1] or "run", tid or 0)
end

request = function()
  counter = counter + 1
  return wrk.format("POST", "/orders", {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = prefix .. counter,
  }, '{"customer_id":"bench","amount_cents":1250,"currency":"EUR"}')
end
"""


def _bench_scenario(path: Path) -> Path:
    """The seed payment lab (30% failures, retries, breaker), with 20 ms mean payments and
    enough workers and queue that the engine is not what limits intake."""
    from reliability_lab.service.config import default_scenario

    sc = default_scenario()
    d = sc.to_dict()
    d["workers"] = 128
    d["queue_capacity"] = 65536
    d["dependencies"][0]["faults"]["latency"] = {"type": "exponential", "mean": 0.02}
    path.write_text(json.dumps(d))
    return path


# ------------------------------------------------------------------------------------------------
# Load generators


def _parse_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"cannot parse wrk latency {text!r}")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}[unit]


def run_wrk(url: str, connections: int, duration: float, tag: str) -> dict[str, Any]:
    """wrk, one thread, ``connections`` connections; parsed figures."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_LUA)
        script = f.name
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                "--latency",
                "--timeout",
                "10s",
                "-s",
                script,
                url,
                "--",
                tag,
            ],
            capture_output=True,
            text=True,
            timeout=duration + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(script)
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out)
    assert m is not None
    secs = float(m.group(2)) * {"ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(3)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    rejected = int(non2xx.group(1)) if non2xx else 0
    return {
        "client": "wrk",
        "requests": int(m.group(1)),
        "accepted": int(m.group(1)) - rejected,
        "rejected": rejected,
        "seconds": secs,
        "p50_ms": _parse_ms(lat["50"]),
        "p90_ms": _parse_ms(lat["90"]),
        "p99_ms": _parse_ms(lat["99"]),
        "socket_errors": errors.group(1).strip() if errors else "",
    }


async def _py_load(
    host: str, port: int, connections: int, duration: float, tag: str, rate: float
) -> dict[str, Any]:
    """A minimal keep-alive HTTP/1.1 client over ``connections`` connections.

    ``rate`` > 0: open loop. Each connection owns a fixed schedule (together ``rate`` requests
    per second); a request's latency runs from its *scheduled* send time, so a stalled server is
    charged for the requests it delayed (no coordinated omission). ``rate`` = 0: closed loop.
    """
    latencies: list[float] = []
    codes: dict[int, int] = {}
    start = time.perf_counter() + 0.05
    deadline = start + duration
    interval = connections / rate if rate > 0 else 0.0

    async def one(cid: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        n = 0
        try:
            while True:
                scheduled = start + (n + cid / connections) * interval if rate > 0 else 0.0
                if rate > 0:
                    if scheduled >= deadline:
                        break
                    delay = scheduled - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                elif time.perf_counter() >= deadline:
                    break
                n += 1
                key = f"{tag}-{cid}-{n}".encode()
                req = (
                    b"POST /orders HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                    b"Idempotency-Key: "
                    + key
                    + b"\r\nContent-Length: "
                    + str(len(BODY)).encode()
                    + b"\r\n\r\n"
                    + BODY
                )
                t0 = scheduled if rate > 0 else time.perf_counter()
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                m = re.search(rb"(?i)content-length: (\d+)", head)
                await reader.readexactly(int(m.group(1)) if m else 0)
                latencies.append(time.perf_counter() - t0)
                codes[status] = codes.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(one(i) for i in range(connections)))
    secs = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e3

    accepted = codes.get(202, 0)
    return {
        "client": "python-asyncio" + (f" open loop {rate:g}/s" if rate > 0 else " closed loop"),
        "requests": len(latencies),
        "accepted": accepted,
        "rejected": len(latencies) - accepted,
        "seconds": secs,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] * 1e3,
        "codes": {str(k): v for k, v in codes.items()},
    }


def run_python_client(
    url: str, connections: int, duration: float, tag: str, rate: float = 0.0
) -> dict[str, Any]:
    """The asyncio client in its own process (so it does not share the server's GIL)."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--client-only",
            url,
            str(connections),
            str(duration),
            tag,
            str(rate),
        ],
        capture_output=True,
        text=True,
        timeout=duration + 120,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# ------------------------------------------------------------------------------------------------
# One store


def measure(
    db: str, *, duration: float, connections: int, client: str, warmup: float, rate: float
) -> dict[str, Any]:
    """Starts the service on ``db`` (``sqlite`` or ``postgresql``) and measures it twice: the
    most it accepts (closed loop, ``connections`` connections, ``client``) and the accept
    latency at ``rate`` orders/s offered (open loop, the asyncio client)."""
    from reliability_lab.service.harness import ServiceProcess, TempPostgres

    tmp = Path(tempfile.mkdtemp(prefix="rlab-svc-bench-"))
    pg: TempPostgres | None = None
    try:
        if db == "sqlite":
            database = str(tmp / "orders.sqlite3")
        else:
            pg = TempPostgres(fsync=True).start()
            database = pg.create_database("bench")
        scenario = _bench_scenario(tmp / "scenario.json")
        svc = ServiceProcess(
            database=database,
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
            tag = f"b{time.time_ns()}"
            if warmup > 0:
                run_python_client(svc.url, 16, warmup, tag + "w", rate)
            paced = run_python_client(svc.url, 32, duration, tag + "p", rate)
            if client == "wrk":
                peak = run_wrk(svc.url, connections, duration, tag)
            else:
                peak = run_python_client(svc.url, connections, duration, tag)
        finally:
            rc = svc.stop(timeout=60)
        for r in (paced, peak):
            r["accepted_per_s"] = r["accepted"] / r["seconds"]
        return {
            "database": db,
            "exit_code": rc,
            "paced": paced,
            "peak": peak,
            "connections": connections,
            "duration_s": duration,
            "rate": rate,
        }
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def rows(
    quick: bool,
    dbs: list[str] | None = None,
    connections: int = 32,
    client: str | None = None,
    duration: float | None = None,
    rate: float = TARGET_RATE,
) -> list[Row]:
    """Bench rows per store: peak accepted orders/s (closed loop) and p50/p99 accept latency
    at ``rate`` orders/s offered (open loop)."""
    from reliability_lab.service.harness import find_pg_bin

    dbs = dbs or ["sqlite", "postgresql"]
    client = client or ("wrk" if shutil.which("wrk") else "python")
    duration = duration if duration is not None else (4.0 if quick else 10.0)
    warmup = 1.0 if quick else 2.0
    out: list[Row] = []
    for db in dbs:
        label = {"sqlite": "SQLite (WAL)", "postgresql": "PostgreSQL (fsync on)"}[db]
        if db == "postgresql" and find_pg_bin() is None:
            out.append(
                Row(
                    "service",
                    f"POST /orders, {label}",
                    "orders/s",
                    None,
                    status="SKIP",
                    note="PostgreSQL binaries not installed",
                )
            )
            continue
        r = measure(
            db, duration=duration, connections=connections, client=client, warmup=warmup, rate=rate
        )
        peak, paced = r["peak"], r["paced"]
        top = float(peak["accepted_per_s"])
        out.append(
            Row(
                "service",
                f"{label}: accepted, peak",
                "orders/s",
                top,
                target=f">= {TARGET_RATE:,.0f}/s",
                status=judge_ratio(top / TARGET_RATE, 1.0),
                note=(
                    f"{peak['client']}, {connections} connections, closed loop, {duration:g} s; "
                    f"{peak['rejected']} non-202; p50 {peak['p50_ms']:.1f} ms, "
                    f"p99 {peak['p99_ms']:.1f} ms at that load"
                ),
                details=peak,
            )
        )
        got = float(paced["accepted_per_s"])
        out.append(
            Row(
                "service",
                f"{label}: accepted at {rate:,.0f}/s offered",
                "orders/s",
                got,
                status="INFO",
                note=f"open loop, 32 connections, {duration:g} s; {paced['rejected']} non-202",
                details=paced,
            )
        )
        out.append(
            Row(
                "service",
                f"{label}: p50 accept latency at {rate:,.0f}/s",
                "ms",
                float(paced["p50_ms"]),
                status="INFO",
            )
        )
        p99 = float(paced["p99_ms"])
        out.append(
            Row(
                "service",
                f"{label}: p99 accept latency at {rate:,.0f}/s",
                "ms",
                p99,
                target=f"<= {TARGET_P99_MS:g} ms",
                status=judge_max(p99, TARGET_P99_MS),
                note="latency from each request's scheduled send time (no coordinated omission)",
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--client-only":
        url, conns, dur, tag, rate = argv[1], int(argv[2]), float(argv[3]), argv[4], argv[5]
        m = re.match(r"http://([^:/]+):(\d+)", url)
        assert m is not None
        res = asyncio.run(_py_load(m.group(1), int(m.group(2)), conns, dur, tag, float(rate)))
        print(json.dumps(res))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--db", default="sqlite,postgresql")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--duration", type=float, default=None)
    p.add_argument("--client", choices=["wrk", "python"], default=None)
    p.add_argument(
        "--rate",
        type=float,
        default=TARGET_RATE,
        help="orders/s offered in the open-loop latency run (default 1000)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    a = p.parse_args(argv)
    got = rows(
        a.quick,
        [d.strip() for d in a.db.split(",") if d.strip()],
        a.connections,
        a.client,
        a.duration,
        a.rate,
    )
    print_table("HTTP order service on loopback: accepted orders/s and accept latency", got)
    if a.json:
        a.json.write_text(json.dumps([r.to_dict() for r in got], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
