"""Retry budgets: a cap on retries shared by every call to a dependency.

A retry loop consults its budget before each retry, so that when a dependency fails the extra
load it receives stays bounded instead of multiplying (a retry storm). Two budgets::

    budget = TokenBucket(max_tokens=10, token_ratio=0.1)   # gRPC retry throttling (gRFC A6)
    budget = RatioBudget(ratio=0.1, window=10.0, min_retries_per_second=10.0)   # Finagle-style

Both follow one protocol (:class:`RetryBudgetProtocol`), with ``now`` in seconds on the caller's
clock: ``on_request(now)`` before a call's first attempt, ``try_acquire_retry(now)`` before each
retry (False: do not retry), ``on_outcome(now, success, retryable_failure)`` after every attempt.
Budgets are thread-safe and native; share one between every caller of a dependency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from reliability_lab import _core, _schema
from reliability_lab.clock import Clock, default_clock


@runtime_checkable
class RetryBudgetProtocol(Protocol):
    """What a retry loop needs from a retry budget. ``now`` is in seconds."""

    def on_request(self, now: float) -> None:
        """A call's first attempt is about to be sent."""

    def try_acquire_retry(self, now: float) -> bool:
        """Asks to send one retry; True allows it (and counts it, where the budget counts)."""

    def on_outcome(self, now: float, success: bool, retryable_failure: bool) -> None:
        """An attempt ended: a success, a retryable failure, or neither (both False)."""


def _now(now: float | None, clock: Clock | None) -> float:
    if now is None:
        return (clock if clock is not None else default_clock()).now()
    if not isinstance(now, (int, float)) or not math.isfinite(now):
        raise ValueError(f"now must be a finite number of seconds, got {now!r}")
    return float(now)


# ---------------------------------------------------------------------------------------------
# Token bucket (gRFC A6)


@dataclass(frozen=True)
class TokenBucketConfig(_schema.Checked):
    """Configuration of a :class:`TokenBucket` (validated on construction).

    Attributes:
        max_tokens: capacity and starting level, in (0, 1000].
        token_ratio: tokens returned by each success, in (0, 1000]. gRFC A6 only requires it to
            be positive (typically below 1, e.g. 0.1; gRPC's own tests use 1.6); above
            ``max_tokens`` it makes no difference, one success refills the bucket.

    Both are kept to three decimal places (rounded to the nearest 0.001), as gRFC A6 specifies.
    """

    max_tokens: float = 10.0
    token_ratio: float = 0.1

    def _native(self) -> _core.TokenBucketBudget:
        return _core.TokenBucketBudget(_schema.values(self))

    def build(self) -> TokenBucket:
        """A new bucket with this configuration."""
        return TokenBucket(self.max_tokens, self.token_ratio)


class TokenBucket:
    """gRPC's retry throttling (gRFC A6), with A6's exact integer arithmetic.

    The bucket starts full at ``max_tokens``. Each retryable failure takes one token and each
    success returns ``token_ratio`` tokens, clamped to ``[0, max_tokens]``; a retry is allowed only
    while ``tokens > max_tokens / 2``. Non-retryable failures and first attempts leave the bucket
    alone, and ``try_acquire_retry`` takes nothing (the failure that led to it already did).
    Arithmetic is done in thousandths of a token, so ten successes at 0.1 add exactly one token.

    ``now`` arguments are accepted for the shared protocol and ignored: A6 has no notion of time.
    """

    def __init__(self, max_tokens: float = 10, token_ratio: float = 0.1) -> None:
        self._config = TokenBucketConfig(max_tokens, token_ratio)
        self._native = self._config._native()

    @classmethod
    def from_config(cls, config: TokenBucketConfig) -> TokenBucket:
        """A new bucket with ``config``."""
        return cls(config.max_tokens, config.token_ratio)

    @property
    def config(self) -> TokenBucketConfig:
        """The configuration this bucket was built with."""
        return self._config

    @property
    def native(self) -> _core.TokenBucketBudget:
        """The native budget, for engines and bindings that accept a ``_core.RetryBudget``."""
        return self._native

    def on_request(self, now: float | None = None) -> None:
        """A no-op: A6 counts outcomes, not requests."""

    def try_acquire_retry(self, now: float | None = None) -> bool:
        """True while tokens > max_tokens / 2; takes no token."""
        return self._native.try_acquire_retry(0.0)

    def on_outcome(self, now: float | None, success: bool, retryable_failure: bool) -> None:
        """Success adds ``token_ratio``; a retryable failure takes one token (success wins)."""
        self._native.on_outcome(0.0, bool(success), bool(retryable_failure))

    @property
    def tokens(self) -> float:
        """The current level in tokens (exact to 0.001)."""
        return self._native.tokens

    @property
    def milli_tokens(self) -> int:
        """The current level in thousandths of a token: A6's exact integer state."""
        return self._native.milli_tokens

    @property
    def max_tokens(self) -> float:
        """The capacity, as rounded to thousandths."""
        return self._native.max_milli_tokens / 1000

    @property
    def token_ratio(self) -> float:
        """Tokens per success, as rounded to thousandths."""
        return self._native.milli_token_ratio / 1000

    @property
    def threshold(self) -> float:
        """Retries are allowed while ``tokens`` is strictly above this (max_tokens / 2)."""
        return self._native.threshold_milli_tokens / 1000

    @property
    def retries_allowed(self) -> int:
        """How many ``try_acquire_retry`` calls returned True."""
        return self._native.snapshot().retries_allowed

    @property
    def retries_refused(self) -> int:
        """How many ``try_acquire_retry`` calls returned False."""
        return self._native.snapshot().retries_refused

    def __repr__(self) -> str:
        return (
            f"TokenBucket(tokens={self.tokens:g}, max_tokens={self.max_tokens:g},"
            f" token_ratio={self.token_ratio:g})"
        )


