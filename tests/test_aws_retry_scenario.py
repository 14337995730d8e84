"""AWS SDK retry modes inside a scenario (Dependency.aws_retry): validation, sweeps by dotted
path, and both engines giving the same per-order outcomes on a scripted run whose outcomes the
retry quota decides (botocore's numbers: 5 per retry, 1 refunded per success)."""

from __future__ import annotations

import time

import pandas as pd
import pytest
import reliability_lab as rl
from reliability_lab import AwsRetryConfig, Dependency, Faults, Phase, Scenario

_GAP = 0.1  # seconds between orders; phase edges fall half-way between two arrivals


def _scripted(n: int = 14) -> Scenario:
    # Every call fails (503) except in the "healthy" phase: orders 3..7 (arrivals 0.3 .. 0.7 s).
    faults = Faults(
        failure_rate=1.0,
        latency=rl.Constant(0.001),
        phases=(Phase("healthy", start=2.5 * _GAP, end=7.5 * _GAP, failure_rate=0.0),),
    )
    aws = AwsRetryConfig(quota=10, base_delay=0.001)  # retries within a few ms
    return Scenario(
        arrivals=rl.Trace(tuple(_GAP * i for i in range(n))),
        workers=2,
        queue_capacity=100,
        duration=_GAP * n,
        seed=3,
        dependencies=(Dependency(faults=faults, aws_retry=aws),),
    )


def _by_arrival(orders: object) -> list[tuple[str, str, int]]:
    assert isinstance(orders, pd.DataFrame)
    o = orders.sort_values("arrival")
    return list(
        zip(o["status"].astype(str), o["reason"].astype(str), o["attempts"].astype(int),
            strict=True)
    )


# The quota, order by order: 10 -> 5 -> 0 (three 503s: exhausted); 0 (budget at once); five
# successes refund 1 each -> 5; one retry paid -> 0, then budget; then budget at once.
_EXPECTED = (
    [("failed", "exhausted", 3), ("failed", "budget", 1), ("failed", "budget", 1)]
    + [("completed", "", 1)] * 5
    + [("failed", "budget", 2)]
    + [("failed", "budget", 1)] * 5
)


def test_the_quota_decides_the_scripted_outcomes_in_the_simulator() -> None:
    r = rl.simulate(_scripted())
    assert _by_arrival(r.orders) == _EXPECTED
    d = r.totals["dependencies"][0]
    assert d["retry_ends"]["budget"] == 1 + 1 + 1 + 5
    assert d["retries"] == 2 + 1


def test_both_engines_give_the_same_per_order_outcomes() -> None:
    sc = _scripted()
    sim = rl.simulate(sc)
    with rl.Lab(sc, shutdown_timeout=30.0) as lab:
        # The trace's arrivals, on the lab's clock: each order runs alone, in its phase (an
        # order takes a few ms; the phase edges are 50 ms away from any arrival).
        for i in range(len(_EXPECTED)):
            while lab.now() < _GAP * i:
                time.sleep(min(0.005, max(0.0, _GAP * i - lab.now())))
            assert lab.submit().wait(timeout=30)
    live = lab.result
    assert _by_arrival(live.orders) == _by_arrival(sim.orders) == _EXPECTED
    for key in ("calls", "retries", "successes", "failures"):
        assert live.totals["dependencies"][0][key] == sim.totals["dependencies"][0][key], key


def test_adaptive_mode_runs_in_both_engines() -> None:
    # 429s turn the adaptive limiter on; every order still ends exactly once.
    dep = Dependency(
        faults=Faults(failure_rate=0.3, mix=rl.FailureMix(http503=0.0, http429=1.0),
                      latency=rl.Constant(0.001)),
        aws_retry=AwsRetryConfig(mode="adaptive", base_delay=0.001, max_wait=0.05),
    )
    sc = Scenario(arrivals=rl.Poisson(200.0), workers=8, queue_capacity=100, duration=2.0,
                  seed=5, dependencies=(dep,))
    r = rl.simulate(sc)
    s = r.summary
    assert s["completed"] + s["failed"] + s["rejected"] + s["expired"] == s["arrived"]
    # The bucket starts empty at CUBIC's low rate: a retry soon after a 429 would wait longer
    # than max_wait for its token, and is refused (not sent).
    d = r.totals["dependencies"][0]
    assert d["rejected_throttle"] > 0
    assert d["calls"] == d["successes"] + d["failures"]
    slow = rl.simulate(sc.replace({"payment.aws_retry.max_wait": 60.0}))
    assert slow.totals["dependencies"][0]["rejected_throttle"] == 0
    assert slow.totals["dependencies"][0]["retries"] > 0
    # Live, with a faster floor rate: sends sleep for their tokens (up to 0.3 s) or are refused.
    fast = sc.replace({"payment.aws_retry.min_rate": 20.0, "payment.aws_retry.max_wait": 0.3})
    with rl.Lab(fast, shutdown_timeout=30.0) as lab:
        assert all(h.wait(timeout=30) for h in lab.submit_many(40))
    s = lab.result.summary
    assert s["in_flight"] == 0 and s["completed"] + s["failed"] == s["arrived"] == 40
    d = lab.result.totals["dependencies"][0]
    assert d["calls"] == d["successes"] + d["failures"] > 0


def test_sweepable_by_dotted_path() -> None:
    sc = _scripted()
    assert sc.get("payment.aws_retry.mode") == "standard"
    adaptive = sc.replace({"payment.aws_retry.mode": "adaptive", "payment.aws_retry.quota": 20})
    assert adaptive.dependency("payment").aws_retry == AwsRetryConfig(
        mode="adaptive", quota=20, base_delay=0.001
    )
    # A larger quota pays for more retries.
    r = rl.simulate(sc.replace({"payment.aws_retry.quota": 500}))
    assert r.totals["dependencies"][0]["retry_ends"]["budget"] == 0


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"payment.aws_retry.mode": "legacy"}, r"payment\.aws_retry\.mode must be one of"),
        ({"payment.aws_retry.retry_cost": 0}, r"payment\.aws_retry\.retry_cost must be"),
        ({"payment.aws_retry.beta": 1.0}, r"payment\.aws_retry\.beta must be"),
        ({"payment.retry": rl.RetryConfig()},
         r"payment\.retry must be None when aws_retry is set"),
        ({"payment.budget": rl.TokenBucketConfig()}, r"payment\.budget must be None"),
    ],
)
def test_bad_settings_name_the_path(changes: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _scripted().replace(changes)


def test_a_sweep_over_the_mode_and_the_quota() -> None:
    df = rl.sweep(
        _scripted(),
        {"payment.aws_retry.mode": ["standard", "adaptive"], "payment.aws_retry.quota": [10, 500]},
        max_workers=1,
        progress=False,
    )
    assert len(df) == 4
    assert set(df["payment.aws_retry.mode"]) == {"standard", "adaptive"}
    # No 429s: adaptive behaves as standard; a large quota lets every failing order retry.
    by = df.set_index(["payment.aws_retry.mode", "payment.aws_retry.quota"])["failed"]
    assert by["standard", 10] == by["adaptive", 10]
    assert by["standard", 500] == by["adaptive", 500]
