"""Criticality classes, tenants and load shedding at the intake (``intake.shedding``).

Fixed seeds and tolerances; no timed assertions (the live agreement test submits while the one
worker is held by a long call, so that every decision depends only on the order of submits).
"""

from __future__ import annotations

import dataclasses
import time

import pytest
import reliability_lab as rl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _dep(mean: float = 0.08) -> rl.Dependency:
    return rl.Dependency("payment", faults=rl.Faults(latency=rl.Exponential(mean=mean)))


def overload(shedding: rl.Shedding | None, rate: float = 200.0, seed: int = 7) -> rl.Scenario:
    """8 workers at 80 ms a call: capacity 100 orders/s, offered ``rate``."""
    return rl.Scenario(
        arrivals=rl.Poisson(rate=rate),
        workers=8,
        queue_capacity=64,
        duration=60.0,
        seed=seed,
        sample_every=0.0,
        dependencies=[_dep()],
        intake=rl.Intake(shedding=shedding),
    )


MIX = rl.Shedding(
    critical=rl.ShedClass(traffic=0.3, max_occupancy=1.0),
    default=rl.ShedClass(traffic=0.3, max_occupancy=0.8),
    sheddable=rl.ShedClass(traffic=0.4, max_occupancy=0.5),
    fair_share_above=None,
)


def test_without_shedding_nothing_changes() -> None:
    plain = rl.simulate(overload(None, rate=150.0))
    assert plain.classes is None and plain.tenants is None
    assert plain.orders is not None
    assert set(plain.orders["criticality"]) == {"default"}
    # Shedding that never sheds (every class only by a full queue, no fairness) changes nothing:
    # the class draws use their own random stream.
    inert = rl.Shedding(default=rl.ShedClass(1.0, 1.0), fair_share_above=None)
    same = rl.simulate(overload(inert, rate=150.0))
    for key in ("arrived", "completed", "rejected", "failed_queue_full", "latency_p99"):
        assert same.summary[key] == plain.summary[key], key
    assert same.summary["failed_shed"] == 0


def test_critical_keeps_its_goodput_at_twice_the_capacity() -> None:
    res = rl.simulate(overload(MIX))
    c = res.classes
    assert c is not None
    rate = c["success_rate"]
    # The critical class keeps >= 95% of its orders; sheddable traffic absorbs the loss.
    assert rate["critical"] >= 0.95
    assert rate["sheddable"] < rate["default"] < rate["critical"]
    assert c.loc["sheddable", "shed"] > c.loc["default", "shed"] > c.loc["critical", "shed"]
    assert res.summary["class.critical.success_rate"] == rate["critical"]
    # The total still runs at capacity (about 100 orders/s of 200 offered).
    assert res.summary["goodput"] > 90.0
    # Without shedding, every class loses alike (FIFO with a full queue).
    fifo = rl.simulate(overload(rl.Shedding(
        critical=rl.ShedClass(0.3, 1.0), default=rl.ShedClass(0.3, 1.0),
        sheddable=rl.ShedClass(0.4, 1.0), fair_share_above=None)))
    assert fifo.classes is not None
    assert fifo.classes.loc["critical", "success_rate"] < 0.6


def test_shedding_by_queueing_delay() -> None:
    by_delay = rl.Shedding(
        critical=rl.ShedClass(0.3, 1.0),
        default=rl.ShedClass(0.3, 1.0, max_queue_delay=0.2),
        sheddable=rl.ShedClass(0.4, 1.0, max_queue_delay=0.05),
        fair_share_above=None,
    )
    res = rl.simulate(overload(by_delay))
    assert res.summary["shed_delay"] > 0 and res.summary["shed_occupancy"] == 0
    rate = res.classes["success_rate"] if res.classes is not None else None
    assert rate is not None
    assert rate["sheddable"] < rate["default"] < rate["critical"]
    assert rate["critical"] >= 0.9


def _tenants(others_traffic: float) -> rl.Shedding:
    return rl.Shedding(
        default=rl.ShedClass(1.0, 1.0),
        fair_share_above=0.5,
        tenants=(
            rl.Tenant("noisy", weight=1.0, traffic=10.0 * others_traffic),
            rl.Tenant("a", weight=1.0, traffic=others_traffic),
            rl.Tenant("b", weight=1.0, traffic=others_traffic),
        ),
    )


NOISY = rl.Shedding(
    default=rl.ShedClass(1.0, 1.0),
    fair_share_above=0.5,
    tenants=(rl.Tenant("noisy", 1.0, 5.0), rl.Tenant("a", 1.0, 1.0), rl.Tenant("b", 1.0, 1.0)),
)


