"""The AWS SDKs' retry modes ("standard" and "adaptive") guarding any Python callable.

Implemented from botocore's source (``botocore/retries/standard.py``, ``quota.py``,
``adaptive.py``, ``throttling.py``, ``bucket.py``); the state machines are native
(``cpp/rlab/policy/aws_retry.h``) and tested against botocore's unit-test vectors.

* ``standard``: at most ``max_attempts`` attempts (3). Transient errors (timeouts, connection
  errors, HTTP 408, 500, 502, 503, 504) and throttling errors (HTTP 429) are retried, anything else
  is re-raised at once. Every retry is paid from a **retry quota** shared by all calls through the
  policy: 500 units, a retry costs 5 (10 after a timeout); a successful call refunds the cost of its
  last retry, or 1 if it needed none. An empty quota ends the call with
  :class:`~reliability_lab.errors.RetryBudgetExhausted`. Delays: full jitter,
  ``random() x min(base_delay x 2^(n-1), max_backoff)`` with botocore's 1 s and 20 s.
* ``adaptive``: standard, plus client-side rate limiting: after the first throttling error each
  attempt takes a token from a bucket whose rate a CUBIC controller sets from the measured send
  rate (cut to 0.7x on throttling, regrowing along the cubic curve). The policy sleeps for its
  token on the given clock; a wait longer than ``max_wait`` raises :class:`SendRateLimited`.

Exceptions are read by the shared outcome mapping (:mod:`reliability_lab.errors`) unless
``classify`` returns one of ``"transient"``, ``"timeout"``, ``"throttling"`` or ``"permanent"``
for it (None falls back to the mapping). Cancellation and local rejections are never retried.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, NoReturn, ParamSpec, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reliability_lab import _core, _schema
from reliability_lab.clock import Clock, default_clock
from reliability_lab.errors import Cancelled, Rejected, RetryBudgetExhausted, RetryExhausted
from reliability_lab.metrics import PREFIX
from reliability_lab.retry import CancelToken, RetryContext, _count_value

P = ParamSpec("P")
R = TypeVar("R")

AwsRetryMode = Literal["standard", "adaptive"]
AwsErrorKind = Literal["transient", "timeout", "throttling", "permanent"]
_KINDS: frozenset[str] = frozenset(("transient", "timeout", "throttling", "permanent"))
END_REASONS: tuple[str, ...] = (
    "succeeded", "exhausted", "permanent", "quota", "rate_limited", "cancelled"
)
"""How a call through :class:`AwsRetry` can end."""


class SendRateLimited(Rejected):
    """The adaptive mode's send-rate limiter would make an attempt wait longer than max_wait."""

    def __init__(self, name: str, max_wait: float) -> None:
        super().__init__(name, max_wait)

    @property
    def name(self) -> str:
        """The policy's name."""
        return str(self.args[0])

    @property
    def max_wait(self) -> float:
        """The policy's max_wait (seconds), which the needed wait exceeded."""
        return float(self.args[1])


@dataclass(frozen=True)
class AwsRetryStats:
    """How the calls of one :class:`AwsRetry` ended, and the shared state now.

    The first six fields are the end reasons; ``quota_available`` .. ``measured_rate`` are a
    snapshot of the retry quota and (adaptive mode) the send-rate limiter.
    """

    succeeded: int
    exhausted: int
    permanent: int
    quota: int
    rate_limited: int
    cancelled: int
    retries: int
    send_waits: int
    """Attempts that waited for a send token (adaptive mode)."""
    quota_available: int
    quota_max: int
    limiter_enabled: bool
    fill_rate: float
    """The send token bucket's rate, per second (adaptive mode; 0 in standard mode)."""
    measured_rate: float

    @property
    def calls(self) -> int:
        """Calls that have ended."""
        return (
            self.succeeded + self.exhausted + self.permanent + self.quota + self.rate_limited
            + self.cancelled
        )


