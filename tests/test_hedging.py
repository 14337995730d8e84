"""The standalone Hedging policy: hedges in virtual time with a fake executor, then real threads."""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Callable
from typing import Any

import pytest
import reliability_lab as rl
from reliability_lab import _core


class FakeExecutor:
    """Runs each submitted copy inline at once, except the submissions ``hold`` picks: those stay
    pending (a cancel then succeeds, as for a copy queued in a pool) until :meth:`release`."""

    def __init__(self, hold: Callable[[int], bool] = lambda i: False) -> None:
        self.hold = hold
        self.submitted: list[tuple[Callable[[], Any], cf.Future[Any]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        future: cf.Future[Any] = cf.Future()
        self.submitted.append((lambda: fn(*args, **kwargs), future))
        if not self.hold(len(self.submitted) - 1):
            self.release(len(self.submitted) - 1)
        return future

    def release(self, index: int) -> None:
        fn, future = self.submitted[index]
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as e:
            future.set_exception(e)


def _policy(clock: rl.ManualClock, executor: FakeExecutor, **kw: Any) -> rl.Hedging:
    kw.setdefault("budget_ratio", None)
    return rl.Hedging(clock=clock, executor=executor, **kw)


def test_a_fast_first_copy_sends_no_hedge() -> None:
    clock, ex = rl.ManualClock(), FakeExecutor()
    h = _policy(clock, ex, delay=0.1)
    assert h.call(lambda x: x * 2, 21) == 42
    s = h.stats()
    assert (s.calls, s.succeeded, s.hedges, s.hedges_won, s.cancelled) == (1, 1, 0, 0, 0)
    assert clock.now() == 0.0 and len(ex.submitted) == 1


def test_the_hedge_fires_after_the_delay_and_the_first_success_wins() -> None:
    clock, ex = rl.ManualClock(), FakeExecutor(hold=lambda i: i == 0)
    h = _policy(clock, ex, delay=0.25)
    seen: list[tuple[int, float]] = []

    def fn(ctx: rl.HedgeContext) -> str:
        seen.append((ctx.copy, ctx.clock.now()))
        return f"copy {ctx.copy}"

    assert h.call_with(fn) == "copy 1"
    assert seen == [(1, 0.25)]  # copy 0 is held: only the hedge ran, sent at exactly the delay
    loser = ex.submitted[0][1]
    assert loser.cancelled()  # not started: cancelled, never runs
    ex.release(0)
    assert seen == [(1, 0.25)]
    s = h.stats()
    assert (s.hedges, s.hedges_won, s.cancelled, s.succeeded) == (1, 1, 1, 1)


def test_hedges_are_spaced_by_the_delay_up_to_max_hedges() -> None:
    clock, ex = rl.ManualClock(), FakeExecutor(hold=lambda i: i < 2)
    h = _policy(clock, ex, delay=0.1, max_hedges=3)
    starts: list[float] = []

    def fn(ctx: rl.HedgeContext) -> int:
        starts.append(ctx.clock.now())
        return ctx.copy

    assert h.call_with(fn) == 2
    assert starts == [pytest.approx(0.2)]
    assert len(ex.submitted) == 3
    assert h.stats().cancelled == 2


def test_the_cancel_event_is_set_for_a_running_loser() -> None:
    clock = rl.ManualClock()
    ex = FakeExecutor(hold=lambda i: i == 0)
    h = _policy(clock, ex, delay=0.1)
    contexts: list[rl.HedgeContext] = []

    def fn(ctx: rl.HedgeContext) -> int:
        contexts.append(ctx)
        if ctx.copy == 1:
            ex.submitted[0][1].set_running_or_notify_cancel()  # copy 0 "started" meanwhile
        return ctx.copy

    assert h.call_with(fn) == 1
    loser = ex.submitted[0][1]
    assert loser.running() and not loser.cancelled()  # running: abandoned, not cancellable
    assert h.stats().cancelled == 1


def test_the_call_fails_only_when_every_copy_failed_with_the_last_error() -> None:
    clock = rl.ManualClock()
    ex = FakeExecutor(hold=lambda i: i == 0)
    h = _policy(clock, ex, delay=0.1)

    def fn(ctx: rl.HedgeContext) -> int:
        if ctx.copy == 0:
            raise ValueError("copy 0")
        ex.release(0)  # copy 0 fails first ...
        clock.advance(0.01)
        raise KeyError("copy 1")  # ... copy 1 last

    with pytest.raises(KeyError, match="copy 1"):
        h.call_with(fn)
    s = h.stats()
    assert (s.failed, s.succeeded, s.hedges, s.cancelled) == (1, 0, 1, 0)


def test_a_failed_copy_does_not_end_the_call_while_another_may_succeed() -> None:
    clock = rl.ManualClock()
    ex = FakeExecutor(hold=lambda i: i == 0)
    h = _policy(clock, ex, delay=0.1)

    def fn(ctx: rl.HedgeContext) -> str:
        if ctx.copy == 0:
            return "slow but fine"
        ex.release(0)
        raise OSError("hedge failed")

    assert h.call_with(fn) == "slow but fine"
    assert h.stats().hedges_won == 0


def test_a_fast_failure_does_not_send_a_hedge() -> None:
    clock, ex = rl.ManualClock(), FakeExecutor()
    h = _policy(clock, ex, delay=0.1)

    def boom() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        h.call(boom)
    assert h.stats().hedges == 0 and len(ex.submitted) == 1


def test_the_budget_caps_hedges() -> None:
    clock = rl.ManualClock()
    ex = FakeExecutor(hold=lambda i: True)  # no copy ever answers: every call times out
    h = rl.Hedging(
        clock=clock, executor=ex, delay=0.1, budget_ratio=0.5, budget_burst=1.0, timeout=1.0
    )
    for _ in range(10):
        with pytest.raises(rl.DeadlineExceeded):
            h.call(lambda: None)
    s = h.stats()
    # tokens start at the burst (1); each call adds 0.5 (capped at 1), each hedge takes 1.
    assert (s.hedges, s.hedges_denied) == (5, 5)
    assert s.hedges <= 1.0 + 0.5 * s.calls
    assert s.failed == 10 and s.cancelled == 15  # every copy sent was cancelled at the timeout
    assert clock.now() == pytest.approx(10.0)  # each call waited exactly its timeout


def test_the_quantile_delay_adapts_to_recent_latencies() -> None:
    clock, ex = rl.ManualClock(), FakeExecutor()
    h = _policy(clock, ex, delay=1.0, quantile=0.5, window=4)

    def taking(seconds: float) -> Callable[[], None]:
        return lambda: clock.advance(seconds) and None

    assert h.delay == 1.0  # the window is not full yet: the fixed delay
    for latency in (0.1, 0.2, 0.3, 0.4):
        h.call(taking(latency))
    assert h.delay == pytest.approx(0.2)  # nearest rank: ceil(0.5 x 4) = 2nd smallest
    for _ in range(4):
        h.call(taking(0.8))
    assert h.delay == pytest.approx(0.8)
    assert h.stats().hedges == 0


def test_the_timeout_bounds_the_wait_and_cancels_every_copy() -> None:
    clock, ex = rl.ManualClock(), FakeExecutor(hold=lambda i: True)
    h = _policy(clock, ex, delay=0.3, max_hedges=2, timeout=0.5)
    with pytest.raises(rl.DeadlineExceeded):
        h.call(lambda: 1)
    assert clock.now() == pytest.approx(0.5)
    assert all(f.cancelled() for _, f in ex.submitted)
    assert len(ex.submitted) == 2  # the second hedge (due at 0.6) was past the timeout


def test_a_refused_hedge_submission_stops_hedging_for_the_call() -> None:
    clock = rl.ManualClock()

    class Refusing(FakeExecutor):
        def submit(self, fn: Callable[..., Any], /, *a: Any, **k: Any) -> cf.Future[Any]:
            if self.submitted:
                raise RuntimeError("cannot schedule new futures after shutdown")
            return super().submit(fn, *a, **k)

    ex = Refusing(hold=lambda i: True)
    h = _policy(clock, ex, delay=0.1, timeout=1.0)
    with pytest.raises(rl.DeadlineExceeded):
        h.call(lambda: 1)
    assert h.stats().hedges == 0


def test_an_interrupted_caller_cancels_the_outstanding_copies() -> None:
    clock = rl.ManualClock()

    class Interrupting(FakeExecutor):
        def submit(self, fn: Callable[..., Any], /, *a: Any, **k: Any) -> cf.Future[Any]:
            if self.submitted:
                raise KeyboardInterrupt  # stands for Ctrl-C while the caller waits
            return super().submit(fn, *a, **k)

    ex = Interrupting(hold=lambda i: True)
    h = _policy(clock, ex, delay=0.1)
    with pytest.raises(KeyboardInterrupt):
        h.call(lambda: 1)
    assert ex.submitted[0][1].cancelled()
    assert h.stats().cancelled == 1


def test_decorator_and_metrics() -> None:
    clock, ex = rl.ManualClock(), FakeExecutor()
    h = _policy(clock, ex, name="search")

    @h
    def double(x: int) -> int:
        return 2 * x

    assert double(4) == 8
    assert double.hedging is h  # type: ignore[attr-defined]
    names = {m.name for m in h.metrics()}
    assert "rlab_hedging_hedges_denied" in names
    calls = next(m for m in h.metrics() if m.name == "rlab_hedging_calls")
    assert calls.samples[0].labels == {"policy": "search"} and calls.samples[0].value == 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_hedges": 0}, r"hedging\.max_hedges must be an integer in \[1, 31\], got 0"),
        ({"delay": 0.0}, r"hedging\.delay"),
        ({"quantile": 1.0}, r"hedging\.quantile"),
        ({"window": 0}, r"hedging\.window"),
        ({"budget_ratio": -1.0}, r"hedging\.budget_ratio"),
        ({"budget_burst": 0.5}, r"hedging\.budget_burst"),
        ({"timeout": 0.0}, r"hedging\.timeout"),
        ({"timeout": "1"}, r"^hedging\.timeout must be a finite number in \(0, 1e\+06\], got '1'$"),
        ({"max_workers": 0}, r"hedging\.max_workers"),
        (
            {"max_workers": 2.0},
            r"^hedging\.max_workers must be an integer in \[1, 10000\], got 2\.0$",
        ),
        ({"max_hedges": "2"}, r"hedging\.max_hedges"),
    ],
)
def test_bad_values_name_the_field(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        rl.Hedging(**kwargs)


def test_a_non_executor_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"hedging\.executor"):
        rl.Hedging(executor=object())  # type: ignore[arg-type]


