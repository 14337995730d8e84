"""Retry: the Python wrapper over the core's RetryLoop, driven by a ManualClock (no real sleeps)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_lab import _core, errors
from reliability_lab.backoff import Backoff
from reliability_lab.clock import ManualClock
from reliability_lab.retry import (
    DEFAULT_RETRY_ON,
    END_REASONS,
    Retry,
    RetryConfig,
    RetryStats,
    retry,
)

CONSTANT = Backoff(initial=0.1, multiplier=1.0, max_delay=0.1, jitter="none")


class HttpError(Exception):
    """An exception carrying an HTTP status, as client libraries raise."""

    def __init__(self, status_code: int, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        if retry_after is not None:
            self.retry_after = retry_after


class Flaky:
    """Fails with `errors_` in order, then returns "ok"; records when each attempt started."""

    def __init__(self, clock: ManualClock, *errors_: BaseException, duration: float = 0.0) -> None:
        self.clock = clock
        self.errors = list(errors_)
        self.duration = duration
        self.starts: list[float] = []

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.starts.append(self.clock.now())
        if self.duration:
            self.clock.advance(self.duration)
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class FakeBudget:
    """Records the protocol calls; allows `allowed` retries."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed
        self.log: list[tuple[Any, ...]] = []

    def on_request(self, now: float) -> None:
        self.log.append(("request", now))

    def try_acquire_retry(self, now: float) -> bool:
        self.log.append(("acquire", now))
        if self.allowed <= 0:
            return False
        self.allowed -= 1
        return True

    def on_outcome(self, now: float, success: bool, retryable_failure: bool) -> None:
        self.log.append(("outcome", now, success, retryable_failure))


def stats(r: Retry, **nonzero: int) -> RetryStats:
    fields = dict.fromkeys(("succeeded", "exhausted", "permanent", "deadline", "budget"), 0)
    fields["retries"] = 0
    fields.update(nonzero)
    return RetryStats(**fields)


# -- success and the basic loop -------------------------------------------------------------------


def test_success_passes_arguments_and_counts() -> None:
    clock = ManualClock()
    r = Retry(clock=clock)

    def add(a: int, b: int = 0) -> int:
        return a + b

    assert r.call(add, 2, b=3) == 5
    assert r.stats() == stats(r, succeeded=1)
    assert r.stats().calls == 1
    assert clock.now() == 0.0


def test_retries_until_success_and_sleeps_on_the_clock() -> None:
    clock = ManualClock()
    seen: list[tuple[int, str, float]] = []
    r = Retry(
        max_attempts=5,
        backoff=CONSTANT,
        clock=clock,
        on_retry=lambda attempt, exc, delay: seen.append((attempt, str(exc), delay)),
    )
    fn = Flaky(clock, TimeoutError("t1"), ConnectionResetError("c2"), HttpError(503))
    assert r.call(fn) == "ok"
    assert fn.starts == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert seen == [(1, "t1", 0.1), (2, "c2", 0.1), (3, "HTTP 503", 0.1)]
    assert r.stats() == stats(r, succeeded=1, retries=3)


@pytest.mark.parametrize("max_attempts", [1, 2, 3, 7])
def test_max_attempts_counts_attempts_and_exhaustion_chains(max_attempts: int) -> None:
    clock = ManualClock()
    r = Retry(max_attempts=max_attempts, backoff=CONSTANT, clock=clock)
    fn = Flaky(clock, *[TimeoutError(f"t{i}") for i in range(1, 20)])
    with pytest.raises(errors.RetryExhausted) as info:
        r.call(fn)
    assert len(fn.starts) == max_attempts
    assert info.value.attempts == max_attempts
    assert info.value.reason == "exhausted"
    cause = info.value.__cause__
    assert isinstance(cause, TimeoutError)
    assert str(cause) == f"t{max_attempts}"
    # Attempts' exceptions do not chain to one another (no growing __context__ chain).
    assert cause.__context__ is None
    assert r.stats() == stats(r, exhausted=1, retries=max_attempts - 1)


