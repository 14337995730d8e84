"""``POST /orders``, ``GET /orders/{order_id}`` and ``GET /orders`` (a page, by cursor)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator
from pydantic_core import PydanticCustomError

from reliability_lab.scenario.shedding import CRITICALITIES
from reliability_lab.service.core import Accepted, NotAccepting, QueueFull, log_event
from reliability_lab.service.routes.common import (
    AppState,
    Reservation,
    StateDep,
    error,
    store_down,
    unavailable,
)
from reliability_lab.service.store import STATUSES, StoreError

_IDEMPOTENCY_KEY_MAX = 200
_MAX_ID = 2**63 - 1  # ids are 64-bit in every store

router = APIRouter()


class OrderIn(BaseModel):
    """The body of ``POST /orders``."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:@-]+$")
    amount_cents: StrictInt = Field(gt=0, le=100_000_000)
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    criticality: str = Field(
        default="default",
        description=(
            "the order's criticality class (the scenario's intake.shedding): under overload the "
            "intake sheds sheddable orders first, then default ones, critical ones last"
        ),
        json_schema_extra={"enum": list(CRITICALITIES)},
    )
    tenant: str | None = Field(
        default=None,
        description=(
            "the tenant the order is counted against: one of the scenario's "
            "intake.shedding.tenants (absent: the first declared)"
        ),
    )

    @field_validator("criticality")
    @classmethod
    def _known_class(cls, value: str) -> str:
        if value not in CRITICALITIES:
            allowed = ", ".join(repr(c) for c in CRITICALITIES)
            raise PydanticCustomError(
                "enum",
                "must be one of {allowed}, got {got}",
                {"allowed": allowed, "got": repr(value)},
            )
        return value

    def hash_payload(self) -> dict[str, Any]:
        """The fields the request hash covers (Idempotency-Key reuse checks). A default class
        and an absent tenant are left out: a body that does not name them hashes as it did
        before these fields existed (keys stored by older servers keep matching), and naming
        the default class is the same order as leaving it out."""
        payload = self.model_dump()
        if payload["criticality"] == "default":
            del payload["criticality"]
        if payload["tenant"] is None:
            del payload["tenant"]
        return payload


def _bad_tenant(tenant: str | None, allowed: tuple[str, ...]) -> JSONResponse | None:
    """The 422 of a tenant the scenario does not declare, or None when it is fine."""
    if tenant is None or tenant in allowed:
        return None
    if allowed:
        message = f"must be one of {', '.join(repr(t) for t in allowed)}, got {tenant!r}"
    else:
        message = (
            "must be left out: the scenario declares no tenants (intake.shedding.tenants), "
            f"got {tenant!r}"
        )
    return error(
        422,
        "validation_failed",
        "invalid field(s): tenant",
        fields=[{"field": "tenant", "message": message, "type": "enum"}],
    )


# The answer to an order the engine refused at its intake, by the engine's reason.
_REFUSALS: dict[str, str] = {
    "shed": "the service is overloaded and sheds {criticality} orders; retry later",
    "limited": "the service is at its concurrency limit (intake.limit); retry later",
    "rate_limited": "the service is at its admission rate (intake.rate_limit); retry later",
}


