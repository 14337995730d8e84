"""The service's configuration and its default scenario."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import reliability_lab as rl
from reliability_lab import _checks
from reliability_lab.scenario import Scenario
from reliability_lab.service.store import parse_database_url

#: The environment variable read for the admin bearer token when none is given.
ADMIN_TOKEN_ENV = "RLAB_ADMIN_TOKEN"


def default_scenario() -> Scenario:
    """The seed lab's payment service, sized for an HTTP front end.

    A payment dependency that fails 30% of the time with exponential latency (mean 50 ms), four
    attempts with full-jitter backoff outside a breaker that opens after five consecutive
    failures; charges carry idempotency keys. 64 workers behind a queue of 4,096.
    """
    return Scenario(
        arrivals=rl.Poisson(rate=100.0),  # unused: orders come from HTTP, not a generator
        workers=64,
        queue_capacity=4096,
        duration=1e6,
        seed=42,
        sample_every=0.0,
        record_orders=False,  # a long-running service must not keep every order in memory
        record_events=False,
        dependencies=[
            rl.Dependency(
                "payment",
                faults=rl.Faults(failure_rate=0.3, latency=rl.Exponential(mean=0.05)),
                retry=rl.RetryConfig(
                    max_attempts=4, backoff=rl.Backoff(initial=0.05, max_delay=1.0, jitter="full")
                ),
                breaker=rl.Breaker(consecutive_failures=5, open_for=5.0),
                idempotency_keys=True,
                charges=True,
            )
        ],
    )


def load_scenario(path: str | os.PathLike[str] | None) -> Scenario:
    """The scenario in a JSON file (:meth:`Scenario.to_json` format), or the default one."""
    if path is None:
        return default_scenario()
    text = Path(path).read_text()
    return Scenario.from_json(text)


# The numeric settings, declared once: (name, lo, hi, in seconds, lo excluded).
_RANGES = (
    ("port", 0, 65535, False, False),
    ("shutdown_budget", 0, 3600, True, False),
    ("max_body_bytes", 1, 16 * 1024 * 1024, False, False),
    ("store_timeout", 0, 600, True, True),
    ("db_statement_timeout", 0, 600, True, True),
    ("db_connect_timeout", 2, 600, True, False),
    ("watchdog_timeout", 10, 3600, True, False),
)


@dataclass(frozen=True)
class ServiceConfig:
    """How to run the order service.

    Attributes:
        host: the address to bind (loopback unless told otherwise).
        port: the TCP port, in [0, 65535]; 0 picks a free one (see ``port_file``).
        database: a SQLite path or ``sqlite:///PATH`` (default), ``postgresql://...``, or
            ``memory`` (an in-memory SQLite database: nothing survives the process).
        scenario: the scenario the live engine runs (its arrivals are unused).
        admin_token: the bearer token of the admin endpoints; None disables them (403).
        shutdown_budget: seconds that SIGTERM gives in-flight orders to finish, in [0, 3600].
        ledger_path: the payment provider's ledger file; None puts it next to the SQLite file
            (or in the working directory for PostgreSQL).
        max_body_bytes: the largest request body accepted, in [1, 16 MiB].
        port_file: once listening, the service writes ``{"port": ..., "pid": ...}`` here.
        log_level: ``debug``, ``info``, ``warning`` or ``error``.
        access_log: log every request and every finished order (one JSON line each, at INFO).
        store_timeout: seconds a POST waits for its order to be committed before answering 503,
            in (0, 600]; a POST repeating an in-flight Idempotency-Key waits at most as long.
        db_statement_timeout: seconds any one database call may take (PostgreSQL
            ``statement_timeout`` plus a client-side deadline; the SQLite busy timeout), in
            (0, 600].
        db_connect_timeout: seconds opening a PostgreSQL connection may take, in [2, 600].
        watchdog_timeout: /livez fails when the writer thread has not taken a turn, or the
            engine's workers have made no progress while orders are in flight, for this many
            seconds, in [10, 3600]. (Database calls are bounded well below it: a slow or dead
            database never fails liveness, only a stuck thread does. It must exceed the longest
            an order can legitimately sit in a worker.)
    """

    host: str = "127.0.0.1"
    port: int = 8000
    database: str = "reliability-lab.sqlite3"
    scenario: Scenario | None = None
    admin_token: str | None = None
    shutdown_budget: float = 10.0
    ledger_path: str | None = None
    max_body_bytes: int = 16 * 1024
    port_file: str | None = None
    log_level: str = "info"
    access_log: bool = True
    store_timeout: float = 10.0
    db_statement_timeout: float = 5.0
    db_connect_timeout: float = 3.0
    watchdog_timeout: float = 60.0

    def __post_init__(self) -> None:
        for name, lo, hi, seconds, lo_open in _RANGES:
            _checks.in_range(name, getattr(self, name), lo, hi, seconds=seconds, lo_open=lo_open)
        parse_database_url(self.database)
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ValueError(
                f"log_level must be one of debug, info, warning, error; got {self.log_level!r}"
            )
        if self.admin_token is not None and len(self.admin_token) < 8:
            raise ValueError("admin_token must be at least 8 characters long")
        if self.watchdog_timeout <= 2 * (self.db_statement_timeout + self.db_connect_timeout):
            raise ValueError(
                "watchdog_timeout must exceed twice db_statement_timeout + db_connect_timeout "
                f"(a writer retrying a slow database is not stuck), got {self.watchdog_timeout!r}"
            )

    @property
    def effective_scenario(self) -> Scenario:
        """The scenario to run (the default one when none was given)."""
        return self.scenario if self.scenario is not None else default_scenario()

    @property
    def effective_ledger_path(self) -> Path:
        """Where the payment ledger lives."""
        if self.ledger_path is not None:
            return Path(self.ledger_path)
        kind, target = parse_database_url(self.database)
        if kind == "sqlite":
            return Path(target + ".ledger")
        # PostgreSQL and memory: in the working directory.
        return Path("reliability-lab.ledger")
