"""Retry budgets: gRFC A6 token bucket and the ratio budget."""

from __future__ import annotations

import dataclasses
import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_lab.budget import (
    RatioBudget,
    RatioBudgetConfig,
    RetryBudgetProtocol,
    TokenBucket,
    TokenBucketConfig,
)
from reliability_lab.clock import ManualClock

# ---------------------------------------------------------------------------------------------
# A pure-Python model of gRFC A6, written from the spec: integer thousandths, start full,
# -1000 per retryable failure, +ratio per success, clamp to [0, max], retry iff tokens > max / 2.


def milli(v: float) -> int:
    """Rounds v * 1000 half away from zero, as C++ llround does (Python's round is half-even)."""
    y = v * 1000
    r = math.floor(y)
    return r + (1 if y - r >= 0.5 else 0)


class A6Model:
    def __init__(self, max_tokens: float, token_ratio: float) -> None:
        self.max = milli(max_tokens)
        self.ratio = milli(token_ratio)
        self.threshold = self.max // 2
        self.tokens = self.max

    def outcome(self, success: bool, retryable_failure: bool) -> None:
        if success:
            self.tokens = min(self.max, self.tokens + self.ratio)
        elif retryable_failure:
            self.tokens = max(0, self.tokens - 1000)

    def try_acquire(self) -> bool:
        return self.tokens > self.threshold


EVENTS = st.sampled_from(["success", "failure", "non_retryable", "request", "acquire"])


def test_a6_sequence_max_10_ratio_0_1() -> None:
    b = TokenBucket(max_tokens=10, token_ratio=0.1)
    assert b.tokens == 10 and b.threshold == 5
    for _ in range(4):
        b.on_outcome(0.0, False, True)
    assert b.tokens == 6 and b.try_acquire_retry(0.0)
    b.on_outcome(0.0, False, True)
    assert b.tokens == 5 and not b.try_acquire_retry(0.0)  # strictly above max/2 only
    b.on_outcome(0.0, False, True)
    assert b.tokens == 4 and not b.try_acquire_retry(0.0)
    for _ in range(10):
        b.on_outcome(0.0, True, False)
    assert b.milli_tokens == 5000 and not b.try_acquire_retry(0.0)  # exactly 5.0, no float drift
    b.on_outcome(0.0, True, False)
    assert b.milli_tokens == 5100 and b.try_acquire_retry(0.0)
    assert b.milli_tokens == 5100  # acquiring takes nothing
    assert (b.retries_allowed, b.retries_refused) == (2, 3)


def test_a6_requests_and_non_retryable_failures_do_not_count() -> None:
    b = TokenBucket(3, 0.5)
    for i in range(50):
        b.on_request(float(i))
        b.on_outcome(float(i), False, False)
    assert b.tokens == 3


def test_a6_token_ratio_above_one_as_in_grpc_tests() -> None:
    # gRFC A6 only requires tokenRatio > 0; gRPC's own retry-throttling tests use 1.6.
    b = TokenBucket(max_tokens=10, token_ratio=1.6)
    assert b.token_ratio == 1.6
    for _ in range(5):
        b.on_outcome(0.0, False, True)
    assert b.tokens == 5 and not b.try_acquire_retry(0.0)  # at max/2: no retries
    b.on_outcome(0.0, True, False)
    assert b.tokens == 6.6 and b.try_acquire_retry(0.0)  # one success returns 1.6 tokens
    for _ in range(3):
        b.on_outcome(0.0, True, False)
    assert b.tokens == 10  # capped at max_tokens (6.6 + 4.8 would be 11.4)
    assert TokenBucketConfig(max_tokens=10, token_ratio=1000).token_ratio == 1000


def test_a6_three_decimal_places() -> None:
    assert TokenBucket(10, 0.57).token_ratio == 0.57  # 569.999... thousandths rounds to 570
    assert TokenBucket(10, 0.1234).token_ratio == 0.123
    assert TokenBucket(0.003, 1).threshold == 0.001  # integer halving of 3 thousandths


