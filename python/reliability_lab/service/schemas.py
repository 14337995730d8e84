"""The OpenAPI contract of the HTTP API: body models and every route's documented responses.

FastAPI documents what it can infer (parameters, ``OrderIn``, a default 2xx). The handlers
answer ``JSONResponse`` objects with their own status codes, so the rest is declared here and
merged into the generated document by :func:`install_openapi`: the success bodies, the error
answers each route can give (400, 401, 403, 404, 409, 413, 422, 501, 503, all as
:class:`ErrorBody`), the ``/lab/faults`` request body and the bearer-token scheme of the admin
routes. A schema-conformance fuzz run (``tests/service/test_contract.py``, schemathesis) holds the
service to this document.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema, models_json_schema

from reliability_lab.service.server import UNLIMITED_PATHS

# --- bodies -----------------------------------------------------------------------------------

# An optional field the client may leave out but not send as null (the schema says so; an
# explicit null reaches the scenario's own check and is refused there).
_Absent = SkipJsonSchema[None]


def _no_null_defaults(schema: dict[str, Any]) -> None:
    """Drops ``"default": null`` from the properties: absent means "unchanged", not null."""
    for prop in schema.get("properties", {}).values():
        if prop.get("default", 0) is None:
            del prop["default"]


_PATCHY = ConfigDict(extra="forbid", strict=True, json_schema_extra=_no_null_defaults)


class FieldError(BaseModel):
    """One invalid field of a request."""

    field: str
    message: str
    type: str | None = None


class ErrorBody(BaseModel):
    """Every error answer: a stable machine-readable ``error`` code and a message for people.

    Error bodies never carry internals (hosts, ports, paths, driver messages): those go to the
    service's log."""

    error: str
    message: str
    field: str | None = None
    fields: list[FieldError] | None = None
    order_id: int | None = None


class OrderAccepted(BaseModel):
    """The answer to ``POST /orders`` (also when replayed from an Idempotency-Key)."""

    id: int
    href: str
    idempotency_key: str | None = None


class Transition(BaseModel):
    """One status change of an order."""

    model_config = ConfigDict(extra="allow")

    status: str
    reason: str | None = None
    at: float
    attempts: int
    charges: int


class Order(BaseModel):
    """An order as stored (``transitions`` only on ``GET /orders/{order_id}``)."""

    model_config = ConfigDict(extra="allow")

    id: int
    status: str
    customer_id: str
    amount_cents: int
    currency: str
    idempotency_key: str | None = None
    reason: str | None = None
    attempts: int
    charges: int
    created_at: float
    updated_at: float
    criticality: Literal["critical", "default", "sheddable"] = Field(
        default="default", description="the order's criticality class (intake.shedding)"
    )
    tenant: str | None = Field(
        default=None, description="the tenant the order named (null: none, the first declared)"
    )
    transitions: list[Transition] | None = None


class OrderPage(BaseModel):
    """A page of ``GET /orders``; pass ``next_cursor`` back as ``cursor`` for the next one."""

    orders: list[Order]
    next_cursor: str | None


class LiveStatus(BaseModel):
    """``GET /livez``."""

    model_config = ConfigDict(extra="allow")

    status: str


class ReadyStatus(BaseModel):
    """``GET /readyz``: the overall status and each check."""

    model_config = ConfigDict(extra="allow")

    status: str
    checks: dict[str, Any]


class StartupStatus(BaseModel):
    """``GET /startupz``."""

    model_config = ConfigDict(extra="allow")

    status: str
    started: bool
    recovery_done: bool


class FailureMixSpec(BaseModel):
    """Relative weights of the kinds of failure (see :class:`reliability_lab.FailureMix`);
    ranges checked by the scenario, like :class:`FaultsSpec`."""

    model_config = _PATCHY

    http500: float | _Absent = Field(default=None, json_schema_extra={"minimum": 0})
    http503: float | _Absent = Field(default=None, json_schema_extra={"minimum": 0})
    http429: float | _Absent = Field(default=None, json_schema_extra={"minimum": 0})
    timeout: float | _Absent = Field(default=None, json_schema_extra={"minimum": 0})
    connection_reset: float | _Absent = Field(default=None, json_schema_extra={"minimum": 0})
    retry_after: float | _Absent = Field(default=None, json_schema_extra={"minimum": 0})


