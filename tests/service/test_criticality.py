"""Criticality classes and tenants over HTTP (``intake.shedding``): an order's ``criticality``
and ``tenant`` are checked, stored, shown, hashed for Idempotency-Keys, given to the engine's
shedder (a shed order answers 503 like a full queue and is charged nothing) and kept by the
recovery after a kill -9. Real service processes on SQLite and PostgreSQL; no timing assertion
(payments are slow enough that the queue stays where the test put it)."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service extra (fastapi, uvicorn, psycopg) is missing")

import httpx
from reliability_lab.service.harness import ServiceProcess
from reliability_lab.service.store import NewOrder, Store
from service_helpers import (
    TERMINAL,
    DatabaseFactory,
    all_orders,
    post_order,
    wait_for,
    write_scenario,
)

TENANTS = ("acme", "noisy")


def _shedding(
    *,
    fair_share_above: float | None = None,
    tenants: tuple[str, ...] = TENANTS,
    occupancy: tuple[float, float, float] = (1.0, 0.8, 0.5),
) -> dict[str, Any]:
    """``intake`` in the scenario's dict form: the three classes' ``max_occupancy``
    (critical, default, sheddable), no delay target, the given tenants."""
    crit, default, shed = occupancy
    return {
        "shedding": {
            "critical": {"traffic": 0.0, "max_occupancy": crit, "max_queue_delay": None},
            "default": {"traffic": 1.0, "max_occupancy": default, "max_queue_delay": None},
            "sheddable": {"traffic": 0.0, "max_occupancy": shed, "max_queue_delay": None},
            "delay_interval": 0.1,
            "fair_share_above": fair_share_above,
            "tenants": [{"name": t, "weight": 1.0, "traffic": 1.0} for t in tenants],
        }
    }


def _scenario(path: Path, *, latency: float, workers: int, queue: int, **intake: Any) -> Path:
    return write_scenario(
        path,
        workers=workers,
        queue_capacity=queue,
        intake=_shedding(**intake),
        faults={"failure_rate": 0.0, "latency": {"type": "constant", "value": latency}},
    )


def _fields(r: httpx.Response) -> dict[str, str]:
    return {f["field"]: f["message"] for f in r.json().get("fields") or []}


def _intake_counts(client: httpx.Client, family: str, label: str) -> dict[tuple[str, str], float]:
    """``{(label value, outcome): count}`` of the engine's intake counter ``family``."""
    out: dict[tuple[str, str], float] = {}
    pattern = re.compile(rf"^{family}_total\{{(.*)\}} (\S+)$")
    for line in client.get("/metrics").text.splitlines():
        m = pattern.match(line)
        if m is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        out[(labels[label], labels["outcome"])] = float(m.group(2))
    return out