@given(
    max_tokens=st.integers(1, 1_000_000).map(lambda m: m / 1000),
    token_ratio=st.integers(1, 3000).map(lambda r: r / 1000),
    events=st.lists(EVENTS, max_size=300),
)
@settings(max_examples=200, deadline=None)
def test_a6_matches_reference_model_and_stays_in_range(
    max_tokens: float, token_ratio: float, events: list[str]
) -> None:
    b = TokenBucket(max_tokens, token_ratio)
    model = A6Model(max_tokens, token_ratio)
    for e in events:
        if e == "acquire":
            assert b.try_acquire_retry(0.0) == model.try_acquire()
        elif e == "request":
            b.on_request(0.0)
        else:
            success, retryable = e == "success", e == "failure"
            b.on_outcome(0.0, success, retryable)
            model.outcome(success, retryable)
        assert b.milli_tokens == model.tokens
        assert 0 <= b.tokens <= b.max_tokens


@given(
    max_tokens=st.floats(0.0005, 1000, allow_nan=False),
    token_ratio=st.floats(0.0005, 1, allow_nan=False),
    events=st.lists(st.booleans(), max_size=100),
)
@settings(max_examples=100, deadline=None)
def test_a6_any_float_configuration_stays_in_range(
    max_tokens: float, token_ratio: float, events: list[bool]
) -> None:
    b = TokenBucket(max_tokens, token_ratio)
    for success in events:
        b.on_outcome(0.0, success, not success)
        assert 0 <= b.milli_tokens <= milli(max_tokens) == b.native.max_milli_tokens


