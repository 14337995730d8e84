"""Adaptive concurrency limits (Netflix AIMD / Vegas / Gradient2, Envoy's gradient controller)."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_lab import _core, _schema
from reliability_lab.clock import ManualClock
from reliability_lab.concurrency_limit import (
    Aimd,
    ConcurrencyLimiter,
    EnvoyGradient,
    Gradient2,
    LimitChange,
    LimitExceeded,
    LimitPermit,
    SampleWindow,
    Vegas,
)
from reliability_lab.errors import Cancelled, Rejected
from reliability_lab.metrics import exposition


def test_validation_names_the_dotted_path_range_and_value() -> None:
    with pytest.raises(
        ValueError, match=r"^backoff_ratio must be a finite number in \[0\.5, 1\), got 1"
    ):
        Aimd(backoff_ratio=1.0)
    with pytest.raises(
        ValueError, match=r"^initial_limit must be an integer in \[1, 1000000\], got 1\.5"
    ):
        Aimd(initial_limit=1.5)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"^timeout must be a finite number in \(0, 1e\+06\], got 0"
    ):
        Aimd(timeout=0)
    with pytest.raises(ValueError, match=r"^smoothing must be a finite number in \(0, 1\]"):
        Vegas(smoothing=0)
    with pytest.raises(ValueError, match=r"^alpha_factor must be at most beta_factor \(6\), got 7"):
        Vegas(alpha_factor=7)
    with pytest.raises(ValueError, match=r"^min_limit must be at most max_limit \(200\), got 300"):
        Gradient2(min_limit=300)
    with pytest.raises(
        ValueError, match=r"^rtt_tolerance must be a finite number in \[1, 100\], got 'x'"
    ):
        Gradient2(rtt_tolerance="x")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"^percentile must be a finite number in \(0, 1\], got 0"
    ):
        EnvoyGradient(percentile=0)
    with pytest.raises(
        ValueError, match=r"^max_limit must be an integer in \[1, 1000000\], got 1180"
    ):
        EnvoyGradient(max_limit=2**70)
    # The native limiter reads the same tables, naming the algorithm in the path; Envoy has its
    # own sample windows, so its table has no `window`.
    envoy = _schema.values(EnvoyGradient())
    with pytest.raises(ValueError, match=r"^envoy\.nope"):
        _core.ConcurrencyLimiter("envoy", {**envoy, "nope": 1})
    with pytest.raises(ValueError, match=r"^envoy\.window"):
        _core.ConcurrencyLimiter("envoy", {**envoy, "window": _schema.values(SampleWindow())})
    with pytest.raises(ValueError, match=r"^envoy\.min_concurrency must be at most max_limit"):
        _core.ConcurrencyLimiter("envoy", {**envoy, "min_concurrency": 2000})
    aimd = _schema.values(Aimd())
    with pytest.raises(
        ValueError, match=r"^aimd\.timeout must be a finite number in \(0, 1e\+06\]"
    ):
        _core.ConcurrencyLimiter("aimd", {**aimd, "timeout": -1.0})
    window = {**_schema.values(SampleWindow()), "size": 0}
    with pytest.raises(ValueError, match=r"^aimd\.window\.size must be an integer in \[1, 1000"):
        _core.ConcurrencyLimiter("aimd", {**aimd, "window": window})
    with pytest.raises(ValueError, match=r"^size must be an integer in \[1, 1000000\]"):
        Vegas(window=SampleWindow(size=0))
    with pytest.raises(ValueError, match=r"^min_time must be at most max_time \(1 s\), got 2 s"):
        Gradient2(window=SampleWindow(min_time=2.0))
    with pytest.raises(ValueError, match=r"^window must be a SampleWindow or None, got 5"):
        Aimd(window=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"algorithm must be one of"):
        _core.ConcurrencyLimiter("gradient", {})
    with pytest.raises(TypeError, match="algorithm must be"):
        ConcurrencyLimiter("aimd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed must be"):
        ConcurrencyLimiter(seed=-1)


def test_aimd_steps_through_the_python_api() -> None:
    clock = ManualClock()
    lim = ConcurrencyLimiter(Aimd(initial_limit=2, min_limit=1, max_limit=10), clock=clock, seed=1)
    a, b = lim.acquire(), lim.acquire()
    with pytest.raises(LimitExceeded) as info:
        lim.acquire()
    assert isinstance(info.value, Rejected)
    assert (info.value.name, info.value.limit) == ("limiter", 2)
    assert "at its limit (2 in flight)" in str(info.value)
    clock.advance(0.01)
    a.success()  # in flight 1 at admission: 1 * 2 >= 2, so + 1
    assert lim.limit == 3
    a.success()  # a second end does nothing
    assert lim.snapshot().succeeded == 1
    b.dropped()  # int(3 * 0.9) = 2
    assert lim.limit == 2
    s = lim.snapshot()
    assert (s.acquired, s.rejected, s.succeeded, s.dropped, s.inflight) == (2, 1, 1, 1, 0)


def gradient2_step(limit: float, long_rtt: float, rtt: float) -> float:
    """Netflix Gradient2Limit with the defaults (tolerance 1.5, queue 4, smoothing 0.2)."""
    gradient = max(0.5, min(1.0, 1.5 * long_rtt / rtt))
    return limit * 0.8 + (limit * gradient + 4) * 0.2


@given(rtts=st.lists(st.integers(1, 10_000), min_size=1, max_size=10))
@settings(max_examples=60, deadline=None)
def test_gradient2_warmup_steps_follow_the_formula(rtts: list[int]) -> None:
    native = Gradient2(min_limit=1, max_limit=10**6)._native()
    limit = 20.0
    for i, rtt_ms in enumerate(rtts):
        native.on_sample(100.0, rtt_ms / 1000, inflight=10**6)
        long_rtt = sum(rtts[: i + 1]) / (i + 1)  # warm-up: the plain mean
        limit = max(1.0, gradient2_step(limit, long_rtt, rtt_ms))
        assert native.snapshot(100.0).estimate == pytest.approx(limit, rel=1e-12)


@pytest.mark.parametrize(
    ("limit", "min_rtt_ms", "sample_ms"),
    [(10, 100, 100), (10, 100, 250), (10, 100, 20), (40, 50, 70)],
)
def test_envoy_limit_formula(limit: int, min_rtt_ms: int, sample_ms: int) -> None:
    # Envoy: gradient = clamp(min_rtt * 1.25 / sample_rtt, 0.5, 2),
    # limit = clamp(int(g * limit + sqrt(g * limit)), 3, 1000).
    native = EnvoyGradient(
        request_count=1, sample_interval=1.0, jitter=0.0, min_concurrency=limit
    )._native()
    native.on_sample(0.0, min_rtt_ms / 1000, 1, start=0.0)  # ends the min-RTT window
    assert native.limit(0.0) == limit
    native.on_sample(0.5, sample_ms / 1000, 1, start=0.4)
    g = max(0.5, min(2.0, min_rtt_ms * 1.25 / sample_ms))
    expected = max(limit, min(1000, int(g * limit + math.sqrt(g * limit))))
    assert native.limit(1.0) == expected


def test_sample_window_updates_once_per_window() -> None:
    clock = ManualClock()
    algo = Aimd(initial_limit=20, min_limit=1, window=SampleWindow(size=10))
    lim = ConcurrencyLimiter(algo, clock=clock, seed=9)
    permits = [lim.acquire() for _ in range(12)]
    clock.advance(0.1)
    for p in permits[:10]:
        p.success()
    assert lim.limit == 20  # 10 samples: the window is not ready
    permits[10].success()  # the 11th: one update, max in flight 12 * 2 >= 20
    assert lim.limit == 21
    permits[11].dropped()  # within the next window (1 s): accumulated only
    assert lim.limit == 21


def test_call_classifies_outcomes() -> None:
    clock = ManualClock()
    lim = ConcurrencyLimiter(Aimd(initial_limit=5, min_limit=1), clock=clock, seed=2)
    assert lim.call(lambda: 7) == 7
    with pytest.raises(TimeoutError):
        lim.call(_raise, TimeoutError())
    with pytest.raises(KeyError):
        lim.call(_raise, KeyError("answered"))  # the dependency answered: a success
    with pytest.raises(Cancelled):
        lim.call(_raise, Cancelled())
    s = lim.snapshot()
    assert (s.succeeded, s.dropped, s.ignored, s.inflight) == (2, 1, 1, 0)
    with lim.acquire() as permit:
        assert lim.inflight == 1
    assert permit.done

    @lim
    def work(x: int) -> int:
        return x + 1

    assert work(1) == 2


def _raise(exc: BaseException) -> None:
    raise exc


def test_listeners_metrics_and_repr() -> None:
    clock = ManualClock()
    changes: list[LimitChange] = []
    lim = ConcurrencyLimiter(
        Aimd(initial_limit=2, min_limit=1), clock=clock, seed=3, name="pay",
        listeners=[changes.append],
    )
    lim.add_listener(_boom)  # a failing listener does not hide changes from the others
    p = lim.acquire()
    lim.acquire()
    clock.advance(1.0)
    p.success()
    assert changes == [LimitChange("pay", 2, 3, 1.0)]
    text = exposition(lim.metrics())
    assert 'rlab_concurrency_limit{limiter="pay"} 3.0' in text
    assert 'rlab_concurrency_limit_inflight{limiter="pay"} 1.0' in text
    assert 'rlab_concurrency_limit_calls_total{limiter="pay",result="succeeded"} 1.0' in text
    assert next(iter(lim.collector().collect())).name == "rlab_concurrency_limit"
    assert "limit=3" in repr(lim)


def _boom(change: LimitChange) -> None:
    raise RuntimeError("listener bug")


def test_envoy_measures_min_rtt_at_min_concurrency() -> None:
    clock = ManualClock()
    algo = EnvoyGradient(request_count=2, min_concurrency=2, jitter=0.0, sample_interval=1.0)
    lim = ConcurrencyLimiter(algo, clock=clock, seed=4)
    a, b = lim.acquire(), lim.acquire()
    assert lim.try_acquire() is None  # the min-RTT window holds the limit at 2
    clock.advance(0.1)
    a.success()
    b.success()
    assert lim.limit == 2  # restored: the limit before the window was min_concurrency
    # A window of RTTs at min RTT: 2 * 1.25 = 2.5 + sqrt(2.5) = 4.08 -> 4.
    c = lim.acquire()
    clock.advance(0.1)
    c.success()
    clock.advance(1.0)
    assert lim.limit == 4


OPS = st.lists(
    st.tuples(st.sampled_from(["acquire", "success", "dropped", "ignore"]), st.integers(0, 50)),
    max_size=150,
)


@given(
    algorithm=st.sampled_from(
        [Aimd(initial_limit=4, min_limit=1, max_limit=8), Vegas(initial_limit=4, max_limit=8),
         Gradient2(initial_limit=4, min_limit=1, max_limit=8),
         EnvoyGradient(request_count=3, max_limit=8, sample_interval=0.05)]
    ),
    ops=OPS,
)
@settings(max_examples=80, deadline=None)
def test_admission_never_exceeds_the_limit_and_conserves(
    algorithm: Aimd | Vegas | Gradient2 | EnvoyGradient, ops: list[tuple[str, int]]
) -> None:
    clock = ManualClock()
    lim = ConcurrencyLimiter(algorithm, clock=clock, seed=5)
    held = []
    acquired = 0
    for op, dt_ms in ops:
        clock.advance(dt_ms / 1000)
        if op == "acquire":
            limit = lim.limit
            permit = lim.try_acquire()
            assert (permit is not None) == (len(held) < limit)
            if permit is not None:
                held.append(permit)
                acquired += 1
        elif held:
            permit = held.pop(dt_ms % len(held))
            getattr(permit, op)()
        s = lim.snapshot()
        assert s.inflight == len(held)
        assert s.acquired == acquired == s.succeeded + s.dropped + s.ignored + s.inflight
        assert 1 <= s.limit <= 8


def test_concurrent_use_never_exceeds_max_limit() -> None:
    lim = ConcurrencyLimiter(Aimd(initial_limit=4, min_limit=1, max_limit=6), seed=6)
    running = 0
    peak = 0
    lock = threading.Lock()

    def worker() -> None:
        nonlocal running, peak
        for i in range(2000):
            permit = lim.try_acquire()
            if permit is None:
                continue
            with lock:
                running += 1
                peak = max(peak, running)
            with lock:
                running -= 1
            permit.dropped() if i % 5 == 0 else permit.success()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = lim.snapshot()
    assert peak <= 6
    assert s.inflight == 0
    assert s.acquired + s.rejected == 8000
    assert s.acquired == s.succeeded + s.dropped


@given(limit=st.integers(1, 12), threads=st.integers(2, 4))
@settings(max_examples=15, deadline=None)
def test_concurrent_holders_never_exceed_the_limit(limit: int, threads: int) -> None:
    # Permits held across threads (released only at the end) never outnumber the limit, and
    # every admission is accounted for.
    clock = ManualClock()
    lim = ConcurrencyLimiter(
        Aimd(initial_limit=limit, min_limit=1, max_limit=limit), clock=clock, seed=8
    )
    held: list[LimitPermit] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def worker() -> None:
        barrier.wait()
        for _ in range(20):
            permit = lim.try_acquire()
            if permit is not None:
                with lock:
                    held.append(permit)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert len(held) == limit
    s = lim.snapshot()
    assert (s.inflight, s.acquired, s.rejected) == (limit, limit, 20 * threads - limit)
    for permit in held:
        permit.ignore()
    assert lim.snapshot().inflight == 0
