"""``reliability-lab serve`` / ``python -m reliability_lab.service``: run the order service.

SIGTERM (or the first Ctrl-C) drains: readiness turns 503 and intake stops at once, while GETs
keep being served; in-flight orders get the shutdown budget to finish, the rest are recorded as
cancelled, the writer flushes, and the process exits 0. A second signal exits at once.

The admin token is best given as a file (``--admin-token-file``) or in the environment
(``RLAB_ADMIN_TOKEN``): ``--admin-token`` works but every local user can read it in the
process list, so it draws a warning. Connection handling (header-read and keep-alive timeouts,
the in-flight limit, the connection cap and the descriptor budget) is in server.py.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import socket
import stat
import sys
import tracemalloc
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from reliability_lab.files import load_scenario as load_scenario_file
from reliability_lab.service.allocator import fix_malloc_thresholds
from reliability_lab.service.app import create_app
from reliability_lab.service.config import ADMIN_TOKEN_ENV, ServiceConfig, load_scenario
from reliability_lab.service.core import OrderService, log_event
from reliability_lab.service.logs import configure_logging
from reliability_lab.service.server import (
    FD_RESERVE,
    EdgeConfig,
    InFlightLimit,
    connection_budget,
    make_protocol_class,
    raise_nofile_limit,
)


class _DrainingServer(uvicorn.Server):
    """uvicorn's server with a drain-first signal policy.

    uvicorn stops listening at the first signal and then re-raises it after serving (so the exit
    status would be -SIGTERM). Here the first signal only starts the drain; the listener stays
    up so that probes can see 503 while in-flight work finishes, and the exit is a clean 0.
    """

    def __init__(self, config: uvicorn.Config, service: OrderService) -> None:
        super().__init__(config)
        self.service = service
        self._loop: asyncio.AbstractEventLoop | None = None
        self._signalled = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets=sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._signalled or self._loop is None or not self.service.started:
            # A second signal, or one before we are up: leave now.
            self.should_exit = True
            self.force_exit = self._signalled
            return
        self._signalled = True
        self.service.begin_drain()  # readiness and intake flip before anything else runs
        self._loop.call_soon_threadsafe(self._start_drain, sig)

    def _start_drain(self, sig: int) -> None:
        assert self._loop is not None
        self._loop.create_task(self._drain(sig))

    async def _drain(self, sig: int) -> None:
        log_event("signal_received", signal=signal.Signals(sig).name)
        await asyncio.to_thread(self.service.drain)
        self.should_exit = True


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reliability-lab serve",
        description="The order service over HTTP on the live engine, with durable storage.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port; 0 picks a free one")
    p.add_argument(
        "--database",
        default=os.environ.get("RLAB_DATABASE", "reliability-lab.sqlite3"),
        help="SQLite path or sqlite:///PATH (default), postgresql://..., or memory (an "
        "in-memory database, lost on exit) (env RLAB_DATABASE)",
    )
    p.add_argument(
        "--scenario",
        default=None,
        help="scenario file: TOML, YAML or JSON (Scenario.to_dict); default: the seed payment lab",
    )
    p.add_argument(
        "--admin-token",
        default=None,
        help=(
            f"bearer token of the admin endpoints; visible in the process list, so prefer "
            f"--admin-token-file or env {ADMIN_TOKEN_ENV}"
        ),
    )
    p.add_argument(
        "--admin-token-file",
        default=None,
        help="file holding the admin token (surrounding whitespace ignored; keep it mode 600)",
    )
    p.add_argument(
        "--shutdown-budget",
        type=float,
        default=10.0,
        help="seconds in-flight orders get on SIGTERM (default 10)",
    )
    p.add_argument(
        "--ledger", default=None, help="payment ledger file (default: next to the SQLite file)"
    )
    p.add_argument("--max-body-bytes", type=int, default=16 * 1024)
    p.add_argument(
        "--port-file", default=None, help="write {port, pid} as JSON here once listening"
    )
    p.add_argument(
        "--store-timeout",
        type=float,
        default=10.0,
        help="seconds a POST waits for its order to be committed before answering 503",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="seconds a connection gets to send a complete request head (default 10)",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        help="seconds a request's body gets to arrive once its head is in (default 30)",
    )
    p.add_argument(
        "--keep-alive-timeout",
        type=int,
        default=5,
        help="seconds an idle kept-alive connection stays open (default 5)",
    )
    p.add_argument(
        "--limit-concurrency",
        type=int,
        default=1024,
        help="requests served at once before new ones get 503 (probes exempt; default 1024)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help=(
            f"open connections at most; idle ones are closed first to make room "
            f"(default: the descriptor limit minus {FD_RESERVE})"
        ),
    )
    p.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="FRAMES",
        help="trace allocations (FRAMES per site) for /debug/pprof/heap; costs CPU (default: off)",
    )
    p.add_argument(
        "--db-statement-timeout",
        type=float,
        default=5.0,
        help="seconds any one database call may take (default 5)",
    )
    p.add_argument(
        "--db-connect-timeout",
        type=float,
        default=3.0,
        help="seconds opening a PostgreSQL connection may take (default 3)",
    )
    p.add_argument(
        "--watchdog-timeout",
        type=float,
        default=60.0,
        help="/livez fails when the writer or the workers make no progress this long (default 60)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="log every request and every finished order as a JSON line (default: on)",
    )
    return p


def read_token_file(path: str) -> str:
    """The admin token in a file (surrounding whitespace stripped); ValueError when empty."""
    p = Path(path)
    token = p.read_text().strip()
    if not token:
        raise ValueError(f"the admin token file {path} is empty")
    if p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(
            f"reliability-lab serve: warning: the admin token file {path} is accessible to "
            "other users (chmod 600 it)",
            file=sys.stderr,
        )
    return token


def admin_token_from_args(a: argparse.Namespace) -> str | None:
    """``--admin-token-file``, else ``--admin-token`` (with a warning), else the environment."""
    if a.admin_token_file is not None:
        if a.admin_token is not None:
            raise ValueError("give --admin-token or --admin-token-file, not both")
        return read_token_file(a.admin_token_file)
    if a.admin_token is not None:
        print(
            "reliability-lab serve: warning: --admin-token is visible to every local user in "
            f"the process list; use --admin-token-file or the {ADMIN_TOKEN_ENV} environment "
            "variable",
            file=sys.stderr,
        )
        return str(a.admin_token)
    return os.environ.get(ADMIN_TOKEN_ENV) or None


def edge_config_from_args(argv: list[str] | None = None) -> EdgeConfig:
    """The connection-handling options as an :class:`EdgeConfig` (ValueError on bad ones)."""
    a = build_parser().parse_args(argv)
    return EdgeConfig(
        header_timeout_s=a.header_timeout,
        body_timeout_s=a.body_timeout,
        keep_alive_timeout_s=a.keep_alive_timeout,
        limit_concurrency=a.limit_concurrency,
        max_connections=a.max_connections,
        tracemalloc_frames=a.tracemalloc,
    )


def config_from_args(argv: list[str] | None = None) -> ServiceConfig:
    """Parses command-line arguments into a :class:`ServiceConfig` (ValueError on bad ones)."""
    a = build_parser().parse_args(argv)
    token = admin_token_from_args(a)
    return ServiceConfig(
        host=a.host,
        port=a.port,
        database=a.database,
        scenario=load_scenario_file(a.scenario) if a.scenario else load_scenario(None),
        admin_token=token or None,
        shutdown_budget=a.shutdown_budget,
        ledger_path=a.ledger,
        max_body_bytes=a.max_body_bytes,
        port_file=a.port_file,
        log_level=a.log_level,
        access_log=a.access_log,
        store_timeout=a.store_timeout,
        db_statement_timeout=a.db_statement_timeout,
        db_connect_timeout=a.db_connect_timeout,
        watchdog_timeout=a.watchdog_timeout,
    )


def serve(config: ServiceConfig, edge: EdgeConfig | None = None) -> int:
    """Runs the service until SIGTERM/SIGINT; returns the exit status."""
    edge = edge if edge is not None else EdgeConfig()
    configure_logging(config.log_level)
    # Large blocks stay mmapped, so a freed one goes back to the system (see allocator.py).
    fix_malloc_thresholds()
    if edge.tracemalloc_frames and not tracemalloc.is_tracing():
        tracemalloc.start(edge.tracemalloc_frames)
    # Every connection holds a descriptor: use all the hard limit allows, and keep a reserve.
    soft, hard = raise_nofile_limit()
    budget = connection_budget(soft)
    max_connections = edge.max_connections if edge.max_connections is not None else budget
    log_event(
        "descriptor_budget",
        soft_limit=soft,
        hard_limit=hard,
        reserved=FD_RESERVE,
        max_connections=max_connections,
    )
    if max_connections > budget:
        log_event(
            "warning",
            message=f"max_connections {max_connections} exceeds the descriptor budget {budget} "
            f"(RLIMIT_NOFILE {soft} minus {FD_RESERVE} reserved); raise the hard limit",
        )
    service = OrderService(config)
    app = create_app(config, service)
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, config.port))
    port = sock.getsockname()[1]
    ucfg = uvicorn.Config(
        InFlightLimit(app, edge.limit_concurrency),
        http=make_protocol_class(edge.header_timeout_s, edge.body_timeout_s, max_connections),
        timeout_keep_alive=edge.keep_alive_timeout_s,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(5, int(config.shutdown_budget) + 5),
        backlog=2048,
    )
    server = _DrainingServer(ucfg, service)

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            # Everything loaded so far (FastAPI, pandas, the engine) lives as long as the
            # process: move it out of the collector's sight, so full collections stay short
            # and do not show up as accept-latency spikes.
            gc.collect()
            gc.freeze()
            log_event("listening", host=config.host, port=port, database=service.store.kind)
            if config.port_file:
                tmp = Path(config.port_file + ".tmp")
                tmp.write_text(json.dumps({"port": port, "pid": os.getpid()}))
                tmp.replace(config.port_file)  # atomic: readers never see half a file
        await task

    # uvicorn's loop choice (uvloop when installed), driven by hand: asyncio.Runner is 3.11+.
    factory: Any = getattr(ucfg, "get_loop_factory", lambda: None)()
    loop = factory() if factory is not None else asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main())
    finally:
        loop.close()
    if not server.started:
        # The lifespan failed (e.g. the database is unreachable); uvicorn logged why.
        service.drain(0.0)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``reliability-lab [serve] [options]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "serve":
        args = args[1:]
    elif args and not args[0].startswith("-"):
        # Another command (run, sweep, ...): an entry point installed before they existed
        # still points here.
        from reliability_lab.cli import main as lab_main

        return lab_main(args)
    try:
        config = config_from_args(args)
        edge = edge_config_from_args(args)
    except (ValueError, OSError) as e:
        print(f"reliability-lab serve: {e}", file=sys.stderr)
        return 2
    return serve(config, edge)


if __name__ == "__main__":
    raise SystemExit(main())
