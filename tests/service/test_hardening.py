"""The service when the database misbehaves, and several servers on one database.

The database is frozen for real: PostgreSQL's postmaster and backends get SIGSTOP (connections
stay open, nothing answers), SQLite's file is held by another writer. Every wait in these tests
is bounded by a client timeout; no assertion is about a duration.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service extra (fastapi, uvicorn, psycopg) is missing")

import httpx
from reliability_lab.service.config import ServiceConfig, load_scenario
from reliability_lab.service.core import OrderService, _Active, charge_key_for
from reliability_lab.service.harness import ServiceProcess, TempPostgres, read_ledger
from reliability_lab.service.store import Transition
from service_helpers import (
    TERMINAL,
    DatabaseFactory,
    all_orders,
    post_order,
    wait_for,
    write_scenario,
)

# Tight database bounds, so that the tests see outages quickly.
FAST = ["--store-timeout", "2", "--db-statement-timeout", "1", "--db-connect-timeout", "2"]


def _quick_scenario(path: Path, **payment: Any) -> Path:
    # Payments that always succeed at once: every completed order is charged exactly once.
    return write_scenario(
        path,
        workers=8,
        payment={"retry": None, "breaker": None, **payment},
        faults={"failure_rate": 0.0, "latency": {"type": "constant", "value": 0.01}},
    )


def _charges(ledgers: list[Path], key: str) -> int:
    ck = charge_key_for(key)
    return sum(1 for p in ledgers for line in read_ledger(p) if line.endswith("\t" + ck))


@contextlib.contextmanager
def _log_on_failure(svc: ServiceProcess) -> Iterator[None]:
    try:
        yield
    except BaseException:
        print(svc.log_text()[-20000:])  # the service's side of the story, in the report
        raise


@contextlib.contextmanager
def _frozen(db_kind: str, database: str, request: pytest.FixtureRequest) -> Iterator[None]:
    """The store stops answering: PostgreSQL stopped with SIGSTOP, or the SQLite file locked
    by another writer. Always resumed."""
    if db_kind == "postgresql":
        pg: TempPostgres = request.getfixturevalue("postgres")
        try:
            assert pg.freeze(), "no PostgreSQL process to stop"
            yield
        finally:
            pg.thaw()
        return
    conn = sqlite3.connect(database, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        conn.close()


def test_a_503_while_the_store_is_down_charges_nothing(
    db_kind: str,
    make_database: DatabaseFactory,
    start_service: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """While the database is frozen, a POST answers 503 in bounded time, so does a POST
    repeating its in-flight key, reads and /readyz; /livez stays 200. Once the database is back
    the 503'd orders never reach the payment provider, and their keys make new orders."""
    ledger = tmp_path / "frozen.ledger"
    database = make_database()
    svc: ServiceProcess = start_service(
        database, "--scenario", str(_quick_scenario(tmp_path / "q.json")), *FAST, ledger=ledger
    )
    with httpx.Client(base_url=svc.url, timeout=30) as client, _log_on_failure(svc):
        assert post_order(client, key="before").status_code == 202
        wait_for(lambda: client.get("/readyz").status_code == 200, what="readiness")
        with _frozen(db_kind, database, request):
            with ThreadPoolExecutor(3) as pool:
                # The same key twice at once: the second waits for the first, boundedly.
                futs = [pool.submit(post_order, client, "frozen-1") for _ in range(2)]
                futs.append(pool.submit(post_order, client, "frozen-2"))
                answers = [f.result(timeout=60) for f in futs]
            for r in answers:
                assert r.status_code == 503, r.text
                assert r.json()["error"] in ("store_unavailable", "busy")
                assert int(r.headers["retry-after"]) >= 1
            for _ in range(3):  # readiness has its own tight bound, reconnecting or not
                ready = client.get("/readyz", timeout=3)
                assert ready.status_code == 503, ready.text
            assert client.get("/livez", timeout=3).status_code == 200
            if db_kind == "postgresql":
                # Pooled reads are bounded too, and the answer does not leak the driver's words.
                page = client.get("/orders", timeout=30)
                assert page.status_code == 503
                assert page.json()["error"] == "store_unavailable"
                pg: TempPostgres = request.getfixturevalue("postgres")
                assert str(pg.port) not in page.text and "127.0.0.1" not in page.text
        wait_for(lambda: client.get("/readyz").status_code == 200, what="readiness again")
        wait_for(
            lambda: all(o["status"] in TERMINAL for o in all_orders(client)),
            what="every order to settle",
        )
        orders = all_orders(client)
        # Stored while the request was giving up: recorded as cancelled, its key released.
        assert all(o["idempotency_key"] not in ("frozen-1", "frozen-2") for o in orders)
        for o in orders:
            if o["idempotency_key"] is None:
                assert (o["status"], o["reason"], o["charges"]) == ("cancelled", "not_stored", 0)
        assert _charges([ledger], "frozen-1") == 0 and _charges([ledger], "frozen-2") == 0
        # The client's retry makes the order for real, charged once.
        retry = post_order(client, key="frozen-1")
        assert retry.status_code == 202 and "idempotent-replayed" not in retry.headers
        oid = retry.json()["id"]
        wait_for(lambda: client.get(f"/orders/{oid}").json()["status"] == "completed")
    assert _charges([ledger], "frozen-1") == 1
    assert _charges([ledger], "before") == 1


