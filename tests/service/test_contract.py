"""Schema conformance: schemathesis fuzzes every operation of ``/openapi.json`` against a real
service on SQLite and holds each answer to the document (status code declared, content type
declared, body matching its schema, never a 5xx that is not declared).

Bounded: a fixed number of derandomized examples per operation and generation mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service extra (fastapi, uvicorn, psycopg) is missing")
pytest.importorskip("schemathesis", reason="schemathesis (the 'test' extra) is missing")

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from reliability_lab.service.harness import ServiceProcess
from reliability_lab.service.profiling import find_py_spy
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from service_helpers import ADMIN_TOKEN, admin_service

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EXAMPLES = {"positive": 25, "negative": 10}
# A CPU profile lasts ``seconds`` (up to 60): fuzzing it would dominate the run, so it gets one
# bounded call below instead.
SLOW = {("GET", "/debug/pprof/profile")}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("contract")
    with admin_service(tmp, failure_rate=0.1, args=("--shutdown-budget", "2")) as proc:
        yield proc


def _operations(proc: ServiceProcess) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{proc.url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def test_every_operation_conforms_to_the_schema(service: ServiceProcess) -> None:
    ops = _operations(service)
    assert {(op.method.upper(), op.path) for op in ops} >= {
        ("POST", "/orders"),
        ("GET", "/orders/{order_id}"),
        ("PUT", "/lab/faults"),
        ("PATCH", "/lab/faults"),
        ("GET", "/debug/pprof/heap"),
    }
    for op in ops:
        if (op.method.upper(), op.path) in SLOW:
            continue
        for mode, examples in EXAMPLES.items():
            strategy = op.as_strategy(
                generation_mode=schemathesis.GenerationMode(mode), headers=dict(AUTH)
            )

            @settings(
                max_examples=examples,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def run(case: Any) -> None:
                case.call_and_validate(base_url=service.url, checks=CHECKS, timeout=30)

            try:
                run()  # a failure propagates with schemathesis' report and a curl to reproduce
            except Unsatisfiable:
                assert mode == "negative"  # an operation without inputs has no invalid ones


def test_cpu_profile_conforms_to_the_schema(service: ServiceProcess) -> None:
    if find_py_spy() is None:
        pytest.skip("py-spy is not installed")
    [op] = [o for o in _operations(service) if o.path == "/debug/pprof/profile"]
    case = op.Case(query={"seconds": 1, "rate": 20}, headers=dict(AUTH))
    response = case.call(base_url=service.url, timeout=60)
    if response.status_code == 503 and "ermission" in service.log_text():
        pytest.skip("py-spy may not ptrace the service here")
    assert response.status_code == 200
    case.validate_response(response, checks=CHECKS)


def test_openapi_declares_the_faults_body_and_the_error_answers(service: ServiceProcess) -> None:
    doc = httpx.get(f"{service.url}/openapi.json", timeout=30).json()
    paths = doc["paths"]
    for method in ("put", "patch"):
        op = paths["/lab/faults"][method]
        assert op["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/FaultsChange"
        }
        assert {"400", "401", "403", "409", "413", "422", "503"} <= set(op["responses"])
        assert op["security"] == [{"bearerToken": []}]
    assert {"202", "400", "409", "413", "422", "503"} <= set(paths["/orders"]["post"]["responses"])
    assert {"404", "422", "503"} <= set(paths["/orders/{order_id}"]["get"]["responses"])
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    faults = doc["components"]["schemas"]["FaultsSpec"]["properties"]
    assert faults["failure_rate"] == {
        "maximum": 1,
        "minimum": 0,
        "title": "Failure Rate",
        "type": "number",
    }


def test_error_bodies_do_not_leak_internals(service: ServiceProcess, tmp_path: Path) -> None:
    """The edge's own error answers name no path, host, port or exception."""
    with httpx.Client(base_url=service.url, timeout=30) as client:
        bodies = [
            client.get("/debug/pprof/heap").text,  # 401
            client.get("/debug/pprof/profile", params={"seconds": 0}, headers=AUTH).text,
            client.put("/lab/faults", content=b"{", headers=AUTH).text,
        ]
    for body in bodies:
        assert str(tmp_path.parent) not in body and "Traceback" not in body
        assert "127.0.0.1" not in body and str(service.port) not in body