def test_the_native_hedger_budget() -> None:
    config = {"max_hedges": 1, "delay": 0.05, "quantile": None, "window": 10,
              "budget_ratio": 0.0, "budget_burst": 1.0}
    h = _core.Hedger(config)
    h.on_call()
    assert h.try_hedge() and not h.try_hedge()
    assert h.tokens == 0.0
    with pytest.raises(ValueError, match="max_hedges"):
        _core.Hedger({**config, "max_hedges": 99})
    with pytest.raises(ValueError, match="config must be a dict"):
        _core.Hedger(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="budget_burst"):
        _core.Hedger({k: v for k, v in config.items() if k != "budget_burst"})


def _pool_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(name)]


def test_real_threads_the_hedge_wins_and_the_loser_is_told_to_stop() -> None:
    release = threading.Event()
    stopped: list[bool] = []

    def fn(ctx: rl.HedgeContext) -> str:
        if ctx.copy == 0:
            # Bounded: the hedge's win sets ctx.cancel long before this times out.
            stopped.append(ctx.cancel.wait(30.0))
            return "slow"
        release.set()
        return "hedge"

    with rl.Hedging(delay=0.01, budget_ratio=None, name="hedging-real-test") as h:
        assert h.call_with(fn) == "hedge"
    # close() waited for the abandoned copy, which saw its cancel event.
    assert stopped == [True] and release.is_set()
    assert _pool_threads("hedging-real-test") == []
    s = h.stats()
    assert (s.hedges, s.hedges_won, s.cancelled) == (1, 1, 1)


def test_real_threads_many_calls_leak_no_thread() -> None:
    h = rl.Hedging(delay=0.5, budget_ratio=None, name="hedging-leak-test", max_workers=4)
    results = [h.call(lambda i=i: i) for i in range(50)]
    assert results == list(range(50))
    assert len(_pool_threads("hedging-leak-test")) <= 4
    h.close()
    assert _pool_threads("hedging-leak-test") == []
