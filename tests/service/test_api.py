"""The HTTP API against a running service: lifecycle, idempotency, probes, auth, bad bodies,
pagination and metrics. One service per database kind serves the whole module."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service extra (fastapi, uvicorn, psycopg) is missing")

import httpx
from prometheus_client.parser import text_string_to_metric_families
from reliability_lab.service.harness import ServiceProcess, TempPostgres, find_pg_bin
from service_helpers import (
    ADMIN_TOKEN,
    TERMINAL,
    all_orders,
    post_order,
    wait_for,
    write_scenario,
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServiceProcess, httpx.Client]]:
    tmp = tmp_path_factory.mktemp(f"api-{request.param}")
    if request.param == "sqlite":
        database = str(tmp / "orders.sqlite3")
    else:
        if find_pg_bin() is None:
            pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed")
        pg: TempPostgres = request.getfixturevalue("postgres")
        database = pg.create_database(f"rlab_api_{int(time.time() * 1000) % 10**8}")
    # Fast and reliable payment, so lifecycle tests finish quickly; failures are exercised
    # elsewhere.
    scenario = write_scenario(
        tmp / "scenario.json",
        faults={"failure_rate": 0.0, "latency": {"type": "constant", "value": 0.005}},
    )
    proc = ServiceProcess(
        database=database,
        workdir=tmp,
        args=[
            "--scenario",
            str(scenario),
            "--admin-token",
            ADMIN_TOKEN,
            "--access-log",
            "--ledger",
            str(tmp / "payments.ledger"),
            "--max-body-bytes",
            "2048",
        ],
    )
    proc.start()
    with httpx.Client(base_url=proc.url, timeout=30) as client:
        wait_for(lambda: client.get("/startupz").status_code == 200, what="startup")
        yield proc, client
    rc = proc.stop(timeout=60)
    assert rc == 0, proc.log_text()


def terminal_order(client: httpx.Client, order_id: int) -> dict[str, Any]:
    box: dict[str, Any] = {}

    def done() -> bool:
        r = client.get(f"/orders/{order_id}")
        assert r.status_code == 200, r.text
        box.update(r.json())
        return bool(box["status"] in TERMINAL)

    wait_for(done, what=f"order {order_id} to finish")
    return box


def test_order_lifecycle(api: tuple[ServiceProcess, httpx.Client]) -> None:
    proc, client = api
    r = post_order(client, customer_id="bob", amount_cents=999)
    assert r.status_code == 202, r.text
    order_id = r.json()["id"]
    assert r.headers["location"] == f"/orders/{order_id}"
    order = terminal_order(client, order_id)
    assert order["status"] == "completed"
    assert order["customer_id"] == "bob" and order["amount_cents"] == 999
    assert order["attempts"] >= 1 and order["charges"] == 1
    statuses = [t["status"] for t in order["transitions"]]
    assert statuses[0] == "queued" and statuses[-1] == "completed"
    assert "processing" in statuses
    times = [t["at"] for t in order["transitions"]]
    assert times == sorted(times)
    assert client.get("/orders/99999999").status_code == 404
    # The log has the order's lines, as JSON with the order id and the route template.
    wait_for(
        lambda: any(
            e.get("order_id") == order_id and e.get("route") == "/orders/{order_id}"
            for e in proc.log_events()
        ),
        what="the access log line",
    )
    wait_for(
        lambda: any(
            e.get("event") == "order_finished"
            and e.get("order_id") == order_id
            and e.get("status") == "completed"
            for e in proc.log_events()
        ),
        what="the order_finished log line",
    )


def test_idempotency_key_gives_the_same_order(api: tuple[ServiceProcess, httpx.Client]) -> None:
    _, client = api
    key = f"idem-{time.time_ns()}"
    first = post_order(client, key=key, amount_cents=500)
    again = post_order(client, key=key, amount_cents=500)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.headers.get("idempotent-replayed") == "true"
    # The same key with a different body is a client bug: refused, naming the header.
    clash = post_order(client, key=key, amount_cents=501)
    assert clash.status_code == 409
    assert clash.json()["field"] == "Idempotency-Key"
    order = terminal_order(client, first.json()["id"])
    assert order["idempotency_key"] == key and order["charges"] == 1


def test_concurrent_requests_with_one_key_create_one_order(
    api: tuple[ServiceProcess, httpx.Client],
) -> None:
    proc, _ = api
    key = f"race-{time.time_ns()}"

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=proc.url, timeout=30) as c:
            return post_order(c, key=key)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(one, range(16)))
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == 1


def test_probes(api: tuple[ServiceProcess, httpx.Client]) -> None:
    _, client = api
    assert client.get("/livez").status_code == 200
    assert client.get("/startupz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "not_draining": True,
        "engine_running": True,
        "writer_running": True,
        "writes_succeed": True,
        "store": True,
    }


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/debug/internals", None),
        ("PUT", "/lab/faults", {"dependency": "payment", "faults": {"failure_rate": 0.5}}),
    ],
)
def test_admin_endpoints_need_the_bearer_token(
    api: tuple[ServiceProcess, httpx.Client], method: str, path: str, body: Any
) -> None:
    _, client = api
    none = client.request(method, path, json=body)
    assert none.status_code == 401
    assert none.headers["www-authenticate"].startswith("Bearer")
    basic = client.request(method, path, json=body, headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401
    wrong = client.request(method, path, json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403


def test_internals_with_the_token(api: tuple[ServiceProcess, httpx.Client]) -> None:
    _, client = api
    r = client.get("/debug/internals", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["service"]["accepting"] is True
    assert body["engine"]["running"] is True


def test_put_faults(api: tuple[ServiceProcess, httpx.Client]) -> None:
    _, client = api
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    bad = client.put(
        "/lab/faults",
        json={"dependency": "payment", "faults": {"failure_rate": 2}},
        headers=auth,
    )
    assert bad.status_code == 422
    assert bad.json()["fields"][0]["field"] == "faults"
    assert "failure_rate" in bad.json()["fields"][0]["message"]
    unknown = client.put("/lab/faults", json={"dependency": "nope", "faults": {}}, headers=auth)
    assert unknown.status_code == 422 and unknown.json()["fields"][0]["field"] == "dependency"
    ok = client.put(
        "/lab/faults",
        json={
            "dependency": "payment",
            "faults": {"failure_rate": 0.0, "latency": {"type": "constant", "value": 0.002}},
        },
        headers=auth,
    )
    internals = client.get("/debug/internals", headers=auth).json()
    if not internals["service"]["hooks"]["set_faults"]:
        assert ok.status_code == 501
        pytest.skip("this engine build has no Lab.set_faults yet")
    assert ok.status_code == 200, ok.text
    assert ok.json()["faults"]["latency"]["value"] == 0.002
    # The chaos switch takes effect: with every attempt failing, a new order fails... (its four
    # attempts stay under the breaker's five consecutive failures: the breaker stays closed.)
    down = {"failure_rate": 1.0, "latency": {"type": "constant", "value": 0.002}}
    r = client.put("/lab/faults", json={"dependency": "payment", "faults": down}, headers=auth)
    assert r.status_code == 200, r.text
    try:
        failed = terminal_order(client, post_order(client).json()["id"])
        assert failed["status"] == "failed" and failed["charges"] == 0
    finally:  # ...and the module's later tests get a healthy payment service back.
        up = {"failure_rate": 0.0, "latency": {"type": "constant", "value": 0.005}}
        r = client.put("/lab/faults", json={"dependency": "payment", "faults": up}, headers=auth)
        assert r.status_code == 200, r.text
    assert terminal_order(client, post_order(client).json()["id"])["status"] == "completed"
    internals = client.get("/debug/internals", headers=auth).json()
    assert internals["engine"]["dependencies"]["payment"]["faults_version"] >= 3
    # PATCH merges: only the given field changes.
    r = client.patch(
        "/lab/faults",
        json={"dependency": "payment", "faults": {"ambiguous_rate": 0.0}},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    assert r.json()["faults"]["latency"] == {"type": "constant", "value": 0.005}
    assert client.patch("/lab/faults", json={}).status_code == 401


def _fields(r: httpx.Response) -> set[str]:
    return {f["field"] for f in r.json().get("fields", [])} | (
        {r.json()["field"]} if "field" in r.json() else set()
    )


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"amount_cents": 100}, 422, "customer_id"),
        ({"customer_id": "a", "amount_cents": "100"}, 422, "amount_cents"),
        ({"customer_id": "a", "amount_cents": 0}, 422, "amount_cents"),
        ({"customer_id": "a", "amount_cents": 1, "currency": "euro"}, 422, "currency"),
        ({"customer_id": "a b", "amount_cents": 1}, 422, "customer_id"),
        ({"customer_id": "a", "amount_cents": 1, "coupon": "x"}, 422, "coupon"),
        ([1, 2], 422, "body"),
    ],
)
def test_bad_bodies_name_the_field(
    api: tuple[ServiceProcess, httpx.Client], body: Any, status: int, field: str
) -> None:
    _, client = api
    r = client.post("/orders", json=body)
    assert r.status_code == status, r.text
    assert field in _fields(r), r.json()


def test_malformed_json_oversized_body_and_bad_header(
    api: tuple[ServiceProcess, httpx.Client],
) -> None:
    _, client = api
    r = client.post(
        "/orders", content=b'{"customer_id": ', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_json"
    big = json.dumps({"customer_id": "a", "amount_cents": 1, "pad": "x" * 5000}).encode()
    r = client.post("/orders", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["field"] == "body"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
        yield b'{"customer_id": "a", "amount_cents": 1, "pad": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    r = client.post("/orders", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = post_order(client, key="has space")
    assert r.status_code == 400 and r.json()["field"] == "Idempotency-Key"
    assert client.get("/orders/abc").status_code == 422
    assert "order_id" in _fields(client.get("/orders/abc"))


def test_list_pagination_and_filters(api: tuple[ServiceProcess, httpx.Client]) -> None:
    _, client = api
    ids = [post_order(client, customer_id=f"page{i}").json()["id"] for i in range(5)]
    for i in ids:
        terminal_order(client, i)
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/orders", params=params).json()
        assert len(page["orders"]) <= 2
        seen += [o["id"] for o in page["orders"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and set(ids) <= set(seen)
    completed = all_orders(client, status="completed")
    assert set(ids) <= {o["id"] for o in completed}
    assert all(o["status"] == "completed" for o in completed)
    assert "status" in _fields(client.get("/orders", params={"status": "bogus"}))
    assert "limit" in _fields(client.get("/orders", params={"limit": 0}))
    assert "cursor" in _fields(client.get("/orders", params={"cursor": "!!"}))


def test_metrics_use_route_templates(api: tuple[ServiceProcess, httpx.Client]) -> None:
    _, client = api
    oid = post_order(client).json()["id"]
    client.get(f"/orders/{oid}")
    client.get("/orders/123456789")
    client.get("/no/such/path")
    text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    routes = {s.labels["route"] for s in families["http_requests"].samples}
    assert "/orders/{order_id}" in routes and "unmatched" in routes
    assert not any(r.startswith("/orders/") and r != "/orders/{order_id}" for r in routes)
    assert {s.labels["status_class"] for s in families["http_requests"].samples} <= {
        "1xx",
        "2xx",
        "3xx",
        "4xx",
        "5xx",
    }
    assert "http_request_duration_seconds" in families
    # The engine's own families are there too.
    assert any(name.startswith("rlab_") and name != "rlab_service_draining" for name in families)
    assert "rlab_service_store_batches" in families