def test_class_and_tenant_are_checked_stored_shown_and_hashed(
    make_database: DatabaseFactory, start_service: Any, tmp_path: Path
) -> None:
    scenario = _scenario(tmp_path / "s.json", latency=0.005, workers=4, queue=100)
    svc: ServiceProcess = start_service(make_database(), "--scenario", str(scenario))
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        # Bad values first: 422 naming the field, the allowed values and the value; no row.
        bad = [
            ({"criticality": "urgent"}, "criticality", ["'critical'", "'sheddable'", "'urgent'"]),
            ({"criticality": ""}, "criticality", ["'default'", "''"]),
            ({"criticality": 2}, "criticality", []),
            ({"tenant": "nobody"}, "tenant", ["'acme'", "'noisy'", "'nobody'"]),
            ({"tenant": ""}, "tenant", ["'acme'", "''"]),
            ({"tenant": 7}, "tenant", []),
        ]
        for body, field, words in bad:
            r = post_order(client, **body)
            assert r.status_code == 422, r.text
            assert r.json()["error"] == "validation_failed"
            assert field in r.json()["message"]
            message = _fields(r)[field]
            for word in words:
                assert word in message, message
        assert all_orders(client) == []

        made = {
            ("critical", "acme"): post_order(client, criticality="critical", tenant="acme"),
            ("sheddable", "noisy"): post_order(client, criticality="sheddable", tenant="noisy"),
            ("default", None): post_order(client),
        }
        ids = {}
        for (criticality, tenant), r in made.items():
            assert r.status_code == 202, r.text
            ids[r.json()["id"]] = (criticality, tenant)
            got = client.get(f"/orders/{r.json()['id']}").json()
            assert (got["criticality"], got["tenant"]) == (criticality, tenant)
        listed = {o["id"]: (o["criticality"], o["tenant"]) for o in all_orders(client)}
        assert listed == ids

        # Idempotency-Keys: naming the default class is the same body as leaving it out; another
        # class or tenant under the same key is another body (409, as for any other field).
        first = post_order(client, key="k-1")
        assert first.status_code == 202
        same = post_order(client, key="k-1", criticality="default")
        assert same.status_code == 202 and same.json()["id"] == first.json()["id"]
        for change in ({"criticality": "critical"}, {"tenant": "acme"}):
            r = post_order(client, key="k-1", **change)
            assert r.status_code == 409, r.text
            assert r.json()["error"] == "idempotency_key_reused"
        keyed = post_order(client, key="k-2", criticality="sheddable", tenant="acme")
        again = post_order(client, key="k-2", criticality="sheddable", tenant="acme")
        assert again.status_code == 202 and again.json()["id"] == keyed.json()["id"]
        assert post_order(client, key="k-2", criticality="sheddable").status_code == 409

        wait_for(
            lambda: all(o["status"] in TERMINAL for o in all_orders(client)),
            what="every order to finish",
        )
        assert {o["status"] for o in all_orders(client)} == {"completed"}
        # The engine saw each order's class and tenant (its intake counters).
        by_class = _intake_counts(client, "rlab_intake_orders", "criticality")
        assert by_class[("critical", "admitted")] == 1
        assert by_class[("sheddable", "admitted")] == 2
        by_tenant = _intake_counts(client, "rlab_intake_tenant_orders", "tenant")
        # An order naming no tenant counts against the first declared one.
        assert by_tenant[("acme", "admitted")] == 4
        assert by_tenant[("noisy", "admitted")] == 1

        doc = client.get("/openapi.json").json()["components"]["schemas"]
        props = doc["OrderIn"]["properties"]
        assert props["criticality"]["enum"] == ["critical", "default", "sheddable"]
        assert props["criticality"]["default"] == "default"
        assert {"type": "string", "enum": list(TENANTS)} in props["tenant"]["anyOf"]
        assert {"criticality", "tenant"} <= set(doc["Order"]["properties"])


def test_overload_sheds_sheddable_orders_first(
    make_database: DatabaseFactory, start_service: Any, tmp_path: Path
) -> None:
    # One worker on 5 s payments, a queue of 20: sheddable orders are refused from 10 queued,
    # default ones from 16, critical ones only by a full queue. Nothing finishes meanwhile.
    scenario = _scenario(tmp_path / "s.json", latency=5.0, workers=1, queue=20)
    svc: ServiceProcess = start_service(
        make_database(), "--scenario", str(scenario), "--shutdown-budget", "0.5"
    )
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        for _ in range(11):  # 10 or 11 queued (the worker may not have taken the first yet)
            r = post_order(client)
            assert r.status_code == 202, r.text
        shed = post_order(client, key="shed-me", criticality="sheddable", tenant="noisy")
        assert shed.status_code == 503, shed.text
        assert shed.json()["error"] == "shed" and "sheddable" in shed.json()["message"]
        assert int(shed.headers["retry-after"]) >= 1
        # Default orders still get in, up to their own threshold; then they are shed too.
        codes = []
        for _ in range(10):
            r = post_order(client)
            codes.append(r.status_code)
            if r.status_code == 503:
                assert r.json()["error"] == "shed", r.text
                break
        assert codes[0] == 202 and codes[-1] == 503, codes
        # Critical orders are still taken; sheddable ones still are not.
        assert post_order(client, criticality="critical").status_code == 202
        assert post_order(client, criticality="sheddable").status_code == 503
        # The refused key bound nothing: under it, a critical order is a new order.
        retried = post_order(client, key="shed-me", criticality="critical", tenant="noisy")
        assert retried.status_code == 202, retried.text

        orders = all_orders(client)
        refused = [o for o in orders if o["status"] == "rejected"]
        assert [(o["criticality"], o["reason"]) for o in refused] == [
            ("sheddable", "shed"),
            ("default", "shed"),
            ("sheddable", "shed"),
        ]
        assert all(o["charges"] == 0 and o["idempotency_key"] is None for o in refused)
        assert refused[0]["tenant"] == "noisy"
        by_class = _intake_counts(client, "rlab_intake_orders", "criticality")
        assert by_class[("sheddable", "shed")] == 2
        assert by_class[("default", "shed")] == 1
        assert by_class[("critical", "shed")] == 0
        assert by_class[("critical", "admitted")] == 2


