"""Rate limiters: smooth (evenly spaced, GCRA) and bursty (refilled per period), per key."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_lab.clock import ManualClock
from reliability_lab.errors import Cancelled, Rejected
from reliability_lab.metrics import exposition
from reliability_lab.rate_limit import RateLimitConfig, RateLimited, RateLimiter
from reliability_lab.scenario import RateLimit


def test_validation_names_the_field_range_and_value() -> None:
    with pytest.raises(ValueError, match=r"rate must be a finite number in \(0, 1e\+07\]"):
        RateLimit(rate=0)
    with pytest.raises(ValueError, match=r"burst must be an integer in \[1"):
        RateLimit(burst=0)
    with pytest.raises(ValueError, match=r"mode must be one of 'smooth', 'bursty', got 'leaky'"):
        RateLimit(mode="leaky")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"max_wait must be a finite number in \[0, 1e\+06\]"):
        RateLimit(max_wait=-1)
    with pytest.raises(ValueError, match=r"max_keys must be an integer in \[1, 10000000\]"):
        RateLimit(max_keys=0)
    with pytest.raises(TypeError, match="config must be a RateLimit"):
        RateLimiter(10)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not per-key"):
        RateLimiter().try_acquire("tenant")
    with pytest.raises(TypeError, match="needs a str key"):
        RateLimiter(RateLimit(per_key=True)).try_acquire()


def test_the_old_keywords_warn_and_keep_their_checks() -> None:
    with pytest.warns(DeprecationWarning, match=r"use RateLimiter\(reliability_lab\.RateLimit"):
        old = RateLimiter(permits=4, period=2.0, burst=3)
    assert old.config == RateLimit(rate=2.0, burst=3)
    cases: list[tuple[dict[str, object], str]] = [
        ({"permits": 0}, r"rate\.permits must be an integer in \[1, 1000000000\]"),
        ({"permits": 1.5}, r"rate\.permits must be an integer in \[1, 1000000000\], got 1\.5"),
        ({"period": 0}, r"rate\.period must be a finite number in \(0, 1e\+06\]"),
        ({"mode": "leaky"}, r"rate\.mode must be 'smooth' or 'bursty', got 'leaky'"),
        ({"burst": 0}, r"rate\.burst must be an integer in \[1"),
        ({"max_wait": -1}, r"rate\.max_wait must be a finite number in \[0, 1e\+06\]"),
        ({"max_keys": 0}, r"rate\.max_keys must be an integer in \[1, 10000000\]"),
        ({"permits": 10, "period": 1e-9}, r"rate\.permits must be at most rate\.period"),
    ]
    for kwargs, match in cases:
        with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match=match):
            RateLimiter(**kwargs)  # type: ignore[arg-type]
        with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match=match):
            RateLimitConfig(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not both"):
        RateLimiter(RateLimit(), permits=3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'permit'"):
        RateLimiter(permit=3)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({}, RateLimit(rate=10.0)),
        ({"permits": 3, "period": 1.5, "burst": 2, "max_wait": 0.5},
         RateLimit(rate=2.0, burst=2, max_wait=0.5)),
        ({"permits": 3, "period": 1.0, "mode": "bursty", "burst": 7},
         RateLimit(rate=3.0, burst=3, mode="bursty")),
        ({"permits": 5, "per_key": True, "max_keys": 9},
         RateLimit(rate=5.0, per_key=True, max_keys=9)),
    ],
)
def test_rate_limit_config_returns_the_equivalent_rate_limit(
    old: dict[str, object], new: RateLimit
) -> None:
    with pytest.warns(DeprecationWarning, match=r"RateLimitConfig is deprecated.*use reliab"):
        assert RateLimitConfig(**old) == new  # type: ignore[arg-type]


class _OldLimiter:
    """The old permits-per-period limiter's try_acquire (rlab/policy/rate_limit.cc before the
    RateLimit conversion): smooth, GCRA with ``period_ns // permits`` between permits and
    ``burst`` saved up; bursty, ``permits`` per period counted from the first call."""

    def __init__(self, mode: str, permits: int, period_ns: int, burst: int) -> None:
        self.mode, self.permits, self.period_ns, self.burst = mode, permits, period_ns, burst
        self.started = False
        self.tat = self.cycle = self.available = 0

    def try_acquire(self, now_ns: int) -> bool:
        if self.mode == "smooth":
            interval = self.period_ns // self.permits
            t = self.tat if self.started else now_ns
            if t - now_ns - (self.burst - 1) * interval > 0:
                return False
            self.started, self.tat = True, max(t, now_ns) + interval
            return True
        if not self.started:
            self.started, self.tat, self.cycle, self.available = True, now_ns, 0, self.permits
        current = (now_ns - self.tat) // self.period_ns
        if current > self.cycle:
            self.cycle, self.available = current, self.permits
        if self.available < 1:
            return False
        self.available -= 1
        return True


@given(
    mode=st.sampled_from(["smooth", "bursty"]),
    permits=st.integers(1, 1000),
    period_ms=st.integers(1, 10_000),
    burst=st.integers(1, 20),
    gaps_us=st.lists(st.integers(0, 2_000_000), max_size=60),
)
@settings(max_examples=60, deadline=None)
def test_the_old_settings_behave_as_before_when_the_spacing_is_whole(
    mode: str, permits: int, period_ms: int, burst: int, gaps_us: list[int]
) -> None:
    # The old limiter spaced smooth permits period / permits apart (floored to a nanosecond),
    # the new one 1 / rate (rounded): the same when permits divides the period in nanoseconds,
    # and always the same for bursty. Driven side by side, both grant the same calls.
    period_ns = period_ms * 1_000_000
    if mode == "smooth" and period_ns % permits:
        permits = math.gcd(permits, period_ns)
    old = _OldLimiter(mode, permits, period_ns, burst)
    with pytest.warns(DeprecationWarning):
        cfg = RateLimitConfig(permits=permits, period=period_ms / 1000, mode=mode, burst=burst)  # type: ignore[arg-type]
    clock = ManualClock()
    new = RateLimiter(cfg, clock=clock)
    now_us = 0
    for gap in gaps_us:
        now_us += gap
        clock.advance(gap / 1e6)
        assert new.try_acquire() == old.try_acquire(now_us * 1000)


def test_smooth_spacing_and_reservation() -> None:
    clock = ManualClock()
    rl = RateLimiter(RateLimit(rate=10), clock=clock, name="api")  # one every 100 ms
    assert rl.try_acquire()
    assert not rl.try_acquire()
    with pytest.raises(RateLimited) as info:
        rl.call(lambda: None)
    assert isinstance(info.value, Rejected)
    assert str(info.value) == "rate limiter 'api' has no permit"
    assert rl.reserve(1.0) == pytest.approx(0.1)
    assert rl.reserve(0.15) is None  # 0.2 s away: refused, nothing reserved
    assert rl.reserve(0.2) == pytest.approx(0.2)
    s = rl.stats()
    assert (s.granted, s.waited, s.rejected) == (1, 2, 3)


def test_bounded_wait_sleeps_through_the_clock() -> None:
    clock = ManualClock()
    rl = RateLimiter(RateLimit(rate=2, max_wait=1.0), clock=clock)
    assert rl.call(lambda: 1) == 1
    assert rl.call(lambda: 2) == 2  # waited 0.5 s on the manual clock
    assert clock.now() == pytest.approx(0.5)
    assert rl.stats().waited == 1
    # The next permits are due at 1.0 s and 1.5 s, each 0.5 s after the previous acquire.
    rl.acquire()
    rl.acquire()
    assert clock.now() == pytest.approx(1.5)
    assert rl.reserve(0.5) == pytest.approx(0.5)  # the permit at 2.0 s, taken by someone else
    with pytest.raises(RateLimited):  # the next, at 2.5 s, is 1.0 s away
        rl.acquire(max_wait=0.9)


def test_cancelled_wait_forfeits_its_permit() -> None:
    clock = ManualClock()
    rl = RateLimiter(RateLimit(rate=1, max_wait=5.0), clock=clock)
    rl.acquire()
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        rl.acquire(cancel=stop)
    assert rl.stats().forfeited == 1


def test_steady_clock_cancel_wakes_the_waiter() -> None:
    rl = RateLimiter(RateLimit(rate=0.01, max_wait=100.0))
    rl.acquire()
    stop = threading.Event()
    timer = threading.Timer(0.05, stop.set)
    timer.start()
    with pytest.raises(Cancelled):
        rl.acquire(cancel=stop)  # would wait 100 s; the event ends it
    timer.join()


def test_bursty_refill_without_carry_over() -> None:
    clock = ManualClock()
    rl = RateLimiter(RateLimit(rate=3, burst=3, mode="bursty"), clock=clock)
    assert [rl.try_acquire() for _ in range(4)] == [True, True, True, False]
    clock.advance(5.0)
    assert rl.available() == 3
    # Resilience4j's reservation arithmetic: 0.8 s to the next period.
    clock.advance(0.2)
    for _ in range(3):
        rl.try_acquire()
    assert rl.reserve(1.0) == pytest.approx(0.8)
    assert rl.available() == -1


def test_per_key_limits_and_bounded_keys() -> None:
    clock = ManualClock()
    rl = RateLimiter(RateLimit(rate=1, per_key=True, max_keys=2), clock=clock, name="t")
    assert rl.try_acquire("a")
    assert not rl.try_acquire("a")
    assert rl.try_acquire("b")
    with pytest.raises(RateLimited, match="for key 'a'") as info:
        rl.call_for("a", lambda: None)
    assert info.value.key == "a"
    assert rl.try_acquire("c")  # evicts b, the least recently used
    s = rl.stats()
    assert (s.keys, s.evictions) == (2, 1)
    text = exposition(rl.metrics())
    assert 'rlab_rate_limit_keys{limiter="t"} 2.0' in text
    assert 'rlab_rate_limit_calls_total{limiter="t",result="rejected"} 2.0' in text
    assert "key=" not in text  # keys never become labels: cardinality stays bounded


@given(
    mode=st.sampled_from(["smooth", "bursty"]),
    permits=st.integers(1, 20),
    burst=st.integers(1, 20),
    gaps_ms=st.lists(st.integers(0, 300), max_size=200),
)
@settings(max_examples=100, deadline=None)
def test_never_more_than_the_rate_allows(
    mode: str, permits: int, burst: int, gaps_ms: list[int]
) -> None:
    clock = ManualClock()
    config = RateLimit(rate=permits, burst=permits if mode == "bursty" else burst, mode=mode)  # type: ignore[arg-type]
    rl = RateLimiter(config, clock=clock)
    grants: list[float] = []
    for gap in gaps_ms:
        clock.advance(gap / 1000)
        if rl.try_acquire():
            grants.append(clock.now())
    # In any window of length T starting at a grant: smooth allows burst + T * rate (GCRA), bursty
    # allows permits per period it touches.
    cap_per_window = (burst + permits) if mode == "smooth" else 2 * permits
    for i, t in enumerate(grants):
        within = sum(1 for u in grants[i:] if u < t + 1.0)
        assert within <= cap_per_window
    s = rl.stats()
    assert s.granted == len(grants)
    assert s.granted + s.rejected == len(gaps_ms)


def test_concurrent_use_never_exceeds_the_allowance() -> None:
    clock = ManualClock()
    rl = RateLimiter(RateLimit(rate=50, burst=50), clock=clock)
    granted = 0
    lock = threading.Lock()

    def worker() -> None:
        nonlocal granted
        for _ in range(500):
            if rl.try_acquire():
                with lock:
                    granted += 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert granted == 50
    s = rl.stats()
    assert s.granted + s.rejected == 2000


@given(
    mode=st.sampled_from(["smooth", "bursty"]),
    permits=st.integers(1, 40),
    threads=st.integers(2, 4),
)
@settings(max_examples=15, deadline=None)
def test_concurrent_grants_match_the_allowance(mode: str, permits: int, threads: int) -> None:
    # At one instant a fresh limiter has `burst` (smooth) or `permits` (bursty) permits, however
    # many threads race for them.
    clock = ManualClock(5.0)
    rl = RateLimiter(RateLimit(rate=permits, mode=mode, burst=permits), clock=clock)  # type: ignore[arg-type]
    granted = []
    barrier = threading.Barrier(threads)

    def worker() -> None:
        barrier.wait()
        granted.append(sum(rl.try_acquire() for _ in range(60)))

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert sum(granted) == permits
    assert rl.stats().rejected == 60 * threads - permits
