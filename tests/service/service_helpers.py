"""Helpers shared by the service tests (kept out of conftest so that they import by name)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

ADMIN_TOKEN = "test-admin-token-123"
TERMINAL = {"completed", "failed", "rejected", "expired", "cancelled"}
DatabaseFactory = Callable[[], str]


def write_scenario(path: Path, **kw: Any) -> Path:
    """A scenario JSON file: the default payment lab with top-level fields and payment fields
    replaced (``payment={...}`` merges into the payment dependency's dict)."""
    from reliability_lab.service.config import default_scenario

    d = default_scenario().to_dict()
    payment = kw.pop("payment", {})
    faults = kw.pop("faults", {})
    d.update(kw)
    d["dependencies"][0].update(payment)
    d["dependencies"][0]["faults"].update(faults)
    path.write_text(json.dumps(d))
    return path


def post_order(client: httpx.Client, key: str | None = None, **body: Any) -> httpx.Response:
    payload = {"customer_id": "alice", "amount_cents": 1250, "currency": "EUR", **body}
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post("/orders", json=payload, headers=headers)


def wait_for(pred: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Polls ``pred`` until it holds (generous timeout; never a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def all_orders(client: httpx.Client, status: str | None = None) -> list[dict[str, Any]]:
    """Every order, following the pagination cursors."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        if status:
            params["status"] = status
        r = client.get("/orders", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        out += page["orders"]
        cursor = page["next_cursor"]
        if not cursor:
            return out


@contextlib.contextmanager
def admin_service(tmp: Path, *, failure_rate: float, args: tuple[str, ...] = ()) -> Iterator[Any]:
    """A service on SQLite in ``tmp`` (2 ms constant payment latency, ``failure_rate``), the
    admin token from the environment, started and ready; stopped cleanly (exit 0) on leaving."""
    from reliability_lab.service.harness import ServiceProcess

    scenario = write_scenario(
        tmp / "scenario.json",
        faults={"failure_rate": failure_rate, "latency": {"type": "constant", "value": 0.002}},
    )
    proc = ServiceProcess(
        database=str(tmp / "orders.sqlite3"),
        workdir=tmp,
        args=[
            "--scenario",
            str(scenario),
            "--ledger",
            str(tmp / "payments.ledger"),
            "--no-access-log",
            *args,
        ],
        env={"RLAB_ADMIN_TOKEN": ADMIN_TOKEN},
    )
    proc.start()
    import httpx

    with httpx.Client(base_url=proc.url, timeout=30) as client:
        wait_for(lambda: client.get("/startupz").status_code == 200, what="startup")
    yield proc
    assert proc.stop(timeout=60) == 0, proc.log_text()