def test_a_noisy_tenant_is_shed_and_the_others_are_not(start_service: Any, tmp_path: Path) -> None:
    # Only fairness sheds here (every class up to a full queue): from 5 of 20 queued, each
    # tenant with orders queued may hold its half.
    scenario = _scenario(
        tmp_path / "s.json",
        latency=5.0,
        workers=1,
        queue=20,
        fair_share_above=0.25,
        occupancy=(1.0, 1.0, 1.0),
    )
    svc: ServiceProcess = start_service(
        str(tmp_path / "orders.sqlite3"), "--scenario", str(scenario), "--shutdown-budget", "0.5"
    )
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        for _ in range(12):  # alone, the noisy tenant may fill the queue
            assert post_order(client, tenant="noisy").status_code == 202
        assert post_order(client, tenant="acme").status_code == 202
        # Now two tenants share the queue: noisy holds more than its half, even for critical.
        for criticality in ("default", "critical"):
            r = post_order(client, tenant="noisy", criticality=criticality)
            assert r.status_code == 503 and r.json()["error"] == "shed", r.text
        for _ in range(3):
            assert post_order(client, tenant="acme").status_code == 202
        by_tenant = _intake_counts(client, "rlab_intake_tenant_orders", "tenant")
        assert by_tenant[("noisy", "shed")] == 2 and by_tenant[("acme", "shed")] == 0


def test_a_restart_drives_orders_again_with_their_class_and_tenant(
    make_database: DatabaseFactory, start_service: Any, tmp_path: Path
) -> None:
    # Two workers on 5 s payments: at the kill every order is still in flight.
    scenario = _scenario(tmp_path / "s.json", latency=5.0, workers=2, queue=100)
    database = make_database()
    svc: ServiceProcess = start_service(database, "--scenario", str(scenario))
    mix = [("critical", "acme"), ("sheddable", "noisy"), ("default", None), ("sheddable", "acme")]
    sent: dict[int, tuple[str, str | None]] = {}
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        for i in range(12):
            criticality, tenant = mix[i % len(mix)]
            body: dict[str, Any] = {"criticality": criticality}
            if tenant is not None:
                body["tenant"] = tenant
            r = post_order(client, key=f"r-{i}", **body)
            assert r.status_code == 202, r.text
            sent[r.json()["id"]] = (criticality, tenant)
    svc.kill()

    again: ServiceProcess = start_service(
        database, "--scenario", str(scenario), "--shutdown-budget", "0.5"
    )
    with httpx.Client(base_url=again.url, timeout=30) as client:
        wait_for(lambda: client.get("/startupz").status_code == 200, what="recovery")
        orders = {o["id"]: o for o in all_orders(client)}
        assert {i: (o["criticality"], o["tenant"]) for i, o in orders.items()} == sent
        recovered = [o for o in orders.values() if o["runs"] > 1]
        assert recovered, "the kill should have left orders in flight"
        # The new engine admitted each recovered order as its own class and tenant.
        by_class = _intake_counts(client, "rlab_intake_orders", "criticality")
        by_tenant = _intake_counts(client, "rlab_intake_tenant_orders", "tenant")
        for criticality in ("critical", "default", "sheddable"):
            want = sum(1 for o in recovered if o["criticality"] == criticality)
            assert by_class[(criticality, "admitted")] == want, (criticality, by_class)
        for tenant in TENANTS:
            want = sum(1 for o in recovered if (o["tenant"] or TENANTS[0]) == tenant)
            assert by_tenant[(tenant, "admitted")] == want, (tenant, by_tenant)
        # A replay after the restart is still judged on the stored class and tenant.
        replay = post_order(client, key="r-0", criticality="critical", tenant="acme")
        assert replay.status_code == 202 and replay.json()["id"] == min(sent)
        assert post_order(client, key="r-0", criticality="default").status_code == 409


def test_a_restart_without_the_tenant_recovers_the_order_anyway(
    start_service: Any, tmp_path: Path
) -> None:
    """Restarted with a scenario that no longer declares the order's tenant: the order is
    driven again (as the default tenant, logged) rather than left unfinished."""
    database = str(tmp_path / "orders.sqlite3")
    slow = _scenario(tmp_path / "s.json", latency=5.0, workers=1, queue=100)
    svc: ServiceProcess = start_service(database, "--scenario", str(slow))
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        for _ in range(3):
            assert post_order(client, tenant="noisy", criticality="critical").status_code == 202
    svc.kill()
    fast = write_scenario(
        tmp_path / "plain.json",
        faults={"failure_rate": 0.0, "latency": {"type": "constant", "value": 0.005}},
    )
    again: ServiceProcess = start_service(database, "--scenario", str(fast))
    with httpx.Client(base_url=again.url, timeout=30) as client:
        wait_for(
            lambda: all(o["status"] == "completed" for o in all_orders(client)),
            what="the recovered orders to complete",
        )
        orders = all_orders(client)
        assert len(orders) == 3 and all(o["runs"] == 2 for o in orders)
        assert all(o["tenant"] == "noisy" for o in orders)  # the record keeps what was asked
        # Without tenants, naming one is refused; a class is still taken (recorded only).
        r = post_order(client, tenant="noisy")
        assert r.status_code == 422 and "no tenants" in _fields(r)["tenant"], r.text
        assert post_order(client, criticality="sheddable").status_code == 202
    changed = [e for e in again.log_events() if e.get("event") == "recovery_origin_changed"]
    assert len(changed) == 3 and {e["field"] for e in changed} == {"tenant"}


