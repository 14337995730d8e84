"""The circuit breaker from Python: semantics, the two rejection types, exceptions, listeners."""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_lab.breaker import Breaker, CircuitBreaker, Transition
from reliability_lab.clock import ManualClock
from reliability_lab.errors import BreakerHalfOpenFull, BreakerOpen, Rejected


class Boom(Exception):
    pass


def fail() -> None:
    raise Boom("dependency failed")


def trip(cb: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            cb.call(fail)


def make(clock: ManualClock, **kw: object) -> CircuitBreaker:
    return CircuitBreaker(Breaker(**kw), name="payment", clock=clock)  # type: ignore[arg-type]


def test_opens_on_the_nth_consecutive_failure_and_rejects_fast() -> None:
    clock = ManualClock()
    cb = make(clock, consecutive_failures=5, open_for=5.0)
    trip(cb, 4)
    assert cb.state == "closed"
    trip(cb, 1)
    assert cb.state == "open"
    calls = []
    with pytest.raises(BreakerOpen) as info:
        cb.call(calls.append, 1)
    assert calls == []  # the function was not called
    assert info.value.name == "payment"
    assert info.value.retry_in == pytest.approx(5.0)
    assert isinstance(info.value, Rejected)


def test_half_open_after_open_for_then_closes_on_success() -> None:
    clock = ManualClock()
    cb = make(clock, consecutive_failures=1, open_for=2.0)
    trip(cb, 1)
    clock.advance(1.999)
    assert cb.state == "open"
    clock.advance(0.001)
    assert cb.state == "half_open"
    assert cb.call(lambda: 42) == 42
    assert cb.state == "closed"


def test_half_open_full_is_a_distinct_rejection() -> None:
    clock = ManualClock()
    cb = make(clock, consecutive_failures=1, open_for=1.0, half_open_max_calls=1)
    trip(cb, 1)
    clock.advance(1.0)
    probe = cb.allow()
    with pytest.raises(BreakerHalfOpenFull) as info:
        cb.call(lambda: None)
    assert not isinstance(info.value, BreakerOpen)
    assert info.value.max_calls == 1
    probe.success()
    assert cb.state == "closed"


def test_exception_inside_a_probe_reopens_and_releases_the_slot() -> None:
    clock = ManualClock()
    cb = make(clock, consecutive_failures=1, open_for=1.0)
    trip(cb, 1)
    clock.advance(1.0)
    with pytest.raises(Boom):
        cb.call(fail)  # the probe raises: failure, re-raised, slot released
    assert cb.state == "open"
    clock.advance(1.0)
    assert cb.call(lambda: "ok") == "ok"
    assert cb.state == "closed"


def test_cancellation_and_excluded_exceptions_count_as_neither() -> None:
    clock = ManualClock()
    cb = CircuitBreaker(
        Breaker(consecutive_failures=2, open_for=1.0), clock=clock, exclude=[KeyError]
    )

    def cancelled() -> None:
        raise KeyboardInterrupt

    def excluded() -> None:
        raise KeyError("not a dependency fault")

    trip(cb, 1)
    with pytest.raises(KeyboardInterrupt):
        cb.call(cancelled)
    with pytest.raises(KeyError):
        cb.call(excluded)
    assert cb.snapshot()["consecutive_failures"] == 1
    assert cb.snapshot()["ignored"] == 2
    trip(cb, 1)
    assert cb.state == "open"
    # In half-open, an ignored outcome releases the probe slot.
    clock.advance(1.0)
    with pytest.raises(KeyError):
        cb.call(excluded)
    assert cb.state == "half_open"
    assert cb.call(lambda: 1) == 1
    assert cb.state == "closed"


def test_two_step_permit_and_context_manager() -> None:
    clock = ManualClock()
    cb = make(clock, consecutive_failures=2)
    p = cb.allow()
    p.record(False)
    p.record(True)  # only the first report counts
    assert cb.snapshot()["failures"] == 1
    with pytest.raises(Boom), cb.allow():
        raise Boom
    assert cb.state == "open"


def test_decorator_passes_arguments_through() -> None:
    cb = CircuitBreaker(Breaker(), clock=ManualClock())

    @cb
    def add(a: int, b: int = 0) -> int:
        return a + b

    assert add(1, b=2) == 3
    assert add.__name__ == "add"
    assert cb.snapshot()["successes"] == 1


def test_listeners_run_outside_the_lock_once_per_transition_in_order() -> None:
    clock = ManualClock()
    seen: list[Transition] = []
    cb = make(clock, consecutive_failures=1, open_for=1.0)

    def listener(t: Transition) -> None:
        seen.append(t)
        _ = cb.state  # re-entering the breaker would deadlock if called under its lock

    cb.add_listener(listener)
    trip(cb, 1)
    clock.advance(1.0)
    cb.call(lambda: None)
    assert [(t.from_state, t.to_state) for t in seen] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert [t.generation for t in seen] == [1, 2, 3]
    assert seen[0].breaker == "payment"


def test_a_failing_listener_does_not_break_the_others(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def bad(t: Transition) -> None:
        raise RuntimeError("listener bug")

    cb = CircuitBreaker(
        Breaker(consecutive_failures=1),
        clock=ManualClock(),
        listeners=[bad, lambda t: seen.append(t.to_state)],
    )
    trip(cb, 1)
    assert seen == ["open"]
    assert "listener failed" in caplog.text


def test_failure_rate_and_time_window() -> None:
    clock = ManualClock()
    cb = make(
        clock,
        consecutive_failures=0,
        failure_rate_threshold=0.5,
        window="time",
        window_duration=10.0,
        minimum_calls=4,
    )
    trip(cb, 2)
    clock.advance(11.0)  # those failures expire
    cb.call(lambda: None)
    cb.call(lambda: None)
    trip(cb, 1)
    assert cb.state == "closed"
    trip(cb, 1)  # 2 of 4 in the window
    assert cb.state == "open"


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("open_for", 0.0, "open_for must be a finite number in (0, 1e+06]"),
        ("open_for", float("inf"), "open_for"),
        ("failure_rate_threshold", 1.5, "failure_rate_threshold must be a finite number in [0, 1]"),
        ("failure_rate_threshold", float("nan"), "failure_rate_threshold"),
        ("half_open_max_calls", 0, "half_open_max_calls must be an integer in [1, 1000000]"),
        ("success_threshold", 2.5, "success_threshold must be an integer"),
        ("window", "sliding", "window must be one of 'count', 'time', got 'sliding'"),
        ("consecutive_failures", -1, "consecutive_failures"),
    ],
)
def test_invalid_parameters_raise_value_error_naming_them(
    field: str, value: object, fragment: str
) -> None:
    with pytest.raises(ValueError) as info:
        Breaker(**{field: value})  # type: ignore[arg-type]
    assert fragment in str(info.value)


