"""The intake's gates together: rate limit, concurrency limit, queue, shedder and CoDel in one
run. Each was tested alone; here they share the queue, so the counts they keep must still add
up: every order ends once, per class and per tenant too, in both engines."""

from __future__ import annotations

import pytest
import reliability_lab as rl

TERMINAL = ("completed", "failed", "rejected", "expired", "cancelled")


def _scenario(rate_limit: bool, seed: int) -> rl.Scenario:
    return rl.Scenario(
        arrivals=rl.Poisson(400.0),
        workers=4,
        queue_capacity=40,
        duration=20.0,
        seed=seed,
        order_deadline=1.0,
        dependencies=(rl.Dependency("payment", faults=rl.Faults(latency=rl.Exponential(0.02))),),
        intake=rl.Intake(
            shedding=rl.Shedding(
                sheddable=rl.ShedClass(traffic=0.4, max_occupancy=0.5),
                fair_share_above=0.5,
                tenants=(rl.Tenant("noisy", traffic=5.0), rl.Tenant("a"), rl.Tenant("b")),
            ),
            discipline=rl.QueueDiscipline(kind="codel"),
            limit=rl.Limit(kind="aimd", initial=30, min=5, max=60),
            rate_limit=rl.RateLimit(rate=300.0, burst=50) if rate_limit else None,
        ),
    )


def _check(r: rl.Result) -> None:
    s = r.summary
    assert sum(s[k] for k in TERMINAL) == s["arrived"]
    for table in (r.classes, r.tenants):
        assert (table["arrived"] == table["admitted"] + table["shed"] + table["queue_full"]).all()
        assert table["arrived"].sum() == s["arrived"]
        assert (table["completed"] <= table["admitted"]).all()
        # Every admitted order ends once, counted per class and tenant: those CoDel drops and
        # those a gate refuses after an intake.rate_limit wait included.
        assert (table["admitted"] == table["completed"] + table["other_end"]).all()


@pytest.mark.parametrize("rate_limit", [False, True])
def test_every_gate_in_one_simulated_run_conserves_orders(rate_limit: bool) -> None:
    r = rl.simulate(_scenario(rate_limit, seed=3))
    _check(r)
    reasons = set(r.orders["reason"].astype(str))
    # Overload at 4x: more than one gate refused something.
    assert len(reasons & {"shed", "queue_delay", "limited", "rate_limited", "queue_full"}) >= 2


def test_every_gate_in_one_live_run_conserves_orders() -> None:
    sc = _scenario(False, seed=4).replace({"duration": 2.0})
    with rl.Lab(sc, shutdown_timeout=30.0) as lab:
        handles = lab.submit_many(600)
        assert all(h.wait(timeout=60) for h in handles)
        assert lab.wait_idle(timeout=60)
    _check(lab.result)
