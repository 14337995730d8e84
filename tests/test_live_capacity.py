"""A capacity-limited dependency in both engines (issue #11: one capacity server in model/, the
simulator's rules in the live engine too): with callers that give up, the share of orders that
complete, of calls served for nobody (wasted) and of calls CoDel drops agree between the
simulated and the live engine. Shares, not durations, are asserted (a noisy machine); the
arrivals come from the same seed in both engines."""

from __future__ import annotations

import pytest
import reliability_lab as rl


def _overloaded(drop_abandoned: bool, kind: str) -> rl.Scenario:
    """Two calls at a time, 10 ms each (200/s) against 300 arrivals/s, and callers that give up
    after 50 ms: the line grows and most waiting callers abandon their calls."""
    cap = rl.Capacity(
        max_in_service=2,
        drop_abandoned=drop_abandoned,
        discipline=rl.QueueDiscipline(kind=kind),  # type: ignore[arg-type]
    )
    return rl.Scenario(
        arrivals=rl.Poisson(300.0),
        duration=3.0,
        seed=5,
        workers=200,
        queue_capacity=10_000,
        dependencies=(
            rl.Dependency(
                "db",
                faults=rl.Faults(latency=rl.Constant(0.01), capacity=cap),
                attempt_timeout=0.05,
            ),
        ),
    )


def _live(sc: rl.Scenario) -> rl.Result:
    with rl.Lab(sc, shutdown_timeout=10.0) as lab:
        lab.start_load()
        assert lab.wait_idle(60.0)
    return lab.result


def _shares(r: rl.Result) -> dict[str, float]:
    n = r.summary["arrived"]
    d = r.totals["dependencies"][0]
    return {
        "completed": r.summary["completed"] / n,
        "wasted": d["wasted_service"] / n,
        "dropped": d["dropped_by_queue"] / n,
    }


# Cases whose shares do not hang on sub-millisecond timing: constant service times, and either a
# server saturated with abandoned work or LIFO, whose served calls are fresh. (FIFO with
# drop_abandoned under overload serves calls at the edge of their timeout: whether one completes
# then turns on the threads' wake-up delays.)
@pytest.mark.parametrize(
    "drop_abandoned, kind",
    [(False, "fifo"), (True, "lifo"), (False, "codel")],
)
def test_sim_and_live_agree_on_a_capacity_line_with_abandonment(
    drop_abandoned: bool, kind: str
) -> None:
    sc = _overloaded(drop_abandoned, kind)
    sim, live = rl.simulate(sc), _live(sc)
    assert sim.summary["arrived"] > 700 and live.summary["arrived"] > 700
    s, lv = _shares(sim), _shares(live)
    for key in s:
        assert lv[key] == pytest.approx(s[key], abs=0.06), (key, s, lv)
    for r in (sim, live):
        d = r.totals["dependencies"][0]
        assert r.summary["in_flight"] == 0
        assert d["rejected_by_capacity"] == 0  # an unbounded line
        if drop_abandoned:
            assert d["wasted_service"] == 0
    # The metastable case (the server works for callers that left) wastes most of its work in
    # both engines; LIFO with drop_abandoned completes about capacity / arrivals (200 / 300).
    if not drop_abandoned and kind == "fifo":
        assert s["wasted"] > 0.5 and lv["wasted"] > 0.5
    if drop_abandoned:
        assert s["completed"] > 0.5 and lv["completed"] > 0.5
    if kind == "codel":
        assert s["dropped"] > 0.1 and lv["dropped"] > 0.1