# --- properties -----------------------------------------------------------------------------

LEGAL = {("closed", "open"), ("open", "half_open"), ("half_open", "open"), ("half_open", "closed")}


@settings(max_examples=150, deadline=None)
@given(
    threshold=st.integers(1, 4),
    max_calls=st.integers(1, 3),
    success_threshold=st.integers(1, 3),
    ops=st.lists(
        st.tuples(st.sampled_from(["allow", "ok", "fail", "ignore", "tick"]), st.integers(0, 5)),
        max_size=120,
    ),
)
def test_probe_limit_and_legal_ordered_transitions(
    threshold: int,
    max_calls: int,
    success_threshold: int,
    ops: list[tuple[str, int]],
) -> None:
    clock = ManualClock()
    seen: list[Transition] = []
    cb = CircuitBreaker(
        Breaker(
            consecutive_failures=threshold,
            open_for=1.0,
            half_open_max_calls=max_calls,
            success_threshold=success_threshold,
        ),
        clock=clock,
        listeners=[seen.append],
    )
    held = []
    for op, k in ops:
        if op == "allow":
            with contextlib.suppress(BreakerOpen, BreakerHalfOpenFull):
                held.append(cb.allow())
        elif op == "tick":
            clock.advance(0.25 * k)
        elif held:
            permit = held.pop(k % len(held))
            {"ok": permit.success, "fail": permit.failure, "ignore": permit.ignore}[op]()
        snap = cb.snapshot()
        assert snap["half_open_in_flight"] <= max_calls
        assert snap["state"] == (seen[-1].to_state if seen else "closed")
    assert all((t.from_state, t.to_state) in LEGAL for t in seen)
    assert [t.generation for t in seen] == list(range(1, len(seen) + 1))
    for a, b in itertools.pairwise(seen):
        assert a.to_state == b.from_state