def test_token_bucket_many_threads_stay_in_range() -> None:
    b = TokenBucket(5, 0.3)
    bad: list[float] = []

    def worker(seed: int) -> None:
        for i in range(3000):
            if (i * 7 + seed) % 3 == 0:
                b.on_outcome(0.0, False, True)
            else:
                b.on_outcome(0.0, True, False)
            t = b.tokens
            if not 0 <= t <= 5:
                bad.append(t)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_tokens": 0}, r"max_tokens must be a finite number in \(0, 1000\], got 0"),
        ({"max_tokens": 1001}, "max_tokens"),
        ({"max_tokens": math.nan}, "max_tokens"),
        ({"max_tokens": math.inf}, "max_tokens"),
        ({"max_tokens": 0.0001}, "max_tokens must be at least 0.0005"),
        ({"token_ratio": 0}, r"token_ratio must be a finite number in \(0, 1000\]"),
        ({"token_ratio": 1000.5}, "token_ratio"),
        ({"token_ratio": -math.inf}, "token_ratio"),
        ({"token_ratio": "0.1"}, r"token_ratio must be a finite number in \(0, 1000\], got .0\.1."),
    ],
)
def test_token_bucket_errors_name_the_parameter(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TokenBucket(**kwargs)  # type: ignore[arg-type]


def test_token_bucket_config_is_frozen_and_builds() -> None:
    cfg = TokenBucketConfig(max_tokens=4, token_ratio=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.max_tokens = 3  # type: ignore[misc]
    b = cfg.build()
    assert b.config == cfg and b.max_tokens == 4
    assert TokenBucket.from_config(cfg).tokens == 4
    with pytest.raises(ValueError, match="token_ratio"):
        TokenBucketConfig(token_ratio=2000)


def test_budgets_follow_the_protocol() -> None:
    assert isinstance(TokenBucket(), RetryBudgetProtocol)
    assert isinstance(RatioBudget(clock=ManualClock()), RetryBudgetProtocol)


# ---------------------------------------------------------------------------------------------
# Ratio budget


def test_ratio_floor_allows_retries_without_requests() -> None:
    clock = ManualClock()
    b = RatioBudget(ratio=0.1, window=10.0, min_retries_per_second=1.0, clock=clock)
    assert b.floor == 10
    assert [b.try_acquire_retry() for _ in range(11)] == [True] * 10 + [False]
    for _ in range(10):
        b.on_request()
    assert b.try_acquire_retry() and not b.try_acquire_retry()  # 10 requests x 0.1 = 1 more
    s = b.snapshot()
    assert (s.requests, s.retries, s.allowance, s.retries_refused) == (10, 11, 11.0, 2)
    assert b.requests == 10 and b.retries == 11 and b.retries_refused == 2


def test_ratio_exact_at_the_allowance() -> None:
    b = RatioBudget(ratio=0.29, window=10.0, min_retries_per_second=0.0, clock=ManualClock())
    for _ in range(100):
        b.on_request(0.0)
    allowed = sum(b.try_acquire_retry(0.0) for _ in range(40))
    assert allowed == 29  # 0.29 * 100 == 28.999999999999996 in binary floating point


def test_ratio_window_expiry() -> None:
    clock = ManualClock()
    b = RatioBudget(ratio=0.5, window=10.0, min_retries_per_second=0.0, clock=clock)
    for _ in range(10):
        b.on_request()
    assert sum(b.try_acquire_retry() for _ in range(10)) == 5
    clock.advance(5.0)
    for _ in range(10):
        b.on_request()
    assert sum(b.try_acquire_retry() for _ in range(10)) == 5
    clock.advance(5.5)  # t = 10.5: the first second's bucket has expired
    assert (b.requests, b.retries) == (10, 5)
    assert not b.try_acquire_retry()
    clock.advance(5.0)  # t = 15.5: everything has expired
    assert (b.requests, b.retries) == (0, 0)
    b.on_request()
    assert not b.try_acquire_retry()  # half a retry earned
    b.on_request()
    assert b.try_acquire_retry()


def test_ratio_outcomes_do_not_matter() -> None:
    b = RatioBudget(ratio=1.0, min_retries_per_second=0.0, clock=ManualClock())
    b.on_request(0.0)
    for _ in range(5):
        b.on_outcome(0.0, False, True)
    assert b.try_acquire_retry(0.0) and not b.try_acquire_retry(0.0)


@given(
    ratio=st.floats(0, 2),
    floor_rate=st.floats(0, 5),
    steps=st.lists(st.tuples(st.sampled_from(["request", "retry"]), st.floats(0, 3)), max_size=200),
)
@settings(max_examples=100, deadline=None)
def test_ratio_never_exceeds_the_allowance(
    ratio: float, floor_rate: float, steps: list[tuple[str, float]]
) -> None:
    clock = ManualClock()
    b = RatioBudget(ratio=ratio, window=5.0, min_retries_per_second=floor_rate, clock=clock)
    for op, dt in steps:
        clock.advance(dt)
        if op == "request":
            b.on_request()
        elif b.try_acquire_retry():
            s = b.snapshot()
            assert s.retries <= s.allowance * (1 + 1e-9) + 1e-9
        else:
            s = b.snapshot()
            assert s.retries + 1 > s.allowance * (1 - 1e-9) - 1e-9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ratio": -0.1}, r"ratio must be a finite number in \[0, 1000\], got -0.1"),
        ({"ratio": math.nan}, "ratio"),
        ({"window": 0}, r"window must be a finite number in \(0, 1e\+06\]"),
        ({"window": math.inf}, "window"),
        ({"min_retries_per_second": -1}, "min_retries_per_second"),
        ({"min_retries_per_second": math.inf}, "min_retries_per_second"),
        ({"buckets": 0}, r"buckets must be an integer in \[1, 1000\]"),
        ({"buckets": 2.5}, "buckets must be an integer"),
        ({"buckets": 10**30}, "buckets"),
        ({"window": 1e-8, "buckets": 100}, "buckets must be at most window"),
    ],
)
def test_ratio_errors_name_the_parameter(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RatioBudget(**kwargs)  # type: ignore[arg-type]


def test_ratio_now_must_be_finite() -> None:
    b = RatioBudget(clock=ManualClock())
    with pytest.raises(ValueError, match="now"):
        b.on_request(math.nan)


def test_ratio_config_builds() -> None:
    cfg = RatioBudgetConfig(ratio=0.2, window=4.0, min_retries_per_second=0.5, buckets=4)
    b = cfg.build(clock=ManualClock())
    assert b.config == cfg and b.floor == 2.0
    assert b.native.window == 4.0 and b.native.buckets == 4
