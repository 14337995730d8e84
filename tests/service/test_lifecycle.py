"""Whole-process behaviour: overload, graceful SIGTERM, and kill -9 followed by a restart.

Each test starts its own service process(es) on a fresh database (SQLite and PostgreSQL). No
assertion is about durations: waits poll generously, and only outcomes are checked.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service extra (fastapi, uvicorn, psycopg) is missing")

import httpx
from reliability_lab.service.harness import (
    ServiceProcess,
    TempPostgres,
    double_charges,
    find_pg_bin,
    read_ledger,
)
from service_helpers import (
    ADMIN_TOKEN,
    TERMINAL,
    DatabaseFactory,
    all_orders,
    post_order,
    wait_for,
    write_scenario,
)

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def hooks(client: httpx.Client) -> dict[str, bool]:
    return dict(client.get("/debug/internals", headers=AUTH).json()["service"]["hooks"])


def test_overload_answers_503_with_retry_after(
    make_database: DatabaseFactory, start_service: Any, tmp_path: Path
) -> None:
    # One worker, a queue of two, half-second payments: the third concurrent order overflows.
    scenario = write_scenario(
        tmp_path / "tiny.json",
        workers=1,
        queue_capacity=2,
        faults={"failure_rate": 0.0, "latency": {"type": "constant", "value": 0.5}},
    )
    svc: ServiceProcess = start_service(make_database(), "--scenario", str(scenario))
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        responses = [post_order(client) for _ in range(12)]
        codes = [r.status_code for r in responses]
        assert 202 in codes and 503 in codes, codes
        for r in responses:
            if r.status_code == 503:
                assert r.json()["error"] == "queue_full"
                assert int(r.headers["retry-after"]) >= 1
        # A refused order binds nothing: its Idempotency-Key works once there is room again.
        key = f"overload-{time.time_ns()}"
        first = None
        for _ in range(10):
            first = post_order(client, key=key)
            if first.status_code == 503:
                break
        box: dict[str, Any] = {}

        def accepted() -> bool:
            r = post_order(client, key=key)
            box["r"] = r
            return r.status_code == 202

        wait_for(accepted, what="room in the queue")
        again = post_order(client, key=key)
        assert again.json()["id"] == box["r"].json()["id"]
        text = client.get("/metrics").text
        assert 'route="/orders",status_class="5xx"' in text


def test_sigterm_drains_then_exits_zero(
    make_database: DatabaseFactory, start_service: Any, tmp_path: Path
) -> None:
    # Two workers, 0.3 s payments, 20 orders, a 1 s budget: some finish, the rest are cancelled.
    scenario = write_scenario(
        tmp_path / "slow.json",
        workers=2,
        queue_capacity=100,
        faults={"failure_rate": 0.0, "latency": {"type": "constant", "value": 0.3}},
    )
    database = make_database()
    svc: ServiceProcess = start_service(
        database, "--scenario", str(scenario), "--shutdown-budget", "1.0"
    )
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        ids = []
        for _ in range(20):
            r = post_order(client)
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        svc.terminate()
        # Readiness flips first; the listener stays up while in-flight work drains.
        saw_unready = False
        saw_refused_intake = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and svc.proc is not None and svc.proc.poll() is None:
            try:
                if client.get("/readyz").status_code == 503:
                    saw_unready = True
                    r = post_order(client)
                    if r.status_code == 503 and r.json()["error"] == "shutting_down":
                        saw_refused_intake = True
                        break
            except httpx.TransportError:
                break  # already gone: the exit code below still has to be clean
            time.sleep(0.01)
    rc = svc.wait(timeout=60)
    assert rc == 0, svc.log_text()
    assert saw_unready and saw_refused_intake, svc.log_text()
    events = [e.get("event") for e in svc.log_events()]
    assert "drain_complete" in events
    # Restart on the same database: every order is terminal, none is driven again.
    again: ServiceProcess = start_service(database, "--scenario", str(scenario))
    with httpx.Client(base_url=again.url, timeout=30) as client:
        orders = {o["id"]: o for o in all_orders(client)}
        assert set(ids) <= set(orders)
        statuses = [orders[i]["status"] for i in ids]
        assert set(statuses) <= {"completed", "cancelled"}, statuses
        assert "cancelled" in statuses
        cancelled = [orders[i] for i in ids if orders[i]["status"] == "cancelled"]
        assert all(o["reason"] for o in cancelled)
        assert all(orders[i]["runs"] == 1 for i in ids)


class _Load:
    """Posts orders from a thread until stopped; remembers what was accepted."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.accepted: dict[int, str] = {}  # order id -> idempotency key
        self.unanswered: list[str] = []  # keys whose POST got no response (the crash)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        n = 0
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set():
                key = f"load-{n}"
                customer = f"c{n % 7}"
                n += 1
                try:
                    r = post_order(client, key=key, customer_id=customer)
                except httpx.TransportError:
                    self.unanswered.append(key)
                    return
                if r.status_code == 202:
                    self.accepted[r.json()["id"]] = key


