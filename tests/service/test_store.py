"""The store on its own, against SQLite and PostgreSQL: migrations, batches, the terminal guard,
recovery queries, and parameterised SQL."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("psycopg", reason="the service extra (fastapi, uvicorn, psycopg) is missing")

from reliability_lab.service.store import NewOrder, Store, Transition
from service_helpers import DatabaseFactory


def order(i: int, key: str | None = None) -> NewOrder:
    return NewOrder(i, key, f"h{i}", f"c{i}", "cust", 100 + i, "EUR", "queued", time.time())


def test_schema_is_created_once_and_reopening_migrates_nothing(
    make_database: DatabaseFactory,
) -> None:
    url = make_database()
    for _ in range(2):
        s = Store(url)
        s.open()
        versions = s._read(lambda c: c.execute("SELECT version FROM schema_version").fetchall())
        assert [tuple(v) for v in versions] == [(1,)]
        s.close()


def test_batches_transitions_and_the_terminal_guard(make_database: DatabaseFactory) -> None:
    s = Store(make_database())
    s.open()
    try:
        now = time.time()
        # An order inserted and moved on in one batch; another only inserted.
        s.write_batch(
            [order(1, "k1"), order(2)],
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
        s.write_batch([order(1, evil)], [Transition(1, "failed", evil, time.time())])
        assert s.find_by_idempotency_key(evil) == (1, "h1")
        assert s.get_order(1)["reason"] == evil  # type: ignore[index]
    finally:
        s.close()
