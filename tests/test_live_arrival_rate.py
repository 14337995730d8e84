"""Lab.set_arrival_rate: the load generator's rate changed while it runs."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import reliability_lab as rl
from reliability_lab.scenario.arrivals import Arrivals


def _scenario(arrivals: Arrivals) -> rl.Scenario:
    return rl.Scenario(
        arrivals=arrivals,
        duration=600.0,
        workers=4,
        queue_capacity=4096,
        dependencies=[rl.Dependency("payment", faults=rl.Faults(latency=rl.Constant(0.0001)))],
    )


def _wait(pred: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_rate_change_reaches_the_running_generator() -> None:
    with rl.Lab(_scenario(rl.Poisson(rate=0.001))) as lab:
        assert lab.arrival_rate == 0.001
        lab.start_load()
        lab.set_arrival_rate(2000)
        assert lab.arrival_rate == 2000.0
        # At 0.001/s the 200 arrivals would take days: only the new rate brings them.
        assert _wait(lambda: lab.arrived >= 200), lab.arrived
        lab.set_arrival_rate(0.001)
        lab.stop_load()


@pytest.mark.parametrize("bad", [0, -5.0, float("nan"), float("inf"), 1e8])
def test_bad_rates_name_the_path_and_range(bad: float) -> None:
    with rl.Lab(_scenario(rl.Poisson(rate=10))) as lab:
        with pytest.raises(ValueError, match=r"arrivals\.rate must be .*\(0, 1e\+07\]"):
            lab.set_arrival_rate(bad)
        assert lab.arrival_rate == 10.0
        with pytest.raises(TypeError, match=r"arrivals\.rate"):
            lab.set_arrival_rate("fast")  # type: ignore[arg-type]


def test_arrivals_without_one_rate_refuse() -> None:
    with rl.Lab(_scenario(rl.ClosedLoop(clients=2))) as lab:
        assert lab.arrival_rate == 0.0
        with pytest.raises(RuntimeError, match=r"arrivals\.rate"):
            lab.set_arrival_rate(100)
