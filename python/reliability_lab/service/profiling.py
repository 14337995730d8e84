"""Token-protected profiling of the running service: ``/debug/pprof/profile`` and ``/heap``.

* ``GET /debug/pprof/profile?seconds=N`` samples every Python thread of the process for N
  seconds (1 to 60) with `py-spy <https://github.com/benfred/py-spy>`_, Python *and* native
  frames (``--native``, so time spent inside the engine's C++ code shows under the Python call
  that entered it), idle threads included, and answers a speedscope JSON document
  (https://www.speedscope.app opens it; one profile per thread). py-spy runs as a child process
  and reads this process's memory with ptrace: it needs root or CAP_SYS_PTRACE (or
  ``kernel.yama.ptrace_scope=0``); without it the endpoint answers 503. Native unwinding stops
  the process at every sample: at the default 100 Hz under load the service accepted 1/8 to 1/6
  of its usual orders per second while profiled (README); ``rate`` lowers the cost, and
  ``native=false`` samples without stopping the process (Python frames only). One profile at a
  time (409).
  Threads that never run Python (the live engine's C++ workers) have no Python thread state:
  py-spy does not list them; their time shows only where a Python thread waits on them.
* ``GET /debug/pprof/heap`` is a memory snapshot as JSON: resident and peak memory, the C
  allocator's figures (glibc ``mallinfo2``), SQLite's (``sqlite3_memory_used``), descriptors,
  threads and the garbage collector's counts, plus the top allocation sites from
  ``tracemalloc`` when the service was started with ``--tracemalloc N`` (tracing every
  allocation costs memory and CPU: with one frame per site the service accepted 1/4 to 1/2 of
  its usual orders per second, with eight about 1/10, so it is off unless asked for). Taking
  the snapshot holds the GIL for a while (about a second with one frame, several with more),
  during which the service stalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from reliability_lab.service.core import log_event

_log = logging.getLogger("reliability_lab.service.profiling")

#: Bounds of ``seconds`` and ``rate`` of a CPU profile.
MAX_PROFILE_SECONDS = 60
MAX_PROFILE_RATE = 1000
#: Extra seconds py-spy gets beyond the profile's duration (start-up, writing the file).
_PROFILER_GRACE_S = 30.0


def find_py_spy() -> str | None:
    """The py-spy executable: next to this interpreter (a virtualenv's bin) or on PATH."""
    cand = Path(sys.executable).parent / "py-spy"
    if cand.is_file() and os.access(cand, os.X_OK):
        return str(cand)
    return shutil.which("py-spy")


def _error(status: int, error: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status, headers=headers or None)


def _proc_status() -> dict[str, int]:
    """Sizes (bytes) and counts from /proc/self/status (Linux); empty elsewhere."""
    out: dict[str, int] = {}
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return out
    names = {"VmRSS": "rss_bytes", "VmHWM": "peak_rss_bytes", "VmSize": "virtual_bytes"}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if key in names and len(parts) == 2 and parts[1] == "kB":
            out[names[key]] = int(parts[0]) * 1024
        elif key == "Threads" and parts:
            out["os_threads"] = int(parts[0])
    return out


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _malloc_stats() -> dict[str, int] | None:
    """glibc's ``mallinfo2()``: the native heap (C/C++ allocations), or None without glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        fn = ctypes.CDLL(name).mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    mi = fn()
    return {
        "arena_bytes": int(mi.arena),  # obtained with brk
        "mmap_bytes": int(mi.hblkhd),  # obtained with mmap
        "in_use_bytes": int(mi.uordblks),
        "free_bytes": int(mi.fordblks),
    }


def _sqlite_stats() -> dict[str, int] | None:
    """SQLite's own allocator figures (every connection of the process), or None when the
    library Python's sqlite3 module uses cannot be loaded by name."""
    name = ctypes.util.find_library("sqlite3")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        used, highwater = lib.sqlite3_memory_used, lib.sqlite3_memory_highwater
    except (OSError, AttributeError):
        return None
    used.restype = highwater.restype = ctypes.c_int64
    highwater.argtypes = [ctypes.c_int]
    return {"memory_used_bytes": int(used()), "highwater_bytes": int(highwater(0))}


def memory_snapshot(limit: int) -> dict[str, Any]:
    """The heap snapshot served by ``GET /debug/pprof/heap`` (top ``limit`` allocation sites)."""
    status = _proc_status()
    if "peak_rss_bytes" not in status:
        status["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    try:
        fds: int | None = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = None
    out: dict[str, Any] = {
        "pid": os.getpid(),
        "time": time.time(),
        "process": {
            **status,
            "open_fds": fds,
            "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            "python_threads": threading.active_count(),
        },
        "malloc": _malloc_stats(),
        "sqlite": _sqlite_stats(),
        "gc": {
            "counts": list(gc.get_count()),
            "frozen_objects": gc.get_freeze_count(),
            "collections": [s["collections"] for s in gc.get_stats()],
        },
    }
    if not tracemalloc.is_tracing():
        out["tracemalloc"] = {
            "tracing": False,
            "hint": "start the service with --tracemalloc N to see allocation sites",
        }
        return out
    current, peak = tracemalloc.get_traced_memory()
    snap = tracemalloc.take_snapshot().filter_traces(
        (
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
        )
    )
    frames = tracemalloc.get_traceback_limit()
    stats = snap.statistics("traceback" if frames > 1 else "lineno")
    out["tracemalloc"] = {
        "tracing": True,
        "frames": frames,
        "traced_bytes": current,
        "peak_traced_bytes": peak,
        "overhead_bytes": tracemalloc.get_tracemalloc_memory(),
        "top": [
            {
                "size_bytes": s.size,
                "count": s.count,
                "traceback": [{"file": f.filename, "line": f.lineno} for f in s.traceback],
            }
            for s in stats[:limit]
        ],
    }
    return out


class CpuProfiler:
    """Runs one py-spy profile of this process at a time."""

    def __init__(self) -> None:
        self.busy = False

    async def record(self, seconds: int, rate: int, native: bool) -> tuple[bytes | None, str]:
        """``(speedscope JSON, "")`` or ``(None, reason)``; the reason is for the log only."""
        exe = find_py_spy()
        if exe is None:
            return None, "py-spy is not installed"
        with tempfile.TemporaryDirectory(prefix="rlab-profile-") as tmp:
            out = Path(tmp) / "profile.speedscope.json"
            cmd = [
                exe,
                "record",
                "--pid",
                str(os.getpid()),
                "--duration",
                str(seconds),
                "--rate",
                str(rate),
                "--format",
                "speedscope",
                "--output",
                str(out),
                "--idle",
                # Native unwinding needs the threads stopped at each sample; without it py-spy
                # reads the Python stacks while the process runs (much cheaper, less exact).
                "--native" if native else "--nonblocking",
            ]
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            try:
                output, _ = await asyncio.wait_for(proc.communicate(), seconds + _PROFILER_GRACE_S)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(proc.wait(), 10.0)
                raise
            text = output.decode(errors="replace").strip()[-2000:]
            if proc.returncode != 0 or not out.exists():
                return None, f"py-spy exited with {proc.returncode}: {text}"
            return out.read_bytes(), ""


def add_profiling_routes(app: FastAPI, check_admin: Callable[[Request], Response | None]) -> None:
    """Adds ``GET /debug/pprof/profile`` and ``GET /debug/pprof/heap`` (admin token)."""
    profiler = CpuProfiler()

    @app.get("/debug/pprof/profile")
    async def cpu_profile(
        request: Request,
        seconds: Annotated[int, Query(ge=1, le=MAX_PROFILE_SECONDS)] = 10,
        rate: Annotated[int, Query(ge=1, le=MAX_PROFILE_RATE)] = 100,
        native: bool = True,
    ) -> Response:
        """A CPU profile of every Python thread over ``seconds``, Python and native frames, as
        speedscope JSON (open it at https://www.speedscope.app). One at a time.

        ``rate`` samples per second; ``native=false`` leaves out the native frames and does
        not pause the process to sample (far cheaper under load)."""
        denied = check_admin(request)
        if denied is not None:
            return denied
        if profiler.busy:
            return _error(409, "profile_in_progress", "a profile is already being recorded")
        profiler.busy = True
        try:
            log_event("profile_started", seconds=seconds, rate=rate, native=native)
            try:
                data, reason = await profiler.record(seconds, rate, native)
            except asyncio.TimeoutError:
                data, reason = None, "py-spy did not finish in time"
            if data is None:
                _log.warning("CPU profile failed: %s", reason)
                # The reason (paths, ptrace errors) goes to the log, not to the client.
                return _error(
                    503, "profiler_unavailable", "the CPU profiler could not run; see the log"
                )
            try:
                json.loads(data)
            except ValueError:
                _log.warning("py-spy wrote an unreadable profile (%d bytes)", len(data))
                return _error(503, "profiler_unavailable", "the CPU profiler could not run")
            log_event("profile_finished", seconds=seconds, bytes=len(data))
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            return Response(
                data,
                media_type="application/json",
                headers={
                    "Content-Disposition": (
                        f'attachment; filename="reliability-lab-{os.getpid()}-{stamp}'
                        '.speedscope.json"'
                    )
                },
            )
        finally:
            profiler.busy = False

    @app.get("/debug/pprof/heap")
    async def heap(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> Response:
        """Memory figures of the process and, with ``--tracemalloc``, the top allocation
        sites (``limit`` of them)."""
        denied = check_admin(request)
        if denied is not None:
            return denied
        return JSONResponse(await run_in_threadpool(memory_snapshot, limit))