def _crash_scenario(path: Path, idempotency_keys: bool) -> Path:
    # Slow, flaky, ambiguous payments and few workers: at the crash many orders are queued or
    # mid-retry, and some of their charges were applied although the response was "lost".
    return write_scenario(
        path,
        workers=8,
        queue_capacity=2000,
        payment={"idempotency_keys": idempotency_keys, "attempt_timeout": 0.5},
        faults={
            "failure_rate": 0.3,
            "ambiguous_rate": 0.3,
            "latency": {"type": "exponential", "mean": 0.2},
        },
    )


def test_kill9_then_restart_finishes_every_order_without_double_charges(
    make_database: DatabaseFactory, start_service: Any, tmp_path: Path
) -> None:
    scenario = _crash_scenario(tmp_path / "crash.json", idempotency_keys=True)
    ledger = tmp_path / "crash.ledger"
    database = make_database()
    svc: ServiceProcess = start_service(database, "--scenario", str(scenario), ledger=ledger)
    load = _Load(svc.url)
    load.thread.start()
    with httpx.Client(base_url=svc.url, timeout=30) as probe:

        def busy() -> bool:
            # Kill only once work is surely in flight, however slow this machine is today.
            engine = probe.get("/debug/internals", headers=AUTH).json()["engine"]
            return len(load.accepted) >= 100 and engine["in_flight"] >= 10

        wait_for(busy, what="load to get going")
    svc.kill()  # kill -9, mid-load
    load.stop.set()
    load.thread.join(30)
    assert load.accepted

    again: ServiceProcess = start_service(database, "--scenario", str(scenario), ledger=ledger)
    with httpx.Client(base_url=again.url, timeout=30) as client:
        hook = hooks(client)
        # A key accepted before the crash still names its order after the restart.
        some_id, some_key = next(iter(load.accepted.items()))
        replay = post_order(client, key=some_key, customer_id=f"c{int(some_key[5:]) % 7}")
        assert replay.status_code == 202 and replay.json()["id"] == some_id
        # The client retries what the crash left unanswered: the same key, never a second order.
        for key in load.unanswered:
            r = post_order(client, key=key, customer_id="retry")
            assert r.status_code in (202, 409), r.text

        def all_terminal() -> bool:
            return all(o["status"] in TERMINAL for o in all_orders(client))

        wait_for(all_terminal, timeout=120, what="every order to reach a terminal state")
        orders = {o["id"]: o for o in all_orders(client)}
        assert set(load.accepted) <= set(orders)
        keys = [o["idempotency_key"] for o in orders.values() if o["idempotency_key"]]
        assert len(keys) == len(set(keys))
        recovered = [o for o in orders.values() if o["runs"] > 1]
        assert recovered, "the crash should have left orders in flight"
    events = [e for e in again.log_events() if e.get("event") == "recovery_done"]
    assert events and events[0]["recovered"] == len(recovered)
    if not hook["ledger_path"]:
        pytest.skip("every order finished; this engine build has no payment ledger to check")
    lines = read_ledger(ledger)
    assert lines, "the ledger recorded no charge"
    assert double_charges(lines) == {}