def _encode_cursor(after_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after_id}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)["after"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_ID:
        return None
    return value


def _accepted(order_id: int, key: str | None, replayed: bool) -> JSONResponse:
    headers = {"Location": f"/orders/{order_id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    body: dict[str, Any] = {"id": order_id, "href": f"/orders/{order_id}"}
    if key is not None:
        body["idempotency_key"] = key
    return JSONResponse(body, 202, headers=headers)


async def _settled_order(state: AppState, order_id: int, key: str | None, deadline: float) -> bool:
    """Whether order ``order_id`` still holds ``key`` once it has left ``pending`` (polled
    until ``deadline``, the event loop's clock)."""
    loop = asyncio.get_running_loop()
    while True:
        row = await state.read(
            lambda: state.service.store.get_order(order_id, with_transitions=False)
        )
        if row is None or row["idempotency_key"] != key:
            return False  # given up by its server: the key was released
        if row["status"] != "pending":
            return True
        if loop.time() + 0.05 > deadline:
            return False
        await asyncio.sleep(0.05)


@router.post("/orders", status_code=202)
async def create_order(
    order: OrderIn,
    request: Request,
    state: StateDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    """Accepts an order for asynchronous processing (202 + its id)."""
    svc, keys = state.service, state.keys
    if not svc.accepting:
        return unavailable("shutting_down", "the service is not accepting orders", 5)
    bad = _bad_tenant(order.tenant, svc.tenant_names())
    if bad is not None:
        return bad
    request_hash = svc.hash_request(order.hash_payload())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + state.config.store_timeout  # every wait below shares this budget
    reservation: Reservation | None = None

    def release(outcome: Accepted | None) -> None:
        if idempotency_key is None or reservation is None:
            return
        keys.resolve(
            idempotency_key,
            reservation,
            None if outcome is None else (outcome.order_id, outcome.request_hash),
        )
        reservation.done.set()

    def refused(e: QueueFull) -> Response:
        # The queue is full, the shedder refused the order's class or tenant, or a limit refused
        # it: the same answer as any intake refusal (503, Retry-After), with the engine's reason
        # as code.
        release(None)
        template = _REFUSALS.get(e.reason)
        if template is None:
            return unavailable("queue_full", "the order queue is full; retry later", 1)
        return unavailable(e.reason, template.format(criticality=order.criticality), 1)

    def replay(order_id: int, first_hash: str) -> Response:
        if first_hash != request_hash:
            return error(
                409,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different body",
                field="Idempotency-Key",
                order_id=order_id,
            )
        svc.stats.idempotent_replays += 1
        request.scope.setdefault("state", {})["order_id"] = order_id
        return _accepted(order_id, idempotency_key, True)

    if idempotency_key is not None:
        if not (
            1 <= len(idempotency_key) <= _IDEMPOTENCY_KEY_MAX
            and all(33 <= ord(c) <= 126 for c in idempotency_key)
        ):
            return error(
                400,
                "invalid_header",
                f"Idempotency-Key must be 1 to {_IDEMPOTENCY_KEY_MAX} visible ASCII characters",
                field="Idempotency-Key",
            )
        while True:
            hit = keys.get(idempotency_key)
            if isinstance(hit, Reservation):
                # The first request with this key is still running: wait for it, within
                # this request's own budget.
                remaining = deadline - loop.time()
                try:
                    if remaining <= 0:
                        raise asyncio.TimeoutError
                    await asyncio.wait_for(hit.done.wait(), remaining)
                except asyncio.TimeoutError:
                    return unavailable(
                        "busy", "a request with this Idempotency-Key is still in progress", 1
                    )
                continue
            if hit is not None:
                return replay(hit[0], hit[1])
            reservation = Reservation(request_hash)
            keys.reserve(idempotency_key, reservation)
            break

    try:
        pending = svc.submit(
            customer_id=order.customer_id,
            amount_cents=order.amount_cents,
            currency=order.currency,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            criticality=order.criticality,
            tenant=order.tenant,
        )
    except QueueFull as e:
        return refused(e)
    except NotAccepting:
        release(None)
        return unavailable("shutting_down", "the service is not accepting orders", 5)
    # An outcome nobody awaits any more is still retrieved (no "never retrieved" noise).
    pending.future.add_done_callback(lambda f: f.cancelled() or f.exception())
    # The order reaches the engine only after its row is committed; a request that stops
    # waiting abandons it first, so a 503 below means nothing was stored or charged.
    try:
        outcome: Accepted | None = await asyncio.wait_for(
            asyncio.shield(pending.future), max(0.0, deadline - loop.time())
        )
    except asyncio.TimeoutError:
        outcome = svc.abandon(pending)
        if outcome is None:
            release(None)
            return unavailable("store_unavailable", "the order could not be stored in time", 2)
    except QueueFull as e:
        return refused(e)
    except NotAccepting:
        release(None)
        return unavailable("shutting_down", "the service is not accepting orders", 5)
    except StoreError:
        release(None)
        return unavailable("store_unavailable", "the order could not be stored", 2)
    except asyncio.CancelledError:
        release(svc.abandon(pending))
        raise
    assert outcome is not None
    if outcome.replayed and outcome.request_hash == request_hash:
        # The key names an order another server stored: answer 202 only once that server
        # has handed it to the engine (it may still give it up, as its own request did).
        try:
            settled = await _settled_order(state, outcome.order_id, idempotency_key, deadline)
        except (StoreError, asyncio.TimeoutError):
            settled = False
        if not settled:
            release(None)
            return unavailable("store_unavailable", "the order could not be stored", 2)
    release(outcome)
    if outcome.replayed:
        return replay(outcome.order_id, outcome.request_hash)
    order_id = outcome.order_id
    request.scope.setdefault("state", {})["order_id"] = order_id
    if state.config.access_log:
        log_event(
            "order_accepted",
            order_id=order_id,
            route="/orders",
            idempotency_key=idempotency_key,
            criticality=order.criticality,
            tenant=order.tenant,
        )
    return _accepted(order_id, idempotency_key, False)


@router.get("/orders/{order_id}")
async def get_order(order_id: int, request: Request, state: StateDep) -> Response:
    """An order, its current status and every transition."""
    if not 1 <= order_id <= _MAX_ID:  # ids are 64-bit in both stores
        return error(
            422,
            "validation_failed",
            "invalid field(s): order_id",
            fields=[{"field": "order_id", "message": "must be in [1, 2**63 - 1]"}],
        )
    request.scope.setdefault("state", {})["order_id"] = order_id
    try:
        found = await state.read(lambda: state.service.store.get_order(order_id))
    except (StoreError, asyncio.TimeoutError) as e:  # the store is down: the probe says so
        return store_down("/orders/{order_id}", e)
    if found is None:
        return error(404, "not_found", f"no order {order_id}")
    return JSONResponse(found)


@router.get("/orders")
async def list_orders(
    state: StateDep,
    status: Annotated[Literal[STATUSES] | None, Query()] = None,  # type: ignore[valid-type]
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """A page of orders in id order; pass ``next_cursor`` back as ``cursor`` for the next."""
    after = 0
    if cursor is not None:
        decoded = _decode_cursor(cursor)
        if decoded is None:
            return error(
                422,
                "validation_failed",
                "invalid field(s): cursor",
                fields=[{"field": "cursor", "message": "not a cursor from this API"}],
            )
        after = decoded
    try:
        rows = await state.read(
            lambda: state.service.store.list_orders(status=status, after_id=after, limit=limit + 1)
        )
    except (StoreError, asyncio.TimeoutError) as e:
        return store_down("/orders", e)
    more = len(rows) > limit
    rows = rows[:limit]
    return JSONResponse(
        {
            "orders": rows,
            "next_cursor": _encode_cursor(rows[-1]["id"]) if more and rows else None,
        }
    )