def test_two_servers_on_one_database_are_one_service(
    db_kind: str, make_database: DatabaseFactory, start_service: Any, tmp_path: Path
) -> None:
    """50 concurrent POSTs of one Idempotency-Key spread over two servers make one order and
    at most one charge; unkeyed orders get distinct ids; every charge has its order row."""
    database = make_database()
    scenario = str(_quick_scenario(tmp_path / "q.json"))
    ledgers = [tmp_path / "a.ledger", tmp_path / "b.ledger"]
    servers: list[ServiceProcess] = [
        start_service(database, "--scenario", scenario, ledger=ledgers[i]) for i in (0, 1)
    ]
    clients = [httpx.Client(base_url=s.url, timeout=60) for s in servers]
    try:
        with ThreadPoolExecutor(50) as pool:
            same = list(pool.map(lambda i: post_order(clients[i % 2], key="same-key"), range(50)))
            plain = list(pool.map(lambda i: post_order(clients[i % 2]), range(60)))
        assert [r.status_code for r in same] == [202] * 50, [r.text for r in same]
        assert len({r.json()["id"] for r in same}) == 1
        assert [r.status_code for r in plain] == [202] * 60
        ids = [r.json()["id"] for r in plain]
        assert len(set(ids)) == 60 and same[0].json()["id"] not in ids
        for c in clients:
            assert c.get("/readyz").status_code == 200
        wait_for(
            lambda: all(o["status"] in TERMINAL for o in all_orders(clients[0])),
            what="every order to finish",
        )
        orders = all_orders(clients[1])
        assert len(orders) == 61
        assert sum(1 for o in orders if o["idempotency_key"] == "same-key") == 1
        completed = sum(1 for o in orders if o["status"] == "completed")
        assert completed == 61
    finally:
        for c in clients:
            c.close()
    assert _charges(ledgers, "same-key") == 1
    # One ledger line per completed order: no charge without its row, none twice.
    assert sum(len(read_ledger(p)) for p in ledgers) == completed


def test_in_memory_store_degraded_flag_and_forged_cursor(
    start_service: Any, tmp_path: Path
) -> None:
    """``--database memory`` serves the same API; an order completed on a fallback says so;
    a cursor past the 64-bit id range is a 422, not a store error."""
    # A charging dependency may not fall back (its order would complete uncharged), so the
    # fallback sits on a read before the payment: "pricing" always fails and serves a default.
    scenario = write_scenario(
        tmp_path / "fallback.json",
        workers=4,
        payment={"retry": None, "breaker": None},
        faults={"failure_rate": 0.0, "latency": {"type": "constant", "value": 0.01}},
    )
    d = json.loads(scenario.read_text())
    pricing = copy.deepcopy(d["dependencies"][0])
    pricing.update(
        name="pricing", charges=False, idempotency_keys=False, fallback={"kind": "default"}
    )
    pricing["faults"]["failure_rate"] = 1.0
    d["dependencies"].insert(0, pricing)
    scenario.write_text(json.dumps(d))
    svc: ServiceProcess = start_service("memory", "--scenario", str(scenario))
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        ids = [post_order(client, key=f"m{i}").json()["id"] for i in range(5)]
        assert post_order(client, key="m0").json()["id"] == ids[0]
        wait_for(lambda: all(o["status"] in TERMINAL for o in all_orders(client)))
        for i in ids:
            got = client.get(f"/orders/{i}").json()
            assert (got["status"], got["degraded"]) == ("completed", True), got
        assert all(o["degraded"] for o in all_orders(client))
        assert client.get("/readyz").status_code == 200
        forged = base64.urlsafe_b64encode(json.dumps({"after": 2**63}).encode()).decode()
        r = client.get("/orders", params={"cursor": forged.rstrip("=")})
        assert r.status_code == 422 and r.json()["error"] == "validation_failed"