# -- classification -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bug"),
        KeyError("k"),
        HttpError(404),
        HttpError(400, retry_after=1.0),
        HttpError(501),
    ],
)
def test_non_retryable_errors_are_reraised_unchanged(exc: BaseException) -> None:
    clock = ManualClock()
    r = Retry(clock=clock)
    fn = Flaky(clock, exc)
    with pytest.raises(type(exc)) as info:
        r.call(fn)
    assert info.value is exc
    assert len(fn.starts) == 1
    assert r.stats() == stats(r, permanent=1)


@pytest.mark.parametrize(
    "exc",
    [
        errors.BreakerOpen("payment", 1.0),
        errors.BreakerHalfOpenFull("payment", 1),
        errors.BulkheadFull("payment", 4, 0),
        errors.Throttled("payment", 0.5),
        errors.Rejected("custom"),
    ],
)
def test_rejections_are_permanent_even_if_listed(exc: BaseException) -> None:
    clock = ManualClock()
    r = Retry(clock=clock, retry_on=("error", errors.Rejected, Exception))
    fn = Flaky(clock, exc)
    with pytest.raises(type(exc)) as info:
        r.call(fn)
    assert info.value is exc
    assert len(fn.starts) == 1


@pytest.mark.parametrize(
    "exc", [KeyboardInterrupt(), SystemExit(3), GeneratorExit(), asyncio.CancelledError()]
)
def test_cancellation_propagates_at_once(exc: BaseException) -> None:
    clock = ManualClock()
    r = Retry(clock=clock, retry_on=("error", BaseException))
    fn = Flaky(clock, exc)
    with pytest.raises(type(exc)) as info:
        r.call(fn)
    assert info.value is exc
    assert len(fn.starts) == 1
    assert r.stats() == stats(r, permanent=1)


@pytest.mark.parametrize(
    ("exc", "retried"),
    [
        (TimeoutError(), True),
        (asyncio.TimeoutError(), True),
        (ConnectionResetError(), True),
        (ConnectionRefusedError(), True),
        (BrokenPipeError(), True),
        (HttpError(429), True),
        (HttpError(500), True),
        (HttpError(502), True),
        (HttpError(503), True),
        (HttpError(504), True),
        (HttpError(505), False),
        (HttpError(409), False),
        (OSError("disk"), False),
        (RuntimeError(), False),
    ],
)
def test_default_classification(exc: BaseException, retried: bool) -> None:
    clock = ManualClock()
    r = Retry(clock=clock, backoff=CONSTANT)
    fn = Flaky(clock, exc)
    if retried:
        assert r.call(fn) == "ok"
        assert len(fn.starts) == 2
    else:
        with pytest.raises(type(exc)):
            r.call(fn)
        assert len(fn.starts) == 1


def test_status_attribute_variants() -> None:
    class WithStatus(Exception):
        status = 503

    class Response:
        status_code = 502

    class WithResponse(Exception):
        response = Response()

    class TwoHundred(Exception):
        status_code = 200  # an exception is never a success

    class BoolStatus(Exception):
        status = True

    clock = ManualClock()
    r = Retry(clock=clock, backoff=CONSTANT)
    assert r.call(Flaky(clock, WithStatus())) == "ok"
    assert r.call(Flaky(clock, WithResponse())) == "ok"
    for exc in (TwoHundred(), BoolStatus()):
        with pytest.raises(type(exc)):
            r.call(Flaky(clock, exc))


@pytest.mark.parametrize(
    ("retry_on", "exc", "retried"),
    [
        ("error", ValueError(), True),
        (["error"], TimeoutError(), False),  # retry_on replaces the default set
        (("default", "error"), TimeoutError(), True),
        (("default", ValueError), ValueError(), True),
        (("default", ValueError), KeyError(), False),
        (ValueError, HttpError(404), False),
        (LookupError, KeyError(), True),
        ("5xx", HttpError(501), True),
        ("4xx", HttpError(404), True),
        ("404", HttpError(404), True),
        ("404", HttpError(503), False),
        ((), TimeoutError(), False),
    ],
)
def test_retry_on(retry_on: Any, exc: BaseException, retried: bool) -> None:
    clock = ManualClock()
    r = Retry(clock=clock, backoff=CONSTANT, retry_on=retry_on)
    fn = Flaky(clock, exc)
    if retried:
        assert r.call(fn) == "ok"
    else:
        with pytest.raises(type(exc)):
            r.call(fn)