def test_negative_control_without_idempotency_keys_the_ledger_shows_doubles(
    db_kind: str, make_database: DatabaseFactory, start_service: Any, tmp_path: Path
) -> None:
    if db_kind != "sqlite":
        pytest.skip("the ledger check does not depend on the database; SQLite covers it")
    # Only ambiguous failures (the charge applied, the response lost) and no breaker to cut the
    # retries short: every retry after one re-applies a charge that carries no key.
    scenario = write_scenario(
        tmp_path / "nokeys.json",
        workers=16,
        payment={"idempotency_keys": False, "attempt_timeout": 0.5, "breaker": None},
        faults={
            "failure_rate": 0.0,
            "ambiguous_rate": 0.3,
            "latency": {"type": "constant", "value": 0.01},
        },
    )
    ledger = tmp_path / "nokeys.ledger"
    svc: ServiceProcess = start_service(make_database(), "--scenario", str(scenario), ledger=ledger)
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        if not hooks(client)["ledger_path"]:
            pytest.skip("this engine build has no payment ledger")
        for i in range(100):
            assert post_order(client, key=f"nk-{i}").status_code == 202
        wait_for(
            lambda: all(o["status"] in TERMINAL for o in all_orders(client)),
            what="every order to finish",
        )
    # Retries after ambiguous failures re-apply charges when keys are off: the check sees them.
    assert double_charges(read_ledger(ledger)) != {}


def test_store_outage_readiness_and_recovery(start_service: Any, tmp_path: Path) -> None:
    """PostgreSQL goes away: /readyz says so (livez does not), a POST answers 503 instead of
    hanging, and once the server is back the writer reconnects and nothing is lost."""
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed")
    pg = TempPostgres(fsync=False).start()
    svc: ServiceProcess | None = None
    try:
        svc = start_service(pg.create_database("outage"), "--store-timeout", "2")
        with httpx.Client(base_url=svc.url, timeout=30) as client:
            first = post_order(client)
            assert first.status_code == 202
            pg.pause()
            wait_for(lambda: client.get("/readyz").status_code == 503, what="readyz to fail")
            assert client.get("/readyz").json()["checks"]["store"] is False
            assert client.get("/livez").status_code == 200
            during = post_order(client, key="during-outage")
            assert during.status_code == 503
            assert during.json()["error"] == "store_unavailable"
            pg.resume()
            wait_for(lambda: client.get("/readyz").status_code == 200, what="readyz to recover")
            # The 503 meant nothing happened: the order never reached the engine (if its row
            # was written after all, it is recorded as cancelled and its key released), so the
            # client's retry with the key makes the order, once.
            box: dict[str, Any] = {}

            def stored() -> bool:
                r = post_order(client, key="during-outage")
                box["r"] = r
                return r.status_code == 202

            wait_for(stored, what="the retried order to be stored")
            assert box["r"].headers.get("idempotent-replayed") is None
            again = post_order(client, key="during-outage")
            assert again.json()["id"] == box["r"].json()["id"]
            assert again.headers.get("idempotent-replayed") == "true"
            wait_for(
                lambda: all(o["status"] in TERMINAL for o in all_orders(client)),
                what="every order to finish",
            )
            orders = all_orders(client)
            assert [o for o in orders if o["idempotency_key"] == "during-outage"] != []
            voided = [o for o in orders if o["reason"] == "not_stored"]
            assert all(o["status"] == "cancelled" and o["charges"] == 0 for o in voided)
            assert len(orders) - len(voided) == 2
        assert svc.stop(timeout=60) == 0
    finally:
        if svc is not None:
            svc.stop(timeout=60)
        pg.stop()