@pytest.mark.parametrize("seed", [7, 8])
def test_a_noisy_tenant_cannot_take_more_than_its_share(seed: int) -> None:
    # Capacity 100/s, three tenants of equal weight: a fair share is 33/s. The noisy tenant
    # sends 333/s (10x its share), a and b 67/s each (2x theirs): each gets about a third.
    res = rl.simulate(overload(NOISY, rate=1000.0 * 7 / 15, seed=seed))
    t = res.tenants
    assert t is not None
    share = t["completed"] / t["completed"].sum()
    assert share["noisy"] <= 1 / 3 + 0.02
    assert share["a"] >= 1 / 3 - 0.02 and share["b"] >= 1 / 3 - 0.02
    assert res.summary["shed_fairness"] > 0
    # Without fairness the noisy tenant takes what it sends: 5/7 of the completions.
    unfair = rl.simulate(
        overload(dataclasses.replace(NOISY, fair_share_above=None), rate=1000.0 * 7 / 15)
    )
    assert unfair.tenants is not None
    assert unfair.tenants.loc["noisy", "completed"] / unfair.tenants["completed"].sum() > 0.65


def test_the_others_keep_their_orders_when_they_send_less_than_their_share() -> None:
    # a and b send 1/12 of 200 orders/s each (17/s, less than a third of 100/s): they keep what
    # they send, and the noisy tenant gets the rest of the capacity (max-min fairness).
    res = rl.simulate(overload(_tenants(1.0), rate=200.0))
    t = res.tenants
    assert t is not None
    assert t.loc["a", "success_rate"] >= 0.95 and t.loc["b", "success_rate"] >= 0.95
    assert t.loc["noisy", "completed"] > t.loc["a", "completed"] + t.loc["b", "completed"]
    assert t.loc["noisy", "shed"] > 0


def test_orders_table_and_summary_agree_with_the_tables() -> None:
    sh = rl.Shedding(
        critical=rl.ShedClass(0.2, 1.0), default=rl.ShedClass(0.5, 0.8),
        sheddable=rl.ShedClass(0.3, 0.5), tenants=(rl.Tenant("x"), rl.Tenant("y", 2.0, 3.0)))
    res = rl.simulate(overload(sh, rate=180.0).replace({"duration": 10.0}))
    o, c, t = res.orders, res.classes, res.tenants
    assert o is not None and c is not None and t is not None
    shed = o[o["reason"] == "shed"]
    assert len(shed) == res.summary["failed_shed"] == c["shed"].sum() == t["shed"].sum()
    for name, group in o.groupby("criticality", observed=False):
        assert len(group) == c.loc[name, "arrived"]
        assert (group["status"] == "completed").sum() == c.loc[name, "completed"]
    for name, group in o.groupby("tenant", observed=False):
        assert len(group) == t.loc[name, "arrived"]
    assert list(t.index) == ["x", "y"]