def test_default_retry_on_matches_the_core() -> None:
    assert list(DEFAULT_RETRY_ON) == _core.default_retryable()
    assert END_REASONS == ("succeeded", "exhausted", "permanent", "deadline", "budget")


# -- Retry-After ----------------------------------------------------------------------------------


def test_retry_after_is_honoured() -> None:
    clock = ManualClock()
    r = Retry(clock=clock, backoff=CONSTANT)
    fn = Flaky(clock, HttpError(429, retry_after=5.0), HttpError(503, retry_after=0.01))
    assert r.call(fn) == "ok"
    # The hint lengthens the first sleep; a hint shorter than the backoff does not shorten it.
    assert fn.starts == pytest.approx([0.0, 5.0, 5.1])


def test_retry_after_is_capped() -> None:
    clock = ManualClock()
    r = Retry(clock=clock, backoff=CONSTANT, max_retry_after=2.0)
    fn = Flaky(clock, HttpError(503, retry_after=3600.0))
    assert r.call(fn) == "ok"
    assert fn.starts == pytest.approx([0.0, 2.0])


def test_invalid_retry_after_hints_are_ignored() -> None:
    clock = ManualClock()
    r = Retry(clock=clock, backoff=CONSTANT)
    for hint in (-1.0, math.nan, math.inf):
        fn = Flaky(clock, HttpError(503, retry_after=hint))
        start = clock.now()
        assert r.call(fn) == "ok"
        assert fn.starts[1] - start == pytest.approx(0.1)


# -- deadlines ------------------------------------------------------------------------------------


def test_sleep_crossing_the_deadline_is_not_started() -> None:
    clock = ManualClock()
    r = Retry(max_attempts=10, backoff=CONSTANT, clock=clock)
    fn = Flaky(clock, *[TimeoutError()] * 10)
    with pytest.raises(errors.DeadlineExceeded) as info:
        r.call_until(0.25, fn)
    # Attempts at 0.0, 0.1, 0.2; a sleep from 0.2 would end at 0.3 > 0.25.
    assert fn.starts == pytest.approx([0.0, 0.1, 0.2])
    assert info.value.attempts == 3
    assert isinstance(info.value.__cause__, TimeoutError)
    assert clock.now() == pytest.approx(0.2)
    assert r.stats() == stats(r, deadline=1, retries=2)


def test_sleep_ending_exactly_at_the_deadline_is_not_started() -> None:
    clock = ManualClock()
    r = Retry(max_attempts=10, backoff=CONSTANT, clock=clock)
    fn = Flaky(clock, *[TimeoutError()] * 10)
    with pytest.raises(errors.DeadlineExceeded):
        r.call_until(0.2, fn)
    assert fn.starts == pytest.approx([0.0, 0.1])


def test_call_within_and_timeout_field() -> None:
    clock = ManualClock(start=10.0)
    fn = Flaky(clock, *[TimeoutError()] * 10)
    with pytest.raises(errors.DeadlineExceeded):
        Retry(max_attempts=10, backoff=CONSTANT, clock=clock).call_within(0.15, fn)
    assert fn.starts == pytest.approx([10.0, 10.1])
    fn = Flaky(clock, *[TimeoutError()] * 10)
    r = Retry(max_attempts=10, backoff=CONSTANT, clock=clock, timeout=0.35)
    start = clock.now()
    with pytest.raises(errors.DeadlineExceeded):
        r.call(fn)
    assert [t - start for t in fn.starts] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    # The earlier of the per-call deadline and the policy's timeout wins.
    fn = Flaky(clock, *[TimeoutError()] * 10)
    start = clock.now()
    with pytest.raises(errors.DeadlineExceeded):
        r.call_until(start + 0.15, fn)
    assert len(fn.starts) == 2


def test_deadline_already_passed_calls_nothing() -> None:
    clock = ManualClock(start=5.0)
    called: list[int] = []
    with pytest.raises(errors.DeadlineExceeded) as info:
        Retry(clock=clock).call_until(5.0, lambda: called.append(1))
    assert called == []
    assert info.value.attempts == 0
    assert info.value.__cause__ is None


