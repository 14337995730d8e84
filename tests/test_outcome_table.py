"""One outcome table: the Python breaker and retry classify exceptions as the engines do.

For every outcome kind and a spread of HTTP statuses, an exception standing for that outcome goes
through ``rl.CircuitBreaker`` and ``rl.Retry``; what they do must equal what the engines' native
table says (``_core.breaker_result_of`` is the function the engines record breaker results with;
``_core.RetryLoop`` is the engines' retry loop).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http

import pytest
from reliability_lab import _core, errors
from reliability_lab.backoff import Backoff
from reliability_lab.breaker import CANCELLATION_TYPES, Breaker, CircuitBreaker
from reliability_lab.clock import ManualClock
from reliability_lab.retry import Retry, RetryConfig

STATUSES = [300, 304, 400, 401, 403, 404, 408, 409, 422, 425, 429, 451, 499,
            500, 501, 502, 503, 504, 599]  # fmt: skip


class StatusError(Exception):
    """Carries the status as ``status_code`` (as FastAPI/Starlette's HTTPException does)."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class AioStyleError(Exception):
    """Carries the status as ``status`` (as aiohttp's ClientResponseError does)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class _Response:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


class ResponseError(Exception):
    """Carries ``response.status_code`` (as httpx.HTTPStatusError and requests.HTTPError do)."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.response = _Response(status_code)


def _cases() -> list[tuple[str, int, BaseException]]:
    cases: list[tuple[str, int, BaseException]] = [
        ("timeout", 0, TimeoutError()),
        ("timeout", 0, asyncio.TimeoutError()),
        ("timeout", 0, concurrent.futures.TimeoutError()),
        ("connection_reset", 0, ConnectionResetError()),
        ("connection_reset", 0, ConnectionRefusedError()),
        ("connection_reset", 0, BrokenPipeError()),
        ("error", 0, ValueError("a bug")),
        ("error", 0, StatusError(200)),  # a 2xx on an exception is no success
        ("cancelled", 0, asyncio.CancelledError()),
        ("cancelled", 0, concurrent.futures.CancelledError()),
        ("cancelled", 0, KeyboardInterrupt()),
        ("cancelled", 0, errors.Cancelled("stop")),
        ("deadline_exceeded", 0, errors.DeadlineExceeded("late", 0)),
        ("breaker_open", 0, errors.BreakerOpen("inner", 1.0)),
        ("breaker_half_open_full", 0, errors.BreakerHalfOpenFull("inner", 1)),
        ("bulkhead_full", 0, errors.BulkheadFull("pool", 1, 0)),
        ("throttled", 0, errors.Throttled("t", 0.5)),
    ]
    for status in STATUSES:
        cases.append(("http_status", status, StatusError(status)))
        cases.append(("http_status", status, AioStyleError(status)))
        cases.append(("http_status", status, ResponseError(status)))
    cases.append(("http_status", 503, StatusError(http.HTTPStatus.SERVICE_UNAVAILABLE)))
    return cases


CASES = _cases()


def _id(case: tuple[str, int, BaseException]) -> str:
    kind, status, exc = case
    return f"{type(exc).__name__}-{kind}{f'-{status}' if status else ''}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_python_classification_equals_the_engines(case: tuple[str, int, BaseException]) -> None:
    kind, status, exc = case
    assert _core.outcome_of_exception(exc) == (kind, status)

    # The breaker counts what the engines' BreakerResultOf says.
    expected = _core.breaker_result_of(kind, status)
    cb = CircuitBreaker(Breaker(consecutive_failures=1), clock=ManualClock())

    def raise_it() -> None:
        raise exc

    with pytest.raises(type(exc)):
        cb.call(raise_it)
    snap = cb.snapshot()
    counted = {"success": snap["successes"], "failure": snap["failures"],
               "ignored": snap["ignored"]}  # fmt: skip
    assert counted == {k: int(k == expected) for k in counted}
    assert cb.state == ("open" if expected == "failure" else "closed")

    # The two-step API classifies the same way.
    cb2 = CircuitBreaker(Breaker(consecutive_failures=1), clock=ManualClock())
    with pytest.raises(type(exc)), cb2.allow():
        raise exc
    assert cb2.snapshot()["failures"] == int(expected == "failure")

    # The retry retries exactly when the engines' retry loop would, under the default retry_on.
    loop = _core.RetryLoop(RetryConfig(max_attempts=2)._native(), None, None)
    assert loop.on_attempt_start(0)
    label = f"http_{status}" if status else kind
    engine_retries = loop.on_attempt_end(label, 0, 0.5).retry
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise exc

    policy = Retry(max_attempts=2, backoff=Backoff(jitter="none"), clock=ManualClock())
    with pytest.raises(BaseException):  # noqa: B017 - the type depends on the case
        policy.call(attempt)
    assert len(calls) == (2 if engine_retries else 1)


def test_the_table_by_class() -> None:
    classify = _core.classify_outcome
    assert classify("http_status", 404) == "caller_fault"
    assert classify("http_status", 408) == "dependency_fault"
    assert classify("http_status", 429) == "dependency_fault"
    assert classify("http_status", 501) == "dependency_fault"
    assert classify("deadline_exceeded") == "caller_gave_up"
    assert classify("bulkhead_full") == "local_rejection"
    assert classify("http_status", 204) == "success"
    with pytest.raises(ValueError, match="http_status"):
        classify("http_status", 700)
    with pytest.raises(ValueError, match="unknown outcome kind"):
        classify("nope")


def test_cancellation_types_are_what_the_table_ignores() -> None:
    for t in CANCELLATION_TYPES:
        if t is errors.Rejected:
            exc: BaseException = errors.Throttled("t", 1.0)
        elif issubclass(t, errors.RetryError):
            exc = t("x", 0)  # type: ignore[call-arg]
        else:
            exc = t()
        kind, status = _core.outcome_of_exception(exc)
        assert _core.breaker_result_of(kind, status) == "ignored", t


def test_odd_status_attributes_fall_back_to_error() -> None:
    class Odd(Exception):
        status_code = "503"  # not an int
        status = True  # a bool is not a status

        @property
        def response(self) -> object:
            raise RuntimeError("a property that raises")

    assert _core.outcome_of_exception(Odd()) == ("error", 0)
    with pytest.raises(TypeError):
        _core.outcome_of_exception("not an exception")  # type: ignore[arg-type]


def test_repeated_exception_types_are_classified_afresh_each_time() -> None:
    # The native side caches plain exception types; instance attributes, class attributes added
    # later and __getattr__ must still be seen.
    class Plain(Exception):
        pass

    assert _core.outcome_of_exception(Plain()) == ("error", 0)
    assert _core.outcome_of_exception(Plain()) == ("error", 0)  # from the cache
    tagged = Plain()
    tagged.status_code = 404  # type: ignore[attr-defined]
    assert _core.outcome_of_exception(tagged) == ("http_status", 404)
    assert _core.outcome_of_exception(Plain()) == ("error", 0)
    Plain.status = 503  # type: ignore[attr-defined]  # the type changes after being cached
    assert _core.outcome_of_exception(Plain()) == ("http_status", 503)

    class Dynamic(Exception):
        def __getattr__(self, name: str) -> object:
            if name == "status_code":
                return 429
            raise AttributeError(name)

    assert _core.outcome_of_exception(Dynamic()) == ("http_status", 429)
    assert _core.outcome_of_exception(Dynamic()) == ("http_status", 429)

    cb = CircuitBreaker(Breaker(consecutive_failures=2), clock=ManualClock())

    class Flip(Exception):
        pass

    def raise_flip(status: int | None) -> None:
        exc = Flip()
        if status is not None:
            exc.status_code = status  # type: ignore[attr-defined]
        raise exc

    for status in (None, 404, None, 404):
        with pytest.raises(Flip):
            cb.call(raise_flip, status)
    assert cb.snapshot()["failures"] == 2 and cb.snapshot()["successes"] == 2
