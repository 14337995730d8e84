"""Adaptive client-side throttling (Google SRE book)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_lab.clock import ManualClock
from reliability_lab.errors import BreakerOpen, DeadlineExceeded, RetryExhausted, Throttled
from reliability_lab.throttle import (
    AdaptiveThrottle,
    Throttle,
    is_accepted_outcome,
    is_overload,
)


def sre(k: float, requests: int, accepts: int) -> float:
    return max(0.0, (requests - k * accepts) / (requests + 1))


@pytest.mark.parametrize(
    ("k", "requests", "accepts", "expected"),
    [
        (2, 0, 0, 0.0),
        (2, 10, 3, 4 / 11),
        (2, 10, 5, 0.0),
        (2, 10, 9, 0.0),
        (2, 100, 0, 100 / 101),
        (1.5, 20, 4, 14 / 21),
        (1, 1000, 900, 100 / 1001),
    ],
)
def test_probability_hand_computed(k: float, requests: int, accepts: int, expected: float) -> None:
    assert AdaptiveThrottle.probability(k, requests, accepts) == pytest.approx(expected, abs=1e-15)


@given(
    k=st.floats(1, 1000),
    requests=st.integers(0, 10**6),
    accepts=st.integers(0, 10**6),
)
def test_probability_formula(k: float, requests: int, accepts: int) -> None:
    p = AdaptiveThrottle.probability(k, requests, accepts)
    assert p == pytest.approx(sre(k, requests, accepts), rel=1e-12, abs=1e-15)
    assert 0 <= p < 1


@given(
    k=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
    events=st.lists(st.sampled_from(["allow", "accept"]), max_size=200),
)
@settings(max_examples=100, deadline=None)
def test_window_counts_follow_the_formula(k: float, events: list[str]) -> None:
    t = AdaptiveThrottle(k=k, clock=ManualClock(), seed=7)
    requests = accepts = 0
    for e in events:
        if e == "allow":
            t.allow()
            requests += 1  # rejected requests count too
        else:
            t.record(accepted=True)
            accepts += 1
        assert t.rejection_probability == pytest.approx(sre(k, requests, accepts))
    assert (t.requests, t.accepts) == (requests, accepts)


def test_empirical_rejection_frequency_under_a_fixed_seed() -> None:
    # Hold accepts / requests at 1/5 with k = 2: p stays near 1 - 2/5 = 0.6.
    t = AdaptiveThrottle(k=2, window=1000, buckets=10, clock=ManualClock(), seed=42)
    for _ in range(10_000):
        t.native.allow(0.0, 0.999999)
    for _ in range(2_000):
        t.record(True)
    assert t.rejection_probability == pytest.approx(0.6, abs=1e-4)
    rejected = 0
    n = 20_000
    for i in range(n):
        if not t.allow():
            rejected += 1
        if i % 5 == 4:
            t.record(True)
    assert rejected / n == pytest.approx(0.6, abs=0.014)  # 4 binomial standard deviations
    assert t.local_rejections == rejected


def test_max_reject_probability_caps_the_rejections() -> None:
    """With every request refused by the backend the book's p tends to 1; capped at 0.8 (Envoy's
    default) about a fifth of the requests still go through, and the snapshot says 0.8."""

    def rejected_share(cap: float) -> float:
        t = AdaptiveThrottle.from_config(
            Throttle(window=1000, buckets=10, max_reject_probability=cap),
            clock=ManualClock(),
            seed=11,
        )
        for _ in range(10_000):
            t.native.allow(0.0, 0.999999)  # requests, no accepts: p = 10000 / 10001
        assert t.rejection_probability == pytest.approx(min(cap, 10_000 / 10_001))
        n = 20_000
        return sum(not t.allow() for _ in range(n)) / n

    assert rejected_share(1.0) == pytest.approx(1.0, abs=0.001)
    assert rejected_share(0.8) == pytest.approx(0.8, abs=0.012)  # 4 binomial std deviations
    assert rejected_share(0.0) == 0.0  # a cap of 0 never refuses
    with pytest.raises(ValueError, match=r"max_reject_probability must be .*\[0, 1\], got 1.5"):
        Throttle(max_reject_probability=1.5)
    with pytest.raises(ValueError, match="not both"):
        AdaptiveThrottle(k=3, config=Throttle())
    with pytest.raises(TypeError, match="config must be a Throttle"):
        AdaptiveThrottle(config={"k": 2})  # type: ignore[arg-type]


def test_same_seed_same_decisions() -> None:
    def run(seed: int) -> list[bool]:
        t = AdaptiveThrottle(clock=ManualClock(), seed=seed)
        return [t.allow() for _ in range(300)]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_window_expiry() -> None:
    clock = ManualClock()
    t = AdaptiveThrottle(k=2, window=10.0, buckets=10, clock=clock, seed=1)
    for _ in range(50):
        t.allow()
    assert t.rejection_probability == pytest.approx(50 / 51)
    clock.advance(9.0)
    assert t.rejection_probability == pytest.approx(50 / 51)
    clock.advance(1.0)
    assert t.rejection_probability == 0.0 and t.requests == 0


def test_call_rejects_with_throttled_and_classifies_outcomes() -> None:
    clock = ManualClock()
    t = AdaptiveThrottle(k=1, clock=clock, seed=3, name="payment")
    assert t.call(lambda x: x * 2, 4) == 8
    assert (t.requests, t.accepts) == (1, 1)

    def timeout() -> None:
        raise TimeoutError

    def bad_input() -> None:
        raise ValueError("bad order")

    with pytest.raises(ValueError):
        t.call(bad_input)  # the backend answered: accepted
    assert (t.requests, t.accepts) == (2, 2)
    for _ in range(200):
        with contextlib.suppress(TimeoutError, Throttled):
            t.call(timeout)
    assert t.requests == 202 and t.accepts == 2
    assert t.local_rejections > 100
    with pytest.raises(Throttled) as info:
        for _ in range(100):
            t.call(lambda: None)
    assert info.value.name == "payment" and 0 < info.value.probability < 1


def test_decorator() -> None:
    t = AdaptiveThrottle(clock=ManualClock(), seed=1)

    @t
    def f(x: int) -> int:
        return x + 1

    assert f(1) == 2 and t.accepts == 1


class _HttpError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(status_code)
        self.status_code = status_code


class _Response:
    def __init__(self, status: int) -> None:
        self.status = status


class _ClientError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.response = _Response(status)


def test_is_overload() -> None:
    for exc in [
        TimeoutError(),
        ConnectionResetError(),
        ConnectionRefusedError(),
        DeadlineExceeded("late", 2),
        BreakerOpen("b", 1.0),
        Throttled("t", 0.5),
        _HttpError(429),
        _HttpError(503),
        _ClientError(502),
        _ClientError(504),
    ]:
        assert is_overload(exc), exc
    accepted: list[BaseException] = [
        ValueError(),
        KeyError(),
        _HttpError(404),
        _HttpError(500),
        KeyboardInterrupt(),
    ]
    for accepted_exc in accepted:
        assert not is_overload(accepted_exc), accepted_exc
    exhausted = RetryExhausted("gave up", 3)
    exhausted.__cause__ = TimeoutError()
    assert is_overload(exhausted)
    exhausted.__cause__ = ValueError()
    assert not is_overload(exhausted)


def test_custom_classifier() -> None:
    t = AdaptiveThrottle(clock=ManualClock(), seed=1, is_overload=lambda e: True)
    with pytest.raises(ValueError):
        t.call(lambda: int("x"))
    assert t.accepts == 0


def test_native_outcome_classifier() -> None:
    assert is_accepted_outcome("success")
    assert is_accepted_outcome("error")
    assert is_accepted_outcome("cancelled")
    assert is_accepted_outcome("http_status", 404)
    assert not is_accepted_outcome("http_status", 503)
    assert not is_accepted_outcome("http_status", 429)
    assert not is_accepted_outcome("timeout")
    assert not is_accepted_outcome("connection_reset")
    assert not is_accepted_outcome("bulkhead_full")
    with pytest.raises(ValueError, match="unknown outcome kind"):
        is_accepted_outcome("nope")
    with pytest.raises(ValueError, match="http_status"):
        is_accepted_outcome("http_status", 42)
    t = AdaptiveThrottle(clock=ManualClock(), seed=1)
    t.record_outcome("http_status", 503)
    t.record_outcome("success")
    assert t.accepts == 1


def test_many_threads_count_every_request() -> None:
    t = AdaptiveThrottle(clock=ManualClock(), seed=9)
    rejected = 0
    lock = threading.Lock()

    def worker() -> None:
        nonlocal rejected
        for i in range(2000):
            if not t.allow():
                with lock:
                    rejected += 1
            elif i % 3 == 0:
                t.record(True)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert t.requests == 16_000
    assert t.local_rejections == rejected
    assert 0 <= t.rejection_probability < 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0.5}, r"k must be a finite number in \[1, 1000\], got 0.5"),
        ({"k": math.nan}, "k must be"),
        ({"k": "2"}, r"k must be a finite number in \[1, 1000\], got .2."),
        ({"window": 0}, "window must be"),
        ({"window": -math.inf}, "window must be"),
        ({"buckets": 0}, r"buckets must be an integer in \[1, 1000\]"),
        ({"buckets": 1.0}, "buckets must be an integer"),
        ({"seed": -1}, r"seed must be an integer in \[0, 2\*\*64\)"),
        ({"seed": 2**64}, "seed"),
    ],
)
def test_errors_name_the_parameter(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AdaptiveThrottle(**kwargs)  # type: ignore[arg-type]


def test_native_u_and_now_are_checked() -> None:
    t = AdaptiveThrottle(clock=ManualClock(), seed=1)
    with pytest.raises(ValueError, match="u must be"):
        t.native.allow(0.0, 1.0)
    with pytest.raises(ValueError, match="now must be"):
        t.allow(math.inf)


def test_config_is_frozen() -> None:
    cfg = Throttle(k=3, window=60, buckets=60)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.k = 2  # type: ignore[misc]
    t = AdaptiveThrottle.from_config(cfg, clock=ManualClock(), seed=2, name="x")
    assert t.config == cfg and t.name == "x" and t.seed == 2
    assert (t.native.k, t.native.window, t.native.buckets) == (3.0, 60.0, 60)