class FaultsSpec(BaseModel):
    """A dependency's fault model in the scenario's dict form (see
    :class:`reliability_lab.scenario.Faults`). PUT: fields left out take the defaults; PATCH:
    only the given fields change. ``latency``, ``phases`` and ``capacity`` use the dict forms of
    :meth:`reliability_lab.scenario.Scenario.to_dict`.

    Only the types are checked here; the ranges are documented in the schema and checked by the
    scenario itself, which names the field and the range in its message (one source of truth)."""

    model_config = _PATCHY

    failure_rate: float | _Absent = Field(
        default=None, json_schema_extra={"minimum": 0, "maximum": 1}
    )
    mix: FailureMixSpec | _Absent = None
    latency: dict[str, Any] | _Absent = Field(
        default=None,
        description='a latency distribution, e.g. {"type": "exponential", "mean": 0.05}',
    )
    phases: list[dict[str, Any]] | _Absent = None
    capacity: dict[str, Any] | _Absent = None
    ambiguous_rate: float | _Absent = Field(
        default=None, json_schema_extra={"minimum": 0, "maximum": 1}
    )
    hang: float | _Absent = Field(
        default=None, json_schema_extra={"exclusiveMinimum": 0, "maximum": 1e6}
    )


class FaultsChange(BaseModel):
    """The body of ``PUT``/``PATCH /lab/faults``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    dependency: str = Field(min_length=1, max_length=64)
    faults: FaultsSpec

    def fault_fields(self) -> dict[str, Any]:
        """The fields the client gave (nested dicts as given), for the scenario's dict form."""
        return self.faults.model_dump(exclude_unset=True)


class FaultsState(BaseModel):
    """A dependency's fault model after a change, in full."""

    dependency: str
    faults: dict[str, Any]


class BreakerSpec(BaseModel):
    """A dependency's circuit breaker parameters in the scenario's dict form (see
    :class:`reliability_lab.Breaker`; times in seconds). PUT: fields left out take the
    defaults; PATCH: only the given fields change.

    Only the types are checked here; the ranges are checked by the scenario itself, which names
    the field and the range in its message (``payment.breaker.open_for must be ...``)."""

    model_config = _PATCHY

    consecutive_failures: int | _Absent = Field(default=None, json_schema_extra={"minimum": 0})
    failure_rate_threshold: float | _Absent = Field(
        default=None, json_schema_extra={"minimum": 0, "maximum": 1}
    )
    slow_call_rate_threshold: float | _Absent = Field(
        default=None, json_schema_extra={"minimum": 0, "maximum": 1}
    )
    slow_call_duration: float | _Absent = Field(default=None, json_schema_extra={"minimum": 0})
    window: Literal["count", "time"] | _Absent = None
    window_size: int | _Absent = Field(default=None, json_schema_extra={"minimum": 1})
    window_duration: float | _Absent = Field(
        default=None, json_schema_extra={"exclusiveMinimum": 0}
    )
    window_buckets: int | _Absent = Field(default=None, json_schema_extra={"minimum": 1})
    minimum_calls: int | _Absent = Field(default=None, json_schema_extra={"minimum": 1})
    open_for: float | _Absent = Field(default=None, json_schema_extra={"exclusiveMinimum": 0})
    open_growth: float | _Absent = Field(default=None, json_schema_extra={"minimum": 1})
    max_open_for: float | _Absent = Field(default=None, json_schema_extra={"minimum": 0})
    half_open_max_calls: int | _Absent = Field(default=None, json_schema_extra={"minimum": 1})
    success_threshold: int | _Absent = Field(default=None, json_schema_extra={"minimum": 1})

    def breaker_fields(self) -> dict[str, Any]:
        """The fields the client gave, for the scenario's dict form."""
        return self.model_dump(exclude_unset=True)


