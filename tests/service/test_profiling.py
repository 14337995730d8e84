"""``/debug/pprof``: a CPU profile of the running service (speedscope JSON, every Python
thread, Python and native frames) and a memory snapshot, behind the admin token."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service extra (fastapi, uvicorn, psycopg) is missing")

import httpx
from reliability_lab.service.harness import ServiceProcess
from reliability_lab.service.profiling import find_py_spy
from service_helpers import ADMIN_TOKEN, admin_service, post_order, wait_for

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, httpx.Client]]:
    tmp = tmp_path_factory.mktemp("profiling")
    with (
        admin_service(tmp, failure_rate=0.2, args=("--tracemalloc", "4")) as proc,
        httpx.Client(base_url=proc.url, timeout=120) as client,
    ):
        yield proc, client


def _frames_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = doc["shared"]["frames"]
    return frames


def _is_native(frame: dict[str, Any]) -> bool:
    f = str(frame.get("file") or "")
    return ".so" in f or (not f.endswith(".py") and frame.get("line") in (0, None))


def _is_python(frame: dict[str, Any]) -> bool:
    return str(frame.get("file") or "").endswith(".py") and int(frame.get("line") or 0) > 0


def _profile(proc: ServiceProcess, client: httpx.Client, seconds: int) -> httpx.Response:
    r = client.get("/debug/pprof/profile", params={"seconds": seconds}, headers=AUTH)
    if r.status_code == 503 and "ermission" in proc.log_text():
        pytest.skip("py-spy may not ptrace the service here (no CAP_SYS_PTRACE)")
    return r


def test_cpu_profile_while_orders_flow(svc: tuple[ServiceProcess, httpx.Client]) -> None:
    if find_py_spy() is None:
        pytest.skip("py-spy is not installed (pip install py-spy; the 'service' extra)")
    proc, client = svc
    stop = threading.Event()
    accepted = [0]

    def load() -> None:
        with httpx.Client(base_url=proc.url, timeout=30) as c:
            for _ in range(100_000):  # bounded; stopped when the profile is back
                if stop.is_set():
                    return
                if post_order(c).status_code == 202:
                    accepted[0] += 1

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        r = _profile(proc, client, 2)
    finally:
        stop.set()
        for w in workers:
            w.join(60)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert "speedscope.json" in r.headers["content-disposition"]
    doc = r.json()
    assert doc["$schema"].startswith("https://www.speedscope.app/")
    sampled = [p for p in doc["profiles"] if p.get("samples")]
    assert len(sampled) > 1, [p.get("name") for p in doc["profiles"]]  # more than one thread
    frames = _frames_of(doc)
    used = {i for p in sampled for sample in p["samples"] for i in sample}
    assert any(_is_native(frames[i]) for i in used), frames[:20]
    assert any(_is_python(frames[i]) for i in used), frames[:20]
    assert accepted[0] > 0  # orders flowed during the profile


def test_one_profile_at_a_time(svc: tuple[ServiceProcess, httpx.Client]) -> None:
    if find_py_spy() is None:
        pytest.skip("py-spy is not installed")
    proc, client = svc
    started = len([e for e in proc.log_events() if e.get("event") == "profile_started"])
    first: dict[str, httpx.Response] = {}

    def run() -> None:
        with httpx.Client(base_url=proc.url, timeout=120) as c:
            first["r"] = c.get("/debug/pprof/profile", params={"seconds": 3}, headers=AUTH)

    t = threading.Thread(target=run)
    t.start()
    try:
        wait_for(
            lambda: (
                len([e for e in proc.log_events() if e.get("event") == "profile_started"]) > started
            ),
            what="the first profile to start",
        )
        second = client.get("/debug/pprof/profile", params={"seconds": 1}, headers=AUTH)
    finally:
        t.join(120)
    if first["r"].status_code == 503 and "ermission" in proc.log_text():
        pytest.skip("py-spy may not ptrace the service here")
    assert second.status_code == 409 and second.json()["error"] == "profile_in_progress"
    assert first["r"].status_code == 200
    json.loads(first["r"].content)


@pytest.mark.parametrize("path", ["/debug/pprof/profile", "/debug/pprof/heap"])
def test_profiling_needs_the_token(svc: tuple[ServiceProcess, httpx.Client], path: str) -> None:
    _, client = svc
    assert client.get(path, params={"seconds": 1}).status_code == 401
    r = client.get(path, params={"seconds": 1}, headers={"Authorization": "Bearer wrong-token"})
    assert r.status_code == 403


@pytest.mark.parametrize("seconds", [0, 61, "x"])
def test_profile_duration_is_bounded(
    svc: tuple[ServiceProcess, httpx.Client], seconds: object
) -> None:
    _, client = svc
    r = client.get("/debug/pprof/profile", params={"seconds": seconds}, headers=AUTH)
    assert r.status_code == 422
    assert r.json()["fields"][0]["field"] == "seconds"


def test_heap_snapshot(svc: tuple[ServiceProcess, httpx.Client]) -> None:
    _, client = svc
    for _ in range(20):
        assert post_order(client).status_code == 202
    r = client.get("/debug/pprof/heap", params={"limit": 5}, headers=AUTH)
    assert r.status_code == 200, r.text
    snap = r.json()
    assert snap["process"]["rss_bytes"] > 0
    assert snap["process"]["open_fds"] > 0
    assert snap["tracemalloc"]["tracing"] is True
    assert snap["tracemalloc"]["frames"] == 4
    top = snap["tracemalloc"]["top"]
    assert 0 < len(top) <= 5
    assert all(t["size_bytes"] > 0 and t["traceback"] for t in top)


def test_heap_without_tracemalloc_says_how_to_turn_it_on(tmp_path: Path) -> None:
    proc = ServiceProcess(
        database=str(tmp_path / "orders.sqlite3"),
        workdir=tmp_path,
        args=["--ledger", str(tmp_path / "payments.ledger")],
        env={"RLAB_ADMIN_TOKEN": ADMIN_TOKEN},
    )
    proc.start()
    try:
        with httpx.Client(base_url=proc.url, timeout=30) as client:
            r = client.get("/debug/pprof/heap", headers=AUTH)
            assert r.status_code == 200, r.text
            assert r.json()["tracemalloc"]["tracing"] is False
            assert "--tracemalloc" in r.json()["tracemalloc"]["hint"]
            # SQLite's own allocator (the store's connections are open, so it holds memory).
            sqlite = r.json()["sqlite"]
            if sqlite is not None:
                assert sqlite["memory_used_bytes"] > 0
                assert sqlite["highwater_bytes"] >= sqlite["memory_used_bytes"]
    finally:
        assert proc.stop(timeout=60) == 0, proc.log_text()


def test_profile_without_native_frames(svc: tuple[ServiceProcess, httpx.Client]) -> None:
    if find_py_spy() is None:
        pytest.skip("py-spy is not installed")
    proc, client = svc
    r = client.get("/debug/pprof/profile", params={"seconds": 1, "native": "false"}, headers=AUTH)
    if r.status_code == 503 and "ermission" in proc.log_text():
        pytest.skip("py-spy may not ptrace the service here")
    assert r.status_code == 200, r.text
    frames = _frames_of(r.json())
    assert frames and not any(".so" in str(f.get("file") or "") for f in frames)
    assert any(_is_python(f) for f in frames)