def test_liveness_reports_a_stuck_writer_not_a_slow_database(tmp_path: Path) -> None:
    """The watchdog: a writer that stops taking turns fails liveness; a store that fails
    (every call bounded) does not, and neither do workers waiting on a hanging dependency."""
    hang = write_scenario(
        tmp_path / "hang.json",
        workers=1,
        payment={"retry": None, "breaker": None},
        faults={"failure_rate": 0.0, "latency": {"type": "constant", "value": 1000.0}},
    )
    cfg = ServiceConfig(
        scenario=load_scenario(hang),
        database=str(tmp_path / "w.sqlite3"),
        ledger_path=str(tmp_path / "w.ledger"),
        db_statement_timeout=1.0,
        db_connect_timeout=2.0,
        watchdog_timeout=10.0,
        access_log=False,
    )
    svc = OrderService(cfg)
    svc.start()
    release = threading.Event()
    try:
        assert svc.liveness() == {"writer": True, "workers": True}
        assert svc.lab is not None
        with svc._lock:  # an order stuck in a dependency call, and nothing moved for long
            handle = svc._engine_submit(svc.lab, "hanging")
            svc._active[handle.id] = _Active(1, handle, "queued")
        wait_for(lambda: svc.lab.internals()["busy_workers"] == 1)  # type: ignore[union-attr]
        svc._progress_at -= 1000
        assert svc.liveness()["workers"] is True
        real = svc.store.write
        calls = {"n": 0}

        def failing(batch: Any) -> Any:
            calls["n"] += 1
            if calls["n"] <= 3:
                from reliability_lab.service.store import StoreError

                raise StoreError("the database is down")
            release.wait(60)  # then: stuck for good
            return real(batch)

        svc.store.write = failing  # type: ignore[method-assign]
        with svc._lock:
            svc._extra.append(Transition(1, "queued", "", time.time()))
        svc._wake.set()
        wait_for(lambda: calls["n"] >= 3, what="failing writes")
        assert svc.liveness()["writer"] is True  # failing writes are not a stuck writer
        wait_for(lambda: not svc.liveness()["writer"], timeout=60, what="the watchdog")
    finally:
        release.set()
        svc.drain(0.0)


def test_a_batch_the_schema_refuses_fails_without_wedging_the_writer(
    db_kind: str, make_database: DatabaseFactory, start_service: Any, tmp_path: Path
) -> None:
    """A write that breaks a constraint fails the same way however often it is retried: its
    orders are refused (503, nothing charged) and the writer goes on with the next ones."""
    database = make_database()
    ledger = tmp_path / "refused.ledger"
    svc: ServiceProcess = start_service(
        database, "--scenario", str(_quick_scenario(tmp_path / "q.json")), ledger=ledger
    )
    # The operator's own rule, added behind the service's back.
    if db_kind == "postgresql":
        import psycopg

        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(
                "ALTER TABLE orders ADD CONSTRAINT not_6666 CHECK (amount_cents <> 6666) NOT VALID"
            )
    else:
        with contextlib.closing(sqlite3.connect(database, timeout=30)) as conn:
            conn.execute(
                "CREATE TRIGGER not_6666 BEFORE INSERT ON orders WHEN NEW.amount_cents = 6666 "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
            conn.commit()
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        bad = post_order(client, key="refused", amount_cents=6666)
        assert bad.status_code == 503 and bad.json()["error"] == "store_unavailable"
        good = post_order(client, key="fine")
        assert good.status_code == 202, good.text
        assert client.get("/readyz").status_code == 200
        wait_for(lambda: all(o["status"] in TERMINAL for o in all_orders(client)))
        assert [o["idempotency_key"] for o in all_orders(client)] == ["fine"]
    assert _charges([ledger], "refused") == 0 and _charges([ledger], "fine") == 1
