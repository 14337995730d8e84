"""Bounded memory in the live lab, from Python: released orders' handles keep answering, the
history sizes bound what is kept, and every run ends with each order in one terminal state.

Outcomes only (states, counts), never durations: the machine may be loaded.
"""

from __future__ import annotations

import gc

import pytest
import reliability_lab as rl
from reliability_lab.live import TERMINAL_STATES, Lab, OrderHandle

CHUNK = 1024  # the engine allocates and releases order slots this many at a time


def scenario(**kw: object) -> rl.Scenario:
    """Instant charging calls with idempotency keys, a tenth of them failing (and retried)."""
    payment = rl.Dependency(
        "payment",
        faults=rl.Faults(latency=rl.Constant(0.0), failure_rate=0.1),
        retry=rl.RetryConfig(max_attempts=3, backoff=rl.Backoff(initial=0.0, max_delay=0.0)),
        charges=True,
        idempotency_keys=True,
    )
    base: dict[str, object] = {
        "arrivals": rl.Poisson(rate=1000.0),
        "workers": 2,
        "queue_capacity": 512,
        "duration": 0.1,
        "seed": 4,
        "sample_every": 0.0,
        "dependencies": [payment],
    }
    base.update(kw)
    return rl.Scenario(**base)  # type: ignore[arg-type]


def run(lab: Lab, n: int, keys: bool = False) -> None:
    """Submits ``n`` orders in batches small enough for the queue, waiting after each."""
    for start in range(0, n, 256):
        for i in range(start, min(n, start + 256)):
            lab.submit(idempotency_key=f"k-{i}" if keys else None)
        assert lab.wait_idle(timeout=60)


def test_handles_of_released_orders_keep_their_terminal_status() -> None:
    with Lab(scenario(), retain_orders=0) as lab:
        first = lab.submit(idempotency_key="first")
        batch = lab.submit_many(100)
        assert first.wait(timeout=30) and batch.wait(timeout=30)
        seen = (first.status, first.reason, first.view())
        run(lab, 3 * CHUNK, keys=True)
        lab.submit().wait(timeout=30)  # a fresh chunk releases what is over
        assert lab.wait_idle(timeout=30)
        with pytest.raises(KeyError, match="retain_orders"):
            lab.handle(first.id)
        with pytest.raises(KeyError, match="no longer retained"):
            OrderHandle(lab._engine, batch.ids[0])
        assert (first.status, first.reason, first.view()) == seen
        assert first.done() and first.wait(timeout=0)
        # The batch holds its orders' slots: its handles are made on access, still answering.
        assert all(h.status in TERMINAL_STATES for h in batch)
        assert batch[5].id == batch.ids[5] and batch[5].done()
        memory = lab.internals()["memory"]
        assert memory["retained_orders"] < 2 * CHUNK
        assert memory["idempotency_keys_held"] == 0
        assert memory["ledger_tracked"] <= 100_000
        assert all(h.id >= first.id for h in lab.handles)
        assert len(lab.handles) == memory["retained_orders"]
    # After the run too, and after the lab is gone.
    assert first.status in TERMINAL_STATES
    report = lab.shutdown()
    assert report.cancelled == 0
    del lab
    gc.collect()
    assert first.view().status == seen[0]


def test_retained_orders_stay_addressable_by_id() -> None:
    with Lab(scenario(), retain_orders=2 * CHUNK) as lab:
        run(lab, 6 * CHUNK)
        assert lab.wait_idle(timeout=30)
        n = lab.arrived
        for order_id in range(n - 2 * CHUNK, n):
            assert lab.handle(order_id).id == order_id
        memory = lab.internals()["memory"]
        assert 2 * CHUNK <= memory["retained_orders"] <= 4 * CHUNK
        assert memory["order_slots"] <= 5 * CHUNK
    assert lab.handle(n - 1).done()


def test_max_order_records_keeps_the_most_recent_orders() -> None:
    with Lab(scenario(), max_order_records=1000, retain_orders=0) as lab:
        run(lab, 3000)
        assert lab.internals()["memory"]["recorded_orders"] <= 1000 + CHUNK
    res = lab.result
    assert res.orders is not None and len(res.orders) == 1000
    assert res.orders.index[0] == lab.arrived - 1000
    assert res.orders.index[-1] == lab.arrived - 1
    assert res.orders.index.name == "order"
    assert res.orders["status"].isin(TERMINAL_STATES).all()
    # Counts come from the counters, not the table: every order is there.
    s = res.summary
    assert s["arrived"] == lab.arrived == 3000
    total = sum(s[k] for k in ("completed", "failed", "rejected", "expired", "cancelled"))
    assert total == s["arrived"]


def test_default_run_keeps_every_record_and_handle() -> None:
    with Lab(scenario()) as lab:
        run(lab, 2000)
    assert len(lab.handles) == 2000
    assert lab.result.orders is not None and len(lab.result.orders) == 2000
    assert lab.result.orders.index[0] == 0


def test_no_records_when_the_scenario_keeps_none() -> None:
    with Lab(scenario(record_orders=False)) as lab:
        run(lab, 500)
        assert lab.internals()["memory"]["recorded_orders"] == 0
    assert lab.result.orders is None


@pytest.mark.parametrize("name", ["retain_orders", "max_order_records", "idempotency_window"])
def test_history_sizes_are_validated(name: str) -> None:
    with pytest.raises(ValueError, match=rf"{name} must be in \[0, 2\*\*62\], got -1"):
        Lab(scenario(), **{name: -1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=rf"{name} must be an int, got float"):
        Lab(scenario(), **{name: 1.5})  # type: ignore[arg-type]


def test_ledger_window_bounds_the_pairs_remembered() -> None:
    with Lab(scenario(), idempotency_window=100) as lab:
        run(lab, 2000, keys=True)
        ledger = lab.internals()["ledger"]
        assert ledger["entries"] >= 1800  # about one applied charge per completed order
        assert ledger["tracked"] <= 100
        # A recent key is still deduplicated: no second charge.
        again = lab.submit(idempotency_key="k-1999")
        assert again.wait(timeout=30)
        assert again.view().applied_charges == 0 or again.status != "completed"


def test_shutdown_mid_load_conserves_orders() -> None:
    sc = scenario(arrivals=rl.Poisson(rate=3000.0), duration=5.0, queue_capacity=32)
    for timeout in (0.0, 0.001):
        with Lab(sc, retain_orders=0, shutdown_timeout=timeout) as lab:
            lab.start_load()
            lab.submit_many(50)
        s = lab.result.summary
        total = sum(s[k] for k in ("completed", "failed", "rejected", "expired", "cancelled"))
        assert total == s["arrived"] == lab.arrived
        assert s["in_flight"] == 0


class _ViolatingEngine:
    """The native engine, except that its shutdown reports a conservation violation."""

    def __init__(self, engine: object) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> object:
        return getattr(self._engine, name)

    def shutdown(self, timeout: float | None) -> dict[str, object]:
        raw: dict[str, object] = self._engine.shutdown(timeout)  # type: ignore[attr-defined]
        raw["internal_error"] = "order conservation violated: arrived 3 != completed 2 + ..."
        return raw


def test_a_conservation_violation_is_raised_loudly() -> None:
    lab = Lab(scenario()).start()
    lab.submit().wait(timeout=30)
    lab._engine = _ViolatingEngine(lab._engine)  # type: ignore[assignment]
    with pytest.raises(RuntimeError, match="internal error: order conservation violated"):
        lab.shutdown()
    assert not lab.running  # the lab is shut down all the same
    assert lab.shutdown().cancelled == 0  # and later calls return its report