def test_sweepable_by_dotted_path() -> None:
    sc = overload(MIX).replace({"duration": 5.0})
    assert sc.get("intake.shedding.sheddable.max_occupancy") == 0.5
    swept = sc.replace({"intake.shedding.sheddable.max_occupancy": 0.3})
    assert swept.intake.shedding is not None
    assert swept.intake.shedding.sheddable.max_occupancy == 0.3
    with_tenants = overload(_tenants(1.0))
    moved = with_tenants.replace({"intake.shedding.tenants[noisy].weight": 2.0})
    assert moved.get("intake.shedding.tenants[0].weight") == 2.0
    table = rl.sweep(sc, {"intake.shedding.sheddable.max_occupancy": [0.2, 0.9]}, seeds=[1])
    assert len(table) == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"intake.shedding.tenants[0].weight": 0.0},
         "intake.shedding.tenants[noisy].weight must be a finite number in (0, 1e+09], got 0"),
        ({"intake.shedding.tenants[a].traffic": -1},
         "intake.shedding.tenants[a].traffic must be a finite number in [0, 1e+09], got -1"),
        ({"intake.shedding.sheddable.max_occupancy": 1.5},
         "intake.shedding.sheddable.max_occupancy must be a finite number in (0, 1], got 1.5"),
        ({"intake.shedding.default.traffic": 0.0}, "must not all be 0"),
        ({"intake.shedding.tenants[1].name": "noisy"}, "tenants[1].name must be unique"),
    ],
)
def test_bad_values_name_the_path(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as e:
        overload(_tenants(1.0)).replace(change)
    assert message in str(e.value)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    traffic=st.tuples(*[st.floats(0.0, 1.0)] * 3).filter(lambda t: sum(t) > 0.05),
    occupancy=st.tuples(*[st.floats(0.05, 1.0)] * 3),
    delay=st.one_of(st.none(), st.floats(0.001, 0.5)),
    tenants=st.lists(st.tuples(st.floats(0.1, 5.0), st.floats(0.0, 5.0)), min_size=0,
                     max_size=5).filter(lambda ts: not ts or sum(t for _, t in ts) > 0),
    fair=st.one_of(st.none(), st.floats(0.0, 1.0)),
    capacity=st.integers(0, 20),
    rate=st.floats(20.0, 400.0),
    deadline=st.sampled_from([0.0, 0.1]),
)
def test_conservation_per_class_and_tenant(
    seed: int,
    traffic: tuple[float, float, float],
    occupancy: tuple[float, float, float],
    delay: float | None,
    tenants: list[tuple[float, float]],
    fair: float | None,
    capacity: int,
    rate: float,
    deadline: float,
) -> None:
    sh = rl.Shedding(
        critical=rl.ShedClass(traffic[0], occupancy[0]),
        default=rl.ShedClass(traffic[1], occupancy[1], max_queue_delay=delay),
        sheddable=rl.ShedClass(traffic[2], occupancy[2], max_queue_delay=delay),
        fair_share_above=fair,
        tenants=tuple(rl.Tenant(f"t{i}", w, tr) for i, (w, tr) in enumerate(tenants)),
    )
    sc = rl.Scenario(
        arrivals=rl.Poisson(rate=rate), workers=3, queue_capacity=capacity, duration=2.0,
        seed=seed, sample_every=0.0, order_deadline=deadline, dependencies=[_dep(0.03)],
        intake=rl.Intake(shedding=sh))
    res = rl.simulate(sc)
    s, c, t, o = res.summary, res.classes, res.tenants, res.orders
    assert c is not None and t is not None and o is not None
    assert s["in_flight"] == 0 and len(o) == s["arrived"]
    for table in (c, t):
        assert (table["arrived"] == table["admitted"] + table["shed"] + table["queue_full"]).all()
        assert (table["admitted"] == table["completed"] + table["other_end"]).all()
        assert table["arrived"].sum() == s["arrived"]
        assert table["shed"].sum() == s["failed_shed"]
        assert table["queue_full"].sum() == s["failed_queue_full"]
        assert table["completed"].sum() == s["completed"]
    shed_causes = s["shed_occupancy"] + s["shed_delay"] + s["shed_fairness"]
    assert shed_causes == s["failed_shed"]
    # Every order ends in exactly one terminal state.
    terminal = sum(s[k] for k in ("completed", "failed", "rejected", "expired", "cancelled"))
    assert terminal == s["arrived"]


@pytest.mark.parametrize(
    ("fair", "causes"),
    [(0.25, ("shed_occupancy", "shed_fairness")), (None, ("shed_occupancy", "failed_queue_full"))],
)
def test_live_and_sim_agree_on_shedding_decisions(
    fair: float | None, causes: tuple[str, str]
) -> None:
    """A scripted burst: one worker is held by a long call, then 24 orders arrive at once with
    the classes and tenants the simulated engine drew. Admission decides each order's outcome
    (admitted, shed, queue full) from the order of arrivals alone, so both engines must agree
    order by order."""
    sh = rl.Shedding(
        critical=rl.ShedClass(0.4, 1.0), default=rl.ShedClass(0.3, 0.8),
        sheddable=rl.ShedClass(0.3, 0.5), fair_share_above=fair,
        tenants=(rl.Tenant("noisy", 1.0, 6.0), rl.Tenant("a"), rl.Tenant("b", 2.0, 1.0)))
    n = 25
    sc = rl.Scenario(
        arrivals=rl.Trace(tuple([0.0] + [1.0 + 0.001 * i for i in range(n - 1)])),
        workers=1, queue_capacity=10, duration=10.0, seed=11, sample_every=0.0,
        dependencies=[rl.Dependency("payment", faults=rl.Faults(latency=rl.Constant(30.0)))],
        intake=rl.Intake(shedding=sh))
    sim = rl.simulate(sc)
    o = sim.orders
    assert o is not None and len(o) == n

    def admission(status: str, reason: str) -> str:
        return reason if status == "rejected" else "admitted"

    expected = [admission(str(s), str(r)) for s, r in zip(o["status"], o["reason"], strict=True)]
    for cause in causes:  # the case exercises what it is meant to
        assert sim.summary[cause] > 0, cause
    lab = rl.Lab(sc)
    with lab:
        first = lab.submit(criticality=str(o["criticality"][0]), tenant=str(o["tenant"][0]))
        # Wait (bounded) until the worker holds the first order: the queue is then empty.
        for _ in range(2000):
            if first.status == "processing":
                break
            time.sleep(0.005)
        assert first.status == "processing"
        handles = [first] + [
            lab.submit(criticality=str(o["criticality"][i]), tenant=str(o["tenant"][i]))
            for i in range(1, n)
        ]
        got_now = [(h.status, h.reason) for h in handles]
        lab.shutdown(timeout=0.0)
    got = [admission(s if s == "rejected" else "x", r or "") for s, r in got_now]
    assert got == expected
    live = lab.result
    assert live.classes is not None and sim.classes is not None
    for col in ("arrived", "shed", "queue_full"):
        assert list(live.classes[col]) == list(sim.classes[col]), col
    assert live.tenants is not None and sim.tenants is not None
    assert list(live.tenants["shed"]) == list(sim.tenants["shed"])
    lo = live.orders
    assert lo is not None
    assert list(lo["criticality"]) == list(o["criticality"])
    assert list(lo["tenant"]) == list(o["tenant"])


