"""The HTTP edge under hostile clients: half-open connection floods, slow headers, scarce
descriptors and too many requests in flight (server.py). Loopback only; every wait is bounded."""

from __future__ import annotations

import resource
import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the service extra (fastapi, uvicorn, psycopg) is missing")

import httpx
from reliability_lab.service.harness import ServiceProcess
from reliability_lab.service.server import FD_RESERVE, EdgeConfig
from service_helpers import ADMIN_TOKEN, post_order, wait_for

FLOOD = 1200  # more half-open connections than a 1,024-descriptor process can hold
HEAD = b"POST /orders HTTP/1.1\r\nHost: lab\r\nContent-Type: application/json\r\n"


@pytest.fixture(autouse=True)
def enough_descriptors() -> None:
    """This test process holds the flood's sockets itself."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < FLOOD + 200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low for a {FLOOD}-socket flood")
    want = FLOOD + 200 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _service(tmp_path: Path, *args: str, nofile: int | None = None) -> ServiceProcess:
    return ServiceProcess(
        database=str(tmp_path / "orders.sqlite3"),
        workdir=tmp_path,
        args=["--ledger", str(tmp_path / "payments.ledger"), "--log-level", "info", *args],
        env={"RLAB_ADMIN_TOKEN": ADMIN_TOKEN},
        nofile=nofile,
    )


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    procs: list[ServiceProcess] = []
    yield procs
    for p in procs:
        assert p.stop(timeout=60) == 0, p.log_text()


def _open_half(port: int, n: int) -> list[socket.socket]:
    """n connections that each sent a request line and part of the headers, never the end."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(HEAD)
        socks.append(s)
    return socks


