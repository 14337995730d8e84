"""A client-side concurrency limit in front of a hedged or fanned-out dependency (issue 13): every
copy of a round takes its own permit, a copy the limit refuses is a local rejection of that copy
alone, and a cancelled copy hands its permit back unsampled. In-flight never exceeds a static
limit, and the two engines agree on per-order outcomes of a scripted scenario."""

from __future__ import annotations

import itertools

import pytest
import reliability_lab as rl
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_lab import (
    Capacity,
    Constant,
    Dependency,
    Exponential,
    Faults,
    Hedge,
    Limit,
    Poisson,
    Scenario,
    simulate,
)


@settings(max_examples=25, deadline=None)
@given(
    limit=st.integers(1, 12),
    max_hedges=st.integers(1, 3),
    rate=st.floats(100.0, 2000.0),
    seed=st.integers(0, 2**32),
)
def test_hedged_copies_never_exceed_a_static_limit(
    limit: int, max_hedges: int, rate: float, seed: int
) -> None:
    sc = Scenario(
        arrivals=Poisson(rate),
        workers=64,
        queue_capacity=200,
        duration=1.0,
        seed=seed,
        sample_every=0.005,
        order_deadline=0.3,
        dependencies=(
            Dependency(
                faults=Faults(latency=Exponential(0.01), capacity=Capacity(max_in_service=8)),
                limit=Limit(kind="static", initial=limit, max=30),
                hedge=Hedge(max_hedges=max_hedges, delay=0.005, budget_ratio=None),
            ),
        ),
    )
    r = simulate(sc)
    ts = r.timeseries
    assert (ts["payment.limit_inflight"] <= limit).all()
    s = r.summary
    terminal = s["completed"] + s["failed"] + s["rejected"] + s["expired"] + s["cancelled"]
    assert terminal == s["arrived"] and s["in_flight"] == 0
    raw = r.totals["dependencies"][0]
    assert raw["rejected_limit"] == ts["payment.rejected_limit"].sum()


def _outcomes(orders: object) -> list[tuple[str, str, int]]:
    import pandas as pd

    assert isinstance(orders, pd.DataFrame)
    return sorted(
        zip(
            orders["status"].astype(str),
            orders["reason"].astype(str),
            orders["attempts"].astype(int),
            strict=True,
        )
    )


@pytest.mark.parametrize(
    ("limit", "completed", "limited", "refused", "hedges"),
    [
        # Two first copies hold both permits for 0.5 s: their hedges (at 0.1 s) and every other
        # order's first copy are refused; the two orders still complete on their first copy.
        (2, 2, 10, 12, 0),
        # Four first copies and two hedges fit; the other two hedges of each batch are refused,
        # and the cancelled hedges hand their permits back before the next batch starts (a leaked
        # permit would refuse more hedges in the later batches).
        (6, 12, 0, 6, 6),
    ],
    ids=["limit-2", "limit-6"],
)
def test_both_engines_agree_on_a_hedged_dependency_under_a_static_limit(
    limit: int, completed: int, limited: int, refused: int, hedges: int
) -> None:
    # Every order arrives at once, a copy takes 0.5 s and a hedge follows after 0.1 s: which
    # copies get a permit is decided well before any copy ends, in both engines.
    n = 12
    sc = Scenario(
        arrivals=rl.Trace(tuple(0.0 for _ in range(n))),
        workers=4,
        queue_capacity=100,
        duration=0.1,
        seed=3,
        dependencies=(
            Dependency(
                faults=Faults(latency=Constant(0.5)),
                limit=Limit(kind="static", initial=limit),
                hedge=Hedge(delay=0.1, budget_ratio=None),
            ),
        ),
    )
    sim = simulate(sc)
    with rl.Lab(sc, shutdown_timeout=30.0) as lab:
        handles = lab.submit_many(n)
        assert all(h.wait(timeout=30) for h in handles)
    live = lab.result
    assert _outcomes(live.orders) == _outcomes(sim.orders)
    got = sim.summary
    assert got["completed"] == completed
    assert got["failed_limited"] == limited
    for r in (sim, live):
        dep = r.totals["dependencies"][0]
        assert dep["rejected_limit"] == refused
        assert dep["hedges"] == hedges


# -- hedge budget edges in the events table --------------------------------------------------------


def test_a_dry_hedge_budget_logs_bounded_dry_and_refill_edges() -> None:
    sc = Scenario(
        arrivals=Poisson(200.0),
        duration=2.0,
        seed=5,
        dependencies=(
            Dependency(
                faults=Faults(latency=Exponential(0.05)),
                hedge=Hedge(delay=0.01, budget_ratio=0.05, budget_burst=2.0),
            ),
        ),
    )
    r = simulate(sc)
    events = r.events
    hedge = events[events["kind"].isin(["hedge_budget_dry", "hedge_budget_refill"])]
    kinds = list(hedge["kind"])
    denied = r.totals["dependencies"][0]["hedges_denied"]
    assert denied > 0 and kinds and kinds[0] == "hedge_budget_dry"
    # Dry and refill alternate, starting dry: at most one more dry than refills.
    assert all(a != b for a, b in itertools.pairwise(kinds))
    assert kinds.count("hedge_budget_dry") - kinds.count("hedge_budget_refill") in (0, 1)
    # Edges, not denials: one dry edge per dry period (each has at least one denial), and a
    # refill only after a dry edge.
    assert kinds.count("hedge_budget_dry") <= denied
    assert len(kinds) <= 2 * kinds.count("hedge_budget_dry")
    assert len(kinds) < denied  # this run denies many hedges per dry period
    assert list(hedge["t"]) == sorted(hedge["t"])
    assert set(hedge["dependency"]) == {"payment"}
    # No budget, no edges.
    free = simulate(sc.replace({"payment.hedge.budget_ratio": None}))
    assert not free.events["kind"].str.startswith("hedge_budget").any()


def test_the_live_engine_logs_the_hedge_budget_edges_too() -> None:
    # Every copy takes 0.2 s and the hedge follows after 0.05 s; the budget holds one hedge and
    # refills after 20 calls: the first order hedges, the next ones run it dry.
    n = 8
    sc = Scenario(
        arrivals=rl.Trace(tuple(0.0 for _ in range(n))),
        workers=4,
        queue_capacity=100,
        duration=0.1,
        seed=3,
        dependencies=(
            Dependency(
                faults=Faults(latency=Constant(0.2)),
                hedge=Hedge(delay=0.05, budget_ratio=0.05, budget_burst=1.0),
            ),
        ),
    )
    sim = simulate(sc)
    with rl.Lab(sc, shutdown_timeout=30.0) as lab:
        handles = lab.submit_many(n)
        assert all(h.wait(timeout=30) for h in handles)
    for r in (sim, lab.result):
        events = r.events
        kinds = list(events[events["kind"].str.startswith("hedge_budget")]["kind"])
        assert kinds == ["hedge_budget_dry"]
        assert r.totals["dependencies"][0]["hedges_denied"] == n - 1
