"""AwsRetry: botocore's standard and adaptive retry modes guarding a Python callable."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable

import pytest
import reliability_lab as rl
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_lab.clock import ManualClock
from reliability_lab.errors import Cancelled, RetryBudgetExhausted, RetryExhausted


class HttpError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


def script(outcomes: Iterable[BaseException | None]) -> Callable[[], str]:
    """A callable raising the given exceptions in turn (None: succeed)."""
    it = iter(outcomes)

    def fn() -> str:
        exc = next(it)
        if exc is not None:
            raise exc
        return "ok"

    return fn


# -- standard mode: quota arithmetic (botocore standard.py RetryQuotaChecker) ---------------------


def test_retries_transient_errors_and_charges_then_refunds_the_quota() -> None:
    clock = ManualClock()
    policy = rl.AwsRetry(clock=clock, seed=1)
    assert policy.call(script([HttpError(503), HttpError(500), None])) == "ok"
    s = policy.stats()
    assert (s.succeeded, s.retries) == (1, 2)
    # two retries at 5 each, then the success refunds the last retry's cost only
    assert s.quota_available == 500 - 10 + 5
    # a first-try success refunds 1
    policy.call(script([None]))
    assert policy.stats().quota_available == 496


def test_timeout_costs_ten_and_throttling_five() -> None:
    policy = rl.AwsRetry(clock=ManualClock(), seed=1, max_attempts=2)
    with pytest.raises(RetryExhausted):
        policy.call(script([TimeoutError(), TimeoutError()]))
    assert policy.stats().quota_available == 490
    with pytest.raises(RetryExhausted):
        policy.call(script([HttpError(429), HttpError(429)]))
    assert policy.stats().quota_available == 485


def test_quota_exhaustion_stops_retries_and_successes_refill_it() -> None:
    policy = rl.AwsRetry(clock=ManualClock(), seed=2, quota=10)
    calls: list[int] = []

    def failing() -> None:
        calls.append(1)
        raise ConnectionResetError("reset")

    with pytest.raises(RetryExhausted):
        policy.call(failing)  # 3 attempts, 2 retries: the quota pays 5 + 5
    assert len(calls) == 3 and policy.stats().quota_available == 0
    calls.clear()
    with pytest.raises(RetryBudgetExhausted) as info:
        policy.call(failing)
    assert len(calls) == 1  # no retry without quota
    assert isinstance(info.value.__cause__, ConnectionResetError)
    for _ in range(5):
        policy.call(script([None]))
    assert policy.stats().quota_available == 5
    assert policy.call(script([HttpError(502), None])) == "ok"
    assert policy.stats().quota_available == 5  # paid 5, refunded 5
    s = policy.stats()
    assert (s.exhausted, s.quota, s.succeeded) == (1, 1, 6)


def test_permanent_errors_are_reraised_unchanged_and_cost_nothing() -> None:
    policy = rl.AwsRetry(clock=ManualClock())
    err = HttpError(404)
    with pytest.raises(HttpError) as info:
        policy.call(script([err]))
    assert info.value is err
    with pytest.raises(ValueError):
        policy.call(script([ValueError("bug")]))
    s = policy.stats()
    assert (s.permanent, s.retries, s.quota_available) == (2, 0, 500)


def test_classifier_overrides_the_outcome_table() -> None:
    policy = rl.AwsRetry(
        clock=ManualClock(),
        classify=lambda e: "throttling" if isinstance(e, ValueError) else None,
    )
    assert policy.call(script([ValueError("slow down"), None])) == "ok"
    assert policy.stats().retries == 1
    bad = rl.AwsRetry(clock=ManualClock(), classify=lambda e: "maybe")
    with pytest.raises(ValueError, match=r"aws_retry\.classify"):
        bad.call(script([ValueError("x")]))


def test_backoff_is_full_jitter_capped_exponential() -> None:
    delays: list[float] = []
    clock = ManualClock()
    policy = rl.AwsRetry(
        clock=clock, seed=3, max_attempts=8, max_backoff=5.0,
        on_retry=lambda attempt, exc, delay: delays.append(delay),
    )
    with pytest.raises(RetryExhausted):
        policy.call(script([HttpError(500)] * 8))
    assert len(delays) == 7
    for n, d in enumerate(delays, start=1):
        assert 0.0 <= d <= min(2.0 ** (n - 1), 5.0)
    assert clock.now() == pytest.approx(sum(delays))


def test_cancel_ends_the_call() -> None:
    event = threading.Event()
    event.set()
    policy = rl.AwsRetry(clock=ManualClock())
    with pytest.raises(Cancelled):
        policy.call_with(lambda ctx: "never", cancel=event)
    assert policy.stats().cancelled == 1


# -- adaptive mode: client-side rate limiting (botocore adaptive.py) -------------------------------


def drive(policy: rl.AwsRetry, clock: ManualClock) -> None:
    """20 successful requests per second for 5 s."""
    for _ in range(100):
        clock.advance(0.05)
        policy.call(script([None]))


def test_adaptive_mode_throttles_the_send_rate_after_throttling() -> None:
    clock = ManualClock()
    policy = rl.AwsRetry(mode="adaptive", clock=clock, seed=4, max_attempts=1)
    drive(policy, clock)
    assert not policy.stats().limiter_enabled
    with pytest.raises(RetryExhausted):
        policy.call(script([HttpError(429)]))
    s = policy.stats()
    assert s.limiter_enabled
    assert s.measured_rate == pytest.approx(20.0, rel=1e-3)
    assert s.fill_rate == pytest.approx(0.7 * s.measured_rate)  # CUBIC's beta cut
    # A burst of 40 calls at once: at most the bucket's capacity (= its rate, 14) go without
    # waiting; the rest wait for tokens, at a rate that CUBIC raises again as successes come in.
    start = clock.now()
    for _ in range(40):
        policy.call(script([None]))
    elapsed = clock.now() - start
    assert policy.stats().send_waits >= 40 - 15
    assert 0.5 < elapsed < 40.0 / s.fill_rate


def test_standard_mode_never_waits_to_send() -> None:
    clock = ManualClock()
    policy = rl.AwsRetry(clock=clock, max_attempts=1)
    drive(policy, clock)
    with pytest.raises(RetryExhausted):
        policy.call(script([HttpError(429)]))
    start = clock.now()
    for _ in range(40):
        policy.call(script([None]))
    assert clock.now() == start
    assert policy.stats().send_waits == 0


def test_adaptive_wait_beyond_max_wait_is_refused() -> None:
    clock = ManualClock()
    policy = rl.AwsRetry(mode="adaptive", clock=clock, max_attempts=1, max_wait=0.5)
    clock.advance(1.0)
    with pytest.raises(RetryExhausted):
        policy.call(script([HttpError(429)]))  # measured 0.8/s: rate cut to 0.56/s
    policy.call(script([None]))  # the one saved token
    with pytest.raises(rl.SendRateLimited) as info:
        policy.call(script([None]))
    assert info.value.max_wait == 0.5
    assert isinstance(info.value, rl.Rejected)
    assert policy.stats().rate_limited == 1


# -- parameters ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "legacy"}, "aws_retry.mode must be one of 'standard', 'adaptive', got 'legacy'"),
        ({"max_attempts": 0}, "aws_retry.max_attempts must be an integer in [1, 100], got 0"),
        ({"quota": -1}, "aws_retry.quota"),
        ({"retry_cost": 0}, "aws_retry.retry_cost"),
        ({"beta": 1.0}, "aws_retry.beta"),
        ({"max_backoff": 0.0}, "aws_retry.max_backoff"),
        ({"smoothing": 0.0}, "aws_retry.smoothing"),
        ({"max_wait": -1.0}, "aws_retry.max_wait"),
    ],
)
def test_bad_parameters_name_path_range_and_value(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        rl.AwsRetry(**kwargs)  # type: ignore[arg-type]
    assert message in str(info.value)


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 2.0}, {"quota": True}, {"beta": "0.5"}, {"classify": 3}]
)
def test_wrong_types_raise_type_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(TypeError, match=r"aws_retry"):
        rl.AwsRetry(**kwargs)  # type: ignore[arg-type]


def test_metrics_families() -> None:
    policy = rl.AwsRetry(clock=ManualClock(), name="s3")
    policy.call(script([None]))
    names = {m.name for m in policy.metrics()}
    assert {"rlab_aws_retry_calls", "rlab_aws_retry_quota"} <= names


# -- property: the quota never leaves [0, capacity] -----------------------------------------------

_FAILURES: list[BaseException | None] = [
    None, HttpError(503), HttpError(429), TimeoutError(), ConnectionResetError(), HttpError(400),
]


@settings(max_examples=60, deadline=None)
@given(
    quota=st.integers(0, 60),
    mode=st.sampled_from(["standard", "adaptive"]),
    calls=st.lists(st.lists(st.integers(0, len(_FAILURES) - 1), min_size=1, max_size=4),
                   max_size=30),
)
def test_quota_never_negative_nor_above_capacity(
    quota: int, mode: str, calls: list[list[int]]
) -> None:
    clock = ManualClock()
    policy = rl.AwsRetry(mode=mode, quota=quota, clock=clock, seed=0, max_wait=1e6)  # type: ignore[arg-type]
    for outcomes in calls:
        clock.advance(0.1)
        # the script ends in a success so that an allowed retry always has an attempt to run
        with contextlib.suppress(HttpError, RetryExhausted, RetryBudgetExhausted):
            policy.call(script([_FAILURES[i] for i in outcomes] + [None] * 4))
        s = policy.stats()
        assert 0 <= s.quota_available <= s.quota_max == quota
    assert policy.stats().calls == len(calls)