def test_nested_deadline_ends_with_deadline() -> None:
    clock = ManualClock()
    inner = errors.DeadlineExceeded("inner", 1)
    r = Retry(clock=clock, retry_on="error")
    fn = Flaky(clock, inner)
    with pytest.raises(errors.DeadlineExceeded) as info:
        r.call(fn)
    assert info.value.__cause__ is inner
    assert len(fn.starts) == 1


@settings(max_examples=200, deadline=None)
@given(
    timeout=st.floats(0.001, 5.0),
    duration=st.floats(0.0, 0.3),
    jitter=st.sampled_from(["none", "full", "equal", "decorrelated", "proportional"]),
    seed=st.integers(0, 2**32),
)
def test_deadline_never_overshot(timeout: float, duration: float, jitter: Any, seed: int) -> None:
    clock = ManualClock(start=1.0)
    r = Retry(
        max_attempts=50,
        backoff=Backoff(initial=0.05, max_delay=1.0, jitter=jitter),
        clock=clock,
        seed=seed,
    )
    fn = Flaky(clock, *[TimeoutError()] * 50, duration=duration)
    deadline = clock.now() + timeout
    with contextlib.suppress(errors.DeadlineExceeded, errors.RetryExhausted):
        r.call_until(deadline, fn)
    # No attempt ever starts at or after the deadline, so no sleep crossed it.
    assert all(t < deadline for t in fn.starts)
    assert 1 <= len(fn.starts) <= 50


# -- budgets --------------------------------------------------------------------------------------


def test_budget_sees_every_attempt_and_refuses() -> None:
    clock = ManualClock()
    budget = FakeBudget(allowed=1)
    r = Retry(max_attempts=5, backoff=CONSTANT, clock=clock, budget=budget)
    fn = Flaky(clock, TimeoutError(), HttpError(503), TimeoutError())
    with pytest.raises(errors.RetryBudgetExhausted) as info:
        r.call(fn)
    assert info.value.attempts == 2
    assert isinstance(info.value.__cause__, HttpError)
    assert budget.log == [
        ("request", 0.0),
        ("outcome", 0.0, False, True),
        ("acquire", 0.0),
        ("outcome", pytest.approx(0.1), False, True),
        ("acquire", pytest.approx(0.1)),
    ]
    assert r.stats() == stats(r, budget=1, retries=1)


def test_budget_on_success_and_permanent() -> None:
    clock = ManualClock()
    budget = FakeBudget(allowed=10)
    r = Retry(clock=clock, budget=budget)
    assert r.call(lambda: 1) == 1
    with pytest.raises(ValueError):
        r.call(Flaky(clock, ValueError()))
    assert budget.log == [
        ("request", 0.0),
        ("outcome", 0.0, True, False),
        ("request", 0.0),
        ("outcome", 0.0, False, False),
    ]


def test_budget_exceptions_propagate() -> None:
    class Broken(FakeBudget):
        def try_acquire_retry(self, now: float) -> bool:
            raise RuntimeError("budget broke")

    clock = ManualClock()
    r = Retry(clock=clock, budget=Broken(1))
    with pytest.raises(RuntimeError, match="budget broke"):
        r.call(Flaky(clock, TimeoutError()))


def test_with_the_token_bucket_budget() -> None:
    budget_module = pytest.importorskip("reliability_lab.budget")
    clock = ManualClock()
    r = Retry(max_attempts=10, backoff=CONSTANT, clock=clock, budget=budget_module.TokenBucket())
    outcomes = []
    for _ in range(10):
        try:
            r.call(Flaky(clock, *[TimeoutError()] * 10))
        except errors.RetryError as e:
            outcomes.append(e.reason)
    # The bucket (10 tokens, retries only above 5) stops retries long before 10 x 9 of them.
    assert outcomes == ["budget"] * 10
    assert r.stats().retries < 10


# -- decorators -----------------------------------------------------------------------------------


def test_decorator_forms() -> None:
    clock = ManualClock()
    policy = Retry(backoff=CONSTANT, clock=clock)
    fails = [TimeoutError()]

    @policy
    def fetch(x: int) -> int:
        """Doc."""
        if fails:
            raise fails.pop()
        return x * 2

    assert fetch(4) == 8
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Doc."
    assert fetch.retry is policy  # type: ignore[attr-defined]
    assert policy.stats() == stats(policy, succeeded=1, retries=1)

    @retry
    def plain() -> str:
        return "p"

    @retry(max_attempts=2, clock=clock, timeout=1.0)
    def bounded() -> str:
        return "b"

    assert plain() == "p"
    assert bounded() == "b"
    assert bounded.retry.stats().succeeded == 1  # type: ignore[attr-defined]


