"""Lab.set_breaker: a dependency's circuit breaker parameters changed while the lab runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import reliability_lab as rl


def _scenario(breaker: rl.Breaker | None = None) -> rl.Scenario:
    return rl.Scenario(
        arrivals=rl.Poisson(rate=10),  # the load is never started: the test submits
        duration=600.0,
        workers=2,
        dependencies=[
            rl.Dependency(
                "payment",
                faults=rl.Faults(failure_rate=1.0, latency=rl.Constant(0.0001)),
                breaker=breaker or rl.Breaker(consecutive_failures=1000, open_for=600.0),
            ),
            rl.Dependency("inventory", faults=rl.Faults(latency=rl.Constant(0.0001))),
        ],
    )


def _wait(pred: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def _payment_state(lab: rl.Lab) -> Any:
    return lab.internals()["dependencies"]["payment"]["breaker_state"]


def _run(lab: rl.Lab, n: int) -> None:
    for _ in range(n):
        assert lab.submit().wait(60)


def test_a_lowered_threshold_applies_to_the_next_calls_only() -> None:
    with rl.Lab(_scenario()) as lab:
        _run(lab, 3)
        assert _payment_state(lab) == "closed"  # 3 failures < 1000
        new = lab.set_breaker("payment", {"consecutive_failures": 2})
        assert new == rl.Breaker(consecutive_failures=2, open_for=600.0)
        assert lab.breaker("payment") == new
        # The three earlier failures are not counted under the new threshold.
        _run(lab, 1)
        assert _payment_state(lab) == "closed"
        _run(lab, 1)
        assert _payment_state(lab) == "open"


def test_a_whole_breaker_replaces_and_a_shorter_open_for_takes_effect_now() -> None:
    with rl.Lab(_scenario(rl.Breaker(consecutive_failures=1, open_for=600.0))) as lab:
        _run(lab, 1)
        assert _payment_state(lab) == "open"
        lab.set_breaker("payment", rl.Breaker(consecutive_failures=1, open_for=0.01))
        # Re-measured from the trip: the open period is over once 10 ms have passed.
        assert _wait(lambda: _payment_state(lab) == "half_open")
        assert lab.breaker("payment") == rl.Breaker(consecutive_failures=1, open_for=0.01)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"open_for": -1}, r"payment\.breaker\.open_for must be"),
        ({"open_for": 0}, r"payment\.breaker\.open_for must be"),
        ({"consecutive_failures": 2.5}, r"payment\.breaker\.consecutive_failures must be an int"),
        ({"consecutive_failures": 0}, r"payment\.breaker\.at least one trip policy"),
        ({"window": "sliding"}, r"payment\.breaker\.window"),
        ({"bogus": 1}, r"payment\.breaker\.bogus is not a field"),
        ({"half_open_max_calls": 0}, r"payment\.breaker\.half_open_max_calls must be"),
    ],
)
def test_bad_values_name_the_path_and_change_nothing(change: dict[str, Any], message: str) -> None:
    with rl.Lab(_scenario()) as lab:
        before = lab.breaker("payment")
        with pytest.raises(ValueError, match=message):
            lab.set_breaker("payment", change)
        assert lab.breaker("payment") == before
        _run(lab, 2)  # still 1000 in a row: nothing changed in the engine either
        assert _payment_state(lab) == "closed"


def test_wrong_dependency_or_type() -> None:
    with rl.Lab(_scenario()) as lab:
        with pytest.raises(KeyError, match="no dependency named 'nope'"):
            lab.set_breaker("nope", {"open_for": 1.0})
        with pytest.raises(ValueError, match=r"inventory\.breaker is None"):
            lab.set_breaker("inventory", {"open_for": 1.0})
        assert lab.breaker("inventory") is None
        with pytest.raises(TypeError, match="breaker must be a Breaker or a dict"):
            lab.set_breaker("payment", 3)  # type: ignore[arg-type]
        with pytest.raises(KeyError):
            lab.breaker("nope")
