"""The routers are module-level and shared by every app: each app's handlers must still see
their own state (config, service, Idempotency-Keys), never another app's."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service extra (fastapi, uvicorn, psycopg) is missing")

import httpx
from fastapi import FastAPI
from reliability_lab.service.app import create_app
from reliability_lab.service.config import ServiceConfig
from reliability_lab.service.routes.common import app_state


def _app(tmp_path: Path, name: str, token: str) -> FastAPI:
    config = ServiceConfig(database=str(tmp_path / f"{name}.db"), admin_token=token)
    return create_app(config)


def _call(app: FastAPI, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request in-process (no lifespan: the engine never starts)."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def test_two_apps_keep_their_own_state(tmp_path: Path) -> None:
    a = _app(tmp_path, "a", "a-token-aaaa")
    b = _app(tmp_path, "b", "b-token-bbbb")
    assert app_state(a).keys is not app_state(b).keys
    assert app_state(a).service is not app_state(b).service
    for app, good, other in (
        (a, "a-token-aaaa", "b-token-bbbb"),
        (b, "b-token-bbbb", "a-token-aaaa"),
    ):
        # Past the token check, an invalid body is refused (400); the other app's token is not.
        ok = _call(
            app, "PUT", "/lab/faults", content=b"{", headers={"Authorization": f"Bearer {good}"}
        )
        assert ok.status_code == 400, ok.text
        assert ok.json()["error"] == "invalid_json"
        denied = _call(
            app, "PUT", "/lab/faults", content=b"{", headers={"Authorization": f"Bearer {other}"}
        )
        assert denied.status_code == 403, denied.text


def test_every_route_is_served_and_documented(tmp_path: Path) -> None:
    app = _app(tmp_path, "c", "c-token-cccc")
    paths = _call(app, "GET", "/openapi.json").json()["paths"]
    assert {p: sorted(ops) for p, ops in paths.items()} == {
        "/orders": ["get", "post"],
        "/orders/{order_id}": ["get"],
        "/metrics": ["get"],
        "/livez": ["get"],
        "/readyz": ["get"],
        "/startupz": ["get"],
        "/lab/faults": ["patch", "put"],
        "/lab/breaker/{dependency}": ["patch", "put"],
        "/debug/internals": ["get"],
        "/debug/pprof/profile": ["get"],
        "/debug/pprof/heap": ["get"],
    }
    assert _call(app, "GET", "/startupz").status_code == 503  # served by its router, not started
    assert _call(app, "GET", "/debug/internals").status_code == 401
