"""The breaker knob over HTTP: ``PUT``/``PATCH /lab/breaker/{dependency}`` (admin token) and the
control room's ``breaker`` action, against a real ``serve`` process; the refusals in-process."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service extra (fastapi, uvicorn, psycopg) is missing")

import httpx
import reliability_lab as rl
from reliability_lab.service.app import create_app
from reliability_lab.service.config import ServiceConfig, default_scenario
from service_helpers import ADMIN_TOKEN, admin_service
from test_dashboard import read_stream

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_breaker_route_and_action(tmp_path: Path) -> None:
    with (
        admin_service(tmp_path, failure_rate=0.0) as svc,
        httpx.Client(base_url=svc.url, timeout=30) as client,
    ):
        url = "/lab/breaker/payment"
        assert client.patch(url, json={"consecutive_failures": 3}).status_code == 401
        wrong = {"Authorization": "Bearer wrong-token-123"}
        assert client.patch(url, json={"consecutive_failures": 3}, headers=wrong).status_code == 403

        # PATCH merges into the scenario's breaker (5 in a row, open 5 s).
        r = client.patch(url, json={"consecutive_failures": 3}, headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json()["dependency"] == "payment"
        assert r.json()["breaker"]["consecutive_failures"] == 3
        assert r.json()["breaker"]["open_for"] == 5.0
        # PUT replaces: the fields left out take the Breaker defaults.
        r = client.put(url, json={"open_for": 10.0, "consecutive_failures": 7}, headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json()["breaker"] == rl.Breaker(consecutive_failures=7, open_for=10.0).to_dict()

        # Refusals change nothing; the scenario's check names the field.
        for body, field, message in (
            ({"open_for": -1}, "breaker.open_for", "payment.breaker.open_for must be"),
            ({"open_for": 0.5, "max_open_for": 0.1}, "breaker", "max_open_for must be"),
            ({"half_open_max_calls": 0}, "breaker.half_open_max_calls", "must be"),
            ({"consecutive_failures": 0}, "breaker", "at least one trip policy"),
            ({"consecutive_failures": "3"}, "consecutive_failures", ""),
            ({"bogus": 1}, "bogus", ""),
        ):
            r = client.patch(url, json=body, headers=AUTH)
            assert r.status_code == 422, r.text
            assert r.json()["fields"][0]["field"].startswith(field), r.text
            assert message in r.json()["fields"][0]["message"]
        assert client.patch(url, content=b"{", headers=AUTH).status_code == 400
        r = client.patch("/lab/breaker/nope", json={"open_for": 1.0}, headers=AUTH)
        assert r.status_code == 404, r.text

        # The control room's action merges too, and answers 422 naming the path.
        actions = "/dashboard/actions"
        body: dict[str, Any] = {
            "action": "breaker",
            "dependency": "payment",
            "breaker": {"consecutive_failures": 4, "open_for": 2.5},
        }
        assert client.post(actions, json=body).status_code == 401
        r = client.post(actions, json=body, headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json()["text"] == "payment: breaker set (consecutive_failures 4, open_for 2.5 s)"
        assert r.json()["annotate"] is True
        for bad, message in (
            ({**body, "breaker": {"open_for": -1}}, "payment.breaker.open_for must be"),
            ({**body, "breaker": {}}, "breaker must be an object"),
            ({"action": "breaker", "dependency": "payment"}, "breaker must be an object"),
            ({**body, "dependency": "nope"}, "dependency"),
        ):
            r = client.post(actions, json=bad, headers=AUTH)
            assert r.status_code == 422, r.text
            assert message in r.json()["message"], r.text

        history = read_stream(svc.url + "/dashboard/stream", 1)[0][1]
        assert "breaker" in history["actions"]
        assert history["breakers"]["payment"]["consecutive_failures"] == 4
        assert history["breakers"]["payment"]["open_for"] == 2.5
        texts = [e["text"] for e in history["events"] if e.get("action") == "breaker"]
        assert texts == [
            "payment: breaker set (consecutive_failures 3, open_for 5 s) via /lab/breaker",
            "payment: breaker set (consecutive_failures 7, open_for 10 s) via /lab/breaker",
            "payment: breaker set (consecutive_failures 4, open_for 2.5 s)",
        ]


def _call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def test_a_dependency_without_a_breaker_is_a_conflict(tmp_path: Path) -> None:
    scenario = default_scenario().replace({"payment.breaker": None})
    config = ServiceConfig(
        database=str(tmp_path / "x.db"), admin_token=ADMIN_TOKEN, scenario=scenario
    )
    app = create_app(config)  # no lifespan: the engine never starts
    r = _call(app, "PATCH", "/lab/breaker/payment", json={"open_for": 1.0}, headers=AUTH)
    assert r.status_code == 409, r.text
    assert "payment has no breaker" in r.json()["message"]
    # With a breaker but no engine running: this build cannot apply it yet.
    app = create_app(ServiceConfig(database=str(tmp_path / "y.db"), admin_token=ADMIN_TOKEN))
    r = _call(app, "PATCH", "/lab/breaker/payment", json={"open_for": 1.0}, headers=AUTH)
    assert r.status_code == 501, r.text