# ---------------------------------------------------------------------------------------------
# Ratio budget (Finagle's RetryBudget)


@dataclass(frozen=True)
class RatioBudgetConfig(_schema.Checked):
    """Configuration of a :class:`RatioBudget` (validated on construction).

    Attributes:
        ratio: retries allowed per request in the window, in [0, 1000].
        window: the sliding window in seconds, in (0, 1e6].
        min_retries_per_second: retries per second always allowed, in [0, 1e6].
        buckets: buckets of the sliding window, in [1, 1000].
    """

    ratio: float = 0.1
    window: float = 10.0
    min_retries_per_second: float = 10.0
    buckets: int = 10

    def _native(self) -> _core.RatioBudget:
        return _core.RatioBudget(_schema.values(self))

    def build(self, clock: Clock | None = None) -> RatioBudget:
        """A new budget with this configuration."""
        return RatioBudget.from_config(self, clock=clock)


@dataclass(frozen=True)
class RatioBudgetSnapshot:
    """The window of a :class:`RatioBudget` at one instant."""

    requests: int
    """First attempts in the window."""
    retries: int
    """Retries allowed in the window."""
    allowance: float
    """``ratio * requests + floor``: the retries the window may hold."""
    retries_refused: int
    """Lifetime count of refused retries."""


class RatioBudget:
    """Retries <= ``ratio`` x requests + ``min_retries_per_second`` x ``window``, over a window.

    Requests are first attempts (``on_request``); retries never earn more retries. The floor is
    added to the ratio's allowance, as in Finagle's ``RetryBudget`` ("in addition to"), so that a
    quiet client or a cold start can still retry while a storm stays capped at ``ratio``.
    ``try_acquire_retry`` counts the retry when it allows it; outcomes do not matter.

    Args:
        ratio, window, min_retries_per_second, buckets: see :class:`RatioBudgetConfig`.
        clock: the clock behind the metric properties (``requests``, ...) and behind calls that
            omit ``now``. Give it the clock the retry loop uses.
    """

    def __init__(
        self,
        ratio: float = 0.1,
        window: float = 10.0,
        min_retries_per_second: float = 10.0,
        clock: Clock | None = None,
        *,
        buckets: int = 10,
    ) -> None:
        self._config = RatioBudgetConfig(ratio, window, min_retries_per_second, buckets)
        self._native = self._config._native()
        self._clock = clock if clock is not None else default_clock()

    @classmethod
    def from_config(cls, config: RatioBudgetConfig, clock: Clock | None = None) -> RatioBudget:
        """A new budget with ``config``."""
        return cls(
            config.ratio,
            config.window,
            config.min_retries_per_second,
            clock,
            buckets=config.buckets,
        )

    @property
    def config(self) -> RatioBudgetConfig:
        """The configuration this budget was built with."""
        return self._config

    @property
    def native(self) -> _core.RatioBudget:
        """The native budget, for engines and bindings that accept a ``_core.RetryBudget``."""
        return self._native

    @property
    def clock(self) -> Clock:
        """The clock used when ``now`` is omitted."""
        return self._clock

    def on_request(self, now: float | None = None) -> None:
        """Counts one request (a first attempt) at ``now``."""
        self._native.on_request(_now(now, self._clock))

    def try_acquire_retry(self, now: float | None = None) -> bool:
        """Allows and counts one retry at ``now`` if the window has room for it."""
        return self._native.try_acquire_retry(_now(now, self._clock))

    def on_outcome(self, now: float | None, success: bool, retryable_failure: bool) -> None:
        """A no-op: the ratio budget looks at volumes, not outcomes."""

    def snapshot(self, now: float | None = None) -> RatioBudgetSnapshot:
        """The window's counts at ``now`` (default: the clock's now)."""
        s = self._native.snapshot(_now(now, self._clock))
        return RatioBudgetSnapshot(s.requests, s.retries, s.allowance, s.retries_refused)

    @property
    def floor(self) -> float:
        """Retries always allowed per window: ``min_retries_per_second * window``."""
        return self._native.floor_retries

    @property
    def requests(self) -> int:
        """Requests in the window now."""
        return self.snapshot().requests

    @property
    def retries(self) -> int:
        """Retries allowed in the window now."""
        return self.snapshot().retries

    @property
    def allowance(self) -> float:
        """Retries the window may hold now: ``ratio * requests + floor``."""
        return self.snapshot().allowance

    @property
    def retries_refused(self) -> int:
        """Lifetime count of refused retries."""
        return self.snapshot().retries_refused

    def __repr__(self) -> str:
        c = self._config
        return (
            f"RatioBudget(ratio={c.ratio:g}, window={c.window:g},"
            f" min_retries_per_second={c.min_retries_per_second:g})"
        )


__all__ = [
    "RatioBudget",
    "RatioBudgetConfig",
    "RatioBudgetSnapshot",
    "RetryBudgetProtocol",
    "TokenBucket",
    "TokenBucketConfig",
]