def test_many_threads_on_one_breaker_account_for_every_call() -> None:
    """Four threads share one breaker: no call is lost, every transition reaches the listener."""
    import random

    clock = ManualClock()
    seen: list[Transition] = []
    cb = CircuitBreaker(
        Breaker(consecutive_failures=2, open_for=0.001, half_open_max_calls=2),
        clock=clock,
        listeners=[seen.append],
    )
    errors: list[BaseException] = []
    worst_in_flight = 0

    def work(seed: int) -> None:
        nonlocal worst_in_flight
        rnd = random.Random(seed)
        try:
            for _ in range(3000):
                clock.advance(0.0005)
                try:
                    permit = cb.allow()
                except Rejected:
                    continue
                worst_in_flight = max(worst_in_flight, cb.snapshot()["half_open_in_flight"])
                permit.record(rnd.random() < 0.5)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    snap = cb.snapshot()
    recorded = snap["successes"] + snap["failures"] + snap["ignored"] + snap["stale"]
    assert snap["admitted"] == recorded
    assert snap["transitions"] == len(seen) > 0
    assert worst_in_flight <= 2
    for a, b in itertools.pairwise(seen):
        assert a.to_state == b.from_state


# --- the outcome table (issue #12) ----------------------------------------------------------


class HttpError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


def test_caller_deadlines_open_nothing_without_a_dependency_call() -> None:
    from reliability_lab.backoff import Backoff
    from reliability_lab.errors import DeadlineExceeded
    from reliability_lab.retry import Retry

    clock = ManualClock()
    cb = make(clock, consecutive_failures=2)
    retry = Retry(backoff=Backoff(jitter="none"), clock=clock)
    calls: list[int] = []
    for _ in range(3):
        with pytest.raises(DeadlineExceeded):
            cb.call(retry.call_within, 0.0, calls.append, 1)
    assert calls == []
    assert cb.state == "closed"
    assert cb.snapshot()["ignored"] == 3 and cb.snapshot()["failures"] == 0


@pytest.mark.parametrize(
    "make_exc",
    [
        lambda: __import__("concurrent.futures").futures.CancelledError(),
        lambda: __import__("asyncio").CancelledError(),
        lambda: __import__("reliability_lab.errors").errors.Cancelled("stop"),
    ],
)
def test_caller_cancellation_counts_as_neither(make_exc: Callable[[], BaseException]) -> None:
    cb = make(ManualClock(), consecutive_failures=1)

    def cancelled() -> None:
        raise make_exc()

    for _ in range(3):
        with pytest.raises(BaseException):  # noqa: B017 - one of the cancellation types
            cb.call(cancelled)
    assert cb.state == "closed" and cb.snapshot()["ignored"] == 3