class BreakerConfigState(BaseModel):
    """A dependency's circuit breaker parameters after a change, in full."""

    dependency: str
    breaker: dict[str, Any]


class SpeedscopeProfile(BaseModel):
    """A speedscope document (https://www.speedscope.app/file-format-schema.json): one
    sampled profile per thread over the shared frame table."""

    model_config = ConfigDict(extra="allow")

    profiles: list[dict[str, Any]]
    shared: dict[str, Any]


class HeapSnapshot(BaseModel):
    """``GET /debug/pprof/heap``: process, allocator and collector figures, and the top
    allocation sites when ``tracemalloc`` runs."""

    model_config = ConfigDict(extra="allow")

    pid: int
    time: float
    process: dict[str, Any]
    malloc: dict[str, Any] | None
    gc: dict[str, Any]
    tracemalloc: dict[str, Any]


# --- the responses of each route -------------------------------------------------------------

_REF = "#/components/schemas/{model}"
_JSON = "application/json"
# The documents of the admin routes are behind this scheme.
_BEARER = "bearerToken"

_ERRORS: dict[int, str] = {
    400: "the body is not valid JSON, or a header is malformed",
    401: "no bearer token, or not in the Authorization: Bearer form",
    403: "the bearer token is wrong, or admin endpoints are disabled",
    404: "no such resource",
    409: "conflicts with the current state",
    413: "the request body is too large",
    422: "a field is invalid (``fields`` lists them)",
    501: "this engine build cannot do it",
    503: "unavailable for now (overloaded, draining, store down); see Retry-After",
}

# (method, path) -> (success status, success model or None for a free-form body, errors).
_ROUTES: dict[tuple[str, str], tuple[int, type[BaseModel] | None, tuple[int, ...]]] = {
    ("post", "/orders"): (202, OrderAccepted, (400, 409, 413, 422, 503)),
    ("get", "/orders"): (200, OrderPage, (422, 503)),
    ("get", "/orders/{order_id}"): (200, Order, (404, 422, 503)),
    ("get", "/livez"): (200, LiveStatus, ()),
    ("get", "/readyz"): (200, ReadyStatus, ()),
    ("get", "/startupz"): (200, StartupStatus, ()),
    ("put", "/lab/faults"): (200, FaultsState, (400, 401, 403, 409, 413, 422, 501, 503)),
    ("patch", "/lab/faults"): (200, FaultsState, (400, 401, 403, 409, 413, 422, 501, 503)),
    ("get", "/debug/internals"): (200, None, (401, 403, 503)),
    ("put", "/lab/breaker/{dependency}"): (
        200,
        BreakerConfigState,
        (400, 401, 403, 404, 409, 413, 422, 501, 503),
    ),
    ("patch", "/lab/breaker/{dependency}"): (
        200,
        BreakerConfigState,
        (400, 401, 403, 404, 409, 413, 422, 501, 503),
    ),
    ("get", "/debug/pprof/profile"): (200, SpeedscopeProfile, (401, 403, 409, 422, 503)),
    ("get", "/debug/pprof/heap"): (200, HeapSnapshot, (401, 403, 422, 503)),
}
_ADMIN_PREFIXES = ("/lab/", "/debug/")
# Probes whose 503 carries their own status body rather than an ErrorBody.
_PROBE_503: dict[str, type[BaseModel]] = {"/readyz": ReadyStatus, "/startupz": StartupStatus}
_REQUEST_BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("put", "/lab/faults"): FaultsChange,
    ("patch", "/lab/faults"): FaultsChange,
    ("put", "/lab/breaker/{dependency}"): BreakerSpec,
    ("patch", "/lab/breaker/{dependency}"): BreakerSpec,
}