def _wait_all_closed(socks: list[socket.socket], timeout: float) -> dict[str, int]:
    """Reads every socket until the server closes it; returns how each one ended.

    ``"408"``: a 408 answer then EOF; ``"eof"``: closed without an answer; ``"reset"``;
    ``"open"``: still open when ``timeout`` ran out."""
    sel = selectors.DefaultSelector()
    got: dict[socket.socket, bytes] = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        got[s] = b""
    outcome = {"408": 0, "eof": 0, "reset": 0, "open": 0}
    left = len(socks)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            assert isinstance(s, socket.socket)
            try:
                data = s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                outcome["reset"] += 1
            else:
                if data:
                    got[s] += data
                    continue
                outcome["408" if got[s].startswith(b"HTTP/1.1 408") else "eof"] += 1
            sel.unregister(s)
            s.close()
            left -= 1
    outcome["open"] = left
    for key in list(sel.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    sel.close()
    return outcome


@pytest.mark.parametrize("nofile", [None, 1100], ids=["default-limit", "nofile-1100"])
def test_half_open_flood_does_not_take_the_service_down(
    tmp_path: Path, service_factory: list[ServiceProcess], nofile: int | None
) -> None:
    header_timeout = 8.0
    svc = _service(tmp_path, "--header-timeout", str(header_timeout), nofile=nofile)
    service_factory.append(svc)
    svc.start()
    with httpx.Client(base_url=svc.url, timeout=15) as client:
        wait_for(lambda: client.get("/startupz").status_code == 200, what="startup")
        socks = _open_half(svc.port, FLOOD)
        try:
            # With 1,200 connections stuck in their headers the service still answers (the
            # client's 15 s timeout bounds "promptly"; no timing is asserted).
            assert client.get("/livez").status_code == 200
            r = post_order(client)
            assert r.status_code == 202, r.text
            assert client.get(f"/orders/{r.json()['id']}").status_code == 200
            # ...and the server closes every one of them: past the header deadline, or
            # (with 1,100 descriptors) earlier, to make room for new connections.
            outcome = _wait_all_closed(socks, header_timeout + 90)
        finally:
            for s in socks:
                s.close()
        assert outcome["open"] == 0, outcome
        if nofile is None:
            # Each had sent part of a request: RFC 9110's 408 with "close".
            assert outcome["408"] == FLOOD, outcome
        else:
            assert outcome["eof"] > 0, outcome  # some were evicted to make room
        # New connections are served normally afterwards.
        assert client.get("/livez").status_code == 200
    events = svc.log_events()
    budget = [e for e in events if e.get("event") == "descriptor_budget"]
    assert budget, svc.log_text()
    if nofile is not None:
        assert budget[0]["soft_limit"] == nofile
        assert budget[0]["max_connections"] == nofile - FD_RESERVE


def test_header_deadline_is_absolute_and_covers_kept_alive_connections(
    tmp_path: Path, service_factory: list[ServiceProcess]
) -> None:
    svc = _service(tmp_path, "--header-timeout", "3", "--keep-alive-timeout", "60")
    service_factory.append(svc)
    svc.start()
    with httpx.Client(base_url=svc.url, timeout=15) as client:
        wait_for(lambda: client.get("/startupz").status_code == 200, what="startup")
    port = svc.port
    silent = socket.create_connection(("127.0.0.1", port), timeout=30)  # sends nothing
    # A kept-alive connection: one full request, then a partial second one.
    kept = socket.create_connection(("127.0.0.1", port), timeout=30)
    kept.sendall(b"GET /livez HTTP/1.1\r\nHost: lab\r\n\r\n")
    first = b""
    while b'"ok"' not in first:
        chunk = kept.recv(65536)
        assert chunk, "closed before answering"
        first += chunk
    assert first.startswith(b"HTTP/1.1 200")
    kept.sendall(b"GET /livez HTTP/1.1\r\n")
    # A slowloris: a header byte every 0.5 s never resets the deadline.
    trickle = socket.create_connection(("127.0.0.1", port), timeout=30)
    trickle.sendall(b"GET /livez HTTP/1.1\r\n")
    deadline = time.monotonic() + 120
    trickle.setblocking(False)
    closed = False
    while not closed and time.monotonic() < deadline:
        try:
            trickle.sendall(b"X")
            data = trickle.recv(65536)
            closed = data == b"" or data.startswith(b"HTTP/1.1 408")
        except BlockingIOError:
            pass
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        time.sleep(0.5)
    assert closed, "a trickling client kept its connection past the header deadline"
    outcome = _wait_all_closed([silent], 60)
    assert outcome["eof"] == 1, outcome  # nothing sent: closed without an answer
    outcome = _wait_all_closed([kept], 60)
    assert outcome["408"] == 1, outcome  # the keep-alive timeout (60 s) was not what closed it
    trickle.close()


def test_in_flight_limit_refuses_with_503_but_not_the_probes(
    tmp_path: Path, service_factory: list[ServiceProcess]
) -> None:
    svc = _service(tmp_path, "--limit-concurrency", "1", "--header-timeout", "60")
    service_factory.append(svc)
    svc.start()
    body = b'{"customer_id": "alice", "amount_cents": 100}'
    with httpx.Client(base_url=svc.url, timeout=15) as client:
        wait_for(lambda: client.get("/startupz").status_code == 200, what="startup")
        # One request in flight: its head is complete and the app waits for its body. The
        # server's "100 Continue" says the app has asked for the body, so it is in flight.
        slow = socket.create_connection(("127.0.0.1", svc.port), timeout=30)
        slow.sendall(HEAD + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        try:
            interim = slow.recv(65536)
            assert interim.startswith(b"HTTP/1.1 100"), interim
            r = client.get("/orders")
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "overloaded"
            assert r.headers["retry-after"] == "1"
            assert client.get("/livez").status_code == 200
            assert client.get("/readyz").status_code == 200
            assert client.get("/metrics").status_code == 200
            slow.sendall(body)
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = slow.recv(65536)
                assert chunk
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 202"), answer
        finally:
            slow.close()
        wait_for(lambda: client.get("/orders").status_code == 200, what="the limit to free up")
        assert post_order(client).status_code == 202
    assert any(e.get("event") == "overloaded" for e in svc.log_events()), svc.log_text()


def test_a_trickled_body_times_out_and_frees_its_slot(
    tmp_path: Path, service_factory: list[ServiceProcess]
) -> None:
    svc = _service(tmp_path, "--limit-concurrency", "1", "--body-timeout", "2")
    service_factory.append(svc)
    svc.start()
    with httpx.Client(base_url=svc.url, timeout=15) as client:
        wait_for(lambda: client.get("/startupz").status_code == 200, what="startup")
        slow = socket.create_connection(("127.0.0.1", svc.port), timeout=30)
        try:
            slow.sendall(HEAD + b"Expect: 100-continue\r\nContent-Length: 45\r\n\r\n")
            assert slow.recv(65536).startswith(b"HTTP/1.1 100")  # in flight now
            slow.sendall(b'{"customer_id": ')  # ...and the rest never comes
            outcome = _wait_all_closed([slow], 90)
        finally:
            slow.close()
        assert outcome["408"] == 1, outcome
        # The slot is free again: the next request is served, not refused.
        assert client.get("/orders").status_code == 200
        assert post_order(client).status_code == 202
    log = svc.log_text()
    assert "Exception in ASGI application" not in log, log
    assert '"status": 500' not in log, log


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"header_timeout_s": 0}, "header_timeout_s"),
        ({"header_timeout_s": float("nan")}, "header_timeout_s"),
        ({"body_timeout_s": -1}, "body_timeout_s"),
        ({"keep_alive_timeout_s": 0}, "keep_alive_timeout_s"),
        ({"keep_alive_timeout_s": 2.5}, "keep_alive_timeout_s"),
        ({"limit_concurrency": 0}, "limit_concurrency"),
        ({"limit_concurrency": True}, "limit_concurrency"),
        ({"max_connections": 0}, "max_connections"),
        ({"tracemalloc_frames": 101}, "tracemalloc_frames"),
    ],
)
def test_edge_config_names_the_bad_parameter(kw: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        EdgeConfig(**kw)  # type: ignore[arg-type]