@dataclass(frozen=True, eq=False)
class AwsRetry:
    """Retries a callable as the AWS SDKs' ``standard`` or ``adaptive`` retry mode does.

    Use ``policy.call(fn, *args, **kwargs)``, decorate with ``@policy``, or
    ``policy.call_with(fn, cancel=event)`` (``fn`` takes a :class:`RetryContext`). One policy is
    one SDK client: its quota and rate limiter are shared by every call through it (thread-safe).

    Attributes:
        mode: ``"standard"`` or ``"adaptive"``.
        max_attempts: attempts per call, the first included, in [1, 100].
        quota: the retry quota's capacity (and start), in [0, 1e9].
        retry_cost: quota units a retry costs, in [1, 1e9].
        timeout_cost: quota units a retry after a timeout costs, in [1, 1e9].
        no_retry_increment: units a success without retries refunds, in [0, 1e9].
        base_delay: seconds scaling the backoff (first retry waits up to this), in (0, 1e6].
        max_backoff: cap in seconds on one backoff, in (0, 1e6].
        min_rate: adaptive: the lowest send rate per second, in (0, 1e9].
        beta: adaptive: CUBIC's multiplicative decrease, in (0, 1).
        scale_constant: adaptive: CUBIC's C, in (0, 1e9].
        smoothing: adaptive: the send-rate moving average's weight, in (0, 1].
        max_wait: adaptive: the longest wait in seconds for a send token, in [0, 1e6].
        classify: maps an exception to ``"transient"``, ``"timeout"``, ``"throttling"`` or
            ``"permanent"``; None (or a None answer) uses the shared outcome mapping.
        clock: where time is read and sleeps happen; the steady clock if None.
        seed: seeds the jitter draws; OS entropy if None.
        name: used in errors and metric labels.
        on_retry: called as ``on_retry(attempt, exception, delay)`` before each backoff sleep.

    Raises:
        ValueError: an invalid parameter, named ``aws_retry.<field>`` with its allowed range.
        TypeError: a parameter of the wrong type.
    """

    mode: AwsRetryMode = "standard"
    max_attempts: int = 3
    quota: int = 500
    retry_cost: int = 5
    timeout_cost: int = 10
    no_retry_increment: int = 1
    base_delay: float = 1.0
    max_backoff: float = 20.0
    min_rate: float = 0.5
    beta: float = 0.7
    scale_constant: float = 0.4
    smoothing: float = 0.8
    max_wait: float = 60.0
    classify: Callable[[BaseException], str | None] | None = None
    clock: Clock | None = None
    seed: int | None = None
    name: str = "aws"
    on_retry: Callable[[int, BaseException, float], object] | None = None

    _native: _core.AwsRetryPolicy = field(init=False, repr=False)
    _clock: Clock = field(init=False, repr=False)
    _rng: random.Random = field(init=False, repr=False)
    _counters: dict[str, itertools.count[int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.classify is not None and not callable(self.classify):
            raise TypeError(f"aws_retry.classify must be callable, got {self.classify!r}")
        clock = self.clock if self.clock is not None else default_clock()
        # The field table beside AwsRetryConfig (cpp/rlab/policy/aws_retry.cc) reads and checks
        # the fields, naming them "aws_retry.<field>" (ConfigTypeError for a wrong type).
        fields = {f["name"]: getattr(self, f["name"]) for f in _schema.TABLES["AwsRetryConfig"]}
        native = _core.AwsRetryPolicy(fields, clock.now_ns())
        init = functools.partial(object.__setattr__, self)
        init("_native", native)
        init("_clock", clock)
        init("_rng", random.Random(self.seed))
        init("_counters", {k: itertools.count() for k in (*END_REASONS, "retries", "send_waits")})

    # -- calling ---------------------------------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Calls ``fn(*args, **kwargs)`` under this retry mode; returns its result."""
        return self._run(lambda _context: fn(*args, **kwargs), None)

    def call_with(
        self, fn: Callable[[RetryContext], R], /, *, cancel: CancelToken | None = None
    ) -> R:
        """Calls ``fn(context)`` under this retry mode; ``cancel`` (like :class:`threading.Event`)
        stops it between attempts and ends a sleep at once with
        :class:`~reliability_lab.errors.Cancelled`."""
        if cancel is not None and not (
            callable(getattr(cancel, "is_set", None)) and callable(getattr(cancel, "wait", None))
        ):
            raise TypeError(
                f"cancel must have is_set() and wait(timeout), like threading.Event; got {cancel!r}"
            )
        return self._run(fn, cancel)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorates ``fn`` so that every call goes through this policy."""
        if inspect.iscoroutinefunction(fn):
            raise TypeError("AwsRetry wraps synchronous callables, not coroutine functions")

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return self.call(fn, *args, **kwargs)

        wrapper.__dict__["aws_retry"] = self
        return wrapper

    # -- statistics ------------------------------------------------------------------------------

    def stats(self) -> AwsRetryStats:
        """End reasons so far and the quota / limiter state now."""
        c = {k: _count_value(v) for k, v in self._counters.items()}
        s = self._native.snapshot()
        return AwsRetryStats(
            succeeded=c["succeeded"], exhausted=c["exhausted"], permanent=c["permanent"],
            quota=c["quota"], rate_limited=c["rate_limited"], cancelled=c["cancelled"],
            retries=c["retries"], send_waits=c["send_waits"],
            quota_available=s.quota_available, quota_max=s.quota_max,
            limiter_enabled=s.limiter_enabled, fill_rate=s.fill_rate,
            measured_rate=s.measured_rate,
        )

    def metrics(self) -> list[Metric]:
        """Prometheus families labelled ``policy=<name>``."""
        s = self.stats()
        calls = CounterMetricFamily(
            f"{PREFIX}_aws_retry_calls", "Calls by end reason.", labels=["policy", "reason"]
        )
        for reason in END_REASONS:
            calls.add_metric([self.name, reason], float(getattr(s, reason)))
        retries = CounterMetricFamily(
            f"{PREFIX}_aws_retry_retries", "Retries made.", labels=["policy"]
        )
        retries.add_metric([self.name], float(s.retries))
        quota = GaugeMetricFamily(
            f"{PREFIX}_aws_retry_quota", "Retry quota units available.", labels=["policy"]
        )
        quota.add_metric([self.name], float(s.quota_available))
        rate = GaugeMetricFamily(
            f"{PREFIX}_aws_retry_send_rate",
            "Adaptive mode: the send token bucket's rate per second.", labels=["policy"],
        )
        rate.add_metric([self.name], s.fill_rate)
        return [calls, retries, quota, rate]

    def collector(self) -> Collector:
        """A prometheus_client collector reading this policy at each scrape."""
        policy = self

        class _AwsRetryCollector(Collector):
            def collect(self) -> Iterator[Metric]:
                return iter(policy.metrics())

        return _AwsRetryCollector()

    # -- the loop --------------------------------------------------------------------------------

    def _kind_of(self, exc: BaseException) -> str:
        if self.classify is not None:
            verdict = self.classify(exc)
            if verdict is not None:
                if verdict not in _KINDS:
                    raise ValueError(
                        "aws_retry.classify must return one of transient, timeout, throttling, "
                        f"permanent or None, got {verdict!r}"
                    )
                return verdict
        kind, status = _core.outcome_of_exception(exc)
        return _core.aws_error_kind(kind, status)

    def _sleep(self, seconds: float, cancel: CancelToken | None) -> bool:
        """Sleeps on the policy's clock; True if ``cancel`` was set meanwhile."""
        if cancel is None:
            self._clock.sleep(seconds)
            return False
        if isinstance(self._clock, _core.SteadyClock):
            return cancel.wait(seconds)  # the event's timed wait is the sleep
        self._clock.sleep(seconds)
        return cancel.is_set()

    def _run(self, fn: Callable[[RetryContext], R], cancel: CancelToken | None) -> R:
        native, clock = self._native, self._clock
        attempt, last_cost = 0, 0
        last: BaseException | None = None
        while True:
            if cancel is not None and cancel.is_set():
                self._end_cancelled(attempt, last)
            wait = native.before_attempt(clock.now_ns())
            if wait is None:
                next(self._counters["rate_limited"])
                raise SendRateLimited(self.name, self.max_wait) from last
            if wait > 0:
                next(self._counters["send_waits"])
                if self._sleep(wait, cancel):
                    self._end_cancelled(attempt, last)
            attempt += 1
            try:
                result = fn(RetryContext(attempt, None, cancel, clock))
            except BaseException as exc:
                error = exc
            else:
                native.on_attempt_end(attempt, last_cost, "success", clock.now_ns(), 0.0)
                next(self._counters["succeeded"])
                return result
            kind = self._kind_of(error)
            verdict, delay, cost = native.on_attempt_end(
                attempt, last_cost, kind, clock.now_ns(), self._rng.random()
            )
            last = error
            if verdict != "retry":
                self._give_up(verdict, attempt, error)
            last_cost = cost
            next(self._counters["retries"])
            if self.on_retry is not None:
                self.on_retry(attempt, error, delay)
            if self._sleep(delay, cancel):
                self._end_cancelled(attempt, last)

    def _end_cancelled(self, attempts: int, error: BaseException | None) -> NoReturn:
        next(self._counters["cancelled"])
        last = f"; last error: {error!r}" if error is not None else ""
        raise Cancelled(f"cancelled after {attempts} attempt(s){last}", attempts) from error

    def _give_up(self, verdict: str, attempts: int, error: BaseException) -> NoReturn:
        next(self._counters[verdict])
        if verdict == "permanent":
            raise error  # unchanged: the caller sees the real failure
        if verdict == "quota":
            raise RetryBudgetExhausted(
                f"retry quota exhausted after {attempts} attempt(s); last error: {error!r}",
                attempts,
            ) from error
        raise RetryExhausted(
            f"all {attempts} attempt(s) failed; last error: {error!r}", attempts
        ) from error

    def __repr__(self) -> str:
        return (
            f"AwsRetry(name={self.name!r}, mode={self.mode!r}, max_attempts={self.max_attempts},"
            f" quota={self.quota})"
        )


__all__ = ["END_REASONS", "AwsRetry", "AwsRetryStats", "SendRateLimited"]
