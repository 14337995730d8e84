"""Fixtures for the service tests: a real PostgreSQL server, databases, service processes.

Every test talks real HTTP to ``python -m reliability_lab.service`` running in a subprocess on
loopback. The database-dependent tests run twice, against SQLite and against a PostgreSQL server
this session starts (initdb + pg_ctl in a temporary directory on a free port); the PostgreSQL
runs are skipped, with the reason, only when the PostgreSQL binaries are not installed.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from reliability_lab.service.harness import (
    ServiceProcess,
    TempPostgres,
    find_pg_bin,
)
from service_helpers import ADMIN_TOKEN, DatabaseFactory

_names = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[TempPostgres]:
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed")
    pg = TempPostgres(fsync=False)
    try:
        pg.start()
    except RuntimeError as e:
        pg.stop()
        pytest.fail(f"could not start PostgreSQL: {e}")
    yield pg
    pg.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_database(db_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> DatabaseFactory:
    """Returns a function giving the URL of a fresh database of the parametrised kind."""

    def make() -> str:
        n = next(_names)
        if db_kind == "sqlite":
            return str(tmp_path / f"orders-{n}.sqlite3")
        pg: TempPostgres = request.getfixturevalue("postgres")
        return pg.create_database(f"rlab_test_{n}_{int(time.time() * 1000) % 10**8}")

    return make


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Starts service processes (stopped with SIGTERM at the end of the test)."""
    procs: list[ServiceProcess] = []

    def start(database: str, *args: str, ledger: Path | None = None) -> ServiceProcess:
        extra = ["--admin-token", ADMIN_TOKEN, "--log-level", "info", "--access-log"]
        extra += ["--ledger", str(ledger or tmp_path / "payments.ledger")]
        p = ServiceProcess(database=database, workdir=tmp_path, args=[*extra, *args])
        procs.append(p)
        return p.start()

    yield start
    for p in procs:
        p.stop(timeout=60)
