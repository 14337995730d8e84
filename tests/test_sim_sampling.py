"""The time series' size is bounded by the arrivals' span, not by the drain's length."""

from __future__ import annotations

import numpy as np
import reliability_lab as rl
from reliability_lab.sim import simulate

REGULAR_DRAIN_SAMPLES = 1000  # cpp/rlab/model/sample_schedule.h kRegularDrainSamples


def test_a_drain_of_millions_of_seconds_keeps_a_bounded_time_series() -> None:
    # A legal latency of 1e6 s with the default duration (60 s), workers (8) and queue (64):
    # 72 orders drain 8 at a time, about 9e6 virtual seconds. Sampled every second through the
    # drain this kept ~9 million rows (MemoryError in simulate); now about 1000 + log2(9e6).
    sc = rl.Scenario(
        dependencies=[rl.Dependency("payment", faults=rl.Faults(latency=rl.Constant(1e6)))],
        record_orders=False,
    )
    r = simulate(sc)
    s = r.summary
    assert s["in_flight"] == 0
    assert s["end_time"] > 8e6  # the drain did last millions of seconds
    ts = r.timeseries
    assert len(ts) <= 60 + REGULAR_DRAIN_SAMPLES + 40
    t = ts["t"].to_numpy(float)
    gaps = np.diff(t, prepend=0.0)
    assert (gaps > 0).all()
    # Regular through the arrivals and the first 1000 s of the drain, then doubling.
    regular = 60 + REGULAR_DRAIN_SAMPLES
    np.testing.assert_allclose(gaps[:regular], 1.0)
    np.testing.assert_allclose(gaps[regular + 1 : -1] / gaps[regular:-2], 2.0)
    # Flows are per interval, so the coarse rows still add up to the run's totals.
    assert ts["arrivals"].sum() == s["arrived"]
    assert ts["completed"].sum() == s["completed"]
    assert ts["rejected"].sum() == s["rejected"]
    assert t[-1] == s["end_time"]


def test_ordinary_runs_are_sampled_regularly_to_the_end() -> None:
    # A drain shorter than 1000 samples is unchanged: one row per second up to the end.
    sc = rl.Scenario(
        dependencies=[rl.Dependency("payment", faults=rl.Faults(latency=rl.Constant(30.0)))],
        duration=20.0,
        record_orders=False,
    )
    r = simulate(sc)
    t = r.timeseries["t"].to_numpy(float)
    assert r.summary["end_time"] > 100.0
    np.testing.assert_allclose(np.diff(t[:-1]), 1.0)
    assert t[-1] == r.summary["end_time"]
