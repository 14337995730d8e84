"""The edge protocol (server.make_protocol_class) on both of uvicorn's HTTP/1.1 parsers, with a
trivial ASGI app in this process: deadlines, keep-alive, pipelining and the connection cap."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("uvicorn", reason="the service extra (fastapi, uvicorn, psycopg) is missing")

import uvicorn
from reliability_lab.service.server import make_protocol_class

IMPLS = ["h11"]
try:
    import httptools  # noqa: F401

    IMPLS.append("httptools")
except ImportError:  # pragma: no cover
    pass


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echoes the body's length; reads the whole body first."""
    assert scope["type"] == "http"
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = f"{scope['path']} {size}".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Served:
    def __init__(self, impl: str, max_connections: int) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        cls = make_protocol_class(1.0, 1.0, max_connections, impl=impl)  # type: ignore[arg-type]
        config = uvicorn.Config(
            app, http=cls, lifespan="off", log_config=None, timeout_keep_alive=30
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True
        )

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.server.started
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)


def read_until_closed(s: socket.socket, timeout: float = 60.0) -> bytes:
    """Everything the server sends until it closes the connection (bounded)."""
    s.settimeout(timeout)
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


def read_until(s: socket.socket, *tokens: bytes) -> bytes:
    """Reads until every token has arrived (the socket's timeout bounds each read)."""
    out = b""
    while not all(t in out for t in tokens):
        chunk = s.recv(65536)
        assert chunk, out
        out += chunk
    return out


@pytest.fixture(params=IMPLS)
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    with Served(request.param, max_connections=1000) as s:
        yield s


def test_partial_head_gets_408(served: Served) -> None:
    s = served.connect()
    s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n")
    assert read_until_closed(s).startswith(b"HTTP/1.1 408")


def test_silent_connection_is_closed_without_an_answer(served: Served) -> None:
    assert read_until_closed(served.connect()) == b""


def test_keep_alive_then_a_partial_head(served: Served) -> None:
    s = served.connect()
    s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    read_until(s, b"/a 0")
    time.sleep(1.5)  # longer than the header deadline: idle time is the keep-alive's business
    s.sendall(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    read_until(s, b"/b 0")
    s.sendall(b"GET /c HTTP/1.1\r\n")
    assert read_until_closed(s).startswith(b"HTTP/1.1 408")


def test_pipelined_requests_and_a_complete_body(served: Served) -> None:
    s = served.connect()
    s.sendall(
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    )
    out = read_until(s, b"/a 0", b"/b 5")
    assert out.count(b"HTTP/1.1 200") == 2
    s.close()


def test_trickled_body_gets_408(served: Served) -> None:
    s = served.connect()
    s.sendall(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhel")
    assert read_until_closed(s).startswith(b"HTTP/1.1 408")


@pytest.mark.parametrize("impl", IMPLS)
def test_connection_cap_closes_the_oldest_idle_connection(impl: str) -> None:
    with Served(impl, max_connections=3) as served:
        idle = [served.connect() for _ in range(3)]
        for s in idle:
            s.sendall(b"GET /a HTTP/1.1\r\n")  # all waiting for the rest of their heads
        s = served.connect()  # the fourth evicts the oldest
        s.sendall(b"GET /new HTTP/1.1\r\nHost: x\r\n\r\n")
        read_until(s, b"/new 0")
        assert read_until_closed(idle[0], 30) == b""  # closed at once, without an answer
        for c in [*idle, s]:
            c.close()