def test_live_submit_rejects_unknown_class_or_tenant() -> None:
    sc = overload(_tenants(1.0)).replace({"duration": 1.0})
    with rl.Lab(sc) as lab:
        with pytest.raises(ValueError, match="criticality must be None or one of"):
            lab.submit(criticality="urgent")
        with pytest.raises(ValueError, match="tenant must be None or the name"):
            lab.submit(tenant="nobody")
        h = lab.submit(criticality="sheddable", tenant="a")
        assert h.wait(timeout=10)
    assert lab.result.tenants is not None
    assert lab.result.tenants.loc["a", "arrived"] == 1


def _conserved(classes: object, tenants: object, arrived: float) -> None:
    import pandas as pd

    for table in (classes, tenants):
        assert isinstance(table, pd.DataFrame)
        assert (table["arrived"] == table["admitted"] + table["shed"] + table["queue_full"]).all()
        assert (table["admitted"] == table["completed"] + table["other_end"]).all()
        assert table["arrived"].sum() == arrived


def test_live_load_generator_draws_classes_and_tenants() -> None:
    sc = rl.Scenario(
        arrivals=rl.Poisson(rate=600.0), workers=2, queue_capacity=16, duration=0.4, seed=5,
        sample_every=0.0,
        dependencies=[rl.Dependency("payment", faults=rl.Faults(latency=rl.Constant(0.005)))],
        intake=rl.Intake(shedding=dataclasses.replace(MIX, tenants=NOISY.tenants)))
    with rl.Lab(sc) as lab:
        lab.start_load()
        for _ in range(2000):  # bounded: the generator stops after `duration`
            if not lab.load_running:
                break
            time.sleep(0.01)
        assert lab.wait_idle(timeout=30)
        text = lab.metrics_text()
    res = lab.result
    assert res.classes is not None and res.tenants is not None
    _conserved(res.classes, res.tenants, res.summary["arrived"])
    assert (res.classes["arrived"] > 0).all()
    assert res.summary["failed_shed"] == res.classes["shed"].sum()
    assert 'rlab_intake_orders_total{criticality="critical",outcome="arrived"}' in text
    assert 'rlab_intake_tenant_orders_total{outcome="arrived",tenant="noisy"}' in text or (
        'rlab_intake_tenant_orders_total{tenant="noisy",outcome="arrived"}' in text)


def test_simulated_metrics_have_the_intake_families() -> None:
    res = rl.simulate(overload(dataclasses.replace(MIX, tenants=NOISY.tenants)).replace(
        {"duration": 2.0}))
    text = res.metrics_text()
    shed = res.classes["shed"] if res.classes is not None else None
    assert shed is not None
    line = f'rlab_intake_orders_total{{criticality="sheddable",outcome="shed"}} ' \
           f'{float(shed["sheddable"])}'
    assert line in text
    assert 'tenant="noisy"' in text
    plain = rl.simulate(overload(None).replace({"duration": 1.0}))
    assert "rlab_intake_orders" not in plain.metrics_text()
