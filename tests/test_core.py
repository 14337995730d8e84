"""Clocks and seeded random streams from Python."""

from __future__ import annotations

import pytest
from reliability_lab import _core
from reliability_lab.clock import ManualClock, SteadyClock, default_clock


def test_manual_clock_moves_only_when_told() -> None:
    c = ManualClock(start=1.5)
    assert c.now() == 1.5
    assert c.advance(2.0) == 3.5
    c.sleep(0.5)  # a manual clock's sleep advances it at once
    assert c.now() == 4.0
    assert c.advance_to(3.0) == 4.0  # never backwards
    assert c.now_ns() == 4_000_000_000
    with pytest.raises(ValueError, match="seconds must be a finite number in \\[0, 1e\\+06\\]"):
        c.advance(-1)
    with pytest.raises(ValueError, match="seconds"):
        c.advance(float("nan"))


def test_steady_clock_sleeps_for_real() -> None:
    c = SteadyClock()
    t0 = c.now()
    c.sleep(0.02)
    assert c.now() - t0 >= 0.019
    assert isinstance(default_clock(), SteadyClock)


def test_named_streams_are_reproducible_and_independent() -> None:
    a = _core.Rng(42).stream("payment")
    b = _core.Rng(42).stream("payment")
    assert [a.next_u64() for _ in range(5)] == [b.next_u64() for _ in range(5)]
    other = _core.Rng(42).stream("arrivals")
    assert other.next_u64() != _core.Rng(42).stream("payment").next_u64()
    assert _core.Rng(43).stream("payment").next_u64() != _core.Rng(42).stream("payment").next_u64()
    u = [a.uniform01() for _ in range(10_000)]
    assert all(0.0 <= x < 1.0 for x in u)
    assert sum(u) / len(u) == pytest.approx(0.5, abs=0.02)


def test_outcome_names() -> None:
    assert _core.default_retryable() == [
        "timeout", "connection_reset", "429", "500", "502", "503", "504"
    ]
    assert "breaker_half_open_full" in _core.outcome_kinds()
    with pytest.raises(ValueError, match="unknown outcome"):
        _core.parse_outcome_set(["bogus"])
