"""The admin routes on a service graph: ``PUT``/``PATCH /lab/faults`` and
``PUT``/``PATCH /lab/breaker/{dependency}`` name a service's own dependency
``"<service>.<dependency>"``, as the results and :meth:`reliability_lab.Lab.set_faults` do, and
refuse an unknown service or dependency as they refuse an unknown name (422 / 404)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi", reason="the service extra (fastapi, uvicorn, psycopg) is missing")

import httpx
import reliability_lab as rl
from reliability_lab.service.config import default_scenario
from reliability_lab.service.harness import ServiceProcess
from service_helpers import ADMIN_TOKEN, post_order, wait_for
from test_api import terminal_order
from test_dashboard import read_stream

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FAST = {"latency": {"type": "constant", "value": 0.002}}


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """The default payment lab whose root also calls service ``risk`` (one dependency,
    ``score``, with a breaker) before paying."""
    tmp = tmp_path_factory.mktemp("admin-graph")
    d = default_scenario().to_dict()
    d["dependencies"][0]["faults"].update(FAST)
    d["dependencies"].insert(0, rl.Dependency("to_risk", service="risk").to_dict())
    score = rl.Dependency(
        "score", faults=rl.Faults(latency=rl.Constant(0.002)), breaker=rl.Breaker()
    )
    d["services"] = [rl.Service(name="risk", dependencies=(score,)).to_dict()]
    path = tmp / "scenario.json"
    path.write_text(json.dumps(rl.Scenario.from_dict(d).to_dict()))
    proc = ServiceProcess(
        database=str(tmp / "orders.sqlite3"),
        workdir=tmp,
        args=["--scenario", str(path), "--ledger", str(tmp / "payments.ledger"), "--no-access-log"],
        env={"RLAB_ADMIN_TOKEN": ADMIN_TOKEN},
    )
    proc.start()
    with httpx.Client(base_url=proc.url, timeout=30) as client:
        wait_for(lambda: client.get("/startupz").status_code == 200, what="startup")
        yield client
    assert proc.stop(timeout=60) == 0, proc.log_text()


def test_faults_route_reaches_a_services_own_dependency(graph: httpx.Client) -> None:
    client = graph
    assert terminal_order(client, post_order(client).json()["id"])["status"] == "completed"
    down = {"failure_rate": 1.0, **FAST}
    r = client.put("/lab/faults", json={"dependency": "risk.score", "faults": down}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "dependency": "risk.score",
        "faults": rl.Dependency(
            faults=rl.Faults(failure_rate=1.0, latency=rl.Constant(0.002))
        ).to_dict()["faults"],
    }
    try:
        # Every call to risk fails now (risk's score fails): the order fails before paying.
        failed = terminal_order(client, post_order(client).json()["id"])
        assert failed["status"] == "failed" and failed["charges"] == 0
    finally:
        r = client.patch(
            "/lab/faults",
            json={"dependency": "risk.score", "faults": {"failure_rate": 0.0}},
            headers=AUTH,
        )
        assert r.status_code == 200, r.text
        assert r.json()["faults"]["latency"] == {"type": "constant", "value": 0.002}
    assert terminal_order(client, post_order(client).json()["id"])["status"] == "completed"
    # The scenario's own check names the path; unknown services and dependencies are refused.
    bad = client.patch(
        "/lab/faults",
        json={"dependency": "risk.score", "faults": {"failure_rate": 2}},
        headers=AUTH,
    )
    assert bad.status_code == 422, bad.text
    message = bad.json()["fields"][0]["message"]
    assert "services[risk].dependencies[score].faults.failure_rate" in message
    for name, why in (("nope.score", "no service named 'nope'"), ("risk.nope", "risk.nope")):
        r = client.put("/lab/faults", json={"dependency": name, "faults": {}}, headers=AUTH)
        assert r.status_code == 422, r.text
        assert r.json()["fields"][0]["field"] == "dependency"
        assert why in r.json()["fields"][0]["message"]
    # A dependency that calls a service keeps the default faults (the service's carry them).
    r = client.put("/lab/faults", json={"dependency": "to_risk", "faults": down}, headers=AUTH)
    assert r.status_code == 422 and "to_risk.faults" in r.text, r.text


def test_breaker_route_reaches_a_services_own_dependency(graph: httpx.Client) -> None:
    client = graph
    url = "/lab/breaker/risk.score"
    r = client.patch(url, json={"consecutive_failures": 3}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["dependency"] == "risk.score"
    assert r.json()["breaker"] == rl.Breaker(consecutive_failures=3).to_dict()
    r = client.put(url, json={"open_for": 10.0, "consecutive_failures": 7}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["breaker"] == rl.Breaker(consecutive_failures=7, open_for=10.0).to_dict()
    r = client.patch(url, json={"open_for": -1}, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["fields"][0]["field"] == "breaker.open_for"
    assert (
        "services[risk].dependencies[score].breaker.open_for must be"
        in r.json()["message"] + (r.json()["fields"][0]["message"])
    )
    for name, why in (("nope.score", "no service named 'nope'"), ("risk.nope", "risk.nope")):
        r = client.patch(f"/lab/breaker/{name}", json={"open_for": 1.0}, headers=AUTH)
        assert r.status_code == 404, r.text
        assert why in r.json()["message"]
    # The root's call to the service has no breaker: one cannot be added while running.
    r = client.patch("/lab/breaker/to_risk", json={"open_for": 1.0}, headers=AUTH)
    assert r.status_code == 409, r.text
    r = client.get("/debug/internals", headers=AUTH)
    assert r.status_code == 200, r.text


def test_dashboard_controls_reach_a_services_own_dependency(graph: httpx.Client) -> None:
    """The control room's knobs name a service's own dependency as the admin routes do; the
    charts stay on the root's dependencies (the engine's families are labelled by them)."""
    client = graph
    event, history = read_stream(f"{client.base_url}/dashboard/stream", 1)[0]
    assert event == "history"
    assert history["dependencies"] == ["to_risk", "payment"]
    assert history["controls"] == ["to_risk", "payment", "risk.score"]
    assert history["breakers"]["risk.score"] is not None
    body = {"action": "failure_rate", "dependency": "risk.score", "value": 1.0}
    r = client.post("/dashboard/actions", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    try:
        failed = terminal_order(client, post_order(client).json()["id"])
        assert failed["status"] == "failed" and failed["charges"] == 0
    finally:
        body["value"] = 0.0
        assert client.post("/dashboard/actions", json=body, headers=AUTH).status_code == 200
    assert terminal_order(client, post_order(client).json()["id"])["status"] == "completed"
    change = {"action": "breaker", "dependency": "risk.score", "breaker": {"open_for": 4.0}}
    r = client.post("/dashboard/actions", json=change, headers=AUTH)
    assert r.status_code == 200, r.text
    r = client.patch("/lab/breaker/risk.score", json={}, headers=AUTH)
    assert r.status_code == 200 and r.json()["breaker"]["open_for"] == 4.0, r.text
    unknown = {"action": "outage", "dependency": "risk.nope"}
    r = client.post("/dashboard/actions", json=unknown, headers=AUTH)
    assert r.status_code == 422 and "risk.nope" in r.text, r.text
