"""The store on its own, against SQLite and PostgreSQL: migrations, batches, the terminal guard,
recovery queries, and parameterised SQL."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("psycopg", reason="the service extra (fastapi, uvicorn, psycopg) is missing")

from reliability_lab.service.harness import TempPostgres
from reliability_lab.service.store import (
    Batch,
    Inserted,
    NewOrder,
    Store,
    StoreConstraintError,
    StoreError,
    Transition,
)
from service_helpers import DatabaseFactory


def order(i: int, key: str | None = None) -> NewOrder:
    return NewOrder(key, f"h{i}", f"c{i}", "cust", 100 + i, "EUR", time.time())


def test_schema_is_created_once_and_reopening_migrates_nothing(
    make_database: DatabaseFactory,
) -> None:
    url = make_database()
    for _ in range(2):
        s = Store(url)
        s.open()
        versions = s._read(lambda c: c.execute("SELECT version FROM schema_version").fetchall())
        assert [tuple(v) for v in versions] == [(1,), (2,), (3,)]
        s.close()


def test_batches_transitions_and_the_terminal_guard(make_database: DatabaseFactory) -> None:
    s = Store(make_database())
    s.open()
    try:
        now = time.time()
        # The database assigns the ids; the new rows are pending until the engine reports.
        got_ids = s.write_batch([order(1, "k1"), order(2)])
        assert [(r.id, r.created) for r in got_ids] == [(1, True), (2, True)]
        assert s.get_order(1)["status"] == "pending"  # type: ignore[index]
        s.write_batch(
            [],
            [
                Transition(1, "queued", "", now),
                Transition(1, "processing", "", now + 0.1),
                Transition(2, "queued", "", now),
            ],
        )
        assert s.get_order(1)["status"] == "processing"  # type: ignore[index]
        s.write_batch([], [Transition(1, "completed", "", now + 0.2, attempts=2, charges=1)])
        # A late event cannot revive a terminal order.
        s.write_batch([], [Transition(1, "processing", "", now + 0.3)])
        got = s.get_order(1)
        assert got is not None
        assert (got["status"], got["attempts"], got["charges"]) == ("completed", 2, 1)
        assert [t["status"] for t in got["transitions"]] == [
            "queued",
            "processing",
            "completed",
            "processing",
        ]
        assert s.active_orders() == [(2, "c2")]
        s.write_batch([], [Transition(2, "queued", "recovered", now)], recovered=[2])
        assert s.get_order(2)["runs"] == 2  # type: ignore[index]
        assert s.find_by_idempotency_key("k1") == (1, "h1")
        assert s.find_by_idempotency_key("nope") is None
        assert s.recent_idempotency_keys(10) == [("k1", 1, "h1")]
        assert s.max_order_id() == 2
        assert [o["id"] for o in s.list_orders(status=None, after_id=0, limit=10)] == [1, 2]
        assert [o["id"] for o in s.list_orders(status="queued", after_id=0, limit=10)] == [2]
        assert s.count_by_status() == {"completed": 1, "queued": 1}
        assert s.ping()
    finally:
        s.close()


def test_request_data_never_becomes_sql(make_database: DatabaseFactory) -> None:
    s = Store(make_database())
    s.open()
    try:
        evil = "x'); DROP TABLE orders; --"
        s.write_batch([order(1, evil)])
        s.write_batch([], [Transition(1, "failed", evil, time.time())])
        assert s.find_by_idempotency_key(evil) == (1, "h1")
        assert s.get_order(1)["reason"] == evil  # type: ignore[index]
    finally:
        s.close()


def test_the_in_memory_store_has_the_same_interface() -> None:
    s = Store("memory")
    s.open()
    try:
        assert s.kind == "memory" and s.sqlite_path is None
        [r] = s.write_batch([order(1, "k1")])
        s.write_batch([], [Transition(r.id, "completed", "", time.time(), 1, 1, degraded=True)])
        got = s.get_order(r.id)
        assert got is not None and got["status"] == "completed" and got["degraded"] is True
        assert s.write_batch([order(2, "k1")]) == [Inserted(r.id, False, "h1")]
        assert s.ping()
    finally:
        s.close()


def test_the_database_assigns_ids_and_enforces_idempotency_keys_across_stores(
    make_database: DatabaseFactory,
) -> None:
    """Two stores on one database (two servers): concurrent batches of the same keys give one
    order per key, and unkeyed orders never collide on an id."""
    url = make_database()
    stores = [Store(url), Store(url)]
    for s in stores:
        s.open()
    results: list[list[Inserted]] = [[], []]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            for n in range(40):
                batch = [order(n, f"k{n}"), order(100 + n), order(200 + n)]
                results[i] += stores[i].write_batch(batch)
        except BaseException as e:  # reported below
            errors.append(e)

    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        everything = results[0] + results[1]
        created = [r.id for r in everything if r.created]
        assert len(created) == len(set(created)) == 40 + 2 * 80
        by_key: dict[int, set[int]] = {}
        for i in (0, 1):
            for n, r in enumerate(results[i][0::3]):
                by_key.setdefault(n, set()).add(r.id)
        assert all(len(ids) == 1 for ids in by_key.values()), by_key
        assert len(stores[0].list_orders(status=None, after_id=0, limit=1000)) == 40 + 2 * 80
    finally:
        for s in stores:
            s.close()


def test_a_released_key_makes_a_new_order(make_database: DatabaseFactory) -> None:
    s = Store(make_database())
    s.open()
    try:
        [first] = s.write_batch([order(1, "k")])
        # Stored but never handed to the engine: recorded as cancelled, the key freed.
        s.write_batch(
            [], [Transition(first.id, "cancelled", "not_stored", time.time())], (), [first.id]
        )
        [second] = s.write_batch([order(1, "k")])
        assert second.created and second.id != first.id
        assert s.find_by_idempotency_key("k") == (second.id, "h1")
        assert s.get_order(first.id)["status"] == "cancelled"  # type: ignore[index]
    finally:
        s.close()


def test_a_constraint_error_is_reported_as_such_and_the_store_goes_on(
    make_database: DatabaseFactory,
) -> None:
    s = Store(make_database())
    s.open()
    try:
        bad = Transition(1, None, "", time.time())  # type: ignore[arg-type]  # NOT NULL
        with pytest.raises(StoreConstraintError):
            s.write_batch([order(1)], [bad])
        assert s.max_order_id() == 0  # nothing of the failed batch was written
        [r] = s.write_batch([order(2)])
        assert r.created and s.get_order(r.id) is not None
    finally:
        s.close()


def test_version_1_databases_are_migrated(make_database: DatabaseFactory, db_kind: str) -> None:
    """A database written by a v1 server (ids chosen by the server) gets the degraded column
    and database-assigned ids that continue after its highest id."""
    from reliability_lab.service import store as store_mod

    url = make_database()
    d = store_mod.POSTGRES if db_kind == "postgresql" else store_mod.SQLITE
    conn: Any
    if db_kind == "postgresql":
        import psycopg

        conn = psycopg.connect(url, autocommit=True)
    else:
        conn = sqlite3.connect(url, isolation_level=None)
    try:
        conn.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        for stmt in d.migrations[0][1]:
            conn.execute(stmt)
        conn.execute("INSERT INTO schema_version VALUES (1, 0)")
        conn.execute(
            "INSERT INTO orders (id, idempotency_key, request_hash, charge_key, customer_id, "
            "amount_cents, currency, status, created_at, updated_at) "
            "VALUES (41, 'old', 'h', 'c', 'x', 1, 'EUR', 'completed', 0, 0)"
        )
    finally:
        conn.close()
    s = Store(url)
    s.open()
    try:
        got = s.get_order(41)
        assert got is not None and got["degraded"] is False
        [r] = s.write_batch([order(1, "new")])
        assert r.created and r.id > 41
    finally:
        s.close()


def test_the_degraded_flag_is_stored(make_database: DatabaseFactory) -> None:
    s = Store(make_database())
    s.open()
    try:
        a, b = s.write_batch([order(1), order(2)])
        now = time.time()
        s.write_batch(
            [],
            [
                Transition(a.id, "completed", "", now, 1, 1, degraded=True),
                Transition(b.id, "completed", "", now, 1, 1),
            ],
        )
        assert s.get_order(a.id)["degraded"] is True  # type: ignore[index]
        listed = {o["id"]: o["degraded"] for o in s.list_orders(status=None, after_id=0, limit=9)}
        assert listed == {a.id: True, b.id: False}
    finally:
        s.close()


def test_sqlite_wal_stays_bounded_under_steady_load(tmp_path: Path) -> None:
    """Batches without pause while a reader keeps reading: the write-ahead log is reset and
    restarted (and cut back to its size limit) instead of growing with every order."""
    path = tmp_path / "wal.sqlite3"
    limit = 1 << 20
    s = Store(str(path), wal_max_bytes=limit)
    s.open()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            s.list_orders(status="pending", after_id=0, limit=5)
            s.checkpoint()  # what the service's checkpoint thread does

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    biggest = 0
    try:
        for n in range(1500):
            rs = s.write_batch([order(10 * n + i) for i in range(10)])
            s.write_batch([], [Transition(r.id, "queued", "", time.time()) for r in rs])
            if n % 50 == 0:
                biggest = max(biggest, os.stat(f"{path}-wal").st_size)
        biggest = max(biggest, os.stat(f"{path}-wal").st_size)
    finally:
        stop.set()
        t.join(30)
        s.close()
    # 15,000 orders and 30,000 rows written: several MB of log without the bound.
    assert s.wal_resets > 0
    assert biggest <= 4 * limit, biggest


def test_a_write_cut_short_by_a_frozen_server_is_resolved_on_retry(
    postgres: TempPostgres,
) -> None:
    """PostgreSQL stops answering mid-batch (SIGSTOP): the call fails at its deadline instead
    of hanging. The statement may still commit when the server resumes: retrying the same
    batch finds that out, so every order is stored once and under the ids it was given."""
    s = Store(postgres.create_database(f"rlab_cut_{time.time_ns() % 10**8}"), statement_timeout=0.5)
    s.open()
    try:
        s.write_batch([order(0)])  # reserves a block of ids: the next batch needs no round trip
        batch = Batch([order(1, "cut"), order(2)])
        box: dict[str, Any] = {}

        def attempt() -> None:
            try:
                box["r"] = s.write(batch)
            except StoreError as e:
                box["e"] = e

        try:
            assert postgres.freeze()
            t = threading.Thread(target=attempt, daemon=True)
            t.start()
            t.join(30)
            assert not t.is_alive(), "the write hung on the frozen server"
            assert not s.ping(0.5)
        finally:
            postgres.thaw()
        assert isinstance(box.get("e"), StoreError), box
        first_ids = list(batch.ids or [])
        for _ in range(20):  # the writer's retry loop, bounded
            try:
                s.reconnect_writer()
                got = s.write(batch)
                break
            except StoreError:
                time.sleep(0.2)
        else:
            raise AssertionError("the retry never succeeded")
        assert [(r.id, r.created) for r in got] == [(i, True) for i in first_ids]
        rows = s.list_orders(status=None, after_id=0, limit=10)
        assert len(rows) == 3 and s.find_by_idempotency_key("cut") == (first_ids[0], "h1")
        assert s.ping()
    finally:
        s.close()
