"""The admin routes (bearer token): ``PUT``/``PATCH /lab/faults``,
``PUT``/``PATCH /lab/breaker/{dependency}``, ``GET /debug/internals``."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from reliability_lab.breaker import Breaker
from reliability_lab.scenario import Dependency, Scenario
from reliability_lab.service.core import log_event
from reliability_lab.service.routes.common import (
    AppState,
    StateDep,
    check_admin,
    error,
    field_name,
)
from reliability_lab.service.schemas import BreakerSpec, FaultsChange

router = APIRouter()


@router.put("/lab/faults")
async def put_faults(request: Request, state: StateDep) -> Response:
    """Replaces a dependency's fault model while the engine runs (the chaos switch).

    Body: ``{"dependency": "payment", "faults": {...}}`` (the scenario's dict form); fields
    left out take the defaults of :class:`~reliability_lab.scenario.Faults`. In a service graph
    a service's own dependency is ``"<service>.<dependency>"``, as the results name it; an
    unknown service or dependency is a 422 on ``dependency``."""
    return await _change_faults(request, state, merge=False)


@router.patch("/lab/faults")
async def patch_faults(request: Request, state: StateDep) -> Response:
    """Like PUT, but the given fields are merged into the current fault model
    (``{"dependency": "payment", "faults": {"failure_rate": 1.0}}`` changes just that)."""
    return await _change_faults(request, state, merge=True)


async def _change_faults(request: Request, state: AppState, *, merge: bool) -> Response:
    denied = check_admin(request)  # before reading the body: strangers learn nothing
    if denied is not None:
        return denied
    try:
        body = FaultsChange.model_validate_json(await request.body())
    except ValidationError as e:
        if any(err.get("type") == "json_invalid" for err in e.errors()):
            return error(400, "invalid_json", "the request body is not valid JSON", field="body")
        fields = [
            {"field": field_name(err.get("loc", ())), "message": err.get("msg", "")}
            for err in e.errors()
        ]
        bad = ", ".join(dict.fromkeys(str(f["field"]) for f in fields))
        return error(422, "validation_failed", f"invalid field(s): {bad}", fields=fields)
    svc = state.service
    if _find_dependency(svc.scenario, body.dependency) is None:
        return error(
            422,
            "validation_failed",
            "invalid field(s): dependency",
            fields=[{"field": "dependency", "message": _unknown(svc.scenario, body.dependency)}],
        )
    d = svc.scenario.to_dict()
    dep = _dependency_dict(d, body.dependency)
    if merge:
        dep["faults"].update(body.fault_fields())
    else:
        dep["faults"] = body.fault_fields()
    try:
        new = Scenario.from_dict(d)
    except (ValueError, TypeError) as e:
        return error(
            422,
            "validation_failed",
            "invalid field(s): faults",
            fields=[{"field": "faults", "message": str(e)}],
        )
    lab = svc.lab
    if lab is None or not hasattr(lab, "set_faults"):
        return error(501, "not_implemented", "this engine build cannot change faults while running")
    changed = _dependency(new, body.dependency)
    faults = changed.faults
    try:
        lab.set_faults(body.dependency, faults)
    except (KeyError, ValueError, RuntimeError) as e:
        return error(409, "conflict", str(e))
    svc.scenario = new
    dash = getattr(request.app.state, "dashboard", None)
    if dash is not None:  # the control room draws every change of the chaos switch
        verb = "merged into" if merge else "replaced"
        dash.record(
            "action",
            f"{body.dependency}: fault model {verb} via /lab/faults",
            annotate=True,
            action="faults",
            dependency=body.dependency,
        )
    log_event(
        "faults_changed",
        dependency=body.dependency,
        route="/lab/faults",
        faults=changed.to_dict()["faults"],
    )
    return JSONResponse({"dependency": body.dependency, "faults": changed.to_dict()["faults"]})


@router.put("/lab/breaker/{dependency}")
async def put_breaker(dependency: str, request: Request, state: StateDep) -> Response:
    """Replaces a dependency's circuit breaker parameters while the engine runs (the control
    room's knob). Body: the breaker in the scenario's dict form (seconds); fields left out take
    the defaults of :class:`~reliability_lab.Breaker`. The breaker keeps its state; what it
    measured under the old parameters is dropped (see :meth:`reliability_lab.Lab.set_breaker`).
    In a service graph a service's own dependency is ``"<service>.<dependency>"``; an unknown
    service or dependency is a 404."""
    return await _change_breaker(dependency, request, state, merge=False)


@router.patch("/lab/breaker/{dependency}")
async def patch_breaker(dependency: str, request: Request, state: StateDep) -> Response:
    """Like PUT, but the given fields are merged into the current parameters
    (``{"consecutive_failures": 3}`` changes just that)."""
    return await _change_breaker(dependency, request, state, merge=True)


async def _change_breaker(
    dependency: str, request: Request, state: AppState, *, merge: bool
) -> Response:
    denied = check_admin(request)  # before reading the body: strangers learn nothing
    if denied is not None:
        return denied
    try:
        body = BreakerSpec.model_validate_json(await request.body())
    except ValidationError as e:
        if any(err.get("type") == "json_invalid" for err in e.errors()):
            return error(400, "invalid_json", "the request body is not valid JSON", field="body")
        fields = [
            {"field": field_name(err.get("loc", ())), "message": err.get("msg", "")}
            for err in e.errors()
        ]
        bad = ", ".join(dict.fromkeys(str(f["field"]) for f in fields))
        return error(422, "validation_failed", f"invalid field(s): {bad}", fields=fields)
    svc = state.service
    found = _find_dependency(svc.scenario, dependency)
    if found is None:
        return error(404, "not_found", _unknown(svc.scenario, dependency))
    path, current = found
    if current.breaker is None:
        return error(
            409, "conflict", f"{dependency} has no breaker; one cannot be added while running"
        )
    lab = svc.lab
    if lab is None or not hasattr(lab, "set_breaker"):
        return error(501, "not_implemented", "no engine runs here that can change breakers")
    given = body.breaker_fields()
    change = given if merge else {**Breaker().to_dict(), **given}
    try:
        new = await run_in_threadpool(lab.set_breaker, dependency, change)
    except ValueError as e:  # the scenario's own check, naming payment.breaker.<field>
        msg = str(e)
        # A service's own dependency is named by its scenario path (services[s].dependencies[d]).
        named = re.match(rf"{re.escape(path)}\.(breaker\.[a-z_]+) (?:must|is) ", msg)
        field = named.group(1) if named else "breaker"
        return error(
            422,
            "validation_failed",
            f"invalid field(s): {field}",
            fields=[{"field": field, "message": msg}],
        )
    except (KeyError, RuntimeError) as e:
        return error(409, "conflict", str(e))
    svc.scenario = svc.scenario.replace({f"{path}.breaker": new})
    text = _breaker_text(dependency, new)
    dash = getattr(request.app.state, "dashboard", None)
    if dash is not None:  # the control room draws every turn of the knob
        dash.record(
            "action",
            f"{text} via /lab/breaker",
            annotate=True,
            action="breaker",
            dependency=dependency,
        )
    log_event("breaker_changed", dependency=dependency, route="/lab/breaker", breaker=new.to_dict())
    return JSONResponse({"dependency": dependency, "breaker": new.to_dict()})


def _find_dependency(scenario: Scenario, name: str) -> tuple[str, Dependency] | None:
    """The dependency the results name ``name`` (:meth:`Scenario.dependency
    <reliability_lab.scenario.Scenario.dependency>`) with its path in the scenario; None if
    there is none."""
    try:
        return scenario.dependency_path(name), scenario.dependency(name)
    except KeyError:
        return None


def _dependency(scenario: Scenario, name: str) -> Dependency:
    found = _find_dependency(scenario, name)
    if found is None:
        raise KeyError(name)
    return found[1]


def _dependency_dict(d: dict[str, Any], name: str) -> dict[str, Any]:
    """The dict of dependency ``name`` (as :func:`_find_dependency` names it) inside the
    scenario's dict form ``d``, to change in place. It must exist."""
    service, _, dep = name.rpartition(".")
    tier = d if not service else next(s for s in d["services"] if s["name"] == service)
    found: dict[str, Any] = next(x for x in tier["dependencies"] if x["name"] == dep)
    return found


def _unknown(scenario: Scenario, name: str) -> str:
    """Why ``name`` names no dependency: an unknown service, or an unknown dependency."""
    names = scenario.dependency_labels()
    service, _, _ = name.rpartition(".")
    if service and service not in {s.name for s in scenario.services}:
        return f"no service named {service!r} (in {name!r}); dependencies: {names}"
    return f"no dependency named {name!r}; one of {names}"


def _breaker_text(dependency: str, b: Breaker) -> str:
    return (
        f"{dependency}: breaker set (consecutive_failures {b.consecutive_failures}, "
        f"open_for {b.open_for:g} s)"
    )


@router.get("/debug/internals")
async def internals(request: Request, state: StateDep) -> Response:
    """Queue depth, workers, breaker states and the writer's figures."""
    denied = check_admin(request)
    if denied is not None:
        return denied
    return JSONResponse(await run_in_threadpool(state.service.internals))