_MODELS: tuple[type[BaseModel], ...] = (
    ErrorBody,
    OrderAccepted,
    Order,
    OrderPage,
    LiveStatus,
    ReadyStatus,
    StartupStatus,
    FaultsChange,
    FaultsState,
    SpeedscopeProfile,
    HeapSnapshot,
    BreakerSpec,
    BreakerConfigState,
)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(model: type[BaseModel] | None, description: str) -> dict[str, Any]:
    schema: dict[str, Any] = _ref(model) if model is not None else {"type": "object"}
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _component_schemas() -> dict[str, Any]:
    pairs: Iterable[tuple[type[BaseModel], Any]] = [
        (m, "validation" if m in _REQUEST_BODIES.values() else "serialization") for m in _MODELS
    ]
    _, top = models_json_schema(list(pairs), ref_template=_REF)
    defs: dict[str, Any] = top.get("$defs", {})
    return defs


def _uses(node: Any, ref: str) -> bool:
    if isinstance(node, dict):
        return any(v == ref or _uses(v, ref) for v in node.values())
    if isinstance(node, list):
        return any(_uses(v, ref) for v in node)
    return False


def _declare_tenants(schemas: dict[str, Any], tenants: Iterable[str]) -> None:
    """Lists the scenario's tenants as the values ``OrderIn.tenant`` accepts (none declared:
    the field must be left out, which the description says)."""
    prop = schemas.get("OrderIn", {}).get("properties", {}).get("tenant")
    names = list(tenants)
    if prop is None:
        return
    if names:
        prop["anyOf"] = [{"type": "string", "enum": names}, {"type": "null"}]
    else:
        prop["description"] = (
            "the scenario declares no tenants (intake.shedding.tenants): leave it out"
        )


def document(schema: dict[str, Any], tenants: Iterable[str] = ()) -> dict[str, Any]:
    """Completes a generated OpenAPI document in place (and returns it). ``tenants``: the
    names ``POST /orders`` accepts as ``tenant``."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(_component_schemas())
    _declare_tenants(schemas, tenants)
    components.setdefault("securitySchemes", {})[_BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "description": "the admin token (--admin-token-file, or RLAB_ADMIN_TOKEN)",
    }
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses: dict[str, Any] = op["responses"]
            success, model, errors = _ROUTES.get((method, path), (None, None, ()))
            statuses = set(errors)
            if "422" in responses:
                statuses.add(422)  # FastAPI's own validation schema is replaced by ours
            if path not in UNLIMITED_PATHS:
                statuses.add(503)  # the in-flight limit (server.InFlightLimit)
            admin = path.startswith(_ADMIN_PREFIXES)
            if admin:
                statuses |= {401, 403}
                op["security"] = [{_BEARER: []}]
            if success is not None:
                for other in [c for c in responses if c.startswith("2") and c != str(success)]:
                    del responses[other]
                current = responses.get(str(success), {})
                desc = current.get("description") or "success"
                responses[str(success)] = _json(model, desc)
            if path == "/metrics":
                responses["200"] = {
                    "description": "Prometheus text exposition",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            for code in sorted(statuses):
                responses[str(code)] = _json(ErrorBody, _ERRORS[code])
            if path in _PROBE_503:
                responses["503"] = _json(_PROBE_503[path], "not ready (the checks say why)")
            body = _REQUEST_BODIES.get((method, path))
            if body is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {_JSON: {"schema": _ref(body)}},
                }
    for name in ("HTTPValidationError", "ValidationError"):
        ref = _REF.format(model=name)
        if (
            name in schemas
            and not _uses(schema.get("paths", {}), ref)
            and not any(_uses(v, ref) for k, v in schemas.items() if k != name)
        ):
            del schemas[name]
    return schema


def install_openapi(app: FastAPI) -> None:
    """Makes ``app.openapi()`` (``/openapi.json``, ``/docs``) return the completed document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            generated = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            service = getattr(app.state, "service", None)
            tenants = service.tenant_names() if service is not None else ()
            app.openapi_schema = document(generated, tenants)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