def test_version_2_databases_get_class_and_tenant_columns(
    make_database: DatabaseFactory, db_kind: str
) -> None:
    """A database written before the columns existed: its orders read as ``default`` of no
    tenant, are recovered as such, and new orders store their own."""
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
        for version, statements in d.migrations:
            if version <= 2:
                for stmt in statements:
                    conn.execute(stmt)
                conn.execute(f"INSERT INTO schema_version VALUES ({version}, 0)")
        conn.execute(
            "INSERT INTO orders (id, idempotency_key, request_hash, charge_key, customer_id, "
            "amount_cents, currency, status, created_at, updated_at) "
            "VALUES (7, 'old', 'h', 'c7', 'x', 1, 'EUR', 'queued', 0, 0)"
        )
    finally:
        conn.close()
    s = Store(url)
    s.open()
    try:
        got = s.get_order(7)
        assert got is not None and (got["criticality"], got["tenant"]) == ("default", None)
        [r] = s.write_batch(
            [
                NewOrder(
                    "new",
                    "h2",
                    "c8",
                    "y",
                    2,
                    "EUR",
                    time.time(),
                    criticality="critical",
                    tenant="acme",
                )
            ]
        )
        assert r.created
        new = s.get_order(r.id)
        assert new is not None and (new["criticality"], new["tenant"]) == ("critical", "acme")
        # (In id order; the PostgreSQL sequence began before row 7 was written by hand.)
        assert [tuple(o) for o in s.orders_to_recover()] == sorted(
            [(7, "c7", "default", None), (r.id, "c8", "critical", "acme")]
        )
    finally:
        s.close()


def test_a_body_without_class_or_tenant_hashes_as_before() -> None:
    """Keys stored by servers that predate the fields keep matching their bodies; naming the
    default class is the same body as leaving it out; anything else is another body."""
    from reliability_lab.service.routes.orders import OrderIn

    plain = {"customer_id": "a", "amount_cents": 1, "currency": "EUR"}
    assert OrderIn(**plain).hash_payload() == plain
    assert OrderIn(**plain, criticality="default", tenant=None).hash_payload() == plain
    assert OrderIn(**plain, criticality="critical").hash_payload() != plain
    assert OrderIn(**plain, tenant="acme").hash_payload() == {**plain, "tenant": "acme"}


@pytest.mark.parametrize("gate", ["rate_limited", "limited"])
def test_an_intake_limit_refusal_answers_with_its_own_reason(
    start_service: Any, tmp_path: Path, gate: str
) -> None:
    # One order fits (a burst of one / a concurrency limit of one, its payment taking 5 s); the
    # next is refused by that gate and answers 503 with the gate's reason, charged nothing.
    import reliability_lab as rl

    intake = (
        rl.Intake(rate_limit=rl.RateLimit(rate=0.01, burst=1))
        if gate == "rate_limited"
        else rl.Intake(limit=rl.Limit(kind="static", initial=1))
    )
    scenario = write_scenario(
        tmp_path / "s.json",
        workers=1,
        queue_capacity=20,
        intake=rl.Scenario(intake=intake).to_dict()["intake"],
        faults={"failure_rate": 0.0, "latency": {"type": "constant", "value": 5.0}},
    )
    svc: ServiceProcess = start_service(
        str(tmp_path / "orders.sqlite3"), "--scenario", str(scenario), "--shutdown-budget", "0.5"
    )
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        assert post_order(client, key="first").status_code == 202
        r = post_order(client, key="second")
        assert r.status_code == 503, r.text
        assert r.json()["error"] == gate and "retry later" in r.json()["message"]
        assert r.headers["Retry-After"] == "1"
        refused = [o for o in all_orders(client) if o["status"] == "rejected"]
        assert [(o["reason"], o["charges"]) for o in refused] == [(gate, 0)]
        # The key was released: the same request may be sent again.
        assert post_order(client, key="second").status_code in (202, 503)