def test_http_4xx_is_the_callers_fault_and_5xx_the_dependencys() -> None:
    cb = make(ManualClock(), consecutive_failures=2)

    def answer(status: int) -> None:
        raise HttpError(status)

    for _ in range(5):
        with pytest.raises(HttpError):
            cb.call(answer, 404)
    assert cb.state == "closed"
    assert cb.snapshot()["successes"] == 5  # the dependency answered: it is healthy
    for status in (503, 429):
        with pytest.raises(HttpError):
            cb.call(answer, status)
    assert cb.state == "open"


def test_exclude_overrides_the_table() -> None:
    cb = CircuitBreaker(
        Breaker(consecutive_failures=1), clock=ManualClock(), exclude=[HttpError]
    )
    with pytest.raises(HttpError), cb.allow():
        raise HttpError(503)
    with pytest.raises(HttpError):
        cb.call(lambda: (_ for _ in ()).throw(HttpError(500)))
    assert cb.state == "closed" and cb.snapshot()["ignored"] == 2
    with pytest.raises(ValueError, match="exclude must hold exception types"):
        CircuitBreaker(exclude=[42])  # type: ignore[list-item]


# --- background listener delivery -------------------------------------------------------------


def test_background_listeners_do_not_delay_the_call_and_keep_order() -> None:
    clock = ManualClock()
    release = threading.Event()
    entered = threading.Event()
    seen: list[tuple[str, str, int]] = []
    caller = threading.get_ident()
    threads: set[int] = set()

    def slow(t: Transition) -> None:
        threads.add(threading.get_ident())
        entered.set()
        release.wait(30)  # blocks until the test lets it go: a listener far slower than the call
        seen.append((t.from_state, t.to_state, t.generation))

    cb = CircuitBreaker(
        Breaker(consecutive_failures=1, open_for=1.0),
        clock=clock,
        listeners=[slow],
        listener_delivery="background",
    )
    assert cb.listener_delivery == "background"
    trip(cb, 1)  # returns although the listener is still blocked on `release`
    assert entered.wait(30)
    assert not release.is_set() and seen == []
    clock.advance(1.0)
    assert cb.call(lambda: "ok") == "ok"  # open -> half_open -> closed, queued behind
    for _ in range(3):
        cb.force_open()
        cb.force_closed()
    release.set()
    assert cb.flush_listeners(timeout=30)
    expected = [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    expected += [("closed", "open"), ("open", "closed")] * 3
    assert [(a, b) for a, b, _ in seen] == expected
    assert [g for _, _, g in seen] == list(range(1, len(expected) + 1))
    assert threads and caller not in threads
    assert cb.close_listeners(timeout=30)
    assert cb.close_listeners(timeout=30)  # idempotent
    # After close, delivery continues on the caller's thread, still once and in order.
    cb.force_open()
    assert seen[-1][:2] == ("closed", "open") and len(seen) == len(expected) + 1


def test_background_delivery_from_many_threads_is_exactly_once_in_order() -> None:
    clock = ManualClock()
    seen: list[Transition] = []
    cb = CircuitBreaker(
        Breaker(consecutive_failures=1, open_for=0.001),
        clock=clock,
        listeners=[seen.append],
        listener_delivery="background",
    )

    def work() -> None:
        for _ in range(300):
            clock.advance(0.001)
            with contextlib.suppress(Rejected, Boom):
                cb.call(fail)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cb.flush_listeners(timeout=30)
    assert cb.snapshot()["transitions"] == len(seen) > 0
    assert [t.generation for t in seen] == list(range(1, len(seen) + 1))
    for a, b in itertools.pairwise(seen):
        assert a.to_state == b.from_state
    cb.close_listeners()


def test_listener_delivery_is_validated() -> None:
    with pytest.raises(ValueError, match="listener_delivery must be 'caller' or 'background'"):
        CircuitBreaker(listener_delivery="thread")  # type: ignore[arg-type]
    cb = CircuitBreaker()
    assert cb.listener_delivery == "caller"
    assert cb.flush_listeners() and cb.close_listeners()