def test_decorating_a_coroutine_function_is_an_error() -> None:
    async def coro() -> None:
        return None

    with pytest.raises(TypeError, match="synchronous"):
        Retry()(coro)


# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be an integer in [1, 1000000], got 0"),
        (
            {"max_retry_after": -1.0},
            "max_retry_after must be a finite number in [0, 1e+06], got -1",
        ),
        (
            {"max_retry_after": math.nan},
            "max_retry_after must be a finite number in [0, 1e+06], got nan",
        ),
        ({"timeout": 0.0}, "timeout must be a finite number in (0, 1e+06], got 0"),
        ({"timeout": math.inf}, "timeout must be a finite number in (0, 1e+06], got inf"),
        ({"timeout": True}, "timeout must be a finite number in (0, 1e+06], got True"),
        ({"timeout": 10**400}, "timeout must be a finite number in (0, 1e+06], got 1000000000"),
        ({"seed": -1}, "seed must be an integer in [0, 18446744073709551615], got -1"),
        ({"seed": 1.0}, "seed must be an integer in [0, 18446744073709551615], got 1.0"),
        ({"retry_on": "bogus"}, "retry_on: unknown outcome 'bogus'"),
        ({"retry_on": ["200"]}, "retry_on: HTTP status must be in [300, 599], got 200"),
    ],
)
def test_validation_names_parameter(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        Retry(**kwargs)
    assert str(info.value).startswith(message)


def test_per_call_arguments_are_checked() -> None:
    r = Retry(clock=ManualClock())
    with pytest.raises(ValueError, match=r"timeout must be a finite number in \[0"):
        r.call_within(-1.0, lambda: None)
    with pytest.raises(ValueError, match="deadline must be a finite number"):
        r.call_until(math.nan, lambda: None)
    with pytest.raises(TypeError, match="retry_on entries"):
        Retry(retry_on=[3])  # type: ignore[list-item]


# -- statistics: the loop matches the closed form -------------------------------------------------


@pytest.mark.parametrize("max_attempts", [1, 3, 5])
def test_success_probability_and_expected_attempts(max_attempts: int) -> None:
    p, trials = 0.3, 20000
    clock = ManualClock()
    r = Retry(max_attempts=max_attempts, clock=clock, seed=1)
    draws = random.Random(12345)
    attempts_total = 0

    def flaky() -> None:
        nonlocal attempts_total
        attempts_total += 1
        if draws.random() < p:
            raise ConnectionResetError()

    successes = 0
    for _ in range(trials):
        try:
            r.call(flaky)
            successes += 1
        except errors.RetryExhausted as e:
            assert e.attempts == max_attempts
    q = 1 - p**max_attempts
    mean_attempts = (1 - p**max_attempts) / (1 - p)
    # 5 standard errors: a false alarm is astronomically unlikely, a wrong formula is not missed.
    assert abs(successes / trials - q) < 5 * math.sqrt(q * (1 - q) / trials) + 1e-9
    var_attempts = (
        sum((k**2) * (p ** (k - 1)) * (1 - p) for k in range(1, max_attempts))
        + max_attempts**2 * p ** (max_attempts - 1)
        - mean_attempts**2
    )
    assert (
        abs(attempts_total / trials - mean_attempts) < 5 * math.sqrt(var_attempts / trials) + 1e-9
    )
    s = r.stats()
    assert s.succeeded == successes
    assert s.exhausted == trials - successes
    assert s.retries == attempts_total - trials


@settings(max_examples=200, deadline=None)
@given(
    max_attempts=st.integers(1, 8),
    outcomes=st.lists(
        st.sampled_from(["ok", "timeout", "503", "429", "404", "value", "reject"]),
        min_size=1,
        max_size=12,
    ),
)
def test_attempts_never_exceed_max(max_attempts: int, outcomes: list[str]) -> None:
    clock = ManualClock()
    make: dict[str, Callable[[], BaseException]] = {
        "timeout": TimeoutError,
        "503": lambda: HttpError(503),
        "429": lambda: HttpError(429, retry_after=0.5),
        "404": lambda: HttpError(404),
        "value": ValueError,
        "reject": lambda: errors.BreakerOpen("b", 1.0),
    }
    excs = [make[o]() for o in failures_before_ok(outcomes)]
    fn = Flaky(clock, *excs)
    r = Retry(max_attempts=max_attempts, clock=clock, seed=0)
    with contextlib.suppress(errors.RetryExhausted, HttpError, ValueError, errors.Rejected):
        r.call(fn)
    assert 1 <= len(fn.starts) <= max_attempts
    assert r.stats().calls == 1
    assert r.stats().retries == len(fn.starts) - 1


def failures_before_ok(outcomes: list[str]) -> list[str]:
    out: list[str] = []
    for o in outcomes:
        if o == "ok":
            break
        out.append(o)
    return out


# -- the native loop, driven directly -------------------------------------------------------------


def test_native_loop_end_reasons() -> None:
    cfg = RetryConfig(2, Backoff(0.1, 1.0, 0.1, "none"))._native()
    loop = _core.RetryLoop(cfg, None, 1_000_000_000)
    assert loop.deadline_ns == 1_000_000_000
    assert loop.on_attempt_start(0)
    step = loop.on_attempt_end("http_503", 0, 0.5)
    assert (step.retry, step.delay_ns, step.reason) == (True, 100_000_000, None)
    assert loop.remaining_ns(900_000_000) == 100_000_000
    assert loop.on_attempt_start(100_000_000)
    step = loop.on_attempt_end("timeout", 100_000_000, 0.5)
    assert (step.done, step.reason, loop.end_reason, loop.attempts) == (
        True,
        "exhausted",
        "exhausted",
        2,
    )
    assert not loop.on_attempt_start(200_000_000)
    for outcome, reason in [
        ("success", "succeeded"),
        ("200", "succeeded"),
        ("404", "permanent"),
        ("breaker_open", "permanent"),
        ("cancelled", "permanent"),
        ("deadline_exceeded", "deadline"),
    ]:
        loop = _core.RetryLoop(cfg)
        assert loop.on_attempt_start(0)
        assert loop.on_attempt_end(outcome, 0, 0.5).reason == reason
    assert cfg.is_retryable("503") and not cfg.is_retryable("http_404")


def test_native_loop_rejects_bad_input() -> None:
    cfg = RetryConfig()._native()
    loop = _core.RetryLoop(cfg)
    loop.on_attempt_start(0)
    with pytest.raises(ValueError, match=r"u must be a finite number in \[0, 1\)"):
        loop.on_attempt_end("timeout", 0, 1.0)
    with pytest.raises(ValueError, match="outcome must be"):
        loop.on_attempt_end("bogus", 0, 0.5)
    with pytest.raises(ValueError, match="http status"):
        loop.on_attempt_end("http_99", 0, 0.5)
    with pytest.raises(TypeError):
        _core.RetryLoop(Backoff()._native())  # type: ignore[arg-type]


# -- concurrency and real time --------------------------------------------------------------------


def test_counters_exact_under_threads() -> None:
    r = Retry()
    f = r(lambda: None)

    def work() -> None:
        for _ in range(20000):
            f()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert r.stats().succeeded == 80000


def test_real_clock_sleeps() -> None:
    r = Retry(backoff=Backoff(initial=0.001, max_delay=0.002, jitter="none"))
    fails = [TimeoutError(), TimeoutError()]

    def fn() -> str:
        if fails:
            raise fails.pop()
        return "ok"

    assert r.call(fn) == "ok"
    assert r.stats().retries == 2


# --- call_with: the remaining budget and a cancel token (issue #12) -------------------------


def test_call_with_tells_each_attempt_its_number_and_remaining_time() -> None:
    from reliability_lab.retry import RetryContext

    clock = ManualClock(100.0)
    seen: list[tuple[int, float | None, float | None]] = []

    def attempt(ctx: RetryContext) -> str:
        seen.append((ctx.attempt, ctx.deadline, ctx.remaining))
        clock.advance(1.0)  # the attempt takes a second
        if ctx.attempt < 3:
            raise TimeoutError
        return "ok"

    policy = Retry(max_attempts=3, backoff=CONSTANT, clock=clock)
    assert policy.call_with(attempt, timeout=10.0) == "ok"
    assert [s[0] for s in seen] == [1, 2, 3]
    assert all(s[1] == pytest.approx(110.0) for s in seen)
    # 10 s budget; each failed attempt costs 1 s plus a 0.1 s sleep.
    assert [s[2] for s in seen] == pytest.approx([10.0, 8.9, 7.8])
    # Without a deadline the context says so; the earliest of timeout/deadline wins.
    assert policy.call_with(lambda ctx: ctx.remaining) is None
    assert policy.call_with(lambda ctx: ctx.remaining, timeout=50.0, deadline=105.0) == (
        pytest.approx(105.0 - clock.now())
    )
    assert policy.stats().succeeded == 3


def test_call_with_deadline_still_ends_with_deadline_exceeded() -> None:
    clock = ManualClock()
    policy = Retry(max_attempts=5, backoff=CONSTANT, clock=clock)
    calls: list[int] = []

    def attempt(ctx: Any) -> None:
        calls.append(ctx.attempt)
        clock.advance(0.5)
        raise TimeoutError

    with pytest.raises(errors.DeadlineExceeded):
        policy.call_with(attempt, timeout=1.0)
    assert calls == [1, 2]
    with pytest.raises(ValueError, match="timeout"):
        policy.call_with(attempt, timeout=-1.0)
    with pytest.raises(ValueError, match="deadline"):
        policy.call_with(attempt, deadline=math.nan)
    with pytest.raises(TypeError, match="cancel"):
        policy.call_with(attempt, cancel=object())  # type: ignore[arg-type]


def test_cancel_ends_the_sleep_with_cancelled_on_a_manual_clock() -> None:
    clock = ManualClock()
    cancel = threading.Event()

    def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
        if attempt == 2:
            cancel.set()  # as if another thread cancelled during this sleep

    policy = Retry(max_attempts=10, backoff=CONSTANT, clock=clock, on_retry=on_retry)
    calls: list[int] = []

    def attempt(ctx: Any) -> None:
        calls.append(ctx.attempt)
        raise ConnectionResetError

    with pytest.raises(errors.Cancelled) as info:
        policy.call_with(attempt, cancel=cancel)
    assert calls == [1, 2]
    assert info.value.attempts == 2
    assert isinstance(info.value.__cause__, ConnectionResetError)
    assert policy.stats().cancelled == 1 and policy.stats().calls == 1
    # A token already set: nothing is attempted.
    with pytest.raises(errors.Cancelled) as info:
        policy.call_with(attempt, cancel=cancel)
    assert calls == [1, 2] and info.value.attempts == 0


def test_cancel_from_another_thread_wakes_a_long_backoff_sleep() -> None:
    from reliability_lab.breaker import Breaker, CircuitBreaker

    cancel = threading.Event()
    sleeping = threading.Event()
    long_sleep = Backoff(initial=3600.0, multiplier=1.0, max_delay=3600.0, jitter="none")
    policy = Retry(
        max_attempts=3, backoff=long_sleep, on_retry=lambda *_: sleeping.set()
    )  # the steady clock: a real sleep of an hour unless cancelled
    breaker = CircuitBreaker(Breaker(consecutive_failures=1))
    outcome: list[BaseException] = []

    def attempt(ctx: Any) -> None:
        raise TimeoutError

    def run() -> None:
        try:
            breaker.call(policy.call_with, attempt, cancel=cancel)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert sleeping.wait(30)
    cancel.set()
    worker.join(60)  # generous: the point is that it ends at all, not how fast
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], errors.Cancelled)
    # The breaker around the retry does not count a cancellation.
    assert breaker.state == "closed" and breaker.snapshot()["ignored"] == 1


def test_cancelled_from_the_callable_is_permanent() -> None:
    clock = ManualClock()
    policy = Retry(max_attempts=5, backoff=CONSTANT, clock=clock, retry_on=["error"])
    flaky = Flaky(clock, errors.Cancelled("the caller gave up"))
    with pytest.raises(errors.Cancelled):
        policy.call(flaky)
    assert len(flaky.starts) == 1
